"""Benchmark: what SPARK_JVM_OPTIONS=-XX:TieredStopAtLevel=1 (the C1 JIT only) saves on a short job.

The job is the crypto events job under spark-submit (`local[2]`) on the simulated upstream's window of one
date: the shape of every job of the tests and the demo (a JVM started for seconds of work on small data).
Runs alternate between the JVM's defaults (the baseline: C1 then C2) and C1 only, `--repeats` each; the
figures are the machine's busy core-seconds during each run (/proc/stat: run it alone on the machine) and
its wall time. Ends with `cpu_ratio=X.XX` and `wall_ratio=Y.YY` (C1 only / defaults, medians).

    .venv/bin/python bench/jvm_options.py [--repeats 3]

It uses its own database (kpidelivery_bench_jvm) on the configured PostgreSQL and takes ~3 min.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("POSTGRES_DB", "kpidelivery_bench_jvm")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

D = date(2026, 11, 20)
C1_ONLY = "-XX:TieredStopAtLevel=1"


def busy_core_seconds() -> float:
    """Seconds of CPU the whole machine has spent busy (every state but idle and I/O wait) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_job(options: str) -> tuple[float, float]:
    """One spark-submit of the crypto job with SPARK_JVM_OPTIONS=options: (busy core-seconds, wall seconds)."""
    from jobs.common.config import PROJECT_ROOT, load_settings
    from jobs.common.spark import submit_command

    os.environ["SPARK_JVM_OPTIONS"] = options
    spark = load_settings().spark
    argv, env = submit_command(
        PROJECT_ROOT / "jobs/crypto_events/__main__.py", ["--date", D.isoformat()], spark, "local[2]"
    )
    cpu, began = busy_core_seconds(), time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"the job failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return busy_core_seconds() - cpu, time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from jobs.common.config import load_settings
    from jobs.common.postgres import prepare_database, resolve_server

    pg, where = resolve_server(load_settings().postgres)
    print(where, flush=True)
    prepare_database(pg)
    upstream = subprocess.run(
        [sys.executable, "-m", "jobs.crypto_events.upstream", "--date", D.isoformat()],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if upstream.returncode != 0:
        raise SystemExit(upstream.stderr[-3000:])
    run_job("")  # warms the page cache and makes the window's first run; every timed run re-runs it
    figures: dict[str, list[tuple[float, float]]] = {"defaults": [], "c1_only": []}
    for k in range(args.repeats):
        for name, options in (("defaults", ""), ("c1_only", C1_ONLY)):
            cpu, wall = run_job(options)
            figures[name].append((cpu, wall))
            print(f"run {k + 1} {name:8s}: {cpu:6.1f} busy core-s, {wall:5.1f} s wall", flush=True)
    median = {
        name: tuple(statistics.median(x[i] for x in runs) for i in (0, 1)) for name, runs in figures.items()
    }
    for name, (cpu, wall) in median.items():
        print(f"median {name:8s}: {cpu:6.1f} busy core-s, {wall:5.1f} s wall")
    print(f"cpu_ratio={median['c1_only'][0] / median['defaults'][0]:.2f}")
    print(f"wall_ratio={median['c1_only'][1] / median['defaults'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
