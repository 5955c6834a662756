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
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from infrastructure.native.stack import isolated_env
from jobs.common.config import PROJECT_ROOT
from jobs.common.postgres import free_port
from tests.prometheus import eventually, firing, query

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.stack, pytest.mark.timeout(1800)]

SNAPSHOT = "2026-09-01"  # the generator's default T: the asset-triggered run finds it in the payments file


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
    from jobs.churn.contract.spec import SPECS_DIR
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write

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
        # the outages last 5 and 10 s: a first retry 10 s after a failure finds the service back
        "STACK_TASK_RETRY_DELAY_SECONDS": "10",
        "METRICS_SCRAPE_INTERVAL_SECONDS": "2",  # Prometheus sees a run's figures within seconds
        "SERVING_ALIAS_POLL_SECONDS": "2",  # the REST API serves a newly promoted model within seconds
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
        "pushgateway", "postgres-exporter", "redis-exporter", "node-exporter", "prometheus", "churn-api", "pgadmin",
    }  # fmt: skip
    assert all(r[2] == "True" for r in rows), ps.stdout
    master = _get_json(_url(stack["env"], "SPARK_UI", "/json/"))
    assert [w["state"] for w in master["workers"]] == ["ALIVE"]
    assert {b for b in ("airflow-logs", "ge-artifacts", "mlflow-artifacts") if _s3_keys(stack, b) is not None}
    with _db(stack) as conn:
        owners = dict(conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database").fetchall())
        logged_in = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND datname LIKE 'kpidelivery%%' AND pid <> pg_backend_pid()"
            )
        }
    assert {"kpidelivery", "kpidelivery_airflow", "kpidelivery_mlflow"} <= set(owners)
    # the services' own databases belong to the loader, and every service logs in as the loader
    assert (owners["kpidelivery_airflow"], owners["kpidelivery_mlflow"]) == ("kpi_loader", "kpi_loader")
    assert logged_in == {"kpi_loader"}, logged_in
    # Prometheus scrapes every exporter and the gateway, and the exporters reach PostgreSQL and Redis
    targets = eventually(
        "every target scraped", lambda: _promql(stack, "up") if len(_promql(stack, "up")) == 6 else None
    )
    assert targets == {(("instance", t), ("job", j)): 1.0 for j, t in _scraped(stack).items()}, targets
    assert _promql(stack, "pg_up") == {(("instance", _scraped(stack)["postgres"]), ("job", "postgres")): 1.0}
    assert _promql(stack, "redis_up") == {(("instance", _scraped(stack)["redis"]), ("job", "redis")): 1.0}
    listening = _listening_addresses(stack)
    assert set(listening) == {"127.0.0.1"}, {ip: who for ip, who in listening.items() if ip != "127.0.0.1"}
    print(f"\nstack up in {stack['up_seconds']:.1f} s\n{ps.stdout}")


def _promql(info: dict, promql: str) -> dict[tuple, float]:
    return query(_url(info["env"], "PROMETHEUS"), promql)


def _firing(info: dict, alertname: str) -> list[dict]:
    return firing(_url(info["env"], "PROMETHEUS"), alertname)


def _scraped(info: dict) -> dict[str, str]:
    """Prometheus's scrape jobs and the address of each (the stack's ports)."""
    env = info["env"]
    return {
        job: f"127.0.0.1:{env[f'STACK_{port}_PORT']}"
        for job, port in (("pushgateway", "PUSHGATEWAY"), ("prometheus", "PROMETHEUS"),
                          ("postgres", "POSTGRES_EXPORTER"), ("redis", "REDIS_EXPORTER"), ("node", "NODE_EXPORTER"),
                          ("churn-api", "SERVING"))
    }  # fmt: skip


def _lineage_events(info: dict, run_id: str) -> set[tuple[str, str]]:
    """(job name, event type) of the OpenLineage events of one DAG run, from the stack's file transport; each
    must be in the namespace of the stack."""
    path = Path(info["env"]["STACK_DIR"]) / "openlineage" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    mine = [e for e in events if run_id in json.dumps(e["run"].get("facets", {}))]
    assert {e["job"]["namespace"] for e in mine} <= {"kpidelivery"}
    return {(e["job"]["name"], e["eventType"]) for e in mine}


