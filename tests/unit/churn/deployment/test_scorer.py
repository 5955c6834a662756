"""The JVM-free scorer against the Spark pipeline it was exported from: same probabilities, additive SHAP.

One small synthetic customer table (signal in numerics and categoricals, nulls, NaN, blanks) trains each
model kind with tiny params; a 10k-row table with unseen categories and missing values is scored by Spark
and by the reloaded scorer.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from jobs.churn.contract.spec import parse_spec
from jobs.churn.deployment.scorer.export import category_counts, export_scorer, save_scorer
from jobs.churn.deployment.scorer.pyfunc import ChurnPyfuncModel, pyfunc_requirements, pyfunc_signature
from jobs.churn.deployment.scorer.score import ChurnScorer
from jobs.churn.training.pipeline import build_pipeline, positive_probability, prepare
from tests.unit.churn.synthetic import PARITY, SCHEMA, SPEC, TINY, customers


@pytest.fixture(scope="module")
def tables(spark):
    train_rows = customers(3000, seed=1)
    score_rows = customers(10_000, seed=2, unseen=True)
    train = prepare(spark.createDataFrame(train_rows, SCHEMA), SPEC).cache()
    score = prepare(spark.createDataFrame(score_rows, SCHEMA), SPEC).cache()
    frame = pd.DataFrame(score_rows, columns=[c.split()[0] for c in SCHEMA.split(", ")])
    yield SimpleNamespace(train=train, score=score, frame=frame)
    train.unpersist()
    score.unpersist()


@pytest.fixture(scope="module")
def fitted(tables, tmp_path_factory):
    """Per kind: Spark's P(1) on the 10k rows, and the scorer reloaded from its saved folder."""
    out = {}
    for kind, params in TINY.items():
        model = build_pipeline(SPEC, kind, params).fit(tables.train)
        scored = model.transform(tables.score)
        spark_p = (
            scored.select("customer_id", positive_probability(scored).alias("p"))
            .toPandas()
            .set_index("customer_id")["p"]
        )
        description = export_scorer(model, SPEC)
        folder = save_scorer(description, tmp_path_factory.mktemp(kind)).parent
        out[kind] = SimpleNamespace(
            model=model,
            description=description,
            folder=folder,
            scorer=ChurnScorer.load(folder),
            spark_p=spark_p,
        )
    return out


@pytest.mark.parametrize("kind", list(TINY))
def test_scorer_matches_spark_on_10k_rows(tables, fitted, kind):
    run = fitted[kind]
    frame = tables.frame
    assert frame["contract"].isin(["weekly"]).any() and frame["monthly"].isna().any()
    p = run.scorer.predict_proba(frame)
    spark_p = run.spark_p.loc[frame["customer_id"]].to_numpy()
    assert np.max(np.abs(p - spark_p)) <= PARITY
    # the small-input paths (one dict, a frame of <= 8 rows) agree with the vectorised path
    rows = frame.head(50).to_dict("records")
    assert np.max(np.abs(np.concatenate([run.scorer.predict_proba(r) for r in rows]) - p[:50])) <= 1e-12
    assert np.max(np.abs(run.scorer.predict_proba(frame.head(8)) - p[:8])) <= 1e-12


def test_unseen_blank_and_null_categories_share_spark_keep_slot(tables, fitted):
    scorer = fitted["logistic_regression"].scorer
    base = {"tenure": 10, "monthly": 50.0, "balance": 100.0, "logins": 3, "city": "Salta", "card": "debit"}
    unseen, blank, none = (scorer.predict_proba({**base, "contract": v})[0] for v in ("weekly", " \t", None))
    missing = scorer.predict_proba({**base, "contract": "__missing__"})[0]
    # blank and null are the "__missing__" category, seen in training; an unseen one gets the keep slot
    assert blank == none == missing
    assert unseen != missing
    described = fitted["logistic_regression"].description["model"]
    labels = fitted["logistic_regression"].description["categories"]["contract"]
    assert labels == sorted(labels) and "__missing__" in labels
    # StringIndexer(keep) declares numLabels + 1 values, so the keep index owns the last one-hot slot
    slots = described["category_slots"]["contract"]
    assert len(slots) == len(labels) + 1 and -1 not in slots


