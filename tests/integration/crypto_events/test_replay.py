"""Quarantine replay and lineage, on the real PostgreSQL and Spark: a steward's corrections are judged by the
same rules, the passing ones merged in one transaction with an audit trail, the others stay quarantined with
their new reason; later runs keep applying them; every change of a prod row leads to its run and landing row."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.common.queries import run_saved
from jobs.crypto_events import rules as R
from jobs.crypto_events.corrections import CorrectionsRefused
from jobs.crypto_events.replay import Options, main, replay
from tests.integration.helpers import SOURCE, insert_rows, prod_content, prod_rows, reference_prices, run_job

pytestmark = pytest.mark.integration

D1, D2 = date(2026, 11, 20), date(2026, 11, 21)
FILE_HEADER = ("run_id", "landing_row", "site_id", "user_id", "purchase_date", "crypto_type", "purchase_price",
               "purchase_units", "corrected_by", "why")  # fmt: skip


def _row(user: int, day: str = "18/11/2026", price: str = "60000", units: str = "0.5", crypto: str = "BTC"):
    return ("MLA", str(user), day, crypto, price, units)


FILLER = [_row(100 + k, "17/11/2026") for k in range(30)]  # keeps the reject share under the gate's limit


def _rejects(db, run_id: str) -> dict[str, dict]:
    """The run's quarantine rows by raw user id."""
    cur = db.execute(
        "SELECT raw_user_id, landing_row, rule_codes, reason, correction_id FROM dqm.bt_crypto_events_rejects "
        "WHERE run_id = %s",
        (run_id,),
    )
    return {
        r[0]: {"landing_row": r[1], "rule_codes": r[2], "reason": r[3], "correction_id": r[4]} for r in cur
    }


def _write(path: Path, rows: list[tuple]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FILE_HEADER)
        writer.writerows(rows)
    return path


def _opts(path: Path | None, d: date = D1) -> Options:
    return Options(d, path, "local[2]", "test-replay")


def _corrected_rejects(db, run_id: str) -> dict[int, dict]:
    """The run's quarantine rows that carry a correction, by correction id."""
    cur = db.execute(
        "SELECT correction_id, raw_user_id, rule_codes, reason FROM dqm.bt_crypto_events_rejects "
        "WHERE run_id = %s AND correction_id IS NOT NULL",
        (run_id,),
    )
    return {r[0]: {"raw_user_id": r[1], "rule_codes": r[2], "reason": r[3]} for r in cur}


