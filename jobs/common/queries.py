"""The saved queries of `database/queries/`: the SQL users open in pgAdmin is the SQL the app runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def run_saved(conn: psycopg.Connection, name: str, limit: int | None = None) -> pd.DataFrame:
    """Runs a saved query read-only and returns its rows (at most `limit`) as a frame."""
    import pandas as pd

    query = saved_query(name)
    if limit is not None:
        query = f"SELECT * FROM (\n{query}\n) AS saved LIMIT {int(limit)}"
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(query)
        columns = [c.name for c in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=columns)
