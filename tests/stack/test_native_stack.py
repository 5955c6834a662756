"""The native stack end to end: `stack up`, DAGs triggered through Airflow's REST API, results asserted in
PostgreSQL, MLflow and the S3 endpoint, Spark applications on the standalone worker, and recovery from a
PostgreSQL restart and a Redis restart in the middle of a run.

The stack runs against a PostgreSQL 15 server and a Redis of its own (the machine's binaries, started here
on free ports and configured through POSTGRES_HOST/PORT and STACK_REDIS_URL), so the test may restart them
without disturbing anything else; every port and folder is private too. On failure every log is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from infrastructure.native.stack import isolated_env
from jobs.common.config import PROJECT_ROOT
from jobs.common.postgres import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.stack, pytest.mark.timeout(1800)]

SNAPSHOT = "2026-09-01"  # churn_training_dag's default snapshot: the asset-triggered run uses it


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert found, "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
    return found[-1].parent


class PrivatePostgres:
    """A throwaway cluster of the machine's PostgreSQL (trust auth), restartable at will."""

    def __init__(self) -> None:
        from jobs.common.postgres import _run_as

        self.user = _run_as()  # PostgreSQL refuses to run as root
        self.root = Path(tempfile.mkdtemp(prefix="kpi-stack-pg-"))
        self.data, self.port, self.bin = self.root / "data", free_port(), _pg_bin()
        os.chmod(self.root, 0o755)
        if self.user:
            shutil.chown(self.root, self.user)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{tool} failed: {proc.stdout}{proc.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o", options, "start"
        )

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        subprocess.run(
            [*(["runuser", "-u", self.user, "--"] if self.user else []), str(self.bin / "pg_ctl"),
             "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.port, self.root = free_port(), root
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=(self.root / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)


def _stack_cli(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infrastructure.native.stack", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _control(env: dict, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infrastructure.control", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    """Brings the native stack up on private ports, folders, PostgreSQL and Redis; tears it all down."""
    from jobs.churn.generate import ChurnGenConfig, generate, write
    from jobs.churn.spec import SPECS_DIR

    root = tmp_path_factory.mktemp("native-stack")
    pg = PrivatePostgres()
    redis = PrivateRedis(root)
    tables, truth, oracle = generate(ChurnGenConfig(customers=1500, seed=11))
    write(root / "source", tables, truth, oracle)
    spec = yaml.safe_load((SPECS_DIR / "churn.yaml").read_text())
    spec.update(name="stack_tiny", models={"logistic_regression": {"regParam": [0.01]}})
    (root / "tiny.yaml").write_text(yaml.safe_dump(spec))
    env = {
        **os.environ,
        **isolated_env(root),
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(pg.port),
        "POSTGRES_DB": "kpidelivery",
        "STACK_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "CHURN_SPEC": str(root / "tiny.yaml"),
    }
    began = time.monotonic()
    up = _stack_cli(env, "up")
    info = {"env": env, "pg": pg, "redis": redis, "root": root, "up_seconds": time.monotonic() - began}
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-5000:]
        print(up.stdout)
        yield info
    finally:
        if request.session.testsfailed:
            print(_stack_cli(env, "logs").stdout)
        down = _stack_cli(env, "down")
        print(down.stdout, down.stderr[-2000:])
        redis.stop()
        pg.destroy()


def _url(env: dict, port: str, path: str = "") -> str:
    return f"http://127.0.0.1:{env[f'STACK_{port}_PORT']}{path}"


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _db(info: dict):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=info["pg"].port, user="postgres", dbname="kpidelivery")


def _s3_keys(info: dict, bucket: str, prefix: str = "") -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=_url(info["env"], "S3"), aws_access_key_id="minioadmin",
                          aws_secret_access_key="minioadmin", region_name="us-east-1")  # fmt: skip
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _api(info: dict):
    from infrastructure.control import AirflowClient

    return AirflowClient(_url(info["env"], "AIRFLOW"), "admin", "admin")


