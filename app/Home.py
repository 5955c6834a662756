"""Home: what the app does and the state of the parts it reads (model, drift, data quality)."""

from __future__ import annotations

import streamlit as st

from app.common import HOW_TO_TRAIN, current_model, fact, model_service, query, settings, sidebar
from jobs.churn.deployment.io import NoModel
from jobs.churn.serving.io import MlflowUnavailable
from jobs.common.postgres import PostgresUnavailable

st.set_page_config(page_title="KPIdelivery churn", layout="wide")
st.title("KPIdelivery: churn scoring and data quality")
st.markdown(
    "Score a customer or a file with the **production** churn model (the JVM-free scorer of the version "
    "registered in MLflow, the same features as training), see why it predicts what it does (SHAP), which "
    "model is in production and how it was trained, how the data drifts, and how the crypto events "
    "batches passed their quality gate."
)
s = settings()
model = None
left, middle, right = st.columns(3)
with left:
    st.subheader("Model")
    try:
        model = current_model()
        st.success(f"{model.label}: {model.scorer.kind}, {len(model.scorer.features)} inputs")
        tags = model.ref.tags
        st.caption(
            f"test ROC AUC {tags.get('test_roc_auc', '?')}, trained on snapshot "
            f"{tags.get('snapshot_date', '?')} (feature table v{tags.get('feature_version', '?')})"
        )
    except NoModel as exc:
        st.warning(f"No production model: {exc}.\n\n{HOW_TO_TRAIN}")
    except MlflowUnavailable as exc:
        st.error(f"MLflow is not reachable: {exc}")
with middle:
    st.subheader("Drift")
    try:
        from jobs.churn.monitoring.io import drift_runs

        runs = drift_runs(model_service().client(), s.mlflow.experiment, limit=1)
        if runs.empty:
            st.info("No drift report yet: `make churn-drift` (stack) or `python -m jobs.churn.monitoring`.")
        else:
            last = runs.iloc[-1]
            fact(
                st,
                f"Latest report ({last['date']})",
                last["severity"],
                f"recent_drift_share {last['recent_drift_share']:.2f}",
            )
    except MlflowUnavailable as exc:
        st.error(f"MLflow is not reachable: {exc}")
with right:
    st.subheader("Crypto data quality")
    try:
        runs = query("crypto_run_history", limit=1)
        if runs.empty:
            st.info("No crypto events run yet: `make dag-run` (stack) or `make demo`.")
        else:
            last = runs.iloc[0]
            fact(
                st,
                f"Last run ({last['logical_date']})",
                last["status"],
                f"{last['rows_rejected']} of {last['rows_read']} rows rejected",
            )
    except PostgresUnavailable as exc:
        st.error(str(exc))
sidebar(model)
st.divider()
st.markdown(
    "Pages: **Score** one customer · **Batch** a CSV file · **Model** versions, metrics and plots · "
    "**Drift** reports and history · **Data quality** of the crypto events runs."
)
