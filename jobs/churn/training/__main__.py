"""Config-driven churn training: Spark MLlib candidates, light HPO on validation data, one test evaluation.

``python -m jobs.churn.training [--spec churn.yaml] [--features PATH] [--version N] [--snapshot T]``

The spec (`jobs.churn.contract.spec`) names the id, label, numeric and categorical columns and the
candidate grids, so any customer feature table trains: a Delta table (a pinned version, ours by default),
or a Parquet/CSV file. The search (`jobs.churn.training.search`) splits by a hash of the id, resolves a
`shares` vocabulary on the train split only, fits every grid point on train, judges it on validation and
scores the test split once. The best pipeline is exported to the JVM-free scorer (parity checked on the
test rows), logged to MLflow with metrics, plots, `dataset/` and `explainability/` (SHAP), registered as
`churn_model` and given the `challenger` alias (`jobs.churn.training.io`). Promotion is the next step
(`python -m jobs.churn.validation`). Exit codes: 0 done, 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date

from jobs.churn.contract.spec import SpecError
from jobs.churn.features.io import SnapshotNotFound, UnreadableTable
from jobs.churn.training.search import TrainingDataError
from jobs.common.spark import master_option

log = logging.getLogger("jobs.churn.training")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.churn.training", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--spec", help="YAML spec: a path or a name under jobs/churn/contract/specs (default CHURN_SPEC)"
    )
    parser.add_argument(
        "--features",
        help="feature table: a Delta table folder (default the churn snapshots), .parquet or .csv",
    )
    parser.add_argument("--version", type=int, help="Delta version to pin (default: the latest)")
    parser.add_argument(
        "--snapshot", type=date.fromisoformat, help="snapshot date in the table (default: the latest)"
    )
    parser.add_argument("--master", type=master_option, help="Spark master URL (default SPARK_MASTER_URL)")
    args = parser.parse_args(argv)
    if args.version is not None and args.version < 0:
        parser.error("--version must be >= 0")
    return args


def run(args: argparse.Namespace, settings=None) -> dict:
    from jobs.churn.contract.spec import load_spec
    from jobs.churn.deployment.io import configure
    from jobs.churn.features.io import TableRef, lake_table
    from jobs.churn.training.io import log_run, read_features
    from jobs.churn.training.pipeline import positive_probability
    from jobs.churn.training.search import train_model
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.metrics import Figures, push, step_figures
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    spec = load_spec(args.spec or settings.churn.spec)  # fails before any Spark work
    if args.features:
        ref = TableRef(args.features, args.version, args.snapshot)
    else:
        ref = lake_table(settings.churn.lake_dir, args.version, args.snapshot)
    progress = Progress(log)
    configure(settings.mlflow)
    spark = build_session("churn-train", settings.spark, args.master)
    with progress.step("read features") as facts:
        df, dataset = read_features(spark, ref)
        facts.update(version=dataset.get("version"), rows=df.count())
    with progress.step("split + HPO + test") as facts:
        result = train_model(df, spec)
        facts.update(best=result.search.best.kind, test_auc=round(result.test_metrics["roc_auc"], 4))
    with progress.step("MLflow log + register") as facts:
        test = result.test_rows
        predicted = result.search.best.model.transform(test)
        example = predicted.select(*test.columns, positive_probability(predicted).alias("_spark_p")).limit(
            10_000
        )
        logged = log_run(result, result.spec, dataset, settings, example)
        facts.update(version=logged["version"], parity=f"{logged['parity']:.1e}")
    figures = Figures("churn_training")
    for metric, value in result.test_metrics.items():
        figures.add(
            "kpi_churn_model_test_metric",
            value,
            "test-split figures of the latest trained model",
            metric=metric,
        )
    figures.add(
        "kpi_churn_model_version", logged["version"], "registered version of the latest trained model"
    )
    push(step_figures(figures, progress.timings, progress.elapsed), settings.metrics, succeeded=True)
    return {
        **logged,
        "model_kind": result.search.best.kind,
        "params": result.search.best.params,
        "test": {k: round(v, 4) for k, v in result.test_metrics.items()},
        "feature_version": dataset.get("version"),
        "seconds": round(progress.elapsed, 1),
    }


def report(outcome: dict) -> None:
    log.info("trained: %s", outcome)
    print(json.dumps(outcome, default=str))


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(
        argv,
        parse_args,
        run,
        report,
        bad_input=(SpecError, TrainingDataError, SnapshotNotFound, UnreadableTable),
    )


if __name__ == "__main__":
    sys.exit(main())
