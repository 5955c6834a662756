"""Score one customer: every model input in a form, validated; probability, risk band and its SHAP chart."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from app.common import Timer, database, model_page, settings
from jobs.churn.features.io import SnapshotNotFound, table_path
from jobs.churn.serving.checks import check_customer_id, check_record, describe, domain_of
from jobs.churn.serving.io import LoadedModel, batch_scores_of, customer_snapshot
from jobs.common.postgres import PostgresUnavailable

MISSING = "(missing)"
TOP = 15

model = model_page("Score a customer")
scorer = model.scorer
categories = model.categories()


def key(column: str) -> str:
    return f"in_{column}"


def widget_value(column: str, value):
    """A feature value as its widget holds it: int for whole-number inputs, the missing marker for None."""
    if column in scorer.categorical:
        return MISSING if value is None else str(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value) if domain_of(column).integer else float(value)


def defaults() -> dict:
    """A typical customer: the training medians and the most frequent category of each input."""
    fill = scorer.description["numeric_fill"]
    values = {c: fill[c] for c in scorer.numeric}
    values.update({c: scorer.most_frequent(c) for c in scorer.categorical})
    return values


def fill_form(values: dict) -> None:
    for column in scorer.features:
        st.session_state[key(column)] = widget_value(column, values.get(column))


if st.session_state.get("form_model") != model.ref.version:  # first visit, or the model changed
    fill_form(defaults())
    st.session_state["form_model"] = model.ref.version
    st.session_state.pop("last_score", None)


def load_customer() -> None:
    text, problem = check_customer_id(st.session_state.get("lookup_id", ""))
    st.session_state.pop("lookup", None)
    if problem:
        st.session_state["lookup"] = ("error", f"{problem}: ids are the text of CUS_CUST_ID_BUY")
        return
    path = table_path(settings().churn.lake_dir)
    try:
        # the model's share inputs come from the customer's segment map, with the model's vocabulary
        found = customer_snapshot(path, text, scorer.features, scorer.shares)
    except SnapshotNotFound as exc:
        st.session_state["lookup"] = ("error", f"no feature table to look up from: {exc}")
        return
    if found is None:
        st.session_state["lookup"] = ("error", f"customer {text!r} is not in the feature table {path}")
        return
    fill_form(found.features)
    st.session_state["lookup"] = ("ok", found)


with st.expander("Fill the form from the feature table (a customer of the latest snapshot)"):
    cols = st.columns([2, 1, 1])
    cols[0].text_input("Customer id", key="lookup_id", placeholder="CUS_CUST_ID_BUY, e.g. 100042")
    cols[1].button("Load customer", on_click=load_customer)
    cols[2].button("Reset to a typical customer", on_click=lambda: fill_form(defaults()))
    status = st.session_state.get("lookup")
    if status and status[0] == "error":
        st.error(status[1])
    elif status:
        found = status[1]
        st.success(
            f"customer {found.customer_id}: snapshot {found.snapshot_date}, feature table "
            f"v{found.table_version} (the features training and batch scoring use)"
        )
        try:
            with database() as conn:
                batch = batch_scores_of(conn, found.customer_id)
            if batch:
                st.caption("Batch scores of this customer (Spark job, prod.churn_scores):")
                st.dataframe(pd.DataFrame(batch), hide_index=True)
        except PostgresUnavailable as exc:
            st.caption(f"(batch scores not available: {exc})")


def show_result(model: LoadedModel, record: dict) -> None:
    cuts = settings().churn.band_cuts
    with Timer() as t:
        scored = model.score(pd.DataFrame([record]).astype({c: "float64" for c in scorer.numeric}), cuts)
        explanation = model.explain(record)
    p, band = float(scored["probability"].iloc[0]), str(scored["risk_band"].iloc[0])
    st.session_state["last_score"] = {"probability": p, "risk_band": band, "version": model.ref.version}
    left, right = st.columns([1, 2])
    with left:
        st.metric("Churn probability", f"{p:.1%}")
        st.markdown(f"Risk band: **{band}** (low < {cuts[0]:g} <= medium < {cuts[1]:g} <= high)")
        st.caption(
            f"probability = {p:.6f} · {model.label} · {t.ms:.1f} ms · submit #{st.session_state['submits']}"
        )
    with right:
        units = scorer.units
        base = scorer.base_value
        total = base + explanation["contribution"].sum()
        top = explanation.head(TOP).assign(
            label=lambda f: f["feature"] + " = " + f["value"],
            direction=lambda f: ["raises risk" if v > 0 else "lowers risk" for v in f["contribution"]],
        )
        chart = (
            alt.Chart(top)
            .mark_bar()
            .encode(
                x=alt.X("contribution:Q", title=f"SHAP contribution ({units})"),
                y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=320, labelOverlap=False)),
                color=alt.Color(
                    "direction:N",
                    scale=alt.Scale(domain=["raises risk", "lowers risk"], range=["#d62728", "#1f77b4"]),
                    legend=alt.Legend(title=None, orient="bottom"),
                ),
                tooltip=["feature", "value", alt.Tooltip("contribution:Q", format=".4f")],
            )
            .properties(title=f"Why: the {min(TOP, len(top))} largest contributions")
        )
        st.altair_chart(chart, width="stretch", height=22 * len(top) + 90)
        st.caption(
            f"SHAP in {units}: base value {base:.4f} + contributions {total - base:+.4f} = {total:.4f}"
            + (f" (probability {1 / (1 + math.exp(-total)):.6f})" if units == "log-odds" else "")
        )
    with st.expander("All contributions"):
        st.dataframe(explanation, hide_index=True)


@st.fragment
def scoring() -> None:
    """The form and its answer: a submit reruns only this part of the page, not the whole page."""
    result_area = st.container()  # the answer shows above the long form

    with st.form("customer"):
        st.caption(
            f"{len(scorer.features)} inputs of {model.label}. Leave a value empty where the source has nothing "
            "(the model imputes it); required ones say so."
        )
        columns = st.columns(3)
        for i, column in enumerate(scorer.features):
            with columns[i % 3]:
                if column in scorer.categorical:
                    st.selectbox(
                        column, [MISSING, *categories[column]], key=key(column), help=describe(column, scorer.shares),
                        accept_new_options=True,
                    )  # fmt: skip
                elif domain_of(column).integer:
                    # value=None: the field can be emptied (a missing value); its content lives in session state
                    st.number_input(
                        column,
                        value=None,
                        step=1,
                        format="%d",
                        key=key(column),
                        help=describe(column, scorer.shares),
                    )
                else:
                    share = domain_of(column).high == 1
                    st.number_input(
                        column, value=None, step=0.01 if share else 1.0, format="%.4f" if share else "%.2f",
                        key=key(column), help=describe(column, scorer.shares),
                    )  # fmt: skip
        submitted = st.form_submit_button("Score", type="primary")
    if not submitted:
        return
    st.session_state["submits"] = st.session_state.get("submits", 0) + 1
    values = {c: st.session_state[key(c)] for c in scorer.features}
    values.update({c: None for c in scorer.categorical if values[c] == MISSING})
    record, errors = check_record(values, scorer.numeric, scorer.categorical)
    if errors:
        st.session_state.pop("last_score", None)
        result_area.error(
            f"**{len(errors)} input{'s' if len(errors) > 1 else ''} to fix before scoring:**\n"
            + "\n".join(f"- {message}" for message in errors.values())
        )
    else:
        unseen = [c for c in scorer.categorical if record[c] is not None and record[c] not in categories[c]]
        with result_area:
            for column in unseen:
                st.info(
                    f"{column} = {record[column]!r} was never seen in training: scored as an unknown category"
                )
            show_result(model, record)


scoring()
