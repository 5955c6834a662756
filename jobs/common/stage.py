"""Executors write, the driver publishes: rows go from the Spark partitions that computed them straight into
an unlogged staging table of PostgreSQL, and ONE transaction on the driver makes them visible.

`copy_partitions` runs on the executors (`mapInArrow`): each partition renders its Arrow batches as CSV and
COPYs them into the staging table, tagged with the load's scope (a run or batch id) and its partition number,
in one transaction of its own that first deletes whatever an earlier attempt of that partition left, under an
advisory lock on (table, scope, partition). So a task that Spark retries (a lost executor, a failure after
the commit) or runs twice (speculation) leaves exactly one copy of its rows. Only the per-partition counts
come back to the driver. `publish` then moves the staged rows into their table inside the caller's
transaction, with whatever else must change atomically with them (a run or batch record).

CSV from Arrow is NULL-safe for PostgreSQL: Arrow quotes every string (an empty one is `""`) and writes NULL
as an unquoted empty field, which is what COPY's CSV format reads as NULL. Columns must be scalars (arrays
as PostgreSQL array literals, maps as JSON text).

Fault hook, for tests: KPI_FAULT_COPY_ONCE=<staging table>:<partition>[,...] in the driver's environment makes
the first attempt of that partition fail AFTER its rows are committed (the worst moment: Spark retries it, and
the retry must not duplicate them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from jobs.common.config import PostgresSettings

log = logging.getLogger(__name__)

PART = "part"  # the staging tables' partition-number column
ROWS_PER_PART = 100_000  # with a row count: partitions merged (no shuffle) down to one per this many rows
FAULT_ENV = "KPI_FAULT_COPY_ONCE"


class InjectedFault(RuntimeError):
    """The test hook's failure of a partition's first attempt (after its commit)."""


def copy_partitions(
    df: DataFrame, pg: PostgresSettings, table: str, scope: Mapping[str, Any], rows: int | None = None
) -> dict[int, int]:
    """COPYs every partition of `df` into `table` from the executor that computed it; returns the rows written
    per partition. `scope` (column -> value, e.g. {"run_id": ...}) names this load's rows in `table`; `df`
    holds the other columns, by name. `rows`, when the caller has counted them, spares a load of nothing its
    Spark job and merges small partitions (one connection per ROWS_PER_PART rows, at most)."""
    if rows == 0:
        return {}
    if rows is not None:
        df = df.coalesce(max(1, min(df.rdd.getNumPartitions(), -(-rows // ROWS_PER_PART))))
    columns = [*df.columns, *scope, PART]
    values = {column: str(value) for column, value in scope.items()}
    conninfo = pg.conninfo()
    fault = _fault_for(table)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        from pyspark import TaskContext

        context = TaskContext.get()
        part = context.partitionId()
        rows = _copy_part(conninfo, table, columns, values, part, batches)
        if fault == part and context.attemptNumber() == 0:
            raise InjectedFault(f"{FAULT_ENV}: partition {part} of {table} fails once, after its commit")
        yield pa.record_batch(
            [pa.array([part], pa.int32()), pa.array([rows], pa.int64())], names=[PART, "rows"]
        )

    counts = {r[PART]: r["rows"] for r in df.mapInArrow(write, f"{PART} int, rows long").collect()}
    log.info("%s: %d rows COPYed by %d partitions", table, sum(counts.values()), len(counts))
    return counts


def _copy_part(
    conninfo: str, table: str, columns: list[str], scope: dict[str, str], part: int, batches
) -> int:
    """On an executor: one transaction that replaces the partition's rows of this load (under a lock on them)."""
    import io

    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv

    where = " AND ".join(f"{column} = %s" for column in scope)
    options = pacsv.WriteOptions(include_header=False)
    written = 0
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
            (table, f"{'|'.join(scope.values())}|{part}"),
        )
        conn.execute(f"DELETE FROM {table} WHERE {where} AND {PART} = %s", (*scope.values(), part))
        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                tagged = batch
                for value in (*scope.values(), str(part)):
                    tagged = tagged.append_column(
                        f"_{len(tagged.schema)}", pa.array([value] * batch.num_rows)
                    )
                buffer = io.BytesIO()
                pacsv.write_csv(tagged, buffer, write_options=options)
                copy.write(buffer.getvalue())
                written += batch.num_rows
    return written


def text_array(column: str):
    """A Spark array of codes (letters, digits, `_`) as a PostgreSQL array literal for COPY: `{A,B}`."""
    from pyspark.sql import functions as F

    return F.concat(F.lit("{"), F.array_join(F.col(column), ","), F.lit("}"))


def stage_of(table: str) -> str:
    """The staging table of a target table: `staging.<its name>` (the init DDL creates one per target)."""
    return f"staging.{table.split('.', 1)[1]}"


def _fault_for(table: str) -> int | None:
    """The partition of `table` the test hook fails once: KPI_FAULT_COPY_ONCE=<table>:<partition>[,...]."""
    for spec in os.environ.get(FAULT_ENV, "").split(","):
        name, _, part = spec.strip().rpartition(":")
        if name == table and part.isdigit():
            return int(part)
    return None


def publish(conn, stage: str, target: str, columns: list[str], scope: Mapping[str, Any]) -> int:
    """Inside the caller's transaction: the load's staged rows into `target` (its `columns`), and out of the
    stage. Returns the rows published."""
    where = " AND ".join(f"{column} = %s" for column in scope)
    listed = ", ".join(columns)
    moved = conn.execute(
        f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {stage} WHERE {where}", tuple(scope.values())
    ).rowcount
    conn.execute(f"DELETE FROM {stage} WHERE {where}", tuple(scope.values()))
    return moved


def clear(conn, stage: str, scope: Mapping[str, Any]) -> int:
    """The load's rows in the stage (a dead earlier attempt's), before its partitions are written again."""
    where = " AND ".join(f"{column} = %s" for column in scope)
    return conn.execute(f"DELETE FROM {stage} WHERE {where}", tuple(scope.values())).rowcount
