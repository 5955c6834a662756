"""What the Batch page offers for download, as text: ids exactly as written in the upload, line numbers
and counts as whole numbers, whatever mix of scored and rejected lines the file has (issue 14, defect 10).

No model and no server: the page builds its downloads with these functions."""

from __future__ import annotations

import codecs
import csv
import io

import pytest

from jobs.churn.serving.checks import batch_results, batch_template, read_batch_csv

NUM = ("pay_count_6m", "share_seg_instore_6m", "age", "balance_1")
CAT = ("gender", "city")
HEADER = "customer_id,pay_count_6m,share_seg_instore_6m,age,balance_1,gender,city"
BIG = "123456789012345678"  # a float would write 1.2345678901234568e+17


def upload(*lines: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


def download(data: bytes) -> list[dict[str, str]]:
    """The results CSV the page offers, read back as text (as a spreadsheet or `csv` would)."""
    batch = read_batch_csv(data, NUM, CAT)
    n = len(batch.rows)
    scored = batch.rows.assign(probability=[0.25] * n, risk_band=["low"] * n)
    return list(csv.DictReader(io.StringIO(batch_results(batch, scored).to_csv(index=False))))


def test_every_line_scored_keeps_ids_as_text_and_line_numbers_whole():
    rows = download(upload(f"{BIG},1,0.5,30,100.0,F,A", "000123,2,0.5,30,100.0,F,A"))
    assert [(r["line"], r["customer_id"], r["status"]) for r in rows] == [
        ("2", BIG, "scored"),
        ("3", "000123", "scored"),
    ]


def test_rejected_lines_keep_their_id_as_written_next_to_scored_ones():
    rows = download(
        upload(
            f"{BIG},1,0.5,30,100.0,F,A",
            "123456789012345679,x,0.5,30,100.0,F,A",  # a bad count: rejected, its id still says who
            f"{BIG},1,0.5,30,100.0,F,A",  # a duplicate id: rejected with the id it repeats
            "7,1,0.5",  # ragged: the fields cannot be trusted, no id
        )
    )
    assert [(r["line"], r["customer_id"], r["status"]) for r in rows] == [
        ("2", BIG, "scored"),
        ("3", "123456789012345679", "rejected"),
        ("4", BIG, "rejected"),
        ("5", "", "rejected"),
    ]
    assert rows[0]["probability"] == "0.25" and rows[1]["probability"] == ""


def test_every_line_rejected_still_gives_whole_line_numbers_and_the_ids():
    rows = download(upload("000123,x,0.5,30,100.0,F,A", f"{BIG},-1,0.5,30,100.0,F,A"))
    assert [(r["line"], r["customer_id"], r["status"]) for r in rows] == [
        ("2", "000123", "rejected"),
        ("3", BIG, "rejected"),
    ]
    assert list(rows[0]) == ["line", "customer_id", "status", "probability", "risk_band", "problems"]


def test_a_file_without_ids_downloads_whole_line_numbers():
    rows = download(
        upload("1,0.5,30,100.0,F,A", "2,0.5,30,100.0,F,A", header=HEADER.removeprefix("customer_id,"))
    )
    assert [(r["line"], r["status"]) for r in rows] == [("2", "scored"), ("3", "scored")]
    assert "customer_id" not in rows[0]


@pytest.mark.parametrize("fill", [12.5, 12.0])
def test_the_template_writes_counts_as_whole_numbers_and_uploads_without_a_reject(fill):
    """The template holds the training medians: a count's median of 12.5 (or 12.0) is written 12."""
    numeric_fill = {"pay_count_6m": fill, "share_seg_instore_6m": 0.25, "age": 41.0, "balance_1": 1500.75}
    template = batch_template(numeric_fill, {"gender": "F", "city": None}, NUM, CAT)
    text = template.to_csv(index=False)
    assert text.splitlines() == [HEADER, "CUSTOMER_1,12,0.25,41,1500.75,F,"]
    batch = read_batch_csv(text.encode(), NUM, CAT)
    assert not batch.errors and batch.rows["customer_id"].tolist() == ["CUSTOMER_1"]


# --- the page itself, in-process (AppTest) against the served model of tests/served.py -------------


def _batch_page(served, name: str, body: bytes):
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import clear_app_caches
    from tests.served import ROOT, environment

    clear_app_caches()
    with environment(**served["env"]):
        at = AppTest.from_file(str(ROOT / "app" / "pages" / "2_Batch.py"), default_timeout=180)
        at.run()
        at.file_uploader[0].set_value((name, body, "text/csv"))
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.integration
def test_the_page_downloads_ids_as_written_and_refuses_wide_large_and_utf16_files(served):
    from jobs.churn.serving.io import ModelService
    from tests.served import MODEL

    scorer = ModelService(served["tracking_uri"], MODEL).load().scorer
    template = batch_template(scorer.description["numeric_fill"], {}, scorer.numeric, scorer.categorical)
    good = template.assign(customer_id=BIG).to_csv(index=False)
    bad = template.assign(customer_id="000123", **{scorer.numeric[0]: "x"}).to_csv(index=False, header=False)
    at = _batch_page(served, "customers.csv", (good + bad).encode())
    assert not at.error
    rows = list(csv.DictReader(io.StringIO(at.session_state["batch_results"].to_csv(index=False))))
    assert [(r["line"], r["customer_id"], r["status"]) for r in rows] == [
        ("2", BIG, "scored"),
        ("3", "000123", "rejected"),
    ]

    header = good.splitlines()[0]
    wide = ",".join([header, *(f"extra_{i}" for i in range(40_000))]) + "\n"
    errors = " ".join(e.value for e in _batch_page(served, "wide.csv", wide.encode()).error)
    columns = 1 + len(scorer.features) + 40_000
    assert f"wide.csv cannot be scored:** the file has {columns:,} columns in its header, more than" in errors
    big = good.encode() * (55 * (1 << 20) // len(good) + 1)
    errors = " ".join(e.value for e in _batch_page(served, "big.csv", big).error)
    assert "big.csv cannot be scored:** the file is 55.0 MB" in errors and "limit of 20.0 MB" in errors
    utf16 = codecs.BOM_UTF16_LE + good.encode("utf-16-le")
    errors = " ".join(e.value for e in _batch_page(served, "utf16.csv", utf16).error)
    assert "the file is not UTF-8 (looks like UTF-16 LE, byte order mark FF FE): save it as UTF-8" in errors
