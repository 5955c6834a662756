"""Every page of the app and every error path, driven in-process with Streamlit's AppTest against the real
MLflow server, PostgreSQL and the feature table (no stand-ins)."""

from __future__ import annotations

import io
import time

import pandas as pd
import pytest

from tests.app.conftest import clear_app_caches
from tests.served import CRYPTO_DAY, MODEL, ROOT, environment, feature_rows, pyfunc_probability, tiny_spec

pytestmark = pytest.mark.integration


def page(name: str, **env: str):
    """A page run once, in a fresh app process state (settings are read again from `env`)."""
    from streamlit.testing.v1 import AppTest

    clear_app_caches()
    with environment(**env):
        at = AppTest.from_file(str(ROOT / "app" / name), default_timeout=180)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


# --- pages ---------------------------------------------------------------------------------------------


def test_home_shows_the_model_drift_and_crypto_runs(served):
    at = page("Home.py", **served["env"])
    assert f"{MODEL} v{served['version']}" in texts(at.success)
    labels = {m.label: m.value for m in at.metric}
    assert labels[f"Latest report ({served['drift'].date})"] == served["drift"].severity
    assert labels[f"Last run ({CRYPTO_DAY})"] == "merged"


def test_score_a_typical_customer_shows_the_registered_models_probability_and_its_shap(served):
    at = page("pages/1_Score.py", **served["env"])
    record = {c: at.session_state[f"in_{c}"] for c in _features(served)}
    button(at, "Score").click()
    with environment(**served["env"]):
        at.run()
    assert not at.exception and not at.error
    shown = at.session_state["last_score"]
    record = {c: (None if v == "(missing)" else v) for c, v in record.items()}
    assert shown["probability"] == pytest.approx(
        pyfunc_probability(served["tracking_uri"], record), abs=1e-12
    )
    assert f"probability = {shown['probability']:.6f}" in texts(at.caption)
    assert at.metric[0].value == f"{shown['probability']:.1%}"
    assert shown["risk_band"] in at.markdown[0].value or shown["risk_band"] in texts(at.markdown)
    # the explanation adds up: base value + contributions = the model's output (log-odds or probability)
    explanation = at.dataframe[-1].value
    assert len(explanation) == len(record)
    assert "base value" in texts(at.caption)


def _features(served) -> tuple[str, ...]:
    from jobs.churn.serving.io import ModelService

    return ModelService(served["tracking_uri"], MODEL).load().scorer.features


def test_a_customer_loaded_from_the_feature_table_scores_as_the_spark_batch_job(served, pg):
    from jobs.common.postgres import connect

    with connect(pg) as conn:
        customer, spark_p, band = conn.execute(
            "SELECT customer_id, probability, risk_band FROM prod.churn_scores WHERE model_name = %s "
            "ORDER BY probability DESC LIMIT 1",
            (MODEL,),
        ).fetchone()
    at = page("pages/1_Score.py", **served["env"])
    at.text_input(key="lookup_id").input(str(customer))
    button(at, "Load customer").click()
    with environment(**served["env"]):
        at.run()
        assert f"customer {customer}: snapshot" in texts(at.success)
        button(at, "Score").click()
        at.run()
    shown = at.session_state["last_score"]
    assert shown["probability"] == pytest.approx(spark_p, abs=1e-6)  # JVM-free app == Spark batch
    assert shown["risk_band"] == band


def test_wrong_and_missing_inputs_are_refused_with_one_message_each(served):
    at = page("pages/1_Score.py", **served["env"])
    at.number_input(key="in_pay_count_6m").set_value(-3)
    at.number_input(key="in_share_seg_instore_6m").set_value(1.7)  # a share of the model's vocabulary
    at.number_input(key="in_pay_count_3m").set_value(None)
    at.number_input(key="in_age").set_value(None)  # allowed: unknown age is imputed
    button(at, "Score").click()
    with environment(**served["env"]):
        at.run()
    errors = texts(at.error)
    assert "3 inputs to fix before scoring" in errors
    assert "pay_count_6m must be a whole number >= 0, got -3" in errors
    assert "share_seg_instore_6m must be a number from 0 to 1, got 1.7" in errors
    assert "pay_count_3m is required" in errors
    assert "age" not in errors
    assert "last_score" not in at.session_state


