"""Crypto events, validate-before-load: one Spark job per logical date.

    python -m jobs.crypto_events --date 2026-11-20 [--window-days 5] [--master spark://host:7077]
    spark-submit jobs/crypto_events/__main__.py --date 2026-11-20

Reads the raw extract of the logical date, normalises and parses it, evaluates every rule in one pass,
quarantines rejects with their reasons (dqm), stages the valid rows, lets the GX gate judge the batch,
then merges into prod in one transaction and reconciles. Exit codes: 0 merged (or validated with
--stage validate), 3 blocked by the gate, 1 failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import date

if __package__ in (None, ""):  # run as a file by spark-submit: make `jobs` importable
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

log = logging.getLogger("jobs.crypto_events")

EXIT_BLOCKED = 3


@dataclass(frozen=True)
class Options:
    logical_date: date
    window_days: int | None
    master: str | None
    stage: str
    dag_run_id: str | None


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m jobs.crypto_events", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--date", required=True, help="Airflow logical date of the run, YYYY-MM-DD (never today)"
    )
    parser.add_argument("--window-days", type=int, help="window length in days (default CRYPTO_WINDOW_DAYS)")
    parser.add_argument(
        "--master", help="Spark master URL (default SPARK_MASTER_URL; ignored under spark-submit)"
    )
    parser.add_argument(
        "--stage",
        choices=["all", "validate"],
        default="all",
        help="'validate' stops after quarantine + gate + staging (the merge task runs jobs.crypto_events.merge)",
    )
    parser.add_argument(
        "--dag-run-id", default=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"), help="Airflow DAG run id"
    )
    args = parser.parse_args(argv)
    try:
        logical_date = date.fromisoformat(args.date)
    except ValueError:
        parser.error(f"--date must be YYYY-MM-DD, got {args.date!r}")
    if args.window_days is not None and not 1 <= args.window_days <= 60:
        parser.error("--window-days must be between 1 and 60")
    if args.master and not args.master.startswith(("local", "spark://")):
        parser.error(f"--master must be local[...] or spark://host:port, got {args.master!r}")
    return Options(logical_date, args.window_days, args.master, args.stage, args.dag_run_id)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    counts: dict
    message: str


def run(opts: Options, settings=None) -> RunOutcome:
    from jobs.common.config import load_settings
    from jobs.common.gate import GateConfig, run_gate
    from jobs.common.logs import Progress
    from jobs.common.objectstore import open_store
    from jobs.common.postgres import connect, open_business_database
    from jobs.common.spark import build_session
    from jobs.crypto_events import io, runs, transform
    from jobs.crypto_events.merge import merge_run
    from jobs.crypto_events.rules import RuleContext, crypto_rules

    settings = settings or load_settings()
    crypto = settings.crypto
    window_days = opts.window_days or crypto.window_days
    window = crypto.window(opts.logical_date, window_days)
    progress = Progress(log)
    pg, _ = open_business_database(settings.postgres)
    run_id = str(uuid.uuid4())

    with connect(pg) as conn:
        runs.start_run(conn, run_id, opts.dag_run_id, opts.logical_date, window)
        log.info("run %s: logical date %s, window %s..%s", run_id, opts.logical_date, *window)
        try:
            with progress.step("spark session") as facts:
                spark = build_session(f"crypto_events {opts.logical_date}", settings.spark, opts.master)
                facts["master"] = spark.sparkContext.master
            ctx = RuleContext(
                opts.logical_date,
                window[0],
                tuple(crypto.known_sites),
                tuple(crypto.known_cryptos),
                crypto.price_tolerance,
            )
            rules = crypto_rules(ctx)
            with progress.step("read + judge extract") as facts:
                n_raw = io.count_extract(conn, opts.logical_date)
                raw = io.read_extract(spark, pg, opts.logical_date, n_raw)
                refs = io.read_reference_prices(spark, pg, *window)
                annotated = transform.annotate(raw, rules, crypto.date_formats, refs).cache()
                counts = transform.summarise(annotated, rules)
                facts.update({k: v for k, v in counts.items() if k != "rejects_by_rule"})
            if counts["rejects_by_rule"]:
                log.info("rejects by rule: %s", counts["rejects_by_rule"])
            with progress.step("quarantine rejects") as facts:
                io.replace_partition(
                    conn, pg, transform.rejected_rows(annotated), io.REJECTS_TABLE, opts.logical_date, run_id
                )
                facts["rows"] = counts["rows_rejected"]
            with progress.step("GX gate") as facts:
                gate_config = GateConfig(
                    expected_columns=transform.RAW_COLUMNS,
                    min_rows=crypto.gate_min_rows,
                    max_reject_share=crypto.gate_max_reject_share,
                    max_rule_share=crypto.gate_max_rule_share,
                    critical=frozenset(crypto.gate_critical),
                )
                gate = run_gate(
                    annotated,
                    rules,
                    gate_config,
                    suite_name="bt_crypto_events",
                    store=open_store(settings.object_store),
                    bucket=settings.object_store.ge_artifacts_bucket,
                    prefix=f"crypto_events/{opts.logical_date.isoformat()}/{run_id}",
                )
                facts.update(passed=gate.passed, results=gate.results_uri)
            if not gate.passed:
                runs.record_validation(conn, run_id, counts, gate, status="blocked")
                log.error("run %s BLOCKED, prod untouched: %s", run_id, gate.message())
                return RunOutcome(run_id, "blocked", counts, gate.message())
            with progress.step("stage candidates") as facts:
                staged = io.replace_partition_by_copy(
                    conn, transform.valid_rows(annotated), io.CANDIDATE_TABLE, opts.logical_date, run_id
                )
                facts["rows"] = staged
            runs.record_validation(conn, run_id, counts, gate, status="validated")
            if opts.stage == "validate":
                return RunOutcome(run_id, "validated", counts, gate.message())
            with progress.step("merge (one transaction)") as facts:
                merged = merge_run(conn, run_id)
                facts.update(asdict(merged))
            record = runs.reconcile(conn, run_id)
            log.info("run %s merged and reconciled in %.1fs", run_id, progress.elapsed)
            return RunOutcome(run_id, "merged", {**counts, **asdict(merged)}, record["message"] or "")
        except Exception as err:
            runs.fail_run(conn, run_id, f"{type(err).__name__}: {err}")
            raise
        finally:
            if "annotated" in locals():
                annotated.unpersist()


def main(argv: list[str] | None = None) -> int:
    from jobs.common.logs import setup_logging

    opts = parse_args(argv)
    setup_logging()
    try:
        outcome = run(opts)
    except Exception as err:
        log.error("run failed: %s: %s", type(err).__name__, err)
        return 1
    print(
        f"run_id={outcome.run_id} status={outcome.status} "
        + " ".join(f"{k}={v}" for k, v in outcome.counts.items())
    )
    return EXIT_BLOCKED if outcome.status == "blocked" else 0


if __name__ == "__main__":
    sys.exit(main())
