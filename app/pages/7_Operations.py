"""Operations: what Prometheus holds of the jobs' runs (the figures every run pushes, docs/operations.md):
alerts now, crypto rows and reject share, run durations by job, Airflow's DAG runs and task durations (its
metadata database, through the postgres exporter), drift share and severity, model quality, and the REST
scoring API's latency and requests by status (its GET /metrics)."""

from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from app.common import guard, settings, sidebar
from jobs.common.metrics import alerts, query_range

st.set_page_config(page_title="Operations", layout="wide")
st.title("Operations")
sidebar()
url = settings().metrics.prometheus_url
if not url:
    st.info(
        "Prometheus is not configured for the app: set `METRICS_PROMETHEUS_URL` (the stacks set it; "
        "docs/operations.md). The jobs push their figures to `METRICS_PUSHGATEWAY_URL`."
    )
    st.stop()
st.caption(
    f"From Prometheus at {url}: [graph]({url}/graph) · [alerts]({url}/alerts) · [targets]({url}/targets)"
)

days = st.select_slider("Period", options=[1, 7, 30], value=7, format_func=lambda d: f"last {d} day(s)")
end = time.time()
start, step = end - days * 86400, max(60.0, days * 86400 / 400)  # about 400 points per series


def series(promql: str):
    return query_range(url, promql, start, end, step)


def chart(frame, y: str, color: str | None, title: str, fmt: str = ",.0f"):
    encoding = {
        "x": alt.X("time:T", title=None),
        "y": alt.Y("value:Q", title=y, axis=alt.Axis(format=fmt)),
        "tooltip": ["time:T", alt.Tooltip("value:Q", format=fmt), *([color] if color else [])],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None)
    st.altair_chart(alt.Chart(frame, title=title).mark_line(point=True, interpolate="step-after").encode(**encoding),
                    width="stretch")  # fmt: skip


with guard("the alerts"):
    now = alerts(url)
st.subheader("Alerts")
if not now:
    st.success("No alert is pending or firing.")
for a in now:
    (st.error if a["state"] == "firing" and a["severity"] == "critical" else st.warning)(
        f"**{a['alert']}** ({a['state']} since {a['since'][:19]}): {a['summary']}"
    )

with guard("the crypto figures"):
    rows = series('kpi_crypto_rows{kind=~"read|valid|rejected"}')
    share = series("kpi_crypto_reject_share")
    durations = series("kpi_job_duration_seconds")
    drift = series("kpi_churn_drift_share")
    severity = series("kpi_churn_drift_severity_level")
    auc = series('kpi_churn_model_test_metric{metric="roc_auc"}')
    latency = {
        q: series(f"histogram_quantile({q}, sum by (le) (rate(kpi_serving_request_seconds_bucket[5m])))")
        for q in (0.5, 0.95, 0.99)
    }
    requests = series("sum by (status) (rate(kpi_serving_request_seconds_count[5m]))")
    dag_runs = series("sum by (dag_id, state) (airflow_dag_runs_count)")
    task_seconds = series(
        'label_join(airflow_task_latest_try_duration_seconds, "task", ".", "dag_id", "task_id")'
    )

st.subheader("Crypto events runs")
if rows.empty:
    st.info("No crypto events figures in this period: the job pushes them at the end of every run.")
else:
    left, right = st.columns(2)
    with left:
        chart(rows, "rows", "kind", "Rows of the latest run")
    with right:
        chart(share, "reject share", None, "Reject share", ".2%")

st.subheader("Run durations by job")
if durations.empty:
    st.info("No job has pushed its duration in this period.")
else:
    chart(durations, "seconds", "job", "Start to end of each job's latest run", ",.1f")

st.subheader("Airflow")
if dag_runs.empty:
    st.info(
        "No Airflow figures: the postgres exporter reads them from Airflow's metadata database (the stacks)."
    )
else:
    left, right = st.columns(2)
    with left:
        dag_runs["runs"] = dag_runs["dag_id"] + " " + dag_runs["state"]
        chart(dag_runs, "DAG runs", "runs", "DAG runs by state")
    with right:
        if not task_seconds.empty:
            chart(task_seconds, "seconds", "task", "Latest try of each task", ",.1f")

st.subheader("Churn model and drift")
if drift.empty and auc.empty:
    st.info("No drift check or training has pushed figures in this period.")
else:
    left, right = st.columns(2)
    with left:
        if not drift.empty:
            chart(drift, "drifted share", None, "Share of drifted feature columns", ".2f")
        if not severity.empty:
            level = int(severity["value"].iloc[-1])
            st.caption(f"Severity of the latest check: {('none', 'moderate', 'severe', 'critical')[level]}")
    with right:
        if not auc.empty:
            chart(auc, "test ROC AUC", None, "Latest trained model's test ROC AUC", ".3f")
st.subheader("REST scoring API")
quantiles = [frame.assign(quantile=f"p{round(q * 100)}") for q, frame in latency.items() if not frame.empty]
latency = pd.concat(quantiles) if quantiles else pd.DataFrame()
if latency.empty:
    st.info("No scoring request in this period: Prometheus scrapes the API's GET /metrics (the stacks).")
else:
    left, right = st.columns(2)
    with left:
        chart(latency.assign(value=latency["value"] * 1000), "ms", "quantile", "Time to answer (5-minute windows)",
              ",.1f")  # fmt: skip
    with right:
        if not requests.empty:
            chart(requests, "requests/s", "status", "Requests by HTTP status", ",.2f")
