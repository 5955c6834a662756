"""The one trained and served churn model of a test run (`served`, session-scoped, registered at the root
conftest): real MLflow server, PostgreSQL, Spark, a drift run and a crypto run, under names of their own
(model `churn_model_app`, snapshot 2026-03-01) so that no other test sees them. The app's tests and the
model's behavioural tests (tests/model) share it: the pipeline is built once per run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml

T = date(2026, 3, 1)  # a date of its own: the workflow tests use 2026-09-01, the DAG tests 2026-06-01
CUSTOMERS = 800
MODEL = "churn_model_app"
EXPERIMENT = "churn_app"
CRYPTO_DAY = date(2026, 11, 10)
DRIFT_DAY = "2026-03-02"
ROOT = Path(__file__).resolve().parents[1]  # the project


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pyfunc_probability(tracking_uri: str, record: dict) -> float:
    """The registered production model loaded the way any MLflow user would (pyfunc, JVM-free), not the
    app's way: the reference the app's probability must equal."""
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@production")
    numeric = [c.name for c in model.metadata.get_input_schema().inputs if c.type.name == "double"]
    frame = pd.DataFrame([record]).astype({c: "float64" for c in numeric})
    return float(model.predict(frame)["probability"].iloc[0])


def feature_rows(served: dict, n: int | None = None):
    """Rows of the served feature table (the first `n`, else all) with the served model's share columns
    (derived with its vocabulary)."""
    from jobs.churn.features.io import FeatureTable, lake_table
    from jobs.churn.features.shares import with_shares
    from jobs.churn.serving.io import ModelService

    rows = FeatureTable(lake_table(served["settings"].churn.lake_dir)).read().to_pandas()
    rows = rows if n is None else rows.head(n)
    return with_shares(rows, ModelService(served["tracking_uri"], MODEL).load().scorer.shares)


def tiny_spec(root: Path, name: str, models: dict) -> Path:
    from jobs.churn.contract.spec import SPECS_DIR

    spec = yaml.safe_load((SPECS_DIR / "churn.yaml").read_text())
    spec.update(name=name, models=models)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="session")
def served(mlflow_server, pg, spark, tmp_path_factory):
    """Ingest -> features -> train (a forest: tree SHAP) -> promote -> batch score -> drift; a crypto run.

    The environment is changed only while this prepares; tests pass `served["env"]` to what they run."""
    from jobs.churn.deployment import __main__ as score_batch
    from jobs.churn.features import __main__ as build_features
    from jobs.churn.ingest import __main__ as ingest
    from jobs.churn.monitoring import __main__ as drift
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write
    from jobs.churn.training import __main__ as train
    from jobs.churn.validation import __main__ as promote
    from jobs.common.config import load_settings
    from jobs.common.postgres import connect
    from tests.conftest import CRYPTO_TABLES
    from tests.integration.helpers import run_job, simulate

    root = tmp_path_factory.mktemp("app")
    env = {
        "CHURN_LAKE_DIR": str(root / "lake"),
        "CHURN_SOURCE_DIR": str(root / "source"),
        "MLFLOW_MODEL_NAME": MODEL,
        "MLFLOW_EXPERIMENT": EXPERIMENT,
        "APP_ALIAS_CHECK_SECONDS": "3600",
    }
    with environment(**env):
        tables, truth, oracle = generate(ChurnGenConfig(customers=CUSTOMERS, snapshot=T, seed=11))
        write(root / "source", tables, truth, oracle)
        settings = load_settings()
        with connect(pg) as conn:
            conn.execute("DELETE FROM dqm.churn_batches WHERE as_of = %s", (T,))
            # the saved queries read the latest batch whoever scored it: the app's batch is the only one
            conn.execute("DELETE FROM prod.churn_scores")
        outcomes = ingest.run(ingest.parse_args(["--as-of", T.isoformat(), "--master", "local[2]"]), settings)
        assert [o.status for o in outcomes] == ["loaded"] * 5
        build_features.run(build_features.parse_args(["--snapshot", T.isoformat()]), settings)
        forest = tiny_spec(root, "app_forest", {"random_forest": {"numTrees": [15], "maxDepth": [4]}})
        trained = train.run(train.parse_args(["--spec", str(forest), "--master", "local[2]"]), settings)
        decision = promote.run(promote.parse_args([]), settings)
        assert decision.promote, decision  # the first version of this model: production
        scored = score_batch.run(score_batch.parse_args(["--master", "local[2]"]), settings)
        drifted = drift.run(drift.parse_args(["--date", DRIFT_DAY]), settings)
        with connect(pg, role="admin") as admin:
            admin.execute(f"TRUNCATE {', '.join(CRYPTO_TABLES)}")
        with connect(pg) as conn:
            simulate(conn, settings, CRYPTO_DAY, events_per_day=300)
        crypto = run_job(settings, CRYPTO_DAY)
        settings.churn, settings.mlflow  # noqa: B018 (read while the environment holds this fixture's values)
        served = {
            "root": root,
            "settings": settings,
            "version": trained["version"],
            "scored": scored,
            "drift": drifted,
            "crypto": crypto,
            "tracking_uri": mlflow_server,
            "env": {**env, "MLFLOW_TRACKING_URI": mlflow_server},
        }
    return served
