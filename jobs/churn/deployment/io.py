"""The deployment step's I/O: the MLflow model registry (where runs go, aliases, versions, their files)
and the batch scores in PostgreSQL.

Aliases, never the deprecated stages: `challenger` is the newest trained version, `production` the champion
(`jobs.churn.validation` moves it). Every step that needs a registered model finds it here: `resolve` by
alias or number, `download` its folder (the JVM-free scorer, the Spark pipeline), `load_spec_of` the
resolved spec it was trained with.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.churn.contract.spec import TrainSpec, parse_spec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from jobs.common.config import PostgresSettings

log = logging.getLogger(__name__)

CHALLENGER, PRODUCTION = "challenger", "production"
SCORES_TABLE = "prod.churn_scores"


def configure(mlflow_settings) -> str:
    """Points the MLflow client at the tracking server (or local storage) and the experiment."""
    # MLflow's telemetry thread sets and deletes an environment variable while other threads iterate
    # os.environ (pydantic-settings reading .env failed with KeyError under spark-submit); it also phones
    # home, which an offline batch job has no business doing.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = mlflow_settings.resolved_tracking_uri()
    if uri.startswith("sqlite:"):
        mlflow_settings.local_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(mlflow_settings.experiment)
    if experiment is None:
        client.create_experiment(
            mlflow_settings.experiment, artifact_location=mlflow_settings.local_artifact_root()
        )
    mlflow.set_experiment(mlflow_settings.experiment)
    return uri


def version_by_alias(client, name: str, alias: str):
    """The model version holding the alias, or None when nobody holds it (or the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


class NoModel(LookupError):
    """No registered model version answers the alias or number asked for."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int
    alias: str | None
    run_id: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def resolve(client, name: str, alias: str | None = None, version: int | None = None) -> ModelRef:
    from mlflow.exceptions import MlflowException

    try:
        if version is not None:
            mv = client.get_model_version(name, str(version))
        else:
            mv = version_by_alias(client, name, alias or "production")
    except MlflowException as exc:
        raise NoModel(f"model {name} version {version} not found: {exc.message}") from exc
    if mv is None:
        raise NoModel(
            f"no version of {name} holds the alias {alias!r}: train (`python -m jobs.churn.traininging`) "
            "and promote (`python -m jobs.churn.validation`) first"
        )
    return ModelRef(name, int(mv.version), alias, mv.run_id, dict(mv.tags or {}))


def download(ref: ModelRef, dst: Path, tracking_uri: str | None = None) -> Path:
    """The model folder (MLmodel + artifacts/scorer + artifacts/spark_pipeline).

    With `tracking_uri`, that server is asked for this call only, so concurrent callers (the app's
    sessions, tests) never repoint each other: the version's artifact location is resolved through an
    explicit client (`models:/` URIs would be resolved with the process-wide registry URI).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    dst.mkdir(parents=True, exist_ok=True)
    if tracking_uri is None:
        return Path(mlflow.artifacts.download_artifacts(ref.uri, dst_path=str(dst)))
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    location = client.get_model_version_download_uri(ref.name, str(ref.version))
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(dst), tracking_uri=tracking_uri
        )
    )


def load_scorer(model_dir: Path):
    from jobs.churn.deployment.scorer.score import ChurnScorer

    return ChurnScorer.load(_artifact(model_dir, "scorer"))


def spark_pipeline_path(model_dir: Path) -> Path:
    return _artifact(model_dir, "spark_pipeline")


def load_spec_of(ref: ModelRef) -> TrainSpec:
    import mlflow

    raw = mlflow.artifacts.load_dict(f"runs:/{ref.run_id}/dataset/spec.json")
    return parse_spec(raw, source=f"{ref.uri} spec")


def _artifact(model_dir: Path, name: str) -> Path:
    path = model_dir / "artifacts" / name
    if not path.exists():
        matches = list(model_dir.rglob(name))
        if not matches:
            raise NoModel(f"{model_dir} holds no {name!r} artifact (not a churn model?)")
        path = matches[0]
    return path


@dataclass(frozen=True)
class StagedScores:
    load_id: str
    rows: int
    columns: tuple[str, ...]


def stage_scores(conn, pg: PostgresSettings, scores: DataFrame) -> StagedScores:
    """The executors COPY `scores` (prod.churn_scores' columns) into its staging table, under a load id."""
    import uuid

    from jobs.common import stage

    load_id = str(uuid.uuid4())
    counts = stage.copy_partitions(scores, pg, stage.stage_of(SCORES_TABLE), {"load_id": load_id})
    return StagedScores(load_id, sum(counts.values()), tuple(scores.columns))


def clear_scores(conn, staged: StagedScores) -> None:
    from jobs.common import stage

    stage.clear(conn, stage.stage_of(SCORES_TABLE), {"load_id": staged.load_id})


def publish_scores(conn, staged: StagedScores, snapshot, name: str, version: int) -> dict:
    """ONE transaction: the (snapshot, model version)'s rows of prod.churn_scores replaced by the staged load.
    Returns what was published: customers, risk bands, mean probability."""
    from jobs.common import stage

    with conn.transaction():
        conn.execute(
            f"DELETE FROM {SCORES_TABLE} WHERE snapshot_date = %s AND model_name = %s AND model_version = %s",
            (snapshot, name, version),
        )
        published = stage.publish(
            conn,
            stage.stage_of(SCORES_TABLE),
            SCORES_TABLE,
            list(staged.columns),
            {"load_id": staged.load_id},
        )
        if published != staged.rows:
            raise RuntimeError(f"staged {staged.rows} scores, published {published}: rolled back")
    bands = conn.execute(
        f"SELECT risk_band, count(*), avg(probability) FROM {SCORES_TABLE} "
        "WHERE snapshot_date = %s AND model_name = %s AND model_version = %s GROUP BY 1 ORDER BY 1",
        (snapshot, name, version),
    ).fetchall()
    total = sum(n for _, n, _ in bands)
    mean = sum(n * avg for _, n, avg in bands) / total if total else 0.0
    return {
        "customers": total,
        "bands": {band: n for band, n, _ in bands},
        "mean_probability": round(mean, 4),
    }
