"""Export (training time, with the JVM): a fitted churn pipeline as the JSON description `ChurnScorer` reads.

Imputer medians, category labels in index order, the model (coefficients and the one-hot layout for
logistic regression; every tree in pre-order for forests and GBT, with node weights for TreeSHAP), the
resolved spec, and the train rows per category (`category_counts`: what "the most frequent" means).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.churn.deployment.scorer.score import FORMAT, SCORER_FILE, UNITS, shares_description
from jobs.churn.training.pipeline import (
    BLANK_CHARS,
    FEATURES_COL,
    MISSING_CATEGORY,
    coded,
    imputed,
    indexed,
    one_hot,
)

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

    from jobs.churn.contract.spec import TrainSpec

_SPARK_CLASSES = {
    "LogisticRegressionModel": "logistic_regression",
    "RandomForestClassificationModel": "random_forest",
    "GBTClassificationModel": "gbt",
}


def category_counts(pipeline_model: PipelineModel, rows: DataFrame) -> dict[str, dict[str, int]]:
    """Rows per known category of each categorical input, as the fitted indexers read them (trimmed,
    blank as missing), over `rows` (the train split): what "the most frequent category" means. Only the
    counts come to the driver, one small row per category."""
    from pyspark.ml import PipelineModel as SparkPipeline
    from pyspark.ml.feature import StringIndexerModel
    from pyspark.sql import functions as F

    stages = list(pipeline_model.stages)
    positions = [i for i, s in enumerate(stages) if isinstance(s, StringIndexerModel)]
    if not positions:  # a model without categorical inputs
        return {}
    last = positions[-1]
    indexers = [
        (column, index_col, list(labels))
        for s in stages
        if isinstance(s, StringIndexerModel)
        for column, index_col, labels in zip(s.getInputCols(), s.getOutputCols(), s.labelsArray, strict=True)
    ]
    pairs = F.array(*[
        F.struct(F.lit(column).alias("column"), F.col(index_col).cast("int").alias("index"))
        for column, index_col, _ in indexers
    ])  # fmt: skip
    counted = (  # one job for every column: (column, index) pairs counted
        SparkPipeline(stages=stages[: last + 1])
        .transform(rows)
        .select(F.explode(pairs).alias("p"))
        .groupBy("p.column", "p.index")
        .count()
        .collect()
    )
    by_index = {(r["column"], r["index"]): int(r["count"]) for r in counted}
    return {column: {label: by_index.get((column, i), 0) for i, label in enumerate(labels)}
            for column, _, labels in indexers}  # fmt: skip


def export_scorer(
    pipeline_model: PipelineModel,
    spec: TrainSpec,
    background: DataFrame | None = None,
    counts: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """The fitted pipeline as a JSON-serialisable description that `ChurnScorer` scores without a JVM.

    `background` (prepared rows, usually the train split) only matters for logistic regression: the means
    of its assembled feature vectors are the reference of the linear SHAP values. Without it the model's
    training summary is used (present right after `fit`, absent after a reload from disk). `counts`
    (`category_counts` of the train split) are recorded for `ChurnScorer.most_frequent`.
    """
    from pyspark.ml.classification import LogisticRegressionModel
    from pyspark.ml.feature import ImputerModel, OneHotEncoderModel, StringIndexerModel, VectorAssembler

    if not spec.resolved:
        raise ValueError(
            "export the model with the spec it was trained with (TrainResult.spec: shares resolved)"
        )
    stages = list(pipeline_model.stages)
    model = stages[-1]
    kind = _SPARK_CLASSES.get(type(model).__name__)
    if kind is None:
        raise ValueError(f"cannot export a {type(model).__name__}: known models are {sorted(_SPARK_CLASSES)}")
    if model.numClasses != 2:
        raise ValueError(f"the scorer handles binary labels only, the model has {model.numClasses} classes")

    fill: dict[str, float] = {}
    for stage in (s for s in stages if isinstance(s, ImputerModel)):
        if stage.getStrategy() != "median" or not math.isnan(stage.getMissingValue()):
            raise ValueError("the scorer replicates Imputer(strategy='median', missingValue=NaN) only")
        row = stage.surrogateDF.collect()[0].asDict()
        fill.update({c: float(row[c]) for c in stage.getInputCols()})
    categories: dict[str, list[str]] = {}
    for stage in (s for s in stages if isinstance(s, StringIndexerModel)):
        if stage.getHandleInvalid() != "keep":
            raise ValueError("the scorer replicates StringIndexer(handleInvalid='keep') only")
        categories.update(
            {c: list(labels) for c, labels in zip(stage.getInputCols(), stage.labelsArray, strict=True)}
        )
    missing = sorted(set(spec.numeric) - set(fill)) + sorted(set(spec.categorical) - set(categories))
    if missing:
        raise ValueError(f"the pipeline has no imputer/indexer for the spec's columns {missing}")

    assembler = next(s for s in stages if isinstance(s, VectorAssembler))
    if assembler.getOutputCol() != FEATURES_COL:
        raise ValueError(f"the assembler writes {assembler.getOutputCol()!r}, expected {FEATURES_COL!r}")
    sources = {imputed(c): ("numeric", c) for c in spec.numeric}
    sources.update({coded(c): ("code", c) for c in spec.categorical})
    sources.update({one_hot(c): ("one_hot", c) for c in spec.categorical})
    try:
        inputs = [sources[name] for name in assembler.getInputCols()]
    except KeyError as exc:
        raise ValueError(
            f"unexpected assembler input {exc}: was the pipeline built by build_pipeline?"
        ) from exc

    description: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "units": UNITS[kind],
        "spec": {
            "name": spec.name,
            "id": spec.id,
            "label": spec.label,
            "numeric": list(spec.numeric),
            "categorical": list(spec.categorical),
            # how the share inputs derive from the feature table's map (None: the spec has no shares)
            "shares": shares_description(spec.shares),
        },
        "missing_category": MISSING_CATEGORY,
        "blank_chars": BLANK_CHARS,
        "numeric_fill": {c: fill[c] for c in spec.numeric},
        "categories": {c: categories[c] for c in spec.categorical},
    }
    if counts is not None:
        description["category_counts"] = {c: dict(counts[c]) for c in spec.categorical}
    if isinstance(model, LogisticRegressionModel):
        encoder = next((s for s in stages if isinstance(s, OneHotEncoderModel)), None)
        layout = _linear_layout(inputs, encoder, categories)
        coefficients = model.coefficients.toArray().tolist()
        if len(coefficients) != layout["size"]:
            raise ValueError(f"{len(coefficients)} coefficients for an assembled vector of {layout['size']}")
        description["model"] = {
            "intercept": float(model.intercept),
            "coefficients": coefficients,
            "means": _assembled_means(pipeline_model, model, background, layout["size"]),
            **layout,
        }
    else:
        if any(source == "one_hot" for source, _ in inputs):
            raise ValueError("tree models take category codes (c__code), not one-hot vectors")
        description["model"] = {
            "inputs": [[source, column] for source, column in inputs],
            "tree_weights": [float(w) for w in model.treeWeights],
            "trees": [_export_tree(tree._java_obj.rootNode(), kind) for tree in model.trees],
        }
    return description


def _linear_layout(inputs: list[tuple[str, str]], encoder: Any, categories: dict[str, list[str]]) -> dict:
    """Which slot of the assembled vector each numeric and each category index lands in.

    Replicates OneHotEncoderModel: index k < categorySize gets slot k, an invalid one gets categorySize
    when handleInvalid is "keep", and slots beyond the configured size (dropLast) are all-zero vectors.
    StringIndexer(keep) declares numLabels + 1 values, so categorySize = numLabels + 1: the "keep" index
    numLabels has its own slot and dropLast drops only the never-used invalid slot (checked by the tests).
    """
    sizes: dict[str, int] = {}
    keep = drop_last = False
    if encoder is not None:
        keep, drop_last = encoder.getHandleInvalid() == "keep", encoder.getDropLast()
        source_of = {indexed(c): c for c in categories}
        for column, size in zip(encoder.getInputCols(), encoder.categorySizes, strict=True):
            sizes[source_of[column]] = int(size)
    numeric_slots: dict[str, int] = {}
    category_slots: dict[str, list[int]] = {}
    offset = 0
    for source, column in inputs:
        if source == "numeric":
            numeric_slots[column] = offset
            offset += 1
            continue
        if source != "one_hot":
            raise ValueError(f"logistic regression expects one-hot categories, got {source} for {column!r}")
        size = sizes[column]
        configured = size + 1 if keep and not drop_last else size - 1 if drop_last and not keep else size
        slots = []
        for index in range(len(categories[column]) + 1):  # + 1: the StringIndexer "keep" index
            position = index if index < size else (size if keep else None)
            if position is None:
                raise ValueError(f"{column}: index {index} is invalid for the encoder and not kept")
            slots.append(offset + position if position < configured else -1)
        category_slots[column] = slots
        offset += configured
    return {"size": offset, "numeric_slots": numeric_slots, "category_slots": category_slots}


def _assembled_means(pipeline_model: Any, model: Any, background: DataFrame | None, size: int) -> list[float]:
    from pyspark.ml.stat import Summarizer

    if background is not None:
        assembled = pipeline_model.transform(background)
    elif model.hasSummary:
        assembled = model.summary.predictions
    else:
        raise ValueError("logistic regression needs `background` rows for the SHAP reference (no summary)")
    row = assembled.select(Summarizer.mean(assembled[FEATURES_COL]).alias("mean")).collect()[0]
    means = row["mean"].toArray().tolist()
    if len(means) != size:
        raise ValueError(f"background means have {len(means)} slots, the model {size}")
    return means


def _export_tree(root: Any, kind: str) -> dict[str, list]:
    """One MLlib tree as arrays in pre-order, walked over py4j (~6 calls, ~0.7 ms per node).

    Leaves keep what Spark predicts from: class counts for the forest (Spark normalises them per tree),
    the leaf prediction for GBT. Node weights are the training (weighted) counts of the leaves, summed
    upwards so a parent weighs exactly its children, which TreeSHAP's additivity relies on.
    """
    from py4j.protocol import Py4JError

    left: list[int] = []
    right: list[int] = []
    feature: list[int] = []
    threshold: list[float] = []
    value: list[Any] = []
    weight: list[float] = []
    stack = [(root, -1, "")]
    while stack:
        node, parent, side = stack.pop()
        index = len(left)
        if parent >= 0:
            (left if side == "l" else right)[parent] = index
        left.append(-1)
        right.append(-1)
        if node.subtreeDepth() == 0:  # a leaf
            stats = node.impurityStats().stats()
            feature.append(-1)
            threshold.append(0.0)
            if kind == "gbt":
                value.append(float(node.prediction()))
                weight.append(float(stats[0]))  # variance stats: [weighted count, sum, sum of squares]
            else:
                counts = [float(stats[0]), float(stats[1])]  # weighted class counts (bootstrap weights)
                value.append(counts)
                weight.append(counts[0] + counts[1])
            continue
        split = node.split()
        try:
            threshold.append(float(split.threshold()))
        except Py4JError as exc:  # a CategoricalSplit has no threshold
            raise ValueError(
                "categorical split found: category codes must reach the trees without nominal metadata"
            ) from exc
        feature.append(int(split.featureIndex()))
        value.append(0.0 if kind == "gbt" else [0.0, 0.0])
        weight.append(0.0)
        # Right pushed first so the left subtree is numbered first (pre-order, like sklearn and shap).
        stack.append((node.rightChild(), index, "r"))
        stack.append((node.leftChild(), index, "l"))
    for index in range(len(left) - 1, -1, -1):  # children have larger ids than their parent
        if left[index] >= 0:
            weight[index] = weight[left[index]] + weight[right[index]]
    return {
        "children_left": left,
        "children_right": right,
        "feature": feature,
        "threshold": threshold,
        "value": value,
        "node_sample_weight": weight,
    }


def save_scorer(description: dict[str, Any], folder: str | Path) -> Path:
    """Writes `scorer.json` into `folder` (plain JSON: floats round-trip exactly, no pickle)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SCORER_FILE
    path.write_text(json.dumps(description, allow_nan=False))
    return path
