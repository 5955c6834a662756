"""Shared fixtures: one Spark session, one test database on the real PostgreSQL, a local object store.

Tests use their own database (`kpidelivery_test`, recreated per session) on the configured server and
never fall back to an embedded one: if PostgreSQL does not answer, they fail and say so.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_STORE = Path(tempfile.mkdtemp(prefix="kpi-objectstore-"))
os.environ.update(
    {
        "POSTGRES_DB": os.environ.get("KPI_TEST_DB", "kpidelivery_test"),
        "POSTGRES_EMBEDDED": "never",
        "OBJECT_STORE_LOCAL_ROOT": str(_STORE),
        "S3_ENDPOINT_URL": "",
        "SPARK_SHUFFLE_PARTITIONS": "4",
        "GX_ANALYTICS_ENABLED": "false",
    }
)

CRYPTO_TABLES = (
    "raw.bt_crypto_transaction_history",
    "raw.crypto_reference_prices",
    "staging.bt_crypto_events_candidate",
    "prod.bt_crypto_events",
    "dqm.bt_crypto_events_rejects",
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
    with connect(pg, dbname="postgres") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(pg.db)))
    prepare_database(pg)
    return pg


@pytest.fixture
def db(pg):
    """A connection to the test database with the crypto tables emptied first."""
    from jobs.common.postgres import connect

    with connect(pg) as conn:
        conn.execute(f"TRUNCATE {', '.join(CRYPTO_TABLES)}")
        yield conn


@pytest.fixture(scope="session")
def spark(settings):
    from jobs.common.spark import build_session

    session = build_session("kpidelivery-tests", settings.spark, master="local[2]")
    yield session
    session.stop()


@pytest.fixture
def object_store_root() -> Path:
    return _STORE
