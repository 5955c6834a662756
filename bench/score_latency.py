"""Benchmark: single-row latency of the JVM-free scorer (with and without SHAP) against mlflow.pyfunc on
the Spark flavor, warm, in one run.

Trains the three candidate kinds once on a small generated population (5k customers, features built
by THE feature module in Spark), exports each to the JVM-free scorer, saves the GBT pipeline with
`mlflow.spark.save_model` and loads it back with `mlflow.pyfunc.load_model` (the baseline). Each
scorer is warmed up, then one customer row at a time is scored.

    python bench/score_latency.py [--rows 2000] [--spark-rows 100]

Ends with: p50_ms=..., p95_ms=..., p50_shap_ms=..., p95_shap_ms=..., spark_pyfunc_p50_ms=...,
speedup_vs_spark_pyfunc=... (targets: p50 <= 5 ms, p50_shap <= 20 ms, speedup >= 40), for the GBT model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

T = date(2026, 9, 1)


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def time_rows(fn, rows: list, warmup: int = 20) -> list[float]:
    for row in rows[:warmup]:
        fn(row)
    samples = []
    for row in rows:
        t0 = time.perf_counter()
        fn(row)
        samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="single-row calls per JVM-free measurement")
    parser.add_argument("--spark-rows", type=int, default=100, help="single-row calls to the Spark pyfunc")
    args = parser.parse_args()

    import mlflow.pyfunc
    import mlflow.spark
    import pandas as pd

    from jobs.churn.contract.spec import load_spec, parse_spec, spec_to_dict
    from jobs.churn.deployment.scorer.export import export_scorer
    from jobs.churn.deployment.scorer.score import ChurnScorer
    from jobs.churn.features.shares import with_shares
    from jobs.churn.simulate.generate import ChurnGenConfig, generate, generated_features
    from jobs.churn.training.search import train_model
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.spark import build_session

    setup_logging()
    spark = build_session("bench-score-latency", load_settings().spark, master="local[2]")
    tables, _, _ = generate(ChurnGenConfig(customers=5000, snapshot=T, seed=21))
    features = generated_features(spark, tables, T).cache()
    base = spec_to_dict(load_spec("churn.yaml"))
    grids = {
        "logistic_regression": {"regParam": [0.01]},
        "random_forest": {"numTrees": [40], "maxDepth": [8]},
        "gbt": {"maxIter": [40], "maxDepth": [5]},
    }
    customers = features.toPandas()
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(customers), args.rows)
    spec = None
    results = {}
    gbt_model = None
    for kind, grid in grids.items():
        trained = train_model(features, parse_spec({**base, "models": {kind: grid}}))
        model, spec = trained.search.best.model, trained.spec  # the spec with its segment vocabulary
        scorer = ChurnScorer.from_description(export_scorer(model, spec))
        inputs = with_shares(customers, spec.shares)  # the model's share columns, as the app derives them
        rows = [inputs.iloc[i][list(spec.features)].to_dict() for i in picks]
        p50, p95 = percentiles(time_rows(scorer.predict_proba, rows))
        p50_shap, p95_shap = percentiles(
            time_rows(lambda r, s=scorer: (s.predict_proba(r), s.explain(r)), rows)
        )
        results[kind] = (p50, p95, p50_shap, p95_shap)
        if kind == "gbt":
            gbt_model = model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spark_model"
        sample = inputs[list(spec.features)].head(5)
        from mlflow.models import infer_signature

        mlflow.spark.save_model(gbt_model, str(path), signature=infer_signature(sample, pd.Series([0.0] * 5)),
                                pip_requirements=["pyspark"])  # fmt: skip
        spark_pyfunc = mlflow.pyfunc.load_model(str(path))
        frames_1 = [inputs.iloc[[i]][list(spec.features)] for i in picks[: args.spark_rows]]
        spark_p50, spark_p95 = percentiles(time_rows(spark_pyfunc.predict, frames_1, warmup=5))

    print("\n== single-row scoring latency (warm, ms)")
    print(f"  {'model':<30}{'p50':>8}{'p95':>8}{'p50+shap':>10}{'p95+shap':>10}")
    for kind, (p50, p95, p50s, p95s) in results.items():
        print(f"  {'JVM-free ' + kind:<30}{p50:8.3f}{p95:8.3f}{p50s:10.3f}{p95s:10.3f}")
    print(
        f"  {'mlflow.pyfunc (Spark)':<30}{spark_p50:8.1f}{spark_p95:8.1f}{'n/a':>10}{'n/a':>10}   gbt, {args.spark_rows} rows"
    )
    p50, p95, p50s, p95s = results["gbt"]
    print(f"p50_ms={p50:.3f}")
    print(f"p95_ms={p95:.3f}")
    print(f"p50_shap_ms={p50s:.3f}")
    print(f"p95_shap_ms={p95s:.3f}")
    print(f"spark_pyfunc_p50_ms={spark_p50:.1f}")
    print(f"speedup_vs_spark_pyfunc={spark_p50 / p50:.0f}")
    spark.stop()


if __name__ == "__main__":
    main()