def _listening_addresses(info: dict) -> dict[str, set[str]]:
    """Every address a process of the stack (each service and its children: JVMs, workers) listens on, with
    the services and commands listening there (`::ffff:127.0.0.1` is IPv4 loopback as an IPv6 socket has it)."""
    import psutil

    addresses: dict[str, set[str]] = {}
    for pid_file in (Path(info["env"]["STACK_DIR"]) / "pids").glob("*.json"):
        root = psutil.Process(json.loads(pid_file.read_text())["pid"])
        for process in (root, *root.children(recursive=True)):
            try:
                connections = process.net_connections("inet")
                command = " ".join(process.cmdline())[:160]
            except psutil.NoSuchProcess:
                continue
            for c in connections:
                if c.status == psutil.CONN_LISTEN:
                    ip = c.laddr.ip.removeprefix("::ffff:")
                    addresses.setdefault(ip, set()).add(f"{pid_file.stem}: port {c.laddr.port}: {command}")
    return addresses


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
    # the run's figures reached Prometheus (pushed by the job to the gateway), and Airflow's record of the run
    # (its metadata database, through the postgres exporter)
    pushed = eventually(
        "the run's figures in Prometheus",
        lambda: _promql(stack, 'kpi_crypto_rows{job="crypto_events"}').get(
            (("job", "crypto_events"), ("kind", "read"))
        ),
    )
    assert pushed == read
    rows = _promql(stack, 'kpi_crypto_rows{job="crypto_events"}')
    assert rows[(("job", "crypto_events"), ("kind", "rejected"))] == rejected
    assert _promql(stack, 'kpi_crypto_merge_rows{action="inserted"}') == {
        (("action", "inserted"), ("job", "crypto_events")): float(inserted)
    }
    assert _promql(stack, "kpi_crypto_gate_passed") == {(("job", "crypto_events"),): 1.0}
    latest = eventually(
        "Airflow's latest crypto run in Prometheus",
        lambda: _promql(stack, 'airflow_dag_latest_run_failed{dag_id="crypto_events_dag"}'),
    )
    assert [dict(labels)["run_id"] for labels in latest] == [run_id] and set(latest.values()) == {0.0}
    # Airflow's OpenLineage provider wrote a START and a COMPLETE event for the run and for each of its tasks
    tasks = ("simulate_upstream", "validate", "merge", "reconcile")
    wanted = {(name, kind) for name in ("crypto_events_dag", *(f"crypto_events_dag.{t}" for t in tasks))
              for kind in ("START", "COMPLETE")}  # fmt: skip
    emitted = eventually(
        "the run's OpenLineage events", lambda: _lineage_events(stack, run_id) >= wanted or None
    )
    assert emitted
    durations = _promql(stack, 'airflow_task_latest_try_duration_seconds{dag_id="crypto_events_dag"}')
    assert {dict(labels)["task_id"] for labels in durations} == {
        "simulate_upstream",
        "validate",
        "merge",
        "reconcile",
    }
    assert all(seconds > 0 for seconds in durations.values())
    assert any(k.endswith(".json") for k in _s3_keys(stack, "ge-artifacts", f"crypto_events/{day}/"))
    assert _s3_keys(
        stack, "airflow-logs", f"logs/dag_id=crypto_events_dag/run_id={run_id}/"
    )  # remote task logs
    app = f"crypto_events {day}"
    apps = _get_json(_url(stack["env"], "SPARK_UI", "/json/"))["completedapps"]
    assert any(a["name"] == app for a in apps), apps  # it ran on the standalone worker
    deadline = time.monotonic() + 60
    while not (
        listed := [
            a
            for a in _get_json(_url(stack["env"], "SPARK_HISTORY", "/api/v1/applications"))
            if a["name"] == app
        ]
    ):
        assert time.monotonic() < deadline, "the history server never listed the application"
        time.sleep(2)
    # the stack's jobs start their driver and executors with SPARK_JVM_OPTIONS (the tests set it; Spark adds
    # its own module options in front)
    environment = _get_json(
        _url(stack["env"], "SPARK_HISTORY", f"/api/v1/applications/{listed[0]['id']}/environment")
    )
    properties = dict(environment["sparkProperties"])
    options = set(stack["env"]["SPARK_JVM_OPTIONS"].split())
    for jvm in ("driver", "executor"):
        assert options and options <= set(properties.get(f"spark.{jvm}.extraJavaOptions", "").split()), (
            properties
        )


