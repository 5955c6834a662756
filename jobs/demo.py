"""`make demo`: the crypto events workflow end to end on the embedded default.

Lands a few days of simulated upstream extracts, runs the validate-before-load job for each logical
date (one Spark session, `local[*]`), then prints one line per run and where to look.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date, timedelta

log = logging.getLogger("jobs.demo")

SUMMARY = """SELECT logical_date, status, rows_read, rows_valid, rows_rejected, duplicates_collapsed,
       rows_inserted, rows_updated, rows_deactivated, rows_reactivated, keys_held, rows_unchanged
FROM dqm.dq_runs WHERE run_id = ANY(%s::uuid[]) ORDER BY started_at"""

HEADER = (
    "date",
    "status",
    "read",
    "valid",
    "rejected",
    "dups",
    "ins",
    "upd",
    "deact",
    "react",
    "held",
    "same",
)


def main(argv: list[str] | None = None) -> int:
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.postgres import connect, open_business_database
    from jobs.crypto_events.__main__ import Options, run
    from jobs.crypto_events.generate import build_extract, config_from_settings, land_extract

    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--end", type=date.fromisoformat, default=date(2026, 11, 20), help="last logical date"
    )
    parser.add_argument("--days", type=int, default=3, help="number of daily runs")
    args = parser.parse_args(argv)
    setup_logging()
    settings = load_settings()
    pg, where = open_business_database(settings.postgres)
    print(f"\n== {where}\n")
    cfg = config_from_settings(settings.crypto)
    dates = [args.end - timedelta(days=k) for k in range(args.days - 1, -1, -1)]
    run_ids = []
    with connect(pg) as conn:
        for d in dates:
            extract = build_extract(cfg, d)
            land_extract(conn, extract)
            log.info("landed the upstream extract of %s: %d rows", d, len(extract.rows))
            outcome = run(Options(d, None, None, "all", "demo"), settings)
            run_ids.append(outcome.run_id)
        rows = conn.execute(SUMMARY, (run_ids,)).fetchall()

    print("\n== crypto events runs (dqm.dq_runs)")
    print(" ".join(f"{h:>10}" for h in HEADER))
    for row in rows:
        print(" ".join(f"{v!s:>10}" for v in row))
    store = settings.object_store
    print(
        f"""
== where to look
  psql "host={pg.host} port={pg.port} user={pg.user} dbname={pg.db}"
    SELECT * FROM dqm.dq_runs ORDER BY started_at DESC;
    SELECT rule_codes, reason, raw_purchase_price FROM dqm.bt_crypto_events_rejects LIMIT 20;
    SELECT is_active, count(*) FROM prod.bt_crypto_events GROUP BY 1;
  GX results and Data Docs: {store.s3_endpoint_url or store.object_store_local_root}/{store.ge_artifacts_bucket}/crypto_events/
  Spark event logs: {settings.spark.event_log_dir}
"""
    )
    return 0 if all(r[1] == "merged" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
