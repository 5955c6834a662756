"""Least privilege: jobs and services log in as the loader, the app as the analyst, and only init as the admin.

Each test talks to the real PostgreSQL of the test database, as the role in question.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import date

import pytest
from psycopg import errors, sql
from pydantic import SecretStr

from jobs.common.config import PROJECT_ROOT
from jobs.common.postgres import (
    DatabaseNotInitialised,
    apply_init_ddl,
    check_initialised,
    connect,
    ensure_database,
    init_ddl_digest,
    prepare_database,
)

pytestmark = pytest.mark.integration

FORBIDDEN_TO_THE_LOADER = [
    "CREATE ROLE kpi_intruder LOGIN SUPERUSER",
    "CREATE DATABASE kpi_intruder",
    "DROP SCHEMA prod CASCADE",
    "DROP SCHEMA dqm",
    "DROP TABLE dqm.dq_runs",
    "CREATE TABLE prod.intruder (x int)",
    "CREATE TABLE public.intruder (x int)",
    "CREATE SCHEMA intruder",
    "ALTER TABLE prod.bt_crypto_events ADD COLUMN intruder int",
    "TRUNCATE prod.bt_crypto_events",
    "TRUNCATE dqm.bt_crypto_events_rejects",
    "UPDATE dqm.init_ddl SET digest = 'forged'",
    "ALTER TABLE prod.bt_crypto_events OWNER TO kpi_loader",
    "ALTER ROLE kpi_analyst SUPERUSER",
]


@pytest.mark.parametrize("statement", FORBIDDEN_TO_THE_LOADER)
def test_the_loader_cannot_change_schemas_roles_or_databases(pg, statement):
    with connect(pg) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("kpi_loader",)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_loader_reads_and_writes_rows_of_every_business_schema(pg):
    with connect(pg) as conn, conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO raw.crypto_reference_prices (price_date, crypto_type, reference_price, source) "
            "VALUES ('2001-11-01', 'BTC', 1, 'test')"
        )
        conn.execute(
            "UPDATE raw.crypto_reference_prices SET reference_price = 2 WHERE price_date = '2001-11-01'"
        )
        assert conn.execute(
            "SELECT reference_price FROM raw.crypto_reference_prices WHERE price_date = '2001-11-01'"
        ).fetchone() == (2,)
        conn.execute("DELETE FROM raw.crypto_reference_prices WHERE price_date = '2001-11-01'")
        for table in ("prod.bt_crypto_events", "dqm.dq_runs", "staging.bt_crypto_events_candidate"):
            conn.execute(f"SELECT count(*) FROM {table}")


def test_the_roles_have_no_attribute_beyond_login(pg):
    with connect(pg, role="admin") as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin "
            "FROM pg_roles WHERE rolname IN ('kpi_loader', 'kpi_analyst') ORDER BY rolname"
        ).fetchall()
    assert rows == [
        ("kpi_analyst", False, False, False, False, False, True),
        ("kpi_loader", False, False, False, False, False, True),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO dqm.dq_runs (run_id) VALUES (gen_random_uuid())",
        "UPDATE prod.bt_crypto_events SET is_active = false",
        "DELETE FROM prod.bt_crypto_events",
        "CREATE TABLE prod.intruder (x int)",
    ],
)
def test_the_analyst_reads_and_cannot_write(pg, statement):
    with connect(pg, role="analyst") as conn:
        assert conn.execute("SELECT count(*) FROM prod.bt_crypto_events").fetchone()[0] >= 0
        with pytest.raises((errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)):
            conn.execute(statement)
        # not only read-only by default: without the privilege, switching it off does not help
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_jobs_never_use_the_admin_credentials(db, settings, spark, monkeypatch):
    """With an admin that cannot log in at all, a whole crypto run (read, judge, gate, merge) still works."""
    from jobs.common.config import load_settings
    from tests.integration.helpers import run_job, simulate

    d = date(2026, 11, 20)
    simulate(db, settings, d, events_per_day=60, defect_share=0.05)
    monkeypatch.setenv("POSTGRES_USER", "no_such_admin")
    monkeypatch.setenv("POSTGRES_PASSWORD", "wrong")
    without_admin = load_settings()
    assert without_admin.postgres.user == "no_such_admin"
    outcome = run_job(without_admin, d)
    assert outcome.status == "merged"
    assert db.execute("SELECT count(*) > 0 FROM prod.bt_crypto_events").fetchone() == (True,)


def test_a_job_on_an_uninitialised_or_outdated_database_says_to_run_init(pg, tmp_path):
    empty = pg.model_copy(update={"db": f"{pg.db}_uninitialised"})
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(empty.db)))
    with pytest.raises(DatabaseNotInitialised, match=r"does not let kpi_loader in .*make init"):
        check_initialised(empty)  # no database at all
    ensure_database(empty)
    with connect(pg, dbname=empty.db, role="admin") as conn:
        conn.execute("GRANT CONNECT ON DATABASE " + empty.db + " TO kpi_loader")
    with pytest.raises(DatabaseNotInitialised, match=r"has no init DDL: run `make init`"):
        check_initialised(empty)
    apply_init_ddl(empty)
    check_initialised(empty)  # current: passes
    newer = tmp_path / "ddl"
    newer.mkdir()
    for path in sorted((PROJECT_ROOT / "database" / "sql" / "init").glob("*.sql")):
        (newer / path.name).write_text(path.read_text())
    (newer / "99_later.sql").write_text("SELECT 1;\n")
    assert init_ddl_digest(newer) != init_ddl_digest()
    with pytest.raises(DatabaseNotInitialised, match=r"older init DDL .*upgrades in place"):
        check_initialised(empty, newer)
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(empty.db)))


def test_init_sets_the_role_passwords_from_the_settings(pg):
    """scram-sha-256 servers need them; trust servers (these machines) ignore them."""
    with_passwords = pg.model_copy(
        update={"loader_password": SecretStr("loader-test-pw"), "analyst_password": SecretStr("a")}
    )
    apply_init_ddl(with_passwords)
    with connect(pg, role="admin") as conn:
        stored = dict(
            conn.execute(
                "SELECT rolname, rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid "
                "WHERE rolname IN ('kpi_loader', 'kpi_analyst')"
            ).fetchall()
        )
    assert stored == {"kpi_loader": True, "kpi_analyst": True}


def test_a_spark_submit_task_driver_and_its_ui_listen_on_loopback_only(tmp_path, monkeypatch):
    """The demo's path: Airflow's in-process runner environment, our SparkSubmitOperator, a real spark-submit.
    Before, nothing set SPARK_LOCAL_IP there and the UI listened on *:4040. Now every socket the driver's
    JVM listens on is bound to 127.0.0.1, and the UI says so."""
    from jobs.common.orchestration import in_process_env

    out = tmp_path / "listening.json"
    script = tmp_path / "listen.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, psutil
            from pyspark.sql import SparkSession
            spark = SparkSession.builder.getOrCreate()
            spark.range(10).count()
            jvm = psutil.Process().parent()
            while jvm is not None and "java" not in jvm.name():
                jvm = jvm.parent()
            listening = sorted({{c.laddr.ip for c in jvm.net_connections("inet") if c.status == "LISTEN"}})
            open({str(out)!r}, "w").write(json.dumps({{"ip": listening, "ui": spark.sparkContext.uiWebUrl}}))
            spark.stop()
            """
        )
    )
    task = textwrap.dedent(
        f"""
        from jobs.common.orchestration import spark_task
        spark_task("listen", {str(script)!r}, []).execute({{}})
        """
    )
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)  # as in a fresh shell (a session here sets it)
    env = in_process_env(tmp_path / "airflow") | {"AIRFLOW_CONN_SPARK_DEFAULT": "spark://local%5B1%5D"}
    done = subprocess.run(
        [sys.executable, "-c", task], env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    seen = json.loads(out.read_text())
    assert {ip.removeprefix("::ffff:") for ip in seen["ip"]} == {"127.0.0.1"}, seen  # IPv4 or mapped
    assert seen["ui"].startswith(("http://127.0.0.1:", "http://localhost:")), seen


def test_two_databases_of_one_server_initialised_at_once_both_succeed(pg):
    """The roles are the cluster's: each init alters their rows, so inits of two databases must take turns
    (a lock per database let half of them fail with "tuple concurrently updated")."""
    import threading

    pair = [pg.model_copy(update={"db": f"{pg.db}_init_{k}"}) for k in ("a", "b")]
    failures: list[str] = []

    def init_repeatedly(target) -> None:
        for _ in range(10):
            try:
                apply_init_ddl(target)
            except Exception as exc:  # collected: the assertion below names every failure
                failures.append(repr(exc))

    try:
        for target in pair:
            prepare_database(target)
        threads = [threading.Thread(target=init_repeatedly, args=(target,)) for target in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        for target in pair:
            with connect(target, role="admin") as conn:
                assert conn.execute("SELECT count(*) FROM dqm.init_ddl").fetchone()[0] == 1
    finally:
        with connect(pg, dbname="postgres", role="admin") as conn:
            for target in pair:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target.db))
                )
