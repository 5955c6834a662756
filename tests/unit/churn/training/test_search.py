"""The search on bounded evaluation data: metrics of a large split come from a seeded sample of at most
EVALUATION_ROWS rows (the same rows for every grid point), never from the whole split on the driver."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobs.churn.contract.spec import Candidate
from jobs.churn.training import search
from tests.unit.churn.synthetic import SCHEMA, SPEC, customers


@pytest.fixture(scope="module")
def table(spark):
    return spark.createDataFrame(customers(1500, seed=3), SCHEMA).cache()


def test_large_splits_are_evaluated_on_a_bounded_seeded_sample(table, monkeypatch):
    monkeypatch.setattr(search, "EVALUATION_ROWS", 120)
    spec = replace(SPEC, candidates=(Candidate("logistic_regression", {"regParam": (0.01, 0.1)}),))
    result = search.train_model(table, spec)
    assert result.counts["test"] > 200 and result.counts["validation"] > 200
    assert 0 < result.evaluated["test"] <= 120 and 0 < result.evaluated["validation"] <= 120
    assert len(result.test_scores) == result.evaluated["test"] == result.test_metrics["rows"]
    assert all(t.validation["rows"] == result.evaluated["validation"] for t in result.search.trials)
    model = result.search.best.model
    first = search.scored(model, result.test_rows, spec, result.counts["test"])
    again = search.scored(model, result.test_rows, spec, result.counts["test"])
    assert first["customer_id"].tolist() == again["customer_id"].tolist()  # the same sample every time


def test_small_splits_are_evaluated_whole(table):
    spec = replace(SPEC, candidates=(Candidate("logistic_regression", {"regParam": (0.01,)}),))
    result = search.train_model(table, spec)
    assert result.evaluated == {"validation": result.counts["validation"], "test": result.counts["test"]}