def test_corrections_are_judged_by_the_same_rules_and_merged_once_with_an_audit_trail(
    db, settings, spark, tmp_path
):
    reference_prices(db, D1 - timedelta(days=6), D2)
    insert_rows(db, [*FILLER, _row(7, units="0.25")])  # the row correction 4 collides with
    insert_rows(
        db,
        [
            _row(1, price="6O000"),  # a letter O: fixed -> inserted
            _row(2, day="32/11/2026"),  # no such day, no key, no window: fixed to the 19th -> inserted there
            _row(3, units="abc"),  # "fixed" to a negative: still rejected, for the new reason
            _row(4, crypto="BTCX"),  # fixed onto user 7's key with other units: a conflict, both rejected
            _row(
                5, units="0,5"
            ),  # fixed into an exact copy of fix 1: one of the two collapses into the other
        ],
    )
    first = run_job(settings, D1)
    assert first.status == "merged" and first.counts["rows_rejected"] == 5
    quarantined = _rejects(db, first.run_id)
    before = prod_rows(db)
    fixes = {
        "1": ("MLA", "1", "18/11/2026", "BTC", "60000", "0.5"),
        "2": ("MLA", "2", "19/11/2026", "BTC", "60000", "0.5"),
        "3": ("MLA", "3", "18/11/2026", "BTC", "60000", "-1"),
        "4": ("MLA", "7", "18/11/2026", "BTC", "60000", "0.5"),
        "5": ("MLA", "1", "18/11/2026", "BTC", "60000", "0.5"),
    }
    lines = [
        (first.run_id, quarantined[u]["landing_row"], *v, "ana.steward", f"DQ-{u}") for u, v in fixes.items()
    ]
    out = replay(_opts(_write(tmp_path / "fixes.csv", lines)), settings)

    assert (out.status, out.loaded) == ("merged", 5)
    assert out.outcomes == {"inserted": 2, "rejected": 2, "collapsed": 1}
    c = out.counts
    assert (c["rows_corrected"], c["rows_rejected"], c["duplicates_collapsed"]) == (5, 3, 1)  # + user 7's row
    assert (c["rows_inserted"], c["rows_updated"], c["rows_deactivated"], c["keys_held"]) == (2, 0, 0, 1)
    after = prod_rows(db)
    new_keys = {("MLA", 1, date(2026, 11, 18), "BTC"), ("MLA", 2, date(2026, 11, 19), "BTC")}
    assert set(after) - set(before) == new_keys
    assert {
        k: after[k] for k in before
    } == before  # nothing else touched: user 7's key is held, not deactivated
    for key in new_keys:
        assert after[key]["purchase_value"] == Decimal("30000.00000000") and after[key]["is_active"]
        assert str(after[key]["last_run_id"]) == out.run_id

    # what still breaks a rule stays quarantined, under the replay's run, with its new reason
    ids = dict(db.execute("SELECT why, correction_id FROM dqm.bt_crypto_events_corrections").fetchall())
    still = _corrected_rejects(db, out.run_id)
    assert set(still) == {ids["DQ-3"], ids["DQ-4"]}
    assert still[ids["DQ-3"]]["rule_codes"] == [R.UNITS_NON_POSITIVE]
    assert still[ids["DQ-4"]]["rule_codes"] == [R.DUPLICATE_CONFLICT]
    assert (
        still[ids["DQ-4"]]["raw_user_id"] == "7"
    )  # the quarantine shows the values judged: the corrected ones

    # the audit trail: who, why, which run judged it and how
    trail = run_saved(db, "crypto_corrections").set_index("why")
    assert len(trail) == 5 and set(trail["corrected_by"]) == {"ana.steward"}
    outcome = dict(trail["outcome"])
    assert {outcome.pop("DQ-1"), outcome.pop("DQ-5")} == {
        "inserted",
        "collapsed",
    }  # the lower landing row is kept
    assert outcome == {"DQ-2": "inserted", "DQ-3": "rejected", "DQ-4": "rejected"}
    assert "purchase_units is not positive" in trail.loc["DQ-3", "outcome_reason"]
    assert set(trail["judged_by_run_id"].astype(str)) == {out.run_id}
    assert trail.loc["DQ-2", "quarantined_values"] == "MLA | 2 | 32/11/2026 | BTC | 60000 | 0.5"
    run = db.execute(
        "SELECT is_replay, rows_corrected, corrections_upto, status FROM dqm.dq_runs WHERE run_id = %s",
        (out.run_id,),
    ).fetchone()
    assert run == (True, 5, max(ids.values()), "merged")

    # lineage: a replayed key leads to the replay, the landing row (upstream's values) and the correction
    step = run_saved(db, "crypto_row_lineage", where={"site_id": "MLA", "user_id": 2}).iloc[0]
    assert (step["action"], step["run_of"], step["corrected_by"], step["correction_id"]) == (
        "inserted", D1, "ana.steward", ids["DQ-2"],
    )  # fmt: skip
    assert step["landed_purchase_date"] == "32/11/2026" and bool(step["is_current_state"])

    # the scheduled runs that follow still read upstream's wrong values and keep applying the corrections:
    # nothing changes, the replayed keys are not deactivated as gone (the 19th's own window included)
    content = prod_content(db)
    for d in (D1, D2):
        later = run_job(settings, d)
        assert later.status == "merged" and later.counts["rows_corrected"] == 5
        assert (later.counts["rows_inserted"], later.counts["rows_deactivated"]) == (0, 0)
        assert prod_content(db) == content
    again = replay(
        _opts(None), settings
    )  # a second replay: the same judgment, nothing loaded, nothing changed
    assert (again.loaded, again.outcomes) == (0, {"unchanged": 2, "rejected": 2, "collapsed": 1})
    assert prod_content(db) == content


