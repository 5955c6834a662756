"""The pipeline construction of each model kind: its stages, and the params a grid may not set."""

from __future__ import annotations

import pytest

from jobs.churn.training.pipeline import build_pipeline
from tests.unit.churn.synthetic import SPEC, TINY


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("xgboost", {}, "unknown model kind 'xgboost'"),
        ("gbt", {"numTrees": 5}, "unknown params ['numTrees']"),
        ("random_forest", {"labelCol": "x"}, "fixed by the pipeline"),
        ("logistic_regression", {"family": "multinomial"}, "fixed by the pipeline"),
        ("random_forest", {"numTrees": "many"}, "bad value 'many' for param 'numTrees'"),
        ("gbt", {"maxDepth": -1}, "invalid params {'maxDepth': -1}"),
        ("logistic_regression", {"elasticNetParam": 2.0}, "invalid params {'elasticNetParam': 2.0}"),
    ],
)
def test_build_pipeline_refuses_bad_kinds_and_params(spark, kind, params, message):
    with pytest.raises(ValueError, match=None) as caught:
        build_pipeline(SPEC, kind, params)
    assert message in str(caught.value)


def test_build_pipeline_stages_follow_the_kind(spark):
    names = {
        kind: [type(s).__name__ for s in build_pipeline(SPEC, kind, TINY[kind]).getStages()] for kind in TINY
    }
    assert names["logistic_regression"] == [
        "Imputer",
        "StringIndexer",
        "OneHotEncoder",
        "VectorAssembler",
        "LogisticRegression",
    ]
    assert names["gbt"] == ["Imputer", "StringIndexer", "SQLTransformer", "VectorAssembler", "GBTClassifier"]
    rf = build_pipeline(SPEC, "random_forest", TINY["random_forest"]).getStages()[-1]
    assert (rf.getSeed(), rf.getMaxBins(), rf.getNumTrees(), rf.getMaxDepth()) == (42, 32, 10, 4)
