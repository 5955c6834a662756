"""The churn workflow end to end on real PostgreSQL, Spark local and a real MLflow server.

generate -> ingest -> features (Delta) -> train -> register (challenger) -> promote -> batch score,
then promotion scenarios (first, better, tie, worse), the test split's isolation from selection, the
second example spec on a foreign table, and bad input to every CLI.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from jobs.churn.contract.spec import SPECS_DIR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T = date(2026, 9, 1)
CUSTOMERS = 1500


def _spec_file(folder: Path, name: str, **changes) -> Path:
    raw = yaml.safe_load((SPECS_DIR / "churn.yaml").read_text())
    raw.update(name=name, **changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def env(mlflow_server, pg, spark, tmp_path_factory):
    """Sources ingested and a labelled feature snapshot built, in a lake of this module's own."""
    from jobs.churn.features import __main__ as build_features
    from jobs.churn.ingest import __main__ as ingest
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write
    from jobs.common.config import load_settings
    from jobs.common.postgres import connect

    root = tmp_path_factory.mktemp("churn")
    saved = {k: os.environ.get(k) for k in ("CHURN_LAKE_DIR", "CHURN_SOURCE_DIR")}
    os.environ.update({"CHURN_LAKE_DIR": str(root / "lake"), "CHURN_SOURCE_DIR": str(root / "source")})
    tables, truth, oracle = generate(ChurnGenConfig(customers=CUSTOMERS, snapshot=T, seed=5))
    write(root / "source", tables, truth, oracle)
    settings = load_settings()
    with connect(pg) as conn:
        conn.execute("DELETE FROM dqm.churn_batches WHERE as_of >= %s", (T,))
    outcomes = ingest.run(ingest.parse_args(["--as-of", T.isoformat(), "--master", "local[2]"]), settings)
    assert [o.status for o in outcomes] == ["loaded"] * 5
    ref, summary = build_features.run(build_features.parse_args(["--snapshot", T.isoformat()]), settings)
    specs = {
        "full": _spec_file(root, "full", models={"logistic_regression": {"regParam": [0.01]},
                                                 "random_forest": {"numTrees": [20], "maxDepth": [5]}}),
        "weak": _spec_file(root, "weak", numeric=["age"], categorical=[],
                           models={"logistic_regression": {"regParam": [0.01]}}),
    }  # fmt: skip
    yield {
        "root": root,
        "settings": settings,
        "feature_ref": ref,
        "summary": summary,
        "specs": specs,
        "oracle": oracle,
    }
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _train(env, spec: str) -> dict:
    from jobs.churn.training import __main__ as train

    return train.run(
        train.parse_args(["--spec", str(env["specs"][spec]), "--master", "local[2]"]), env["settings"]
    )


def _promote(env, *extra: str):
    from jobs.churn.validation import __main__ as promote

    return promote.run(promote.parse_args(list(extra)), env["settings"])


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _alias(alias: str) -> int | None:
    from jobs.churn.deployment.io import version_by_alias

    mv = version_by_alias(_client(), "churn_model", alias)
    return int(mv.version) if mv else None


@pytest.fixture(scope="module")
def lifecycle(env):
    """weak first (promoted: no champion), full (better: promoted), full again (tie: kept), weak (worse: kept)."""
    steps = []
    for spec in ("weak", "full", "full", "weak"):
        trained = _train(env, spec)
        assert _alias("challenger") == trained["version"]
        steps.append((trained, _promote(env), _alias("production")))
    return steps


def test_feature_snapshot_is_a_delta_version_with_the_generators_churn_rate(env):
    from jobs.churn.features.io import FeatureTable, TableRef

    table = FeatureTable(TableRef(env["feature_ref"].path, env["feature_ref"].version, T)).read().to_pandas()
    assert len(table) == CUSTOMERS
    assert table["churned"].mean() == pytest.approx(env["oracle"]["churn_rate"], abs=1e-9)


