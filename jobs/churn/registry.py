"""MLflow: where runs go, the registered model, and promotion with aliases (never stages).

`challenger` is the newest trained version; `production` (the champion) moves to it only when it beats
the current champion on the SAME evaluation data by the configured margin, or when there is no champion.
`decide` is the pure rule; `promote` gathers the numbers and records the decision as version tags.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

CHALLENGER, PRODUCTION = "challenger", "production"


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


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    metric: str
    challenger_version: int
    challenger_score: float
    champion_version: int | None
    champion_score: float | None
    margin: float

    def tags(self) -> dict[str, str]:
        return {f"promotion.{k}": "" if v is None else str(v) for k, v in asdict(self).items()}


def decide(
    challenger_version: int,
    challenger_score: float,
    champion_version: int | None,
    champion_score: float | None,
    margin: float,
    metric: str = "roc_auc",
) -> Decision:
    """Promote when there is no champion, or when challenger - champion > margin (a tie never promotes)."""
    facts = dict(
        metric=metric,
        challenger_version=challenger_version,
        challenger_score=challenger_score,
        champion_version=champion_version,
        champion_score=champion_score,
        margin=margin,
    )
    if champion_version is None:
        return Decision(True, "no production model yet", **facts)
    if champion_version == challenger_version:
        return Decision(False, "the challenger already is the production model", **facts)
    if champion_score is None:
        return Decision(False, "the production model cannot be evaluated on the challenger's data", **facts)
    gain = challenger_score - champion_score
    if gain > margin + 1e-12:  # 0.842 - 0.840 is 0.0020000000000000018 in floating point: not a win
        return Decision(True, f"{metric} better by {gain:.5f} > margin {margin}", **facts)
    return Decision(False, f"{metric} gain {gain:.5f} does not exceed margin {margin}", **facts)


def apply_decision(client, name: str, decision: Decision) -> None:
    for key, value in decision.tags().items():
        client.set_model_version_tag(name, str(decision.challenger_version), key, value)
    client.set_model_version_tag(
        name,
        str(decision.challenger_version),
        "promotion.decision",
        "promoted" if decision.promote else "kept",
    )
    if decision.promote:
        client.set_registered_model_alias(name, PRODUCTION, str(decision.challenger_version))
        if decision.champion_version is not None:
            client.set_model_version_tag(
                name, str(decision.champion_version), "replaced_by", str(decision.challenger_version)
            )
    log.info(
        "promotion of %s v%s: %s (%s)",
        name,
        decision.challenger_version,
        "PROMOTED to production" if decision.promote else "kept as challenger",
        decision.reason,
    )
