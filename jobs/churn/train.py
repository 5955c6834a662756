"""Config-driven churn training: Spark MLlib candidates, light HPO on validation data, one test evaluation.

``python -m jobs.churn.train [--spec churn.yaml] [--features PATH] [--version N] [--snapshot T]``

The spec (`jobs.churn.spec`) names the id, label, numeric and categorical columns and the candidate
grids, so any customer feature table trains: a Delta table (a pinned version, ours by default), or a
Parquet/CSV file. Steps: deterministic split by a hash of the id (train / validation / test); a spec with
`shares` gets its vocabulary from the train split only (the top keys of its map column, ties by name),
and that resolved spec is the model's (logged as `dataset/spec.json`); every grid
point is fitted on train and judged on validation (`search` never sees the test rows); the decision
threshold is chosen on validation; the test split is scored once. The best pipeline is exported to the
JVM-free scorer (parity checked on the test rows), logged to MLflow with metrics, plots, `dataset/` and
`explainability/` (SHAP), registered as `churn_model` and given the `challenger` alias. Promotion is the
next step (`python -m jobs.churn.promote`). Exit codes: 0 done, 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.churn.spec import SpecError, TrainSpec, spec_to_dict
from jobs.common.spark import master_option

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

SPLIT = "_split"
HASH_BUCKETS = 10_000
PARITY_TOLERANCE = 1e-6


class TrainingDataError(ValueError):
    """The feature table cannot train this spec (missing columns, no label, one class...)."""


def split_key(spec: TrainSpec) -> str:
    return f"{spec.split.seed}:"


def split_bucket(ids: Iterable[Any], spec: TrainSpec) -> np.ndarray:
    """JVM-free twin of `split_column`: the same bucket for the same id (ids are integers or strings)."""
    prefix = split_key(spec)
    return np.array([zlib.crc32(f"{prefix}{i}".encode()) % HASH_BUCKETS for i in ids], dtype=np.int64)


def split_name(bucket: np.ndarray, spec: TrainSpec) -> np.ndarray:
    cut_train = spec.split.train * HASH_BUCKETS
    cut_validation = (spec.split.train + spec.split.validation) * HASH_BUCKETS
    return np.where(bucket < cut_train, "train", np.where(bucket < cut_validation, "validation", "test"))


def split_column(spec: TrainSpec) -> Column:
    """train / validation / test by a hash of the id: stable across runs, versions and snapshots."""
    from pyspark.sql import functions as F

    bucket = F.crc32(F.concat(F.lit(split_key(spec)), F.col(spec.id).cast("string"))) % HASH_BUCKETS
    cut_train = spec.split.train * HASH_BUCKETS
    cut_validation = (spec.split.train + spec.split.validation) * HASH_BUCKETS
    return F.when(bucket < cut_train, "train").when(bucket < cut_validation, "validation").otherwise("test")


def check_table(df: DataFrame, spec: TrainSpec) -> None:
    missing = [c for c in spec.required_columns() if c not in df.columns]
    if missing:
        raise TrainingDataError(f"the feature table misses the spec's columns {missing} (has {df.columns})")


def resolve_vocabulary(df: DataFrame, spec: TrainSpec) -> TrainSpec:
    """The spec with its `shares` vocabulary taken from the TRAIN split (labelled rows) of `df`: the
    validation and test rows never influence it. Always re-resolved: a vocabulary in the spec file (a
    model's logged spec) belongs to that model, not to this training data."""
    from dataclasses import replace

    from pyspark.sql import functions as F

    from jobs.churn.features import top_keys

    if spec.shares is None:
        return spec
    spec = replace(spec, numeric=spec.base_numeric, shares=replace(spec.shares, vocabulary=None))
    train = df.filter((split_column(spec) == "train") & F.col(spec.label).isNotNull())
    keys = top_keys(train, spec.shares)
    log.info("vocabulary of %s (top %d of the train split): %s", spec.shares.column, spec.shares.top, keys)
    return spec.with_vocabulary(keys)


def labelled(df: DataFrame, spec: TrainSpec) -> DataFrame:
    """The prepared rows (`pipeline.prepare`) that have a 0/1 label; a label that is neither empty nor
    understood as 0/1 (1/0, yes/no, true/false) is an error, never silently dropped or coerced."""
    from pyspark.sql import functions as F

    from jobs.churn.pipeline import prepare

    prepared = prepare(df, spec)
    label = F.col(spec.label)
    stats = prepared.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(label.isNull().cast("int")).alias("unlabelled"),
        F.countDistinct(label).alias("classes"),
    ).first()
    if not stats["rows"]:
        raise TrainingDataError("the feature table is empty")
    given = df.filter(F.trim(F.col(spec.label).cast("string")) != "").count()
    bad = given - (stats["rows"] - stats["unlabelled"])
    if bad:
        raise TrainingDataError(f"label {spec.label!r} must be 0/1 (or yes/no): {bad} rows hold other values")
    if stats["unlabelled"] == stats["rows"]:
        raise TrainingDataError(
            f"no row has a label {spec.label!r} (a scoring snapshot built with --no-label cannot train)"
        )
    if stats["classes"] < 2:
        raise TrainingDataError(f"label {spec.label!r} has one class only: nothing to learn")
    return prepared.filter(label.isNotNull())