def test_promotion_lifecycle_first_better_tie_worse(lifecycle):
    (w1, d1, p1), (f1, d2, p2), (f2, d3, p3), (_w2, d4, p4) = lifecycle
    assert d1.promote and d1.champion_version is None and p1 == w1["version"]
    assert d2.promote and d2.champion_version == w1["version"] and p2 == f1["version"]
    assert d2.challenger_score > d2.champion_score + d2.margin
    assert not d3.promote and d3.challenger_score == pytest.approx(d3.champion_score) and p3 == f1["version"]
    assert not d4.promote and d4.challenger_score < d4.champion_score and p4 == f1["version"]
    tags = _client().get_model_version("churn_model", str(f2["version"])).tags
    assert (
        tags["promotion.decision"] == "kept" and float(tags["promotion.champion_score"]) == d3.champion_score
    )
    assert _client().get_model_version("churn_model", str(w1["version"])).tags["replaced_by"] == str(
        f1["version"]
    )


def test_training_run_records_data_metrics_plots_and_shap(env, lifecycle):
    import mlflow

    trained = lifecycle[1][0]
    run = mlflow.get_run(trained["run_id"])
    for metric in (
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "f1",
        "validation_roc_auc",
        "scorer_parity_max_abs_diff",
    ):
        assert metric in run.data.metrics
    assert run.data.metrics["scorer_parity_max_abs_diff"] <= 1e-6
    assert 0.7 < run.data.metrics["roc_auc"] <= 1.0
    assert run.data.params["feature_version"] == str(env["feature_ref"].version)
    files = {a.path for folder in ("dataset", "plots", "explainability")
             for a in _client().list_artifacts(trained["run_id"], folder)}  # fmt: skip
    assert files >= {
        "dataset/snapshot.json", "dataset/spec.json", "plots/roc.png", "plots/precision_recall.png",
        "plots/calibration.png", "plots/confusion_matrix.png", "explainability/shap_summary.png",
        "explainability/shap_values.parquet", "explainability/shap_importance.csv",
    }  # fmt: skip
    dataset = mlflow.artifacts.load_dict(f"runs:/{trained['run_id']}/dataset/snapshot.json")
    assert dataset["version"] == env["feature_ref"].version and len(dataset["sha256"]) == 64
    assert sum(dataset["counts"].values()) == CUSTOMERS
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{trained['run_id']}'")
    assert len(children) == 2  # one nested run per grid point


def test_batch_scores_match_the_jvm_free_model_and_replace_on_rerun(env, lifecycle, pg):
    import mlflow

    from jobs.churn.deployment import __main__ as score_batch
    from jobs.churn.features.io import FeatureTable, TableRef
    from jobs.churn.features.shares import with_shares
    from jobs.common.postgres import connect

    production = lifecycle[-1][2]
    args = score_batch.parse_args(["--master", "local[2]"])
    summary = score_batch.run(args, env["settings"])
    score_batch.run(args, env["settings"])  # a rerun replaces the rows of (snapshot, model version)
    assert summary["customers"] == CUSTOMERS and summary["model"] == f"churn_model v{production}"
    with connect(pg) as conn:
        rows = pd.DataFrame(
            conn.execute(
                "SELECT customer_id, probability, risk_band, model_version, model_alias, feature_version "
                "FROM prod.churn_scores WHERE snapshot_date = %s ORDER BY customer_id",
                (T,),
            ).fetchall(),
            columns=[
                "customer_id",
                "probability",
                "risk_band",
                "model_version",
                "model_alias",
                "feature_version",
            ],
        )
    assert len(rows) == CUSTOMERS and set(rows["model_version"]) == {production}
    assert set(rows["model_alias"]) == {"production"} and set(rows["feature_version"]) == {
        env["feature_ref"].version
    }
    low, high = env["settings"].churn.band_cuts
    expected = np.where(
        rows["probability"] < low, "low", np.where(rows["probability"] < high, "medium", "high")
    )
    assert (rows["risk_band"].to_numpy() == expected).all()
    features = (
        FeatureTable(TableRef(env["feature_ref"].path, env["feature_ref"].version, T)).read().to_pandas()
    )
    features = features.sort_values("customer_id").reset_index(drop=True)
    model = mlflow.pyfunc.load_model("models:/churn_model@production")  # the JVM-free pyfunc
    # its segment-share inputs come from the table's map with the model's vocabulary, as in the app
    shares = model.unwrap_python_model().scorer.shares
    assert shares is not None and len(shares.vocabulary) == 5
    jvm_free = model.predict(with_shares(features, shares))["probability"].to_numpy()
    assert rows["customer_id"].tolist() == features["customer_id"].tolist()  # the same text ids
    assert np.max(np.abs(jvm_free - rows["probability"].to_numpy())) <= 1e-6


