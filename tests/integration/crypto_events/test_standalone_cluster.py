"""The job submitted to a real Spark standalone master + worker (client mode), not only local[*]."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.common.config import PROJECT_ROOT
from jobs.common.spark import spark_env, submit_command
from tests.integration.helpers import insert_rows, reference_prices

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """Master + one worker started with spark-daemon.sh (the pip install has no start-master.sh)."""
    run_dir = tmp_path_factory.mktemp("spark-standalone")
    port, ui_port, worker_ui = _free_port(), _free_port(), _free_port()
    env = {**os.environ, **spark_env(), "SPARK_PID_DIR": str(run_dir), "SPARK_LOG_DIR": str(run_dir)}
    daemon = Path(env["SPARK_HOME"]) / "sbin" / "spark-daemon.sh"
    master_url = f"spark://127.0.0.1:{port}"
    master = ["org.apache.spark.deploy.master.Master", "1"]
    worker = ["org.apache.spark.deploy.worker.Worker", "1"]
    subprocess.run(
        [daemon, "start", *master, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            daemon,
            "start",
            *worker,
            "--host",
            "127.0.0.1",
            "--webui-port",
            str(worker_ui),
            "--cores",
            "2",
            "--memory",
            "2g",
            master_url,
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if any(w["state"] == "ALIVE" for w in _master_state(ui_port)["workers"]):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in run_dir.glob("*.out"))
                raise AssertionError(f"standalone worker did not register:\n{logs}")
            time.sleep(0.5)
        yield master_url, ui_port
    finally:
        for cls in (worker, master):
            subprocess.run([daemon, "stop", *cls], env=env, capture_output=True)


def test_job_runs_on_the_standalone_worker(db, pg, settings, standalone):
    master_url, ui_port = standalone
    d = date(2026, 11, 20)
    reference_prices(db, d - timedelta(days=4), d)
    insert_rows(db, [("MLB", str(u), "18/11/2026", "ETH", "3000", "1.5") for u in range(1, 31)])
    argv, env = submit_command(
        PROJECT_ROOT / "jobs/crypto_events/__main__.py",
        ["--date", d.isoformat()],
        settings.spark,
        master=master_url,
    )
    env.update(POSTGRES_HOST=pg.host, POSTGRES_PORT=str(pg.port), SPARK_EXECUTOR_MEMORY="1g")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status=merged" in proc.stdout
    (inserted,) = db.execute("SELECT rows_inserted FROM dqm.dq_runs WHERE logical_date = %s", (d,)).fetchone()
    assert inserted == 30
    apps = _master_state(ui_port)["completedapps"]
    assert any(app["name"].startswith("crypto_events 2026-11-20") for app in apps), apps
