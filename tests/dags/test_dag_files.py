"""The DAG files: they import without errors, parsing touches no database or network, and each task graph
has the expected shape. Parsed in a subprocess with its own AIRFLOW_HOME, as the dag-processor would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from jobs.common.config import PROJECT_ROOT, load_settings
from jobs.common.orchestration import in_process_env, run_dag_in_process

PARSE = r"""
import json, socket, sys
import psycopg
def refuse(*a, **k):
    raise AssertionError("DAG parsing opened a connection")
psycopg.connect = refuse
socket.create_connection = refuse
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {d.dag_id: {"edges": sorted([t.task_id, down] for t in d.tasks for down in t.downstream_task_ids),
                        "tasks": sorted(d.task_ids), "retries": {t.task_id: t.retries for t in d.tasks},
                        "retry_delays": {t.task_id: t.retry_delay.total_seconds() for t in d.tasks},
                        "backoff": {t.task_id: float(t.retry_exponential_backoff) for t in d.tasks},
                        "timeouts": {t.task_id: bool(t.execution_timeout) for t in d.tasks},
                        "callbacks": {t.task_id: bool(t.on_failure_callback) for t in d.tasks},
                        "trigger_rules": {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in d.tasks},
                        "trigger_conf": {t.task_id: t.conf for t in d.tasks if hasattr(t, "trigger_dag_id")},
                        "params": {k: v for k, v in d.params.dump().items()},
                        "tz": str(d.timezone)} for d in bag.dags.values()},
}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "17",  # the stacks' STACK_TASK_RETRY_DELAY_SECONDS
        # a database that does not exist: parsing must not need one
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://nobody@127.0.0.1:1/none",
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(PROJECT_ROOT / "airflow" / "dags")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dag_files_import_without_errors_and_without_connections(parsed):
    assert parsed["errors"] == {}
    assert set(parsed["dags"]) == {
        "crypto_events_dag", "churn_data_watchdog", "churn_training_dag", "churn_drift_monitor_w",
    }  # fmt: skip


def test_task_graphs(parsed):
    dags = parsed["dags"]
    assert dags["crypto_events_dag"]["edges"] == [
        ["merge", "reconcile"], ["simulate_upstream", "validate"], ["validate", "merge"],
    ]  # fmt: skip
    assert dags["churn_training_dag"]["edges"] == [
        ["build_features", "train"], ["ingest", "build_features"], ["promote", "batch_score"],
        ["snapshot", "ingest"], ["train", "promote"],
    ]  # fmt: skip
    # no fixed snapshot: each run resolves its own (param, asset event, source files, run day)
    assert dags["churn_training_dag"]["params"]["snapshot"] is None
    # critical drift retrains on the snapshot that drifted
    assert dags["churn_drift_monitor_w"]["trigger_conf"] == {
        "trigger_training": {"snapshot": "{{ ti.xcom_pull(task_ids='critical', key='snapshot') or '' }}"}
    }
    assert dags["churn_drift_monitor_w"]["edges"] == [
        ["critical", "trigger_training"],
        ["drift_report", "critical"],
    ]
    assert dags["churn_data_watchdog"]["tasks"] == ["detect_new_files"]
    assert dags["crypto_events_dag"]["tz"].endswith("Buenos_Aires")
    # the simulator is skipped where a real upstream writes the table: validation must run all the same
    assert dags["crypto_events_dag"]["trigger_rules"]["validate"] == "none_failed"


def test_every_task_retries_times_out_and_alerts(parsed):
    for dag_id, dag in parsed["dags"].items():
        for task_id in dag["tasks"]:
            assert dag["retries"][task_id] >= 2, (dag_id, task_id)
            # the delay is the deployment's setting ([core] default_task_retry_delay), doubled each retry
            assert (dag["retry_delays"][task_id], dag["backoff"][task_id]) == (17.0, 2.0), (dag_id, task_id)
            assert dag["timeouts"][task_id], (dag_id, task_id)
            assert dag["callbacks"][task_id], (dag_id, task_id)


def _airflow_env(pg, home) -> dict[str, str]:
    return {**in_process_env(home), "POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port)}


def _dags_test(env: dict[str, str], dag_id: str, logical_date: str, conf: dict | None = None) -> None:
    run = run_dag_in_process(dag_id, logical_date, env, conf, timeout=1500)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]


@pytest.mark.integration
@pytest.mark.slow
def test_crypto_events_dag_runs_end_to_end_in_process(pg, db, tmp_path):
    """The real DAG file through Airflow's in-process runner (`airflow dags test`): simulated upstream ->
    spark-submit validate -> merge -> reconcile, against the test database; the run record carries the DAG
    run id."""
    _dags_test(_airflow_env(pg, tmp_path), "crypto_events_dag", "2026-11-20")
    status, dag_run, read, inserted = db.execute(
        "SELECT status, dag_run_id, rows_read, rows_inserted FROM dqm.dq_runs WHERE logical_date = '2026-11-20'"
    ).fetchone()
    assert status == "merged" and dag_run.startswith("manual__") and read > 0 and inserted > 0


