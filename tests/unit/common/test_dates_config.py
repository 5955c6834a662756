from __future__ import annotations

import re
from datetime import date

import pytest
from pydantic import ValidationError

from jobs.common.config import CryptoSettings, PostgresSettings, SparkSettings, describe_settings_error
from jobs.common.dates import UnsupportedDateFormat, date_format, date_formats, pattern_regex


@pytest.mark.parametrize(
    ("fmt", "day", "unpadded", "padded"),
    [
        ("d/M/yyyy", date(2023, 2, 1), "1/2/2023", "01/02/2023"),
        ("d/M/yyyy", date(2023, 1, 14), "14/1/2023", "14/01/2023"),
        ("dd/MM/yyyy", date(2023, 2, 1), "01/02/2023", "01/02/2023"),
        ("yyyy-MM-dd", date(2026, 11, 19), "2026-11-19", "2026-11-19"),
        ("yyyyMMdd", date(2026, 11, 19), "20261119", "20261119"),
        ("M/d/yyyy", date(2023, 2, 1), "2/1/2023", "02/01/2023"),
    ],
)
def test_patterns_render_and_match(fmt, day, unpadded, padded):
    f = date_format(fmt)
    assert (f.render(day, padded=False), f.render(day, padded=True)) == (unpadded, padded)
    for text in (unpadded, padded):
        assert re.match(pattern_regex(fmt), text)
        assert f.fields(text) == (day.year, day.month, day.day)


def test_one_or_two_digits_for_d_and_m_never_three():
    assert not re.match(pattern_regex("d/M/yyyy"), "001/1/2023")
    assert not re.match(pattern_regex("dd/MM/yyyy"), "1/2/2023")


@pytest.mark.parametrize("fmt", ["yyyy-MM", "MMM dd yyyy", "yyyy-MM-dd HH:mm", "dd-dd-yyyy", "d/M/yy"])
def test_unsupported_pattern_is_a_clear_error(fmt):
    with pytest.raises(UnsupportedDateFormat, match="unsupported date format"):
        date_format(fmt)


@pytest.mark.parametrize(
    ("formats", "text"),
    [(["d/M/yyyy", "M/d/yyyy"], "02/01/1999"), (["dd.MM.yyyy", "MM.dd.yyyy"], "02.01.1999")],
)
def test_formats_that_read_one_text_as_two_dates_are_refused(formats, text):
    with pytest.raises(UnsupportedDateFormat, match=f"contradict each other: '{text}'"):
        date_formats(formats)


def test_compatible_formats_are_accepted():
    assert [f.pattern for f in date_formats(["d/M/yyyy", "dd/MM/yyyy", "yyyy-MM-dd", "yyyyMMdd"])] == [
        "d/M/yyyy", "dd/MM/yyyy", "yyyy-MM-dd", "yyyyMMdd",
    ]  # fmt: skip


def test_day_first_is_the_default():
    assert CryptoSettings().date_formats[0] == "d/M/yyyy"


def test_csv_lists_from_environment(monkeypatch):
    monkeypatch.setenv("CRYPTO_KNOWN_SITES", "mla, mlb ,")
    monkeypatch.setenv("CRYPTO_DATE_FORMATS", "yyyy-MM-dd")
    crypto = CryptoSettings()
    assert crypto.known_sites == ["MLA", "MLB"]
    assert crypto.date_formats == ["yyyy-MM-dd"]
    assert crypto.window(date(2026, 11, 20)) == (date(2026, 11, 16), date(2026, 11, 20))


def test_bad_settings_fail_with_a_message(monkeypatch):
    monkeypatch.setenv("CRYPTO_DATE_FORMATS", "yyyy-MM")
    with pytest.raises(ValidationError, match="unsupported date format") as err:
        CryptoSettings()
    assert describe_settings_error(err.value, CryptoSettings).startswith(
        "CRYPTO_DATE_FORMATS: unsupported date format 'yyyy-MM': use yyyy, MM or M"
    )
    monkeypatch.setenv("SPARK_MASTER_URL", "yarn")
    with pytest.raises(ValidationError, match="SPARK_MASTER_URL"):
        SparkSettings()
    monkeypatch.setenv("POSTGRES_DB", "postgres")
    with pytest.raises(ValidationError, match="its own database"):
        PostgresSettings()
