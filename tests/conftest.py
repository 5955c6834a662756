"""Shared fixtures: one Spark session, one test database on the real PostgreSQL, a local object store.

Tests use their own database (`kpidelivery_test`, recreated per session) on the configured server and
never fall back to an embedded one: if PostgreSQL does not answer, they fail and say so.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from tests.served import served  # noqa: F401  (the one trained model of a run, for tests/app and tests/model)
from tests.servers import ServerDidNotStart, start_server, stop_server

_STORE = Path(tempfile.mkdtemp(prefix="kpi-objectstore-"))
os.environ.update(
    {
        "POSTGRES_DB": os.environ.get("KPI_TEST_DB", "kpidelivery_test"),
        "POSTGRES_EMBEDDED": "never",
        "OBJECT_STORE_LOCAL_ROOT": str(_STORE),
        "S3_ENDPOINT_URL": "",
        "SPARK_SHUFFLE_PARTITIONS": "4",
        # every job JVM of a test is short-lived on small data: the C2 JIT costs more than it wins there
        # (docs/benchmarks.md); the jobs of the stack test, spark-submit and DAG runs inherit it
        "SPARK_JVM_OPTIONS": os.environ.get("SPARK_JVM_OPTIONS", "-XX:TieredStopAtLevel=1"),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
)

CRYPTO_TABLES = (
    "raw.bt_crypto_transaction_history",
    "raw.bt_crypto_landing",
    "raw.crypto_upstream_simulator",
    "raw.crypto_reference_prices",
    "staging.bt_crypto_events_candidate",
    "prod.bt_crypto_events",
    "dqm.bt_crypto_events_rejects",
    "dqm.bt_crypto_events_corrections",
    "dqm.bt_crypto_events_lineage",
    "dqm.dq_runs",
)


@pytest.fixture(scope="session")
def settings():
    from jobs.common.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def pg(settings):
    """The real PostgreSQL with a fresh test database and the init DDL applied."""
    from psycopg import sql

    from jobs.common.postgres import connect, prepare_database, resolve_server

    pg, _ = resolve_server(settings.postgres)
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(pg.db)))
    prepare_database(pg)
    return pg


@pytest.fixture
def db(pg):
    """A connection to the test database AS THE LOADER (what the jobs connect as), with the crypto tables
    emptied first by the admin (the loader may not TRUNCATE)."""
    from jobs.common.postgres import connect

    with connect(pg, role="admin") as admin:
        admin.execute(f"TRUNCATE {', '.join(CRYPTO_TABLES)}")
    with connect(pg) as conn:
        yield conn


@pytest.fixture
def admin_db(pg):
    """A superuser connection to the test database, for what only init may do (DDL, roles)."""
    from jobs.common.postgres import connect

    with connect(pg, role="admin") as conn:
        yield conn


@pytest.fixture(scope="session")
def spark(settings):
    from jobs.common.spark import build_session

    # but this session's JVM runs the in-process jobs of the whole test run: there the second tier pays off
    # (a run with C1 everywhere: the fuzz and training tests took 1.7x and 2.7x as long, the suite no less)
    long_lived = settings.spark.model_copy(update={"jvm_options": ""})
    session = build_session("kpidelivery-tests", long_lived, master="local[2]")
    yield session
    session.stop()


@pytest.fixture
def object_store_root() -> Path:
    return _STORE


@pytest.fixture(scope="session")
def mlflow_server(pg, tmp_path_factory):
    """A real MLflow tracking server: PostgreSQL backend store, proxied artifacts on a local path.

    Sets MLFLOW_TRACKING_URI for the session, so `load_settings().mlflow` and the jobs use it."""
    from psycopg import sql

    from jobs.common.postgres import connect, free_port

    db = f"{pg.db}_mlflow"
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(pg.loader_user))
        )
    port = free_port()
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    log_path = artifacts.parent / "mlflow-server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", pg.url(db),  # as the loader, like the stack's server
        "--artifacts-destination", str(artifacts), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    url = f"http://127.0.0.1:{port}"
    try:
        server = start_server(command, f"{url}/health", log_path, env)
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = url
    yield url
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    stop_server(server)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server: the stand-in for MinIO (path-style addressing, s3v4), as DESIGN.md allows."""
    from moto.server import ThreadedMotoServer

    from jobs.common.postgres import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
