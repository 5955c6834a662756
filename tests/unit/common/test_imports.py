"""Importing the code has no side effects: DAG parsing, the app and the notebooks import these modules, so
an import may not set environment variables (it would change what every later caller sees)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from jobs.common.config import PROJECT_ROOT

PROBE = """
import importlib, json, os, pkgutil, sys
import jobs
# what libraries do when imported is theirs (streamlit sets MPLBACKEND, mlflow a telemetry id): imported first
for library in ("streamlit", "mlflow", "mlflow.pyfunc", "pyspark.sql", "great_expectations", "evidently",
                "airflow.sdk", "deltalake", "matplotlib.pyplot"):
    importlib.import_module(library)
before = dict(os.environ)
names = [m.name for m in pkgutil.walk_packages(jobs.__path__, "jobs.") if not m.name.endswith("__main__")]
names += ["app.common", "airflow_dags_churn", "airflow_dags_crypto"]
failed = {}
for name in names:
    try:
        if name.startswith("airflow_dags_"):
            import runpy
            runpy.run_path(os.path.join("airflow", "dags", name.removeprefix("airflow_dags_") +
                           ("_dags.py" if name.endswith("churn") else "_events_dag.py")))
        else:
            importlib.import_module(name)
    except Exception as exc:
        failed[name] = repr(exc)
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({"modules": len(names), "failed": failed, "changed": changed}))
"""


def test_importing_every_module_sets_no_environment_variable():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["modules"] > 60 and result["failed"] == {}
    assert result["changed"] == []
