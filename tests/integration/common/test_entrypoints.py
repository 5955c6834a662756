"""The job runs under spark-submit; the embedded PostgreSQL default starts, takes the DDL and stops."""

from __future__ import annotations

import subprocess
from datetime import date, timedelta

import pytest

from jobs.common.config import PROJECT_ROOT, PostgresSettings
from jobs.common.postgres import (
    PostgresUnavailable,
    connect,
    prepare_database,
    resolve_server,
    stop_embedded,
)
from jobs.common.spark import submit_command
from tests.integration.helpers import insert_rows, reference_prices

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_job_runs_under_spark_submit(db, pg, settings):
    d = date(2026, 11, 20)
    reference_prices(db, d - timedelta(days=4), d)
    insert_rows(db, [("MLA", str(u), "19/11/2026", "BTC", "60000", "0.1") for u in range(1, 21)])
    argv, env = submit_command(
        PROJECT_ROOT / "jobs/crypto_events/__main__.py",
        ["--date", d.isoformat(), "--dag-run-id", "spark-submit-test"],
        settings.spark,
        master="local[2]",
    )
    env.update(POSTGRES_HOST=pg.host, POSTGRES_PORT=str(pg.port))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status=merged" in proc.stdout
    status, dag_run, inserted = db.execute(
        "SELECT status, dag_run_id, rows_inserted FROM dqm.dq_runs WHERE logical_date = %s", (d,)
    ).fetchone()
    assert (status, dag_run, inserted) == ("merged", "spark-submit-test", 20)


def test_a_submitted_jobs_driver_jvm_runs_with_spark_jvm_options(settings):
    """SPARK_JVM_OPTIONS (set for the tests in tests/conftest.py) reaches the JVM spark-submit starts."""
    import json

    options = settings.spark.jvm_options.split()
    assert options, "the tests run their job JVMs with SPARK_JVM_OPTIONS"
    argv, env = submit_command(
        PROJECT_ROOT / "tests/integration/common/jvm_arguments.py", [], settings.spark, master="local[1]"
    )
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("JVM ")]
    assert set(options) <= set(json.loads(line.removeprefix("JVM "))), line


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_without_embedded_is_a_clear_error():
    nothing = PostgresSettings(host="127.0.0.1", port=_free_port(), embedded="never", db="kpidelivery_x")
    with pytest.raises(PostgresUnavailable, match="does not answer and POSTGRES_EMBEDDED=never"):
        resolve_server(nothing)


def test_embedded_default_when_nothing_answers():
    nothing = PostgresSettings(
        host="127.0.0.1", port=_free_port(), embedded="auto", db="kpidelivery_embedded_test"
    )
    try:
        pg, where = resolve_server(nothing)
        assert "EMBEDDED" in where and pg.port != nothing.port
        prepare_database(pg)
        with connect(pg) as conn:
            schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname IN ('raw','staging','prod','dqm')"
            ).fetchone()
        assert {"raw", "staging", "prod", "dqm"} <= schemas
        # 10 crypto (with the corrections and the lineage) + 8 churn tables of database/sql/init +
        # dqm.init_ddl, and 8 staging tables the executors COPY into (the quarantine's, the five raw tables',
        # the churn quarantine's, the scores')
        assert tables[0] == 27
        again, _ = resolve_server(nothing)  # reused, not started twice
        assert again.port == pg.port
    finally:
        assert stop_embedded()