def test_model_selection_never_reads_the_test_split(env, spark):
    from pyspark.sql import functions as F

    from jobs.churn.contract.spec import load_spec
    from jobs.churn.contract.split import split_column
    from jobs.churn.features.io import FeatureTable, TableRef
    from jobs.churn.training.search import train_model

    spec = load_spec(env["specs"]["full"])
    df = FeatureTable(TableRef(env["feature_ref"].path, env["feature_ref"].version, T)).read(spark)
    clean = train_model(df, spec)
    is_test = split_column(spec) == "test"
    poison = F.create_map(F.lit("poison"), F.lit(10**6).cast("bigint"))  # would top any vocabulary
    poisoned = df.withColumns(
        {"churned": F.when(is_test, 1 - F.col("churned")).otherwise(F.col("churned")),
         "pay_count_6m": F.when(is_test, F.lit(-1.0e6)).otherwise(F.col("pay_count_6m")),
         "segment_counts_6m": F.when(is_test, poison).otherwise(F.col("segment_counts_6m"))}
    )  # fmt: skip
    dirty = train_model(poisoned, spec)
    # the segment vocabulary comes from the train split only
    assert dirty.spec == clean.spec and "poison" not in clean.spec.shares.vocabulary
    assert (dirty.search.best.kind, dirty.search.best.params) == (
        clean.search.best.kind,
        clean.search.best.params,
    )
    assert [t.validation for t in dirty.search.trials] == [t.validation for t in clean.search.trials]
    assert dirty.search.threshold == clean.search.threshold
    assert dirty.test_metrics["roc_auc"] != clean.test_metrics["roc_auc"]  # the test rows did change


def test_second_example_spec_trains_on_a_foreign_table(env, lifecycle, tmp_path):
    from jobs.churn.training import __main__ as train
    from jobs.common.config import load_settings

    rng = np.random.default_rng(0)
    n = 1200
    tenure = rng.integers(0, 72, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n)
    logit = 0.8 - 0.05 * tenure + np.where(contract == "Month-to-month", 1.2, -0.5)
    table = pd.DataFrame(
        {
            "customerID": [f"{i:04d}-ABCD" for i in range(n)],
            "tenure": tenure,
            "MonthlyCharges": rng.uniform(20, 110, n).round(2),
            "TotalCharges": [str(x) if x > 100 else " " for x in rng.uniform(0, 8000, n).round(2)],  # blanks
            "SeniorCitizen": rng.integers(0, 2, n),
            "Contract": contract,
            "InternetService": rng.choice(["DSL", "Fiber optic", "No"], n),
            "PaymentMethod": rng.choice(["Electronic check", "Mailed check", None], n),
            "PaperlessBilling": rng.choice(["Yes", "No"], n),
            "Churn": np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Yes", "No"),
        }
    )
    path = tmp_path / "telco.parquet"
    table.to_parquet(path)
    os.environ["MLFLOW_MODEL_NAME"] = "telco_model"
    try:
        settings = load_settings()
        out = train.run(train.parse_args(["--spec", "telco_example.yaml", "--features", str(path)]), settings)
    finally:
        os.environ.pop("MLFLOW_MODEL_NAME")
    assert out["model_uri"] == f"models:/telco_model/{out['version']}" and out["test"]["roc_auc"] > 0.7
    assert _alias("production") is not None  # the churn model's aliases are untouched


