"""JVM-free churn scorer: the fitted Spark pipeline as plain arrays, scored and explained with numpy/SHAP.

Why: a Spark pyfunc needs a JVM (~22 s cold load, ~220 ms per row) and returns no probability, so the app
and the latency benchmark score with this instead, while batch scoring keeps the Spark pipeline. At
training time `export_scorer` reads the fitted stages through py4j into a JSON description (imputer
medians, category labels in index order, the model); `ChurnScorer` replicates `pipeline.prepare` and every
stage exactly (parity <= 1e-6 against Spark is a test).

Explanations (`ChurnScorer.explain`) are SHAP values per original feature column (one-hot slots summed back
into their column), in the model's additive units: ``base_value + sum(shap) == raw_output``:
- logistic regression: log-odds; exact linear SHAP against the means of the assembled training vector
  (interventional, independent features), ``phi_j = coef_j * (x_j - mean_j)``;
- GBT: log-odds (``2 * margin``: MLlib's probability is ``1 / (1 + exp(-2 * margin))``); exact TreeSHAP;
- random forest: probability (the average of the trees' leaf class frequencies); exact TreeSHAP.
TreeSHAP is path-dependent on the training node weights, so it needs no background data.

This module imports neither pyspark nor shap at top level: pyspark only inside `export_scorer`, shap only
when a tree scorer is built.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from jobs.churn.features import MissingFeatures, Shares
from jobs.churn.pipeline import BLANK_CHARS, FEATURES_COL, MISSING_CATEGORY, coded, imputed, indexed, one_hot

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

    from jobs.churn.spec import TrainSpec

FORMAT = "churn-scorer/1"
SCORER_FILE = "scorer.json"
UNITS = {"logistic_regression": "log-odds", "gbt": "log-odds", "random_forest": "probability"}
_SPARK_CLASSES = {
    "LogisticRegressionModel": "logistic_regression",
    "RandomForestClassificationModel": "random_forest",
    "GBTClassificationModel": "gbt",
}
_TRUE_WORDS = ("true", "false")


# ---------------------------------------------------------------------------------------------------------
# Export (training time, with the JVM)
# ---------------------------------------------------------------------------------------------------------


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


def shares_description(shares: Shares | None) -> dict[str, Any] | None:
    if shares is None:
        return None
    return {
        "column": shares.column,
        "total": shares.total,
        "top": shares.top,
        "prefix": shares.prefix,
        "suffix": shares.suffix,
        "vocabulary": list(shares.vocabulary),
    }


def _shares_of(description: dict[str, Any] | None) -> Shares | None:
    if not description:
        return None
    fields = {k: v for k, v in description.items() if k != "vocabulary"}
    return Shares(**fields).with_vocabulary(description["vocabulary"])


def save_scorer(description: dict[str, Any], folder: str | Path) -> Path:
    """Writes `scorer.json` into `folder` (plain JSON: floats round-trip exactly, no pickle)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SCORER_FILE
    path.write_text(json.dumps(description, allow_nan=False))
    return path


# ---------------------------------------------------------------------------------------------------------
# Scoring (no JVM)
# ---------------------------------------------------------------------------------------------------------


