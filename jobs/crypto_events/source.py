"""Upstream's history table and the run's landing snapshot of it (all in PostgreSQL, no row through Spark).

The source is the task's `raw.bt_crypto_transaction_history` as it stands: six columns, any of them typed or
text, `inserted_at`/`updated_at` used when present. How a run reads its window `[D-4, D]` without parsing
the whole history (docs/crypto_events.md, "Reading the window"):

1. `distinct_date_texts` walks the DISTINCT `purchase_date` texts on a plain btree index of that column (a
   loose index scan: one index probe per distinct text, so its cost grows with the number of distinct texts,
   a few per day, not with the number of rows);
2. the job parses those few texts with THE date parse of the rules (`transform.place_dates`): which texts
   mean a day of the window, which mean no plausible date at all;
3. `land_snapshot` copies, in one statement, the rows whose text is one of the window's texts (an index scan)
   and the rows whose date fits no window and that no merged run has quarantined yet, into
   `raw.bt_crypto_landing` under the run id, with the row hash and upstream's timestamps.

Without the index the walk is one sequential scan (said in the log), never a parse of every row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from psycopg import sql

log = logging.getLogger(__name__)

LANDING_TABLE = "raw.bt_crypto_landing"
SOURCE_COLUMNS = ("site_id", "user_id", "purchase_date", "crypto_type", "purchase_price", "purchase_units")
TIMESTAMP_COLUMNS = ("inserted_at", "updated_at")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


class SourceTableError(ValueError):
    """The source table cannot be read as the task's table (missing, or without one of the six columns)."""


@dataclass(frozen=True)
class SourceTable:
    name: str  # schema.table
    timestamps: tuple[str, ...]  # which of inserted_at / updated_at it has
    indexed: bool  # a valid btree index leads with purchase_date

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(*self.name.split("."))


@dataclass(frozen=True)
class Landed:
    window: int
    unplaced: int

    @property
    def rows(self) -> int:
        return self.window + self.unplaced


def describe_source(conn, name: str) -> SourceTable:
    if not _NAME.match(name):
        raise SourceTableError(f"source table must be schema.table in lower case, got {name!r}")
    schema, table = name.split(".")
    columns = {
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        ).fetchall()
    }
    if not columns:
        raise SourceTableError(f"source table {name} does not exist")
    missing = [c for c in SOURCE_COLUMNS if c not in columns]
    if missing:
        raise SourceTableError(
            f"source table {name} lacks the task's columns {missing} (it has {sorted(columns)})"
        )
    (indexed,) = conn.execute(
        """SELECT EXISTS (
               SELECT 1 FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree'
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = %s::regclass AND a.attname = 'purchase_date'
                 AND i.indisvalid AND i.indpred IS NULL)""",
        (name,),
    ).fetchone()
    return SourceTable(name, tuple(c for c in TIMESTAMP_COLUMNS if c in columns), bool(indexed))


def distinct_date_texts(conn, source: SourceTable) -> list[str]:
    """Every distinct non-NULL `purchase_date` text of the source (NULLs are found by `land_snapshot`)."""
    date_text = sql.SQL("purchase_date::text")
    if source.indexed:
        query = sql.SQL(
            """WITH RECURSIVE texts(t) AS (
                   SELECT min({d}) FROM {table}
                 UNION ALL
                   SELECT (SELECT min({d}) FROM {table} WHERE {d} > t) FROM texts WHERE t IS NOT NULL
               ) SELECT t FROM texts WHERE t IS NOT NULL"""
        )
    else:
        log.warning(
            "%s has no btree index on purchase_date: finding its date texts scans the whole table "
            "(CREATE INDEX ON %s (purchase_date) makes it one probe per distinct text)",
            source.name,
            source.name,
        )
        query = sql.SQL("SELECT DISTINCT {d} FROM {table} WHERE purchase_date IS NOT NULL")
    return [row[0] for row in conn.execute(query.format(d=date_text, table=source.identifier)).fetchall()]


_ROW_HASH = sql.SQL(
    "encode(sha256(convert_to(json_build_array(site_id, user_id, purchase_date, crypto_type, purchase_price, "
    "purchase_units)::text, 'UTF8')), 'hex')"
)


@dataclass(frozen=True)
class Moves:
    """The rows a steward's correction gave another date (jobs/crypto_events/corrections.py), for one run:
    those whose corrected date is a day of its window are landed (found by upstream's date text), and every
    row whose corrected date is a plausible day (of this window or another) is no longer landed by upstream's
    text. A correction that leaves the date undatable moves nothing."""

    into_window: tuple[str, ...] = ()  # row hashes
    out: tuple[str, ...] = ()  # row hashes (into_window among them)
    originals: tuple[str, ...] = ()  # upstream's date texts of the rows moved in
    original_missing: bool = False  # one of them has no date upstream

    @classmethod
    def of(cls, moves, placement: dict[str, str], window: str, elsewhere: str) -> Moves:
        """From the corrections' date moves and where their corrected texts fall."""
        into = [m for m in moves if m.corrected is not None and placement.get(m.corrected) == window]
        out = [
            m for m in moves if m.corrected is not None and placement.get(m.corrected) in (window, elsewhere)
        ]
        return cls(
            tuple(m.row_hash for m in into),
            tuple(m.row_hash for m in out),
            tuple(sorted({m.original for m in into if m.original is not None})),
            any(m.original is None for m in into),
        )


