"""Data quality: the crypto events runs (dqm.dq_runs), rejects by rule over time, the rows of upstream's table
whose date no window can hold (quarantined once), churn ingest batches."""

from __future__ import annotations

import altair as alt
import streamlit as st

from app.common import fact, guard, query, sidebar

st.set_page_config(page_title="Data quality", layout="wide")
st.title("Data quality")
sidebar()
st.caption("The same SQL as the saved pgAdmin queries in `database/queries/`.")

with guard("the crypto runs"):
    runs = query("crypto_run_history", limit=500)
    rejects = query("crypto_rejects_by_rule_and_day")
    undatable = query("crypto_undatable_rows", limit=200)
    batches = query("churn_ingest_batches", limit=200)

st.subheader("Crypto events runs")
if runs.empty:
    st.info("No crypto events run yet: `make dag-run` (stack) or `make demo` (embedded default).")
else:
    last = runs.iloc[0]
    a, b, c, d = st.columns(4)
    a.metric("Last logical date", str(last["logical_date"]))
    fact(b, "Status", last["status"], "gate passed" if last["gate_passed"] else "gate blocked")
    c.metric("Rows read", f"{last['rows_read'] or 0:,}")
    d.metric("Rejected", f"{last['rows_rejected'] or 0:,}")
    unreconciled = runs[runs["reconciled"] == False]  # noqa: E712 (a pandas mask, NULL stays out)
    if len(unreconciled):
        st.error(f"{len(unreconciled)} run(s) do not reconcile: read != valid + rejected + duplicates")
    st.dataframe(runs, hide_index=True)

st.subheader("Rejected rows by rule and logical date")
if rejects.empty:
    st.info("No rejected row in dqm.bt_crypto_events_rejects.")
else:
    chart = (
        alt.Chart(rejects.assign(logical_date=rejects["logical_date"].astype(str)))
        .mark_bar()
        .encode(
            x=alt.X("logical_date:O", title="logical date", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("rows:Q", title="rejected rows", stack=True),
            color=alt.Color("rule_code:N", title="rule"),
            tooltip=["logical_date", "rule_code", "rows"],
        )
        .properties(height=300)
    )
    st.altair_chart(chart, width="stretch")

st.subheader("Rows whose date no window can hold")
if undatable.empty:
    st.info("No row of upstream's table has a date that no window can hold.")
else:
    st.caption(
        "Missing, unparseable or impossible dates, or dates outside any plausible history: each row is "
        "quarantined once, by the first merged run that saw it."
    )
    st.dataframe(undatable.drop(columns=["run_id"]), hide_index=True)

st.subheader("Churn source files (ingest batches)")
if batches.empty:
    st.info("No churn file ingested yet: `make churn-watchdog` (stack) or `make demo`.")
else:
    st.dataframe(batches, hide_index=True)
