"""Benchmark: the REST scoring API (`python -m jobs.churn.serving`) under a Locust load on loopback, at 1, 8
and 32 users, each level for a fixed time and at most a fixed number of requests; one customer a request.

A child process first trains a small model (5k generated customers, THE feature module in Spark, the
40-tree depth-8 forest of churn.yaml's grid), logs it as the training job does (the JVM-free pyfunc) and
registers it as `churn_model@production` in a throwaway MLflow store (SQLite in a temporary folder); its
Spark is gone before the load starts. The API then runs on a free loopback port against that store, as the
stacks run it, and Locust (library API, headless, in this process) sends rows of the feature snapshot.

Users think between requests, uniformly 0.5x to 1.5x `--think` seconds (an interactive client: about one
request a second each); a last level runs 32 users with no think time, the throughput ceiling. Each level is
measured once its users have run for the longest think time plus 2 s: all users' first requests leave
together when they spawn, a burst no steady load has (it alone made p99 at 32 users ~225 ms).

    python bench/serving_load.py [--seconds 45] [--max-requests 20000] [--think 1.0]

Prints per level: requests, requests/s, p50/p95/p99 ms, error rate; ends with p99_ms_32_users=... and
error_rate=... (targets: p99 <= 50 ms at 32 users on 2 cores, no errors).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.servers starts the API as the tests do
MODEL = "churn_model_bench"
LEVELS = (1, 8, 32)
RAMP_UP_SECONDS = 2.0  # after the longest think time, before a level is measured
ROWS_FILE, STORE_FILE = "rows.json", "mlflow.db"


def prepare(folder: Path) -> None:
    """Trains, logs and registers the model; writes the customers' rows for the requests."""
    from datetime import date

    import mlflow
    from mlflow.tracking import MlflowClient

    from jobs.churn.contract.spec import load_spec, parse_spec, spec_to_dict
    from jobs.churn.deployment.scorer.export import export_scorer, save_scorer
    from jobs.churn.deployment.scorer.pyfunc import ChurnPyfuncModel, pyfunc_requirements, pyfunc_signature
    from jobs.churn.features.shares import with_shares
    from jobs.churn.simulate.generate import ChurnGenConfig, generate, generated_features
    from jobs.churn.training.search import train_model
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.spark import build_session

    setup_logging()
    snapshot = date(2026, 9, 1)
    spark = build_session("bench-serving-load", load_settings().spark, master="local[2]")
    tables, _, _ = generate(ChurnGenConfig(customers=5000, snapshot=snapshot, seed=31))
    features = generated_features(spark, tables, snapshot).cache()
    spec = parse_spec(
        {
            **spec_to_dict(load_spec("churn.yaml")),
            "models": {"random_forest": {"numTrees": [40], "maxDepth": [8]}},
        }
    )
    trained = train_model(features, spec)
    description = export_scorer(trained.search.best.model, trained.spec, counts=trained.category_counts)
    save_scorer(description, folder / "scorer")
    rows = with_shares(features.toPandas(), trained.spec.shares)[list(trained.spec.features)]
    spark.stop()
    records = [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows.astype({c: "float64" for c in trained.spec.numeric}).to_dict("records")
    ]
    (folder / ROWS_FILE).write_text(json.dumps(records))

    mlflow.set_tracking_uri(f"sqlite:///{folder / STORE_FILE}")
    client = MlflowClient()
    experiment = client.create_experiment("bench_serving", artifact_location=(folder / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChurnPyfuncModel(),
            artifacts={"scorer": str(folder / "scorer")},
            signature=pyfunc_signature(description),
            pip_requirements=pyfunc_requirements(),
            registered_model_name=MODEL,
        )
    client.set_registered_model_alias(MODEL, "production", str(info.registered_model_version))


def percentile(samples: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.array(samples), q)) if samples else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="how long each level runs (at most)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="requests per level (at most)")
    parser.add_argument("--think", type=float, default=1.0, help="a user's mean think time, seconds")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # the child that trains the model
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return

    # Locust first: importing it patches the standard library with gevent
    import gevent
    from locust import FastHttpUser, between, constant, task
    from locust.env import Environment

    from jobs.common.postgres import free_port
    from tests.servers import start_server, stop_server

    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    started = time.monotonic()
    subprocess.run([sys.executable, __file__, "--prepare", str(folder)], check=True, cwd=ROOT)
    print(f"model trained and registered in {time.monotonic() - started:.0f} s")
    rows = json.loads((folder / ROWS_FILE).read_text())
    bodies = [json.dumps({"dataframe_records": [row]}).encode() for row in rows]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / STORE_FILE}",
        "MLFLOW_MODEL_NAME": MODEL,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "jobs.churn.serving", "--host", "127.0.0.1", "--port", str(port)]
    server = start_server(command, f"{url}/model", folder / "api.log", env, ROOT)
    headers = {"Content-Type": "application/json"}

    def run_level(users: int, think: float, seconds: float) -> dict:
        class Customer(FastHttpUser):
            host = url
            wait_time = between(0.5 * think, 1.5 * think) if think else constant(0)
            picked = 0

            @task
            def score(self) -> None:
                Customer.picked += 1
                self.client.post("/invocations", data=bodies[Customer.picked % len(bodies)], headers=headers)

        environment = Environment(user_classes=[Customer])
        samples: list[float] = []
        errors: list[str] = []

        def on_request(response_time, exception, **_) -> None:
            samples.append(response_time)
            if exception is not None:
                errors.append(repr(exception)[:200])

        environment.events.request.add_listener(on_request)
        runner = environment.create_local_runner()
        runner.start(users, spawn_rate=users)
        while runner.user_count < users:
            gevent.sleep(0.05)
        # ramp-up left out: every user's first request leaves at spawn time, a burst no steady load has
        gevent.sleep(1.5 * think + RAMP_UP_SECONDS)
        samples.clear()
        errors.clear()
        began = time.monotonic()
        while time.monotonic() - began < seconds and len(samples) < args.max_requests:
            gevent.sleep(0.05)
        elapsed = time.monotonic() - began
        measured = samples[: args.max_requests]
        failed = errors[:]
        runner.quit()
        return {
            "users": users,
            "think": think,
            "requests": len(measured),
            "seconds": elapsed,
            "rps": len(measured) / elapsed,
            "p50": percentile(measured, 50),
            "p95": percentile(measured, 95),
            "p99": percentile(measured, 99),
            "errors": len(failed),
            "first_error": failed[0] if failed else "",
        }

    try:
        run_level(4, 0.0, 5.0)  # warm-up: connections, the first predictions
        results = [run_level(users, args.think, args.seconds) for users in LEVELS]
        results.append(run_level(LEVELS[-1], 0.0, args.seconds))
    finally:
        stop_server(server)
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\n== REST scoring API under Locust: loopback, one customer a request, model {MODEL}@production")
    print(f"   each level at most {args.seconds:g} s and {args.max_requests:,} requests")
    print(
        f"  {'users':>5} {'think s':>8} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}"
    )
    for r in results:
        think = f"{0.5 * r['think']:g}-{1.5 * r['think']:g}" if r["think"] else "0"
        print(
            f"  {r['users']:>5} {think:>8} {r['requests']:>9,} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p95']:>8.1f} "
            f"{r['p99']:>8.1f} {r['errors']:>7}"
        )
        if r["first_error"]:
            print(f"        first error: {r['first_error']}")
    total = sum(r["requests"] for r in results)
    failed = sum(r["errors"] for r in results)
    by_users = {r["users"]: r for r in results if r["think"]}
    ceiling = results[-1]
    print(f"rps_32_users_no_think={ceiling['rps']:.1f}")
    print(f"p99_ms_32_users_no_think={ceiling['p99']:.1f}")
    print(f"p99_ms_1_user={by_users[1]['p99']:.1f}")
    print(f"p99_ms_8_users={by_users[8]['p99']:.1f}")
    print(f"p99_ms_32_users={by_users[32]['p99']:.1f}")
    print(f"error_rate={failed / total if total else math.nan:.4f}")


if __name__ == "__main__":
    main()
