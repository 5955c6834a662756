"""Benchmark: a full window refresh by the crypto events job against two baselines, same rows, same run.

For each size (window rows), on the same simulated upstream table (`raw.bt_crypto_transaction_history` holding
just the window, so no baseline pays for history: bench/crypto_source_read.py measures that):
- ours: the Spark job (`jobs.crypto_events.run`: landing snapshot, rules, quarantine, GX gate, staging,
  one-transaction merge, reconciliation); the Spark session start is measured apart and excluded;
- copy: a bare COPY of the same raw rows into an UNLOGGED table: the floor for moving the rows;
- sql: a pure-SQL in-database refresh like the original project's: cast + compute + ON CONFLICT +
  deactivate inside PostgreSQL, with guards so that bad rows are skipped, but no per-row reasons,
  no conflicting-duplicate detection and no GX gate.
Each refresh starts from an empty prod table (first load); the re-run of the same date (steady state,
nothing changes) is reported too. Ends with `ratio_vs_sql_<rows>=X.XX` and `ratio_vs_copy_<rows>=Y.YY`
(our time divided by theirs).

    .venv/bin/python bench/crypto_refresh.py [--sizes 100000 1000000 4000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("POSTGRES_DB", "kpidelivery_bench")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

D = date(2026, 11, 20)

SQL_REFRESH = r"""
WITH src AS (
    SELECT r.ctid AS source_row, upper(btrim(r.site_id, ' ')) AS site_id, btrim(r.user_id, ' ') AS user_id,
           btrim(r.purchase_date, ' ') AS d, upper(btrim(r.crypto_type, ' ')) AS crypto_type,
           btrim(r.purchase_price, ' ') AS price, btrim(r.purchase_units, ' ') AS units
    FROM raw.bt_crypto_transaction_history r
), parts AS MATERIALIZED (
    SELECT s.*, CASE
        WHEN d ~ '^\d{4}-\d{2}-\d{2}$' THEN ARRAY[substr(d, 1, 4), substr(d, 6, 2), substr(d, 9, 2)]::int[]
        WHEN d ~ '^\d{1,2}/\d{1,2}/\d{4}$'
            THEN ARRAY[split_part(d, '/', 3), split_part(d, '/', 2), split_part(d, '/', 1)]::int[]
        WHEN d ~ '^\d{8}$' THEN ARRAY[substr(d, 1, 4), substr(d, 5, 2), substr(d, 7, 2)]::int[] END AS ymd
    FROM src s
), typed AS MATERIALIZED (
    SELECT p.source_row, p.site_id, p.crypto_type,
           CASE WHEN user_id ~ '^[+-]?\d{1,18}$' THEN user_id::bigint END AS user_id,
           CASE WHEN ymd[1] >= 1 AND ymd[2] BETWEEN 1 AND 12 AND ymd[3] BETWEEN 1 AND
                     extract(day FROM make_date(ymd[1], ymd[2], 1) + interval '1 month - 1 day')
                THEN make_date(ymd[1], ymd[2], ymd[3]) END AS purchase_date,
           CASE WHEN price ~ '^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$' AND abs(price::numeric) < 1e12
                THEN round(price::numeric, 8) END AS price,
           CASE WHEN units ~ '^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$' AND abs(units::numeric) < 1e14
                THEN round(units::numeric, 10) END AS units
    FROM parts p
), clean AS (
    SELECT DISTINCT ON (t.site_id, t.user_id, t.purchase_date, t.crypto_type)
           t.site_id, t.user_id, t.purchase_date, t.crypto_type, t.price, t.units,
           round(t.price * t.units, 8) AS value
    FROM typed t
    JOIN raw.crypto_reference_prices ref ON ref.price_date = t.purchase_date AND ref.crypto_type = t.crypto_type
    WHERE t.site_id = ANY(%(sites)s) AND t.user_id > 0 AND t.price > 0 AND t.units > 0
      AND t.purchase_date BETWEEN %(ws)s AND %(d)s AND t.price * t.units < 1e16
      AND t.price / ref.reference_price BETWEEN 1 / %(tol)s AND %(tol)s
    ORDER BY t.site_id, t.user_id, t.purchase_date, t.crypto_type, t.source_row
), upserted AS (
    INSERT INTO bench.bt_crypto_events_sql AS p
        (site_id, user_id, purchase_date, crypto_type, purchase_price, purchase_units, purchase_value,
         is_active, created_at, updated_at, deactivated_at, last_run_id)
    SELECT site_id, user_id, purchase_date, crypto_type, price, units, value, TRUE, now(), now(), NULL,
           %(run)s FROM clean
    ON CONFLICT (site_id, user_id, purchase_date, crypto_type) DO UPDATE SET
        purchase_price = EXCLUDED.purchase_price, purchase_units = EXCLUDED.purchase_units,
        purchase_value = EXCLUDED.purchase_value, is_active = TRUE, deactivated_at = NULL,
        updated_at = EXCLUDED.updated_at, last_run_id = EXCLUDED.last_run_id
    WHERE (p.purchase_price, p.purchase_units, p.purchase_value, p.is_active)
          IS DISTINCT FROM (EXCLUDED.purchase_price, EXCLUDED.purchase_units, EXCLUDED.purchase_value, TRUE)
    RETURNING 1
), gone AS (
    UPDATE bench.bt_crypto_events_sql p
    SET is_active = FALSE, deactivated_at = now(), updated_at = now(), last_run_id = %(run)s
    WHERE p.purchase_date BETWEEN %(ws)s AND %(d)s AND p.is_active
      AND NOT EXISTS (SELECT 1 FROM clean c WHERE (c.site_id, c.user_id, c.purchase_date, c.crypto_type)
                                              = (p.site_id, p.user_id, p.purchase_date, p.crypto_type))
    RETURNING 1
)
SELECT (SELECT count(*) FROM clean), (SELECT count(*) FROM upserted), (SELECT count(*) FROM gone)
"""


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 4_000_000], help="window rows"
    )
    args = parser.parse_args()

    import uuid

    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.postgres import connect, init_business_database
    from jobs.common.spark import build_session
    from jobs.crypto_events.__main__ import Options, run
    from jobs.crypto_events.generate import config_from_settings
    from jobs.crypto_events.upstream import advance

    setup_logging()
    settings = load_settings()
    pg, where = init_business_database(settings.postgres)
    print(f"# {where}; cores={os.cpu_count()}")
    session_s, _ = _timed(lambda: build_session("bench crypto_refresh", settings.spark))
    print(f"spark_session_start_s={session_s:.2f} (excluded from the job times)")

    crypto = settings.crypto
    ws, _ = crypto.window(D)
    figures = []
    with connect(pg, role="admin") as conn:  # the bench owns its scratch schema (DDL, TRUNCATE)
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench.bt_crypto_events_sql (LIKE prod.bt_crypto_events INCLUDING ALL)"
        )
        conn.execute(
            "CREATE UNLOGGED TABLE IF NOT EXISTS bench.copy_floor (site_id text, user_id text, purchase_date text, "
            "crypto_type text, purchase_price text, purchase_units text)"
        )
        for size in args.sizes:
            cfg = config_from_settings(
                crypto,
                events_per_day=max(1, round(size / crypto.window_days / 0.99)),
                defect_share=0.02,
                history_days=0,
            )
            for table in (
                "raw.bt_crypto_transaction_history",
                "raw.crypto_upstream_simulator",
                "raw.bt_crypto_landing",
                "prod.bt_crypto_events",
                "dqm.dq_runs",
                "bench.bt_crypto_events_sql",
                "bench.copy_floor",
                "dqm.bt_crypto_events_rejects",
                "staging.bt_crypto_events_candidate",
            ):
                conn.execute(f"TRUNCATE {table}")
            advance(conn, cfg, D)
            conn.execute("VACUUM ANALYZE raw.bt_crypto_transaction_history")
            raw_rows = conn.execute(
                "SELECT site_id, user_id, purchase_date, crypto_type, purchase_price, purchase_units "
                "FROM raw.bt_crypto_transaction_history"
            ).fetchall()
            rows = len(raw_rows)

            def copy_floor(rows=raw_rows):
                with (
                    conn.transaction(),
                    conn.cursor().copy(
                        "COPY bench.copy_floor (site_id, user_id, purchase_date, crypto_type, purchase_price, "
                        "purchase_units) FROM STDIN"
                    ) as copy,
                ):
                    for row in rows:
                        copy.write_row(row)

            copy_s, _ = _timed(copy_floor)

            def sql_refresh():
                params = {
                    "d": D,
                    "ws": ws,
                    "sites": list(crypto.known_sites),
                    "tol": crypto.price_tolerance,
                    "run": str(uuid.uuid4()),
                }
                with conn.transaction():
                    # compiling this statement with JIT costs more than it saves
                    conn.execute("SET LOCAL jit = off")
                    return conn.execute(SQL_REFRESH, params).fetchone()

            sql_s, sql_counts = _timed(sql_refresh)
            sql_rerun_s, _ = _timed(sql_refresh)

            ours_s, outcome = _timed(lambda: run(Options(D, None, None, "all", "bench"), settings))
            ours_rerun_s, _ = _timed(lambda: run(Options(D, None, None, "all", "bench"), settings))
            assert outcome.status == "merged", outcome.message
            print(
                f"\n## {rows} rows upstream (valid {outcome.counts['rows_valid']}, SQL baseline loaded {sql_counts[0]})\n"
                f"copy floor      {copy_s:7.2f} s  {rows / copy_s:>10,.0f} rows/s\n"
                f"pure-SQL        {sql_s:7.2f} s  {rows / sql_s:>10,.0f} rows/s   (re-run {sql_rerun_s:.2f} s)\n"
                f"ours (Spark)    {ours_s:7.2f} s  {rows / ours_s:>10,.0f} rows/s   (re-run {ours_rerun_s:.2f} s)"
            )
            figures.append((size, ours_s / sql_s, ours_s / copy_s))
    print()
    for size, vs_sql, vs_copy in figures:
        print(f"ratio_vs_sql_{size}={vs_sql:.2f}")
        print(f"ratio_vs_copy_{size}={vs_copy:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