def test_batch_scores_good_rows_lists_bad_ones_and_loses_none(served):
    features = feature_rows(served, 12)
    columns = ["customer_id", *_features(served)]
    good = features[columns]
    bad = good.head(3).copy()
    bad["customer_id"] = [9_000_001, 9_000_002, 9_000_003]
    bad["pay_count_6m"] = ["-1", "many", "3"]
    bad["city"] = ["ok", "ok", "bad\x01city"]
    body = pd.concat([good.astype(object), bad], ignore_index=True)
    buffer = io.StringIO()
    body.to_csv(buffer, index=False)
    buffer.write(f"{good['customer_id'].iloc[0]},{','.join(['1'] * (len(columns) - 1))}\n")  # duplicate id

    batch = page("pages/2_Batch.py", **served["env"])
    batch.file_uploader[0].set_value(("customers.csv", buffer.getvalue().encode(), "text/csv"))
    with environment(**served["env"]):
        batch.run()
    assert not batch.exception
    metrics = {m.label: m.value for m in batch.metric}
    assert metrics["Rows in the file"] == "16" and metrics["Scored"] == "12" and metrics["Rejected"] == "4"
    results = batch.session_state["batch_results"]
    assert len(results) == 16 and list(results["line"]) == list(range(2, 18))
    assert set(results.loc[results["status"] == "rejected", "line"]) == {14, 15, 16, 17}
    problems = " ".join(results["problems"])
    assert "pay_count_6m must be a whole number >= 0, got -1" in problems
    assert (
        "got 'many'" in problems and "control characters" in problems and "duplicate customer_id" in problems
    )
    expected = pd.read_csv(io.StringIO(buffer.getvalue()), nrows=12)
    from jobs.churn.serving.io import ModelService

    model = ModelService(served["tracking_uri"], MODEL).load()
    p = model.scorer.predict_proba(expected)
    scored = results[results["status"] == "scored"]
    assert scored["probability"].to_numpy() == pytest.approx(p, abs=1e-12)
    assert any(b.label.startswith("Download the results") for b in batch.get("download_button"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"a,b\n1,2\n", "lacks"),
        (b"", "empty"),
        (b"\xff\xfe\x00\x01", "not UTF-8"),
    ],
)
def test_an_unusable_file_is_refused_with_the_reason(served, body, message):
    at = page("pages/2_Batch.py", **served["env"])
    at.file_uploader[0].set_value(("bad.csv", body, "text/csv"))
    with environment(**served["env"]):
        at.run()
    assert "cannot be scored" in texts(at.error) and message in texts(at.error)


def test_model_page_shows_version_metrics_training_data_and_plots(served):
    at = page("pages/3_Model.py", **served["env"])
    assert at.subheader[1].value.startswith(f"{MODEL} v{served['version']} (@challenger, @production)")
    labels = [m.label for m in at.metric]
    assert {"test roc_auc", "test pr_auc", "test brier"} <= set(labels)
    training = texts(at.markdown)
    assert "snapshot date: `2026-03-01`" in training and "decision: **promoted**" in training
    assert "git commit `" in training and "trained by hand (no DAG run)" in training
    images = at.image
    assert len(images) >= 5  # ROC, PR, calibration, confusion, SHAP summary


def test_drift_page_shows_the_latest_report_and_the_history(served):
    result = served["drift"]
    at = page("pages/4_Drift.py", **served["env"])
    shown = texts(at.success) + texts(at.info) + texts(at.warning) + texts(at.error)
    assert f"Latest report {result.date}: severity {result.severity}" in shown
    assert len(at.dataframe[0].value) == 1
    assert at.get("download_button")


