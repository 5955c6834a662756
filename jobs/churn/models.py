"""Fetching registered churn models: the JVM-free scorer and the Spark pipeline of one model version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobs.churn.spec import TrainSpec, parse_spec


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

    from jobs.churn.registry import version_by_alias

    try:
        if version is not None:
            mv = client.get_model_version(name, str(version))
        else:
            mv = version_by_alias(client, name, alias or "production")
    except MlflowException as exc:
        raise NoModel(f"model {name} version {version} not found: {exc.message}") from exc
    if mv is None:
        raise NoModel(
            f"no version of {name} holds the alias {alias!r}: train (`python -m jobs.churn.train`) "
            "and promote (`python -m jobs.churn.promote`) first"
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
    from jobs.churn.scorer import ChurnScorer

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
