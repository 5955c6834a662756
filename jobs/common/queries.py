"""The saved queries of `database/queries/`: the SQL users open in pgAdmin is the SQL the app runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jobs.common.config import PROJECT_ROOT

if TYPE_CHECKING:
    import pandas as pd
    import psycopg

QUERIES_DIR = PROJECT_ROOT / "database" / "queries"


def saved_query(name: str) -> str:
    """The text of `database/queries/<name>.sql`, without its trailing semicolon."""
    path = QUERIES_DIR / f"{name}.sql"
    if not path.is_file():
        known = sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))
        raise FileNotFoundError(f"no saved query {name!r} in {QUERIES_DIR} (known: {known})")
    return path.read_text().strip().rstrip(";")


def run_saved(
    conn: psycopg.Connection, name: str, limit: int | None = None, where: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Runs a saved query read-only and returns its rows (at most `limit`) as a frame; `where` keeps the rows
    whose columns equal the values given (bound parameters; PostgreSQL pushes them into the query)."""
    import pandas as pd
    from psycopg import sql

    query = sql.SQL(saved_query(name))  # type: ignore[arg-type]  (a file of the repository, not user input)
    if where:
        conditions = sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in where
        )
        query = sql.SQL("SELECT * FROM (\n{}\n) AS saved WHERE {}").format(query, conditions)
    if limit is not None:
        query = sql.SQL("SELECT * FROM (\n{}\n) AS saved LIMIT {}").format(query, sql.Literal(int(limit)))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(query, dict(where) if where else None)
        columns = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)