@pytest.mark.integration
@pytest.mark.slow
def test_churn_dags_run_end_to_end_in_process(pg, db, tmp_path):
    """churn_training_dag: ingest -> features -> train -> promote -> batch score, each Spark step through
    spark-submit, with the snapshot and spec given as run params, MLflow on local storage (the embedded
    default). Then churn_drift_monitor_w on that model, and churn_data_watchdog before and after a file
    changes."""
    import yaml

    from jobs.churn.contract.spec import SPECS_DIR
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write

    snapshot = "2026-06-01"  # a date of its own: the workflow tests use 2026-09-01
    tables, truth, oracle = generate(
        ChurnGenConfig(customers=1500, snapshot=date.fromisoformat(snapshot), seed=9)
    )
    write(tmp_path / "source", tables, truth, oracle)
    spec = yaml.safe_load((SPECS_DIR / "churn.yaml").read_text())
    spec.update(name="dag_tiny", models={"logistic_regression": {"regParam": [0.01]}})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    env = _airflow_env(pg, tmp_path / "home")
    env.update(
        CHURN_SOURCE_DIR=str(tmp_path / "source"),
        CHURN_LAKE_DIR=str(tmp_path / "lake"),
        MLFLOW_TRACKING_URI="",
        MLFLOW_LOCAL_DIR=str(tmp_path / "mlflow"),
    )
    # no snapshot param: the run trains on the latest snapshot the source files label (not a fixed default)
    _dags_test(env, "churn_training_dag", "2026-11-20", {"spec": str(tmp_path / "tiny.yaml")})
    assert _airflow_db(
        env, "SELECT value FROM xcom WHERE dag_id = 'churn_training_dag' AND task_id = 'snapshot'"
    ) == [(json.dumps(snapshot),)]
    loaded = db.execute(
        "SELECT count(*) FROM dqm.churn_batches WHERE as_of = %s AND status = 'loaded'", (snapshot,)
    ).fetchone()[0]
    scores = db.execute(
        "SELECT count(*), min(model_version), max(model_version), min(model_alias) FROM prod.churn_scores "
        "WHERE snapshot_date = %s",
        (snapshot,),
    ).fetchone()
    assert loaded == 5 and scores == (1500, 1, 1, "production")

    drift_day = "2026-11-16"
    _dags_test(env, "churn_drift_monitor_w", drift_day)
    from jobs.common.objectstore import open_store

    store = load_settings().object_store
    summary = json.loads(
        open_store(store).get_bytes(store.mlflow_artifacts_bucket, f"drift-reports/{drift_day}/summary.json")
    )
    assert summary["date"] == drift_day and summary["retrain"] is False  # same data as the training: no drift
    assert _task_states(env, "churn_drift_monitor_w") == {
        "drift_report": "success", "critical": "success", "trigger_training": "skipped",
    }  # fmt: skip

    _dags_test(env, "churn_data_watchdog", "2026-11-20T10:00:00+00:00")  # every file was ingested: skipped
    assert _task_states(env, "churn_data_watchdog") == {"detect_new_files": "skipped"}
    with (tmp_path / "source" / "DEMOGRAFICOS.csv").open("a") as handle:
        handle.write("9999999,33,F,debit,Salta\n")
    _dags_test(env, "churn_data_watchdog", "2026-11-20T11:00:00+00:00")
    assert _task_states(env, "churn_data_watchdog") == {"detect_new_files": "success"}
    (extra,) = _airflow_db(env, "SELECT extra FROM asset_event ORDER BY id DESC LIMIT 1")[0]
    assert list(json.loads(extra)["files"]) == ["DEMOGRAFICOS"]  # the asset event names the changed file
    assert json.loads(extra)["snapshot"] == snapshot  # and the snapshot the files label, for the training


def _airflow_db(env: dict[str, str], query: str) -> list[tuple]:
    """The in-process runner's SQLite metadata DB, to read what Airflow recorded."""
    import sqlite3

    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        return conn.execute(query).fetchall()


def _task_states(env: dict[str, str], dag_id: str) -> dict[str, str]:
    """Task states of the DAG's latest run."""
    rows = _airflow_db(
        env,
        "SELECT task_id, state FROM task_instance WHERE run_id = (SELECT run_id FROM dag_run "
        f"WHERE dag_id = '{dag_id}' ORDER BY id DESC LIMIT 1) AND dag_id = '{dag_id}'",
    )
    return dict(rows)
