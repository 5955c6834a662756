"""The ingest's I/O: a source file read by Spark as text, and the batch's rows and record in PostgreSQL.

The executors COPY a batch's rows and quarantine rows into staging tables (jobs/common/stage.py), and one
transaction publishes them with the batch record. A batch's id comes from (file, as-of date, sha256), so a
retry of the same file replaces its rows, never duplicates them; its record in `dqm.churn_batches` says running, loaded, blocked or failed, with counts,
the gate's summary and message.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.churn.contract.sources import CORRUPT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.common.config import PostgresSettings
    from jobs.common.gate import GateResult

_BATCH_NAMESPACE = uuid.UUID("8f6f0d3e-5d1c-4f7b-9a51-1c8d2e0b7a10")
REJECTS_TABLE = "dqm.churn_rejects"


class StagingMismatch(RuntimeError):
    """The staged rows do not add up to the batch's counts: nothing is published."""


def batch_id(source: str, as_of: date, sha256: str) -> str:
    return str(uuid.uuid5(_BATCH_NAMESPACE, f"{source}|{as_of.isoformat()}|{sha256}"))


def read_source(spark: SparkSession, path: Path, header: Sequence[str]) -> DataFrame:
    """Every column as text, in the file's own column order; malformed lines land in `_corrupt_record`."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(h, StringType()) for h in header] + [StructField(CORRUPT, StringType())])
    df = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("enforceSchema", True)  # positional, by the header we just read: names are checked above
        .schema(schema)
        .csv(str(path))
    )
    return df.withColumn("source_row", F.monotonically_increasing_id())


def stage_batch(
    conn,
    pg: PostgresSettings,
    table: str,
    batch: str,
    valid: DataFrame | None,
    rejects: DataFrame,
    counts: dict,
) -> dict[str, list[str]]:
    """The batch's rows (`valid`: None for a blocked batch, which loads nothing) and its quarantine rows,
    COPYed into their staging tables by the executors; nothing is visible until `publish_batch`. Returns
    the columns staged per kind."""
    from jobs.common import stage

    scope = {"batch_id": batch}
    staged = {"rejects": (rejects, stage.stage_of(REJECTS_TABLE), counts["rejected"])}
    if valid is not None:
        staged["valid"] = (valid, stage.stage_of(table), counts["valid"])
    columns = {}
    for kind, (df, stage_table, rows) in staged.items():
        stage.clear(conn, stage_table, scope)
        stage.copy_partitions(df, pg, stage_table, scope, rows)
        columns[kind] = [*df.columns, "batch_id"]
    return columns


def publish_batch(conn, table: str, batch: str, columns: dict) -> dict:
    """In the caller's transaction: the batch's earlier rows (a retry) replaced by the staged ones."""
    from jobs.common import stage

    scope = {"batch_id": batch}
    conn.execute(f"DELETE FROM {table} WHERE batch_id = %s", (batch,))
    conn.execute(f"DELETE FROM {REJECTS_TABLE} WHERE batch_id = %s", (batch,))
    written = {
        "rejects": stage.publish(
            conn, stage.stage_of(REJECTS_TABLE), REJECTS_TABLE, columns["rejects"], scope
        )
    }
    written["valid"] = (
        stage.publish(conn, stage.stage_of(table), table, columns["valid"], scope)
        if "valid" in columns
        else 0
    )
    return written


def start_batch(conn, batch: str, source: str, as_of: date, path: Path, sha: str) -> None:
    conn.execute(
        """
        INSERT INTO dqm.churn_batches (batch_id, source, as_of, file_path, file_sha256, status)
        VALUES (%s, %s, %s, %s, %s, 'running')
        ON CONFLICT (batch_id) DO UPDATE SET status = 'running', started_at = now(), finished_at = NULL,
            message = NULL, file_path = EXCLUDED.file_path
        """,
        (batch, source, as_of, str(path), sha),
    )


def finish_batch(
    conn, batch: str, status: str, counts: dict, by_rule: dict, gate: GateResult, warnings: dict
) -> None:
    conn.execute(
        """
        UPDATE dqm.churn_batches SET status = %s, rows_read = %s, rows_valid = %s, rows_rejected = %s,
            duplicates_collapsed = %s, rejects_by_rule = %s, gate = %s, gx_results_uri = %s,
            gx_docs_uri = %s, message = %s, finished_at = now()
        WHERE batch_id = %s
        """,
        (
            status,
            counts["read"],
            counts["valid"],
            counts["rejected"],
            counts["duplicates"],
            json.dumps(by_rule),
            json.dumps({**gate.summary(), "warning_rules": warnings}),
            gate.results_uri,
            gate.docs_uri,
            gate.message(),
            batch,
        ),
    )


def fail_batch(conn, batch: str, message: str) -> None:
    conn.execute(
        "UPDATE dqm.churn_batches SET status = 'failed', message = %s, finished_at = now() WHERE batch_id = %s",
        (message[:2000], batch),
    )
