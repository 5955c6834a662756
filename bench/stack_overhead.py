"""What the native stack costs: start time, resident memory per process, and the orchestration overhead of a
DAG run (REST trigger to success) against the same Spark job submitted directly to the same master.

    make bench-stack        (~4 min; uses the configured PostgreSQL and Redis db 15, private ports/folders)

Baseline: `spark-submit jobs/crypto_events/__main__.py --date D` on the stack's standalone master, after
landing the same kind of extract. Ratio = DAG trigger-to-success / direct job wall time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(env: dict, *argv: str) -> tuple[float, subprocess.CompletedProcess]:
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.monotonic() - began, proc


def main() -> int:
    from infrastructure.native.stack import isolated_env

    env = {
        **os.environ,
        **isolated_env(ROOT / "var" / "bench-stack"),  # `destroy` wipes only the bench's own folders
        "POSTGRES_DB": "kpidelivery_bench",
        "POSTGRES_EMBEDDED": "never",
        "STACK_REDIS_URL": "redis://127.0.0.1:6379/15",
    }
    stack = ["-m", "infrastructure.native.stack"]
    _run(env, *stack, "destroy")
    try:
        start_seconds, _ = _run(env, *stack, "up")
        _, ps = _run(env, *stack, "ps")
        # no --date: the slot the scheduler would catch up on unpause, so no other run queues before ours
        dag_seconds, run = _run(env, "-m", "infrastructure.control", "dag-run")
        overhead = re.search(r"(\d+) s in tasks, orchestration overhead (-?\d+) s", run.stderr + run.stdout)

        # baseline: the same job, submitted directly to the same master, for another date
        master = f"spark://127.0.0.1:{env['STACK_SPARK_MASTER_PORT']}"
        _run(env, "-m", "jobs.crypto_events.upstream", "--date", "2026-11-19")
        submit = str(Path(sys.executable).parent / "spark-submit")
        began = time.monotonic()
        direct = subprocess.run(
            [submit, "--master", master, "--deploy-mode", "client", "--jars", "/usr/share/java/postgresql.jar",
             str(ROOT / "jobs/crypto_events/__main__.py"), "--date", "2026-11-19"],
            env={**env, "SPARK_MASTER_URL": master, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        direct_seconds = time.monotonic() - began
        if direct.returncode != 0:
            raise SystemExit(f"direct spark-submit failed:\n{direct.stderr[-3000:]}")
    finally:
        _run(env, *stack, "destroy")

    print("\n== native stack")
    print(f"start (init + every health check green): {start_seconds:.1f} s")
    print(ps.stdout)
    print("== crypto_events_dag for one logical date")
    print(f"REST trigger to success:        {dag_seconds:6.1f} s")
    if overhead:
        print(f"  of which in tasks:            {float(overhead.group(1)):6.1f} s")
        print(
            f"  orchestration overhead:       {float(overhead.group(2)):6.1f} s (queueing, scheduling, task start-up)"
        )
    print(f"direct spark-submit (baseline): {direct_seconds:6.1f} s")
    print(f"ratio DAG / direct:             {dag_seconds / direct_seconds:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
