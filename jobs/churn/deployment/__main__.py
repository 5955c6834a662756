"""Batch scoring with Spark: a registered model over a feature snapshot, into `prod.churn_scores`.

``python -m jobs.churn.deployment [--alias production | --version N] [--features PATH]
[--feature-version V] [--snapshot T] [--master URL]``

Loads the registered version's Spark pipeline, scores every customer of the snapshot (THE feature build's
output: the same columns training used) and assigns risk bands (CHURN_RISK_BANDS); the executors COPY the
scores into a staging table, and ONE transaction replaces that (snapshot, model version)'s rows in prod. Exit codes: 0 done, 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from jobs.churn.deployment.io import NoModel
from jobs.churn.features.io import SnapshotNotFound
from jobs.common.spark import master_option

log = logging.getLogger("jobs.churn.deployment")


def run(args: argparse.Namespace, settings=None) -> dict:
    from mlflow.tracking import MlflowClient
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    from jobs.churn.contract.features import SNAPSHOT
    from jobs.churn.deployment.io import (
        clear_scores,
        configure,
        download,
        load_spec_of,
        publish_scores,
        resolve,
        spark_pipeline_path,
        stage_scores,
    )
    from jobs.churn.deployment.scoring import score_frame
    from jobs.churn.features.io import FeatureTable, TableRef, UnreadableTable, lake_table
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.metrics import Figures, push, step_figures
    from jobs.common.postgres import connect, open_business_database
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    progress = Progress(log)
    configure(settings.mlflow)
    name = settings.mlflow.model_name
    ref = resolve(MlflowClient(), name, args.alias, args.version)
    spec = load_spec_of(ref)
    if args.features:
        table = FeatureTable(TableRef(args.features, args.feature_version, args.snapshot))
    else:
        table = FeatureTable(lake_table(settings.churn.lake_dir, args.feature_version, args.snapshot))
    path = table.ref.path
    if table.ref.format != "delta":
        raise UnreadableTable(f"{path}: batch scoring reads a Delta feature table (its version and snapshot)")
    if args.snapshot is None:
        table = table.at_latest_snapshot()
    feature_version, snapshot = table.ref.version, table.ref.snapshot
    pg, _ = open_business_database(settings.postgres)
    spark = build_session("churn-score-batch", settings.spark, args.master)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = download(ref, Path(tmp) / "model")
        pipeline = PipelineModel.load(str(spark_pipeline_path(model_dir)))
        with progress.step("score") as facts:
            features = table.read(spark)
            missing = [c for c in (spec.id, *spec.table_columns(), SNAPSHOT) if c not in features.columns]
            if missing:
                raise ValueError(f"the feature table lacks the model's columns {missing}")
            scored_at = datetime.now(UTC)  # metadata only; what is scored is fixed by the arguments
            scores = score_frame(pipeline, features, spec, snapshot, settings.churn.band_cuts).select(
                "*",
                F.lit(name).alias("model_name"),
                F.lit(ref.version).cast("int").alias("model_version"),
                F.lit(args.alias if args.version is None else None).cast("string").alias("model_alias"),
                F.lit(feature_version).cast("long").alias("feature_version"),
                F.lit(scored_at).alias("scored_at"),
            )
            with connect(pg) as conn:
                staged = stage_scores(conn, pg, scores)
            facts["customers"] = staged.rows
    if staged.rows == 0:
        with connect(pg) as conn:
            clear_scores(conn, staged)
        raise ValueError(f"no customer in {path}@v{feature_version} for snapshot {snapshot}")
    with progress.step("publish prod.churn_scores (one transaction)") as facts, connect(pg) as conn:
        summary = publish_scores(conn, staged, snapshot, name, ref.version)
        facts["rows"] = summary["customers"]
    figures = Figures("churn_scoring")
    figures.add(
        "kpi_churn_scored_customers", summary["customers"], "customers the latest batch scoring scored"
    )
    for band, customers in summary["bands"].items():
        figures.add(
            "kpi_churn_scored_by_band", customers, "customers of the latest scoring, by risk band", band=band
        )
    figures.add("kpi_churn_scoring_model_version", ref.version, "model version of the latest batch scoring")
    push(step_figures(figures, progress.timings, progress.elapsed), settings.metrics, succeeded=True)
    return {
        "model": f"{name} v{ref.version}",
        "alias": args.alias if args.version is None else None,
        "snapshot": snapshot.isoformat(),
        "feature_version": feature_version,
        **summary,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.churn.deployment", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--alias", default="production", help="model alias to score with (default production)"
    )
    parser.add_argument("--version", type=int, help="a model version number instead of an alias")
    parser.add_argument("--features", help="Delta feature table (default the churn snapshots)")
    parser.add_argument("--feature-version", type=int, help="Delta version to pin (default: the latest)")
    parser.add_argument("--snapshot", type=date.fromisoformat, help="snapshot date (default: the latest)")
    parser.add_argument("--master", type=master_option, help="Spark master URL (default SPARK_MASTER_URL)")
    args = parser.parse_args(argv)
    if args.version is not None and args.version < 1:
        parser.error("--version must be >= 1")
    return args


def report(summary: dict) -> None:
    log.info("batch scores: %s", summary)
    print(json.dumps(summary))


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, bad_input=(NoModel, SnapshotNotFound, ValueError))


if __name__ == "__main__":
    sys.exit(main())
