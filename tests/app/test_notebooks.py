"""The exploration notebooks of `notebooks/` run top to bottom in a real kernel against the app's served data
(MLflow server, PostgreSQL, the Delta lake), show what that data holds, and say what to run first when there
is no data yet. They are committed without outputs."""

from __future__ import annotations

import re

import nbformat
import pytest

from tests.served import CRYPTO_DAY, DRIFT_DAY, MODEL, ROOT, T, environment

NOTEBOOKS = ROOT / "notebooks"
NAMES = ("crypto_data_quality.ipynb", "churn_features_and_model.ipynb", "drift.ipynb")


def execute(name: str, **env: str) -> tuple[str, int]:
    """Runs the notebook in a fresh `python3` kernel started in notebooks/ (as JupyterLab does) with
    os.environ + `env`; returns its printed and displayed text, and how many images it drew."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    # importing streamlit (the app fixtures) set MPLBACKEND=Agg in this process: give the kernel JupyterLab's
    # inline backend back, or plt.show() would draw nothing
    with environment(MPLBACKEND="module://matplotlib_inline.backend_inline", **env):
        client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", out
            if out.output_type == "stream":
                assert "Traceback" not in out.text, out.text
                text.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                text.append(out.data.get("text/plain", ""))
                images += "image/png" in out.data
    return "\n".join(text), images


def one_row(pg, query: str) -> tuple:
    from jobs.common.postgres import connect

    with connect(pg) as conn:
        return conn.execute(query).fetchone()


# --- what each notebook must show about the served data --------------------------------------------------


def check_crypto(text: str, served, pg) -> None:
    assert f"1 run(s); latest: logical date {CRYPTO_DAY}, status merged, gate passed" in text
    rows_read = served["crypto"].counts["rows_read"]
    assert "All 1 run(s) with counts reconcile" in text and f"({rows_read:,} rows read in total)" in text
    (hits,) = one_row(pg, "SELECT sum(cardinality(rule_codes)) FROM dqm.bt_crypto_events_rejects")
    assert hits > 0 and f"{hits:,} rule hits over 1 logical date(s)" in text
    first = one_row(
        pg,
        "SELECT landing_row, rule_codes, reason FROM dqm.bt_crypto_events_rejects ORDER BY landing_row LIMIT 1",
    )
    assert f"{CRYPTO_DAY} row {first[0]} [{', '.join(first[1])}]: {first[2]}" in text
    undatable = served["crypto"].counts["rows_unplaced"]
    assert (
        undatable > 0
        and f"{undatable:,} undatable row(s) quarantined once; still upstream: {undatable:,}" in text
    )
    (upstream,) = one_row(pg, "SELECT count(*) FROM raw.bt_crypto_transaction_history")
    assert f"{upstream:,} rows upstream" in text
    active, inactive = one_row(
        pg,
        "SELECT count(*) FILTER (WHERE is_active), count(*) FILTER (WHERE NOT is_active) FROM prod.bt_crypto_events",
    )
    assert active > 0 and f"prod.bt_crypto_events: active {active:,}, inactive {inactive:,}" in text


def check_churn(text: str, served, pg) -> None:
    from mlflow.tracking import MlflowClient

    version = served["version"]
    assert f"Production model {MODEL} version {version} (random_forest)" in text
    assert f"trained on snapshot {T}" in text
    uri = served["tracking_uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    logged = client.get_run(client.get_model_version(MODEL, str(version)).run_id).data.metrics["roc_auc"]
    assert f"ROC AUC logged on the test split: {logged:.4f}" in text
    found = re.search(rf"ROC AUC on snapshot {T} \(([\d,]+) customers\): (0\.\d{{4}})", text)
    assert found, text
    customers, auc = int(found[1].replace(",", "")), float(found[2])
    assert customers == served["scored"]["customers"] and 0.6 < auc <= 1.0
    assert "top features: " in text and "additivity error" in text
    bands = served["scored"]["bands"]
    counts = ", ".join(f"{band} {bands.get(band, 0):,}" for band in ("low", "medium", "high"))
    assert f"Latest batch: snapshot {T}, {MODEL} version {version}: {counts}" in text


def check_drift(text: str, served, pg) -> None:
    drift = served["drift"]
    assert f"Latest drift run {DRIFT_DAY}: severity {drift.severity}" in text
    assert f"recent_drift_share {drift.drift_share:.3f}" in text
    assert f"{len(drift.drifted_columns)} of {len(drift.columns)} column(s) drifted" in text
    assert "Evidently report:" in text


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "check", "plots"),
    [
        pytest.param("crypto_data_quality.ipynb", check_crypto, 1, id="crypto"),
        # features by label, 5 logged plots (ROC, PR, calibration, confusion, SHAP), scores, |SHAP|, bands
        pytest.param("churn_features_and_model.ipynb", check_churn, 9, id="churn"),
        pytest.param("drift.ipynb", check_drift, 2, id="drift"),
    ],
)
def test_notebook_runs_and_shows_the_served_data(name, check, plots, served, pg):
    text, images = execute(name, **served["env"])
    check(text, served, pg)
    assert images >= plots, f"{name} drew {images} image(s), expected at least {plots}"


@pytest.mark.integration
def test_without_data_every_notebook_says_what_to_run(pg, mlflow_server, tmp_path):
    """An empty business database, no feature table, no model and no drift run: messages, no traceback."""
    from psycopg import sql

    from jobs.common.postgres import connect, prepare_database

    empty = f"{pg.db}_nb_empty"
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(empty)))
    prepare_database(pg.model_copy(update={"db": empty}))
    env = {
        "POSTGRES_DB": empty,
        "CHURN_LAKE_DIR": str(tmp_path / "lake"),
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MLFLOW_MODEL_NAME": "no_such_model",
        "MLFLOW_EXPERIMENT": "no_such_experiment",
    }
    expected = {
        "crypto_data_quality.ipynb": [
            f"Reading PostgreSQL {pg.host}:{pg.port}, database {empty}",
            "raw.bt_crypto_transaction_history is empty: upstream has written nothing yet.",
            "No row whose date no window can hold has been quarantined.",
            "No crypto events run yet: run `make demo`",
            "No run with counts to reconcile.",
            "No rejected row in dqm.bt_crypto_events_rejects.",
            "prod.bt_crypto_events is empty: no run has merged yet.",
        ],
        "churn_features_and_model.ipynb": [
            f"No feature table yet: no Delta table at {tmp_path / 'lake' / 'churn_features'}",
            "No production model yet: no version of no_such_model holds the alias 'production'",
            f"No version of no_such_model is registered in MLflow at {mlflow_server} yet.",
            "Nothing to score: no production model.",
            "No batch scores for no_such_model yet: run `make demo`",
        ],
        "drift.ipynb": [
            "No drift run in experiment 'no_such_experiment' yet: run `make demo`",
            "No drift run: no summary to show.",
        ],
    }
    for name in NAMES:
        text, images = execute(name, **env)
        missing = [line for line in expected[name] if line not in text]
        assert not missing, f"{name} did not say {missing}; it said:\n{text}"
        assert images == 0, name


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean(name):
    """No outputs or execution counts in git; a title and what to run first; the project found from notebooks/."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    title, setup = nb.cells[0], nb.cells[1]
    assert title.cell_type == "markdown" and title.source.startswith("# ") and "`make demo`" in title.source
    assert (
        setup.cell_type == "code" and "pyproject.toml" in setup.source and "sys.path.insert" in setup.source
    )
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    # configuration only through load_settings(): the same notebook reads the demo's data and the tests'
    assert sum("settings = load_settings()" in c.source for c in code) == 1
    assert not any("environ" in c.source or "getenv" in c.source for c in code)
