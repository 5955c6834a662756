"""The native stack: the compose services as real processes on this machine, for hosts without Docker.

    python -m infrastructure.native.stack up | down | ps | logs [SERVICE] | init | env

Processes: the S3 endpoint (moto's server here, MinIO in compose) with the buckets airflow-logs,
ge-artifacts and mlflow-artifacts; Spark master + worker + history server; the MLflow server (PostgreSQL
backend store, artifacts proxied to the S3 endpoint); Airflow api-server, scheduler, dag-processor,
triggerer and Celery worker (PostgreSQL metadata, Redis broker). PostgreSQL and Redis are the configured
ones: the stack never starts or silently swaps in another.

Every process runs under a supervisor that restarts it when it exits on its own (compose's restart
policy), in its own session, with the supervisor's pid and command in `<STACK_DIR>/pids/<name>.json` and its
output in `<STACK_DIR>/logs/<name>.log`. `down` stops only processes whose pid file it wrote and whose
command line still matches (a recycled pid is left alone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobs.common.config import PROJECT_ROOT, Settings, load_settings

log = logging.getLogger("kpidelivery.stack")

BUCKETS = ("airflow-logs", "ge-artifacts", "mlflow-artifacts")
AIRFLOW_DB_SUFFIX, MLFLOW_DB_SUFFIX = "_airflow", "_mlflow"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]  # the health check `up` waits for
    env: dict[str, str] = field(default_factory=dict)
    # a process of the project (its jobs, Airflow, Spark, MLflow, the app) gets airflow_env(); a third-party
    # server (Prometheus, its exporters, pgAdmin) only its own `env`: none of the project's secrets
    project: bool = True
    prepare: Callable[[], None] | None = None  # writes its configuration before each start (idempotent)


# --- environment --------------------------------------------------------------------------------------------


def database_names(settings: Settings) -> dict[str, str]:
    db = settings.postgres.db
    return {"business": db, "airflow": db + AIRFLOW_DB_SUFFIX, "mlflow": db + MLFLOW_DB_SUFFIX}


def job_env(settings: Settings) -> dict[str, str]:
    """What the jobs see when the stack runs them: its Spark master, S3 endpoint and MLflow server."""
    from jobs.common.spark import spark_env

    st, pg, store = settings.stack, settings.postgres, settings.object_store
    env = {
        **spark_env(),
        "SPARK_LOCAL_IP": st.host,  # Spark daemons, drivers and their UIs bind to the stack's address only
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "POSTGRES_HOST": pg.host,
        "POSTGRES_PORT": str(pg.port),
        # the loader only: no job or service of the stack gets the admin's password
        "KPI_LOADER_PASSWORD": pg.loader_password.get_secret_value(),
        "POSTGRES_DB": pg.db,
        "POSTGRES_EMBEDDED": "never",
        "SPARK_MASTER_URL": st.spark_master_url,
        "SPARK_EVENT_LOG_DIR": str(settings.spark.event_log_dir),
        "S3_ENDPOINT_URL": st.s3_url,
        "S3_ACCESS_KEY_ID": store.s3_access_key_id,
        "S3_SECRET_ACCESS_KEY": store.s3_secret_access_key.get_secret_value(),
        "S3_REGION": store.s3_region,
        "MLFLOW_TRACKING_URI": st.mlflow_url,
        "METRICS_PUSHGATEWAY_URL": f"http://{st.host}:{st.pushgateway_port}",
        "METRICS_PROMETHEUS_URL": f"http://{st.host}:{st.prometheus_port}",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return env


OPENLINEAGE_NAMESPACE = "kpidelivery"


def openlineage_events(settings: Settings) -> Path:
    """Where Airflow's OpenLineage provider appends its events (file transport: one JSON line per event)."""
    return settings.stack.dir / "openlineage" / "events.jsonl"


