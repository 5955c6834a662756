"""Drift monitor: Evidently 0.7 data drift of a current feature snapshot against a reference.

``python -m jobs.churn.drift --date 2026-11-22``: reference = the training snapshot of the `production`
model (its recorded Delta version and snapshot date), current = the latest snapshot of the feature table.
``--reference PATH[@VERSION] --current PATH[@VERSION] --columns SPEC.yaml``: any two tables (Delta folders,
Parquet or CSV files), columns from a spec (its numeric and categorical lists). The segment shares are
compared as the model sees them: the share columns of the production model's vocabulary, or, for a spec
file, of the reference table's top segments; both sides derive them from their map column.

Spark samples both sides (`DRIFT_SAMPLE_ROWS`, recorded); Evidently's `DataDriftPreset` (with tests) judges
every column; the HTML and JSON reports go to `<MLFLOW_ARTIFACTS_BUCKET>/drift-reports/<date>/` through the
project's one object-store module; an MLflow run (tag `run_type=drift`) gets `recent_drift_share`, the
per-feature drift values and methods and the reports. Severity none/moderate/severe/critical comes from
the drifted share and from how many of the model's most important features drifted; `retrain` is true at
critical. The last line printed is the machine-readable result (JSON) for the DAG to branch on.
Exit codes: 0 done (whatever the severity), 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.common.spark import master_option

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from jobs.churn.spec import TrainSpec

log = logging.getLogger(__name__)

SEVERITIES = ("none", "moderate", "severe", "critical")


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    value: float
    threshold: float

    @property
    def drifted(self) -> bool:
        # p-value methods (small data: K-S, chi-square) drift BELOW the threshold, distances at/above it
        return (
            self.value < self.threshold if "p_value" in self.method.lower() else self.value >= self.threshold
        )


@dataclass
class DriftResult:
    date: str
    severity: str
    retrain: bool
    drift_share: float
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
) -> tuple[str, list[str], list[str]]:
    """Severity = the worse of (drifted share vs its cuts) and (drifted top features vs their cuts)."""
    drifted = {d.column for d in drifts if d.drifted}
    important_drifted = [c for c in important if c in drifted]
    by_share = sum(share >= cut for cut in share_cuts)
    by_importance = sum(len(important_drifted) >= cut for cut in important_cuts)
    level = max(by_share, by_importance)
    reasons = [f"{share:.0%} of the columns drifted (cuts {', '.join(f'{c:.0%}' for c in share_cuts)})"]
    if important:
        reasons.append(
            f"{len(important_drifted)} of the top {len(important)} features drifted"
            + (f" ({', '.join(important_drifted)})" if important_drifted else "")
            + f" (cuts {', '.join(map(str, important_cuts))})"
        )
    return SEVERITIES[level], important_drifted, reasons


def run_report(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]):
    """The Evidently snapshot (DataDriftPreset with its tests) of current against reference."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = numeric + categorical
    ref = Dataset.from_pandas(reference[columns], data_definition=definition)
    cur = Dataset.from_pandas(current[columns], data_definition=definition)
    return Report([DataDriftPreset()], include_tests=True).run(reference_data=ref, current_data=cur)


# --- I/O -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableRef:
    path: str
    version: int | None = None
    snapshot: date | None = None

    @classmethod
    def parse(cls, text: str) -> TableRef:
        path, _, version = text.partition("@")
        if version and not version.isdigit():
            raise ValueError(f"{text!r}: the version after @ must be a number")
        return cls(path, int(version) if version else None)


def read_table(spark, ref: TableRef) -> tuple[DataFrame, dict]:
    """Spark reads the table: a pinned Delta version (and snapshot date), a Parquet or a CSV file."""
    from jobs.churn.snapshots import open_version, read_with_spark

    if ref.path.endswith(".csv"):
        return spark.read.option("header", True).option("inferSchema", True).csv(ref.path), {
            "path": ref.path,
            "format": "csv",
        }
    if ref.path.endswith(".parquet"):
        return spark.read.parquet(ref.path), {"path": ref.path, "format": "parquet"}
    version = ref.version if ref.version is not None else open_version(ref.path).version()
    df, _ = read_with_spark(spark, ref.path, version, ref.snapshot)
    info = {"path": ref.path, "format": "delta", "version": version}
    if ref.snapshot:
        info["snapshot_date"] = ref.snapshot.isoformat()
    return df, info


def sample_table(
    df: DataFrame, info: dict, spec: TrainSpec, rows: int, seed: int = 7
) -> tuple[pd.DataFrame, dict]:
    """About `rows` rows of the spec's feature columns; a spec with `shares` derives its share columns
    from the table's map with its vocabulary (`jobs.churn.features.expand_shares`), as the model does."""
    from jobs.churn.features import expand_shares

    missing = [c for c in spec.table_columns() if c not in df.columns]
    if missing:
        raise ValueError(f"{info['path']} lacks the columns {missing}")
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


