"""The crypto events job end to end on the real PostgreSQL and Spark local."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.crypto_events import rules as R
from jobs.crypto_events.__main__ import main
from jobs.crypto_events.generate import build_extract, config_from_settings, land_extract
from tests.integration.helpers import land_rows, prod_checksum, prod_rows, run_job

pytestmark = pytest.mark.integration

D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)


def test_generated_window_gives_the_exact_expected_counts(db, settings, spark, object_store_root):
    extract = build_extract(config_from_settings(settings.crypto, events_per_day=1500, defect_share=0.06), D3)
    land_extract(db, extract)
    outcome = run_job(settings, D3)
    expected = extract.expected
    assert outcome.status == "merged"
    run = db.execute(
        "SELECT rows_read, rows_valid, rows_rejected, duplicates_collapsed, rows_inserted, rejects_by_rule, "
        "window_start, window_end, gx_results_uri, status FROM dqm.dq_runs WHERE run_id = %s",
        (outcome.run_id,),
    ).fetchone()
    assert run[:5] == (
        expected["rows_read"],
        expected["rows_valid"],
        expected["rows_rejected"],
        expected["duplicates_collapsed"],
        expected["rows_valid"],
    )
    assert run[5] == expected["rejects_by_rule"]
    assert set(expected["rejects_by_rule"]) == {
        r.code for r in R.crypto_rules(R.RuleContext(D3, D3, (), (), 3.0))
    }
    assert (run[6], run[7], run[9]) == (date(2026, 11, 16), D3, "merged")
    by_rule = dict(
        db.execute(
            "SELECT code, count(*) FROM dqm.bt_crypto_events_rejects, unnest(rule_codes) code "
            "WHERE logical_date = %s GROUP BY code",
            (D3,),
        ).fetchall()
    )
    assert by_rule == expected["rejects_by_rule"]
    (prod_count,) = db.execute("SELECT count(*) FROM prod.bt_crypto_events WHERE is_active").fetchone()
    assert prod_count == expected["rows_valid"]
    results = Path(run[8].removeprefix("file://"))
    assert results.is_relative_to(object_store_root / "ge-artifacts" / "crypto_events" / D3.isoformat())
    assert json.loads(results.read_text())["success"] is True
    assert (results.parent / "data_docs" / "index.html").exists()


def test_rerun_changes_nothing_and_never_duplicates_rejects(db, settings, spark):
    land_extract(db, build_extract(config_from_settings(settings.crypto, events_per_day=400), D3))
    first = run_job(settings, D3)
    before = prod_checksum(db)
    (rejects_before,) = db.execute("SELECT count(*) FROM dqm.bt_crypto_events_rejects").fetchone()
    second = run_job(settings, D3)
    assert prod_checksum(db) == before
    (rejects_after,) = db.execute("SELECT count(*) FROM dqm.bt_crypto_events_rejects").fetchone()
    assert rejects_after == rejects_before == first.counts["rows_rejected"]
    assert (
        second.counts["rows_inserted"],
        second.counts["rows_updated"],
        second.counts["rows_deactivated"],
    ) == (0, 0, 0)
    assert second.counts["rows_unchanged"] == first.counts["rows_valid"]


def _row(user: int, day: str, price: str = "60000", units: str = "0.5", crypto: str = "BTC"):
    return ("MLA", str(user), day, crypto, price, units)


FILLER = [_row(100 + k, "2026-11-17") for k in range(10)]  # keeps the reject share under the gate's limit


def test_lifecycle_update_deactivate_reactivate_and_hold(db, settings, spark):
    day = "2026-11-18"
    land_rows(db, D1, [_row(1, day), _row(2, day), _row(3, day), _row(4, day), _row(5, day), *FILLER])
    run_job(settings, D1)
    before = prod_rows(db)
    assert len(before) == 15 and all(r["is_active"] for r in before.values())

    # next day: 1 edited, 2 deleted upstream, 3 unchanged, 4 only as a rejected row, 5 unchanged
    land_rows(
        db, D2, [_row(1, day, price="61000"), _row(3, day), _row(4, day, units="abc"), _row(5, day), *FILLER]
    )
    out = run_job(settings, D2)
    c = out.counts
    assert (
        c["rows_inserted"],
        c["rows_updated"],
        c["rows_deactivated"],
        c["keys_held"],
        c["rows_unchanged"],
    ) == (0, 1, 1, 1, 12)
    after = prod_rows(db)
    key = lambda user: ("MLA", user, D1, "BTC")  # noqa: E731
    assert after[key(1)]["purchase_price"] == Decimal("61000.00000000")
    assert after[key(1)]["purchase_value"] == Decimal("30500.00000000")
    assert after[key(1)]["updated_at"] > before[key(1)]["updated_at"]
    assert (
        after[key(1)]["last_run_id"] == after[key(1)]["last_run_id"]
        and str(after[key(1)]["last_run_id"]) == out.run_id
    )
    assert not after[key(2)]["is_active"] and after[key(2)]["deactivated_at"] is not None
    for user in (3, 5):  # unchanged: untouched, updated_at kept
        assert after[key(user)] == before[key(user)]
    assert after[key(4)] == before[key(4)]  # held: still active, untouched

    # the deleted key reappears: reactivated
    land_rows(
        db, D3, [_row(1, day, price="61000"), _row(2, day), _row(3, day), _row(4, day), _row(5, day), *FILLER]
    )
    out = run_job(settings, D3)
    assert (out.counts["rows_reactivated"], out.counts["rows_deactivated"], out.counts["rows_unchanged"]) == (
        1,
        0,
        14,
    )
    final = prod_rows(db)
    assert final[key(2)]["is_active"] and final[key(2)]["deactivated_at"] is None
    assert final[key(2)]["created_at"] == before[key(2)]["created_at"]


def test_gate_blocks_the_merge_and_prod_is_untouched(db, settings, spark, capsys):
    land_rows(db, D1, [_row(u, "2026-11-18") for u in range(1, 11)])
    run_job(settings, D1)
    before = prod_checksum(db)
    bad = [_row(u, "2026-11-19", price="NaN") for u in range(1, 6)] + [
        _row(u, "2026-11-19") for u in range(6, 11)
    ]
    land_rows(db, D2, bad)
    assert main(["--date", D2.isoformat(), "--master", "local[2]"]) == 3  # the Airflow task fails
    assert prod_checksum(db) == before
    status, message, gate_passed, rejected = db.execute(
        "SELECT status, message, gate_passed, rows_rejected FROM dqm.dq_runs WHERE logical_date = %s", (D2,)
    ).fetchone()
    assert (status, gate_passed, rejected) == ("blocked", False, 5)
    assert "reject_share: 5 rows (50.00%), limit 20.0%" in message
    (quarantined,) = db.execute(
        "SELECT count(*) FROM dqm.bt_crypto_events_rejects WHERE logical_date = %s", (D2,)
    ).fetchone()
    assert quarantined == 5  # rejects are kept for diagnosis even when blocked


def test_missing_extract_is_blocked_by_row_count(db, settings, spark):
    out = run_job(settings, date(2026, 1, 5))
    assert out.status == "blocked"
    assert "row_count: 0 rows, minimum 1" in out.message


def test_backfill_processes_that_dates_window(db, settings, spark):
    cfg = config_from_settings(settings.crypto, events_per_day=300)
    for d in (D3, D1):
        land_extract(db, build_extract(cfg, d))
    run_job(settings, D3)
    out = run_job(settings, D1)  # an earlier date, run after
    window = db.execute(
        "SELECT window_start, window_end FROM dqm.dq_runs WHERE run_id = %s", (out.run_id,)
    ).fetchone()
    assert window == (date(2026, 11, 14), D1)
    (outside,) = db.execute(
        "SELECT count(*) FROM prod.bt_crypto_events WHERE last_run_id = %s AND purchase_date NOT BETWEEN %s AND %s",
        (out.run_id, *window),
    ).fetchone()
    assert outside == 0  # the backfill touched only its own window


def test_stage_validate_then_merge_cli(db, settings, spark):
    from jobs.crypto_events.merge import main as merge_main

    land_rows(db, D1, [_row(u, "2026-11-18") for u in range(1, 4)])
    out = run_job(settings, D1, stage="validate")
    assert out.status == "validated"
    assert prod_checksum(db) == ""
    assert merge_main(["--date", D1.isoformat()]) == 0
    (status,) = db.execute("SELECT status FROM dqm.dq_runs WHERE run_id = %s", (out.run_id,)).fetchone()
    assert status == "merged"
    assert len(prod_rows(db)) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--date", "2026-13-01"], "--date must be YYYY-MM-DD"),
        (["--date", "2026-11-20", "--window-days", "0"], "--window-days must be between 1 and 60"),
        (["--date", "2026-11-20", "--master", "yarn"], "--master must be local"),
        ([], "the following arguments are required: --date"),
    ],
)
def test_bad_cli_input_is_a_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
