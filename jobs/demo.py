"""`make demo`: both workflows end to end on the embedded default.

Crypto events: lands a few days of simulated upstream extracts and runs the validate-before-load job for
each logical date. Churn: generates the five source files, ingests them (GX gate), builds the Delta
feature snapshot, trains with HPO, registers in MLflow, promotes with aliases and batch-scores into
`prod.churn_scores`. One Spark session (`local[*]`); prints what it did and where to look.
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
    from jobs.common.postgres import open_business_database

    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--end", type=date.fromisoformat, default=date(2026, 11, 20), help="last logical date"
    )
    parser.add_argument("--days", type=int, default=3, help="number of daily runs")
    parser.add_argument("--only", choices=("all", "crypto", "churn"), default="all", help="which workflow")
    parser.add_argument("--customers", type=int, default=3000, help="churn: customers to generate")
    parser.add_argument(
        "--snapshot", type=date.fromisoformat, default=date(2026, 9, 1), help="churn: snapshot T"
    )
    args = parser.parse_args(argv)
    setup_logging()
    settings = load_settings()
    pg, where = open_business_database(settings.postgres)
    print(f"\n== {where}\n")
    ok = True
    if args.only in ("all", "crypto"):
        ok &= crypto_demo(args, settings, pg)
    if args.only in ("all", "churn"):
        ok &= churn_demo(args, settings, pg)
    return 0 if ok else 1


def crypto_demo(args, settings, pg) -> bool:
    from jobs.common.postgres import connect
    from jobs.crypto_events.__main__ import Options, run
    from jobs.crypto_events.generate import build_extract, config_from_settings, land_extract

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
    return all(r[1] == "merged" for r in rows)


def churn_demo(args, settings, pg) -> bool:
    from jobs.churn import build_features, ingest, promote, score_batch, train
    from jobs.churn.generate import ChurnGenConfig, generate, write

    source_dir = settings.churn.source_dir
    tables, truth, oracle = generate(ChurnGenConfig(customers=args.customers, snapshot=args.snapshot))
    write(source_dir, tables, truth, oracle)
    log.info("generated %d customers, %d payments in %s", args.customers, oracle["payments"], source_dir)
    batches = ingest.run(ingest.parse_args(["--as-of", args.snapshot.isoformat()]), settings)
    ref, features = build_features.run(
        build_features.parse_args(["--snapshot", args.snapshot.isoformat()]), settings
    )
    trained = train.run(train.parse_args([]), settings)
    decision = promote.run(promote.parse_args([]), settings)
    scores = score_batch.run(score_batch.parse_args([]), settings)

    print("\n== churn: ingested batches (dqm.churn_batches)")
    for b in batches:
        print(f"  {b.source:<17} {b.status:<8} {b.counts}")
    test = trained["test"]
    print(
        f"""
== churn: model
  feature snapshot  {ref.describe()}  ({features["customers"]} customers, churn rate {features.get("churn_rate")})
  best candidate    {trained["model_kind"]} {trained["params"]}
  test metrics      roc_auc {test["roc_auc"]:.4f}  pr_auc {test["pr_auc"]:.4f}  log_loss {test["log_loss"]:.4f}  \
brier {test["brier"]:.4f}  f1 {test["f1"]:.4f} @ {test["threshold"]:.3f}
  oracle AUC        {oracle["oracle_auc"]:.4f} (the generator's true probabilities)
  registered        {settings.mlflow.model_name} v{trained["version"]} -> alias challenger
  promotion         {"PROMOTED to production" if decision.promote else "kept as challenger"}: {decision.reason}
  batch scores      {scores["customers"]} customers with {scores["model"]} (production): {scores["bands"]}

== where to look (churn)
  SELECT * FROM dqm.churn_batches ORDER BY started_at DESC;
  SELECT risk_band, count(*), avg(probability) FROM prod.churn_scores GROUP BY 1;
  MLflow: mlflow ui --backend-store-uri {settings.mlflow.resolved_tracking_uri()}  (experiment {settings.mlflow.experiment})
  Delta feature table: {ref.path}
"""
    )
    return all(b.status == "loaded" for b in batches)


if __name__ == "__main__":
    sys.exit(main())
