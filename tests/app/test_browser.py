"""The app in a real browser: `python -m app` as users start it, Debian's headless Chromium driven by
Playwright. Scores a customer (the probability shown must be the registered model's), uploads a batch and
downloads the results, and saves screenshots to var/screenshots/ (the README's come from there)."""

from __future__ import annotations

import io
import os
import re
import sys

import pandas as pd
import pytest
from playwright.sync_api import expect

from tests.browser import SHOTS, chromium, open_page, page_on_failure
from tests.served import MODEL, ROOT, pyfunc_probability
from tests.servers import ServerDidNotStart, start_server, stop_server

pytestmark = pytest.mark.integration

PROBABILITY = re.compile(r"probability = ([0-9.]+) · .* · submit #(\d+)")


@pytest.fixture(scope="module")
def app_url(served, tmp_path_factory):
    from jobs.common.postgres import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("app-server") / "streamlit.log"
    env = {**os.environ, **served["env"], "PYTHONPATH": str(ROOT)}
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "app", "--port", str(port)]
    try:
        server = start_server(
            command, f"{url}/_stcore/health", log, env, ROOT, 90, lambda body, _: body == b"ok"
        )
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))
    yield url
    stop_server(server)
    if os.environ.get("KPI_SHOW_APP_LOG"):
        print(log.read_text())


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


def typical_customer(served) -> dict:
    """What the form shows first: the training medians and each category's most frequent value."""
    from jobs.churn.serving.io import ModelService

    scorer = ModelService(served["tracking_uri"], MODEL).load().scorer
    record = dict(scorer.description["numeric_fill"])
    for column in scorer.categorical:
        labels = [
            v for v in scorer.description["categories"][column] if v != scorer.description["missing_category"]
        ]
        record[column] = labels[0]
    return record


def test_score_a_customer_in_the_browser(served, app_url, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, f"{app_url}/Score", "Score a customer")
    record = typical_customer(served)
    record.update(pay_count_6m=9.0, city="Atlantis")  # typed into the form like a user would
    field = page.get_by_role("spinbutton", name="pay_count_6m", exact=True)
    field.fill("9")
    city = page.get_by_role("combobox", name="city")
    city.click()
    city.fill("Atlantis")  # a value training never saw (the box accepts new options)
    city.press("Enter")
    page.get_by_role("button", name="Score", exact=True).click()
    caption = page.get_by_text(PROBABILITY).first
    caption.wait_for(timeout=60_000)
    shown = PROBABILITY.search(caption.inner_text())
    assert shown and shown.group(2) == "1"
    # 6 decimals shown: the value the registered model gives for exactly these inputs
    assert float(shown.group(1)) == pytest.approx(
        pyfunc_probability(served["tracking_uri"], record), abs=5e-7
    )
    page.get_by_text("city = 'Atlantis' was never seen in training").wait_for(timeout=30_000)
    page.get_by_text("Why: the").first.wait_for(timeout=30_000)
    page.get_by_role("heading", name="Score a customer").scroll_into_view_if_needed()
    page.wait_for_timeout(1500)  # the chart's fade-in
    page.screenshot(path=str(SHOTS / "app_score.png"))

    # a wrong value is refused in the page, with the reason, and nothing is scored
    field.fill("-2")
    page.get_by_role("button", name="Score", exact=True).click()
    # (Streamlit's markdown shows ">=" as "≥")
    page.get_by_text(re.compile("pay_count_6m must be a whole number (>=|≥) 0, got -2")).wait_for(
        timeout=60_000
    )
    # Streamlit keeps the last answer on screen, faded, until the rerun ends: the error can show before
    # the old caption is gone, so wait for the page to settle instead of asserting at that instant
    expect(page.get_by_text(PROBABILITY)).to_have_count(0, timeout=30_000)
    assert page.get_by_text(re.compile("pay_count_6m must be a whole number")).count() == 1


def test_upload_a_batch_in_the_browser_and_download_every_row(served, app_url, browser, tmp_path):
    from jobs.churn.features.io import FeatureTable, lake_table
    from jobs.churn.features.shares import with_shares
    from jobs.churn.serving.io import ModelService

    scorer = ModelService(served["tracking_uri"], MODEL).load().scorer
    table = FeatureTable(lake_table(served["settings"].churn.lake_dir)).read().to_pandas()
    features = with_shares(table, scorer.shares)  # the model's share columns, from the segment map
    good = features[["customer_id", *scorer.features]].head(20)
    bad = good.head(2).astype(object).assign(customer_id=[8_000_001, 8_000_002], age=["7", "old"])
    upload = tmp_path / "customers.csv"
    pd.concat([good.astype(object), bad]).to_csv(upload, index=False)

    page = open_page(browser, f"{app_url}/Batch", "Score a file of customers")
    page.locator("input[type=file]").set_input_files(str(upload))
    page.get_by_text("2 row(s) rejected").wait_for(timeout=90_000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "app_batch.png"))
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name=re.compile("Download the results")).click()
    results = pd.read_csv(download.value.path(), dtype={"customer_id": str})  # ids are text
    assert len(results) == 22 and list(results["status"]).count("rejected") == 2
    rejected = results[results["status"] == "rejected"]
    assert "age must be a whole number from 14 to 120, got 7" in rejected["problems"].iloc[0]
    assert "age must be a whole number from 14 to 120, got 'old'" in rejected["problems"].iloc[1]
    scored = results[results["status"] == "scored"]
    assert scored["customer_id"].tolist() == good["customer_id"].tolist()
    expected = scorer.predict_proba(pd.read_csv(io.StringIO(good.to_csv(index=False))))
    assert scored["probability"].to_numpy() == pytest.approx(expected, abs=1e-9)


def test_the_other_pages_render_in_the_browser(served, app_url, browser):
    for path, title, text in (
        ("", "KPIdelivery: churn scoring and data quality", f"{MODEL} v{served['version']}"),
        ("Model", "Model", "Plots logged with this version"),
        ("Drift", "Drift", f"Latest report {served['drift'].date}"),
        ("Data_quality", "Data quality", "Crypto events runs"),
    ):
        page = open_page(browser, f"{app_url}/{path}", title)
        with page_on_failure(page, SHOTS / f"failed_{path or 'home'}.png"):
            page.get_by_text(text).first.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / f"app_{(path or 'home').lower()}.png"))
        page.close()
