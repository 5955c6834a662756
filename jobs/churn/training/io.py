"""The training step's I/O: the feature table it reads, and the run, model and alias it records in MLflow.

`log_run` logs params, metrics (test and validation), every grid point as a nested run, `dataset/` (which
data, exactly: table, version, snapshot, hash, counts, the resolved spec), evaluation plots, the JVM-free
scorer (its parity with Spark checked on test rows), `explainability/` (SHAP values, summary plot and mean
|SHAP| ranking), and one registered version of `churn_model` (pyfunc + Spark pipeline) with the
`challenger` alias.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from jobs.churn.contract.spec import TrainSpec
    from jobs.churn.features.io import TableRef
    from jobs.churn.training.search import TrainResult

PARITY_TOLERANCE = 1e-6


def git_commit() -> str:
    """The commit of the code that trains: GIT_COMMIT when set (an image built from a checkout), else the
    checkout's HEAD (with `-dirty` when it has uncommitted changes), else `unknown`."""
    import subprocess

    from jobs.common.config import PROJECT_ROOT

    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        head = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def lineage_tags(dataset: dict) -> dict[str, str]:
    """Where a model comes from, on its run and its registered version: the data (feature version and content
    hash), the code (git commit) and the orchestration (the Airflow DAG run, when Airflow ran it)."""
    return {
        "data_sha256": str(dataset.get("sha256", "")),
        "git_commit": git_commit(),
        "dag_run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", ""),
        "dag_id": os.environ.get("AIRFLOW_CTX_DAG_ID", ""),
    }


def read_features(spark: SparkSession, ref: TableRef) -> tuple[DataFrame, dict]:
    """The training table (a Delta table at its pinned version and, unless one is named, its latest
    snapshot date; or a Parquet/CSV file) and what the model records about it (`dataset/`)."""
    from jobs.churn.features.io import FeatureTable

    table = FeatureTable(ref)
    if ref.snapshot is None:
        table = table.at_latest_snapshot()
    df = table.read(spark)
    info = table.fingerprint()
    if table.ref.format != "delta":
        info["schema"] = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    return df, info


