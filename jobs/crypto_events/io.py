"""Spark reads and writes of the crypto events job: the run's landing snapshot in, candidates and rejects out."""

from __future__ import annotations

import logging
import uuid
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.common.config import PostgresSettings
from jobs.common.postgres import copy_arrow
from jobs.common.spark import read_jdbc_slices, row_slices

log = logging.getLogger(__name__)

ROWS_PER_READ_PARTITION = 100_000
CANDIDATE_TABLE = "staging.bt_crypto_events_candidate"
REJECTS_TABLE = "dqm.bt_crypto_events_rejects"


def _jdbc(pg: PostgresSettings, **extra: str) -> dict[str, str]:
    return {**pg.jdbc_properties(), "fetchsize": "20000", "batchsize": "10000", **extra}


def read_landing(spark: SparkSession, pg: PostgresSettings, run_id: str, n_rows: int) -> DataFrame:
    """The run's landing snapshot, read in parallel ranges of `landing_row` (1..n_rows)."""
    columns = "landing_row, scope, site_id, user_id, purchase_date, crypto_type, purchase_price, purchase_units, row_hash"
    query = f"(SELECT {columns} FROM raw.bt_crypto_landing WHERE run_id = '{uuid.UUID(run_id)}') AS landing"
    slices = row_slices("landing_row", n_rows, ROWS_PER_READ_PARTITION)
    return read_jdbc_slices(spark, pg.jdbc_url(), query, _jdbc(pg), slices)


def read_reference_prices(spark: SparkSession, pg: PostgresSettings, start: date, end: date) -> DataFrame:
    query = (
        "(SELECT price_date, crypto_type, reference_price FROM raw.crypto_reference_prices "
        f"WHERE price_date BETWEEN DATE '{start.isoformat()}' AND DATE '{end.isoformat()}') AS refs"
    )
    return spark.read.jdbc(pg.jdbc_url(), query, properties=_jdbc(pg))


def replace_run_rows(
    conn, pg: PostgresSettings, df: DataFrame, table: str, logical_date: date, run_id: str
) -> None:
    """Deletes the run's rows of `table`, then appends `df` tagged with date and run id.

    Not one transaction (Spark writes from executors); a retry repeats both steps, so the table holds exactly
    one copy of the run's rows, and the reconciliation checks the count. No other run's rows are touched.
    """
    conn.execute(f"DELETE FROM {table} WHERE run_id = %s", (run_id,))
    tagged = df.select(F.lit(logical_date).alias("logical_date"), F.lit(run_id).alias("run_id"), "*")
    tagged.write.jdbc(pg.jdbc_url(), table, mode="append", properties=_jdbc(pg))
    # no ANALYZE: only a table's owner may, and the loader owns none but its staging table (autovacuum does)


def replace_partition_by_copy(conn, df: DataFrame, table: str, logical_date: date, run_id: str) -> int:
    """DELETE + COPY in ONE transaction: the rows travel as Arrow record batches rendered to CSV.

    Measured on 1M candidate rows: 4.6 s against 7.7 s for Spark's JDBC batch inserts (docs/crypto_events.md).
    The rows pass through the driver (~100 MB of Arrow per million rows). Only for tables whose text
    columns are never NULL or empty (CSV cannot tell those apart): the candidates, not the rejects.
    """
    tagged = df.select(F.lit(logical_date).alias("logical_date"), F.lit(run_id).alias("run_id"), "*")
    arrow = tagged.toArrow()
    with conn.transaction():
        conn.execute(f"DELETE FROM {table} WHERE logical_date = %s", (logical_date,))
        copy_arrow(conn, table, arrow)
    conn.execute(f"ANALYZE {table}")  # the loader owns its staging table (90_grants.sql) for this
    return arrow.num_rows
