"""The training spec: both shipped specs load, and every kind of mistake is refused with a message naming it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobs.churn.features import CATEGORICAL, NUMERIC
from jobs.churn.spec import SPECS_DIR, Candidate, SpecError, Split, TrainSpec, load_spec, parse_spec

VALID: dict[str, Any] = {
    "name": "tiny",
    "id": "customer_id",
    "label": "churned",
    "numeric": ["age", "balance"],
    "categorical": ["city"],
    "models": {"logistic_regression": {"regParam": [0.0, 0.1]}, "gbt": {"maxDepth": 3}},
}


def spec_with(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


def test_shipped_churn_spec_loads_by_name():
    spec = load_spec("churn.yaml")
    assert (spec.name, spec.id, spec.label) == ("churn", "customer_id", "churned")
    # the shipped spec trains on exactly what THE feature module produces
    assert spec.numeric == NUMERIC and spec.categorical == CATEGORICAL == ("gender", "card_type", "city")
    assert spec.features == spec.numeric + spec.categorical
    assert spec.required_columns()[:2] == ("customer_id", "churned")
    assert [c.kind for c in spec.candidates] == ["logistic_regression", "random_forest", "gbt"]
    assert spec.split == Split(0.6, 0.2, 0.2, 42)
    assert (spec.selection_metric, spec.threshold) == ("roc_auc", "f1")
    gbt = spec.candidates[2]
    assert gbt.points() == [
        {"maxDepth": 3, "maxIter": 40, "stepSize": 0.1},
        {"maxDepth": 5, "maxIter": 40, "stepSize": 0.1},
    ]


def test_shipped_telco_spec_loads_from_a_path():
    spec = load_spec(SPECS_DIR / "telco_example.yaml")
    assert spec == TrainSpec(
        name="telco_example",
        id="customerID",
        label="Churn",
        numeric=("tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"),
        categorical=("Contract", "InternetService", "PaymentMethod", "PaperlessBilling"),
        candidates=(
            Candidate("logistic_regression", {"regParam": (0.0, 0.05)}),
            Candidate("gbt", {"maxIter": (20,), "maxDepth": (3,)}),
        ),
        split=Split(0.7, 0.15, 0.15, 7),
        selection_metric="pr_auc",
        threshold=0.5,
    )


def test_minimal_spec_takes_the_defaults():
    spec = parse_spec(spec_with(name=None, categorical=None), source="x/minimal.yaml")
    assert spec.name == "minimal" and spec.categorical == ()
    assert (spec.split, spec.selection_metric, spec.threshold) == (Split(), "roc_auc", "f1")
    # a scalar grid value is a one-point grid
    assert spec.candidates[1] == Candidate("gbt", {"maxDepth": (3,)})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"models": {"xgboost": {}}}, "unknown model 'xgboost'"),
        ({"models": {"gbt": {"numTrees": [10]}}}, "gbt cannot search ['numTrees']"),
        ({"models": {"random_forest": {"maxDepth": []}}}, "random_forest.maxDepth has no value"),
        ({"models": {"gbt": [3]}}, "the grid of gbt must be a mapping"),
        ({"models": {}}, "'models' lists no candidate"),
        ({"numeric": ["age", "city"]}, "repeated: ['city']"),
        ({"label": "customer_id"}, "repeated: ['customer_id']"),
        ({"numeric": [], "categorical": []}, "no feature columns"),
        ({"numeric": ["age", ""]}, "column names must be non-empty strings"),
        ({"numeric": "age"}, "'numeric' must be a list"),
        ({"id": None}, "missing key 'id'"),
        ({"label": None}, "missing key 'label'"),
        ({"models": None}, "missing key 'models'"),
        ({"features": ["age"]}, "unknown keys ['features']"),
        ({"split": {"train": 0.5, "validation": 0.2, "test": 0.2}}, "sum to 1"),
        ({"split": {"train": 0.8, "validation": 0.2, "test": 0.0}}, "must be > 0"),
        ({"split": {"train": 0.6, "holdout": 0.4}}, "split:"),
        ({"selection_metric": "accuracy"}, "selection_metric must be roc_auc or pr_auc"),
        ({"threshold": 1.5}, "threshold must be 'f1' or a probability in (0, 1)"),
        ({"threshold": "youden"}, "got 'youden'"),
    ],
)
def test_bad_spec_is_refused_with_the_reason(changes, message):
    with pytest.raises(SpecError) as caught:
        parse_spec(spec_with(**changes), source="bad.yaml")
    assert str(caught.value).startswith("bad.yaml: ")
    assert message in str(caught.value)


def test_spec_files_that_cannot_be_read_are_refused(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- id\n- label\n")
    with pytest.raises(SpecError, match="a spec is a mapping, got list"):
        load_spec(listed)
