"""The monitoring step's I/O: drift inputs and reports (the model registry, the object store, MLflow), the
watchdog's look at the source files, and read-only views of the registry and the drift runs (the app's
pages).

Views take an explicit `MlflowClient`, so several callers (the app's sessions, tests) can talk to different
servers at once without touching MLflow's global URIs.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.churn.monitoring.drift import SEVERITIES, ColumnSpec, DriftResult
from jobs.churn.monitoring.watch import labelled_snapshot, training_snapshot

if TYPE_CHECKING:
    import pandas as pd

    from jobs.churn.features.io import TableRef

log = logging.getLogger(__name__)

SHAP_IMPORTANCE = "explainability/shap_importance.csv"  # the model's mean |SHAP| ranking (training logs it)
REPORTS_PREFIX, SUMMARY = "drift-reports", "summary.json"  # <bucket>/drift-reports/<date>/summary.json
PAYMENTS, PAYMENT_DATE = "PAYMENTS", "FECHA"
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "precision", "recall", "accuracy", "threshold")
PLOTS = ("plots", "explainability")  # the training run's folders of PNG plots


# --- drift ----------------------------------------------------------------------------------------------------


def production_inputs(settings) -> tuple[TableRef, TableRef, ColumnSpec, list[str], Any]:
    """Reference, current, the model's (resolved) features and top features from the production model's
    records."""
    from mlflow.tracking import MlflowClient

    from jobs.churn.deployment.io import PRODUCTION, load_spec_of, resolve
    from jobs.churn.features.io import FeatureTable, TableRef, lake_table

    ref = resolve(MlflowClient(), settings.mlflow.model_name, PRODUCTION)
    spec = load_spec_of(ref)
    snapshot, version = ref.tags.get("snapshot_date"), ref.tags.get("feature_version", "")
    reference = TableRef(  # a model trained on a Parquet or CSV file records no version ("None")
        ref.tags["feature_path"],
        int(version) if version.isdigit() else None,
        date.fromisoformat(snapshot) if snapshot else None,
    )
    current = FeatureTable(lake_table(settings.churn.lake_dir)).at_latest_snapshot().ref
    important = top_features(ref.run_id, settings.drift.important_features)
    return reference, current, ColumnSpec.of(spec), important, ref


def top_features(run_id: str, k: int) -> list[str]:
    """The model's k most important features by mean |SHAP| (its `explainability/` artifact)."""
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

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


# --- the watchdog: new source files, and the snapshot they label ---------------------------------------------


def changed_sources(source_dir: Path | None = None, settings=None) -> dict[str, str]:
    """{file name: sha256} of every present source file whose content no loaded batch has ingested yet."""
    from jobs.churn.contract.files import file_sha256, source_file
    from jobs.churn.contract.sources import sources
    from jobs.common.config import load_settings
    from jobs.common.postgres import connect, open_business_database

    settings = settings or load_settings()
    folder = source_dir or settings.churn.source_dir
    files = {name: source_file(folder, source) for name, source in sources().items()}
    present = {name: path for name, path in files.items() if path.is_file()}
    hashes = {name: file_sha256(path) for name, path in present.items()}
    if not hashes:
        return {}
    pg, _ = open_business_database(settings.postgres)
    with connect(pg) as conn:
        seen = {
            (source, sha)
            for source, sha in conn.execute(
                "SELECT source, file_sha256 FROM dqm.churn_batches WHERE status = 'loaded'"
            ).fetchall()
        }
    return {name: sha for name, sha in hashes.items() if (name, sha) not in seen}


def latest_labelled_snapshot(source_dir: Path, date_formats: Sequence[str], today: date) -> date | None:
    """`labelled_snapshot` of the payments file in `source_dir` (None when it is missing). Reads only its
    date column, in blocks, and parses each distinct text once: a file of millions of payments holds a few
    hundred dates."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    from jobs.churn.contract.files import BadSourceFile, read_header, source_file
    from jobs.churn.contract.sources import sources
    from jobs.common.dates import parse_date_text

    payments = sources()[PAYMENTS]
    path = source_file(source_dir, payments)
    try:
        header = read_header(path, payments)
    except BadSourceFile as exc:  # the ingest reports it; no snapshot from this file
        log.warning("no snapshot from the payments file: %s", exc)
        return None
    column = next(h for h in header if h.strip().lower() == PAYMENT_DATE.lower())
    texts: set[str] = set()
    options = csv.ConvertOptions(include_columns=[column], column_types={column: pa.string()})
    skip = csv.ParseOptions(invalid_row_handler=lambda row: "skip")  # malformed lines: the ingest's business
    with csv.open_csv(path, convert_options=options, parse_options=skip) as reader:
        for batch in reader:
            texts.update(t for t in pc.unique(batch.column(0)).to_pylist() if t is not None)
    dates = (parse_date_text(t, date_formats) for t in texts)
    return labelled_snapshot((d for d in dates if d is not None), today)


def snapshot_of_run(requested: str | None, announced: Sequence[str | None], churn, run_day: date) -> date:
    """`training_snapshot`, reading the source files (ChurnSettings' folder and date formats) only when
    neither the run's params nor its asset events name a snapshot."""
    in_files = None
    if not requested and not any(announced):
        in_files = latest_labelled_snapshot(churn.source_dir, churn.date_formats, run_day)
    return training_snapshot(requested, announced, in_files, run_day)


# --- views of the registry and the drift runs (the app) --------------------------------------------------------


def logged(client, run_id: str, path: str) -> bool:
    """Whether the run logged an artifact (file or folder) at `path`. Asked before a download, so that an
    artifact an older run never logged is told apart from a store that fails (which raises)."""
    parent = path.rsplit("/", 1)[0] if "/" in path else None
    return any(f.path == path for f in client.list_artifacts(run_id, parent))


def _when(millis: int | None) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, UTC) if millis else None