_INSERT = """
INSERT INTO raw.bt_crypto_landing (run_id, landing_row, scope, site_id, user_id, purchase_date, crypto_type,
    purchase_price, purchase_units, row_hash, source_inserted_at, source_updated_at)
WITH picked AS (
    SELECT {values}, 'window' AS scope FROM {table} WHERE purchase_date::text = ANY(%(window)s)
  UNION ALL
    SELECT {values}, 'unplaced' FROM {table}
    WHERE purchase_date IS NULL OR purchase_date::text = ANY(%(unplaced)s)
  UNION ALL  -- rows a correction moves into the window, found by upstream's date text
    SELECT {values}, 'moved' FROM {table}
    WHERE purchase_date::text = ANY(%(moved_from)s) OR (%(moved_from_missing)s AND purchase_date IS NULL)
), hashed AS (
    SELECT h.* FROM (SELECT picked.*, {row_hash} AS row_hash FROM picked) h
    WHERE CASE WHEN h.scope = 'moved' THEN h.row_hash = ANY(%(moved_in)s) ELSE h.row_hash <> ALL(%(moved_out)s) END
), quarantined AS (  -- unplaced rows already quarantined by a merged run, per row hash (copies count)
    SELECT r.row_hash, count(*) AS copies FROM dqm.bt_crypto_events_rejects r
    JOIN dqm.dq_runs d ON d.run_id = r.run_id AND d.status = 'merged'
    WHERE r.scope = 'unplaced' GROUP BY r.row_hash
), fresh AS (
    SELECT h.*, row_number() OVER (PARTITION BY h.scope, h.row_hash) AS copy FROM hashed h
)
SELECT %(run)s, row_number() OVER (), CASE f.scope WHEN 'moved' THEN 'window' ELSE f.scope END, f.site_id, f.user_id, f.purchase_date, f.crypto_type,
       f.purchase_price, f.purchase_units, f.row_hash, f.source_inserted_at, f.source_updated_at
FROM fresh f LEFT JOIN quarantined q ON f.scope = 'unplaced' AND q.row_hash = f.row_hash
WHERE f.scope = 'window' OR f.copy > coalesce(q.copies, 0)
"""


def land_snapshot(
    conn,
    run_id: str,
    source: SourceTable,
    window_texts: list[str],
    unplaced_texts: list[str],
    moves: Moves = Moves(),  # frozen: an empty default is safe
) -> Landed:
    """Copies the run's rows into the landing table (inside the caller's transaction, when there is one)."""
    values = [sql.SQL("{c}::text AS {c}").format(c=sql.Identifier(c)) for c in SOURCE_COLUMNS]
    for column in TIMESTAMP_COLUMNS:
        value = (
            sql.SQL("{c}::timestamptz").format(c=sql.Identifier(column))
            if column in source.timestamps
            else sql.SQL("NULL::timestamptz")
        )
        values.append(sql.SQL("{v} AS {a}").format(v=value, a=sql.Identifier(f"source_{column}")))
    statement = sql.SQL(_INSERT).format(
        values=sql.SQL(", ").join(values), table=source.identifier, row_hash=_ROW_HASH
    )
    conn.execute(
        statement,
        {
            "run": run_id,
            "window": window_texts,
            "unplaced": unplaced_texts,
            "moved_from": list(moves.originals),
            "moved_from_missing": moves.original_missing,
            "moved_in": list(moves.into_window),
            "moved_out": list(moves.out),
        },
    )
    return landed_counts(conn, run_id)


def copy_landing(conn, run_id: str, from_run: str) -> Landed:
    """The snapshot of `from_run`, landed again under `run_id` (a reproduction reads what that run read)."""
    conn.execute(
        """INSERT INTO raw.bt_crypto_landing (run_id, landing_row, scope, site_id, user_id, purchase_date,
               crypto_type, purchase_price, purchase_units, row_hash, source_inserted_at, source_updated_at)
           SELECT %s, landing_row, scope, site_id, user_id, purchase_date, crypto_type, purchase_price,
                  purchase_units, row_hash, source_inserted_at, source_updated_at
           FROM raw.bt_crypto_landing WHERE run_id = %s""",
        (run_id, from_run),
    )
    return landed_counts(conn, run_id)


def landed_counts(conn, run_id: str) -> Landed:
    counts = dict(
        conn.execute(
            "SELECT scope, count(*) FROM raw.bt_crypto_landing WHERE run_id = %s GROUP BY scope", (run_id,)
        ).fetchall()
    )
    return Landed(int(counts.get("window", 0)), int(counts.get("unplaced", 0)))


def prune_landing(conn, retention_days: int) -> int:
    """Deletes the snapshots of runs started more than `retention_days` ago (storage, not business data:
    the only place where the wall clock decides). Returns the number of rows deleted."""
    deleted = conn.execute(
        """DELETE FROM raw.bt_crypto_landing l USING dqm.dq_runs r
           WHERE r.run_id = l.run_id AND r.started_at < now() - make_interval(days => %s)""",
        (retention_days,),
    ).rowcount
    if deleted:
        log.info("pruned %d landing rows of runs older than %d days", deleted, retention_days)
    return deleted
