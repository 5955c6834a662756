"""The training spec: which table columns are the id, the label and the features, and what to search.

The trainer is driven by this spec only, so any customer feature table trains, not only ours. A spec is a
small YAML file (see `jobs/churn/specs/`); `load_spec` checks it completely before any Spark work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MODEL_KINDS = ("logistic_regression", "random_forest", "gbt")
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "f1")
# Grid keys are MLlib param names; only these may be searched (others would silently be ignored).
GRID_PARAMS = {
    "logistic_regression": {"regParam", "elasticNetParam", "maxIter"},
    "random_forest": {
        "numTrees",
        "maxDepth",
        "minInstancesPerNode",
        "featureSubsetStrategy",
        "subsamplingRate",
    },
    "gbt": {"maxIter", "maxDepth", "stepSize", "minInstancesPerNode", "subsamplingRate"},
}
SPECS_DIR = Path(__file__).parent / "specs"


class SpecError(ValueError):
    """A spec that cannot train: says which key is wrong and why."""


@dataclass(frozen=True)
class Candidate:
    kind: str
    grid: dict[str, tuple[Any, ...]]

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid, in a stable order."""
        from itertools import product

        keys = sorted(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in product(*(self.grid[k] for k in keys))]


@dataclass(frozen=True)
class Split:
    train: float = 0.6
    validation: float = 0.2
    test: float = 0.2
    seed: int = 42


@dataclass(frozen=True)
class TrainSpec:
    name: str
    id: str
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    split: Split = field(default_factory=Split)
    selection_metric: str = "roc_auc"  # computed on the validation split only
    # Decision threshold: "f1" = the one maximising F1 on validation; or a fixed probability.
    threshold: str | float = "f1"

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def required_columns(self) -> tuple[str, ...]:
        return (self.id, self.label, *self.features)


def load_spec(path: str | Path) -> TrainSpec:
    path = Path(path)
    if not path.exists() and (SPECS_DIR / path).exists():
        path = SPECS_DIR / path
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a mapping, got {type(raw).__name__}")
    return parse_spec(raw, source=str(path))


def parse_spec(raw: dict[str, Any], source: str = "spec") -> TrainSpec:
    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in raw:
            raise SpecError(f"{source}: missing key {key!r}")
        if not isinstance(raw[key], kind):
            raise SpecError(f"{source}: {key!r} must be {_kind_name(kind)}, got {raw[key]!r}")
        return raw[key]

    known = {
        "name",
        "id",
        "label",
        "numeric",
        "categorical",
        "models",
        "split",
        "selection_metric",
        "threshold",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{source}: unknown keys {unknown} (known: {sorted(known)})")
    numeric = tuple(need("numeric", list))
    categorical = tuple(raw.get("categorical") or ())
    columns = [need("id", str), need("label", str), *numeric, *categorical]
    if not all(isinstance(c, str) and c for c in columns):
        raise SpecError(f"{source}: column names must be non-empty strings: {columns}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SpecError(f"{source}: a column may play one role only, repeated: {repeated}")
    if not numeric and not categorical:
        raise SpecError(f"{source}: no feature columns")

    models = need("models", dict)
    if not models:
        raise SpecError(f"{source}: 'models' lists no candidate")
    candidates = []
    for kind, grid in models.items():
        if kind not in MODEL_KINDS:
            raise SpecError(f"{source}: unknown model {kind!r} (known: {list(MODEL_KINDS)})")
        grid = grid or {}
        if not isinstance(grid, dict):
            raise SpecError(f"{source}: the grid of {kind} must be a mapping of param -> list of values")
        bad = sorted(set(grid) - GRID_PARAMS[kind])
        if bad:
            raise SpecError(f"{source}: {kind} cannot search {bad} (allowed: {sorted(GRID_PARAMS[kind])})")
        values = {}
        for param, options in grid.items():
            options = options if isinstance(options, list) else [options]
            if not options:
                raise SpecError(f"{source}: {kind}.{param} has no value")
            values[param] = tuple(options)
        candidates.append(Candidate(kind, values))

    split_raw = raw.get("split") or {}
    try:
        split = Split(**split_raw)
    except TypeError as exc:
        raise SpecError(f"{source}: split: {exc}") from exc
    parts = (split.train, split.validation, split.test)
    if min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-9:
        raise SpecError(f"{source}: split fractions must be > 0 and sum to 1, got {parts}")

    metric = raw.get("selection_metric", "roc_auc")
    if metric not in ("roc_auc", "pr_auc"):
        raise SpecError(f"{source}: selection_metric must be roc_auc or pr_auc, got {metric!r}")
    threshold = raw.get("threshold", "f1")
    if threshold != "f1" and not (isinstance(threshold, float | int) and 0 < threshold < 1):
        raise SpecError(f"{source}: threshold must be 'f1' or a probability in (0, 1), got {threshold!r}")

    return TrainSpec(
        name=str(raw.get("name") or Path(source).stem),
        id=raw["id"],
        label=raw["label"],
        numeric=numeric,
        categorical=categorical,
        candidates=tuple(candidates),
        split=split,
        selection_metric=metric,
        threshold=threshold,
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {"list": "a list", "str": "a string", "dict": "a mapping"}.get(k.__name__, k.__name__) for k in kinds
    )


def spec_to_dict(spec: TrainSpec) -> dict[str, Any]:
    """The YAML form of a spec (what `parse_spec` reads back): logged with every model."""
    return {
        "name": spec.name,
        "id": spec.id,
        "label": spec.label,
        "numeric": list(spec.numeric),
        "categorical": list(spec.categorical),
        "models": {c.kind: {k: list(v) for k, v in c.grid.items()} for c in spec.candidates},
        "split": {
            "train": spec.split.train,
            "validation": spec.split.validation,
            "test": spec.split.test,
            "seed": spec.split.seed,
        },
        "selection_metric": spec.selection_metric,
        "threshold": spec.threshold,
    }