@pytest.mark.parametrize("kind", list(TINY))
def test_shap_values_add_up_to_the_model_output(tables, fitted, kind):
    scorer = fitted[kind].scorer
    frame = tables.frame.head(500)
    shap_values = scorer.explain(frame)
    assert list(shap_values.columns) == list(SPEC.features)
    assert shap_values.attrs["units"] == ("probability" if kind == "random_forest" else "log-odds")
    total = shap_values.attrs["base_value"] + shap_values.to_numpy().sum(axis=1)
    output = scorer.raw_output(frame)
    assert np.max(np.abs(total - output)) <= (1e-9 if kind == "logistic_regression" else PARITY)
    p = scorer.predict_proba(frame)
    in_probability = output if kind == "random_forest" else 1 / (1 + np.exp(-output))
    assert np.max(np.abs(in_probability - p)) <= 1e-12
    # the one-row path explains exactly like the batch path
    one = scorer.explain(frame.iloc[[7]])
    assert np.allclose(one.to_numpy(), shap_values.iloc[[7]].to_numpy(), rtol=0, atol=1e-12)


def test_linear_shap_is_coefficient_times_distance_to_the_training_mean(tables, fitted):
    run = fitted["logistic_regression"]
    model = run.description["model"]
    slot = model["numeric_slots"]["tenure"]
    row = {
        "tenure": 30,
        "monthly": 50.0,
        "balance": None,
        "logins": 3,
        "contract": "year",
        "city": "",
        "card": "x",
    }
    phi = run.scorer.explain(row)
    assert phi.loc[0, "tenure"] == pytest.approx(
        model["coefficients"][slot] * (30 - model["means"][slot]), abs=1e-12
    )
    # tenure is a strong negative signal in the data; the fitted direction must agree
    assert model["coefficients"][slot] < 0
    # the reference defaults to the training summary, i.e. the same rows as an explicit background
    with_background = export_scorer(run.model, SPEC, background=tables.train)["model"]["means"]
    assert np.allclose(with_background, model["means"], rtol=0, atol=1e-12)


