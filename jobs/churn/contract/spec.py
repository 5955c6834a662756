"""The training spec: which table columns are the id, the label and the features, and what to search.

The trainer is driven by this spec only, so any customer feature table trains, not only ours. A spec is a
small YAML file (see `jobs/churn/contract/specs/`); `load_spec` checks it completely before any Spark work starts.

Optional key `shares` (generic, see `jobs.churn.contract.features.Shares`): a map column (key -> count) becomes one
numeric share column per top key of the TRAINING data plus an "other" column. The trainer resolves the
vocabulary; the resolved spec (vocabulary and derived columns, which are then part of `numeric`) is what
is logged with the model, so batch scoring, the app, promotion and drift use the model's own set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jobs.churn.contract.features import Shares

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
    shares: Shares | None = None  # resolved: its derived columns are the last ones of `numeric`

    @property
    def features(self) -> tuple[str, ...]:
        """The model's inputs (share columns included once resolved)."""
        return self.numeric + self.categorical

    @property
    def derived(self) -> tuple[str, ...]:
        """The numeric columns the model derives from `shares` (empty before the vocabulary is known)."""
        return tuple(self.shares.columns) if self.shares is not None and self.shares.resolved else ()

    @property
    def base_numeric(self) -> tuple[str, ...]:
        """The numeric columns a table must hold (the derived ones come from the map)."""
        return tuple(c for c in self.numeric if c not in self.derived)

    @property
    def resolved(self) -> bool:
        return self.shares is None or self.shares.resolved

    def table_columns(self) -> tuple[str, ...]:
        """The feature columns a table must hold to train or be scored (map and total of `shares`)."""
        extra = () if self.shares is None else (self.shares.column, self.shares.total)
        return tuple(dict.fromkeys((*self.base_numeric, *self.categorical, *extra)))

    def required_columns(self) -> tuple[str, ...]:
        return (self.id, self.label, *self.table_columns())

    def with_vocabulary(self, keys: list[str] | tuple[str, ...]) -> TrainSpec:
        """This spec with the `shares` vocabulary resolved: the derived columns join `numeric`."""
        from dataclasses import replace

        if self.shares is None:
            return self
        shares = self.shares.with_vocabulary(keys)
        numeric = (*self.base_numeric, *shares.columns)
        _check_roles(self.id, self.label, numeric, self.categorical, shares, self.name)
        return replace(self, numeric=numeric, shares=shares)


def read_yaml_mapping(path: str | Path, what: str = "spec") -> tuple[Path, dict]:
    """A YAML mapping from `path` (or from `specs/` when only a name is given), and where it was found."""
    path = Path(path)
    if not path.exists() and (SPECS_DIR / path).exists():
        path = SPECS_DIR / path
    if not path.is_file():
        raise SpecError(f"{what} file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a {what} is a mapping, got {type(raw).__name__}")
    return path, raw


def load_spec(path: str | Path) -> TrainSpec:
    path, raw = read_yaml_mapping(path)
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
        "shares",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{source}: unknown keys {unknown} (known: {sorted(known)})")
    numeric = tuple(need("numeric", list))
    categorical = tuple(raw.get("categorical") or ())
    columns = [need("id", str), need("label", str), *numeric, *categorical]
    if not all(isinstance(c, str) and c for c in columns):
        raise SpecError(f"{source}: column names must be non-empty strings: {columns}")
    shares = parse_shares(raw.get("shares"), source)
    if shares is not None and shares.resolved:
        numeric = (*numeric, *shares.columns)
    _check_roles(raw["id"], raw["label"], numeric, categorical, shares, source)
    if not numeric and not categorical and shares is None:
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
        shares=shares,
    )


_NAME_PART = re.compile(r"^[A-Za-z0-9_]*$")


def parse_shares(raw: Any, source: str) -> Shares | None:
    if raw is None:
        return None
    where = f"{source}: shares"
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping (column, total, top, prefix[, suffix])")
    known = {"column", "total", "top", "prefix", "suffix", "vocabulary", "columns"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    for key in ("column", "total", "prefix"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise SpecError(f"{where}: {key!r} must be a non-empty string, got {raw.get(key)!r}")
    top = raw.get("top")
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 100:
        raise SpecError(f"{where}: 'top' must be a whole number from 1 to 100, got {top!r}")
    suffix = raw.get("suffix", "")
    for key, value in (("prefix", raw["prefix"]), ("suffix", suffix)):
        if not isinstance(value, str) or not _NAME_PART.match(value):
            raise SpecError(f"{where}: {key!r} may hold letters, digits and _ only, got {value!r}")
    shares = Shares(raw["column"], raw["total"], top, raw["prefix"], suffix)
    vocabulary = raw.get("vocabulary")
    if vocabulary is None:
        if "columns" in raw:
            raise SpecError(f"{where}: 'columns' without a 'vocabulary'")
        return shares
    if not isinstance(vocabulary, list) or not all(isinstance(k, str) for k in vocabulary):
        raise SpecError(f"{where}: 'vocabulary' must be a list of strings, got {vocabulary!r}")
    try:
        shares = shares.with_vocabulary(vocabulary)
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from exc
    if "columns" in raw and list(raw["columns"]) != list(shares.columns):
        raise SpecError(
            f"{where}: 'columns' {raw['columns']} do not follow from the vocabulary ({list(shares.columns)})"
        )
    return shares


def _check_roles(
    id_: str,
    label: str,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
    shares: Shares | None,
    source: str,
) -> None:
    columns = [id_, label, *numeric, *categorical]
    if shares is not None:
        columns.append(shares.column)
        if shares.total in (id_, label, *categorical):
            raise SpecError(
                f"{source}: shares.total {shares.total!r} must be a count, not the id, label or a category"
            )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SpecError(f"{source}: a column may play one role only, repeated: {repeated}")


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
        "numeric": list(spec.base_numeric),
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
        **({"shares": _shares_to_dict(spec.shares)} if spec.shares is not None else {}),
    }


def _shares_to_dict(shares: Shares) -> dict[str, Any]:
    out: dict[str, Any] = {
        "column": shares.column,
        "total": shares.total,
        "top": shares.top,
        "prefix": shares.prefix,
        "suffix": shares.suffix,
    }
    if shares.resolved:
        out["vocabulary"] = list(shares.vocabulary)
        out["columns"] = list(shares.columns)  # for the reader; checked against the vocabulary on load
    return out