def test_a_blocked_run_fails_its_dag_without_retrying_and_fires_its_alerts(stack):
    """Upstream sends a day where a third of the window has no price: the gate blocks the run, the validate
    task fails for good (a retry would decide the same), and Prometheus fires the gate's alert and Airflow's
    "DAG run failed" alert. The day's window overlaps no other test's."""
    from infrastructure.control import CRYPTO, logical_datetime

    day = _days_ago(20)
    with _db(stack) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO raw.bt_crypto_transaction_history (site_id, user_id, purchase_date, crypto_type, "
            "purchase_price, purchase_units) VALUES ('MLA', %s, %s, 'BTC', 'NaN', '1')",
            [(str(900_000 + k), f"{day.day}/{day.month}/{day.year}") for k in range(5000)],
        )
    api = _api(stack)
    run_id = api.trigger(CRYPTO, logical_datetime(CRYPTO, day))
    state = api.wait(CRYPTO, run_id, timeout=900)
    tasks = api.task_states(CRYPTO, run_id)
    assert state == "failed" and tasks["validate"] == ("failed", 1), tasks  # one try: not retried
    with _db(stack) as conn:
        statuses = [
            r[0] for r in conn.execute("SELECT status FROM dqm.dq_runs WHERE logical_date = %s", (day,))
        ]
    assert statuses == ["blocked"]
    (gate,) = eventually("CryptoGateBlocked firing", lambda: _firing(stack, "CryptoGateBlocked"), timeout=90)
    assert gate["labels"]["severity"] == "critical"
    (dag,) = eventually(
        "AirflowDagRunFailed firing", lambda: _firing(stack, "AirflowDagRunFailed"), timeout=90
    )
    assert (dag["labels"]["dag_id"], dag["labels"]["run_id"]) == ("crypto_events_dag", run_id)
    # the app's Operations page shows both alerts and Airflow's figures, read from the stack's Prometheus
    from tests.integration.ops.test_metrics import operations_page

    page = operations_page(METRICS_PROMETHEUS_URL=_url(stack["env"], "PROMETHEUS"))
    shown = " ".join(e.value for e in page.error)
    assert "CryptoGateBlocked" in shown and "AirflowDagRunFailed" in shown, shown
    assert not [i.value for i in page.info if "No Airflow figures" in i.value]


