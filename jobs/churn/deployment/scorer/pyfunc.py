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

    def load_context(self, context: Any) -> None:
        self.scorer = ChurnScorer.load(context.artifacts["scorer"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        out = pd.DataFrame({"probability": self.scorer.predict_proba(frame)}, index=frame.index)
        if params and params.get("explain"):
            shap_values = self.scorer.explain(frame)
            for column in self.scorer.features:
                out[f"shap_{column}"] = shap_values[column].to_numpy()
            out["shap_base_value"] = self.scorer.base_value
        return out


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