def test_every_service_is_up_healthy_and_uses_the_configured_postgres_and_redis(stack):
    ps = _stack_cli(stack["env"], "ps")
    assert ps.returncode == 0
    rows = [line.split() for line in ps.stdout.splitlines()[1:-1]]
    assert {r[0] for r in rows} == {
        "s3", "spark-master", "spark-worker", "spark-history", "mlflow", "airflow-api-server",
        "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "streamlit", "jupyterlab",
    }  # fmt: skip
    assert all(r[2] == "True" for r in rows), ps.stdout
    master = _get_json(_url(stack["env"], "SPARK_UI", "/json/"))
    assert [w["state"] for w in master["workers"]] == ["ALIVE"]
    assert {b for b in ("airflow-logs", "ge-artifacts", "mlflow-artifacts") if _s3_keys(stack, b) is not None}
    with _db(stack) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {"kpidelivery", "kpidelivery_airflow", "kpidelivery_mlflow"} <= names
    print(f"\nstack up in {stack['up_seconds']:.1f} s\n{ps.stdout}")


def test_crypto_dag_through_the_rest_api(stack):
    """`make dag-run` with no date: the slot the scheduler would run on unpause, triggered exactly once."""
    began = time.monotonic()
    run = _control(stack["env"], "dag-run")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"\ncrypto dag-run in {time.monotonic() - began:.0f} s\n{run.stdout}")
    line = next(x for x in run.stdout.splitlines() if x.startswith("crypto_events_dag "))
    run_id, day = line.split()[1], line.split("(")[1].split(")")[0]
    with _db(stack) as conn:
        status, read, inserted, rejected = conn.execute(
            "SELECT status, rows_read, rows_inserted, rows_rejected FROM dqm.dq_runs WHERE dag_run_id = %s",
            (run_id,),
        ).fetchone()
        prod = conn.execute("SELECT count(*) FROM prod.bt_crypto_events").fetchone()[0]
        rejects = conn.execute("SELECT count(*) FROM dqm.bt_crypto_events_rejects").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM dqm.dq_runs").fetchone()[0]
    assert status == "merged" and read > 0 and inserted > 0 and rejected > 0
    assert prod >= inserted and rejects >= rejected
    assert runs == 1  # the scheduler's catch-up of the same slot did not run a second time
    assert any(k.endswith(".json") for k in _s3_keys(stack, "ge-artifacts", f"crypto_events/{day}/"))
    assert _s3_keys(
        stack, "airflow-logs", f"logs/dag_id=crypto_events_dag/run_id={run_id}/"
    )  # remote task logs
    app = f"crypto_events {day}"
    apps = _get_json(_url(stack["env"], "SPARK_UI", "/json/"))["completedapps"]
    assert any(a["name"] == app for a in apps), apps  # it ran on the standalone worker
    deadline = time.monotonic() + 60
    while not any(
        a["name"] == app for a in _get_json(_url(stack["env"], "SPARK_HISTORY", "/api/v1/applications"))
    ):
        assert time.monotonic() < deadline, "the history server never listed the application"
        time.sleep(2)