def production_inputs(settings) -> tuple[TableRef, TableRef, TrainSpec, list[str], Any]:
    """Reference, current, the model's (resolved) spec and top features from the production model's records."""
    from mlflow.tracking import MlflowClient

    from jobs.churn.models import load_spec_of, resolve
    from jobs.churn.snapshots import latest_snapshot_date, open_version, table_path

    ref = resolve(MlflowClient(), settings.mlflow.model_name, "production")
    spec = load_spec_of(ref)
    snapshot = ref.tags.get("snapshot_date")
    reference = TableRef(
        ref.tags["feature_path"],
        int(ref.tags["feature_version"]),
        date.fromisoformat(snapshot) if snapshot else None,
    )
    path = str(table_path(settings.churn.lake_dir))
    version = open_version(path).version()
    current = TableRef(path, version, latest_snapshot_date(path, version))
    important = top_features(ref.run_id, settings.drift.important_features)
    return reference, current, spec, important, ref


def top_features(run_id: str, k: int) -> list[str]:
    """The model's k most important features by mean |SHAP| (its `explainability/` artifact)."""
    import mlflow
    import pandas as pd

    try:
        path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/explainability/shap_importance.csv")
    except Exception as exc:  # an older model without the artifact: share-based severity only
        log.warning("no SHAP importance for run %s (%s): severity from the drifted share only", run_id, exc)
        return []
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
    prefix = f"drift-reports/{result.date}"
    types = {"html": "text/html", "json": "application/json"}
    result.report_uris = {
        kind: store.put_bytes(bucket, f"{prefix}/{path.name}", path.read_bytes(), types[kind])
        for kind, path in files.items()
    }
    summary = json.dumps(asdict(result), indent=2, default=str).encode()
    result.report_uris["summary"] = store.put_bytes(
        bucket, f"{prefix}/summary.json", summary, "application/json"
    )
    return result.report_uris


def log_to_mlflow(result: DriftResult, model_ref, files: dict) -> str:
    import mlflow

    with mlflow.start_run(run_name=f"drift-{result.date}") as run:
        mlflow.set_tags(
            {
                "run_type": "drift",
                "drift_severity": result.severity,
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
        "--reference", help="PATH[@VERSION]: reference table (default: the production model's data)"
    )
    parser.add_argument(
        "--current", help="PATH[@VERSION]: current table (default: the latest feature snapshot)"
    )
    parser.add_argument(
        "--columns", help="spec YAML whose numeric/categorical lists name the columns to compare"
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
    from jobs.churn.spec import load_spec
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.objectstore import open_store
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    progress = Progress(log)
    configure(settings.mlflow)
    model_ref = None
    if args.reference:
        spec = load_spec(args.columns)
        reference, current = TableRef.parse(args.reference), TableRef.parse(args.current)
        important = []
    else:
        reference, current, spec, important, model_ref = production_inputs(settings)
    rows = args.sample_rows or settings.drift.sample_rows
    spark = build_session("churn-drift", settings.spark, args.master)
    with progress.step("sample") as facts:
        ref_df, ref_info = read_table(spark, reference)
        cur_df, cur_info = read_table(spark, current)
        if not spec.resolved:  # a spec file, not a model's: the vocabulary of the reference side
            missing = [c for c in spec.table_columns() if c not in ref_df.columns]
            if missing:
                raise ValueError(f"{reference.path} lacks the columns {missing}")
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
        severity, important_drifted, reasons = judge(
            share, drifts, important, settings.drift.share_cuts, settings.drift.important_cuts
        )
        facts.update(share=round(share, 3), severity=severity)
    result = DriftResult(
        date=args.date.isoformat(),
        severity=severity,
        retrain=severity == "critical",
        drift_share=share,
        drifted_columns=[d.column for d in drifts if d.drifted],
        columns={
            d.column: {"method": d.method, "value": d.value, "threshold": d.threshold, "drifted": d.drifted}
            for d in drifts
        },
        important_drifted=important_drifted,
        reasons=reasons,
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
    log.info("drift %s: %s (%s)", result.date, severity, "; ".join(reasons))
    return result


def main(argv: list[str] | None = None) -> int:
    from jobs.churn.models import NoModel
    from jobs.churn.snapshots import SnapshotNotFound
    from jobs.churn.spec import SpecError
    from jobs.common.logs import setup_logging

    args = parse_args(argv)
    setup_logging()
    try:
        result = run(args)
    except (NoModel, SnapshotNotFound, SpecError, ValueError) as exc:
        log.error("bad input: %s", exc)
        return 2
    print(json.dumps({k: v for k, v in asdict(result).items() if k != "columns"}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
