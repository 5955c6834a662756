"""The crypto events job end to end on the real PostgreSQL and Spark local, reading upstream's table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.common.config import PROJECT_ROOT
from jobs.crypto_events import rules as R
from jobs.crypto_events.__main__ import main
from jobs.crypto_events.generate import expected_run, first_day_for, upstream_rows
from tests.integration.helpers import (
    SIX,
    SOURCE,
    insert_rows,
    prod_checksum,
    prod_rows,
    reference_prices,
    run_job,
    simulate,
)

pytestmark = pytest.mark.integration

D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)


def _window(d: date) -> tuple[date, date]:
    return d - timedelta(days=4), d


def _rejects_by_rule(db, run_id: str) -> dict[str, int]:
    return dict(
        db.execute(
            "SELECT code, count(*) FROM dqm.bt_crypto_events_rejects, unnest(rule_codes) code "
            "WHERE run_id = %s GROUP BY code",
            (run_id,),
        ).fetchall()
    )


def test_generated_window_gives_the_exact_expected_counts(db, settings, spark, object_store_root):
    cfg = simulate(db, settings, D3, events_per_day=1500, defect_share=0.06)
    first = first_day_for(cfg, D3)
    expected = expected_run(upstream_rows(cfg, first, D3), _window(D3), (first, D3))
    outcome = run_job(settings, D3)
    assert outcome.status == "merged"
    run = db.execute(
        "SELECT rows_read, rows_valid, rows_rejected, duplicates_collapsed, rows_unplaced, rows_inserted, "
        "rejects_by_rule, window_start, window_end, gx_results_uri, status, source FROM dqm.dq_runs "
        "WHERE run_id = %s",
        (outcome.run_id,),
    ).fetchone()
    assert run[:6] == (
        expected["rows_read"],
        expected["rows_valid"],
        expected["rows_rejected"],
        expected["duplicates_collapsed"],
        expected["rows_unplaced"],
        expected["rows_valid"],
    )
    assert run[6] == expected["rejects_by_rule"]
    every_code = {r.code for r in R.crypto_rules(R.RuleContext(D3, D3, D3, D3, (), (), 3.0))}
    # the guard never fires; a missing reference price is a defect of the market feed, not of a row, which the
    # generator does not play (test_a_day_without_a_reference_price_is_quarantined_not_passed plays it)
    assert set(expected["rejects_by_rule"]) == every_code - {R.DATE_NOT_IN_WINDOW, R.PRICE_NO_REFERENCE}
    assert (run[7], run[8], run[10], run[11]) == (date(2026, 11, 16), D3, "merged", SOURCE)
    assert _rejects_by_rule(db, outcome.run_id) == expected["rejects_by_rule"]
    (prod_count,) = db.execute("SELECT count(*) FROM prod.bt_crypto_events WHERE is_active").fetchone()
    assert prod_count == expected["rows_valid"]
    (landed,) = db.execute(
        "SELECT count(*) FROM raw.bt_crypto_landing WHERE run_id = %s", (outcome.run_id,)
    ).fetchone()
    assert landed == expected["rows_read"]
    results = Path(run[9].removeprefix("file://"))
    assert results.is_relative_to(object_store_root / "ge-artifacts" / "crypto_events" / D3.isoformat())
    assert json.loads(results.read_text())["success"] is True
    assert (results.parent / "data_docs" / "index.html").exists()


def test_a_day_without_a_reference_price_is_quarantined_not_passed_and_every_value_is_exact(
    db, settings, spark
):
    from decimal import ROUND_HALF_UP, Context

    simulate(db, settings, D3, events_per_day=1500, defect_share=0.06)
    gap = D3 - timedelta(days=1)
    db.execute(
        "DELETE FROM raw.crypto_reference_prices WHERE price_date = %s AND crypto_type = 'ETH'", (gap,)
    )
    outcome = run_job(settings, D3)
    assert outcome.status == "merged"
    held = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE key_crypto_type = 'ETH' AND key_purchase_date = %s) "
        "FROM dqm.bt_crypto_events_rejects WHERE run_id = %s AND 'PRICE_NO_REFERENCE' = ANY(rule_codes)",
        (gap, outcome.run_id),
    ).fetchone()
    # the ETH rows of that day only (a row of it with another defect carries both codes)
    assert held[0] > 50 and held[0] == held[1] == outcome.counts["rejects_by_rule"]["PRICE_NO_REFERENCE"]
    (in_prod,) = db.execute(
        "SELECT count(*) FROM prod.bt_crypto_events WHERE crypto_type = 'ETH' AND purchase_date = %s", (gap,)
    ).fetchone()
    assert in_prod == 0  # nothing of the unchecked day passed

    # every value of prod is the exact product of the STORED price and units, rounded half-up once
    exact = Context(prec=80)
    rows = db.execute(
        "SELECT purchase_price, purchase_units, purchase_value FROM prod.bt_crypto_events"
    ).fetchall()
    wrong = [
        (price, units, value)
        for price, units, value in rows
        if value != exact.multiply(price, units).quantize(Decimal("1e-8"), ROUND_HALF_UP, exact)
    ]
    assert len(rows) > 5000 and not wrong, wrong[:5]


def test_rerun_changes_nothing_and_quarantines_nothing_twice(db, settings, spark):
    simulate(db, settings, D3, events_per_day=400)
    first = run_job(settings, D3)
    before = prod_checksum(db)
    second = run_job(settings, D3)
    assert prod_checksum(db) == before
    assert first.counts["rows_unplaced"] > 0 and second.counts["rows_unplaced"] == 0  # quarantined once
    assert second.counts["rows_rejected"] == first.counts["rows_rejected"] - first.counts["rows_unplaced"]
    (rows_of_first,) = db.execute(
        "SELECT count(*) FROM dqm.bt_crypto_events_rejects WHERE run_id = %s", (first.run_id,)
    ).fetchone()
    assert rows_of_first == first.counts["rows_rejected"]  # the second run touched none of the first's rows
    assert (
        second.counts["rows_inserted"],
        second.counts["rows_updated"],
        second.counts["rows_deactivated"],
    ) == (0, 0, 0)
    assert second.counts["rows_unchanged"] == first.counts["rows_valid"]


def test_simulated_upstream_edits_in_place_and_runs_follow(db, settings, spark):
    """Day by day: upstream edits and deletes rows of the window in place; each run's prod equals the
    table's current window, and rows outside the window stay as they were."""
    cfg = simulate(db, settings, D2, events_per_day=300, defect_share=0.04)
    run_job(settings, D2)
    first = first_day_for(cfg, D2)
    (stamps_before,) = db.execute(f"SELECT count(DISTINCT updated_at) FROM {SOURCE}").fetchone()
    assert simulate(db, settings, D2, events_per_day=300, defect_share=0.04) == cfg  # idempotent
    simulate(db, settings, D3, events_per_day=300, defect_share=0.04)
    table = Counter(tuple(r) for r in db.execute(f"SELECT {', '.join(SIX)} FROM {SOURCE}").fetchall())
    assert table == Counter(r.values for r in upstream_rows(cfg, first, D3))  # upstream's state, exactly
    (edited,) = db.execute(f"SELECT count(*) FROM {SOURCE} WHERE updated_at > inserted_at").fetchone()
    assert edited > 0 and stamps_before >= 1
    outside = {k: v for k, v in prod_rows(db).items() if k[2] < D3 - timedelta(days=4)}
    out = run_job(settings, D3)
    assert out.counts["rows_updated"] > 0 and out.counts["rows_deactivated"] > 0
    expected = expected_run(upstream_rows(cfg, first, D3), _window(D3), (D3, D3))
    assert out.counts["rows_read"] == expected["rows_read"]
    assert out.counts["rows_rejected"] == expected["rows_rejected"]
    after = prod_rows(db)
    assert {k: after[k] for k in outside} == outside  # D-5 and before: untouched


