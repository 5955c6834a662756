"""Drift as pure work: which columns drifted, how far, and how severe that is; and which rows to compare.

Evidently 0.7's `DataDriftPreset` (with tests) judges every column of two samples (`run_report`); `judge`
grades severity none/moderate/severe/critical as the worst of three judgements, the same for both modes
(the production model's data, or any two tables): the drifted share, how many of the model's most important
features drifted, and how far the worst column drifted beyond its own threshold (the magnitude). `retrain`
is true at critical. `ColumnSpec` says which columns are compared (a model's features, or a columns spec
file); the segment shares are compared as a model sees them. The reports' storage is `monitoring.io`'s.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from jobs.churn.contract.features import Shares
    from jobs.churn.contract.spec import TrainSpec

SEVERITIES = ("none", "moderate", "severe", "critical")
# Evidently 0.7's tests that report a p-value without saying so in their display name (the others that do
# say "p_value": K-S, chi-square, Z-test); Total-Variation-Distance is one of them, despite its name
P_VALUE_METHODS = frozenset(
    {"anderson-darling", "cramer-von mises", "epps-singleton", "fisher's exact test", "g_test",
     "mann-whitney u-rank test", "empirical_mmd", "t_test", "total-variation-distance"}
)  # fmt: skip


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    value: float
    threshold: float

    @property
    def p_value(self) -> bool:
        method = self.method.lower()
        return "p_value" in method or method in P_VALUE_METHODS

    @property
    def drifted(self) -> bool:
        # p-value methods (small data: K-S, chi-square) drift BELOW the threshold, distances at/above it
        return self.value < self.threshold if self.p_value else self.value >= self.threshold

    @property
    def ratio(self) -> float:
        """How many times its threshold the column drifted (>= 1 drifted, 2 = twice as far): a distance
        over its threshold; a p-value shrinks by orders of magnitude as drift grows, so for it
        log(p) / log(threshold) (0.05 ** 2 is 2x, a p-value of 0 is finite, ~236x at 0.05)."""
        if self.p_value:
            if not 0 < self.threshold < 1:
                return float(self.drifted)
            p = min(max(self.value, sys.float_info.min), 1.0)
            ratio = math.log(p) / math.log(self.threshold)
        else:
            if self.threshold <= 0:
                return float(self.drifted)
            ratio = self.value / self.threshold
        return round(ratio, 9)  # 0.8 / 0.1 is 8x (not 7.999999999999999) against a cut of 8


@dataclass(frozen=True)
class Verdict:
    severity: str
    important_drifted: list[str]
    magnitude: float  # the largest ratio of a column's drift to its threshold (0.0: no column)
    magnitude_column: str | None
    reasons: list[str]


@dataclass
class DriftResult:
    date: str
    severity: str
    retrain: bool
    drift_share: float
    drift_magnitude: float  # the worst column's drift / its threshold (ColumnDrift.ratio)
    drift_magnitude_column: str | None
    drifted_columns: list[str]
    columns: dict[str, dict[str, Any]]
    important_drifted: list[str]
    reasons: list[str]
    reference: dict[str, Any]
    current: dict[str, Any]
    sample_rows: dict[str, int]
    report_uris: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str | None = None


def column_drifts(report: dict) -> tuple[float, list[ColumnDrift]]:
    """(share of drifted columns, per-column drift) from an Evidently 0.7 snapshot's `dict()`."""
    share, columns = None, []
    for metric in report["metrics"]:
        config = metric.get("config") or {}
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif kind.endswith("ValueDrift"):
            columns.append(
                ColumnDrift(
                    config["column"], config["method"], float(metric["value"]), float(config["threshold"])
                )
            )
    if share is None:
        raise ValueError("the Evidently report holds no DriftedColumnsCount metric")
    return share, columns


def judge(
    share: float,
    drifts: list[ColumnDrift],
    important: list[str],
    share_cuts: tuple[float, float, float],
    important_cuts: tuple[int, int, int],
    magnitude_cuts: tuple[float, float, float],
) -> Verdict:
    """Severity = the worst of (drifted share vs its cuts), (drifted top features vs their cuts; none when
    `important` is empty, as for two tables without a model) and (the largest drift / threshold ratio of a
    drifted column vs its cuts): one column far beyond its threshold counts even among many calm ones."""
    drifted = {d.column for d in drifts if d.drifted}
    important_drifted = [c for c in important if c in drifted]
    measured = [d for d in drifts if not math.isnan(d.ratio)]
    worst = max(measured, key=lambda d: d.ratio, default=None)
    magnitude = worst.ratio if worst else 0.0
    by_share = sum(share >= cut for cut in share_cuts)
    by_importance = sum(len(important_drifted) >= cut for cut in important_cuts)
    by_magnitude = sum(magnitude >= cut for cut in magnitude_cuts) if worst and worst.drifted else 0
    level = max(by_share, by_importance, by_magnitude)
    reasons = [f"{share:.0%} of the columns drifted (cuts {', '.join(f'{c:.0%}' for c in share_cuts)})"]
    if important:
        reasons.append(
            f"{len(important_drifted)} of the top {len(important)} features drifted"
            + (f" ({', '.join(important_drifted)})" if important_drifted else "")
            + f" (cuts {', '.join(map(str, important_cuts))})"
        )
    cuts = ", ".join(f"{c:g}x" for c in magnitude_cuts)
    if worst and worst.drifted:
        reasons.append(
            f"{worst.column} drifted {magnitude:.1f}x its threshold ({worst.method} {worst.value:.3g} vs "
            f"{worst.threshold:g}; cuts {cuts})"
        )
    else:
        reasons.append(f"no column drifted (the closest at {magnitude:.1f}x its threshold; cuts {cuts})")
    return Verdict(SEVERITIES[level], important_drifted, magnitude, worst.column if worst else None, reasons)


def run_report(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]):
    """The Evidently snapshot (DataDriftPreset with its tests) of current against reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = numeric + categorical
    ref = Dataset.from_pandas(reference[columns], data_definition=definition)
    cur = Dataset.from_pandas(current[columns], data_definition=definition)
    return Report([DataDriftPreset()], include_tests=True).run(reference_data=ref, current_data=cur)


# --- which columns ---------------------------------------------------------------------------------------

COLUMN_KEYS = ("id", "label", "numeric", "categorical", "shares")
TRAINING_KEYS = ("name", "models", "split", "selection_metric", "threshold")  # a training spec's; ignored


@dataclass(frozen=True)
class ColumnSpec:
    """The columns compared: numeric and categorical (share columns derived from `shares` as the model
    does). `id` and `label`, when named, must be in both tables; they are never compared."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    shares: Shares | None = None
    id: str | None = None
    label: str | None = None

    @classmethod
    def of(cls, spec: TrainSpec) -> ColumnSpec:
        """A (resolved) model's features; its id and label are the model's business, not drift's."""
        return cls(spec.numeric, spec.categorical, spec.shares)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def resolved(self) -> bool:
        return self.shares is None or self.shares.resolved

    def required_columns(self) -> tuple[str, ...]:
        """What a table must hold: id and label (when named), the features, the map and total of `shares`."""
        derived = tuple(self.shares.columns) if self.shares is not None and self.shares.resolved else ()
        extra = () if self.shares is None else (self.shares.column, self.shares.total)
        named = tuple(c for c in (self.id, self.label) if c)
        numeric = tuple(c for c in self.numeric if c not in derived)
        return tuple(dict.fromkeys((*named, *numeric, *self.categorical, *extra)))

    def with_vocabulary(self, keys: list[str]) -> ColumnSpec:
        from jobs.churn.contract.spec import SpecError

        if self.shares is None:
            return self
        shares = self.shares.with_vocabulary(keys)
        taken = sorted(set(shares.columns) & {self.id, self.label, *self.numeric, *self.categorical})
        if taken:
            raise SpecError(f"the share columns {taken} of {shares.column!r} are columns of the spec already")
        return replace(self, numeric=(*self.numeric, *shares.columns), shares=shares)


def load_columns(path: str | Path) -> ColumnSpec:
    """The `--columns` YAML: `numeric` and/or `categorical` lists (or `shares`); `id`, `label` optional."""
    from jobs.churn.contract.spec import (  # the training spec's checks
        SpecError,
        parse_shares,
        read_yaml_mapping,
    )

    path, raw = read_yaml_mapping(path, "columns spec")
    unknown = sorted(set(raw) - set(COLUMN_KEYS) - set(TRAINING_KEYS))
    if unknown:
        raise SpecError(f"{path}: unknown keys {unknown} (known: {list(COLUMN_KEYS)})")
    lists = {}
    for key in ("numeric", "categorical"):
        value = raw.get(key) or []
        if not isinstance(value, list):
            raise SpecError(f"{path}: {key!r} must be a list of column names, got {value!r}")
        lists[key] = tuple(value)
    named = {key: raw[key] for key in ("id", "label") if raw.get(key) is not None}
    columns = [*named.values(), *lists["numeric"], *lists["categorical"]]
    if not all(isinstance(c, str) and c for c in columns):
        raise SpecError(f"{path}: column names must be non-empty strings: {columns}")
    shares = parse_shares(raw.get("shares"), str(path))
    if shares is not None:
        columns.append(shares.column)
        if shares.resolved:
            columns.extend(shares.columns)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise SpecError(f"{path}: a column may play one role only, repeated: {repeated}")
    if not lists["numeric"] and not lists["categorical"] and shares is None:
        raise SpecError(f"{path}: no columns to compare (give 'numeric' and/or 'categorical')")
    numeric = lists["numeric"] + (tuple(shares.columns) if shares is not None and shares.resolved else ())
    return ColumnSpec(numeric, lists["categorical"], shares, named.get("id"), named.get("label"))


def check_columns(df: DataFrame, info: dict, spec: ColumnSpec) -> None:
    """A clear error (exit 2) when the table lacks the id, the label or feature columns of the spec."""
    for role, column in (("id", spec.id), ("label", spec.label)):
        if column and column not in df.columns:
            raise ValueError(f"{info['path']} lacks the {role} column {column!r} named in the columns spec")
    missing = [c for c in spec.required_columns() if c not in df.columns]
    if missing:
        raise ValueError(f"{info['path']} lacks the columns {missing}")


def sample_table(
    df: DataFrame, info: dict, spec: ColumnSpec, rows: int, seed: int = 7
) -> tuple[pd.DataFrame, dict]:
    """About `rows` rows of the spec's feature columns; a spec with `shares` derives its share columns
    from the table's map with its vocabulary (`jobs.churn.features.shares.expand_shares`), as the model does."""
    from jobs.churn.features.shares import expand_shares

    total = df.count()
    if total == 0:
        raise ValueError(
            f"{info['path']} holds no rows"
            + (f" for snapshot {info['snapshot_date']}" if info.get("snapshot_date") else "")
        )
    if spec.shares is not None:
        df = expand_shares(df, spec.shares)
    fraction = min(1.0, rows / total * 1.1)
    sample = df.select(*spec.features)
    if fraction < 1.0:
        sample = sample.sample(fraction=fraction, seed=seed)
    frame = sample.limit(rows).toPandas()
    return frame, {**info, "rows": total, "sampled": len(frame)}


def retrain_snapshot(summary: dict | None) -> str | None:
    """The snapshot to retrain on when the report says retrain: its current table's snapshot date (''
    for a current table without one: the training run then picks its own). None: no retraining."""
    if not summary or not summary.get("retrain"):
        return None
    return (summary.get("current") or {}).get("snapshot_date") or ""


def drift_figures(result: DriftResult):
    """The figures Prometheus gets of a drift check (jobs/common/metrics.py)."""
    from jobs.common.metrics import Figures, epoch_of

    figures = Figures("churn_drift")
    figures.add(
        "kpi_churn_drift_date_seconds", epoch_of(result.date), "date of the latest drift check (unix time)"
    )
    figures.add(
        "kpi_churn_drift_share", result.drift_share, "share of drifted feature columns (latest check)"
    )
    figures.add(
        "kpi_churn_drift_magnitude", result.drift_magnitude, "the worst column's drift / its threshold"
    )
    level = "0 none, 1 moderate, 2 severe, 3 critical (latest check)"
    figures.add("kpi_churn_drift_severity_level", SEVERITIES.index(result.severity), level)
    for column, drift in result.columns.items():
        figures.add(
            "kpi_churn_drift_column_ratio", drift.get("ratio"), "drift / threshold, by column", column=column
        )
    return figures
