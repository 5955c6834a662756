"""THE feature table's one reader: a Delta table pinned at a version (and snapshot date), Parquet or CSV, read
the same by Spark and by Arrow; what it is, from what is on disk, before any Spark work."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from jobs.churn.features.io import (
    FeatureTable,
    SnapshotNotFound,
    TableRef,
    UnreadableTable,
    table_format,
    write_snapshot,
)

T1, T2 = date(2026, 8, 1), date(2026, 9, 1)


def _rows(day: date, ids: list[str], value: float) -> pa.Table:
    return pa.table(
        {
            "customer_id": ids,
            "snapshot_date": [day] * len(ids),
            "pay_count_6m": [value] * len(ids),
            "segment_counts_6m": pa.array([[("instore", 2)]] * len(ids), pa.map_(pa.string(), pa.int64())),
            "churned": pa.array([1] * len(ids), pa.int32()),
        }
    )


@pytest.fixture
def lake(spark, tmp_path):
    """Versions: 0 = T1 (a, b), 1 = + T2 (c), 2 = T1 replaced (a only, value 9); written by Spark, committed by
    delta-rs."""
    path = tmp_path / "churn_features"
    refs = [
        write_snapshot(spark.createDataFrame(_rows(T1, ["a", "b"], 1.0)), path, T1),
        write_snapshot(spark.createDataFrame(_rows(T2, ["c"], 2.0)), path, T2),
        write_snapshot(spark.createDataFrame(_rows(T1, ["a"], 9.0)).repartition(3), path, T1),
    ]
    assert [r.version for r in refs] == [0, 1, 2]
    return path


def test_each_version_is_one_commit_that_replaces_the_dates_files(lake):
    from deltalake import DeltaTable

    history = sorted(DeltaTable(str(lake)).history(), key=lambda h: h["version"])
    assert [h["version"] for h in history] == [0, 1, 2]
    table = FeatureTable(TableRef(str(lake), 2))
    folders = {Path(f.removeprefix("file://")).parent.name for f in table.files()}
    assert len(folders) == 2 and all(f.startswith("part-2026-0") for f in folders)  # T1's first files removed


def test_rows_of_another_date_are_refused_and_leave_nothing_behind(spark, lake):
    before = sorted(p.name for p in lake.iterdir())
    with pytest.raises(ValueError, match="every row must have snapshot_date = 2026-08-01"):
        write_snapshot(spark.createDataFrame(_rows(T2, ["x"], 1.0)), lake, T1)
    assert sorted(p.name for p in lake.iterdir()) == before  # the written files went with the failed commit
    assert FeatureTable(str(lake)).ref.version == 2


def _ids(rows: list[dict]) -> list[tuple]:
    return sorted((r["customer_id"], str(r["snapshot_date"]), r["pay_count_6m"]) for r in rows)


def test_a_pinned_version_and_date_read_the_same_rows_in_spark_and_arrow(spark, lake):
    cases = {
        (0, None): [("a", "2026-08-01", 1.0), ("b", "2026-08-01", 1.0)],
        (1, T1): [("a", "2026-08-01", 1.0), ("b", "2026-08-01", 1.0)],
        (1, T2): [("c", "2026-09-01", 2.0)],
        (2, T1): [("a", "2026-08-01", 9.0)],
        (None, None): [("a", "2026-08-01", 9.0), ("c", "2026-09-01", 2.0)],
    }
    for (version, day), expected in cases.items():
        table = FeatureTable(TableRef(str(lake), version, day))
        assert table.ref.version == (2 if version is None else version)
        assert _ids(table.read().to_pylist()) == expected, (version, day)
        assert _ids([r.asDict() for r in table.read(spark).collect()]) == expected, (version, day)


def test_the_latest_snapshot_and_what_a_model_records(lake):
    table = FeatureTable(TableRef(str(lake), 1)).at_latest_snapshot()
    assert (table.ref.version, table.ref.snapshot) == (1, T2)
    assert table.describe() == {
        "path": str(lake),
        "format": "delta",
        "version": 1,
        "snapshot_date": "2026-09-01",
    }
    found = table.fingerprint()
    assert found["files"] >= 2 and len(found["sha256"]) == 64 and found["bytes"] > 0
    assert found["schema"]["segment_counts_6m"].startswith("map<string, int64")
    assert FeatureTable(TableRef(str(lake), 2)).fingerprint()["sha256"] != found["sha256"]


def test_parquet_and_csv_tables_have_no_versions(spark, tmp_path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = pa.table({"id": ["x", "y"], "f": [1.5, 2.5]})
    pq.write_table(rows, tmp_path / "t.parquet")
    pacsv.write_csv(rows, tmp_path / "t.csv")
    for name in ("t.parquet", "t.csv"):
        table = FeatureTable(str(tmp_path / name))
        assert table.ref.format == name.split(".")[1] and table.at_latest_snapshot() is table
        assert sorted(r["id"] for r in table.read().to_pylist()) == ["x", "y"]
        assert sorted(r["id"] for r in table.read(spark).collect()) == ["x", "y"]
        assert table.fingerprint()["files"] == 1
        with pytest.raises(UnreadableTable, match="applies to Delta tables only"):
            FeatureTable(TableRef(str(tmp_path / name), 0))


def test_a_version_or_table_that_does_not_exist_is_said(lake, tmp_path):
    with pytest.raises(SnapshotNotFound, match=r"has versions 0\.\.2, not 7"):
        FeatureTable(TableRef(str(lake), 7))
    (tmp_path / "empty" / "_delta_log").mkdir(parents=True)
    with pytest.raises(SnapshotNotFound, match="no Delta table"):
        FeatureTable(str(tmp_path / "empty"))


def test_table_format_is_read_from_what_is_on_disk(tmp_path):
    (tmp_path / "delta" / "_delta_log").mkdir(parents=True)
    (tmp_path / "delta" / "part-0.parquet").touch()
    for name in ("a.pq", "b.parquet", "c.csv", "d.PQ", "notes.txt"):
        (tmp_path / name).touch()
    (tmp_path / "pqs" / "day=1").mkdir(parents=True)
    (tmp_path / "pqs" / "day=1" / "part-0.pq").touch()
    (tmp_path / "empty").mkdir()
    assert [table_format(str(tmp_path / n)) for n in ("delta", "a.pq", "b.parquet", "d.PQ", "pqs", "c.csv")] == [
        "delta", "parquet", "parquet", "parquet", "parquet", "csv"
    ]  # fmt: skip
    for name, message in [
        ("missing.parquet", "no such file or folder"),
        ("nowhere", "no such file or folder"),
        ("empty", "neither a _delta_log"),
        ("notes.txt", "not a Delta folder"),
    ]:
        with pytest.raises((SnapshotNotFound, UnreadableTable), match=message):
            table_format(str(tmp_path / name))


def test_a_process_that_read_the_table_with_arrow_exits_cleanly(lake):
    """A process that read a version with delta-rs' `to_pyarrow_table` aborted at exit (134) after its work:
    the promotion task and the app's look-ups read with Arrow. The reader goes through pyarrow now."""
    import subprocess
    import sys

    from jobs.common.config import PROJECT_ROOT

    code = (
        f"from jobs.churn.features.io import FeatureTable; print(FeatureTable({str(lake)!r}).read().num_rows)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "2"), proc.stderr[-2000:]