def test_bad_input_to_every_churn_cli_exits_2_with_a_message(env, lifecycle, tmp_path, caplog):
    from jobs.churn.deployment import __main__ as score_batch
    from jobs.churn.features import __main__ as build_features
    from jobs.churn.training import __main__ as train
    from jobs.churn.validation import __main__ as promote

    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("id: customer_id\nlabel: churned\nnumeric: [no_such_column]\nmodels: {gbt: {}}\n")
    cases = [
        (train.main, ["--spec", str(tmp_path / "missing.yaml")], "spec file not found"),
        (train.main, ["--spec", str(bad_spec)], "misses the spec's columns ['no_such_column']"),
        (
            train.main,
            ["--features", str(tmp_path / "nothing.parquet")],
            "nothing.parquet: no such file or folder",
        ),
        (build_features.main, ["--snapshot", "2001-01-01"], "no loaded batch as of 2001-01-01"),
        (promote.main, ["--version", "999"], "version 999 not found"),
        (score_batch.main, ["--alias", "nobody"], "holds the alias 'nobody'"),
    ]
    for entrypoint, argv, message in cases:
        caplog.clear()
        assert entrypoint(argv) == 2, (entrypoint.__module__, argv)
        assert message in caplog.text, (argv, caplog.text[-500:])


def test_a_scoring_snapshot_without_label_cannot_train(env, caplog):
    from jobs.churn.features import __main__ as build_features
    from jobs.churn.training import __main__ as train

    later = date(2026, 11, 1)
    ref, summary = build_features.run(build_features.parse_args(["--snapshot", later.isoformat(), "--no-label"]),
                                      env["settings"])  # fmt: skip
    assert "churn_rate" not in summary and ref.version == env["feature_ref"].version + 1
    assert train.main(["--spec", str(env["specs"]["weak"]), "--snapshot", later.isoformat()]) == 2
    assert "no row has a label" in caplog.text
    print(json.dumps(summary, default=str))


