"""Training as pure Spark work: a spec's table split, searched on validation data, tested once.

Steps (`train_model`): deterministic split by a hash of the id (`jobs.churn.contract.split`); a spec with
`shares` gets its vocabulary from the train split only (the top keys of its map column, ties by name), and
that resolved spec is the model's; every grid point is fitted on train and judged on validation (`search`
never sees the test rows); the decision threshold is chosen on validation; the test split is scored once.
Metrics, threshold and plots come from at most EVALUATION_ROWS rows of a split (a seeded sample beyond that,
recorded with the model): the fitting is distributed, and nothing collects a whole split to the driver.
No MLflow, no storage: `jobs.churn.training.io` records what this returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.churn.contract.spec import TrainSpec
from jobs.churn.contract.split import SPLIT, split_column

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

EVALUATION_ROWS = 250_000  # per split: the rows metrics, threshold and plots are computed on, at most
SAMPLE_SEED = 20261206


class TrainingDataError(ValueError):
    """The feature table cannot train this spec (missing columns, no label, one class...)."""


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

    from jobs.churn.features.shares import top_keys

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

    from jobs.churn.training.pipeline import prepare

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


def scored(model, df: DataFrame, spec: TrainSpec, rows: int) -> pd.DataFrame:
    """id, label and probability of churn of the `rows` rows of `df`, on the driver: all of them up to
    EVALUATION_ROWS, beyond that a seeded sample of about that many (the same rows on every call), so the
    driver's memory does not grow with the data. The metrics say how many rows they are computed on."""
    from jobs.churn.training.pipeline import positive_probability

    if rows > EVALUATION_ROWS:
        df = df.sample(fraction=min(1.0, 1.02 * EVALUATION_ROWS / rows), seed=SAMPLE_SEED)
    predicted = model.transform(df)
    chosen = predicted.select(spec.id, spec.label, positive_probability(predicted).alias("p"))
    return chosen.limit(EVALUATION_ROWS).toPandas()


def search(train: DataFrame, validation: DataFrame, spec: TrainSpec, validation_rows: int) -> SearchResult:
    """Fits every grid point on `train`, scores it on `validation` (`validation_rows` rows); never receives
    the test rows."""
    from jobs.churn.training.evaluation import best_f1_threshold, metrics
    from jobs.churn.training.pipeline import build_pipeline

    trials: list[Trial] = []
    points = [(c.kind, p) for c in spec.candidates for p in c.points()]
    for i, (kind, params) in enumerate(points, start=1):
        t0 = time.perf_counter()
        model = build_pipeline(spec, kind, params).fit(train)
        val = scored(model, validation, spec, validation_rows)
        result = metrics(val[spec.label].to_numpy(), val["p"].to_numpy(), 0.5)
        trials.append(Trial(kind, params, result, time.perf_counter() - t0, model))
        log.info(
            "HPO %d/%d %s %s: validation %s %.4f (%.1fs)",
            i, len(points), kind, params, spec.selection_metric, result[spec.selection_metric], trials[-1].seconds,
        )  # fmt: skip
    # first best wins ties: candidates are listed simplest first in the spec
    best = max(trials, key=lambda t: t.validation[spec.selection_metric])
    if spec.threshold == "f1":
        val = scored(best.model, validation, spec, validation_rows)
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
    evaluated: dict[str, int] = field(
        default_factory=dict
    )  # rows the validation / test metrics are computed on


def train_model(df: DataFrame, spec: TrainSpec) -> TrainResult:
    """Split, resolve the shares vocabulary on train, search on train/validation, then score the test
    split exactly once. `TrainResult.spec` is the resolved spec: export and log the model with it."""
    from pyspark.sql import functions as F

    from jobs.churn.deployment.scorer.export import category_counts
    from jobs.churn.training.evaluation import metrics

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
    result = search(train, validation, spec, counts["validation"])
    val = scored(result.best.model, validation, spec, counts["validation"])
    validation_metrics = metrics(val[spec.label].to_numpy(), val["p"].to_numpy(), result.threshold)
    test = data.filter(F.col(SPLIT) == "test").drop(SPLIT)
    test_scores = scored(result.best.model, test, spec, counts["test"])  # the one use of the test rows
    test_metrics = metrics(test_scores[spec.label].to_numpy(), test_scores["p"].to_numpy(), result.threshold)
    modes = category_counts(result.best.model, train)
    evaluated = {"validation": len(val), "test": len(test_scores)}
    if evaluated != {k: counts[k] for k in evaluated}:
        log.info("metrics on a seeded sample of %s rows (splits of %s)", evaluated, counts)
    return TrainResult(
        result, test_metrics, validation_metrics, test_scores, counts, test, spec, modes, evaluated
    )