def test_churn_watchdog_asset_training_mlflow_and_drift(stack):
    """New source files -> watchdog emits the asset -> churn_training_dag (ingest, features, train on
    the standalone cluster, register + promote in the MLflow server, batch score); the training DAG
    triggered directly with params; the weekly drift monitor."""
    env = stack["env"]
    run = _control(env, "churn-watchdog")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"\n{run.stdout}")
    assert "'promote': True" in run.stdout
    with _db(stack) as conn:
        loaded = conn.execute("SELECT count(*) FROM dqm.churn_batches WHERE status = 'loaded'").fetchone()[0]
        scores = conn.execute(
            "SELECT count(*), min(model_alias) FROM prod.churn_scores WHERE snapshot_date = %s", (SNAPSHOT,)
        ).fetchone()
    assert loaded == 5 and scores == (1500, "production")
    from mlflow import MlflowClient

    # both URIs: an earlier test in the session may have set a global registry URI (the test MLflow server)
    client = MlflowClient(tracking_uri=_url(env, "MLFLOW"), registry_uri=_url(env, "MLFLOW"))
    production = client.get_model_version_by_alias("churn_model", "production")
    assert production.version == "1"
    assert client.get_run(production.run_id).data.params  # the training run is in the server's store
    assert _s3_keys(stack, "mlflow-artifacts")  # proxied artifacts landed in the S3 endpoint
    # a second watchdog tick sees nothing new: skipped, no second training
    again = _control(env, "churn-watchdog")
    assert again.returncode == 0 and "detect_new_files: skipped" in again.stdout, again.stdout[-2000:]

    # churn_training_dag triggered directly through the REST API with params: same data and spec, a tie
    train = _control(env, "churn-train", "--snapshot", SNAPSHOT, "--spec", str(stack["root"] / "tiny.yaml"))
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    print(train.stdout)
    assert "'promote': False" in train.stdout  # a tie never promotes
    assert client.get_model_version_by_alias("churn_model", "challenger").version == "2"
    assert client.get_model_version_by_alias("churn_model", "production").version == "1"

    # the stack's Streamlit app scores with that production model, in a real browser
    from tests.browser import chromium, open_page

    with chromium() as browser:
        page = open_page(browser, f"http://127.0.0.1:{env['APP_PORT']}/Score", "Score a customer")
        page.get_by_role("button", name="Score", exact=True).click()
        page.get_by_text("· churn_model v1 ·").wait_for(timeout=60_000)

    drift = _control(env, "churn-drift")
    assert drift.returncode == 0, drift.stdout[-3000:] + drift.stderr[-3000:]
    print(drift.stdout)
    keys = _s3_keys(stack, "mlflow-artifacts", "drift-reports/")
    assert {k.rsplit("/", 1)[1] for k in keys} >= {"report.html", "summary.json"}


def _days_ago(days: int) -> date:
    """A recent logical date: a backfill inside the simulated upstream's history (CRYPTO_GEN_HISTORY_DAYS)."""
    return date.today() - timedelta(days=days)


def _run_with_outage(stack, day: date, outage) -> tuple[str, dict]:
    """Triggers a crypto run, calls `outage()` once its Spark task runs, waits for the run to finish."""
    from infrastructure.control import CRYPTO, logical_datetime

    api = _api(stack)
    run_id = api.trigger(CRYPTO, logical_datetime(CRYPTO, day))
    deadline = time.monotonic() + 600
    while api.task_states(CRYPTO, run_id).get("validate", (None, 0))[0] != "running":
        assert time.monotonic() < deadline, api.task_states(CRYPTO, run_id)
        time.sleep(1)
    outage()
    state = api.wait(CRYPTO, run_id, timeout=1500)
    return state, api.task_states(CRYPTO, run_id)


def test_a_postgres_restart_during_a_run_is_retried_and_the_run_succeeds(stack):
    def outage():
        stack["pg"].stop()
        time.sleep(30)  # the validate job reads raw and writes staging through JDBC within this window
        stack["pg"].start()

    state, tasks = _run_with_outage(stack, _days_ago(2), outage)
    print(f"\nafter the PostgreSQL outage: {tasks}\n{_stack_cli(stack['env'], 'ps').stdout}")
    assert state == "success", tasks
    assert max(tries for _, tries in tasks.values()) >= 2, tasks  # some task failed on the outage and retried


def test_a_redis_restart_during_a_run_and_celery_resumes(stack):
    def outage():
        stack["redis"].stop()
        time.sleep(10)
        stack["redis"].start()

    day = _days_ago(3)
    state, tasks = _run_with_outage(stack, day, outage)
    print(f"\nafter the Redis restart: {tasks}\n{_stack_cli(stack['env'], 'ps').stdout}")
    assert state == "success", tasks
    with _db(stack) as conn:
        statuses = [
            r[0] for r in conn.execute("SELECT status FROM dqm.dq_runs WHERE logical_date = %s", (day,))
        ]
    assert "merged" in statuses