def log_run(
    result: TrainResult, spec: TrainSpec, dataset: dict, settings, spark_df_example: DataFrame
) -> dict:
    """Everything about the run to MLflow; returns the registered version and run id."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from jobs.churn.contract.spec import spec_to_dict
    from jobs.churn.deployment.io import CHALLENGER
    from jobs.churn.deployment.scorer.export import export_scorer, save_scorer
    from jobs.churn.deployment.scorer.pyfunc import ChurnPyfuncModel, pyfunc_requirements
    from jobs.churn.deployment.scorer.score import ChurnScorer
    from jobs.churn.training.evaluation import plot_evaluation, plot_shap_summary

    best = result.search.best
    name = settings.mlflow.model_name
    client = MlflowClient()
    snapshot = dataset.get("snapshot_date", "")
    with (
        mlflow.start_run(run_name=f"{spec.name}-{best.kind}-{snapshot or 'table'}") as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        tmp_dir = Path(tmp)
        mlflow.set_tags(
            {"spec": spec.name, "feature_path": dataset["path"], "feature_version": str(dataset.get("version")),
             "snapshot_date": snapshot, "model_kind": best.kind, **lineage_tags(dataset)}
        )  # fmt: skip
        mlflow.log_params(
            {
                "spec": spec.name,
                "model_kind": best.kind,
                **{f"best.{k}": v for k, v in best.params.items()},
                "feature_version": dataset.get("version"),
                "snapshot_date": snapshot,
                "split": f"{spec.split.train}/{spec.split.validation}/{spec.split.test} seed {spec.split.seed}",
                "selection_metric": spec.selection_metric,
                "threshold_rule": str(spec.threshold),
                "grid_points": len(result.search.trials),
                "numeric_features": len(spec.numeric),
                "categorical_features": len(spec.categorical),
                **(
                    {"shares_vocabulary": ",".join(spec.shares.vocabulary)[:500]}
                    if spec.shares is not None
                    else {}
                ),
            }
        )
        mlflow.log_metrics({k: v for k, v in result.test_metrics.items() if k != "rows"})
        mlflow.log_metrics(
            {f"validation_{k}": v for k, v in result.validation_metrics.items() if k != "rows"}
        )
        mlflow.log_metrics({f"rows_{k}": v for k, v in result.counts.items()})
        mlflow.log_metrics({f"evaluation_rows_{k}": v for k, v in result.evaluated.items()})
        for i, trial in enumerate(result.search.trials):
            with mlflow.start_run(run_name=f"hpo-{i:02d}-{trial.kind}", nested=True):
                mlflow.log_params({"model_kind": trial.kind, **trial.params})
                mlflow.log_metrics({f"validation_{k}": v for k, v in trial.validation.items() if k != "rows"})
                mlflow.log_metric("fit_seconds", trial.seconds)

        # dataset/: which data, exactly
        (tmp_dir / "dataset").mkdir()
        (tmp_dir / "dataset" / "snapshot.json").write_text(
            json.dumps({**dataset, "counts": result.counts, "spec": spec.name}, indent=2, default=str)
        )
        mlflow.log_artifacts(str(tmp_dir / "dataset"), "dataset")
        mlflow.log_dict(spec_to_dict(spec), "dataset/spec.json")

        # plots/: ROC, PR, calibration, confusion on the test split
        y, p = result.test_scores[spec.label].to_numpy(), result.test_scores["p"].to_numpy()
        plot_evaluation(y, p, result.test_metrics["threshold"], tmp_dir / "plots", f"{best.kind} (test)")
        mlflow.log_artifacts(str(tmp_dir / "plots"), "plots")

        # the JVM-free scorer, checked against Spark on the test rows
        description = export_scorer(best.model, spec, counts=result.category_counts)
        save_scorer(description, tmp_dir / "scorer")
        scorer = ChurnScorer.load(tmp_dir / "scorer")
        test_frame = spark_df_example.toPandas()
        parity = float(np.max(np.abs(scorer.predict_proba(test_frame) - test_frame["_spark_p"].to_numpy())))
        mlflow.log_metric("scorer_parity_max_abs_diff", parity)
        if parity > PARITY_TOLERANCE:
            raise RuntimeError(f"JVM-free scorer differs from Spark by {parity:.2e} > {PARITY_TOLERANCE}")

        # explainability/: SHAP values of a test sample, their summary plot and mean |SHAP| ranking
        sample = test_frame.head(2000)
        shap_values = scorer.explain(sample[list(spec.features)])
        values = shap_values[list(spec.features)]
        (tmp_dir / "explainability").mkdir()
        values.assign(**{spec.id: sample[spec.id].to_numpy()}).to_parquet(
            tmp_dir / "explainability" / "shap_values.parquet"
        )
        importance = values.abs().mean().sort_values(ascending=False)
        importance.rename("mean_abs_shap").to_csv(tmp_dir / "explainability" / "shap_importance.csv")
        plot_shap_summary(values.to_numpy(), sample[list(spec.features)], tmp_dir / "explainability" / "shap_summary.png",
                          f"SHAP ({scorer.units}) — {best.kind}")  # fmt: skip
        mlflow.log_artifacts(str(tmp_dir / "explainability"), "explainability")

        # the model: JVM-free pyfunc (app) + the Spark pipeline (batch), one registered version
        best.model.write().overwrite().save(str(tmp_dir / "spark_pipeline"))
        example = test_frame[list(spec.features)].head(5)
        signature = infer_signature(example, pd.DataFrame({"probability": scorer.predict_proba(example)}),
                                    params={"explain": False})  # fmt: skip
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChurnPyfuncModel(),
            artifacts={"scorer": str(tmp_dir / "scorer"), "spark_pipeline": str(tmp_dir / "spark_pipeline")},
            signature=signature,
            input_example=example,
            pip_requirements=pyfunc_requirements(),
            registered_model_name=name,
        )
        version = int(info.registered_model_version)
        tags = {
            **lineage_tags(dataset),
            "feature_path": dataset["path"],
            "feature_version": str(dataset.get("version")),
            "feature_format": dataset.get("format", ""),
            "snapshot_date": snapshot,
            "spec": spec.name,
            "model_kind": best.kind,
            "run_id": run.info.run_id,
            **{
                f"test_{k}": f"{v:.6f}"
                for k, v in result.test_metrics.items()
                if k in ("roc_auc", "pr_auc", "f1")
            },
        }
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, value)
        client.set_registered_model_alias(name, CHALLENGER, str(version))
        mlflow.set_tag("registered_version", str(version))
    return {
        "version": version,
        "run_id": run.info.run_id,
        "model_uri": f"models:/{name}/{version}",
        "parity": parity,
    }