def _row(user: int, day: str, price: str = "60000", units: str = "0.5", crypto: str = "BTC"):
    return ("MLA", str(user), day, crypto, price, units)


FILLER = [_row(100 + k, "17/11/2026") for k in range(10)]  # keeps the reject share under the gate's limit
KEY = lambda user: ("MLA", user, D1, "BTC")  # noqa: E731


def test_lifecycle_update_deactivate_reactivate_and_hold(db, settings, spark):
    day = "18/11/2026"
    reference_prices(db, D1 - timedelta(days=6), D3)
    insert_rows(db, [_row(1, day), _row(2, day), _row(3, day), _row(4, day), _row(5, day), *FILLER])
    run_job(settings, D1)
    before = prod_rows(db)
    assert len(before) == 15 and all(r["is_active"] for r in before.values())

    # upstream in place: 1 edited, 2 deleted, 4 edited into a rejected row; 3 and 5 unchanged
    where = f"UPDATE {SOURCE} SET {{}} WHERE user_id = %s AND purchase_date = %s"
    db.execute(where.format("purchase_price = '61000'"), ("1", day))
    db.execute(f"DELETE FROM {SOURCE} WHERE user_id = %s AND purchase_date = %s", ("2", day))
    db.execute(where.format("purchase_units = 'abc'"), ("4", day))
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
    assert after[KEY(1)]["purchase_price"] == Decimal("61000.00000000")
    assert after[KEY(1)]["purchase_value"] == Decimal("30500.00000000")
    assert after[KEY(1)]["updated_at"] > before[KEY(1)]["updated_at"]
    assert str(after[KEY(1)]["last_run_id"]) == out.run_id
    assert not after[KEY(2)]["is_active"] and after[KEY(2)]["deactivated_at"] is not None
    for user in (3, 5):  # unchanged: untouched, updated_at kept
        assert after[KEY(user)] == before[KEY(user)]
    assert after[KEY(4)] == before[KEY(4)]  # held: still active, untouched

    # the deleted key reappears, the rejected one is fixed: reactivated, unchanged
    insert_rows(db, [_row(2, day)])
    db.execute(where.format("purchase_units = '0.5'"), ("4", day))
    out = run_job(settings, D3)
    assert (out.counts["rows_reactivated"], out.counts["rows_deactivated"], out.counts["rows_unchanged"]) == (
        1,
        0,
        14,
    )
    final = prod_rows(db)
    assert final[KEY(2)]["is_active"] and final[KEY(2)]["deactivated_at"] is None
    assert final[KEY(2)]["created_at"] == before[KEY(2)]["created_at"]


