"""Job figures for Prometheus: built from a run's record, exposed as the text format the gateway stores."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from prometheus_client import generate_latest

from jobs.common.metrics import Figures, push, step_figures
from jobs.crypto_events.runs import run_figures

RUN = {
    "run_id": "r",
    "status": "merged",
    "logical_date": date(2026, 11, 20),
    "rows_read": 200,
    "rows_valid": 180,
    "rows_rejected": 15,
    "duplicates_collapsed": 5,
    "rows_unplaced": 2,
    "rows_corrected": None,
    "rejects_by_rule": {"PRICE_INVALID": 10, "SITE_UNKNOWN": 5},
    "gate_passed": True,
    "rows_inserted": 100,
    "rows_updated": 20,
    "rows_deactivated": 3,
    "rows_reactivated": 1,
    "keys_held": 2,
    "rows_unchanged": 59,
    "started_at": datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
    "finished_at": datetime(2026, 11, 21, 12, 1, 30, tzinfo=UTC),
}


def test_a_run_record_gives_its_figures():
    f = run_figures(RUN, {"land snapshot": 2.5})
    assert f.job == "crypto_events"
    assert f.value("kpi_crypto_run_status", status="merged") == 1.0
    assert f.value("kpi_crypto_run_status", status="blocked") == 0.0
    assert (
        f.value("kpi_crypto_rows", kind="read") == 200 and f.value("kpi_crypto_rows", kind="collapsed") == 5
    )
    assert f.value("kpi_crypto_rows", kind="corrected") is None  # not counted by this run: not pushed
    assert f.value("kpi_crypto_reject_share") == pytest.approx(0.075)
    assert f.value("kpi_crypto_rejects_by_rule", rule="PRICE_INVALID") == 10
    assert f.value("kpi_crypto_merge_rows", action="held") == 2
    assert f.value("kpi_crypto_gate_passed") == 1.0
    assert f.value("kpi_job_duration_seconds") == 90.0
    assert f.value("kpi_job_step_seconds", step="land snapshot") == 2.5
    assert f.value("kpi_crypto_run_logical_date_seconds") == datetime(2026, 11, 20, tzinfo=UTC).timestamp()


def test_a_blocked_run_has_no_merge_figures():
    blocked = {**RUN, "status": "blocked", "gate_passed": False, **dict.fromkeys(
        ["rows_inserted", "rows_updated", "rows_deactivated", "rows_reactivated", "keys_held", "rows_unchanged"])}  # fmt: skip
    f = run_figures(blocked)
    assert f.value("kpi_crypto_gate_passed") == 0.0
    assert not [x for x in f.items if x.name == "kpi_crypto_merge_rows"]


def test_the_registry_is_prometheus_text_and_label_sets_must_agree():
    text = generate_latest(step_figures(run_figures(RUN), {"a": 1.0}, 3.0).registry()).decode()
    assert 'kpi_crypto_rows{kind="read"} 200.0' in text
    assert "# HELP kpi_crypto_reject_share rejected / read of the latest run" in text
    bad = Figures("x")
    bad.add("m", 1, "doc", a=1)
    bad.add("m", 2, "doc", b=2)
    with pytest.raises(ValueError, match="labels"):
        bad.registry()


def test_no_gateway_configured_means_logged_not_pushed(caplog):
    class Off:
        pushgateway_url = ""
        push_timeout_seconds = 1.0

    caplog.set_level("INFO", logger="jobs.common.metrics")
    assert push(run_figures(RUN), Off()) is False
    assert "METRICS_PUSHGATEWAY_URL unset" in caplog.text and "kpi_crypto_run_status" in caplog.text
