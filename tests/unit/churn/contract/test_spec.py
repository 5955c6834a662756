"""The training spec: both shipped specs load, and every kind of mistake is refused with a message naming it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobs.churn.contract.features import CATEGORICAL, NUMERIC, Shares, describe, domain_of, is_share_column
from jobs.churn.contract.spec import (
    SPECS_DIR,
    Candidate,
    SpecError,
    Split,
    TrainSpec,
    load_spec,
    parse_spec,
    spec_to_dict,
)

VALID: dict[str, Any] = {
    "name": "tiny",
    "id": "customer_id",
    "label": "churned",
    "numeric": ["age", "balance"],
    "categorical": ["city"],
    "models": {"logistic_regression": {"regParam": [0.0, 0.1]}, "gbt": {"maxDepth": 3}},
}


SHARES = {"column": "segments", "total": "payments", "top": 2, "prefix": "s_"}


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
    assert spec.numeric == NUMERIC and spec.categorical == CATEGORICAL
    assert CATEGORICAL == ("investment_state", "gender", "card_type", "city")
    assert spec.features == spec.numeric + spec.categorical
    # the segment shares come from the map; their vocabulary is resolved at training
    assert spec.shares == Shares("segment_counts_6m", "pay_count_6m", 5, "share_seg_", "_6m")
    assert not spec.resolved and spec.derived == ()
    assert spec.required_columns() == ("customer_id", "churned", *NUMERIC, *CATEGORICAL, "segment_counts_6m")
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
    assert spec.shares is None and spec.resolved  # a spec without `shares` trains as it is


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
        ({"shares": ["segments"]}, "shares must be a mapping"),
        ({"shares": {**SHARES, "top": 0}}, "'top' must be a whole number from 1 to 100, got 0"),
        ({"shares": {**SHARES, "top": True}}, "'top' must be a whole number"),
        ({"shares": {**SHARES, "prefix": "share-"}}, "'prefix' may hold letters, digits and _ only"),
        ({"shares": {**SHARES, "column": ""}}, "'column' must be a non-empty string"),
        ({"shares": {**SHARES, "size": 3}}, "shares: unknown keys ['size']"),
        ({"shares": {**SHARES, "column": "city"}}, "repeated: ['city']"),
        ({"shares": {**SHARES, "total": "city"}}, "shares.total 'city' must be a count"),
        ({"shares": {**SHARES, "vocabulary": ["a", "a"]}}, "at most 2 distinct keys"),
        ({"shares": {**SHARES, "vocabulary": ["a", "b", "c"]}}, "at most 2 distinct keys"),
        ({"shares": {**SHARES, "columns": ["share_a"]}}, "'columns' without a 'vocabulary'"),
        ({"shares": {**SHARES, "vocabulary": ["a"], "columns": ["x"]}}, "do not follow from the vocabulary"),
        ({"numeric": ["age", "s_other"], "shares": {**SHARES, "vocabulary": ["a"]}}, "repeated: ['s_other']"),
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


def test_shares_vocabulary_resolves_into_safe_deterministic_columns_and_round_trips():
    spec = parse_spec(spec_with(shares=SHARES, numeric=["age", "payments"]), source="s.yaml")
    assert spec.table_columns() == ("age", "payments", "city", "segments") and spec.numeric == (
        "age",
        "payments",
    )
    resolved = spec.with_vocabulary(["Top-Ups", "Café"])
    assert resolved.numeric == ("age", "payments", "s_top_ups", "s_cafe", "s_other")
    assert resolved.derived == ("s_top_ups", "s_cafe", "s_other") and resolved.base_numeric == spec.numeric
    assert resolved.shares.columns == {"s_top_ups": "Top-Ups", "s_cafe": "Café", "s_other": None}
    # what is logged with the model reads back as the same spec, vocabulary and derived columns included
    logged = spec_to_dict(resolved)
    assert logged["numeric"] == ["age", "payments"]
    assert logged["shares"] == {**SHARES, "suffix": "", "vocabulary": ["Top-Ups", "Café"],
                                "columns": ["s_top_ups", "s_cafe", "s_other"]}  # fmt: skip
    assert parse_spec(logged, source="logged") == resolved
    assert parse_spec(spec_to_dict(spec)) == spec  # unresolved stays unresolved


def test_share_column_names_never_collide():
    shares = Shares("m", "n", 4, "share_seg_", "_6m")
    # "top ups" and "top-ups" slug alike, "other" is the other column's name, "!!" slugs to nothing
    columns = shares.with_vocabulary(["top ups", "top-ups", "other", "!!"]).columns
    # each of them gets the CRC32 of its key: names are distinct, column-safe and the same on every run
    assert columns == {
        "share_seg_top_ups_91002af3_6m": "top ups",
        "share_seg_top_ups_636af22e_6m": "top-ups",
        "share_seg_other_d9583520_6m": "other",
        "share_seg_key_812f1742_6m": "!!",
        "share_seg_other_6m": None,
    }
    assert all(is_share_column(c) for c in columns)
    again = Shares("m", "n", 4, "share_seg_", "_6m").with_vocabulary(["top ups", "top-ups", "other", "!!"])
    assert again.columns == columns  # deterministic (a CRC32 of the key, not a counter)


def test_share_columns_have_a_domain_and_a_description():
    shares = Shares("segment_counts_6m", "pay_count_6m", 2, "share_seg_", "_6m").with_vocabulary(
        ["instore", "p2p"]
    )
    assert domain_of("share_seg_instore_6m").describe() == "a number from 0 to 1"
    assert (
        domain_of("share_seg_anything_new_6m")
        == domain_of("share_seg_other_6m")
        == domain_of("discount_share_6m")
    )
    assert domain_of("no_such_feature") is None
    assert describe("share_seg_instore_6m", shares) == "share of the 6-month payments in segment 'instore'"
    assert "outside the model's vocabulary" in describe("share_seg_other_6m", shares)
    assert describe("mau_mp_1") == "accesses to the Mercado Pago app last month"
