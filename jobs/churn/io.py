"""Reads of the churn job: the loaded raw batches of the five sources, as Spark DataFrames."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from jobs.churn.sources import sources

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.common.config import PostgresSettings

ROWS_PER_READ_PARTITION = 250_000


class MissingSourceBatch(LookupError):
    """No loaded batch of a source file as of the requested date."""


def latest_batches(conn, as_of: date) -> dict[str, dict]:
    """Per source, the most recently loaded batch with `as_of` on or before the date."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (source) source, batch_id::text, as_of, rows_valid
        FROM dqm.churn_batches
        WHERE status = 'loaded' AND as_of <= %s
        ORDER BY source, as_of DESC, finished_at DESC
        """,
        (as_of,),
    ).fetchall()
    found = {source: {"batch_id": b, "as_of": a, "rows": int(n)} for source, b, a, n in rows}
    missing = [name for name in sources() if name not in found]
    if missing:
        raise MissingSourceBatch(
            f"no loaded batch as of {as_of} for {missing}: run `python -m jobs.churn.ingest --as-of ...` first"
        )
    return found


def read_sources(spark: SparkSession, pg: PostgresSettings, batches: dict[str, dict]) -> dict[str, DataFrame]:
    """The typed rows of each batch, read over JDBC in parallel slices of `source_row`."""
    frames = {}
    props = {**pg.jdbc_properties(), "fetchsize": "20000"}
    for name, source in sources().items():
        batch = batches[name]
        parts = max(1, min(16, -(-batch["rows"] // ROWS_PER_READ_PARTITION)))
        columns = ", ".join(source.columns)
        query = (
            f"(SELECT {columns}, source_row FROM {source.table} WHERE batch_id = '{batch['batch_id']}') AS t"
        )
        predicates = [f"source_row % {parts} = {i}" for i in range(parts)]
        frames[name] = spark.read.jdbc(pg.jdbc_url(), query, predicates=predicates, properties=props).drop(
            "source_row"
        )
    return frames
