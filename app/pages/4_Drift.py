"""Drift: the latest Evidently report and its severity, and the history of recent_drift_share."""

from __future__ import annotations

import altair as alt
import streamlit as st
import streamlit.components.v1 as components

from app.common import guard, model_service, settings, sidebar
from jobs.churn.monitoring.io import drift_report, drift_runs

SEVERITY_STYLE = {"none": st.success, "moderate": st.info, "severe": st.warning, "critical": st.error}

st.set_page_config(page_title="Drift", layout="wide")
st.title("Drift")
s = settings()
sidebar()
with guard("the drift runs"):
    client = model_service().client()
    runs = drift_runs(client, s.mlflow.experiment)
if runs.empty:
    st.info(
        "No drift report yet. The weekly `churn_drift_monitor_dag` writes one; run it now with "
        "`make churn-drift` (stack) or `python -m jobs.churn.monitoring`."
    )
    st.stop()

last = runs.iloc[-1]
with guard("the latest drift report"):
    summary, html = drift_report(client, last["run_id"])
SEVERITY_STYLE.get(last["severity"], st.info)(
    f"**Latest report {last['date']}: severity {last['severity']}**"
    f"{' (retraining triggered)' if last['retrain'] else ''}; "
    f"{last['drifted_columns']} drifted column(s), recent_drift_share {last['recent_drift_share']:.3f}"
)
for reason in summary.get("reasons", []):
    st.markdown(f"- {reason}")
if summary.get("important_drifted"):
    st.markdown(
        "Drifted among the model's most important features: " + ", ".join(summary["important_drifted"])
    )

cuts = s.drift.share_cuts
history = runs.assign(when=runs["date"].where(runs["date"] != "", runs["started"].astype(str)))
line = (
    alt.Chart(history)
    .mark_line(point=True)
    .encode(
        x=alt.X("when:T", title="report date"),
        y=alt.Y("recent_drift_share:Q", title="share of drifted columns", scale=alt.Scale(domain=[0, 1])),
        tooltip=["when", "severity", alt.Tooltip("recent_drift_share:Q", format=".3f"), "drifted_columns"],
    )
)
rules = (
    alt.Chart(
        {
            "values": [
                {"cut": c, "severity": n}
                for c, n in zip(cuts, ("moderate", "severe", "critical"), strict=True)
            ]
        }
    )
    .mark_rule(strokeDash=[4, 4], color="gray")
    .encode(y="cut:Q", tooltip=["severity:N", "cut:Q"])
)
st.subheader("History of recent_drift_share")
st.altair_chart((line + rules).properties(height=280), width="stretch")
st.dataframe(history.drop(columns=["when"]), hide_index=True)

st.subheader(f"Report {last['date']}")
st.caption(f"stored at {last['report_html'] or '(not published to the object store)'}")
if html is None:
    st.warning("This run logged no report.html.")
else:
    st.download_button("Download report.html", html, file_name=f"drift-{last['date']}.html", mime="text/html")
    components.html(html.decode("utf-8", errors="replace"), height=900, scrolling=True)
