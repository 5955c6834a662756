"""Reads of the churn job: the loaded raw batches of the five sources, as Spark DataFrames."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

from jobs.churn.sources import sources

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.common.config import PostgresSettings

log = logging.getLogger(__name__)

ROWS_PER_READ_PARTITION = 250_000


class MissingSourceBatch(LookupError):
    """No loaded batch of a source file as of the requested date."""


def latest_batches(conn, as_of: date) -> dict[str, dict]:
    """Per source, the most recently loaded batch with `as_of` on or before the date.

    A source without one is an error that says why: never ingested, or its latest batch was blocked by
    the gate (or failed), with the gate's message and where its rejects and GX results are. A loaded
    batch that a newer blocked or failed one did not replace is used, with a warning naming the newer one.
    """
    rows = conn.execute(
        """
        SELECT DISTINCT ON (source) source, batch_id::text, as_of, rows_valid, started_at
        FROM dqm.churn_batches
        WHERE status = 'loaded' AND as_of <= %s
        ORDER BY source, as_of DESC, finished_at DESC
        """,
        (as_of,),
    ).fetchall()
    found = {
        source: {"batch_id": b, "as_of": a, "rows": int(n), "started_at": t} for source, b, a, n, t in rows
    }
    unloaded = {
        r[0]: dict(zip(("source", "batch_id", "as_of", "status", "message", "gx_results_uri", "started_at"), r, strict=True))
        for r in conn.execute(
            """
            SELECT DISTINCT ON (source) source, batch_id::text, as_of, status, message, gx_results_uri, started_at
            FROM dqm.churn_batches
            WHERE status <> 'loaded' AND as_of <= %s
            ORDER BY source, as_of DESC, started_at DESC
            """,
            (as_of,),
        ).fetchall()
    }  # fmt: skip
    for name, batch in found.items():
        newer = unloaded.get(name)
        if newer and (newer["as_of"], newer["started_at"]) > (batch["as_of"], batch["started_at"]):
            log.warning(
                "%s: using loaded batch %s (as of %s); the newer batch %s (as of %s) is %s: %s",
                name, batch["batch_id"], batch["as_of"], newer["batch_id"], newer["as_of"], newer["status"],
                newer["message"] or "no message",
            )  # fmt: skip
    missing = [name for name in sources() if name not in found]
    if missing:
        reasons = [_why_not_loaded(name, unloaded.get(name)) for name in missing]
        raise MissingSourceBatch(f"no loaded batch as of {as_of} for {missing}: " + "; ".join(reasons))
    return found


def _why_not_loaded(name: str, batch: dict | None) -> str:
    if batch is None:
        return f"{name} was never ingested: run `python -m jobs.churn.ingest --as-of ...` first"
    how = {"blocked": "was blocked by the gate", "failed": "failed", "running": "is still running (or died)"}
    text = (
        f"{name} batch {batch['batch_id']} (as of {batch['as_of']}) {how.get(batch['status'], batch['status'])}"
        f" ({batch['message'] or 'no message'}); its rejects: "
        f"SELECT * FROM dqm.churn_rejects WHERE batch_id = '{batch['batch_id']}'"
    )
    if batch["gx_results_uri"]:
        text += f"; GX results: {batch['gx_results_uri']}"
    return text + "; fix the file and ingest it again"


def read_sources(spark: SparkSession, pg: PostgresSettings, batches: dict[str, dict]) -> dict[str, DataFrame]:
    """The typed rows of each batch, read over JDBC in parallel slices of `source_row` (Spark's
    monotonically increasing ids: residues, not ranges)."""
    from jobs.common.spark import read_jdbc_slices, row_slices

    frames = {}
    props = {**pg.jdbc_properties(), "fetchsize": "20000"}
    for name, source in sources().items():
        batch = batches[name]
        columns = ", ".join(source.columns)
        query = (
            f"(SELECT {columns}, source_row FROM {source.table} WHERE batch_id = '{batch['batch_id']}') AS t"
        )
        slices = row_slices("source_row", batch["rows"], ROWS_PER_READ_PARTITION, numbered=False)
        frames[name] = read_jdbc_slices(spark, pg.jdbc_url(), query, props, slices).drop("source_row")
    return frames
