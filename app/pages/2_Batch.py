"""Batch: upload a CSV of customers, see every row's fate (scored or rejected with why), download all."""

from __future__ import annotations

import altair as alt
import streamlit as st

from app.common import Timer, model_page, settings
from jobs.churn.contract.features import ID
from jobs.churn.serving.checks import (
    BatchFileError,
    batch_results,
    batch_template,
    errors_frame,
    read_batch_csv,
)
from jobs.common.csvfile import MB

model = model_page("Score a file of customers")
scorer = model.scorer
cuts = settings().churn.band_cuts

st.markdown(
    f"A CSV with a header row and one customer per line: the model's {len(scorer.features)} input columns "
    f"(`{ID}` optional: an id as text, kept as written but for surrounding spaces; other columns are "
    "ignored). Empty cells are missing values. Rows with a problem are listed with the reason and kept in "
    "the download; they are never dropped."
)
template = batch_template(
    scorer.description["numeric_fill"],
    {c: scorer.most_frequent(c) for c in scorer.categorical},
    scorer.numeric,
    scorer.categorical,
)
st.download_button(
    "Download a template (one typical customer)",
    template.to_csv(index=False),
    file_name="churn_customers_template.csv",
    mime="text/csv",
)
max_upload_mb = settings().app.max_upload_mb
upload = st.file_uploader("Customers CSV", type=["csv"], max_upload_size=max_upload_mb)
if upload is None:
    st.stop()

try:
    batch = read_batch_csv(
        upload.getvalue(),
        scorer.numeric,
        scorer.categorical,
        model.categories(),
        max_bytes=max_upload_mb * MB,
    )
except BatchFileError as exc:
    st.error(f"**{upload.name} cannot be scored:** {exc}")
    st.stop()

with Timer() as t:
    scored = (
        model.score(batch.rows, cuts) if len(batch.rows) else batch.rows.assign(probability=[], risk_band=[])
    )
results = batch_results(batch, scored)
st.session_state["batch_results"] = results

a, b, c, d = st.columns(4)
a.metric("Rows in the file", f"{batch.lines:,}")
b.metric("Scored", f"{len(scored):,}")
c.metric("Rejected", f"{len(batch.rejected_lines):,}")
d.metric("Scoring time", f"{t.ms:.0f} ms")
if batch.errors:
    st.warning(
        f"**{len(batch.rejected_lines)} row(s) rejected** ({len(batch.errors)} problem(s)); they are in the "
        "download with status `rejected` and the reason."
    )
    st.dataframe(errors_frame(batch.errors), hide_index=True)
if batch.ignored_columns:
    st.info(f"Columns not used by the model (ignored): {', '.join(batch.ignored_columns)}")
for column, values in batch.unseen.items():
    shown = ", ".join(repr(v) for v in values[:10])
    st.info(
        f"{column}: {len(values)} value(s) never seen in training ({shown}): scored as an unknown category"
    )

if len(scored):
    left, right = st.columns(2)
    with left:
        histogram = (
            alt.Chart(scored[["probability"]])
            .mark_bar()
            .encode(
                x=alt.X("probability:Q", bin=alt.Bin(maxbins=20, extent=[0, 1]), title="churn probability"),
                y=alt.Y("count():Q", title="customers"),
            )
            .properties(title="Distribution of the scores", height=260)
        )
        st.altair_chart(histogram, width="stretch")
    with right:
        bands = (
            scored["risk_band"]
            .value_counts()
            .reindex(["low", "medium", "high"], fill_value=0)
            .rename_axis("band")
        )
        st.altair_chart(
            alt.Chart(bands.reset_index(name="customers"))
            .mark_bar()
            .encode(
                x=alt.X("band:N", sort=["low", "medium", "high"], axis=alt.Axis(labelAngle=0)),
                y="customers:Q",
            )
            .properties(title="Customers by risk band", height=260),
            width="stretch",
        )
st.dataframe(results, hide_index=True)
st.download_button(
    "Download the results (every row: scored or rejected)",
    results.to_csv(index=False),
    file_name=f"{upload.name.removesuffix('.csv')}_scored_v{model.ref.version}.csv",
    mime="text/csv",
    type="primary",
)
