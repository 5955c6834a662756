"""Drift monitor: Evidently 0.7 data drift of a current feature snapshot against a reference.

``python -m jobs.churn.monitoring --date 2026-11-22``: reference = the training snapshot of the `production`
model (its recorded Delta version and snapshot date), current = the latest snapshot of the feature table.
``--reference PATH[@VERSION] --current PATH[@VERSION] --columns SPEC.yaml``: any two tables (a Delta folder,
a Parquet file or folder of `.parquet`/`.pq` files, a CSV file), the columns from a spec (its numeric and
categorical lists; `id` and `label` optional, checked against both tables when named; a training spec
works too). The segment shares are compared as the model sees them: the share columns of the production
model's vocabulary, or, for a spec file, of the reference table's top segments; both sides derive them
from their map column.

Spark samples both sides (`DRIFT_SAMPLE_ROWS`, recorded); Evidently's `DataDriftPreset` (with tests) judges
every column (`jobs.churn.monitoring.drift`); the HTML and JSON reports go to `<MLFLOW_ARTIFACTS_BUCKET>/drift-reports/<date>/` through the
project's one object-store module; an MLflow run (tag `run_type=drift`) gets `recent_drift_share`, the
per-feature drift values and methods and the reports. Severity none/moderate/severe/critical is the worst
of three judgements (`judge`, the same for both modes): the drifted share, how many of the model's most
important features drifted, and how far the worst column drifted beyond its own threshold (the magnitude);
`retrain` is true at critical. The last line printed is the machine-readable result (JSON) for the DAG to
branch on.
Exit codes: 0 done (whatever the severity), 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import asdict
from datetime import date

from jobs.churn.contract.spec import SpecError
from jobs.churn.deployment.io import NoModel
from jobs.churn.features.io import SnapshotNotFound
from jobs.churn.monitoring.drift import DriftResult
from jobs.common.spark import master_option

log = logging.getLogger("jobs.churn.monitoring")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.churn.monitoring", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--date", type=date.fromisoformat, required=True, help="logical date of the report (yyyy-mm-dd)"
    )
    parser.add_argument(
        "--reference",
        help="PATH[@VERSION]: reference table, a Delta folder (@VERSION pins one), a .parquet/.pq file or "
        "folder, or a .csv file (default: the production model's data)",
    )
    parser.add_argument(
        "--current", help="PATH[@VERSION]: current table (default: the latest feature snapshot)"
    )
    parser.add_argument(
        "--columns",
        help="YAML whose numeric/categorical lists name the columns to compare (id, label optional: "
        "checked against both tables when named; a training spec works too)",
    )
    parser.add_argument("--sample-rows", type=int, help="rows sampled per side (default DRIFT_SAMPLE_ROWS)")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="do not log a run (reports still go to the store)"
    )
    parser.add_argument("--master", type=master_option, help="Spark master URL (default SPARK_MASTER_URL)")
    args = parser.parse_args(argv)
    if bool(args.reference) != bool(args.current):
        parser.error("--reference and --current go together (or neither: the production model's data)")
    if args.reference and not args.columns:
        parser.error("--columns SPEC.yaml is required with --reference/--current")
    if args.sample_rows is not None and args.sample_rows < 100:
        parser.error("--sample-rows must be >= 100")
    return args


def run(args: argparse.Namespace, settings=None) -> DriftResult:
    from jobs.churn.deployment.io import configure
    from jobs.churn.features.io import FeatureTable, TableRef
    from jobs.churn.features.shares import top_keys
    from jobs.churn.monitoring.drift import (
        check_columns,
        column_drifts,
        drift_figures,
        judge,
        load_columns,
        run_report,
        sample_table,
    )
    from jobs.churn.monitoring.io import log_to_mlflow, production_inputs, publish, write_reports
    from jobs.common.config import load_settings
    from jobs.common.logs import Progress
    from jobs.common.metrics import push, step_figures
    from jobs.common.objectstore import open_store
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    progress = Progress(log)
    model_ref = None
    if not (args.reference and args.no_mlflow):  # two tables without a run need no MLflow at all
        configure(settings.mlflow)
    if args.reference:
        spec = load_columns(args.columns)
        reference, current = TableRef.parse(args.reference), TableRef.parse(args.current)
        important = []
    else:
        reference, current, spec, important, model_ref = production_inputs(settings)
    reference, current = FeatureTable(reference), FeatureTable(current)  # located before any Spark work
    rows = args.sample_rows or settings.drift.sample_rows
    spark = build_session("churn-drift", settings.spark, args.master)
    with progress.step("sample") as facts:
        ref_df, ref_info = reference.read(spark), reference.describe()
        cur_df, cur_info = current.read(spark), current.describe()
        check_columns(ref_df, ref_info, spec)  # both sides, before the vocabulary is taken from one
        check_columns(cur_df, cur_info, spec)
        if not spec.resolved:  # a spec file, not a model's: the vocabulary of the reference side
            spec = spec.with_vocabulary(top_keys(ref_df, spec.shares))
        ref_frame, ref_info = sample_table(ref_df, ref_info, spec, rows)
        cur_frame, cur_info = sample_table(cur_df, cur_info, spec, rows)
        facts.update(reference=len(ref_frame), current=len(cur_frame))
    numeric, categorical = list(spec.numeric), list(spec.categorical)
    if spec.shares is not None:  # which segments the share columns stand for
        ref_info["segment_vocabulary"] = list(spec.shares.vocabulary)
    with progress.step("Evidently report") as facts:
        snapshot = run_report(ref_frame, cur_frame, numeric, categorical)
        share, drifts = column_drifts(snapshot.dict())
        cuts = settings.drift
        verdict = judge(share, drifts, important, cuts.share_cuts, cuts.important_cuts, cuts.magnitude_cuts)
        facts.update(share=round(share, 3), magnitude=round(verdict.magnitude, 2), severity=verdict.severity)
    result = DriftResult(
        date=args.date.isoformat(),
        severity=verdict.severity,
        retrain=verdict.severity == "critical",
        drift_share=share,
        drift_magnitude=verdict.magnitude,
        drift_magnitude_column=verdict.magnitude_column,
        drifted_columns=[d.column for d in drifts if d.drifted],
        columns={
            d.column: {
                "method": d.method,
                "value": d.value,
                "threshold": d.threshold,
                "ratio": d.ratio,
                "drifted": d.drifted,
            }
            for d in drifts
        },
        important_drifted=verdict.important_drifted,
        reasons=verdict.reasons,
        reference=ref_info,
        current=cur_info,
        sample_rows={"reference": len(ref_frame), "current": len(cur_frame)},
    )
    with progress.step("publish"), tempfile.TemporaryDirectory() as tmp:
        files = write_reports(snapshot, tmp)
        publish(
            files, result, open_store(settings.object_store), settings.object_store.mlflow_artifacts_bucket
        )
        if not args.no_mlflow:
            result.mlflow_run_id = log_to_mlflow(result, model_ref, files)
    log.info("drift %s: %s (%s)", result.date, result.severity, "; ".join(result.reasons))
    push(
        step_figures(drift_figures(result), progress.timings, progress.elapsed),
        settings.metrics,
        succeeded=True,
    )
    return result


def report(result: DriftResult) -> None:
    print(json.dumps({k: v for k, v in asdict(result).items() if k != "columns"}, default=str))


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(
        argv, parse_args, run, report, bad_input=(NoModel, SnapshotNotFound, SpecError, ValueError)
    )


if __name__ == "__main__":
    sys.exit(main())