def test_batch_scoring_runs_under_spark_submit(env, lifecycle, pg):
    import subprocess

    from jobs.common.config import PROJECT_ROOT
    from jobs.common.spark import submit_command

    argv, child_env = submit_command(
        PROJECT_ROOT / "jobs/churn/deployment/__main__.py",
        ["--snapshot", T.isoformat()],
        env["settings"].spark,
        "local[2]",
    )
    child_env.update(POSTGRES_HOST=pg.host, POSTGRES_PORT=str(pg.port))
    proc = subprocess.run(argv, env=child_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["customers"] == CUSTOMERS and summary["alias"] == "production"


# --- drift monitor (Evidently 0.7; moto's S3 server stands in for MinIO) ---------------------------------


def _features_parquet(spark, path: Path, seed: int, drift: float, customers: int = 4000) -> Path:
    # 4,000 customers a side: with 2,000 the sampling noise of one segment share (33 columns compared) came
    # within reach of the 0.1 threshold between two samples of one population
    import pyarrow.parquet as pq

    from jobs.churn.simulate.generate import ChurnGenConfig, generate, generated_features

    tables, _, _ = generate(ChurnGenConfig(customers=customers, snapshot=T, seed=seed, drift=drift))
    features = generated_features(spark, tables, T)
    pq.write_table(features.toArrow(), path)  # Arrow keeps the segment map a map
    return path


@pytest.fixture(scope="module")
def s3_settings(env, s3_endpoint):
    from jobs.common.config import load_settings

    saved = os.environ.get("S3_ENDPOINT_URL")
    os.environ.update(S3_ENDPOINT_URL=s3_endpoint, S3_ACCESS_KEY_ID="test", S3_SECRET_ACCESS_KEY="test")
    yield load_settings()
    os.environ["S3_ENDPOINT_URL"] = saved or ""


def test_drift_against_the_production_models_data_goes_to_s3_and_mlflow(env, lifecycle, s3_settings):
    import mlflow

    from jobs.churn.monitoring import __main__ as drift
    from jobs.churn.monitoring.drift import SEVERITIES
    from jobs.common.objectstore import open_store

    production = lifecycle[-1][2]
    result = drift.run(drift.parse_args(["--date", "2026-11-22", "--master", "local[2]"]), s3_settings)
    assert result.reference["version"] == env["feature_ref"].version
    assert result.reference["snapshot_date"] == T.isoformat() and result.severity in SEVERITIES
    assert result.sample_rows == {"reference": CUSTOMERS, "current": result.current["sampled"]}
    store = open_store(s3_settings.object_store)
    keys = store.list_keys("mlflow-artifacts", "drift-reports/2026-11-22/")
    assert keys == [f"drift-reports/2026-11-22/{k}" for k in ("report.html", "report.json", "summary.json")]
    summary = json.loads(store.get_bytes("mlflow-artifacts", "drift-reports/2026-11-22/summary.json"))
    assert summary["severity"] == result.severity and summary["report_uris"]["html"].startswith("s3://")
    run = mlflow.get_run(result.mlflow_run_id)
    assert run.data.tags["run_type"] == "drift" and run.data.tags["model_version"] == str(production)
    assert run.data.metrics["recent_drift_share"] == pytest.approx(result.drift_share)
    assert run.data.metrics["drift_magnitude"] == pytest.approx(summary["drift_magnitude"])
    assert run.data.tags["drift_magnitude_column"] == result.drift_magnitude_column in result.columns
    assert {f"drift.{c}" for c in result.columns} <= set(run.data.metrics)
    assert run.data.params["drift_method.age"] == result.columns["age"]["method"]
    logged = {a.path for a in _client().list_artifacts(result.mlflow_run_id, "drift")}
    assert logged == {"drift/report.html", "drift/report.json", "drift/summary.json"}


def test_same_distribution_is_no_drift_and_injected_drift_is_critical(env, spark, s3_settings, tmp_path):
    from jobs.churn.monitoring import __main__ as drift

    base = _features_parquet(spark, tmp_path / "base.parquet", seed=1, drift=0.0)
    same = _features_parquet(spark, tmp_path / "same.parquet", seed=2, drift=0.0)
    shifted = _features_parquet(spark, tmp_path / "shifted.parquet", seed=3, drift=2.0)
    spec = str(SPECS_DIR / "churn.yaml")

    def compare(current: Path, day: str):
        argv = ["--date", day, "--reference", str(base), "--current", str(current), "--columns", spec,
                "--no-mlflow", "--master", "local[2]"]  # fmt: skip
        return drift.run(drift.parse_args(argv), s3_settings)

    calm, stormy = compare(same, "2026-11-23"), compare(shifted, "2026-11-24")
    assert (calm.severity, calm.retrain, calm.drifted_columns) == ("none", False, [])
    assert stormy.severity == "critical" and stormy.retrain and stormy.drift_share >= 0.5
    assert {"age", "balance_1", "spent_ml"} <= set(stormy.drifted_columns)  # what the generator shifts


def test_drift_without_a_production_model_is_a_clear_error(env, caplog):
    from jobs.churn.monitoring import __main__ as drift

    os.environ["MLFLOW_MODEL_NAME"] = "no_such_model"
    try:
        assert drift.main(["--date", "2026-11-22", "--no-mlflow"]) == 2
    finally:
        os.environ.pop("MLFLOW_MODEL_NAME")
    assert "no version of no_such_model holds the alias 'production'" in caplog.text


def test_watchdog_sees_only_new_or_changed_source_files(env):
    from jobs.churn.monitoring.io import changed_sources

    folder = env["root"] / "source"
    assert changed_sources(folder, env["settings"]) == {}  # everything was ingested by the fixture
    with (folder / "DEMOGRAFICOS.csv").open("a") as handle:
        handle.write("9999999,33,F,debit,Salta\n")
    changed = changed_sources(folder, env["settings"])
    assert list(changed) == ["DEMOGRAFICOS"] and len(changed["DEMOGRAFICOS"]) == 64