def registry_versions(client, name: str) -> pd.DataFrame:
    """Every version of the registered model: aliases, kind, test AUC, promotion decision, run."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return pd.DataFrame(columns=["version", "aliases", "model_kind", "test_roc_auc", "decision"])
        raise
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        tags = mv.tags or {}
        auc = tags.get("test_roc_auc")
        rows.append(
            {
                "version": int(mv.version),
                "aliases": ", ".join(sorted(by_version.get(str(mv.version), []))),
                "model_kind": tags.get("model_kind", ""),
                "test_roc_auc": float(auc) if auc else None,
                "decision": tags.get("promotion.decision", ""),
                "reason": tags.get("promotion.reason", ""),
                "snapshot_date": tags.get("snapshot_date", ""),
                "feature_version": tags.get("feature_version", ""),
                "data_sha256": tags.get("data_sha256", ""),
                "spec": tags.get("spec", ""),
                "git_commit": tags.get("git_commit", ""),
                "dag_run_id": tags.get("dag_run_id", ""),
                "created": _when(mv.creation_timestamp),
                "run_id": mv.run_id,
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("version", ascending=False).reset_index(drop=True) if rows else frame


@dataclass
class VersionDetails:
    version: int
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    dataset: dict[str, Any]
    plots: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG


def version_details(client, name: str, version: int, with_plots: bool = True) -> VersionDetails:
    """What the registry and the training run know about one version, plus the PNG plots logged with it."""
    mv = client.get_model_version(name, str(version))
    run = client.get_run(mv.run_id)
    aliases = [
        a for a, v in (client.get_registered_model(name).aliases or {}).items() if str(v) == str(version)
    ]
    dataset: dict[str, Any] = {}
    plots: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="churn-run-") as tmp:
        if logged(client, mv.run_id, "dataset/snapshot.json"):  # an older run without it: the tags say
            path = client.download_artifacts(mv.run_id, "dataset/snapshot.json", tmp)
            dataset = json.loads(Path(path).read_text())
        if with_plots:
            for folder in (f for f in PLOTS if logged(client, mv.run_id, f)):
                local = Path(client.download_artifacts(mv.run_id, folder, tmp))
                for png in sorted(local.rglob("*.png")):
                    plots[f"{folder}/{png.name}"] = png.read_bytes()
    return VersionDetails(
        version=int(mv.version),
        aliases=sorted(aliases),
        tags=dict(mv.tags or {}),
        metrics={k: v for k, v in run.data.metrics.items()},
        params=dict(run.data.params),
        dataset=dataset,
        plots=plots,
    )


def drift_runs(client, experiment: str, limit: int = 500) -> pd.DataFrame:
    """The drift monitor's runs, oldest first: date, severity, recent_drift_share, the worst column's drift
    magnitude (drift / its threshold), drifted columns."""
    import pandas as pd

    columns = ["date", "severity", "recent_drift_share", "drift_magnitude", "drift_magnitude_column",
               "drifted_columns", "retrain", "model_version", "report_html", "run_id", "started"]  # fmt: skip
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame(columns=columns)
    runs = client.search_runs(
        [found.experiment_id],
        filter_string="tags.run_type = 'drift' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        name = run.info.run_name or ""
        rows.append(
            {
                "date": name.removeprefix("drift-") if name.startswith("drift-") else "",
                "severity": tags.get("drift_severity", ""),
                "recent_drift_share": metrics.get("recent_drift_share"),
                "drift_magnitude": metrics.get("drift_magnitude"),  # None: a run from before it was logged
                "drift_magnitude_column": tags.get("drift_magnitude_column", ""),
                "drifted_columns": int(metrics.get("drifted_columns", 0)),
                "retrain": tags.get("retrain") == "true",
                "model_version": tags.get("model_version", ""),
                "report_html": tags.get("report_html", ""),
                "run_id": run.info.run_id,
                "started": _when(run.info.start_time),
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.iloc[::-1].reset_index(drop=True)


def drift_report(client, run_id: str) -> tuple[dict[str, Any], bytes | None]:
    """(summary.json of the run, the self-contained report.html or None when it was not logged)."""
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        summary = json.loads(Path(client.download_artifacts(run_id, "drift/summary.json", tmp)).read_text())
        html = None
        if logged(client, run_id, "drift/report.html"):
            html = Path(client.download_artifacts(run_id, "drift/report.html", tmp)).read_bytes()
    return summary, html
