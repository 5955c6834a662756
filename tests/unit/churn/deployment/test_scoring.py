"""Risk bands: one rule for a probability (the app, the API) and for a Spark column (the batch job)."""

from __future__ import annotations

import pytest

from jobs.churn.deployment.scoring import risk_band


@pytest.mark.parametrize(
    ("p", "band"), [(0.0, "low"), (0.2999, "low"), (0.3, "medium"), (0.6, "high"), (1.0, "high")]
)
def test_risk_band_matches_the_batch_rule(p, band):
    assert risk_band(p, (0.3, 0.6)) == band


def test_risk_band_is_one_rule_for_python_and_spark(spark):
    """The app's band and the batch job's band of the same probabilities, from the one definition."""
    from pyspark.sql import functions as F

    ps = [0.0, 0.2999, 0.3, 0.45, 0.5999999, 0.6, 0.99, 1.0]
    df = spark.createDataFrame([(p,) for p in ps], "p double")
    spark_bands = [r["band"] for r in df.select(risk_band(F.col("p"), (0.3, 0.6)).alias("band")).collect()]
    assert spark_bands == [risk_band(p, (0.3, 0.6)) for p in ps]
    assert spark_bands == ["low", "low", "medium", "medium", "medium", "high", "high", "high"]
