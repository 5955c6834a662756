"""A throwaway Spark standalone cluster on this machine: a master and N workers on free loopback ports, started
with the pip install's `spark-daemon.sh` (it has no start-master.sh) and stopped when the block ends. For the
tests and benchmarks that must run on a real cluster (executors in other JVMs than the driver's), beside the
native stack's own master and worker.

    with standalone_cluster(workers=2, cores=1) as cluster:
        subprocess.run([..., "--master", cluster.url])
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jobs.common.postgres import free_port
from jobs.common.spark import spark_env

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


@dataclass(frozen=True)
class Cluster:
    url: str  # spark://127.0.0.1:port
    ui_port: int
    run_dir: Path

    def state(self) -> dict:
        """The master's JSON state: workers, running and completed applications."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as response:
            return json.load(response)


@contextlib.contextmanager
def standalone_cluster(
    workers: int = 1, cores: int = 2, memory: str = "2g", timeout: float = 90
) -> Iterator[Cluster]:
    """A master and `workers` workers of `cores` cores and `memory` each, all registered before it yields."""
    run_dir = Path(tempfile.mkdtemp(prefix="kpi-spark-standalone-"))
    env = {**os.environ, **spark_env(), "SPARK_PID_DIR": str(run_dir), "SPARK_LOG_DIR": str(run_dir)}
    daemon = Path(env["SPARK_HOME"]) / "sbin" / "spark-daemon.sh"
    port, ui_port = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", ui_port, run_dir)
    started: list[list[str]] = []

    def start(cls: str, instance: int, *args: str) -> None:
        subprocess.run([daemon, "start", cls, str(instance), *args], env=env, check=True, capture_output=True)
        started.append([cls, str(instance)])

    try:
        start(MASTER, 1, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port))
        for i in range(1, workers + 1):
            work = run_dir / f"worker-{i}"
            work.mkdir()
            start(WORKER, i, "--host", "127.0.0.1", "--webui-port", str(free_port()), "--cores", str(cores),
                  "--memory", memory, "--work-dir", str(work), cluster.url)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                if sum(w["state"] == "ALIVE" for w in cluster.state()["workers"]) == workers:
                    break
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in run_dir.glob("*.out"))
                raise RuntimeError(
                    f"{workers} standalone worker(s) did not register in {timeout:.0f} s:\n{logs}"
                )
            time.sleep(0.5)
        yield cluster
    finally:
        for cls, instance in reversed(started):
            subprocess.run([daemon, "stop", cls, instance], env=env, capture_output=True)