@dataclass
class Trial:
    kind: str
    params: dict[str, Any]
    validation: dict[str, float]
    seconds: float
    model: Any = field(repr=False, default=None)


@dataclass
class SearchResult:
    best: Trial
    trials: list[Trial]
    threshold: float


def scored(model, df: DataFrame, spec: TrainSpec) -> pd.DataFrame:
    """id, label, probability of churn, collected to the driver (validation / test sizes)."""
    from jobs.churn.pipeline import positive_probability

    predicted = model.transform(df)
    return predicted.select(spec.id, spec.label, positive_probability(predicted).alias("p")).toPandas()


def search(train: DataFrame, validation: DataFrame, spec: TrainSpec) -> SearchResult:
    """Fits every grid point on `train`, scores it on `validation`; never receives the test rows."""
    from jobs.churn.evaluation import best_f1_threshold, metrics
    from jobs.churn.pipeline import build_pipeline

    trials: list[Trial] = []
    points = [(c.kind, p) for c in spec.candidates for p in c.points()]
    for i, (kind, params) in enumerate(points, start=1):
        t0 = time.perf_counter()
        model = build_pipeline(spec, kind, params).fit(train)
        val = scored(model, validation, spec)
        result = metrics(val[spec.label].to_numpy(), val["p"].to_numpy(), 0.5)
        trials.append(Trial(kind, params, result, time.perf_counter() - t0, model))
        log.info(
            "HPO %d/%d %s %s: validation %s %.4f (%.1fs)",
            i, len(points), kind, params, spec.selection_metric, result[spec.selection_metric], trials[-1].seconds,
        )  # fmt: skip
    # first best wins ties: candidates are listed simplest first in the spec
    best = max(trials, key=lambda t: t.validation[spec.selection_metric])
    if spec.threshold == "f1":
        val = scored(best.model, validation, spec)
        threshold = best_f1_threshold(val[spec.label].to_numpy(), val["p"].to_numpy())
    else:
        threshold = float(spec.threshold)
    return SearchResult(best, trials, threshold)


@dataclass
class TrainResult:
    search: SearchResult
    test_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    test_scores: pd.DataFrame
    counts: dict[str, int]
    test_rows: DataFrame = field(repr=False, default=None)  # prepared test split, for the parity check
    spec: TrainSpec | None = None  # the spec the model was trained with (`shares` vocabulary resolved)
    category_counts: dict[str, dict[str, int]] | None = None  # train rows per category (the scorer's modes)


def train_model(df: DataFrame, spec: TrainSpec) -> TrainResult:
    """Split, resolve the shares vocabulary on train, search on train/validation, then score the test
    split exactly once. `TrainResult.spec` is the resolved spec: export and log the model with it."""
    from pyspark.sql import functions as F

    from jobs.churn.evaluation import metrics
    from jobs.churn.scorer import category_counts

    check_table(df, spec)
    spec = resolve_vocabulary(df, spec)
    data = labelled(df, spec).withColumn(SPLIT, split_column(spec)).cache()
    counts = {r[SPLIT]: int(r["count"]) for r in data.groupBy(SPLIT).count().collect()}
    for part in ("train", "validation", "test"):
        counts.setdefault(part, 0)
    log.info("split %s", counts)
    if min(counts.values()) == 0:
        raise TrainingDataError(f"a split is empty {counts}: too few rows for the spec's fractions")
    train = data.filter(F.col(SPLIT) == "train").drop(SPLIT).cache()
    validation = data.filter(F.col(SPLIT) == "validation").drop(SPLIT).cache()
    result = search(train, validation, spec)
    val = scored(result.best.model, validation, spec)
    validation_metrics = metrics(val[spec.label].to_numpy(), val["p"].to_numpy(), result.threshold)
    test = data.filter(F.col(SPLIT) == "test").drop(SPLIT)
    test_scores = scored(result.best.model, test, spec)  # the one and only use of the test rows
    test_metrics = metrics(test_scores[spec.label].to_numpy(), test_scores["p"].to_numpy(), result.threshold)
    modes = category_counts(result.best.model, train)
    return TrainResult(result, test_metrics, validation_metrics, test_scores, counts, test, spec, modes)