def test_churn_watchdog_asset_training_mlflow_and_drift(stack):
    """New source files -> watchdog emits the asset -> churn_training_dag (ingest, features, train on
    the standalone cluster, register + promote in the MLflow server, batch score); the training DAG
    triggered directly with params; the weekly drift monitor."""
    env = stack["env"]
    run = _control(env, "churn-watchdog")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"\n{run.stdout}")
    assert "'promote': True" in run.stdout
    assert f"snapshot: {SNAPSHOT}" in run.stdout  # the watchdog's event named the snapshot the files label
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

    # the stack's REST API serves the production model (picked up within its alias poll), and Prometheus
    # scrapes its answers' latency
    model = eventually("the API serving version 1", lambda: _served_model(env), timeout=60)
    assert model["version"] == 1
    record = model["inputs"]
    request = urllib.request.Request(
        _url(env, "SERVING", "/invocations"),
        data=json.dumps({"dataframe_records": [_scoring_row(record)]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.headers["X-Model-Version"] == "1"
            (prediction,) = json.load(answer)["predictions"]
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"the API refused the row: {exc.code} {exc.read()[:2000]!r}") from exc
    assert 0 <= prediction["probability"] <= 1
    served = eventually(
        "the API's answers in Prometheus",
        lambda: _promql(stack, 'kpi_serving_request_seconds_count{job="churn-api",status="200"}'),
    )
    assert set(served.values()) == {1.0}
    assert set(_promql(stack, "kpi_serving_model_version").values()) == {1.0}

    drift = _control(env, "churn-drift")
    assert drift.returncode == 0, drift.stdout[-3000:] + drift.stderr[-3000:]
    print(drift.stdout)
    keys = _s3_keys(stack, "mlflow-artifacts", "drift-reports/")
    assert {k.rsplit("/", 1)[1] for k in keys} >= {"report.html", "summary.json"}


def _served_model(env: dict) -> dict | None:
    """What the stack's REST API serves (GET /model), None while it serves nothing (503)."""
    try:
        return _get_json(_url(env, "SERVING", "/model"))
    except urllib.error.HTTPError as exc:
        assert exc.code == 503, exc
        return None


def _scoring_row(inputs: dict[str, str]) -> dict:
    """A customer as the API's input schema (GET /model) names and types its columns: each number 1 or its
    domain's least value above it (age 14), a city and segment the model never saw (scored as unknown)."""
    from jobs.churn.serving.checks import domain_of

    row = {}
    for column, kind in inputs.items():
        low = domain_of(column).low
        number = max(1, low if low is not None else 1)
        row[column] = (
            "unseen" if kind == "string" else (int(number) if kind in ("long", "integer") else float(number))
        )
    return row


def _days_ago(days: int) -> date:
    """A recent logical date: a backfill inside the simulated upstream's history (CRYPTO_GEN_HISTORY_DAYS)."""
    return date.today() - timedelta(days=days)


def _run_with_outage(stack, day: date, outage) -> tuple[str, dict]:
    """Triggers a crypto run, calls `outage(api, run_id)` once its Spark task runs, waits for the run."""
    from infrastructure.control import CRYPTO, logical_datetime

    api = _api(stack)
    run_id = api.trigger(CRYPTO, logical_datetime(CRYPTO, day))
    _wait_for_task(api, run_id, "validate", "running")
    outage(api, run_id)
    state = api.wait(CRYPTO, run_id, timeout=1500)
    return state, api.task_states(CRYPTO, run_id)


def _wait_for_task(api, run_id: str, task: str, state: str, timeout: float = 600) -> None:
    from infrastructure.control import CRYPTO

    deadline = time.monotonic() + timeout
    while api.task_states(CRYPTO, run_id).get(task, (None, 0))[0] != state:
        assert time.monotonic() < deadline, api.task_states(CRYPTO, run_id)
        time.sleep(0.5)


def _outage_while_blocked(stack, table: str, seconds: float = 5) -> str:
    """Holds a SHARE lock on `table` (reads pass, writes wait) until a session of the stack waits for it,
    then stops PostgreSQL (fast: every session is cut, the waiting one mid-step) for `seconds`. So the
    outage hits exactly the step that writes `table`, however loaded the machine is. Returns its query."""
    import contextlib

    import psycopg

    conn, watch = _db(stack), _db(stack)
    watch.autocommit = True  # pg_stat_activity is a snapshot per transaction: poll outside the locking one
    try:
        conn.execute(f"LOCK TABLE {table} IN SHARE MODE")  # psycopg opened a transaction: held until the stop
        deadline = time.monotonic() + 600
        while True:
            waiting = watch.execute(
                "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = 'kpidelivery' "
                "AND pid <> %s AND query ILIKE %s",
                (conn.info.backend_pid, f"%{table}%"),
            ).fetchall()
            if waiting:
                break
            assert time.monotonic() < deadline, f"nothing came to write {table}"
            time.sleep(0.2)
        stack["pg"].stop()
    finally:
        for session in (conn, watch):
            with contextlib.suppress(psycopg.Error):
                session.close()  # after a failure too: a held lock would stall every later test's run
    time.sleep(seconds)
    stack["pg"].start()
    return waiting[0][0]


def _window_state(conn, day: date) -> tuple[list, list]:
    """What a run of `day` decides, without run ids or clocks: prod's rows of its window, and the
    quarantined rows (with codes and reasons) of its window, each sorted."""
    start = day - timedelta(days=4)
    prod = conn.execute(
        "SELECT site_id, user_id, purchase_date, crypto_type, purchase_price::text, purchase_units::text, "
        "purchase_value::text, is_active FROM prod.bt_crypto_events WHERE purchase_date BETWEEN %s AND %s "
        "ORDER BY 1, 2, 3, 4",
        (start, day),
    ).fetchall()
    quarantine = conn.execute(
        "SELECT rule_codes, reason, raw_site_id, raw_user_id, raw_purchase_date, raw_crypto_type, "
        "raw_purchase_price, raw_purchase_units, row_hash FROM dqm.bt_crypto_events_rejects r "
        "JOIN dqm.dq_runs USING (run_id) WHERE r.logical_date = %s AND r.scope = 'window' "
        "AND status = 'merged' ORDER BY row_hash, landing_row",
        (day,),
    ).fetchall()
    return prod, quarantine


def _undisturbed_state(stack, day: date) -> tuple[list, list]:
    """The same run without an outage: upstream's table and reference prices copied into a fresh database of
    the same server, `make init` and the job run there directly, the window's state read back."""
    import psycopg

    reference = "kpidelivery_undisturbed"
    env = {**stack["env"], "POSTGRES_DB": reference}
    with psycopg.connect(host="127.0.0.1", port=stack["pg"].port, user="postgres", dbname="postgres",
                         autocommit=True) as admin:  # fmt: skip
        admin.execute(f"DROP DATABASE IF EXISTS {reference} WITH (FORCE)")
    init = subprocess.run([sys.executable, "-m", "jobs.common.postgres", "init"], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    with _db(stack) as source, psycopg.connect(host="127.0.0.1", port=stack["pg"].port, user="postgres",
                                               dbname=reference) as target:  # fmt: skip
        for table in ("raw.bt_crypto_transaction_history", "raw.crypto_reference_prices"):
            columns = [r[0] for r in source.execute(f"SELECT * FROM {table} LIMIT 0").description]
            listed = ", ".join(columns)
            with (
                source.cursor().copy(f"COPY {table} ({listed}) TO STDOUT") as out,
                target.cursor().copy(f"COPY {table} ({listed}) FROM STDIN") as into,
            ):
                for chunk in out:
                    into.write(chunk)
    job = subprocess.run(
        [sys.executable, "-m", "jobs.crypto_events", "--date", day.isoformat(), "--master", "local[2]"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    with psycopg.connect(host="127.0.0.1", port=stack["pg"].port, user="postgres", dbname=reference) as conn:
        return _window_state(conn, day)


def test_postgres_outages_in_validate_and_in_merge_are_retried_and_lose_nothing(stack):
    """Two outages in one DAG run, each forced into its step: one while validate writes the quarantine,
    one while the merge writes prod. Both steps fail, are retried and succeed, and prod and the quarantine
    of the window equal those of an undisturbed run of the same date on the same upstream rows. The day's
    window overlaps no other test's, so nothing else wrote those rows."""
    day = _days_ago(12)
    hit = {}

    def outages(api, run_id):
        hit["validate"] = _outage_while_blocked(stack, "dqm.bt_crypto_events_rejects")
        # prod is locked at once, while validate is retried: the merge task takes under a second, so waiting
        # for it to run before locking let it finish first (the lock then waited for nothing)
        hit["merge"] = _outage_while_blocked(stack, "prod.bt_crypto_events")

    state, tasks = _run_with_outage(stack, day, outages)
    print(f"\nafter two PostgreSQL outages: {tasks}\nhit: {hit}\n{_stack_cli(stack['env'], 'ps').stdout}")
    assert state == "success", tasks
    assert tasks["validate"][1] >= 2 and tasks["merge"][1] >= 2, (
        tasks
    )  # each step failed once and was retried
    with _db(stack) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM dqm.dq_runs WHERE logical_date = %s GROUP BY 1", (day,)
            ).fetchall()
        )
        after = _window_state(conn, day)
    # the run cut in validate was marked abandoned by its retry; none is left running or validated
    assert statuses.get("merged") == 1 and not {"running", "validated"} & set(statuses), statuses
    undisturbed = _undisturbed_state(stack, day)
    assert len(after[0]) > 0 and len(after[1]) > 0
    assert after == undisturbed


def test_a_redis_restart_during_a_run_and_celery_resumes(stack):
    def outage(api, run_id):
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