def test_a_corrected_date_moves_the_row_to_the_window_that_holds_it(db, settings, spark, tmp_path):
    reference_prices(db, D1 - timedelta(days=12), D2)
    insert_rows(db, [*FILLER, _row(1, day="18/11/2062")])  # a typo in the year: no window holds it
    first = run_job(settings, D1)
    landing_row = _rejects(db, first.run_id)["1"]["landing_row"]
    # the steward says it was the 12th: outside the window of the 20th (16th..20th)
    line = (first.run_id, landing_row, "MLA", "1", "12/11/2026", "BTC", "60000", "0.5", "ana", "year typo")
    out = replay(_opts(_write(tmp_path / "typo.csv", [line])), settings)
    assert out.outcomes == {"absent": 1} and out.counts["rows_corrected"] == 0
    absent = run_saved(db, "crypto_corrections").iloc[0]
    assert "belongs to another window" in absent["outcome_reason"]
    # replayed on a date whose window holds the 12th: found by upstream's text, judged, merged
    on_12th = replay(_opts(None, date(2026, 11, 14)), settings)
    assert on_12th.outcomes == {"inserted": 1}
    row = prod_rows(db)[("MLA", 1, date(2026, 11, 12), "BTC")]
    assert row["is_active"] and row["purchase_value"] == Decimal("30000.00000000")
    # and the run of the 20th no longer lands it as undatable (nor anywhere: its date is elsewhere)
    assert run_job(settings, D1).counts["rows_unplaced"] == 0


def test_a_correction_of_no_quarantine_row_of_the_date_is_refused_and_nothing_is_loaded(
    db, settings, spark, tmp_path
):
    reference_prices(db, D1 - timedelta(days=6), D1)
    insert_rows(db, [*FILLER, _row(1, price="bad")])
    first = run_job(settings, D1)
    good = _rejects(db, first.run_id)["1"]["landing_row"]
    valid_row = 1 if good != 1 else 2  # a landing row of the run that was NOT quarantined
    six = ("MLA", "1", "18/11/2026", "BTC", "60000", "0.5")
    rows = [(first.run_id, good, *six, "ana", "ok"), (first.run_id, valid_row, *six, "ana", "x")]
    path = _write(tmp_path / "wrong.csv", rows)
    with pytest.raises(
        CorrectionsRefused,
        match=rf"wrong.csv:3: run {first.run_id} landing row {valid_row} is not a quarantine row of {D1}",
    ):
        replay(_opts(path), settings)
    assert db.execute("SELECT count(*) FROM dqm.bt_crypto_events_corrections").fetchone()[0] == 0
    # the CLI says so in one line, exit 2, and nothing runs
    runs_before = db.execute("SELECT count(*) FROM dqm.dq_runs").fetchone()[0]
    assert main(["--date", D1.isoformat(), "--corrections", str(path), "--master", "local[2]"]) == 2
    assert db.execute("SELECT count(*) FROM dqm.dq_runs").fetchone()[0] == runs_before


def test_every_change_of_a_prod_row_leads_to_its_run_and_landing_row(db, settings, spark):
    reference_prices(db, D1 - timedelta(days=6), D2 + timedelta(days=1))
    insert_rows(
        db, [*[_row(100 + k, "19/11/2026") for k in range(10)], _row(1)]
    )  # the 19th: in all three windows
    runs = [run_job(settings, D1)]
    db.execute(f"UPDATE {SOURCE} SET purchase_price = '61000' WHERE user_id = '1'")
    runs.append(run_job(settings, D2))
    db.execute(f"DELETE FROM {SOURCE} WHERE user_id = '1'")
    runs.append(run_job(settings, D2 + timedelta(days=1)))
    history = run_saved(db, "crypto_row_lineage", where={"site_id": "MLA", "user_id": 1})
    assert list(history["action"]) == ["deactivated", "updated", "inserted"]  # newest first
    assert list(history["run_id"].astype(str)) == [r.run_id for r in reversed(runs)]
    assert list(history["landed_purchase_price"]) == [None, "61000", "60000"]
    assert list(history["is_current_state"]) == [True, False, False]
    # every change of every run is traced, in the merge's transaction: lineage rows = the run's changes
    for r in runs:
        (traced,) = db.execute(
            "SELECT count(*) FROM dqm.bt_crypto_events_lineage WHERE run_id = %s", (r.run_id,)
        ).fetchone()
        c = r.counts
        assert (
            traced == c["rows_inserted"] + c["rows_updated"] + c["rows_reactivated"] + c["rows_deactivated"]
        )
