"""Scoring and explaining without a JVM: `ChurnScorer` over the description `export` wrote.

Explanations (`ChurnScorer.explain`) are SHAP values per original feature column (one-hot slots summed back
into their column), in the model's additive units: ``base_value + sum(shap) == raw_output``:
- logistic regression: log-odds; exact linear SHAP against the means of the assembled training vector
  (interventional, independent features), ``phi_j = coef_j * (x_j - mean_j)``;
- GBT: log-odds (``2 * margin``: MLlib's probability is ``1 / (1 + exp(-2 * margin))``); exact TreeSHAP;
- random forest: probability (the average of the trees' leaf class frequencies); exact TreeSHAP.
TreeSHAP is path-dependent on the training node weights, so it needs no background data.

This module imports neither pyspark nor shap at top level: shap only when a tree scorer is built.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs.churn.contract.features import MissingFeatures, Shares
from jobs.churn.deployment.scorer.spark_cast import spark_string, to_double

FORMAT = "churn-scorer/1"
SCORER_FILE = "scorer.json"
UNITS = {"logistic_regression": "log-odds", "gbt": "log-odds", "random_forest": "probability"}


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


def shares_of(description: dict[str, Any] | None) -> Shares | None:
    if not description:
        return None
    fields = {k: v for k, v in description.items() if k != "vocabulary"}
    return Shares(**fields).with_vocabulary(description["vocabulary"])


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
        # map with `jobs.churn.features.shares.with_shares(frame, scorer.shares)` (the model's vocabulary)
        self.shares: Shares | None = shares_of(spec.get("shares"))
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
        num = np.array([[to_double(v) for v in row[:split]] for row in rows], dtype=np.float64)
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
                num[:, j] = [to_double(v) for v in s.tolist()]
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
        text = spark_string(value)
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
