"""The drift monitor on any two tables, through its CLI: Spark reads them, Evidently compares, the reports
go to the (local) object store; no PostgreSQL, no MLflow (`--no-mlflow`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.churn.monitoring import __main__ as drift

pytestmark = pytest.mark.integration

DAY = "2026-11-22"


def _frame(seed: int, shift: float = 0.0, rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer": [f"c{seed}-{i}" for i in range(rows)],
            "churned": rng.integers(0, 2, rows),
            "x": rng.normal(shift, 1.0, rows),
            "y": rng.normal(0.0, 1.0, rows),
            "city": rng.choice(["a", "b", "c"], rows),
        }
    )


@pytest.fixture
def tables(tmp_path) -> dict[str, Path]:
    """A reference folder of two .pq parts, a current .pq file with x shifted by 3 standard deviations."""
    folder = tmp_path / "reference"
    folder.mkdir()
    reference = _frame(1)
    reference.iloc[:200].to_parquet(folder / "part-0.pq")
    reference.iloc[200:].to_parquet(folder / "part-1.pq")
    _frame(2, shift=3.0).to_parquet(tmp_path / "current.pq")
    return {"reference": folder, "current": tmp_path / "current.pq"}


def _spec(folder: Path, text: str) -> Path:
    path = folder / "columns.yaml"
    path.write_text(text)
    return path


def _argv(tables: dict[str, Path], spec: Path, day: str = DAY) -> list[str]:
    return ["--date", day, "--reference", str(tables["reference"]), "--current", str(tables["current"]),
            "--columns", str(spec), "--no-mlflow", "--master", "local[2]"]  # fmt: skip


def test_pq_files_are_read_as_parquet_and_give_a_report(spark, tables, tmp_path, capsys, object_store_root):
    spec = _spec(tmp_path, "numeric: [x, y]\ncategorical: [city]\n")  # the columns only
    assert drift.main(_argv(tables, spec)) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["reference"]["format"], result["current"]["format"]) == ("parquet", "parquet")
    assert (result["reference"]["rows"], result["current"]["rows"]) == (400, 400)
    assert result["drifted_columns"] == ["x"] and result["drift_magnitude_column"] == "x"
    assert result["drift_magnitude"] >= 8 and result["severity"] == "critical"  # 1 of 3 alone: severe
    assert any("x drifted" in r for r in result["reasons"])
    folder = object_store_root / "mlflow-artifacts" / "drift-reports" / DAY
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "summary.json"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["drift_magnitude"] == result["drift_magnitude"]
    assert summary["columns"]["x"]["ratio"] == result["drift_magnitude"]


def test_an_id_and_label_present_in_the_data_are_accepted(spark, tables, tmp_path, capsys):
    spec = _spec(tmp_path, "id: customer\nlabel: churned\nnumeric: [y]\n")
    assert drift.main(_argv(tables, spec, "2026-11-23")) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["severity"] == "none" and result["drifted_columns"] == []


@pytest.mark.parametrize("role", ["id", "label"])
def test_an_id_or_label_missing_from_the_data_is_exit_2(spark, tables, tmp_path, caplog, role):
    spec = _spec(tmp_path, f"{role}: customer_id\nnumeric: [x, y]\n")
    assert drift.main(_argv(tables, spec)) == 2
    assert f"bad input: {tables['reference']} lacks the {role} column 'customer_id'" in caplog.text
