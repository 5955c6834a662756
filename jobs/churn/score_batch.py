"""Batch scoring with Spark: the production model over a feature snapshot, into `prod.churn_scores`.

``python -m jobs.churn.score_batch [--alias production | --version N] [--features PATH] [--feature-version V]
[--snapshot T] [--master URL]``

Loads the registered version's Spark pipeline, scores every customer of the snapshot (THE feature module's
output: the same columns training used), assigns risk bands (CHURN_RISK_BANDS) and replaces that
(snapshot, model version)'s rows in ONE transaction. Exit codes: 0 done, 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from jobs.common.spark import master_option

log = logging.getLogger(__name__)

SCORES_TABLE = "prod.churn_scores"


def score_frame(pipeline_model, features, spec, snapshot: date, cuts: tuple[float, float]):
    """customer id (its exact text), snapshot, probability, risk band: pure. `prepare` derives the share
    columns with the MODEL's vocabulary (its logged spec)."""
    from pyspark.sql import functions as F

    from jobs.churn.pipeline import positive_probability, prepare
    from jobs.churn.serving import risk_band

    predicted = pipeline_model.transform(prepare(features, spec))
    p = positive_probability(predicted)
    return predicted.select(
        F.col(spec.id).cast("string").alias("customer_id"),
        F.lit(snapshot).alias("snapshot_date"),
        p.alias("probability"),
        risk_band(p, cuts).alias("risk_band"),
    )


def run(args: argparse.Namespace, settings=None) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    from mlflow.tracking import MlflowClient
    from pyspark.ml import PipelineModel

    from jobs.churn.features import SNAPSHOT
    from jobs.churn.models import download, load_spec_of, resolve, spark_pipeline_path
    from jobs.churn.registry import configure
    from jobs.churn.snapshots import latest_snapshot_date, open_version, read_with_spark, table_path
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.postgres import connect, copy_arrow, open_business_database
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    progress = Progress(log)
    configure(settings.mlflow)
    name = settings.mlflow.model_name
    ref = resolve(MlflowClient(), name, args.alias, args.version)
    spec = load_spec_of(ref)
    path = args.features or str(table_path(settings.churn.lake_dir))
    feature_version = (
        args.feature_version if args.feature_version is not None else open_version(path).version()
    )
    snapshot = args.snapshot or latest_snapshot_date(path, feature_version)
    pg, _ = open_business_database(settings.postgres)
    spark = build_session("churn-score-batch", settings.spark, args.master)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = download(ref, Path(tmp) / "model")
        pipeline = PipelineModel.load(str(spark_pipeline_path(model_dir)))
        with progress.step("score") as facts:
            features, _ = read_with_spark(spark, path, feature_version, snapshot)
            missing = [c for c in (spec.id, *spec.table_columns(), SNAPSHOT) if c not in features.columns]
            if missing:
                raise ValueError(f"the feature table lacks the model's columns {missing}")
            scores = score_frame(pipeline, features, spec, snapshot, settings.churn.band_cuts).toArrow()
            facts["customers"] = scores.num_rows
    if scores.num_rows == 0:
        raise ValueError(f"no customer in {path}@v{feature_version} for snapshot {snapshot}")
    scored_at = datetime.now(UTC)  # metadata only; what is scored is fixed by the arguments
    n = scores.num_rows
    table = scores.append_column("model_name", pa.array([name] * n))
    table = table.append_column("model_version", pa.array([ref.version] * n, pa.int32()))
    table = table.append_column(
        "model_alias", pa.array([args.alias if args.version is None else None] * n, pa.string())
    )
    table = table.append_column("feature_version", pa.array([feature_version] * n, pa.int64()))
    table = table.append_column("scored_at", pa.array([scored_at] * n, pa.timestamp("us", tz="UTC")))
    with progress.step("write prod.churn_scores") as facts, connect(pg) as conn, conn.transaction():
        conn.execute(
            f"DELETE FROM {SCORES_TABLE} WHERE snapshot_date = %s AND model_name = %s AND model_version = %s",
            (snapshot, name, ref.version),
        )
        facts["rows"] = copy_arrow(conn, SCORES_TABLE, table)
    bands = pc.value_counts(scores["risk_band"]).to_pylist()
    return {
        "model": f"{name} v{ref.version}",
        "alias": args.alias if args.version is None else None,
        "snapshot": snapshot.isoformat(),
        "feature_version": feature_version,
        "customers": n,
        "bands": {b["values"]: b["counts"] for b in bands},
        "mean_probability": round(float(pc.mean(scores["probability"]).as_py()), 4),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.churn.score_batch", description=__doc__.split("\n")[0]
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
    from jobs.churn.models import NoModel
    from jobs.churn.snapshots import SnapshotNotFound
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, bad_input=(NoModel, SnapshotNotFound, ValueError))


if __name__ == "__main__":
    sys.exit(main())
