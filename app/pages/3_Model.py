"""Model: the registered versions, and for one of them its metrics, training data, decision and plots."""

from __future__ import annotations

import json

import streamlit as st

from app.common import HOW_TO_TRAIN, guard, model_service, settings, sidebar
from jobs.churn.monitoring.io import METRICS, registry_versions, version_details

st.set_page_config(page_title="Model", layout="wide")
st.title("Model")
s = settings()
name = s.mlflow.model_name
sidebar()
with guard("the model registry"):
    client = model_service().client()
    versions = registry_versions(client, name)
if versions.empty:
    st.warning(
        f"**No version of {name} is registered** in MLflow at {s.mlflow.resolved_tracking_uri()}.\n\n{HOW_TO_TRAIN}"
    )
    st.stop()

st.subheader(f"Versions of {name}")
st.dataframe(versions.drop(columns=["run_id"]), hide_index=True)

holders = versions[versions["aliases"].str.contains(s.app.model_alias, regex=False)]
default = int(holders["version"].iloc[0]) if len(holders) else int(versions["version"].iloc[0])
if holders.empty:
    st.warning(f"No version holds the alias {s.app.model_alias!r}: the app cannot score.\n\n{HOW_TO_TRAIN}")
choices = [int(v) for v in versions["version"]]
version = st.selectbox("Version", choices, index=choices.index(default), format_func=lambda v: f"v{v}")
with guard(f"version {version}"):
    details = version_details(client, name, version)

tags = details.tags
aliases = ", ".join(f"@{a}" for a in details.aliases) or "no alias"
st.subheader(f"{name} v{details.version} ({aliases}): {tags.get('model_kind', '?')}")
shown = [m for m in METRICS if m in details.metrics]
for start in range(0, len(shown), 5):
    for col, metric in zip(st.columns(5), shown[start : start + 5], strict=False):
        col.metric(f"test {metric}", f"{details.metrics[metric]:.4f}")

left, right = st.columns(2)
with left:
    st.markdown("**Training data**")
    counts = details.dataset.get("counts", {})
    st.markdown(
        f"- snapshot date: `{tags.get('snapshot_date', '?')}`\n"
        f"- feature table: `{tags.get('feature_path', '?')}` version `{tags.get('feature_version', '?')}` "
        f"({tags.get('feature_format', '?')})\n"
        f"- content hash: `{str(details.dataset.get('sha256', '?'))[:16]}`\n"
        f"- rows: {json.dumps(counts) if counts else '?'}\n"
        f"- spec: `{tags.get('spec', '?')}`, training run `{tags.get('run_id', '?')}`\n"
        f"- code: git commit `{tags.get('git_commit', '?')[:12]}`; trained by "
        + (
            f"DAG run `{tags['dag_id']}` / `{tags['dag_run_id']}`"
            if tags.get("dag_run_id")
            else "hand (no DAG run)"
        )
    )
with right:
    st.markdown("**Promotion**")
    decision = tags.get("promotion.decision")
    if decision:
        st.markdown(f"- decision: **{decision}**\n- reason: {tags.get('promotion.reason', '')}")
    else:
        st.markdown("- not evaluated for promotion yet (`python -m jobs.churn.validation`)")
    if tags.get("replaced_by"):
        st.markdown(f"- replaced by v{tags['replaced_by']}")
    params = {
        k: v for k, v in details.params.items() if k.startswith("best.") or k in ("split", "grid_points")
    }
    st.markdown("**Search**: " + ", ".join(f"`{k}={v}`" for k, v in sorted(params.items())))

if details.plots:
    st.subheader("Plots logged with this version (test split)")
    names = list(details.plots)
    for start in range(0, len(names), 2):
        cols = st.columns(2)
        for col, plot in zip(cols, names[start : start + 2], strict=False):
            col.image(details.plots[plot], caption=plot, width="stretch")
else:
    st.info("No plots were logged with this version.")
