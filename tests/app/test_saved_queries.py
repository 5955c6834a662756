"""Every saved pgAdmin query in database/queries/ runs against a loaded database and returns rows, and
the checks they expose hold (the queries are what users open in pgAdmin and what the app runs)."""

from __future__ import annotations

import pytest

from jobs.common.queries import QUERIES_DIR, run_saved
from tests.served import CRYPTO_DAY, MODEL

pytestmark = pytest.mark.integration

QUERIES = sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))


@pytest.fixture(scope="module")
def conn(served, pg):
    from jobs.common.postgres import connect

    with connect(pg) as connection:
        yield connection


# empty on a database that the workflows loaded, by design; where their rows are tested instead
EMPTY_UNTIL_USED = {
    "crypto_corrections": "tests/integration/crypto_events/test_replay.py (a steward's corrections)"
}


def test_the_saved_queries_are_the_ones_users_need():
    assert {
        "crypto_run_history", "crypto_rejects_by_rule_and_day", "crypto_reconciliation",
        "crypto_prod_vs_source_window", "crypto_undatable_rows", "churn_top_risk", "churn_ingest_batches",
        "crypto_row_lineage", "crypto_corrections",
    } <= set(QUERIES)  # fmt: skip
    assert set(EMPTY_UNTIL_USED) <= set(QUERIES)


@pytest.mark.parametrize("name", QUERIES)
def test_every_saved_query_returns_rows(conn, name):
    rows = run_saved(conn, name)
    if name in EMPTY_UNTIL_USED:
        assert len(rows) == 0 and len(rows.columns) > 5  # it runs; its rows are tested where they exist
    else:
        assert len(rows) > 0, f"{name} returned no rows on a loaded database"


def test_a_saved_query_filtered_by_columns_keeps_only_their_rows(conn):
    every = run_saved(conn, "crypto_row_lineage")
    first = every.iloc[0]
    key = {c: first[c] for c in ("site_id", "user_id", "purchase_date", "crypto_type")}
    one = run_saved(conn, "crypto_row_lineage", where=key)
    assert len(one) == 1 and (one[list(key)].iloc[0] == first[list(key)]).all()
    assert len(run_saved(conn, "crypto_row_lineage", where={"site_id": "no'; DROP TABLE x; --"})) == 0


def test_reconciliation_holds_for_the_run(conn):
    rows = run_saved(conn, "crypto_reconciliation")
    run = rows[rows["logical_date"] == CRYPTO_DAY].iloc[0]
    assert run["status"] == "merged"
    assert (
        run["read_reconciled"]
        and run["merge_reconciled"]
        and run["quarantine_matches"]
        and run["landing_matches"]
    )
    assert run["rows_in_quarantine"] == run["rows_rejected"] > 0


def test_undatable_rows_are_listed_once_and_still_upstream(conn, served):
    rows = run_saved(conn, "crypto_undatable_rows")
    assert len(rows) == served["crypto"].counts["rows_unplaced"] > 0
    assert rows["still_upstream"].all()
    assert set(rows["quarantined_by_run_of"]) == {CRYPTO_DAY}


def test_prod_matches_the_source_window_after_the_merge(conn):
    rows = run_saved(conn, "crypto_prod_vs_source_window")
    assert set(rows["logical_date"]) == {CRYPTO_DAY}
    unexpected = rows[~rows["expected"] & (rows["keys"] > 0)]
    assert unexpected.empty, unexpected
    same = rows.loc[rows["outcome"] == "in both, same values", "keys"].iloc[0]
    assert same > 0


def test_top_risk_names_the_model_version_and_is_ordered(conn, served):
    rows = run_saved(conn, "churn_top_risk")
    assert len(rows) == 50
    assert set(rows["model_name"]) == {MODEL} and set(rows["model_version"]) == {served["version"]}
    assert list(rows["probability"]) == sorted(rows["probability"], reverse=True)