def airflow_env(settings: Settings) -> dict[str, str]:
    """One environment for every Airflow process (they must share the JWT secret, DB, broker)."""
    st, store = settings.stack, settings.object_store
    names = database_names(settings)
    secret = st.jwt_secret.get_secret_value()
    object_store_conn = {
        "conn_type": "aws",
        "login": store.s3_access_key_id,
        "password": store.s3_secret_access_key.get_secret_value(),
        "extra": {"endpoint_url": st.s3_url, "region_name": store.s3_region},
    }
    return {
        "AIRFLOW_HOME": str(st.dir / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "airflow" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # `make dag-run` unpauses what it triggers
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{st.airflow_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(st.dir / "airflow" / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{st.airflow_url}/execution/",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(st.task_retry_delay_seconds),
        "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": str(st.max_task_retry_delay_seconds),
        "AIRFLOW__API__HOST": st.host,
        "AIRFLOW__API__PORT": str(st.airflow_port),
        "AIRFLOW__API__BASE_URL": st.airflow_url,
        "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.postgres.url(names["airflow"]),
        "AIRFLOW__CELERY__BROKER_URL": st.redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": settings.postgres.url(names["airflow"], "db+postgresql"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(st.celery_concurrency),
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": "s3://airflow-logs/logs",
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "object_store",
        "AIRFLOW_CONN_OBJECT_STORE": json.dumps(object_store_conn),
        # OpenLineage events of every DAG run and task try (the provider's listener), one JSON line each
        "AIRFLOW__OPENLINEAGE__NAMESPACE": OPENLINEAGE_NAMESPACE,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(openlineage_events(settings)), "append": True}
        ),
        "AIRFLOW_CONN_SPARK_DEFAULT": st.spark_master_url,
        **job_env(settings),
    }


def isolated_env(root: Path) -> dict[str, str]:
    """Settings for a second stack beside the usual one (tests, benchmarks): free ports, and every folder
    the stack writes or `destroy` wipes placed under `root`."""
    from jobs.common.postgres import free_port

    ports = (
        "AIRFLOW",
        "MLFLOW",
        "S3",
        "SPARK_MASTER",
        "SPARK_UI",
        "SPARK_WORKER_UI",
        "SPARK_HISTORY",
        "JUPYTER",
        "SERVING",
        "PROMETHEUS",
        "PUSHGATEWAY",
        "POSTGRES_EXPORTER",
        "REDIS_EXPORTER",
        "NODE_EXPORTER",
    )
    return {
        "STACK_DIR": str(root / "stack"),
        "SPARK_EVENT_LOG_DIR": str(root / "spark-events"),
        "CHURN_SOURCE_DIR": str(root / "source"),
        "CHURN_LAKE_DIR": str(root / "lake"),
        "MLFLOW_LOCAL_DIR": str(root / "mlflow"),
        "OBJECT_STORE_LOCAL_ROOT": str(root / "objectstore"),
        **{f"STACK_{name}_PORT": str(free_port()) for name in ports},
        "APP_PORT": str(free_port()),
        "PGADMIN_PORT": str(free_port()),
    }


# --- health checks --------------------------------------------------------------------------------------------


def _get_json(url: str, timeout: float = 3.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def answers(url: str, contains: str = "") -> bool:
    """The health probe: `url` answers 200 (and its body holds `contains`)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200 and contains in response.read().decode(errors="replace")
    except (OSError, urllib.error.URLError):
        return False


def _spark_master(settings: Settings) -> dict | None:
    try:
        return _get_json(f"http://{settings.stack.host}:{settings.stack.spark_ui_port}/json/")
    except (OSError, ValueError):
        return None


def _airflow_component(settings: Settings, component: str) -> bool:
    try:
        health = _get_json(f"{settings.stack.airflow_url}/api/v2/monitor/health")
    except (OSError, ValueError):
        return False
    return (health.get(component) or {}).get("status") == "healthy"


def _log_says(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except FileNotFoundError:
        return False


# --- the services ---------------------------------------------------------------------------------------------


def services(settings: Settings) -> list[Service]:
    from infrastructure.observability import stack_services
    from infrastructure.pgadmin.native import service as pgadmin_service

    st = settings.stack
    py = sys.executable
    spark_class = str(Path(job_env(settings)["SPARK_HOME"]) / "bin" / "spark-class")
    events = settings.spark.event_log_dir.as_uri()
    names = database_names(settings)
    store = settings.object_store
    logs = st.dir / "logs"
    # --skip-serve-logs (triggerer, worker): Airflow's log server binds every interface (its host is hard-coded
    # to ""), and task logs go to the object store (remote logging) anyway: the UI shows them from there once a
    # try ends. Nothing of the stack listens beyond STACK_HOST.
    token = st.jupyter_token.get_secret_value()

    def master_alive() -> bool:
        return (_spark_master(settings) or {}).get("status") == "ALIVE"

    def worker_alive() -> bool:
        return any(w.get("state") == "ALIVE" for w in (_spark_master(settings) or {}).get("workers", []))

    return [
        Service(
            "s3",
            [py, "-m", "moto.server", "-H", st.host, "-p", str(st.s3_port)],
            lambda: answers(f"{st.s3_url}/moto-api/"),
        ),
        Service(
            "spark-master",
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                st.host,
                "--port",
                str(st.spark_master_port),
                "--webui-port",
                str(st.spark_ui_port),
            ],
            master_alive,
        ),
        Service(
            "spark-worker",
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                st.host,
                "--webui-port",
                str(st.spark_worker_ui_port),
                "--cores",
                str(st.worker_cores),
                "--memory",
                st.worker_memory,
                "--work-dir",
                str(st.dir / "spark-work"),
                st.spark_master_url,
            ],
            worker_alive,
        ),
        Service(
            "spark-history",
            [spark_class, "org.apache.spark.deploy.history.HistoryServer"],
            lambda: answers(f"http://{st.host}:{st.spark_history_port}/api/v1/applications"),
            env={
                "SPARK_HISTORY_OPTS": f"-Dspark.history.fs.logDirectory={events} "
                f"-Dspark.history.ui.port={st.spark_history_port} -Dspark.history.fs.update.interval=5s"
            },
        ),
        Service(
            "mlflow",
            [
                py,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                settings.postgres.url(names["mlflow"]),
                "--artifacts-destination",
                f"s3://{store.mlflow_artifacts_bucket}/",
                "--serve-artifacts",
                "--host",
                st.host,
                "--port",
                str(st.mlflow_port),
                "--workers",
                "1",
            ],
            lambda: answers(f"{st.mlflow_url}/health"),
            env={
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # else 13 processes, 2.9 GiB (DESIGN.md)
                "MLFLOW_S3_ENDPOINT_URL": st.s3_url,
                "AWS_ACCESS_KEY_ID": store.s3_access_key_id,
                "AWS_SECRET_ACCESS_KEY": store.s3_secret_access_key.get_secret_value(),
                "AWS_DEFAULT_REGION": store.s3_region,
            },
        ),
        *stack_services(settings),
        Service(
            "airflow-api-server",
            [py, "-m", "airflow", "api-server", "--host", st.host, "--port", str(st.airflow_port)],
            lambda: answers(f"{st.airflow_url}/api/v2/monitor/health"),
        ),
        Service(
            "airflow-scheduler",
            [py, "-m", "airflow", "scheduler"],
            lambda: _airflow_component(settings, "scheduler"),
        ),
        Service(
            "airflow-dag-processor",
            [py, "-m", "airflow", "dag-processor"],
            lambda: _airflow_component(settings, "dag_processor"),
        ),
        Service(
            "airflow-triggerer",
            [py, "-m", "airflow", "triggerer", "--skip-serve-logs"],
            lambda: _airflow_component(settings, "triggerer"),
        ),
        Service(
            "airflow-worker",
            [
                py,
                "-m",
                "airflow",
                "celery",
                "worker",
                "--skip-serve-logs",
                "--concurrency",
                str(st.celery_concurrency),
            ],
            lambda: _log_says(logs / "airflow-worker.log", " ready."),
        ),
        Service(
            "streamlit",
            [py, "-m", "app", "--host", st.host, "--port", str(settings.app.port)],
            lambda: answers(f"http://{st.host}:{settings.app.port}/_stcore/health"),
        ),
        Service(  # /ping answers also before the first production model exists (docs/serving.md)
            "churn-api",
            [py, "-m", "jobs.churn.serving", "--host", st.host, "--port", str(st.serving_port)],
            lambda: answers(f"http://{st.host}:{st.serving_port}/ping"),
        ),
        Service(
            "jupyterlab",
            [
                py,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip",
                st.host,
                "--ServerApp.port",
                str(st.jupyter_port),
                "--ServerApp.root_dir",
                str(NOTEBOOKS_DIR),
            ],
            lambda: answers(f"http://{st.host}:{st.jupyter_port}/api/status?token={token}"),
            env={
                "JUPYTER_TOKEN": token,
                "JUPYTER_CONFIG_DIR": str(st.dir / "jupyter" / "config"),
                "JUPYTER_RUNTIME_DIR": str(st.dir / "jupyter" / "runtime"),
            },
        ),
        pgadmin_service(settings),  # its own venv and config (infrastructure/pgadmin/native.py)
    ]


# --- process bookkeeping --------------------------------------------------------------------------------------


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.stack.dir / "pids" / f"{name}.json"


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, an identity no reuse can fake
    (command lines are not: Airflow rewrites its process title)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def running(settings: Settings, name: str) -> int | None:
    """The pid of a service this stack started, if that very process still runs."""
    path = _pid_file(settings, name)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record["pid"] if _start_ticks(record["pid"]) == record["start_ticks"] else None


def start(settings: Settings, service: Service) -> int:
    if pid := running(settings, service.name):
        return pid
    logs = settings.stack.dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _pid_file(settings, service.name).parent.mkdir(parents=True, exist_ok=True)
    if service.prepare is not None:
        service.prepare()
    env = {**os.environ, **(airflow_env(settings) if service.project else {}), **service.env}
    log_path = logs / f"{service.name}.log"
    if log_path.exists():  # keep the previous run's log one generation back; health checks read the new one
        log_path.replace(log_path.with_suffix(".log.1"))
    with log_path.open("wb") as out:
        supervised = [
            sys.executable,
            "-m",
            "infrastructure.native.supervise",
            service.name,
            "--",
            *service.argv,
        ]
        process = subprocess.Popen(
            supervised, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=PROJECT_ROOT, start_new_session=True,
        )  # fmt: skip
    record = {"pid": process.pid, "start_ticks": _start_ticks(process.pid), "argv": service.argv}
    _pid_file(settings, service.name).write_text(json.dumps(record))
    return process.pid


def stop(settings: Settings, name: str, grace: float = 30.0) -> bool:
    pid = running(settings, name)
    _pid_file(settings, name).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)  # the whole session: Celery's children, spark-submit drivers
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _start_ticks(pid) is not None:
        time.sleep(0.3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def restarts(settings: Settings, name: str) -> int:
    path = settings.stack.dir / "logs" / f"{name}.log"
    return path.read_text(errors="replace").count("[supervise]") if path.exists() else 0


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (OSError, StopIteration):
            continue
        stack.extend(int(c) for c in children)
    return total / 1024


# --- init / up / down ------------------------------------------------------------------------------------------


def check_services_outside(settings: Settings) -> None:
    """PostgreSQL and Redis are the configured ones; fail clearly instead of starting others."""
    import redis

    from jobs.common.postgres import server_answers

    pg = settings.postgres
    if not server_answers(pg):
        raise SystemExit(f"PostgreSQL does not answer at {pg.host}:{pg.port} (POSTGRES_HOST/PORT)")
    try:
        redis.Redis.from_url(settings.stack.redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise SystemExit(
            f"Redis does not answer at {settings.stack.redis_url} (STACK_REDIS_URL): {exc}"
        ) from exc


def init(settings: Settings) -> None:
    """Idempotent: databases (business DDL, Airflow metadata, MLflow store), Airflow migration, folders."""
    from jobs.common.postgres import ensure_database, hand_over, prepare_database

    check_services_outside(settings)
    pg = settings.postgres
    prepare_database(pg)
    names = database_names(settings)
    for name in (names["airflow"], names["mlflow"]):  # the services' own databases, owned by the loader
        if not ensure_database(pg, name, owner=pg.loader_user):
            hand_over(pg, name, pg.loader_user)
    st = settings.stack
    for folder in (st.dir / "airflow", st.dir / "logs", st.dir / "spark-work", settings.spark.event_log_dir,
                   openlineage_events(settings).parent):  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
    source = settings.churn.source_dir
    if not any(source.glob("*.csv")):  # the embedded default's churn files, so the churn DAGs have input
        from jobs.churn.simulate.__main__ import main as generate

        generate(["--out", str(source), "--customers", "3000"])
    passwords = st.dir / "airflow" / "passwords.json"
    passwords.write_text(json.dumps({st.airflow_user: st.airflow_password.get_secret_value()}))
    began = time.monotonic()
    env = {**os.environ, **airflow_env(settings)}
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=PROJECT_ROOT,
                             capture_output=True, text=True)  # fmt: skip
    if migrate.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-3000:]}")
    log.info("init: databases %s ready, Airflow metadata migrated in %.1f s", sorted(names.values()),
             time.monotonic() - began)  # fmt: skip


def create_buckets(settings: Settings) -> None:
    from jobs.common.objectstore import S3ObjectStore

    store = S3ObjectStore(settings.object_store.model_copy(update={"s3_endpoint_url": settings.stack.s3_url}))
    for bucket in BUCKETS:
        store.ensure_bucket(bucket)


def up(settings: Settings, timeout: float = 240.0) -> dict[str, float]:
    """Starts what is not running, waits for every health check; returns seconds to healthy per service."""
    began = time.monotonic()
    init(settings)
    todo = services(settings)
    for service in todo:
        start(settings, service)
    ready_at: dict[str, float] = {}
    buckets_done = False
    deadline = time.monotonic() + timeout
    while len(ready_at) < len(todo):
        for service in todo:
            if service.name in ready_at:
                continue
            if running(settings, service.name) is None:
                raise SystemExit(f"{service.name} exited during start-up:\n{tail(settings, service.name)}")
            if service.ready():
                ready_at[service.name] = time.monotonic() - began
                log.info("%-22s healthy after %5.1f s", service.name, ready_at[service.name])
        if not buckets_done and "s3" in ready_at:
            create_buckets(settings)
            buckets_done = True
        if time.monotonic() > deadline:
            late = [s.name for s in todo if s.name not in ready_at]
            raise SystemExit(
                f"not healthy after {timeout:.0f} s: {late}\n" + "\n".join(tail(settings, n) for n in late)
            )
        time.sleep(1)
    return ready_at


def down(settings: Settings) -> list[str]:
    stopped = []
    for service in reversed(services(settings)):
        if stop(settings, service.name):
            stopped.append(service.name)
    return stopped


def wipe(settings: Settings) -> list[str]:
    """This project's state only: its three databases, the stack folder, the lake, local MLflow and object
    store, Spark event logs and the generated churn files. Paths outside the project are left alone."""
    import shutil

    from psycopg import sql

    from jobs.common.postgres import MAINTENANCE_DB, connect

    removed = []
    with connect(settings.postgres, dbname=MAINTENANCE_DB) as conn:
        conn.autocommit = True
        for name in database_names(settings).values():
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            removed.append(f"database {name}")
    folders = (settings.stack.dir, settings.churn.lake_dir, settings.churn.source_dir, settings.mlflow.local_dir,
               settings.object_store.object_store_local_root, settings.spark.event_log_dir)  # fmt: skip
    for folder in folders:
        if folder.is_dir() and folder.resolve().is_relative_to(PROJECT_ROOT):
            shutil.rmtree(folder)
            removed.append(str(folder.relative_to(PROJECT_ROOT)))
    return removed


def tail(settings: Settings, name: str, lines: int = 40) -> str:
    path = settings.stack.dir / "logs" / f"{name}.log"
    text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
    return f"--- {name} ({path})\n" + "\n".join(text)


def status(settings: Settings) -> list[dict]:
    rows = []
    for service in services(settings):
        pid = running(settings, service.name)
        rows.append({
            "service": service.name,
            "pid": pid,
            "healthy": bool(pid) and service.ready(),
            "rss_mib": round(rss_mib(pid), 1) if pid else 0.0,
            "restarts": restarts(settings, service.name),
        })  # fmt: skip
    return rows


def urls(settings: Settings) -> dict[str, str]:
    st = settings.stack
    return {
        "Airflow": f"{st.airflow_url}  ({st.airflow_user}/{st.airflow_password.get_secret_value()})",
        "Spark master UI": f"http://{st.host}:{st.spark_ui_port}  ({st.spark_master_url})",
        "Spark history": f"http://{st.host}:{st.spark_history_port}",
        "MLflow": st.mlflow_url,
        "Streamlit app": f"http://{st.host}:{settings.app.port}",
        "Scoring API": f"http://{st.host}:{st.serving_port}/invocations  (served version: /model)",
        "JupyterLab": f"http://{st.host}:{st.jupyter_port}/lab?token={st.jupyter_token.get_secret_value()}",
        "S3 endpoint": f"{st.s3_url}  (buckets: {', '.join(BUCKETS)})",
        "pgAdmin": f"http://{st.host}:{settings.pgadmin.port}  "
        f"({settings.pgadmin.default_email}/{settings.pgadmin.default_password.get_secret_value()})",
        "Prometheus": f"http://{st.host}:{st.prometheus_port}  (alerts: /alerts)",
        "Pushgateway": f"http://{st.host}:{st.pushgateway_port}",
    }


def main(argv: list[str] | None = None) -> int:
    from jobs.common.logs import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m infrastructure.native.stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command", choices=("up", "down", "destroy", "reset", "ps", "logs", "init", "env"), help="what to do"
    )
    parser.add_argument("service", nargs="?", help="logs: one service (default: all, last lines)")
    args = parser.parse_args(argv)
    setup_logging()
    settings = load_settings()
    if args.command == "init":
        init(settings)
        return 0
    elif args.command in ("destroy", "reset"):
        stopped = down(settings)
        print(f"stopped: {', '.join(stopped) or 'nothing'}")
        print(f"wiped: {', '.join(wipe(settings))}")
    if args.command in ("up", "reset"):
        ready = up(settings)
        total = sum(row["rss_mib"] for row in status(settings))
        print(f"\nnative stack up in {max(ready.values()):.1f} s, {total:.0f} MiB resident")
        for what, where in urls(settings).items():
            print(f"  {what:<16} {where}")
    if args.command == "down":
        stopped = down(settings)
        print(f"stopped: {', '.join(stopped) or 'nothing (no process of this stack was running)'}")
    elif args.command == "ps":
        rows = status(settings)
        print(f"{'service':<24}{'pid':>8}  {'healthy':<8}{'RSS MiB':>9}{'restarts':>10}")
        for row in rows:
            print(
                f"{row['service']:<24}{row['pid'] or '-':>8}  {row['healthy']!s:<8}{row['rss_mib']:>9.1f}"
                f"{row['restarts']:>10}"
            )
        print(f"{'total':<42}{sum(r['rss_mib'] for r in rows):>9.1f}")
    elif args.command == "logs":
        names = [args.service] if args.service else [s.name for s in services(settings)]
        for name in names:
            print(tail(settings, name, 200 if args.service else 20))
    elif args.command == "env":
        for key, value in sorted(airflow_env(settings).items()):
            print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
