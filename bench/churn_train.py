"""Benchmark: churn features + HPO training on 100k customers (generation excluded).

Measures, in one run on this machine: ingest (reported, excluded from the target), the feature build
(PostgreSQL raw batches -> THE feature module -> Delta snapshot) and the config-driven search with the
shipped spec (`jobs/churn/contract/specs/churn.yaml`), then the test AUC against the generator's oracle AUC (the
true probabilities scored against the realised labels: the ceiling any model can reach on this data).
Peak memory is sampled over the whole process tree (Python driver + Spark JVM).

    python bench/churn_train.py [--customers 100000] [--spec churn.yaml]

Ends with machine-readable lines: train_seconds=..., ingest_rows_per_s=..., auc=..., oracle_auc=...,
auc_gap=..., peak_rss_mb=... (targets: auc_gap <= 0.02, train_seconds <= 180 on 2 cores, ingest_rows_per_s >=
100k: the rows of the five files read, judged, gated and loaded per second).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

from peak_memory import PeakRss  # bench/peak_memory.py (the script's folder)

T = date(2026, 9, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--spec", default="churn.yaml")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-churn-"))
    os.environ.setdefault("POSTGRES_DB", "kpidelivery_bench")
    os.environ.update({"CHURN_LAKE_DIR": str(work / "lake"), "CHURN_SOURCE_DIR": str(work / "source"),
                       "GX_ANALYTICS_ENABLED": "false", "OBJECT_STORE_LOCAL_ROOT": str(work / "store")})  # fmt: skip

    from jobs.churn.contract.spec import load_spec
    from jobs.churn.features import __main__ as build_features
    from jobs.churn.features.io import FeatureTable, TableRef
    from jobs.churn.ingest import __main__ as ingest
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write
    from jobs.churn.training.search import train_model
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.postgres import connect, init_business_database
    from jobs.common.spark import build_session

    setup_logging()
    settings = load_settings()
    pg, where = init_business_database(settings.postgres)
    with connect(pg) as conn:
        conn.execute("DELETE FROM dqm.churn_batches WHERE as_of = %s", (T,))

    t0 = time.perf_counter()
    tables, truth, oracle = generate(ChurnGenConfig(customers=args.customers, snapshot=T, seed=args.seed))
    write(work / "source", tables, truth, oracle)
    generate_s = time.perf_counter() - t0

    spark = build_session("bench-churn-train", settings.spark)
    with PeakRss() as memory:
        t0 = time.perf_counter()
        outcomes = ingest.run(ingest.parse_args(["--as-of", T.isoformat()]), settings)
        ingest_s = time.perf_counter() - t0
        assert all(o.status == "loaded" for o in outcomes), [o.message for o in outcomes]

        t0 = time.perf_counter()
        ref, summary = build_features.run(build_features.parse_args(["--snapshot", T.isoformat()]), settings)
        features_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        spec = load_spec(args.spec)
        df = FeatureTable(TableRef(ref.path, ref.version, T)).read(spark)
        result = train_model(df, spec)
        hpo_s = time.perf_counter() - t0

    train_s = features_s + hpo_s
    auc = result.test_metrics["roc_auc"]
    print(
        f"\n== churn training benchmark ({args.customers:,} customers, {oracle['payments']:,} payments; {where})"
    )
    print(f"  generate (excluded)  {generate_s:7.1f} s")
    print(f"  ingest (excluded)    {ingest_s:7.1f} s   5 files, GX gate per file")
    print(
        f"  features             {features_s:7.1f} s   {summary['customers']:,} customers -> Delta v{ref.version}"
    )
    print(
        f"  HPO + test           {hpo_s:7.1f} s   {len(result.search.trials)} grid points, split {result.counts}"
    )
    for trial in result.search.trials:
        print(
            f"    {trial.kind:<20} {trial.params!s:<55} val roc_auc {trial.validation['roc_auc']:.4f}  {trial.seconds:5.1f} s"
        )
    best = result.search.best
    print(f"  best                 {best.kind} {best.params}")
    print(f"  test                 roc_auc {auc:.4f}  pr_auc {result.test_metrics['pr_auc']:.4f}  "
          f"log_loss {result.test_metrics['log_loss']:.4f}  brier {result.test_metrics['brier']:.4f}")  # fmt: skip
    print(f"  oracle               roc_auc {oracle['oracle_auc']:.4f}")
    print(f"train_seconds={train_s:.1f}")
    print(f"features_seconds={features_s:.1f}")
    print(f"hpo_seconds={hpo_s:.1f}")
    print(f"ingest_seconds={ingest_s:.1f}")
    read = sum(o.counts["read"] for o in outcomes)
    print(f"ingest_rows={read}")
    print(f"ingest_rows_per_s={read / ingest_s:.0f}")  # every row of the 5 files (target >= 100k rows/s)
    print(f"auc={auc:.4f}")
    print(f"oracle_auc={oracle['oracle_auc']:.4f}")
    print(f"auc_gap={oracle['oracle_auc'] - auc:.4f}")
    print(f"peak_rss_mb={memory.peak / 2**20:.0f}")
    spark.stop()


if __name__ == "__main__":
    main()
