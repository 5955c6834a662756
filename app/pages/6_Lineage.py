"""Lineage: where a prod row and a model come from. A crypto event's every change, by which run, from which
landed source row (and which steward's correction); the corrections and how their replay judged them; each
registered model version's data (feature version, content hash), code (git commit), spec and DAG run."""

from __future__ import annotations

from datetime import date

import streamlit as st

from app.common import guard, model_service, query, settings, sidebar
from jobs.churn.monitoring.io import registry_versions

st.set_page_config(page_title="Lineage", layout="wide")
st.title("Lineage")
sidebar()
st.caption("The same SQL as the saved pgAdmin queries `crypto_row_lineage` and `crypto_corrections`.")

st.subheader("Where did this crypto event come from?")
with guard("the lineage of prod.bt_crypto_events"):
    recent = query("crypto_row_lineage", limit=1)
if recent.empty:
    st.info("No run has changed prod.bt_crypto_events yet: `make dag-run` (stack) or `make demo`.")
else:
    last = recent.iloc[0]  # the most recently changed row, as a starting point
    a, b, c, d = st.columns(4)
    site = a.text_input("site_id", value=str(last["site_id"]))
    user = b.text_input("user_id", value=str(last["user_id"]))
    day = c.date_input("purchase_date", value=last["purchase_date"], min_value=date(2000, 1, 1))
    crypto = d.text_input("crypto_type", value=str(last["crypto_type"]))
    if not user.strip().lstrip("-").isdigit():
        st.error(f"user_id must be a whole number, got {user!r}")
    else:
        key = {"site_id": site.strip().upper(), "user_id": int(user), "purchase_date": day,
               "crypto_type": crypto.strip().upper()}  # fmt: skip
        with guard("the row's lineage"):
            history = query("crypto_row_lineage", where=key)
        if history.empty:
            st.warning("No run has changed this key (check the values: codes are upper-case).")
        else:
            st.markdown(
                f"**{len(history)} change(s)**, newest first; the current state is the one marked "
                "`is_current_state`. Landed values are shown while the landing snapshot is kept."
            )
            st.dataframe(history, hide_index=True)

st.subheader("Stewards' corrections and their replays")
with guard("the corrections"):
    corrections = query("crypto_corrections", limit=500)
if corrections.empty:
    st.info(
        "No correction yet. A steward corrects quarantined rows with "
        "`python -m jobs.crypto_events.replay --date D --corrections fixes.csv` (docs/crypto_events.md)."
    )
else:
    st.dataframe(corrections, hide_index=True)

s = settings()
st.subheader(f"Where did each version of {s.mlflow.model_name} come from?")
with guard("the model registry"):
    versions = registry_versions(model_service().client(), s.mlflow.model_name)
if versions.empty:
    st.info("No model version registered yet.")
else:
    columns = ["version", "aliases", "snapshot_date", "feature_version", "data_sha256", "spec", "git_commit",
               "dag_run_id", "run_id", "created"]  # fmt: skip
    st.dataframe(versions[[c for c in columns if c in versions.columns]], hide_index=True)
