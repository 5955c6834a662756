"""`make demo`: both workflows end to end on the embedded default, through the real DAG files.

Each DAG runs in Airflow's in-process runner (`airflow dags test`, SQLite metadata under var/airflow-demo),
its Spark steps through spark-submit on `local[2]`. Crypto events: `crypto_events_dag` for a few logical
dates (the simulator plays upstream on `raw.bt_crypto_transaction_history` -> snapshot of the window into the
run's landing -> validate + quarantine + GX gate -> merge -> reconcile).
Churn: the five source files are generated, then `churn_training_dag` ingests them (GX gate), builds the
Delta feature snapshot, trains with HPO, registers in MLflow, promotes with aliases and batch-scores into
`prod.churn_scores`; then `churn_drift_monitor_w` compares the snapshot with the production model's training
data (Evidently) and publishes its report. Prints what it did and where to look.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import date, timedelta

from jobs.churn.simulate.generate import DEFAULT_SNAPSHOT

log = logging.getLogger("jobs.demo")

SUMMARY = """SELECT DISTINCT ON (logical_date) logical_date, status, rows_read, rows_unplaced, rows_valid,
       rows_rejected, duplicates_collapsed, rows_inserted, rows_updated, rows_deactivated, rows_reactivated, keys_held,
       rows_unchanged
FROM dqm.dq_runs WHERE logical_date = ANY(%s::date[]) ORDER BY logical_date, started_at DESC"""

HEADER = (
    "date",
    "status",
    "read",
    "undatable",
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--end", type=date.fromisoformat, default=date(2026, 11, 20), help="last logical date"
    )
    parser.add_argument("--days", type=int, default=2, help="number of daily runs")
    parser.add_argument("--only", choices=("all", "crypto", "churn"), default="all", help="which workflow")
    parser.add_argument("--customers", type=int, default=3000, help="churn: customers to generate")
    parser.add_argument(
        "--snapshot", type=date.fromisoformat, default=DEFAULT_SNAPSHOT, help="churn: snapshot T"
    )
    return parser.parse_args(argv)


def demo(args: argparse.Namespace, settings) -> bool:
    from jobs.common.config import PROJECT_ROOT
    from jobs.common.orchestration import in_process_env
    from jobs.common.postgres import init_business_database

    pg, where = init_business_database(settings.postgres)  # the demo is also its own `make init`
    print(f"\n== {where}\n")
    env = {**in_process_env(PROJECT_ROOT / "var" / "airflow-demo"), "POSTGRES_HOST": pg.host,
           "POSTGRES_PORT": str(pg.port), "POSTGRES_EMBEDDED": "never"}  # fmt: skip
    ok = True
    if args.only in ("all", "crypto"):
        ok &= crypto_demo(args, settings, pg, env)
    if args.only in ("all", "churn"):
        ok &= churn_demo(args, settings, pg, env)
    return ok


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import EXIT_FAILED, EXIT_OK, run_cli

    return run_cli(argv, parse_args, demo, lambda ok: EXIT_OK if ok else EXIT_FAILED)


def run_dag(dag_id: str, logical_date: date, env: dict[str, str], conf: dict | None = None) -> bool:
    from jobs.common.orchestration import run_dag_in_process

    began = time.monotonic()
    log.info("running %s for %s through Airflow's in-process runner ...", dag_id, logical_date)
    run = run_dag_in_process(dag_id, logical_date.isoformat(), env, conf)
    seconds = time.monotonic() - began
    if run.returncode != 0:
        print(f"{dag_id} {logical_date} FAILED after {seconds:.0f} s:\n{(run.stdout + run.stderr)[-4000:]}")
        return False
    log.info("%s %s: success in %.0f s", dag_id, logical_date, seconds)
    return True


def crypto_demo(args, settings, pg, env) -> bool:
    from jobs.common.postgres import connect

    dates = [args.end - timedelta(days=k) for k in range(args.days - 1, -1, -1)]
    if not all(run_dag("crypto_events_dag", d, env) for d in dates):
        return False
    with connect(pg) as conn:
        rows = conn.execute(SUMMARY, (dates,)).fetchall()

    print("\n== crypto events runs (dqm.dq_runs)")
    print(" ".join(f"{h:>10}" for h in HEADER))
    for row in rows:
        print(" ".join(f"{v!s:>10}" for v in row))
    store = settings.object_store
    print(
        f"""