def test_data_quality_page_shows_the_runs_and_rejects_by_rule(served):
    crypto = served["crypto"]
    at = page("pages/5_Data_quality.py", **served["env"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Last logical date"] == str(CRYPTO_DAY) and metrics["Status"] == "merged"
    assert crypto.status == "merged" and metrics["Rejected"] == f"{crypto.counts['rows_rejected']:,}"
    runs = at.dataframe[0].value
    assert len(runs) == 1 and bool(runs["reconciled"].iloc[0])


def test_lineage_page_follows_a_row_to_its_run_and_a_model_to_its_data_and_code(served):
    import re

    crypto = served["crypto"]
    at = page("pages/6_Lineage.py", **served["env"])
    history = at.dataframe[0].value  # the most recently changed row, its every change
    assert list(history["action"]) == ["inserted"] and str(history["run_id"].iloc[0]) == crypto.run_id
    assert history["landed_purchase_price"].iloc[0] is not None and bool(history["is_current_state"].iloc[0])
    assert "No correction yet" in texts(at.info)
    versions = at.dataframe[1].value
    trained = versions[versions["version"] == served["version"]].iloc[0]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", trained["git_commit"])  # the code that trained it
    assert re.fullmatch(r"[0-9a-f]{64}", trained["data_sha256"]) and trained["snapshot_date"] == "2026-03-01"
    # a key typed in that no run changed: said, not an error
    at.text_input[0].set_value("ZZZ")
    with environment(**served["env"]):
        at.run()
    assert "No run has changed this key" in texts(at.warning)


# --- error paths ---------------------------------------------------------------------------------------


def test_without_a_production_model_every_page_says_what_to_run(served):
    env = {**served["env"], "MLFLOW_MODEL_NAME": "no_such_model"}
    for name in ("pages/1_Score.py", "pages/2_Batch.py"):
        at = page(name, **env)
        warning = texts(at.warning)
        assert "No production model" in warning and "make churn-train" in warning
    assert "No version of no_such_model is registered" in texts(page("pages/3_Model.py", **env).warning)
    assert "No production model" in texts(page("Home.py", **env).warning)


def test_mlflow_down_is_a_clear_error_and_quick(served):
    from jobs.common.postgres import free_port

    env = {**served["env"], "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    for name in ("pages/1_Score.py", "pages/3_Model.py", "pages/4_Drift.py"):
        started = time.monotonic()
        at = page(name, **env)
        assert "MLflow is not reachable" in texts(at.error) and "does not answer" in texts(at.error)
        assert time.monotonic() - started < 30


def test_an_empty_database_and_a_missing_one_are_explained(served, pg):
    from psycopg import sql

    from jobs.common.postgres import connect, free_port, prepare_database

    empty, bare = f"{pg.db}_app_empty", f"{pg.db}_app_bare"
    with connect(pg, dbname="postgres", role="admin") as conn:
        for db in (empty, bare):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    prepare_database(pg.model_copy(update={"db": empty}))

    at = page("pages/5_Data_quality.py", **{**served["env"], "POSTGRES_DB": empty})
    infos = texts(at.info)
    assert "No crypto events run yet" in infos and "No rejected row" in infos and "No churn file" in infos
    at = page("pages/5_Data_quality.py", **{**served["env"], "POSTGRES_DB": bare})
    assert "has no project tables" in texts(at.error) and "make init" in texts(at.error)
    down = {**served["env"], "POSTGRES_PORT": str(free_port()), "POSTGRES_EMBEDDED": "never"}
    assert "does not answer" in texts(page("pages/5_Data_quality.py", **down).error)
    assert "PostgreSQL" in texts(page("Home.py", **down).error)  # the rest of the home page still renders


def test_the_model_reloads_when_the_alias_moves(served):
    """By the button at once, and by itself once APP_ALIAS_CHECK_SECONDS have passed."""
    from mlflow.tracking import MlflowClient

    from jobs.churn.training import __main__ as train

    uri = served["tracking_uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    spec = tiny_spec(served["root"], "app_linear", {"logistic_regression": {"regParam": [0.01]}})
    with environment(**served["env"]):
        v2 = train.run(train.parse_args(["--spec", str(spec), "--master", "local[2]"]), served["settings"])[
            "version"
        ]
    v1 = served["version"]
    try:
        at = page("pages/1_Score.py", **served["env"])
        assert at.session_state["model_version"] == v1
        client.set_registered_model_alias(MODEL, "production", str(v2))
        with environment(**served["env"]):
            at.run()
            assert at.session_state["model_version"] == v1  # checked at most every hour in this test
            button(at, "Reload model").click()
            at.run()
        assert at.session_state["model_version"] == v2
        assert f"{MODEL} v{v2}" in texts(at.caption)

        client.set_registered_model_alias(MODEL, "production", str(v1))
        with environment(**{**served["env"], "APP_ALIAS_CHECK_SECONDS": "0.5"}):
            import streamlit as st

            st.cache_resource.clear()  # the settings, read again with the short interval
            at.run()
            time.sleep(0.6)
            at.run()
        assert at.session_state["model_version"] == v1
    finally:
        client.set_registered_model_alias(MODEL, "production", str(v1))