def test_gate_blocks_the_merge_and_prod_is_untouched(db, settings, spark):
    reference_prices(db, D1 - timedelta(days=6), D2)
    insert_rows(db, [_row(u, "18/11/2026") for u in range(1, 11)])
    run_job(settings, D1)
    before = prod_checksum(db)
    insert_rows(db, [_row(u, "19/11/2026", price="NaN") for u in range(1, 6)])
    insert_rows(db, [_row(u, "19/11/2026") for u in range(6, 11)])
    # 5 NaN rows of the 20 rows of the window [15, 19]: 25% > the 20% limit
    assert main(["--date", D2.isoformat(), "--master", "local[2]"]) == 3  # the Airflow task fails
    assert prod_checksum(db) == before
    run_id, status, message, gate_passed, rejected = db.execute(
        "SELECT run_id::text, status, message, gate_passed, rows_rejected FROM dqm.dq_runs WHERE logical_date = %s",
        (D2,),
    ).fetchone()
    assert (status, gate_passed, rejected) == ("blocked", False, 5)
    assert "reject_share: 5 rows (25.00%), limit 20.0%" in message
    assert _rejects_by_rule(db, run_id) == {R.PRICE_INVALID: 5}  # kept for diagnosis even when blocked


def test_an_empty_window_is_blocked_by_row_count(db, settings, spark):
    out = run_job(settings, date(2026, 1, 5))
    assert out.status == "blocked"
    assert "row_count: 0 rows, minimum 1" in out.message


