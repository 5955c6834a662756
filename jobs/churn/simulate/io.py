"""The generator's output: one CSV per source file with the task statement's column names, plus the truth."""

from __future__ import annotations

import json
from pathlib import Path


def write(out: Path, tables: dict, truth: dict, oracle: dict) -> list[Path]:
    """One CSV per source file with the task statement's column names, plus _truth.csv and _oracle.json."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns in {**tables, "_truth": truth}.items():
        path = out / f"{name}.csv"
        pacsv.write_csv(pa.table({c: pa.array(v) for c, v in columns.items()}), path)
        written.append(path)
    (out / "_oracle.json").write_text(json.dumps(oracle, indent=2) + "\n")
    return [*written, out / "_oracle.json"]
