"""Build the churn feature snapshot at T and write it as a new version of the Delta feature table.

``python -m jobs.churn.features --snapshot 2026-09-01 [--no-label] [--lake-dir DIR] [--master URL]``

Reads the latest loaded batch of each source as of T (`dqm.churn_batches`), applies THE feature build
(`jobs.churn.features.build`), and replaces the rows of T in `<lake>/churn_features` (delta-rs). Prints the
new table version, which training records with the model. A source without a loaded batch is bad input
that says why (never ingested, or blocked / failed, with the batch, the gate's message and where its
rejects are). Exit codes: 0 done, 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from jobs.churn.features.io import MissingSourceBatch, TableRef
from jobs.common.spark import master_option

log = logging.getLogger("jobs.churn.features")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.churn.features", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--snapshot", type=date.fromisoformat, required=True, help="snapshot date T (yyyy-mm-dd)"
    )
    parser.add_argument(
        "--no-label", action="store_true", help="scoring snapshot: the label horizon is not observed yet"
    )
    parser.add_argument("--lake-dir", type=Path, help="folder of the Delta tables (default CHURN_LAKE_DIR)")
    parser.add_argument("--master", type=master_option, help="Spark master URL (default SPARK_MASTER_URL)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, settings=None) -> tuple[TableRef, dict]:
    from pyspark.sql import functions as F

    from jobs.churn.contract.features import LABEL
    from jobs.churn.features.build import build_features
    from jobs.churn.features.io import FeatureTable, latest_batches, read_sources, table_path, write_snapshot
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.postgres import connect, open_business_database
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    progress = Progress(log)
    pg, _ = open_business_database(settings.postgres)
    with connect(pg) as conn:
        batches = latest_batches(conn, args.snapshot)
    spark = build_session("churn-features", settings.spark, args.master)
    with progress.step("read sources") as facts:
        frames = {name: df.cache() for name, df in read_sources(spark, pg, batches).items()}
        facts.update({name.lower(): df.count() for name, df in frames.items()})
    with progress.step("build + write Delta snapshot (executors write, delta-rs commits)") as facts:
        features = build_features(
            frames["PAYMENTS"],
            frames["ACTIVE_USER"],
            frames["DEMOGRAFICOS"],
            frames["DINERO_CUENTA"],
            frames["MARKETPLACE_DATA"],
            args.snapshot,
            with_label=not args.no_label,
        )
        ref = write_snapshot(features, table_path(args.lake_dir or settings.churn.lake_dir), args.snapshot)
        facts["version"] = ref.version
    written = (
        FeatureTable(ref).read(spark).agg(F.count(F.lit(1)).alias("n"), F.avg(LABEL).alias("rate")).first()
    )
    summary = {"customers": int(written["n"]), "version": ref.version, "path": ref.path}
    if not args.no_label:
        summary["churn_rate"] = round(float(written["rate"] or 0.0), 4)
    summary["batches"] = {name: b["batch_id"] for name, b in batches.items()}
    for df in frames.values():
        df.unpersist()
    return ref, summary


def report(result: tuple[TableRef, dict]) -> None:
    ref, summary = result
    log.info("feature snapshot %s: %s", ref.describe(), summary)
    print(f"feature_version={ref.version}")


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, bad_input=(MissingSourceBatch,), sections=("churn",))


if __name__ == "__main__":
    sys.exit(main())