# --- entrypoint: read the table, train, log to MLflow, register ---------------------------------------


@dataclass(frozen=True)
class FeatureSource:
    path: str
    format: str  # delta | parquet | csv
    version: int | None
    snapshot: date | None


def read_features(spark, source: FeatureSource) -> tuple[DataFrame, dict]:
    """The training table and what the model records about it (`dataset/`)."""
    import hashlib

    from jobs.churn.snapshots import fingerprint, latest_snapshot_date, open_version, read_with_spark

    if source.format == "delta":
        version = source.version if source.version is not None else open_version(source.path).version()
        snapshot = source.snapshot or latest_snapshot_date(source.path, version)
        df, _ = read_with_spark(spark, source.path, version, snapshot)
        info = {**fingerprint(source.path, version), "snapshot_date": snapshot.isoformat(), "format": "delta"}
        return df, info
    path = Path(source.path)
    if not path.is_file():
        raise TrainingDataError(f"feature file not found: {path}")
    reader = spark.read.option("header", True).option("inferSchema", True)
    df = reader.csv(str(path)) if source.format == "csv" else spark.read.parquet(str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    info = {"path": str(path), "format": source.format, "version": None, "sha256": digest}
    info["schema"] = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    return df, info


def log_run(result: TrainResult, spec: TrainSpec, dataset: dict, settings, spark_df_example) -> dict:
    """Everything about the run to MLflow; returns the registered version and run id."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from jobs.churn.evaluation import plot_evaluation, plot_shap_summary
    from jobs.churn.registry import CHALLENGER
    from jobs.churn.scorer import (
        ChurnPyfuncModel,
        ChurnScorer,
        export_scorer,
        pyfunc_requirements,
        save_scorer,
    )

    best = result.search.best
    name = settings.mlflow.model_name
    client = MlflowClient()
    snapshot = dataset.get("snapshot_date", "")
    with (
        mlflow.start_run(run_name=f"{spec.name}-{best.kind}-{snapshot or 'table'}") as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        tmp_dir = Path(tmp)
        mlflow.set_tags(
            {"spec": spec.name, "feature_path": dataset["path"], "feature_version": str(dataset.get("version")),
             "snapshot_date": snapshot, "model_kind": best.kind}
        )  # fmt: skip
        mlflow.log_params(
            {
                "spec": spec.name,
                "model_kind": best.kind,
                **{f"best.{k}": v for k, v in best.params.items()},
                "feature_version": dataset.get("version"),
                "snapshot_date": snapshot,
                "split": f"{spec.split.train}/{spec.split.validation}/{spec.split.test} seed {spec.split.seed}",
                "selection_metric": spec.selection_metric,
                "threshold_rule": str(spec.threshold),
                "grid_points": len(result.search.trials),
                "numeric_features": len(spec.numeric),
                "categorical_features": len(spec.categorical),
                **(
                    {"shares_vocabulary": ",".join(spec.shares.vocabulary)[:500]}
                    if spec.shares is not None
                    else {}
                ),
            }
        )
        mlflow.log_metrics({k: v for k, v in result.test_metrics.items() if k != "rows"})
        mlflow.log_metrics(
            {f"validation_{k}": v for k, v in result.validation_metrics.items() if k != "rows"}
        )
        mlflow.log_metrics({f"rows_{k}": v for k, v in result.counts.items()})
        for i, trial in enumerate(result.search.trials):
            with mlflow.start_run(run_name=f"hpo-{i:02d}-{trial.kind}", nested=True):
                mlflow.log_params({"model_kind": trial.kind, **trial.params})
                mlflow.log_metrics({f"validation_{k}": v for k, v in trial.validation.items() if k != "rows"})
                mlflow.log_metric("fit_seconds", trial.seconds)

        # dataset/: which data, exactly
        (tmp_dir / "dataset").mkdir()
        (tmp_dir / "dataset" / "snapshot.json").write_text(
            json.dumps({**dataset, "counts": result.counts, "spec": spec.name}, indent=2, default=str)
        )
        mlflow.log_artifacts(str(tmp_dir / "dataset"), "dataset")
        mlflow.log_dict(spec_to_dict(spec), "dataset/spec.json")

        # plots/: ROC, PR, calibration, confusion on the test split
        y, p = result.test_scores[spec.label].to_numpy(), result.test_scores["p"].to_numpy()
        plot_evaluation(y, p, result.test_metrics["threshold"], tmp_dir / "plots", f"{best.kind} (test)")
        mlflow.log_artifacts(str(tmp_dir / "plots"), "plots")

        # the JVM-free scorer, checked against Spark on the test rows
        description = export_scorer(best.model, spec, counts=result.category_counts)
        save_scorer(description, tmp_dir / "scorer")
        scorer = ChurnScorer.load(tmp_dir / "scorer")
        test_frame = spark_df_example.toPandas()
        parity = float(np.max(np.abs(scorer.predict_proba(test_frame) - test_frame["_spark_p"].to_numpy())))
        mlflow.log_metric("scorer_parity_max_abs_diff", parity)
        if parity > PARITY_TOLERANCE:
            raise RuntimeError(f"JVM-free scorer differs from Spark by {parity:.2e} > {PARITY_TOLERANCE}")

        # explainability/: SHAP values of a test sample, their summary plot and mean |SHAP| ranking
        sample = test_frame.head(2000)
        shap_values = scorer.explain(sample[list(spec.features)])
        values = shap_values[list(spec.features)]
        (tmp_dir / "explainability").mkdir()
        values.assign(**{spec.id: sample[spec.id].to_numpy()}).to_parquet(
            tmp_dir / "explainability" / "shap_values.parquet"
        )
        importance = values.abs().mean().sort_values(ascending=False)
        importance.rename("mean_abs_shap").to_csv(tmp_dir / "explainability" / "shap_importance.csv")
        plot_shap_summary(values.to_numpy(), sample[list(spec.features)], tmp_dir / "explainability" / "shap_summary.png",
                          f"SHAP ({scorer.units}) — {best.kind}")  # fmt: skip
        mlflow.log_artifacts(str(tmp_dir / "explainability"), "explainability")

        # the model: JVM-free pyfunc (app) + the Spark pipeline (batch), one registered version
        best.model.write().overwrite().save(str(tmp_dir / "spark_pipeline"))
        example = test_frame[list(spec.features)].head(5)
        signature = infer_signature(example, pd.DataFrame({"probability": scorer.predict_proba(example)}),
                                    params={"explain": False})  # fmt: skip
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChurnPyfuncModel(),
            artifacts={"scorer": str(tmp_dir / "scorer"), "spark_pipeline": str(tmp_dir / "spark_pipeline")},
            signature=signature,
            input_example=example,
            pip_requirements=pyfunc_requirements(),
            registered_model_name=name,
        )
        version = int(info.registered_model_version)
        tags = {
            "feature_path": dataset["path"],
            "feature_version": str(dataset.get("version")),
            "feature_format": dataset.get("format", ""),
            "snapshot_date": snapshot,
            "spec": spec.name,
            "model_kind": best.kind,
            "run_id": run.info.run_id,
            **{
                f"test_{k}": f"{v:.6f}"
                for k, v in result.test_metrics.items()
                if k in ("roc_auc", "pr_auc", "f1")
            },
        }
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, value)
        client.set_registered_model_alias(name, CHALLENGER, str(version))
        mlflow.set_tag("registered_version", str(version))
    return {
        "version": version,
        "run_id": run.info.run_id,
        "model_uri": f"models:/{name}/{version}",
        "parity": parity,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.churn.train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--spec", help="YAML spec: a path or a name under jobs/churn/specs (default CHURN_SPEC)"
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
    from jobs.churn.pipeline import positive_probability
    from jobs.churn.registry import configure
    from jobs.churn.snapshots import table_path
    from jobs.churn.spec import load_spec
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    spec = load_spec(args.spec or settings.churn.spec)  # fails before any Spark work
    path = args.features or str(table_path(settings.churn.lake_dir))
    fmt = "csv" if path.endswith(".csv") else "parquet" if path.endswith(".parquet") else "delta"
    source = FeatureSource(path, fmt, args.version, args.snapshot)
    progress = Progress(log)
    configure(settings.mlflow)
    spark = build_session("churn-train", settings.spark, args.master)
    with progress.step("read features") as facts:
        df, dataset = read_features(spark, source)
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
    from jobs.churn.snapshots import SnapshotNotFound
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, bad_input=(SpecError, TrainingDataError, SnapshotNotFound))


if __name__ == "__main__":
    sys.exit(main())
