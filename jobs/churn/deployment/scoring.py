"""Scoring a feature snapshot with a model, as pure transformations: probabilities and risk bands.

`risk_band` is one rule for a probability (the app, the API) and for a Spark column (the batch job).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

    from jobs.churn.contract.spec import TrainSpec

RISK_BANDS = ("low", "medium", "high")  # prod.churn_scores' CHECK constraint holds the same three


def risk_band(probability: Any, cuts: tuple[float, float]) -> Any:
    """low < cuts[0] <= medium < cuts[1] <= high (CHURN_RISK_BANDS), one rule for a probability (a str) and
    a Spark column (a column expression, for the batch job)."""
    bands = list(zip(cuts, RISK_BANDS, strict=False))
    if isinstance(probability, int | float):
        return next((band for cut, band in bands if probability < cut), RISK_BANDS[-1])
    from pyspark.sql import functions as F

    expr = F
    for cut, band in bands:
        expr = expr.when(probability < cut, band)
    return expr.otherwise(RISK_BANDS[-1])


def score_frame(
    pipeline_model: PipelineModel,
    features: DataFrame,
    spec: TrainSpec,
    snapshot: date,
    cuts: tuple[float, float],
) -> DataFrame:
    """customer id (its exact text), snapshot, probability, risk band. `prepare` derives the share columns
    with the MODEL's vocabulary (its logged spec)."""
    from pyspark.sql import functions as F

    from jobs.churn.training.pipeline import positive_probability, prepare

    predicted = pipeline_model.transform(prepare(features, spec))
    p = positive_probability(predicted)
    return predicted.select(
        F.col(spec.id).cast("string").alias("customer_id"),
        F.lit(snapshot).alias("snapshot_date"),
        p.alias("probability"),
        risk_band(p, cuts).alias("risk_band"),
    )