def test_pyfunc_returns_the_scorer_probabilities_and_shap(tables, fitted, tmp_path):
    import mlflow.pyfunc

    run = fitted["gbt"]
    frame = tables.frame.head(200)[list(SPEC.features)]
    direct = ChurnPyfuncModel()
    direct.load_context(SimpleNamespace(artifacts={"scorer": str(run.folder)}))
    out = direct.predict(None, frame, params={"explain": True})
    assert np.array_equal(out["probability"].to_numpy(), run.scorer.predict_proba(frame))
    assert [c for c in out.columns if c.startswith("shap_")] == [
        *(f"shap_{c}" for c in SPEC.features),
        "shap_base_value",
    ]

    mlflow.pyfunc.save_model(
        tmp_path / "pyfunc",
        python_model=ChurnPyfuncModel(),
        artifacts={"scorer": str(run.folder)},
        signature=pyfunc_signature(run.description),
        pip_requirements=pyfunc_requirements(),
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    typed = frame.astype({c: "float64" for c in SPEC.numeric})
    served = loaded.predict(typed, params={"explain": True})
    assert np.max(np.abs(served["probability"].to_numpy() - out["probability"].to_numpy())) <= 1e-12
    assert np.allclose(served["shap_tenure"], out["shap_tenure"], rtol=0, atol=1e-12)
    assert list(loaded.predict(typed.head(3)).columns) == ["probability"]
    assert any(r.startswith("shap==") for r in pyfunc_requirements())


def test_prepare_types_the_columns_and_the_scorer_reads_raw_values_the_same_way(spark):
    from jobs.churn.deployment.scorer import spark_cast
    from jobs.churn.training.pipeline import BLANK_CHARS

    spec = parse_spec(
        {
            "id": "key",
            "label": "Churn",
            "numeric": ["tenure", "charges", "senior"],
            "categorical": ["contract", "code", "ratio"],
            "models": {"gbt": {}},
        }
    )
    rows = [
        ("a", "12", 10.5, True, "month", 3, 1.0, "Yes"),
        ("b", " 7 ", math.nan, False, None, None, 1e7, "no"),
        ("c", "abc", None, None, "  ", -1, 1.5e-4, "TRUE"),
        ("d", None, -3.0, True, "\t", 0, 12345678.9, "maybe"),
        ("e", "1e3", 0.0, False, " month", 42, None, None),
        ("f", "", 1.0, True, "Two year", 7, math.nan, "0"),
    ]
    schema = "key string, tenure string, charges double, senior boolean, contract string, code int, ratio double, Churn string"
    prepared = prepare(spark.createDataFrame(rows, schema), spec)
    assert prepared.columns == ["key", "tenure", "charges", "senior", "contract", "code", "ratio", "Churn"]
    got = {r["key"]: r for r in prepared.collect()}
    m = "__missing__"
    expected = {
        "a": (12.0, 10.5, 1.0, "month", "3", "1.0", 1.0),
        "b": (7.0, math.nan, 0.0, m, m, "1.0E7", 0.0),
        "c": (None, None, None, m, "-1", "1.5E-4", 1.0),
        "d": (None, -3.0, 1.0, m, "0", "1.23456789E7", None),
        "e": (1000.0, 0.0, 0.0, " month", "42", m, None),
        "f": (None, 1.0, 1.0, "Two year", "7", m, 0.0),
    }
    for key, values in expected.items():
        row = tuple(got[key])[1:]
        assert [_nan_safe(v) for v in row] == [_nan_safe(v) for v in values], key
    # the scorer's readers of raw pandas values: numerics -> NaN where Spark has null/NaN, same strings
    for raw in rows:
        row = tuple(got[raw[0]])
        for position in (1, 2, 3):
            spark_value = math.nan if row[position] is None else row[position]
            assert _nan_safe(spark_cast.to_double(raw[position])) == _nan_safe(spark_value), raw
        for position in (4, 5, 6):
            text = spark_cast.spark_string(raw[position])
            text = m if text is None or not text.strip(BLANK_CHARS) else text
            assert text == row[position], raw


def _nan_safe(value):
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


@pytest.mark.parametrize(
    ("kind", "features"), [("logistic_regression", "numeric_only"), ("gbt", "categorical_only")]
)
def test_specs_with_one_kind_of_feature_export_too(spark, tables, kind, features):
    spec = parse_spec(
        {
            "id": "customer_id",
            "label": "churned",
            "numeric": ["tenure", "monthly"] if features == "numeric_only" else [],
            "categorical": ["contract", "card"] if features == "categorical_only" else [],
            "models": {kind: {}},
        }
    )
    model = build_pipeline(spec, kind, TINY[kind]).fit(tables.train.limit(600))
    rows = tables.score.limit(300)
    scored = model.transform(rows)
    spark_p = scored.select(positive_probability(scored).alias("p")).toPandas()["p"].to_numpy()
    counts = category_counts(model, tables.train.limit(600))
    assert set(counts) == set(spec.categorical)  # none for a numeric-only model
    scorer = ChurnScorer(export_scorer(model, spec, counts=counts))
    frame = rows.toPandas()
    assert np.max(np.abs(scorer.predict_proba(frame) - spark_p)) <= PARITY
    shap_values = scorer.explain(frame)
    total = shap_values.attrs["base_value"] + shap_values.to_numpy().sum(axis=1)
    assert list(shap_values.columns) == list(spec.features)
    assert np.max(np.abs(total - scorer.raw_output(frame))) <= PARITY


# JVM-free checks of the scorer's formulas on hand-written descriptions (numbers worked out by hand).

HAND_SPEC = {"name": "hand", "id": "id", "label": "y", "numeric": ["a", "b"], "categorical": ["c"]}
HAND_COMMON = {
    "format": "churn-scorer/1",
    "spec": HAND_SPEC,
    "missing_category": "__missing__",
    "blank_chars": " \t\n\r\f\v",
    "numeric_fill": {"a": 1.0, "b": 2.0},
    "categories": {"c": ["__missing__", "x", "y"]},
}


def test_the_most_frequent_category_is_counted_on_the_train_rows(tables, fitted):
    """What the Score form and the batch template offer as a typical customer: the category most train
    rows had, as the fitted indexer reads them (blank and null are the missing marker, never offered)."""
    model = fitted["logistic_regression"].model
    counts = category_counts(model, tables.train)
    frame = tables.train.select(*SPEC.categorical).toPandas()
    for column in SPEC.categorical:
        expected = frame[column].value_counts().to_dict()
        assert counts[column] == {label: expected.get(label, 0) for label in counts[column]}, column
        assert sum(counts[column].values()) == len(frame)  # every train row counted once
    scorer = ChurnScorer(export_scorer(model, SPEC, counts=counts))
    for column in SPEC.categorical:
        known = frame[column][frame[column] != "__missing__"].value_counts()
        assert scorer.most_frequent(column) == known.index[0] and known.iloc[0] > known.iloc[1], column


def test_the_most_frequent_category_is_not_the_alphabetically_first():
    described = {**HAND_COMMON, "kind": "logistic_regression", "units": "log-odds",
                 "model": {"intercept": 0.0, "coefficients": [0.0] * 6, "means": [0.0] * 6, "size": 6,
                           "numeric_slots": {"a": 0, "b": 1}, "category_slots": {"c": [2, 3, 4, 5]}}}  # fmt: skip
    counted = {**described, "category_counts": {"c": {"__missing__": 900, "x": 10, "y": 30}}}
    assert ChurnScorer.from_description(counted).most_frequent("c") == "y"  # the missing marker never
    tie = {**described, "category_counts": {"c": {"__missing__": 0, "x": 30, "y": 30}}}
    assert ChurnScorer.from_description(tie).most_frequent("c") == "x"  # a tie: the indexer's order
    assert ChurnScorer.from_description(described).most_frequent("c") == "x"  # no counts recorded (older)


def test_hand_written_linear_scorer():
    scorer = ChurnScorer.from_description(
        {
            **HAND_COMMON,
            "kind": "logistic_regression",
            "units": "log-odds",
            "model": {
                "intercept": 0.1,
                "coefficients": [0.5, -0.25, 0.1, 0.2, 0.3, 0.4],
                "means": [1.0, 2.0, 0.1, 0.3, 0.5, 0.1],
                "size": 6,
                "numeric_slots": {"a": 0, "b": 1},
                "category_slots": {"c": [2, 3, 4, 5]},  # __missing__, x, y, then the keep slot
            },
        }
    )
    frame = pd.DataFrame({"a": [1.0, None, 3.0], "b": [3.0, 2.0, math.nan], "c": ["x", None, "new"]})
    # margins: 0.1 + 0.5 - 0.75 + 0.2; 0.1 + 0.5 - 0.5 + 0.1 (median a, missing c); 0.1 + 1.5 - 0.5 + 0.4
    assert np.allclose(scorer.raw_output(frame), [0.05, 0.2, 1.5], rtol=0, atol=1e-15)
    assert np.allclose(scorer.predict_proba(frame), 1 / (1 + np.exp(-np.array([0.05, 0.2, 1.5]))), atol=1e-15)
    phi = scorer.explain(frame)
    # base = 0.1 + 0.5 * 1 - 0.25 * 2 + (0.1 * 0.1 + 0.2 * 0.3 + 0.3 * 0.5 + 0.4 * 0.1) = 0.36
    assert phi.attrs == {"base_value": pytest.approx(0.36), "units": "log-odds"}
    expected = [[0.0, -0.25, 0.2 - 0.26], [0.0, 0.0, 0.1 - 0.26], [1.0, 0.0, 0.4 - 0.26]]
    assert np.allclose(phi.to_numpy(), expected, rtol=0, atol=1e-15)


def test_hand_written_gbt_goes_left_at_the_threshold_like_spark():
    # one stump on a (<= 1.5 left), one on the code of c (<= 0.5 left: only __missing__); weights 1 and 0.1
    stump = {
        "children_left": [1, -1, -1],
        "children_right": [2, -1, -1],
        "threshold": [1.5, 0.0, 0.0],
        "node_sample_weight": [10.0, 4.0, 6.0],
    }
    scorer = ChurnScorer(
        {
            **HAND_COMMON,
            "kind": "gbt",
            "units": "log-odds",
            "model": {
                "inputs": [["numeric", "a"], ["numeric", "b"], ["code", "c"]],
                "tree_weights": [1.0, 0.1],
                "trees": [
                    {**stump, "feature": [0, -1, -1], "value": [0.0, -1.0, 1.0]},
                    {
                        **stump,
                        "feature": [2, -1, -1],
                        "threshold": [0.5, 0.0, 0.0],
                        "value": [0.0, 2.0, -2.0],
                    },
                ],
            },
        }
    )
    rows = [{"a": 1.5, "b": 0.0, "c": "x"}, {"a": 1.5000001, "b": 0.0, "c": ""}]
    # margins: -1 + 0.1 * -2 = -1.2 and 1 + 0.1 * 2 = 1.2; log-odds are 2 * margin
    assert np.allclose(scorer.raw_output(rows), [-2.4, 2.4], rtol=0, atol=1e-15)
    assert np.allclose(scorer.predict_proba(rows), 1 / (1 + np.exp([2.4, -2.4])), rtol=0, atol=1e-15)
    phi = scorer.explain(rows)
    # base: 2 * (0.4 * -1 + 0.6 * 1) + 2 * 0.1 * (0.4 * 2 + 0.6 * -2) = 0.32
    assert phi.attrs["base_value"] == pytest.approx(0.32, abs=1e-15)
    assert np.allclose(phi.to_numpy(), [[-2.4, 0.0, -0.32], [1.6, 0.0, 0.48]], rtol=0, atol=1e-12)