class ChurnScorer:
    """Scores and explains rows of raw feature columns exactly like the fitted Spark pipeline."""

    def __init__(self, description: dict[str, Any]) -> None:
        if description.get("format") != FORMAT:
            raise ValueError(f"not a churn scorer description (format {description.get('format')!r})")
        self.description = description
        self.kind: str = description["kind"]
        self.units: str = description["units"]
        spec = description["spec"]
        self.numeric: tuple[str, ...] = tuple(spec["numeric"])
        self.categorical: tuple[str, ...] = tuple(spec["categorical"])
        self.features: tuple[str, ...] = self.numeric + self.categorical
        # the share inputs of a model with a `shares` spec: callers holding feature-table rows expand the
        # map with `jobs.churn.features.with_shares(frame, scorer.shares)` (the model's vocabulary)
        self.shares: Shares | None = _shares_of(spec.get("shares"))
        self._missing = description["missing_category"]
        self._blank = description["blank_chars"]
        self._counts: dict[str, dict[str, int]] = description.get("category_counts") or {}
        self._fill = np.array([description["numeric_fill"][c] for c in self.numeric], dtype=np.float64)
        labels = [description["categories"][c] for c in self.categorical]
        self._lookup = [{label: i for i, label in enumerate(ls)} for ls in labels]
        self._unknown = np.array([len(ls) for ls in labels], dtype=np.int64)
        model = description["model"]
        if self.kind == "logistic_regression":
            self._init_linear(model)
        elif self.kind in ("random_forest", "gbt"):
            self._init_trees(model)
        else:
            raise ValueError(f"unknown model kind {self.kind!r}")

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> ChurnScorer:
        return cls(description)

    @classmethod
    def load(cls, folder: str | Path) -> ChurnScorer:
        """From a folder written by `save_scorer` (or the `scorer.json` file itself)."""
        path = Path(folder)
        path = path / SCORER_FILE if path.is_dir() else path
        return cls(json.loads(path.read_text()))

    @property
    def base_value(self) -> float:
        """The SHAP reference: the expected model output in `units`."""
        return self._base_value

    # -- public scoring -------------------------------------------------------------------------------

    def most_frequent(self, column: str) -> str | None:
        """The category of `column` most training rows had (ties: the first in the indexer's order); None
        when the model knows no category. A model exported without counts (before they were recorded)
        gives its first known category."""
        known = [label for label in self.description["categories"][column] if label != self._missing]
        if not known:
            return None
        counts = self._counts.get(column, {})
        return max(known, key=lambda label: (counts.get(label, 0), -known.index(label)))

    def predict_proba(
        self, frame: pd.DataFrame | Mapping[str, Any] | Iterable[Mapping[str, Any]]
    ) -> np.ndarray:
        """P(label = 1) per row, as Spark's `probability[1]`; a dict is one row (the fast path)."""
        num, codes = self._encode(frame)
        if self.kind == "logistic_regression":
            return _sigmoid(self._linear_margin(num, codes))
        votes = self._leaf_values(num, codes)
        if self.kind == "gbt":
            return _sigmoid(2.0 * votes)
        return votes[:, 1] / (votes[:, 0] + votes[:, 1])

    def raw_output(self, frame: pd.DataFrame | Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> np.ndarray:
        """The model output in `units`, the quantity `explain` decomposes."""
        num, codes = self._encode(frame)
        if self.kind == "logistic_regression":
            return self._linear_margin(num, codes)
        votes = self._leaf_values(num, codes)
        if self.kind == "gbt":
            return 2.0 * votes
        return votes[:, 1] / (votes[:, 0] + votes[:, 1])

    def explain(self, frame: pd.DataFrame | Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """SHAP values per original feature column; `attrs` holds `base_value` and `units`."""
        num, codes = self._encode(frame)
        if self.kind == "logistic_regression":
            values = np.concatenate(
                [
                    (num - self._num_means) * self._num_coef,
                    np.take_along_axis(self._cat_coef, codes.T, axis=1).T - self._cat_reference,
                ],
                axis=1,
            )
        else:
            assembled = self._assemble(num, codes)
            values = self._explainer.shap_values(assembled, check_additivity=False)[:, self._feature_order]
        index = frame.index if isinstance(frame, pd.DataFrame) else None
        out = pd.DataFrame(values, columns=list(self.features), index=index)
        out.attrs.update(base_value=self._base_value, units=self.units)
        return out

    # -- input encoding (replicates pipeline.prepare + Imputer + StringIndexer) ----------------------

    def _encode(self, frame: Any) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(frame, pd.DataFrame):
            if len(frame) > 8:
                return self._encode_columns(frame)
            positions = frame.columns.get_indexer(self.features)
            if (positions < 0).any():
                raise MissingFeatures(
                    f"missing feature columns {[c for c in self.features if c not in frame]}"
                )
            # One object array is ~100x cheaper than to_dict("records") for a wide one-row frame.
            rows: Any = frame.to_numpy(dtype=object)[:, positions]
        else:
            records = [frame] if isinstance(frame, Mapping) else list(frame)
            absent = sorted({c for r in records for c in self.features if c not in r})
            if absent:
                raise MissingFeatures(f"missing feature columns {absent}")
            rows = [[r[c] for c in self.features] for r in records]
        split = len(self.numeric)
        num = np.array([[_to_double(v) for v in row[:split]] for row in rows], dtype=np.float64)
        codes = np.array(
            [[self._code(j, v) for j, v in enumerate(row[split:])] for row in rows], dtype=np.int64
        )
        return self._impute(num.reshape(len(rows), split)), codes.reshape(len(rows), len(self.categorical))

    def _encode_columns(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        absent = [c for c in self.features if c not in frame.columns]
        if absent:
            raise MissingFeatures(f"missing feature columns {absent}")
        n = len(frame)
        num = np.empty((n, len(self.numeric)), dtype=np.float64)
        for j, c in enumerate(self.numeric):
            s = frame[c]
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                num[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                num[:, j] = [_to_double(v) for v in s.tolist()]
        codes = np.empty((n, len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            memo: dict[tuple[type, Any], int] = {}
            column = codes[:, j]
            for i, v in enumerate(frame[c].tolist()):
                try:
                    key = (type(v), v)
                    code = memo.get(key)
                    if code is None:
                        code = memo[key] = self._code(j, v)
                except TypeError:  # unhashable value
                    code = self._code(j, v)
                column[i] = code
        return self._impute(num), codes

    def _impute(self, num: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(num), self._fill, num)

    def _code(self, j: int, value: Any) -> int:
        """StringIndexer(keep) index of one raw value, after `prepare`'s cast to string."""
        lookup = self._lookup[j]
        text = _spark_string(value)
        if text is None or not text.strip(self._blank):
            text = self._missing
        code = lookup.get(text)
        if code is None and isinstance(value, float | np.floating) and float(value).is_integer():
            # An integer column that pandas turned into floats (because of a NaN) keeps its labels.
            code = lookup.get(str(int(value)))
        return self._unknown[j] if code is None else code

    # -- logistic regression --------------------------------------------------------------------------

    def _init_linear(self, model: dict[str, Any]) -> None:
        coef = np.asarray(model["coefficients"], dtype=np.float64)
        means = np.asarray(model["means"], dtype=np.float64)
        self._intercept = float(model["intercept"])
        num_slots = np.array([model["numeric_slots"][c] for c in self.numeric], dtype=np.int64)
        self._num_coef, self._num_means = coef[num_slots], means[num_slots]
        # Per categorical column: the coefficient of each category index (0 when its slot was dropped),
        # padded to a rectangle; the reference is the column's contribution at the training means.
        width = int(self._unknown.max()) + 1 if self.categorical else 1
        self._cat_coef = np.zeros((len(self.categorical), width), dtype=np.float64)
        self._cat_reference = np.zeros(len(self.categorical), dtype=np.float64)
        for j, c in enumerate(self.categorical):
            slots = np.asarray(model["category_slots"][c], dtype=np.int64)
            used = slots[slots >= 0]
            self._cat_coef[j, : len(slots)] = np.where(slots >= 0, coef[np.maximum(slots, 0)], 0.0)
            self._cat_reference[j] = float(coef[used] @ means[used])
        self._base_value = self._intercept + float(coef @ means)

    def _linear_margin(self, num: np.ndarray, codes: np.ndarray) -> np.ndarray:
        margin = num @ self._num_coef + self._intercept
        if self.categorical:
            margin = margin + np.take_along_axis(self._cat_coef, codes.T, axis=1).sum(axis=0)
        return margin

    # -- trees -----------------------------------------------------------------------------------------

    def _init_trees(self, model: dict[str, Any]) -> None:
        position = {("numeric", c): j for j, c in enumerate(self.numeric)}
        position.update({("code", c): len(self.numeric) + j for j, c in enumerate(self.categorical)})
        # assembled column k comes from encoded column self._assembly[k]
        self._assembly = np.array([position[(s, c)] for s, c in model["inputs"]], dtype=np.int64)
        self._feature_order = np.argsort(self._assembly)  # assembled -> spec feature order
        trees = model["trees"]
        weights = np.asarray(model["tree_weights"], dtype=np.float64)
        sizes = [len(t["children_left"]) for t in trees]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        left, right, feature, threshold, leaf = [], [], [], [], []
        for offset, tree in zip(offsets, trees, strict=True):
            ids = np.arange(len(tree["children_left"]), dtype=np.int64) + offset
            tl = np.asarray(tree["children_left"], dtype=np.int64)
            is_leaf = tl < 0
            # Leaves point to themselves, so every row can take the same number of steps.
            left.append(np.where(is_leaf, ids, tl + offset))
            right.append(np.where(is_leaf, ids, np.asarray(tree["children_right"], dtype=np.int64) + offset))
            feature.append(np.where(is_leaf, 0, np.asarray(tree["feature"], dtype=np.int64)))
            threshold.append(np.asarray(tree["threshold"], dtype=np.float64))
            leaf.append(self._leaf_vectors(tree))
        self._roots = offsets
        self._left, self._right = np.concatenate(left), np.concatenate(right)
        self._feature, self._threshold = np.concatenate(feature), np.concatenate(threshold)
        self._depth = max(_depth(t["children_left"], t["children_right"]) for t in trees)
        leaves = np.concatenate(leaf)
        if self.kind == "gbt":
            # margin = sum_t w_t * leaf_t, like MLlib's dot product of tree predictions and weights
            self._node_value = leaves[:, :1] * np.repeat(weights, sizes)[:, None]
        else:
            self._node_value = leaves  # per-tree normalised class frequencies, summed as Spark's votes
        self._explainer = _tree_explainer(trees, weights, self.kind)
        self._base_value = float(np.ravel(self._explainer.expected_value)[0])

    def _leaf_vectors(self, tree: dict[str, Any]) -> np.ndarray:
        if self.kind == "gbt":
            return np.asarray(tree["value"], dtype=np.float64).reshape(-1, 1)
        counts = np.asarray(tree["value"], dtype=np.float64)
        total = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, total, out=np.zeros_like(counts), where=total != 0)

    def _assemble(self, num: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return np.concatenate([num, codes.astype(np.float64)], axis=1)[:, self._assembly]

    def _leaf_values(self, num: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Sum over trees of the leaf vectors each row lands in (Spark: value <= threshold goes left)."""
        x = self._assemble(num, codes)
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self._roots, (len(x), len(self._roots)))
        for _ in range(self._depth):
            go_left = x[rows, self._feature[node]] <= self._threshold[node]
            node = np.where(go_left, self._left[node], self._right[node])
        values = self._node_value[node]  # (rows, trees, outputs)
        return values[:, :, 0].sum(axis=1) if self.kind == "gbt" else values.sum(axis=1)


def _tree_explainer(trees: list[dict[str, Any]], weights: np.ndarray, kind: str) -> Any:
    """shap.TreeExplainer over the exported trees ("custom tree" dicts), in the scorer's units.

    shap's TreeSHAP sends ``x <= threshold`` left, like MLlib, and compares in float64 here
    (input_dtype), so explained paths are Spark's paths. Leaf values: GBT ``2 * w_t * prediction``
    (log-odds), forest ``P(1 | leaf) / numTrees`` (probability).
    """
    import shap

    shap_trees = []
    for tree, w in zip(trees, weights, strict=True):
        left = np.asarray(tree["children_left"], dtype=np.int32)
        if kind == "gbt":
            value = 2.0 * w * np.asarray(tree["value"], dtype=np.float64)
        else:
            counts = np.asarray(tree["value"], dtype=np.float64)
            total = counts.sum(axis=1)
            value = np.divide(counts[:, 1], total, out=np.zeros(len(counts)), where=total != 0) / len(trees)
        shap_trees.append(
            {
                "children_left": left,
                "children_right": np.asarray(tree["children_right"], dtype=np.int32),
                "children_default": left,
                "features": np.where(left < 0, -2, np.asarray(tree["feature"])).astype(np.int32),
                "thresholds": np.where(left < 0, -2.0, np.asarray(tree["threshold"], dtype=np.float64)),
                "values": value.reshape(-1, 1),
                "node_sample_weight": np.asarray(tree["node_sample_weight"], dtype=np.float64),
            }
        )
    model = {
        "trees": shap_trees,
        "base_offset": 0.0,
        "tree_output": "raw_value",
        "input_dtype": np.float64,
        "internal_dtype": np.float64,
    }
    return shap.TreeExplainer(model, feature_perturbation="tree_path_dependent", model_output="raw")


def _depth(children_left: list[int], children_right: list[int]) -> int:
    depth, frontier = 0, [0]
    while True:
        frontier = [c for n in frontier for c in (children_left[n], children_right[n]) if c >= 0]
        if not frontier:
            return depth
        depth += 1


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-margin))


def _to_double(value: Any) -> float:
    """Spark's try_cast(value AS DOUBLE): None and unparsable text -> NaN (imputed later)."""
    if value is None:
        return math.nan
    if isinstance(value, float | int | np.number | Decimal):  # bool is an int: True -> 1.0 like Spark
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if "_" in text:  # Python accepts 1_000, Spark does not
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    if value is pd.NA or value is pd.NaT:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _spark_string(value: Any) -> str | None:
    """Spark's CAST(value AS STRING) for the types a pandas frame carries; None for missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return _TRUE_WORDS[0] if value else _TRUE_WORDS[1]
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else _java_double(float(value))
    return str(value)


def _java_double(value: float) -> str:
    """Java's Double.toString (what Spark prints): 1.0, 0.001, 1.0E7, 1.5E-4, Infinity."""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = exponent + len(digits) - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"


# ---------------------------------------------------------------------------------------------------------
# MLflow pyfunc
# ---------------------------------------------------------------------------------------------------------


class ChurnPyfuncModel(PythonModel):
    """The scorer as an MLflow pyfunc: `probability`, plus `shap_<feature>` columns with explain=True.

    Log with ``artifacts={"scorer": <folder of save_scorer>}``, `pyfunc_signature(...)`,
    `pyfunc_requirements()` and ``code_paths=["jobs"]`` (the class is pickled by reference).
    """

    def load_context(self, context: Any) -> None:
        self.scorer = ChurnScorer.load(context.artifacts["scorer"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        out = pd.DataFrame({"probability": self.scorer.predict_proba(frame)}, index=frame.index)
        if params and params.get("explain"):
            shap_values = self.scorer.explain(frame)
            for column in self.scorer.features:
                out[f"shap_{column}"] = shap_values[column].to_numpy()
            out["shap_base_value"] = self.scorer.base_value
        return out


def pyfunc_signature(description: dict[str, Any]) -> ModelSignature:
    """Explicit signature (inference in a subprocess costs ~50 s): raw features in, probability out.

    Numerics are declared double, MLflow's advice for integer columns that may hold missing values; MLflow
    then refuses int64 input as an unsafe cast, so callers send floats (``frame.astype(float)``).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    spec = description["spec"]
    inputs = Schema(
        [ColSpec("double", c) for c in spec["numeric"]] + [ColSpec("string", c) for c in spec["categorical"]]
    )
    outputs = Schema([ColSpec("double", "probability")])
    params = ParamSchema([ParamSpec("explain", "boolean", False)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pyfunc_requirements() -> list[str]:
    """Pinned pip requirements of the pyfunc (no pyspark: the scorer needs no JVM)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "numpy", "pandas", "shap", "PyYAML")]
