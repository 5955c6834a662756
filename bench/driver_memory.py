"""Benchmark: the Spark driver's peak memory as the data grows fourfold, when the executors do the work.

On a standalone master with TWO workers of one core each (infrastructure/standalone.py) and
`spark.driver.memory=1g`, each job is spark-submitted in client mode and the resident memory of the driver
(the spark-submit JVM and the Python process it starts: the whole process tree of the submit) is sampled every
0.2 s; the executors run in the workers' JVMs and are not counted:
- crypto events job at 1M and 4M window rows (landing, rules, quarantine, GX gate, staging, merge);
- churn ingest + feature build at 100k and 400k customers (about 1.5M and 6M payments).
Ends with `driver_rss_growth_crypto=X.XX` and `driver_rss_growth_churn=Y.YY`: the peak at 4x the data
divided by the peak at 1x (target <= 1.15 each: the driver's memory does not follow the data).

    .venv/bin/python bench/driver_memory.py [--crypto-rows 1000000] [--churn-customers 100000]

It uses its own database (kpidelivery_bench_memory) on the configured PostgreSQL and takes ~20 min.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from peak_memory import PeakRss  # bench/peak_memory.py (the script's folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("POSTGRES_DB", "kpidelivery_bench_memory")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

D = date(2026, 11, 20)
T = date(2026, 9, 1)


def submit(script: str, args: list[str], master: str, env: dict[str, str]) -> tuple[float, int]:
    """spark-submit of a job script, in client mode with a 1g driver: (seconds, peak driver RSS in bytes)."""
    from jobs.common.config import PROJECT_ROOT, load_settings
    from jobs.common.spark import submit_command

    spark = load_settings().spark.model_copy(update={"driver_memory": "1g", "executor_memory": "1500m"})
    argv, child_env = submit_command(PROJECT_ROOT / script, args, spark, master)
    began = time.perf_counter()
    proc = subprocess.Popen(
        argv, env={**child_env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with PeakRss(proc.pid) as peak:
        out, err = proc.communicate()
    seconds, rss = time.perf_counter() - began, peak.peak
    if proc.returncode != 0:
        raise SystemExit(f"{script} {args} failed ({proc.returncode}):\n{out[-2000:]}{err[-4000:]}")
    return seconds, rss


def crypto_case(rows: int, master: str, env: dict[str, str]) -> tuple[float, int]:
    from jobs.common.config import load_settings
    from jobs.common.postgres import connect
    from jobs.crypto_events.generate import config_from_settings
    from jobs.crypto_events.upstream import advance

    settings = load_settings()
    crypto = settings.crypto
    cfg = config_from_settings(
        crypto,
        events_per_day=max(1, round(rows / crypto.window_days / 0.99)),
        defect_share=0.02,
        history_days=0,
    )
    with connect(settings.postgres, role="admin") as conn:
        for table in ("raw.bt_crypto_transaction_history", "raw.crypto_upstream_simulator", "raw.bt_crypto_landing",
                      "prod.bt_crypto_events", "dqm.dq_runs", "dqm.bt_crypto_events_rejects",
                      "staging.bt_crypto_events_candidate"):  # fmt: skip
            conn.execute(f"TRUNCATE {table}")
        began = time.perf_counter()
        advance(conn, cfg, D)
        conn.execute("VACUUM ANALYZE raw.bt_crypto_transaction_history")
        (count,) = conn.execute("SELECT count(*) FROM raw.bt_crypto_transaction_history").fetchone()
    print(f"# crypto: {count:,} upstream rows generated in {time.perf_counter() - began:.0f} s", flush=True)
    return submit("jobs/crypto_events/__main__.py", ["--date", D.isoformat()], master, env)


def churn_case(customers: int, work: Path, master: str, env: dict[str, str]) -> tuple[float, int]:
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write

    source, lake = work / f"source-{customers}", work / f"lake-{customers}"
    began = time.perf_counter()
    tables, truth, oracle = generate(ChurnGenConfig(customers=customers, snapshot=T, seed=7))
    write(source, tables, truth, oracle)
    del tables, truth
    print(f"# churn: {customers:,} customers, {oracle['payments']:,} payments generated in "
          f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
    case_env = {**env, "CHURN_SOURCE_DIR": str(source), "CHURN_LAKE_DIR": str(lake)}
    ingest_s, ingest_rss = submit(
        "jobs/churn/ingest/__main__.py", ["--as-of", T.isoformat()], master, case_env
    )
    features_s, features_rss = submit("jobs/churn/features/__main__.py", ["--snapshot", T.isoformat()], master,
                                      case_env)  # fmt: skip
    print(f"#   ingest {ingest_s:.0f} s (driver peak {ingest_rss / 2**20:,.0f} MiB), features {features_s:.0f} s "
          f"(driver peak {features_rss / 2**20:,.0f} MiB)", flush=True)  # fmt: skip
    return ingest_s + features_s, max(ingest_rss, features_rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--crypto-rows", type=int, default=1_000_000, help="window rows at 1x (4x is measured too)"
    )
    parser.add_argument("--churn-customers", type=int, default=100_000, help="customers at 1x (4x too)")
    args = parser.parse_args()

    from infrastructure.standalone import standalone_cluster
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.postgres import init_business_database

    setup_logging()
    pg, where = init_business_database(load_settings().postgres)
    work = Path(tempfile.mkdtemp(prefix="bench-driver-memory-"))
    env = {"POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_DB": pg.db,
           "OBJECT_STORE_LOCAL_ROOT": str(work / "store"), "S3_ENDPOINT_URL": "", "GX_ANALYTICS_ENABLED": "false"}  # fmt: skip
    print(
        f"# {where}; standalone: 2 workers x 1 core; spark.driver.memory=1g; cores={os.cpu_count()}",
        flush=True,
    )
    results: dict[str, list[tuple[int, float, int]]] = {"crypto": [], "churn": []}
    with standalone_cluster(workers=2, cores=1, memory="3g") as cluster:
        for rows in (args.crypto_rows, 4 * args.crypto_rows):
            seconds, rss = crypto_case(rows, cluster.url, env)
            results["crypto"].append((rows, seconds, rss))
            print(
                f"crypto {rows:>10,} window rows: {seconds:6.1f} s, driver peak RSS {rss / 2**20:,.0f} MiB",
                flush=True,
            )
        for customers in (args.churn_customers, 4 * args.churn_customers):
            seconds, rss = churn_case(customers, work, cluster.url, env)
            results["churn"].append((customers, seconds, rss))
            print(f"churn  {customers:>10,} customers:   {seconds:6.1f} s, driver peak RSS {rss / 2**20:,.0f} MiB",
                  flush=True)  # fmt: skip
    print()
    for kind, ((_, _, small), (_, _, large)) in results.items():
        print(f"driver_peak_mib_{kind}_1x={small / 2**20:.0f}")
        print(f"driver_peak_mib_{kind}_4x={large / 2**20:.0f}")
    for kind, ((_, _, small), (_, _, large)) in results.items():
        print(f"driver_rss_growth_{kind}={large / small:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
