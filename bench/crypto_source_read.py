"""Benchmark: reading a run's window from upstream's history table as the history grows.

The same 1M window rows (five days, dates in every accepted shape, 0.1% undatable texts) sit in a history of
1M (the window alone), 10M and 20M rows (two years of earlier days). For each size:
- ours: what a run does before Spark judges anything (`jobs.crypto_events.__main__.land`): walk the distinct
  date texts on the index of `purchase_date`, place them with the rules' parse (Spark), copy the window's rows
  and the undatable ones into the landing table, in one transaction;
- full parse: the naive way, Spark reads the WHOLE table over JDBC (8 parallel block ranges) and keeps the rows
  whose parsed date is in the window (the same parse): what "a full parse of the history per run" costs.
Ends with `ours_growth_10m_to_20m=X.XX` (ours at 20M / ours at 10M; 1.00 = flat), `full_parse_growth_10m_to_20m`
and `ratio_ours_vs_full_parse_20m` (ours / full parse at 20M rows).

    .venv/bin/python bench/crypto_source_read.py [--window 1000000] [--sizes 1000000 10000000 20000000]

Takes ~10 minutes and ~4 GB of disk in its own database (kpidelivery_bench); run it alone on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("POSTGRES_DB", "kpidelivery_bench")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

D = date(2026, 11, 20)
HISTORY_DAYS = 730
# rows numbered from `lo` to `hi`: the date of row g is day `first + g % days`, written in one of four shapes
INSERT = """
INSERT INTO raw.bt_crypto_transaction_history (site_id, user_id, purchase_date, crypto_type, purchase_price,
    purchase_units)
SELECT (ARRAY['MLA', 'MLB', 'MLC', 'MCO'])[1 + g %% 4], g::text,
       CASE WHEN g %% 1000 = 7 THEN (ARRAY['yesterday', '31/2/2026', '', '1/1/1926'])[1 + (g / 1000) %% 4]
            ELSE CASE (g / 7) %% 4 WHEN 0 THEN to_char(d, 'DD/MM/YYYY') WHEN 1 THEN to_char(d, 'YYYY-MM-DD')
                            WHEN 2 THEN to_char(d, 'YYYYMMDD') ELSE to_char(d, 'FMDD/FMMM/YYYY') END END,
       (ARRAY['BTC', 'ETH', 'USDT'])[1 + g %% 3], '60000.5', '0.0125'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
CROSS JOIN LATERAL (SELECT %(first)s::date + (g %% %(days)s)::int AS d) AS day
"""


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _ours(conn, spark, crypto) -> tuple[float, int, int]:
    from jobs.crypto_events import source
    from jobs.crypto_events.__main__ import Plan, land

    table = source.describe_source(conn, crypto.source_table)
    assert table.indexed
    plan = Plan(D, crypto.window(D), crypto.date_bounds(D, D), table.name, table)
    run_id = str(uuid.uuid4())
    seconds, landed = _timed(lambda: land(conn, spark, run_id, plan, crypto.date_formats))
    conn.execute("DELETE FROM raw.bt_crypto_landing WHERE run_id = %s", (run_id,))
    return seconds, landed.window, landed.unplaced


def _full_parse(conn, spark, pg, crypto) -> tuple[float, int]:
    from pyspark.sql import functions as F

    from jobs.common.dates import parse_date_column
    from jobs.crypto_events.transform import normalised_text

    (blocks,) = conn.execute(
        "SELECT pg_relation_size('raw.bt_crypto_transaction_history') / current_setting('block_size')::int"
    ).fetchone()
    step = -(-(blocks + 1) // 8)
    predicates = [f"ctid >= '({i * step},0)' AND ctid < '({(i + 1) * step},0)'" for i in range(8)]
    ws, we = crypto.window(D)

    def read() -> int:
        df = spark.read.jdbc(
            pg.jdbc_url(), "raw.bt_crypto_transaction_history", predicates=predicates,
            properties={**pg.jdbc_properties(), "fetchsize": "20000"},
        )  # fmt: skip
        _, day = parse_date_column(normalised_text(F.col("purchase_date")), crypto.date_formats)
        return df.where(day.between(F.lit(ws), F.lit(we))).count()

    return _timed(read)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=int, default=1_000_000, help="rows in the window (five days)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 20_000_000], help="rows in the table"
    )
    parser.add_argument("--skip-full-parse-above", type=int, default=0, help="(0: measure it at every size)")
    args = parser.parse_args()
    if sorted(args.sizes) != args.sizes or args.sizes[0] < args.window:
        parser.error("--sizes must be increasing and at least --window")

    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.postgres import connect, open_business_database
    from jobs.common.spark import build_session

    setup_logging()
    settings = load_settings()
    crypto = settings.crypto
    pg, where = open_business_database(settings.postgres)
    print(f"# {where}; cores={os.cpu_count()}")
    spark = build_session("bench crypto_source_read", settings.spark, "local[2]")
    ws, we = crypto.window(D)
    figures: dict[int, tuple[float, float | None]] = {}
    with connect(pg) as conn:
        conn.execute(
            "TRUNCATE raw.bt_crypto_transaction_history, raw.bt_crypto_landing, raw.crypto_upstream_simulator"
        )
        built, t_build = 0, time.perf_counter()
        conn.execute(INSERT, {"lo": 1, "hi": args.window, "first": ws, "days": (we - ws).days + 1})
        built = args.window
        for size in args.sizes:
            if size > built:  # history: the two years before the window
                conn.execute(
                    INSERT,
                    {
                        "lo": built + 1,
                        "hi": size,
                        "first": ws - timedelta(days=HISTORY_DAYS),
                        "days": HISTORY_DAYS,
                    },
                )
                built = size
            conn.execute("VACUUM ANALYZE raw.bt_crypto_transaction_history")
            print(f"\n## {size:,} rows upstream (built in {time.perf_counter() - t_build:.0f} s so far)")
            _ours(conn, spark, crypto)  # warm: the first Spark job and the page cache
            ours = [_ours(conn, spark, crypto) for _ in range(3)]
            best = min(s for s, _, _ in ours)
            (distinct,) = conn.execute(
                "SELECT count(DISTINCT purchase_date) FROM raw.bt_crypto_transaction_history"
            ).fetchone()
            print(
                f"ours        {best:7.2f} s (best of 3: {', '.join(f'{s:.2f}' for s, _, _ in ours)}); "
                f"{ours[0][1]:,} window rows + {ours[0][2]:,} undatable landed; {distinct:,} distinct date texts"
            )
            full = None
            if not args.skip_full_parse_above or size <= args.skip_full_parse_above:
                full, kept = _full_parse(conn, spark, pg, crypto)
                print(f"full parse  {full:7.2f} s ({kept:,} rows of the window kept of {size:,} parsed)")
            figures[size] = (best, full)
    spark.stop()

    print()
    for size, (best, full) in figures.items():
        label = f"{size / 1e6:g}m".replace(".", "_")
        print(f"ours_s_{label}={best:.2f}")
        if full is not None:
            print(f"full_parse_s_{label}={full:.2f}")
    if 10_000_000 in figures and 20_000_000 in figures:
        (o10, f10), (o20, f20) = figures[10_000_000], figures[20_000_000]
        print(f"ours_growth_10m_to_20m={o20 / o10:.2f}")
        if f10 and f20:
            print(f"full_parse_growth_10m_to_20m={f20 / f10:.2f}")
            print(f"ratio_ours_vs_full_parse_20m={o20 / f20:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