== where to look
  psql "host={pg.host} port={pg.port} user={pg.analyst_user} dbname={pg.db}"   # read-only
    SELECT * FROM dqm.dq_runs ORDER BY started_at DESC;
    SELECT purchase_date, count(*) FROM raw.bt_crypto_transaction_history GROUP BY 1 ORDER BY 2 DESC;
    SELECT scope, count(*) FROM raw.bt_crypto_landing GROUP BY 1;   -- what each run read, by run_id
    SELECT rule_codes, reason, raw_purchase_date, raw_purchase_price FROM dqm.bt_crypto_events_rejects LIMIT 20;
    SELECT is_active, count(*) FROM prod.bt_crypto_events GROUP BY 1;
  GX results and Data Docs: {store.s3_endpoint_url or store.object_store_local_root}/{store.ge_artifacts_bucket}/crypto_events/
  Spark event logs: {settings.spark.event_log_dir}
  Airflow task logs: var/airflow-demo/logs/dag_id=crypto_events_dag/
"""
    )
    return all(r[1] == "merged" for r in rows)


def churn_demo(args, settings, pg, env) -> bool:
    from jobs.churn.deployment.io import configure, version_by_alias
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write
    from jobs.common.postgres import connect

    source_dir = settings.churn.source_dir
    tables, truth, oracle = generate(ChurnGenConfig(customers=args.customers, snapshot=args.snapshot))
    write(source_dir, tables, truth, oracle)
    log.info("generated %d customers, %d payments in %s", args.customers, oracle["payments"], source_dir)
    snapshot = args.snapshot.isoformat()
    if not run_dag("churn_training_dag", args.end, env, {"snapshot": snapshot, "spec": ""}):
        return False

    with connect(pg) as conn:
        batches = conn.execute(
            "SELECT DISTINCT ON (source) source, status, rows_read, rows_valid, rows_rejected FROM dqm.churn_batches "
            "WHERE as_of = %s ORDER BY source, started_at DESC", (snapshot,),
        ).fetchall()  # fmt: skip
        bands = conn.execute(
            "SELECT risk_band, count(*), round(avg(probability)::numeric, 3), max(model_version) "
            "FROM prod.churn_scores WHERE snapshot_date = %s GROUP BY 1 ORDER BY min(probability)", (snapshot,),
        ).fetchall()  # fmt: skip
    from mlflow.tracking import MlflowClient

    configure(settings.mlflow)
    client = MlflowClient()
    name = settings.mlflow.model_name
    production = version_by_alias(client, name, "production")
    challenger = version_by_alias(client, name, "challenger")
    print("\n== churn: ingested batches (dqm.churn_batches)")
    for source, status, read, valid, rejected in batches:
        print(f"  {source:<17} {status:<8} read {read}  valid {valid}  rejected {rejected}")
    print("\n== churn: model registry")
    for alias, version in (("production", production), ("challenger", challenger)):
        if version is None:
            print(f"  {alias:<11} (none)")
            continue
        run = client.get_run(version.run_id).data
        metrics = "  ".join(f"{k} {run.metrics[k]:.4f}" for k in ("roc_auc", "pr_auc", "log_loss", "brier", "f1")
                            if k in run.metrics)  # fmt: skip
        print(f"  {alias:<11} {name} v{version.version} {run.params.get('model_kind', '')}: {metrics}")
    print(f"  oracle AUC  {oracle['oracle_auc']:.4f} (the generator's true probabilities)")
    print("\n== churn: batch scores (prod.churn_scores)")
    for band, count, mean, version in bands:
        print(f"  {band:<7} {count:>6} customers  mean probability {mean}  (model v{version})")
    drift = drift_demo(args, settings, env)
    print(
        f"""
== where to look (churn)
  SELECT * FROM dqm.churn_batches ORDER BY started_at DESC;
  SELECT risk_band, count(*), avg(probability) FROM prod.churn_scores GROUP BY 1;
  MLflow: mlflow ui --backend-store-uri {settings.mlflow.resolved_tracking_uri()}  (experiment {settings.mlflow.experiment})
  Delta feature tables: {settings.churn.lake_dir}
  Airflow task logs: var/airflow-demo/logs/dag_id=churn_training_dag/
  Score customers in the app: `make app`, then http://{settings.app.host}:{settings.app.port}
"""
    )
    return (
        all(status == "loaded" for _, status, *_ in batches)
        and production is not None
        and bool(bands)
        and drift
    )


def drift_demo(args, settings, env) -> bool:
    """The weekly drift monitor for the Monday of the last logical date: the current snapshot against the
    production model's training data (the same data here, so no drift), so that the app has a report."""
    from jobs.churn.monitoring.io import read_summary

    monday = args.end - timedelta(days=args.end.weekday())
    if not run_dag("churn_drift_monitor_w", monday, env):
        return False
    summary = read_summary(settings.object_store, monday.isoformat())
    if summary is None:
        print(f"  the drift monitor of {monday} wrote no summary")
        return False
    print("\n== churn: drift monitor (churn_drift_monitor_w)")
    print(
        f"  {summary['date']}: severity {summary['severity']}, recent_drift_share {summary['drift_share']:.3f}, "
        f"retrain {summary['retrain']}; report {summary['report_uris'].get('html', '')}"
    )
    return True


if __name__ == "__main__":
    sys.exit(main())
