from __future__ import annotations

import re
from datetime import date

import pytest
from pydantic import ValidationError

from jobs.common.config import CryptoSettings, PostgresSettings, SparkSettings
from jobs.common.dates import pattern_regex, pattern_strftime


@pytest.mark.parametrize(
    ("fmt", "text", "strftime"),
    [
        ("yyyy-MM-dd", "2026-11-19", "%Y-%m-%d"),
        ("dd/MM/yyyy", "19/11/2026", "%d/%m/%Y"),
        ("yyyyMMdd", "20261119", "%Y%m%d"),
    ],
)
def test_patterns(fmt, text, strftime):
    assert re.match(pattern_regex(fmt), text)
    assert pattern_strftime(fmt) == strftime
    assert date(2026, 11, 19).strftime(strftime) == text


@pytest.mark.parametrize("fmt", ["yyyy-MM", "MMM dd yyyy", "yyyy-MM-dd HH:mm", "dd-dd-yyyy"])
def test_unsupported_pattern_is_a_clear_error(fmt):
    with pytest.raises(ValueError, match="unsupported date format"):
        pattern_regex(fmt)


def test_csv_lists_from_environment(monkeypatch):
    monkeypatch.setenv("CRYPTO_KNOWN_SITES", "mla, mlb ,")
    monkeypatch.setenv("CRYPTO_DATE_FORMATS", "yyyy-MM-dd")
    crypto = CryptoSettings()
    assert crypto.known_sites == ["MLA", "MLB"]
    assert crypto.date_formats == ["yyyy-MM-dd"]
    assert crypto.window(date(2026, 11, 20)) == (date(2026, 11, 16), date(2026, 11, 20))


def test_bad_settings_fail_with_a_message(monkeypatch):
    monkeypatch.setenv("CRYPTO_DATE_FORMATS", "yyyy-MM")
    with pytest.raises(ValidationError, match="unsupported date format"):
        CryptoSettings()
    monkeypatch.setenv("SPARK_MASTER_URL", "yarn")
    with pytest.raises(ValidationError, match="SPARK_MASTER_URL"):
        SparkSettings()
    monkeypatch.setenv("POSTGRES_DB", "postgres")
    with pytest.raises(ValidationError, match="its own database"):
        PostgresSettings()
