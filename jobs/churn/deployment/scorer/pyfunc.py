"""The JVM-free scorer as an MLflow pyfunc: what `mlflow models serve` and `mlflow.pyfunc.load_model` run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from jobs.churn.deployment.scorer.score import ChurnScorer

if TYPE_CHECKING:
    from mlflow.models import ModelSignature


class ChurnPyfuncModel(PythonModel):
    """The scorer as an MLflow pyfunc: `probability`, plus `shap_<feature>` columns with explain=True.

    Log with ``artifacts={"scorer": <folder of save_scorer>}``, `pyfunc_signature(...)`,
    `pyfunc_requirements()` and ``code_paths=["jobs"]`` (the class is pickled by reference).
    """

    # The REST API (jobs.churn.serving.api) sets this on the model it serves: every row is then checked
    # against the feature contract, as the app checks typed-in values (`jobs.churn.serving.checks`), and a
    # request with any bad value is refused whole, with the reasons (HTTP 400 from MLflow's scoring server).
    # Off by default, so batch callers of the pyfunc score exactly what they pass, as before.
    check_rows: bool = False

    def load_context(self, context: Any) -> None:
        self.scorer = ChurnScorer.load(context.artifacts["scorer"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if self.check_rows:
            refuse_invalid_rows(frame, self.scorer)
        out = pd.DataFrame({"probability": self.scorer.predict_proba(frame)}, index=frame.index)
        if params and params.get("explain"):
            shap_values = self.scorer.explain(frame)
            for column in self.scorer.features:
                out[f"shap_{column}"] = shap_values[column].to_numpy()
            out["shap_base_value"] = self.scorer.base_value
        return out


MAX_PROBLEMS_LISTED = 10


def refuse_invalid_rows(frame: pd.DataFrame, scorer: ChurnScorer) -> None:
    """Raises MlflowException(INVALID_PARAMETER_VALUE), which MLflow's scoring server answers with 400 and
    this message, when a feature column is missing or a value breaks its domain; rows count from 0."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    from jobs.churn.serving.checks import check_record

    if frame.empty:
        raise MlflowException("no rows to score", error_code=INVALID_PARAMETER_VALUE)
    positions = frame.columns.get_indexer(scorer.features)
    if (positions < 0).any():
        missing = [c for c in scorer.features if c not in frame.columns]
        raise MlflowException(f"missing input columns {missing}", error_code=INVALID_PARAMETER_VALUE)
    problems = []
    # one object array, not to_dict("records"): ~10x cheaper for the one-row requests of the API
    for position, row in enumerate(frame.to_numpy(dtype=object)[:, positions]):
        _, errors = check_record(
            dict(zip(scorer.features, row, strict=True)), scorer.numeric, scorer.categorical
        )
        problems += [f"row {position}: {message}" for message in errors.values()]
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_LISTED])
        more = (
            f"; and {len(problems) - MAX_PROBLEMS_LISTED} more" if len(problems) > MAX_PROBLEMS_LISTED else ""
        )
        raise MlflowException(
            f"{len(problems)} invalid value{'s' if len(problems) > 1 else ''}: {shown}{more}",
            error_code=INVALID_PARAMETER_VALUE,
        )


def pyfunc_signature(description: dict[str, Any]) -> ModelSignature:
    """Explicit signature (inference in a subprocess costs ~50 s): raw features in, probability out.

    Numerics are declared double, MLflow's advice for integer columns that may hold missing values; MLflow
    then refuses int64 input as an unsafe cast, so callers send floats (``frame.astype(float)``).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    spec = description["spec"]
    inputs = Schema(
        [ColSpec("double", c) for c in spec["numeric"]] + [ColSpec("string", c) for c in spec["categorical"]]
    )
    outputs = Schema([ColSpec("double", "probability")])
    params = ParamSchema([ParamSpec("explain", "boolean", False)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pyfunc_requirements() -> list[str]:
    """Pinned pip requirements of the pyfunc (no pyspark: the scorer needs no JVM)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "numpy", "pandas", "shap", "PyYAML")]
