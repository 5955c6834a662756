"""Feature snapshots as versioned Delta tables, written with delta-rs (`deltalake`).

Why not delta-spark: it ships no jars and needs Maven, unreachable here (DESIGN.md). delta-rs writes
real Delta tables offline; Spark reads a PINNED version through that version's file list (plain Parquet:
the table is not partitioned, so every column is in the files, and delta-rs writes no deletion vectors).

One table holds every snapshot date; writing a date replaces that date's rows (a `predicate` overwrite),
in a new table version. The version used is recorded with every model (`dataset/` in MLflow).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

FEATURE_TABLE = "churn_features"


class SnapshotNotFound(LookupError):
    """The Delta table, version or snapshot date asked for does not exist."""


@dataclass(frozen=True)
class SnapshotRef:
    path: str
    version: int
    snapshot_date: date | None = None

    def describe(self) -> str:
        when = f", snapshot {self.snapshot_date}" if self.snapshot_date else ""
        return f"{self.path}@v{self.version}{when}"


def table_path(lake_dir: Path, name: str = FEATURE_TABLE) -> Path:
    return lake_dir / name


def write_snapshot(
    table: pa.Table, path: Path, snapshot_date: date, column: str = "snapshot_date"
) -> SnapshotRef:
    """Replaces the rows of `snapshot_date` (all rows of `table` must carry it); returns the new version."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    # every column nullable: a scoring snapshot (no label yet) must fit the table a training one created
    table = table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))
    dates = pc.unique(table[column]).to_pylist()
    if dates != [snapshot_date]:
        raise ValueError(f"every row must have {column} = {snapshot_date}, found {dates}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if DeltaTable.is_deltatable(str(path)):
        current = pa.schema(DeltaTable(str(path)).schema().to_arrow())
        if _same_columns(current, table.schema):
            write_deltalake(
                str(path), table, mode="overwrite", predicate=f"{column} = '{snapshot_date.isoformat()}'"
            )
        else:
            # the feature module changed its columns (an upgrade): the new version holds this snapshot
            # only, in the new schema; earlier versions keep the old rows for the models trained on them
            dropped = sorted(
                str(d)
                for d in pc.unique(
                    DeltaTable(str(path)).to_pyarrow_table(columns=[column])[column]
                ).to_pylist()
                if d != snapshot_date
            )
            log.warning(
                "%s has other columns than the feature module now writes (%s): the new version holds "
                "snapshot %s only in the new schema; snapshot(s) %s stay readable in earlier versions",
                path, _schema_change(current, table.schema), snapshot_date, dropped or "none",
            )  # fmt: skip
            write_deltalake(str(path), table, mode="overwrite", schema_mode="overwrite")
    else:
        write_deltalake(str(path), table, mode="overwrite")
    return SnapshotRef(str(path), DeltaTable(str(path)).version(), snapshot_date)


def _same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    return [(f.name, str(f.type)) for f in a] == [(f.name, str(f.type)) for f in b]


def _schema_change(old: pa.Schema, new: pa.Schema) -> str:
    before = {f.name: str(f.type) for f in old}
    after = {f.name: str(f.type) for f in new}
    parts = [f"-{c}" for c in before if c not in after] + [f"+{c}" for c in after if c not in before]
    parts += [f"{c}: {before[c]} -> {after[c]}" for c in before if c in after and before[c] != after[c]]
    return ", ".join(parts) or "column order"


def open_version(path: str | Path, version: int | None = None):
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(path)):
        raise SnapshotNotFound(f"no Delta table at {path} (run `python -m jobs.churn.build_features` first)")
    table = DeltaTable(str(path))
    latest = table.version()
    if version is not None:
        if not 0 <= version <= latest:
            raise SnapshotNotFound(f"{path} has versions 0..{latest}, not {version}")
        table.load_as_version(version)
    return table


def latest_snapshot_date(path: str | Path, version: int | None = None) -> date:
    import pyarrow.compute as pc

    data = open_version(path, version).to_pyarrow_table(columns=["snapshot_date"])
    if data.num_rows == 0:
        raise SnapshotNotFound(f"{path} holds no rows")
    return pc.max(data["snapshot_date"]).as_py()


def read_with_spark(
    spark: SparkSession, path: str | Path, version: int | None = None, snapshot_date: date | None = None
) -> tuple[DataFrame, SnapshotRef]:
    """Spark reads exactly the files of the pinned version (latest when None)."""
    from pyspark.sql import functions as F

    table = open_version(path, version)
    files = table.file_uris()
    if not files:
        raise SnapshotNotFound(f"{path}@v{table.version()} has no data files")
    df = spark.read.parquet(*files)
    if snapshot_date is not None:
        df = df.filter(F.col("snapshot_date") == F.lit(snapshot_date))
    return df, SnapshotRef(str(path), table.version(), snapshot_date)


def read_with_arrow(
    path: str | Path, version: int | None = None, snapshot_date: date | None = None
) -> pa.Table:
    """JVM-free read (the app, promotion): the same pinned version, as Arrow."""
    import pyarrow.compute as pc

    data = open_version(path, version).to_pyarrow_table()
    if snapshot_date is not None:
        data = data.filter(pc.equal(data["snapshot_date"], snapshot_date))
    return data


def fingerprint(path: str | Path, version: int) -> dict:
    """What the model records about its data: version, files, size and a content hash of the files."""
    import pyarrow as pa

    table = open_version(path, version)
    digest = hashlib.sha256()
    files = sorted(table.file_uris())
    size = 0
    for uri in files:
        local = Path(uri.removeprefix("file://"))
        payload = local.read_bytes()
        size += len(payload)
        digest.update(local.name.encode())
        digest.update(payload)
    return {
        "path": str(path),
        "version": table.version(),
        "files": len(files),
        "bytes": size,
        "sha256": digest.hexdigest(),
        "schema": {f.name: str(f.type) for f in pa.schema(table.schema().to_arrow())},
    }
