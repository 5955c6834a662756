"""Spark reads and writes of the crypto events job: the run's landing snapshot in (read by the executors in
slices), candidates and rejects out (written by the executors, published by the driver: jobs/common/stage.py)."""

from __future__ import annotations

import logging
import uuid
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.config import PostgresSettings
from jobs.common.spark import read_jdbc_slices, row_slices
from jobs.crypto_events import corrections
from jobs.crypto_events.transform import RAW_COLUMNS

log = logging.getLogger(__name__)

ROWS_PER_READ_PARTITION = 100_000
CANDIDATE_TABLE = "staging.bt_crypto_events_candidate"
REJECTS_TABLE = "dqm.bt_crypto_events_rejects"


def _jdbc(pg: PostgresSettings, **extra: str) -> dict[str, str]:
    return {**pg.jdbc_properties(), "fetchsize": "20000", "batchsize": "10000", **extra}


def read_landing(
    spark: SparkSession, pg: PostgresSettings, run_id: str, n_rows: int, corrections_upto: int
) -> DataFrame:
    """The run's landing snapshot, read in parallel ranges of `landing_row` (1..n_rows), with the stewards'
    corrections in place of upstream's values: the latest correction of each row's content (`row_hash`) up to
    `corrections_upto` (fixed before the read, so every slice applies the same ones), named by `correction_id`
    (NULL: upstream's values)."""
    values = ", ".join(
        f"CASE WHEN k.correction_id IS NULL THEN l.{c} ELSE k.{c} END AS {c}" for c in RAW_COLUMNS
    )
    latest = (
        f"SELECT DISTINCT ON (row_hash) row_hash, correction_id, {', '.join(RAW_COLUMNS)} "
        f"FROM {corrections.TABLE} WHERE correction_id <= {int(corrections_upto)} "
        "ORDER BY row_hash, correction_id DESC"
    )
    query = (
        f"(SELECT l.landing_row, l.scope, {values}, l.row_hash, k.correction_id "
        f"FROM raw.bt_crypto_landing l LEFT JOIN ({latest}) k ON k.row_hash = l.row_hash "
        f"WHERE l.run_id = '{uuid.UUID(run_id)}') AS landing"
    )
    slices = row_slices("landing_row", n_rows, ROWS_PER_READ_PARTITION)
    return read_jdbc_slices(spark, pg.jdbc_url(), query, _jdbc(pg), slices)


def read_reference_prices(spark: SparkSession, pg: PostgresSettings, start: date, end: date) -> DataFrame:
    query = (
        "(SELECT price_date, crypto_type, reference_price FROM raw.crypto_reference_prices "
        f"WHERE price_date BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}') AS refs"
    )
    return spark.read.jdbc(pg.jdbc_url(), query, properties=_jdbc(pg))


def quarantine(
    conn, pg: PostgresSettings, rejects: DataFrame, logical_date: date, run_id: str, rows: int
) -> int:
    """The run's `rows` quarantine rows: COPYed into the stage by the executors, then published in ONE
    transaction (the run's earlier rows, of a retried step, replaced). Returns the rows published."""
    from jobs.common import stage

    scope = {"run_id": run_id}
    staged = stage.stage_of(REJECTS_TABLE)
    frame = rejects.select(
        F.lit(logical_date).alias("logical_date"),
        *[stage.text_array(c).alias(c) if c == "rule_codes" else c for c in rejects.columns],
    )
    stage.clear(conn, staged, scope)
    stage.copy_partitions(frame, pg, staged, scope, rows)
    with conn.transaction():
        conn.execute(f"DELETE FROM {REJECTS_TABLE} WHERE run_id = %s", (run_id,))
        return stage.publish(conn, staged, REJECTS_TABLE, [*frame.columns, "run_id"], scope)


def stage_candidates(
    conn, pg: PostgresSettings, candidates: DataFrame, logical_date: date, run_id: str, rows: int
) -> int:
    """The run's `rows` candidates into the staging table (the merge is their publication), COPYed by the
    executors; the date's earlier candidates go first. The merge checks the count against the run record."""
    from jobs.common import stage

    conn.execute(f"DELETE FROM {CANDIDATE_TABLE} WHERE logical_date = %s", (logical_date,))
    frame = candidates.select(F.lit(logical_date).alias("logical_date"), *candidates.columns)
    written = sum(stage.copy_partitions(frame, pg, CANDIDATE_TABLE, {"run_id": run_id}, rows).values())
    conn.execute(f"ANALYZE {CANDIDATE_TABLE}")  # the loader owns its staging table (90_grants.sql) for this
    return written
