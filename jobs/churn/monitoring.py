"""Read-only views of the registry and the drift monitor, as plain frames and dicts (the app's pages).

Every function takes an explicit `MlflowClient`, so several callers (the app's sessions, tests) can talk
to different servers at once without touching MLflow's global URIs.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "precision", "recall", "accuracy", "threshold")
PLOTS = ("plots", "explainability")


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
