"""Benchmark: Evidently 0.7 data-drift report on 100k rows x 20 columns (import excluded).

Times the part the drift job owns after sampling: `run_report` (DataDriftPreset with tests) and reading
the result (`column_drifts`), then rendering the HTML and JSON. Reference and current are synthetic:
15 numeric and 5 categorical columns, the current one with 4 columns shifted.

    python bench/drift_report.py [--rows 100000]

Ends with drift_seconds=... (report + reading, the target: <= 15 s), render_seconds=..., drifted=...
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def frame(rows: int, rng, shift: bool) -> pd.DataFrame:
    data = {f"num_{i:02d}": rng.normal(0.5 if shift and i < 3 else 0.0, 1.0, rows) for i in range(15)}
    for i in range(5):
        p = [0.6, 0.3, 0.1] if shift and i == 0 else [0.4, 0.35, 0.25]
        data[f"cat_{i}"] = rng.choice(["a", "b", "c"], rows, p=p)
    return pd.DataFrame(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    import evidently.presets  # noqa: F401  (the import is excluded from the figure)

    from jobs.churn.monitoring.drift import column_drifts, run_report

    import_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    reference, current = frame(args.rows, rng, False), frame(args.rows, rng, True)
    numeric = [c for c in reference if c.startswith("num_")]
    categorical = [c for c in reference if c.startswith("cat_")]

    t0 = time.perf_counter()
    snapshot = run_report(reference, current, numeric, categorical)
    share, drifts = column_drifts(snapshot.dict())
    drift_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot.save_html(str(Path(tmp) / "report.html"))
        html_mb = (Path(tmp) / "report.html").stat().st_size / 2**20
        payload = json.dumps(snapshot.dict(), default=str)
    render_s = time.perf_counter() - t0

    drifted = sorted(d.column for d in drifts if d.drifted)
    print(
        f"\n== Evidently drift report, {args.rows:,} rows x {len(numeric) + len(categorical)} columns per side"
    )
    print(f"  import (excluded)  {import_s:6.1f} s")
    print(f"  report + reading   {drift_s:6.1f} s   methods: {sorted({d.method for d in drifts})}")
    print(
        f"  HTML + JSON        {render_s:6.1f} s   HTML {html_mb:.1f} MB, JSON {len(payload) / 2**10:.0f} KB"
    )
    print(f"  drifted            {drifted} (share {share:.2f})")
    print(f"drift_seconds={drift_s:.1f}")
    print(f"render_seconds={render_s:.1f}")
    print(f"drifted={len(drifted)}")


if __name__ == "__main__":
    main()
