"""The job on upstream's table exactly as the task defines it, and the run's landing snapshot.

The table is created with the original project's DDL (six columns, user_id BIGINT, NUMERIC price and units,
no timestamps, no index), holds dates written day-first without padding (1/2/2023 is 1 February) and in every
other accepted shape, and upstream edits and deletes rows between runs.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from jobs.common.config import CryptoSettings, load_settings
from jobs.common.postgres import apply_init_ddl
from tests.integration.helpers import SIX as SIX_COLUMNS
from tests.integration.helpers import SOURCE, insert_rows, prod_content, prod_rows, reference_prices, run_job

pytestmark = pytest.mark.integration

ORIGINAL_DDL = f"""CREATE TABLE {SOURCE} (
    site_id TEXT, user_id BIGINT, purchase_date TEXT, crypto_type TEXT, purchase_price NUMERIC, purchase_units NUMERIC)"""
SITES = ["ARGENTINA", "BRASIL", "MEXICO"]
PRICES = (("BTC", 20000.0), ("ETH", 1300.0), ("USDC", 1.0))
JAN = lambda day: date(2023, 1, day)  # noqa: E731

ROWS = [
    ("ARGENTINA", 100000, "1/1/2023", "BTC", 20000, 2),  # 1 January, unpadded day-first
    ("ARGENTINA", 100012, "1/1/2023", "BTC", 20010, 1.4),
    ("BRASIL", 200234, "1/1/2023", "BTC", 20200, 0.5),
    ("BRASIL", 200234, "1/2/2023", "ETH", 1200, 1.3),  # 1 FEBRUARY: another window's
    ("ARGENTINA", 105013, "2/1/2023", "USDC", 1, 4000),
    ("ARGENTINA", 116821, "2/1/2023", "ETH", 1350, 0.5),
    ("MEXICO", 143159, "03/01/2023", "BTC", 19983, 5),  # padded
    ("MEXICO", 132169, "2023-01-04", "ETH", 1246, 1.2),  # ISO
    ("BRASIL", 150000, "20230105", "BTC", 20100.5, 0.25),  # compact
    ("ARGENTINA", 160000, "14/1/2023", "BTC", 20000, 1),  # 14 January: a later window's
    ("MEXICO", 170000, "31/12/2022", "ETH", 1300, 2),  # before the first window
    ("ARGENTINA", 180000, "yesterday", "BTC", 20000, 1),  # no window can hold these two
    ("BRASIL", 190000, "31/2/2023", "ETH", 1300, 1),
    *[("ARGENTINA", 300000 + k, "3/1/2023", "USDC", 1, 100 + k) for k in range(8)],  # filler
]


@pytest.fixture
def task_table(db, admin_db, pg):
    """The source table recreated (by the admin: DDL) with the original DDL for one test, our own one back
    afterwards. Init is applied again in between, as `make init` would: it grants the loader its rows."""
    admin_db.execute(f"DROP TABLE {SOURCE}")
    admin_db.execute(ORIGINAL_DDL)
    apply_init_ddl(pg)
    yield db
    admin_db.execute(f"DROP TABLE {SOURCE}")
    apply_init_ddl(pg)


@pytest.fixture
def task_settings():
    settings = load_settings()
    settings.crypto = CryptoSettings(known_sites=SITES)
    return settings


def _active(db) -> dict[tuple, tuple]:
    return {
        k: (r["purchase_price"], r["purchase_units"], r["purchase_value"])
        for k, r in prod_rows(db).items()
        if r["is_active"]
    }


def _quarantined(db, text: str) -> list[tuple]:
    return db.execute(
        "SELECT r.scope, r.rule_codes, d.logical_date FROM dqm.bt_crypto_events_rejects r "
        "JOIN dqm.dq_runs d USING (run_id) WHERE r.raw_purchase_date = %s",
        (text,),
    ).fetchall()


def test_the_tasks_table_as_it_is_run_after_run(task_table, task_settings, spark):
    db, settings = task_table, task_settings
    reference_prices(db, date(2022, 12, 20), date(2023, 2, 10), PRICES)
    insert_rows(db, ROWS, SOURCE)

    # run 1, 5 January: the window 1..5 January, read from every date shape
    out = run_job(settings, JAN(5))
    assert out.status == "merged", out.message
    assert (out.counts["rows_read"], out.counts["rows_rejected"], out.counts["rows_unplaced"]) == (18, 2, 2)
    assert _active(db) == {
        ("ARGENTINA", 100000, JAN(1), "BTC"): (Decimal("20000.00000000"), Decimal("2.0000000000"), Decimal("40000.00000000")),
        ("ARGENTINA", 100012, JAN(1), "BTC"): (Decimal("20010.00000000"), Decimal("1.4000000000"), Decimal("28014.00000000")),
        ("BRASIL", 200234, JAN(1), "BTC"): (Decimal("20200.00000000"), Decimal("0.5000000000"), Decimal("10100.00000000")),
        ("ARGENTINA", 105013, JAN(2), "USDC"): (Decimal("1.00000000"), Decimal("4000.0000000000"), Decimal("4000.00000000")),
        ("ARGENTINA", 116821, JAN(2), "ETH"): (Decimal("1350.00000000"), Decimal("0.5000000000"), Decimal("675.00000000")),
        ("MEXICO", 143159, JAN(3), "BTC"): (Decimal("19983.00000000"), Decimal("5.0000000000"), Decimal("99915.00000000")),
        ("MEXICO", 132169, JAN(4), "ETH"): (Decimal("1246.00000000"), Decimal("1.2000000000"), Decimal("1495.20000000")),
        ("BRASIL", 150000, JAN(5), "BTC"): (Decimal("20100.50000000"), Decimal("0.2500000000"), Decimal("5025.12500000")),
        **{
            ("ARGENTINA", 300000 + k, JAN(3), "USDC"): (Decimal("1.00000000"), Decimal(f"{100 + k}.0000000000"), Decimal(f"{100 + k}.00000000"))
            for k in range(8)
        },
    }  # fmt: skip
    assert _quarantined(db, "yesterday") == [("unplaced", ["DATE_UNPARSEABLE"], JAN(5))]
    assert _quarantined(db, "31/2/2023") == [("unplaced", ["DATE_IMPOSSIBLE"], JAN(5))]
    (timestamps,) = db.execute(
        "SELECT count(*) FROM raw.bt_crypto_landing WHERE run_id = %s AND source_inserted_at IS NULL",
        (out.run_id,),
    ).fetchone()
    assert timestamps == 18  # the table has no inserted_at/updated_at: none needed

    # upstream edits and deletes in place, adds a row of the 6th and a new garbage row
    db.execute(f"UPDATE {SOURCE} SET purchase_price = 1400 WHERE user_id = 116821")
    db.execute(f"DELETE FROM {SOURCE} WHERE user_id = 143159")
    insert_rows(
        db, [("MEXICO", 400000, "6/1/2023", "BTC", 20050, 2), ("MEXICO", 400001, "6/13/2023", "BTC", 1, 1)]
    )
    before, first_active = prod_rows(db), _active(db)
    out = run_job(settings, JAN(6))
    c = out.counts
    assert (c["rows_inserted"], c["rows_updated"], c["rows_deactivated"], c["rows_unplaced"]) == (1, 1, 1, 1)
    expected = {k: v for k, v in first_active.items() if k != ("MEXICO", 143159, JAN(3), "BTC")}
    expected[("ARGENTINA", 116821, JAN(2), "ETH")] = (
        Decimal("1400.00000000"), Decimal("0.5000000000"), Decimal("700.00000000"),
    )  # fmt: skip
    expected[("MEXICO", 400000, JAN(6), "BTC")] = (
        Decimal("20050.00000000"), Decimal("2.0000000000"), Decimal("40100.00000000"),
    )  # fmt: skip
    assert _active(db) == expected  # exactly: edited in place, deleted, added
    after = prod_rows(db)
    assert not after[("MEXICO", 143159, JAN(3), "BTC")]["is_active"]
    for key in [k for k in before if k[2] == JAN(1)]:  # 1 January left the window: untouched
        assert after[key] == before[key]
    assert _quarantined(db, "6/13/2023") == [("unplaced", ["DATE_IMPOSSIBLE"], JAN(6))]

    # more runs: the garbage stays quarantined exactly once
    run_job(settings, JAN(7))
    run_job(settings, JAN(7))
    assert len(_quarantined(db, "yesterday")) == len(_quarantined(db, "31/2/2023")) == 1

    # a backfill of 1 January reads that window's CURRENT state: 31/12/2022 now, and 1 January
    out = run_job(settings, JAN(1))
    assert (out.counts["rows_inserted"], out.counts["rows_unchanged"]) == (1, 3)
    assert prod_rows(db)[("MEXICO", 170000, date(2022, 12, 31), "ETH")]["is_active"]

    # 1/2/2023 is 1 February: its own window reads it, 14/1 stays out of it
    out = run_job(settings, date(2023, 2, 3))
    assert out.counts["rows_inserted"] == 1
    assert ("BRASIL", 200234, date(2023, 2, 1), "ETH") in _active(db)
    assert ("ARGENTINA", 160000, JAN(14), "BTC") not in prod_rows(db)


def test_a_run_is_reproduced_from_its_landing_after_upstream_moved_on(db, settings, spark):
    reference_prices(db, date(2026, 11, 10), date(2026, 11, 20))
    rows = [("MLA", str(u), f"{16 + u % 5}/11/2026", "BTC", "60000", f"0.{u}") for u in range(1, 30)]
    insert_rows(
        db,
        [*rows, ("MLA", "77", "2026/11/18", "BTC", "1", "1"), ("MLB", "x", "18/11/2026", "ETH", "3000", "1")],
    )
    original = run_job(settings, date(2026, 11, 20))
    content = prod_content(db)
    candidates = db.execute(
        "SELECT site_id, user_id, purchase_date, purchase_value FROM staging.bt_crypto_events_candidate "
        "WHERE run_id = %s ORDER BY 1, 2, 3",
        (original.run_id,),
    ).fetchall()

    db.execute("UPDATE raw.bt_crypto_transaction_history SET purchase_price = '61000'")  # upstream moved on
    db.execute("DELETE FROM raw.bt_crypto_transaction_history WHERE user_id = '5'")
    db.execute("DELETE FROM prod.bt_crypto_events")
    again = run_job(settings, None, reproduce=original.run_id)

    assert again.status == "merged"
    keep = (
        "rows_read",
        "rows_valid",
        "rows_rejected",
        "duplicates_collapsed",
        "rows_unplaced",
        "rejects_by_rule",
    )
    assert {k: again.counts[k] for k in keep} == {k: original.counts[k] for k in keep}
    assert prod_content(db) == content  # the same prod as the original run made from an empty prod
    assert (
        db.execute(
            "SELECT site_id, user_id, purchase_date, purchase_value FROM staging.bt_crypto_events_candidate "
            "WHERE run_id = %s ORDER BY 1, 2, 3",
            (again.run_id,),
        ).fetchall()
        == candidates
    )
    record = db.execute(
        "SELECT logical_date, reproduces_run_id::text, source FROM dqm.dq_runs WHERE run_id = %s",
        (again.run_id,),
    ).fetchone()
    assert record == (date(2026, 11, 20), original.run_id, f"raw.bt_crypto_landing of run {original.run_id}")
    rejects = "SELECT rule_codes, raw_user_id, raw_purchase_date FROM dqm.bt_crypto_events_rejects WHERE run_id = %s ORDER BY 2"
    assert (
        db.execute(rejects, (again.run_id,)).fetchall() == db.execute(rejects, (original.run_id,)).fetchall()
    )


def test_landing_is_pruned_after_its_retention_and_a_pruned_run_cannot_be_reproduced(
    db, settings, spark, capsys
):
    from jobs.crypto_events.__main__ import main

    reference_prices(db, date(2026, 11, 10), date(2026, 11, 20))
    insert_rows(db, [("MLA", str(u), "18/11/2026", "BTC", "60000", "1") for u in range(1, 6)])
    old = run_job(settings, date(2026, 11, 19))
    db.execute(
        "UPDATE dqm.dq_runs SET started_at = now() - interval '36 days' WHERE run_id = %s", (old.run_id,)
    )
    run_job(settings, date(2026, 11, 20))
    (left,) = db.execute(
        "SELECT count(*) FROM raw.bt_crypto_landing WHERE run_id = %s", (old.run_id,)
    ).fetchone()
    assert left == 0
    assert main(["--reproduce", old.run_id, "--master", "local[2]"]) == 2
    assert main(["--reproduce", "00000000-0000-0000-0000-000000000000"]) == 2


def test_a_source_without_the_tasks_columns_is_a_clear_error(db, admin_db, pg, settings):
    from jobs.crypto_events.__main__ import BadInput

    admin_db.execute(f"ALTER TABLE {SOURCE} RENAME COLUMN purchase_units TO units")
    try:
        with pytest.raises(BadInput, match=r"lacks the task's columns \['purchase_units'\]"):
            run_job(settings, date(2026, 11, 20))
    finally:
        admin_db.execute(f"ALTER TABLE {SOURCE} RENAME COLUMN units TO purchase_units")


def test_init_ddl_upgrades_a_first_release_database_in_place(pg, spark, tmp_path):
    """Extracts kept under another name, the upstream table given its name back, the quarantine re-keyed by
    run, prod and the run history untouched; and the job runs on the upgraded database."""
    from psycopg import sql

    from jobs.common.config import PostgresSettings
    from jobs.common.postgres import connect
    from tests.integration.helpers import database_of_an_older_version

    scratch = database_of_an_older_version(
        pg, tmp_path, "crypto_upgrade", {"10_crypto.sql": "10_crypto_first_release.sql"}
    )
    run = "00000000-0000-4000-8000-000000000001"
    with connect(scratch) as conn:
        conn.execute(
            "INSERT INTO raw.bt_crypto_transaction_history (extract_date, source_row, site_id, user_id, "
            "purchase_date, crypto_type, purchase_price, purchase_units, batch_id, source, row_hash) "
            "VALUES ('2026-11-18', 1, 'MLA', '7', '2026-11-18', 'BTC', '60000', '1', 'b', 'generator', 'h')"
        )
        conn.execute(
            "INSERT INTO dqm.dq_runs (run_id, pipeline, logical_date, window_start, window_end, status, rows_read, "
            "rows_valid, rows_rejected, duplicates_collapsed) "
            "VALUES (%s, 'crypto_events', '2026-11-18', '2026-11-14', '2026-11-18', 'merged', 2, 1, 1, 0)",
            (run,),
        )
        conn.execute(
            "INSERT INTO dqm.bt_crypto_events_rejects (logical_date, source_row, run_id, rule_codes, reason, "
            "raw_user_id, row_hash) VALUES ('2026-11-18', 2, %s, '{USER_ID_INVALID}', 'r', 'abc', 'h2')",
            (run,),
        )
        conn.execute(
            "INSERT INTO prod.bt_crypto_events VALUES ('MLA', 7, '2026-11-18', 'BTC', 60000, 1, 60000, TRUE, "
            "'2026-11-18 09:00+00', '2026-11-18 09:00+00', NULL, %s)",
            (run,),
        )
        prod_before = prod_rows(conn)

    apply_init_ddl(scratch)  # the new DDL, as every start applies it
    apply_init_ddl(scratch)  # and again: nothing changes the second time

    with connect(scratch) as conn:
        assert conn.execute("SELECT source_row, user_id FROM raw.bt_crypto_extracts_v1").fetchall() == [
            (1, "7")
        ]
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' "
                "AND table_name = 'bt_crypto_transaction_history' ORDER BY ordinal_position"
            ).fetchall()
        ]
        assert columns == [*SIX_COLUMNS, "inserted_at", "updated_at"]
        assert conn.execute(
            "SELECT landing_row, scope, rule_codes, raw_user_id FROM dqm.bt_crypto_events_rejects WHERE run_id = %s",
            (run,),
        ).fetchall() == [(2, "window", ["USER_ID_INVALID"], "abc")]
        (key,) = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'bt_crypto_events_rejects_pkey'"
        ).fetchone()
        assert key == "PRIMARY KEY (run_id, landing_row)"
        assert conn.execute(
            "SELECT status, rows_read, source FROM dqm.dq_runs WHERE run_id = %s", (run,)
        ).fetchone() == ("merged", 2, None)
        assert prod_rows(conn) == prod_before
        insert_rows(conn, [("MLA", "8", "19/11/2026", "BTC", "60000", "2")])
        reference_prices(conn, date(2026, 11, 15), date(2026, 11, 19))

    settings = load_settings()
    settings.postgres = PostgresSettings(db=scratch.db, embedded="never")
    out = run_job(settings, date(2026, 11, 19))
    assert (out.status, out.counts["rows_inserted"], out.counts["rows_unchanged"]) == ("merged", 1, 0)
    with connect(scratch) as conn:
        after = prod_rows(conn)
    assert after[("MLA", 7, date(2026, 11, 18), "BTC")]["is_active"] is False  # gone upstream: deactivated
    assert after[("MLA", 8, date(2026, 11, 19), "BTC")]["purchase_value"] == Decimal("120000.00000000")
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch.db)))
