"""The feature step's I/O: the loaded source batches it reads, and THE feature table every step reads.

Sources: per source, the latest loaded batch as of T (`dqm.churn_batches`), read over JDBC in parallel
slices. Feature snapshots are versioned Delta tables written with delta-rs (`deltalake`). Why not
delta-spark: it ships no jars and needs Maven, unreachable here (DESIGN.md). delta-rs writes real Delta
tables offline; Spark reads a PINNED version through that version's file list (plain Parquet: the table is
not partitioned, so every column is in the files, and delta-rs writes no deletion vectors). One table holds
every snapshot date; writing a date replaces that date's rows (a `predicate` overwrite), in a new table
version. The version used is recorded with every model (`dataset/` in MLflow).

`FeatureTable` is the one reader of a feature table for every step: a Delta table at a pinned version (and
snapshot date), or any customer table as a Parquet file/folder or a CSV file; Spark reads it (training,
batch scoring, drift), or Arrow without a JVM (promotion, the app, the API).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, overload

from jobs.churn.contract.features import SNAPSHOT
from jobs.churn.contract.sources import sources

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from jobs.common.config import PostgresSettings

log = logging.getLogger(__name__)

FEATURE_TABLE = "churn_features"
ROWS_PER_READ_PARTITION = 250_000
PARQUET_SUFFIXES = (".parquet", ".pq")
FORMATS = ("delta", "parquet", "csv")


class MissingSourceBatch(LookupError):
    """No loaded batch of a source file as of the requested date."""


class SnapshotNotFound(LookupError):
    """The table, version or snapshot date asked for does not exist."""


class UnreadableTable(ValueError):
    """A path that is no feature table: neither a Delta folder, Parquet nor CSV (or a version of a non-Delta)."""


# --- the sources --------------------------------------------------------------------------------------------


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


# --- writing a snapshot -------------------------------------------------------------------------------------


def table_path(lake_dir: Path, name: str = FEATURE_TABLE) -> Path:
    return lake_dir / name


def lake_table(lake_dir: Path, version: int | None = None, snapshot: date | None = None) -> TableRef:
    """THE feature table of the lake (CHURN_LAKE_DIR): a Delta table, at `version` (None: the latest)."""
    return TableRef(str(table_path(lake_dir)), version, snapshot, "delta")


def write_snapshot(features: DataFrame, path: Path, snapshot_date: date, column: str = SNAPSHOT) -> TableRef:
    """Replaces the rows of `snapshot_date` (every row of `features` must carry it) in ONE new version.

    The executors write the version's Parquet files, in parallel, into a folder of their own inside the table;
    delta-rs then commits them (removing the files of the date's earlier rows in the same commit). The driver
    handles metadata only: the files' footers (rows, the date's statistics) and the Delta log. Files of a
    write that fails before its commit are removed; no version ever references them."""
    import shutil
    import uuid

    folder = path / f"part-{snapshot_date.isoformat()}-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True, exist_ok=True)
    try:
        features.write.parquet(str(folder))
        return _commit(path, folder, snapshot_date, column)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _commit(path: Path, folder: Path, snapshot_date: date, column: str) -> TableRef:
    import time

    import pyarrow as pa

    DeltaTable, Schema = _deltalake("DeltaTable", "Schema")
    from deltalake.transaction import RemoveAction, create_table_with_add_actions

    adds, schema = _add_actions(path, folder, snapshot_date, column)
    if not adds:
        raise ValueError(f"no rows for snapshot {snapshot_date}: nothing to write")
    schema = Schema.from_arrow(schema)
    if not DeltaTable.is_deltatable(str(path)):
        create_table_with_add_actions(str(path), schema, adds, mode="error")
        return TableRef(str(path), 0, snapshot_date, "delta")
    table = DeltaTable(str(path))
    if table.schema().to_json() == schema.to_json():
        now = int(time.time() * 1000)
        removes = [
            RemoveAction(f, True, now, size) for f, size in _files_of_date(table, path, snapshot_date, column)
        ]
        table.create_write_transaction([*removes, *adds], mode="append", schema=schema)
    else:
        # the feature build changed its columns (an upgrade): the new version holds this snapshot only, in
        # the new schema; earlier versions keep the old rows for the models trained on them
        log.warning(
            "%s has other columns than the feature build now writes (%s): the new version holds snapshot %s "
            "only, in the new schema; the earlier snapshots stay readable in earlier versions",
            path, _schema_change(pa.schema(table.schema().to_arrow()), pa.schema(schema.to_arrow())), snapshot_date,
        )  # fmt: skip
        table.create_write_transaction(adds, mode="overwrite", schema=schema)
    return TableRef(str(path), DeltaTable(str(path)).version(), snapshot_date, "delta")


def _add_actions(path: Path, folder: Path, snapshot_date: date, column: str):
    """One add action per Parquet file the executors wrote, from its footer: rows and the date's statistics
    (every row must carry `snapshot_date`). Returns (actions, the files' Arrow schema, every column nullable)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    (AddAction,) = _deltalake_transaction("AddAction")
    adds, schema = [], None
    for file in sorted(folder.glob("*.parquet")):
        meta = pq.ParquetFile(file).metadata
        if meta.num_rows == 0:
            continue
        schema = schema or meta.schema.to_arrow_schema()
        days = _column_range(file, meta, column)
        if days != (snapshot_date, snapshot_date):
            raise ValueError(f"every row must have {column} = {snapshot_date}, {file.name} holds {days}")
        stats = {
            "numRecords": meta.num_rows,
            "minValues": {column: snapshot_date.isoformat()},
            "maxValues": {column: snapshot_date.isoformat()},
            "nullCount": {column: 0},
        }
        info = file.stat()
        relative = f"{folder.name}/{file.name}"
        adds.append(AddAction(relative, info.st_size, {}, int(info.st_mtime * 1000), True, json.dumps(stats)))
    if schema is not None:  # a scoring snapshot (no label yet) must fit the table a training one created
        schema = pa.schema([f.with_nullable(True) for f in schema])
    return adds, schema


def _column_range(file: Path, meta, column: str) -> tuple:
    """(min, max) of a column of a Parquet file, from its row groups' statistics (read from the data when a
    row group has none)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    index = meta.schema.to_arrow_schema().get_field_index(column)
    stats = [meta.row_group(i).column(index).statistics for i in range(meta.num_row_groups)]
    if index < 0 or not all(s is not None and s.has_min_max and s.null_count == 0 for s in stats):
        values = pq.read_table(file, columns=[column])[column]
        bounds = pc.min_max(values)
        nulls = values.null_count
        return (None, None) if nulls else (bounds["min"].as_py(), bounds["max"].as_py())
    return min(s.min for s in stats), max(s.max for s in stats)


def _files_of_date(table, path: Path, snapshot_date: date, column: str) -> list[tuple[str, int]]:
    """(path, size) of the table's files whose rows are of `snapshot_date`; a file mixing it with other dates
    (never written by this module) is an error, not a silent partial replacement."""
    found = []
    for file, size, low, high in _file_dates(table, path, column):
        if low == high == snapshot_date:
            found.append((file, size))
        elif low is not None and low <= snapshot_date <= high:
            raise ValueError(f"{file} mixes {column} {low}..{high}: cannot replace {snapshot_date} alone")
    return found


def _schema_change(old, new) -> str:
    before = {f.name: str(f.type) for f in old}
    after = {f.name: str(f.type) for f in new}
    parts = [f"-{c}" for c in before if c not in after] + [f"+{c}" for c in after if c not in before]
    parts += [f"{c}: {before[c]} -> {after[c]}" for c in before if c in after and before[c] != after[c]]
    return ", ".join(parts) or "column order"


def _deltalake(*names: str) -> list:
    import deltalake

    return [getattr(deltalake, name) for name in names]


def _deltalake_transaction(*names: str) -> list:
    import deltalake.transaction

    return [getattr(deltalake.transaction, name) for name in names]


# --- reading: one reader for every step ---------------------------------------------------------------------


def open_version(path: str | Path, version: int | None = None):
    """The Delta table at `path`, loaded at `version` (the latest when None)."""
    (DeltaTable,) = _deltalake("DeltaTable")
    if not DeltaTable.is_deltatable(str(path)):
        raise SnapshotNotFound(f"no Delta table at {path} (run `python -m jobs.churn.features` first)")
    table = DeltaTable(str(path))
    latest = table.version()
    if version is not None:
        if not 0 <= version <= latest:
            raise SnapshotNotFound(f"{path} has versions 0..{latest}, not {version}")
        table.load_as_version(version)
    return table


def latest_snapshot_date(path: str | Path, version: int | None = None) -> date:
    """The latest snapshot date of a version, from the Delta log's file statistics (metadata only)."""
    days = [high for _, _, _, high in _file_dates(open_version(path, version), Path(path))]
    if not days:
        raise SnapshotNotFound(f"{path} holds no rows")
    return max(days)


def _file_dates(table, path: Path, column: str = SNAPSHOT) -> list[tuple[str, int, date, date]]:
    """(file, size, min and max of `column`) of every data file of the table's loaded version, from the log's
    statistics (from the file itself when it has none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    found = []
    for action in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        if action.get("num_records") == 0:
            continue
        low, high = action.get(f"min.{column}"), action.get(f"max.{column}")
        if low is None or high is None:
            file = path / action["path"]
            low, high = _column_range(file, pq.ParquetFile(file).metadata, column)
        found.append((action["path"], action["size_bytes"], low, high))
    return found


def version_files(table) -> list[str]:
    """The local paths of the data files of a loaded Delta version."""
    return sorted(uri.removeprefix("file://") for uri in table.file_uris())


def arrow_dataset(table):
    """The files of a loaded Delta version as one pyarrow dataset in the table's schema. Read through
    pyarrow, not delta-rs' `to_pyarrow_table`: after that call a process aborts at exit ("terminate called
    without an active exception", 134; deltalake 1.6, pyarrow 25, measured here). The table is not
    partitioned and has no deletion vectors, so its files are its rows, as Spark reads them too."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    return ds.dataset(version_files(table), schema=pa.schema(table.schema().to_arrow()), format="parquet")


def table_format(path: str | Path) -> str:
    """delta: a folder with a `_delta_log`; parquet: a `.parquet`/`.pq` file or a folder holding such
    files; csv: a `.csv` file. Nothing at the path is SnapshotNotFound, anything else UnreadableTable."""
    where = Path(path)
    if not where.exists():
        raise SnapshotNotFound(f"{path}: no such file or folder")
    if where.is_dir():
        if (where / "_delta_log").is_dir():
            return "delta"
        if any(f.suffix.lower() in PARQUET_SUFFIXES and f.is_file() for f in where.rglob("*")):
            return "parquet"
        raise UnreadableTable(f"{path}: a folder with neither a _delta_log (Delta) nor .parquet/.pq files")
    if where.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet"
    if where.suffix.lower() == ".csv":
        return "csv"
    raise UnreadableTable(
        f"{path}: not a Delta folder, a .parquet/.pq file or folder of them, or a .csv file"
    )


@dataclass(frozen=True)
class TableRef:
    """A feature table: its path, and for a Delta table the version and snapshot date (None: every date)."""

    path: str
    version: int | None = None
    snapshot: date | None = None
    format: str | None = None  # delta | parquet | csv, from what is on disk (`FeatureTable`)

    @classmethod
    def parse(cls, text: str) -> TableRef:
        """`PATH[@VERSION]`."""
        path, _, version = text.partition("@")
        if version and not version.isdigit():
            raise UnreadableTable(f"{text!r}: the version after @ must be a number")
        return cls(path, int(version) if version else None)

    def describe(self) -> str:
        version = f"@v{self.version}" if self.version is not None else ""
        when = f", snapshot {self.snapshot}" if self.snapshot else ""
        return f"{self.path}{version}{when}"


class FeatureTable:
    """One feature table, pinned: the format read off the disk and, for Delta, the version fixed (the
    latest when the ref names none), checked before any Spark work. `read` gives the same rows to Spark
    and to Arrow."""

    def __init__(self, ref: TableRef | str) -> None:
        ref = TableRef(ref) if isinstance(ref, str) else ref
        fmt = ref.format or table_format(ref.path)  # a ref that names its format (ours: delta) is not probed
        if fmt != "delta":
            if ref.version is not None:
                raise UnreadableTable(f"{ref.path}: a version (@{ref.version}) applies to Delta tables only")
            self.ref = replace(ref, format=fmt, snapshot=None)
            return
        version = ref.version if ref.version is not None else open_version(ref.path).version()
        open_version(ref.path, version)  # the version exists
        self.ref = replace(ref, version=version, format=fmt)

    def at_latest_snapshot(self) -> FeatureTable:
        """This table at its latest snapshot date (a Delta table; others have no dates and stay as they are)."""
        if self.ref.format != "delta":
            return self
        return FeatureTable(replace(self.ref, snapshot=latest_snapshot_date(self.ref.path, self.ref.version)))

    def describe(self) -> dict:
        """Where the rows come from, as runs, reports and models record it."""
        info = {"path": self.ref.path, "format": self.ref.format, "version": self.ref.version}
        if self.ref.snapshot:
            info["snapshot_date"] = self.ref.snapshot.isoformat()
        return info

    @overload
    def read(self, spark: None = None) -> pa.Table: ...

    @overload
    def read(self, spark: SparkSession) -> DataFrame: ...

    def read(self, spark: SparkSession | None = None) -> DataFrame | pa.Table:
        """The rows (of the snapshot date, when one is set): a Spark DataFrame read by the executors, or
        without a session an Arrow table (no JVM)."""
        if spark is None:
            return self._arrow()
        ref = self.ref
        if ref.format == "csv":
            return spark.read.option("header", True).option("inferSchema", True).csv(ref.path)
        if ref.format == "parquet":
            return spark.read.parquet(ref.path)
        from pyspark.sql import functions as F

        files = self.files()
        if not files:
            raise SnapshotNotFound(f"{ref.path}@v{ref.version} has no data files")
        df = spark.read.parquet(*files)
        if ref.snapshot is not None:
            df = df.filter(F.col(SNAPSHOT) == F.lit(ref.snapshot))
        return df

    def _arrow(self) -> pa.Table:
        import pyarrow.compute as pc

        ref = self.ref
        if ref.format == "csv":
            from pyarrow import csv

            return csv.read_csv(ref.path)
        if ref.format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(ref.path)
        data = arrow_dataset(open_version(ref.path, ref.version))
        if ref.snapshot is None:
            return data.to_table()
        import pyarrow.dataset as ds

        return data.to_table(filter=ds.field(SNAPSHOT) == pc.scalar(ref.snapshot))

    def files(self) -> list[str]:
        """The data files of the pinned version (Delta), or the Parquet/CSV file(s)."""
        ref = self.ref
        if ref.format == "delta":
            return version_files(open_version(ref.path, ref.version))
        where = Path(ref.path)
        if where.is_file():
            return [str(where)]
        return sorted(
            str(f) for f in where.rglob("*") if f.suffix.lower() in PARQUET_SUFFIXES and f.is_file()
        )

    def fingerprint(self) -> dict:
        """What a model records about its data: `describe`, the files, their size and a content hash."""
        digest = hashlib.sha256()
        size = 0
        files = self.files()
        for uri in files:
            local = Path(uri.removeprefix("file://"))
            payload = local.read_bytes()
            size += len(payload)
            digest.update(local.name.encode())
            digest.update(payload)
        found = {**self.describe(), "files": len(files), "bytes": size, "sha256": digest.hexdigest()}
        if self.ref.format == "delta":
            import pyarrow as pa

            schema = pa.schema(open_version(self.ref.path, self.ref.version).schema().to_arrow())
            found["schema"] = {f.name: str(f.type) for f in schema}
        return found