def test_backfill_reads_the_current_state_of_its_window(db, settings, spark):
    cfg = simulate(db, settings, D3, events_per_day=300)
    first = first_day_for(cfg, D3)
    run_job(settings, D3)
    out = run_job(settings, D1)  # an earlier date, run after: upstream has moved on since D1
    window = db.execute(
        "SELECT window_start, window_end FROM dqm.dq_runs WHERE run_id = %s", (out.run_id,)
    ).fetchone()
    assert window == (date(2026, 11, 14), D1)
    expected = expected_run(upstream_rows(cfg, first, D3), window, None)  # the table now, that window
    assert {k: out.counts[k] for k in expected} == expected
    (outside,) = db.execute(
        "SELECT count(*) FROM prod.bt_crypto_events WHERE last_run_id = %s AND purchase_date NOT BETWEEN %s AND %s",
        (out.run_id, *window),
    ).fetchone()
    assert outside == 0  # the backfill touched only its own window
    (inserted,) = db.execute(
        "SELECT count(*) FROM prod.bt_crypto_events WHERE last_run_id = %s AND purchase_date < %s",
        (out.run_id, date(2026, 11, 16)),
    ).fetchone()
    assert inserted == out.counts["rows_inserted"] > 0  # the days only the backfill's window holds


def test_stage_validate_then_merge_cli(db, settings, spark):
    from jobs.crypto_events.merge import main as merge_main

    reference_prices(db, D1 - timedelta(days=6), D1)
    insert_rows(db, [_row(u, "18/11/2026") for u in range(1, 4)])
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
        (
            ["--date", "2026-11-20", "--master", "local[abc]"],
            "--master must be local, local[N], local[*] or spark",
        ),
        (
            ["--date", "2026-11-20", "--master", "spark://host"],
            "--master must be local, local[N], local[*] or spark",
        ),
        ([], "the following arguments are required: --date (or --reproduce RUN_ID)"),
        (["--reproduce", "nope"], "--reproduce must be a run id"),
    ],
)
def test_bad_cli_input_is_a_clear_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--date", "0001-01-02"], "--date 0001-01-02 is before CRYPTO_EARLIEST_DATE 2009-01-03"),
        (["--date", "9999-12-30"], "--date 9999-12-30 is too far in the future"),
        (
            ["--date", "2026-11-20", "--master", "spark://nohost.invalid:7077"],
            "spark://nohost.invalid:7077 does not",
        ),
        (
            ["--date", "2026-11-20", "--master", "spark://127.0.0.1:1"],
            "the Spark master spark://127.0.0.1:1 does not",
        ),
    ],
)
def test_impossible_dates_and_unreachable_masters_are_exit_2_before_any_spark_work(argv, message, pg, db):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jobs.crypto_events", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - t0 < 30
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "SparkContext" not in done.stderr  # no JVM was started
    assert db.execute("SELECT count(*) FROM dqm.dq_runs").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        ("yyyy-MM", "CRYPTO_DATE_FORMATS: unsupported date format 'yyyy-MM'"),
        (
            "d/M/yyyy,M/d/yyyy",
            "CRYPTO_DATE_FORMATS: date formats 'd/M/yyyy' and 'M/d/yyyy' contradict each other",
        ),
    ],
)
def test_an_unsupported_date_pattern_is_one_line_and_exit_2(formats, message, pg):
    env = {**os.environ, "CRYPTO_DATE_FORMATS": formats, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.crypto_events", "--date", "2026-11-20", "--master", "local[2]"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr
