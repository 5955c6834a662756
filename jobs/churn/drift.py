"""Drift monitor: Evidently 0.7 data drift of a current feature snapshot against a reference.

``python -m jobs.churn.drift --date 2026-11-22``: reference = the training snapshot of the `production`
model (its recorded Delta version and snapshot date), current = the latest snapshot of the feature table.
``--reference PATH[@VERSION] --current PATH[@VERSION] --columns SPEC.yaml``: any two tables (a Delta folder,
a Parquet file or folder of `.parquet`/`.pq` files, a CSV file), the columns from a spec (its numeric and
categorical lists; `id` and `label` optional, checked against both tables when named; a training spec
works too). The segment shares are compared as the model sees them: the share columns of the production
model's vocabulary, or, for a spec file, of the reference table's top segments; both sides derive them
from their map column.

Spark samples both sides (`DRIFT_SAMPLE_ROWS`, recorded); Evidently's `DataDriftPreset` (with tests) judges
every column; the HTML and JSON reports go to `<MLFLOW_ARTIFACTS_BUCKET>/drift-reports/<date>/` through the
project's one object-store module; an MLflow run (tag `run_type=drift`) gets `recent_drift_share`, the
per-feature drift values and methods and the reports. Severity none/moderate/severe/critical is the worst
of three judgements (`judge`, the same for both modes): the drifted share, how many of the model's most
important features drifted, and how far the worst column drifted beyond its own threshold (the magnitude);
`retrain` is true at critical. The last line printed is the machine-readable result (JSON) for the DAG to
branch on.
Exit codes: 0 done (whatever the severity), 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.common.spark import master_option

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from jobs.churn.features import Shares
    from jobs.churn.spec import TrainSpec

log = logging.getLogger(__name__)

SEVERITIES = ("none", "moderate", "severe", "critical")
SHAP_IMPORTANCE = "explainability/shap_importance.csv"  # the model's mean |SHAP| ranking (training logs it)
REPORTS_PREFIX, SUMMARY = "drift-reports", "summary.json"  # <bucket>/drift-reports/<date>/summary.json
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
        from jobs.churn.spec import SpecError

        if self.shares is None:
            return self
        shares = self.shares.with_vocabulary(keys)
        taken = sorted(set(shares.columns) & {self.id, self.label, *self.numeric, *self.categorical})
        if taken:
            raise SpecError(f"the share columns {taken} of {shares.column!r} are columns of the spec already")
        return replace(self, numeric=(*self.numeric, *shares.columns), shares=shares)


def load_columns(path: str | Path) -> ColumnSpec:
    """The `--columns` YAML: `numeric` and/or `categorical` lists (or `shares`); `id`, `label` optional."""
    from jobs.churn.spec import SpecError, parse_shares, read_yaml_mapping  # the training spec's checks

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


# --- I/O -------------------------------------------------------------------------------------------------

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class TableRef:
    path: str
    version: int | None = None
    snapshot: date | None = None
    format: str | None = None  # delta | parquet | csv, from what is on disk (`located`)

    @classmethod
    def parse(cls, text: str) -> TableRef:
        path, _, version = text.partition("@")
        if version and not version.isdigit():
            raise ValueError(f"{text!r}: the version after @ must be a number")
        return cls(path, int(version) if version else None)

    def located(self) -> TableRef:
        """This ref with its format, checked before any Spark work (ValueError: exit 2)."""
        fmt = table_format(self.path)
        if fmt != "delta" and self.version is not None:
            raise ValueError(f"{self.path}: a version (@{self.version}) applies to Delta tables only")
        return replace(self, format=fmt, snapshot=self.snapshot if fmt == "delta" else None)


def table_format(path: str) -> str:
    """delta: a folder with a `_delta_log`; parquet: a `.parquet`/`.pq` file or a folder holding such
    files; csv: a `.csv` file. Anything else, or nothing at the path, is a ValueError."""
    where = Path(path)
    if not where.exists():
        raise ValueError(f"{path}: no such file or folder")
    if where.is_dir():
        if (where / "_delta_log").is_dir():
            return "delta"
        if any(f.suffix.lower() in PARQUET_SUFFIXES and f.is_file() for f in where.rglob("*")):
            return "parquet"
        raise ValueError(f"{path}: a folder with neither a _delta_log (Delta) nor .parquet/.pq files")
    if where.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet"
    if where.suffix.lower() == ".csv":
        return "csv"
    raise ValueError(f"{path}: not a Delta folder, a .parquet/.pq file or folder of them, or a .csv file")


def read_table(spark, ref: TableRef) -> tuple[DataFrame, dict]:
    """Spark reads the table: a pinned Delta version (and snapshot date), Parquet or a CSV file."""
    from jobs.churn.snapshots import open_version, read_with_spark

    fmt = ref.format or table_format(ref.path)
    if fmt == "csv":
        return spark.read.option("header", True).option("inferSchema", True).csv(ref.path), {
            "path": ref.path,
            "format": "csv",
        }
    if fmt == "parquet":
        return spark.read.parquet(ref.path), {"path": ref.path, "format": "parquet"}
    version = ref.version if ref.version is not None else open_version(ref.path).version()
    df, _ = read_with_spark(spark, ref.path, version, ref.snapshot)
    info = {"path": ref.path, "format": "delta", "version": version}
    if ref.snapshot:
        info["snapshot_date"] = ref.snapshot.isoformat()
    return df, info


def sample_table(
    df: DataFrame, info: dict, spec: ColumnSpec, rows: int, seed: int = 7
) -> tuple[pd.DataFrame, dict]:
    """About `rows` rows of the spec's feature columns; a spec with `shares` derives its share columns
    from the table's map with its vocabulary (`jobs.churn.features.expand_shares`), as the model does."""
    from jobs.churn.features import expand_shares

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


def production_inputs(settings) -> tuple[TableRef, TableRef, ColumnSpec, list[str], Any]:
    """Reference, current, the model's (resolved) features and top features from the production model's
    records."""
    from mlflow.tracking import MlflowClient

    from jobs.churn.models import load_spec_of, resolve
    from jobs.churn.snapshots import latest_snapshot_date, open_version, table_path

    ref = resolve(MlflowClient(), settings.mlflow.model_name, "production")
    spec = load_spec_of(ref)
    snapshot, version = ref.tags.get("snapshot_date"), ref.tags.get("feature_version", "")
    reference = TableRef(  # a model trained on a Parquet or CSV file records no version ("None")
        ref.tags["feature_path"],
        int(version) if version.isdigit() else None,
        date.fromisoformat(snapshot) if snapshot else None,
    )
    path = str(table_path(settings.churn.lake_dir))
    latest = open_version(path).version()
    current = TableRef(path, latest, latest_snapshot_date(path, latest))
    important = top_features(ref.run_id, settings.drift.important_features)
    return reference, current, ColumnSpec.of(spec), important, ref


def top_features(run_id: str, k: int) -> list[str]:
    """The model's k most important features by mean |SHAP| (its `explainability/` artifact)."""
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from jobs.churn.monitoring import logged

    if not logged(MlflowClient(), run_id, SHAP_IMPORTANCE):  # an older model: share-based severity only
        log.warning("no SHAP importance for run %s: severity from the drifted share only", run_id)
        return []
    path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{SHAP_IMPORTANCE}")
    ranking = pd.read_csv(path, index_col=0).iloc[:, 0]
    return list(ranking.sort_values(ascending=False).index[:k])


def write_reports(snapshot, folder) -> dict[str, Path]:
    """report.html (self-contained) and report.json of the Evidently snapshot, in `folder`."""
    folder = Path(folder)
    files = {"html": folder / "report.html", "json": folder / "report.json"}
    snapshot.save_html(str(files["html"]))
    files["json"].write_text(json.dumps(snapshot.dict(), default=str))
    return files


def publish(files: dict, result: DriftResult, store, bucket: str) -> dict[str, str]:
    """The reports and the result summary to `<bucket>/drift-reports/<date>/` (S3 or the local folder)."""
    types = {"html": "text/html", "json": "application/json"}
    result.report_uris = {
        kind: store.put_bytes(bucket, report_key(result.date, path.name), path.read_bytes(), types[kind])
        for kind, path in files.items()
    }
    summary = json.dumps(asdict(result), indent=2, default=str).encode()
    result.report_uris["summary"] = store.put_bytes(
        bucket, report_key(result.date, SUMMARY), summary, "application/json"
    )
    return result.report_uris


def report_key(day, name: str = "") -> str:
    """The object key of a drift report's file (`name`), or of the day's folder, in the artifacts bucket."""
    return f"{REPORTS_PREFIX}/{day}/{name}"


def read_summary(store_settings, day) -> dict | None:
    """The summary (`DriftResult` as JSON) of the day's drift report, None when there is none."""
    from jobs.common.objectstore import ObjectNotFound, open_store

    try:
        raw = open_store(store_settings).get_bytes(
            store_settings.mlflow_artifacts_bucket, report_key(day, SUMMARY)
        )
    except ObjectNotFound:
        return None
    return json.loads(raw)


def retrain_snapshot(summary: dict | None) -> str | None:
    """The snapshot to retrain on when the report says retrain: its current table's snapshot date (''
    for a current table without one: the training run then picks its own). None: no retraining."""
    if not summary or not summary.get("retrain"):
        return None
    return (summary.get("current") or {}).get("snapshot_date") or ""


def log_to_mlflow(result: DriftResult, model_ref, files: dict) -> str:
    import mlflow

    with mlflow.start_run(run_name=f"drift-{result.date}") as run:
        mlflow.set_tags(
            {
                "run_type": "drift",
                "drift_severity": result.severity,
                "drift_magnitude_column": result.drift_magnitude_column or "",
                "retrain": str(result.retrain).lower(),
                "report_html": result.report_uris.get("html", ""),
                **(
                    {"model_name": model_ref.name, "model_version": str(model_ref.version)}
                    if model_ref
                    else {}
                ),
            }
        )
        mlflow.log_params(
            {
                "reference": json.dumps(result.reference, default=str)[:500],
                "current": json.dumps(result.current, default=str)[:500],
                "sample_rows_reference": result.sample_rows["reference"],
                "sample_rows_current": result.sample_rows["current"],
                **{f"drift_method.{c}": d["method"] for c, d in result.columns.items()},
            }
        )
        mlflow.log_metrics(
            {
                "recent_drift_share": result.drift_share,
                "drift_magnitude": result.drift_magnitude,
                "drifted_columns": len(result.drifted_columns),
                "severity_level": SEVERITIES.index(result.severity),
                **{f"drift.{c}": d["value"] for c, d in result.columns.items()},
            }
        )
        mlflow.log_dict(asdict(result), "drift/summary.json")
        for path in files.values():
            mlflow.log_artifact(str(path), "drift")
        return run.info.run_id


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.churn.drift", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--date", type=date.fromisoformat, required=True, help="logical date of the report (yyyy-mm-dd)"
    )
    parser.add_argument(
        "--reference",
        help="PATH[@VERSION]: reference table, a Delta folder (@VERSION pins one), a .parquet/.pq file or "
        "folder, or a .csv file (default: the production model's data)",
    )
    parser.add_argument(
        "--current", help="PATH[@VERSION]: current table (default: the latest feature snapshot)"
    )
    parser.add_argument(
        "--columns",
        help="YAML whose numeric/categorical lists name the columns to compare (id, label optional: "
        "checked against both tables when named; a training spec works too)",
    )
    parser.add_argument("--sample-rows", type=int, help="rows sampled per side (default DRIFT_SAMPLE_ROWS)")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="do not log a run (reports still go to the store)"
    )
    parser.add_argument("--master", type=master_option, help="Spark master URL (default SPARK_MASTER_URL)")
    args = parser.parse_args(argv)
    if bool(args.reference) != bool(args.current):
        parser.error("--reference and --current go together (or neither: the production model's data)")
    if args.reference and not args.columns:
        parser.error("--columns SPEC.yaml is required with --reference/--current")
    if args.sample_rows is not None and args.sample_rows < 100:
        parser.error("--sample-rows must be >= 100")
    return args


def run(args: argparse.Namespace, settings=None) -> DriftResult:
    from jobs.churn.features import top_keys
    from jobs.churn.registry import configure
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.objectstore import open_store
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    progress = Progress(log)
    model_ref = None
    if not (args.reference and args.no_mlflow):  # two tables without a run need no MLflow at all
        configure(settings.mlflow)
    if args.reference:
        spec = load_columns(args.columns)
        reference, current = TableRef.parse(args.reference), TableRef.parse(args.current)
        important = []
    else:
        reference, current, spec, important, model_ref = production_inputs(settings)
    reference, current = reference.located(), current.located()  # before any Spark work
    rows = args.sample_rows or settings.drift.sample_rows
    spark = build_session("churn-drift", settings.spark, args.master)
    with progress.step("sample") as facts:
        ref_df, ref_info = read_table(spark, reference)
        cur_df, cur_info = read_table(spark, current)
        check_columns(ref_df, ref_info, spec)  # both sides, before the vocabulary is taken from one
        check_columns(cur_df, cur_info, spec)
        if not spec.resolved:  # a spec file, not a model's: the vocabulary of the reference side
            spec = spec.with_vocabulary(top_keys(ref_df, spec.shares))
        ref_frame, ref_info = sample_table(ref_df, ref_info, spec, rows)
        cur_frame, cur_info = sample_table(cur_df, cur_info, spec, rows)
        facts.update(reference=len(ref_frame), current=len(cur_frame))
    numeric, categorical = list(spec.numeric), list(spec.categorical)
    if spec.shares is not None:  # which segments the share columns stand for
        ref_info["segment_vocabulary"] = list(spec.shares.vocabulary)
    with progress.step("Evidently report") as facts:
        snapshot = run_report(ref_frame, cur_frame, numeric, categorical)
        share, drifts = column_drifts(snapshot.dict())
        cuts = settings.drift
        verdict = judge(share, drifts, important, cuts.share_cuts, cuts.important_cuts, cuts.magnitude_cuts)
        facts.update(share=round(share, 3), magnitude=round(verdict.magnitude, 2), severity=verdict.severity)
    result = DriftResult(
        date=args.date.isoformat(),
        severity=verdict.severity,
        retrain=verdict.severity == "critical",
        drift_share=share,
        drift_magnitude=verdict.magnitude,
        drift_magnitude_column=verdict.magnitude_column,
        drifted_columns=[d.column for d in drifts if d.drifted],
        columns={
            d.column: {
                "method": d.method,
                "value": d.value,
                "threshold": d.threshold,
                "ratio": d.ratio,
                "drifted": d.drifted,
            }
            for d in drifts
        },
        important_drifted=verdict.important_drifted,
        reasons=verdict.reasons,
        reference=ref_info,
        current=cur_info,
        sample_rows={"reference": len(ref_frame), "current": len(cur_frame)},
    )
    with progress.step("publish"), tempfile.TemporaryDirectory() as tmp:
        files = write_reports(snapshot, tmp)
        publish(
            files, result, open_store(settings.object_store), settings.object_store.mlflow_artifacts_bucket
        )
        if not args.no_mlflow:
            result.mlflow_run_id = log_to_mlflow(result, model_ref, files)
    log.info("drift %s: %s (%s)", result.date, result.severity, "; ".join(result.reasons))
    return result


def report(result: DriftResult) -> None:
    print(json.dumps({k: v for k, v in asdict(result).items() if k != "columns"}, default=str))


def main(argv: list[str] | None = None) -> int:
    from jobs.churn.models import NoModel
    from jobs.churn.snapshots import SnapshotNotFound
    from jobs.churn.spec import SpecError
    from jobs.common.cli import run_cli

    return run_cli(
        argv, parse_args, run, report, bad_input=(NoModel, SnapshotNotFound, SpecError, ValueError)
    )


if __name__ == "__main__":
    sys.exit(main())
