"""Benchmark: reading a run's window from upstream's history table as the history grows.

The same 1M window rows (five days, dates in every accepted shape, 0.1% of them undatable) sit in a history of
1M (the window alone), 10M and 20M rows (two years of earlier days, in every shape too). The history holds no
undatable row: in the steady state the first run that saw them has quarantined them once, so a run lands only
its window's. For each size, what a run does before Spark judges anything (`jobs.crypto_events.__main__.land`):
- find: walk the distinct date texts on the index of `purchase_date` and place them with the rules' parse
  (Spark): the part that could grow with the history;
- copy: one INSERT ... SELECT of the window's rows (and the undatable ones) into the landing table, with the
  row hash: the part that grows with the window;
- full parse: the naive way, Spark reads the WHOLE table over JDBC (8 parallel block ranges, every column)
  and keeps the rows whose parsed date is in the window (the same parse), without writing them anywhere.
Ends with `find_growth_10m_to_20m`, `ours_growth_10m_to_20m` (ours = find + copy, at 20M / at 10M; 1.00 = flat),
`full_parse_growth_10m_to_20m` and `ratio_ours_vs_full_parse_20m`.

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
       CASE WHEN %(undatable)s AND g %% 1000 = 7 THEN (ARRAY['yesterday', '31/2/2026', '', '1/1/1926'])[1 + (g / 1000) %% 4]
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


def _ours(conn, spark, crypto) -> tuple[float, float, int, int]:
    """(find seconds, copy seconds, window rows, undatable rows) of one landing, rolled back afterwards."""
    from jobs.crypto_events import source
    from jobs.crypto_events.__main__ import Plan, place_texts

    table = source.describe_source(conn, crypto.source_table)
    assert table.indexed
    plan = Plan(D, crypto.window(D), crypto.date_bounds(D, D), table.name, table)
    run_id = str(uuid.uuid4())
    with conn.transaction():  # as `land` does it
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        find_s, (window, unplaced) = _timed(lambda: place_texts(conn, spark, plan, crypto.date_formats))
        copy_s, landed = _timed(lambda: source.land_snapshot(conn, run_id, table, window, unplaced))
    conn.execute("DELETE FROM raw.bt_crypto_landing WHERE run_id = %s", (run_id,))
    return find_s, copy_s, landed.window, landed.unplaced


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
        every_column = F.length(F.concat_ws("|", *[F.col(c) for c in df.columns]))  # no column pruned
        kept = df.where(day.between(F.lit(ws), F.lit(we))).agg(F.count("*"), F.sum(every_column)).first()
        return kept[0]

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
    from jobs.common.postgres import connect, init_business_database
    from jobs.common.spark import build_session

    setup_logging()
    settings = load_settings()
    crypto = settings.crypto
    pg, where = init_business_database(settings.postgres)
    print(f"# {where}; cores={os.cpu_count()}")
    spark = build_session("bench crypto_source_read", settings.spark, "local[2]")
    ws, we = crypto.window(D)
    figures: dict[int, tuple[float, float, float | None]] = {}
    with connect(pg, role="admin") as conn:  # TRUNCATE: set-up, not the measured job
        conn.execute(
            "TRUNCATE raw.bt_crypto_transaction_history, raw.bt_crypto_landing, raw.crypto_upstream_simulator"
        )
        built, t_build = 0, time.perf_counter()
        window_days = (we - ws).days + 1
        conn.execute(
            INSERT, {"lo": 1, "hi": args.window, "first": ws, "days": window_days, "undatable": True}
        )
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
                        "undatable": False,
                    },
                )
                built = size
            conn.execute("VACUUM ANALYZE raw.bt_crypto_transaction_history")
            print(f"\n## {size:,} rows upstream (built in {time.perf_counter() - t_build:.0f} s so far)")
            _ours(conn, spark, crypto)  # warm: the first Spark job and the page cache
            ours = [_ours(conn, spark, crypto) for _ in range(3)]
            find, copy = min(o[0] for o in ours), min(o[1] for o in ours)
            (distinct,) = conn.execute(
                "SELECT count(DISTINCT purchase_date) FROM raw.bt_crypto_transaction_history"
            ).fetchone()
            print(
                f"find        {find:7.2f} s   copy {copy:6.2f} s   (best of 3 each; {distinct:,} distinct date texts; "
                f"{ours[0][2]:,} window rows + {ours[0][3]:,} undatable landed)"
            )
            full = None
            if not args.skip_full_parse_above or size <= args.skip_full_parse_above:
                full, kept = _full_parse(conn, spark, pg, crypto)
                print(f"full parse  {full:7.2f} s ({kept:,} rows of the window kept of {size:,} parsed)")
            figures[size] = (find, copy, full)
    spark.stop()

    print()
    for size, (find, copy, full) in figures.items():
        label = f"{size / 1e6:g}m".replace(".", "_")
        print(f"find_s_{label}={find:.2f}")
        print(f"copy_s_{label}={copy:.2f}")
        print(f"ours_s_{label}={find + copy:.2f}")
        if full is not None:
            print(f"full_parse_s_{label}={full:.2f}")
    if 10_000_000 in figures and 20_000_000 in figures:
        (f10, c10, p10), (f20, c20, p20) = figures[10_000_000], figures[20_000_000]
        print(f"find_growth_10m_to_20m={f20 / f10:.2f}")
        print(f"ours_growth_10m_to_20m={(f20 + c20) / (f10 + c10):.2f}")
        if p10 and p20:
            print(f"full_parse_growth_10m_to_20m={p20 / p10:.2f}")
            print(f"ratio_ours_vs_full_parse_20m={(f20 + c20) / p20:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
