"""Churn orchestration: the data watchdog emits an asset, training runs on it (or on demand, with params),
the weekly drift monitor triggers training on critical drift. The DAGs only wire `jobs/churn/` steps.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from jobs.common.orchestration import DEFAULT_ARGS, TIMEZONE, spark_task

CHURN_SOURCES = Asset("kpidelivery://churn/source-files")
START = pendulum.datetime(2026, 1, 1, tz=TIMEZONE)


@dag(
    dag_id="churn_data_watchdog",
    schedule=CronTriggerTimetable("0 * * * *", timezone=TIMEZONE),  # hourly; no run on unpause
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["churn"],
)
def churn_data_watchdog():
    @task(inlets=[CHURN_SOURCES], outlets=[CHURN_SOURCES])
    def detect_new_files(inlet_events=None, outlet_events=None) -> dict:
        """Emits the asset only when a source file is new or its content changed (sha256 of every file
        against the batches already ingested and the files earlier events announced); otherwise the task is
        skipped and nothing downstream runs."""
        from airflow.exceptions import AirflowSkipException

        from jobs.churn.watch import changed_sources, unannounced

        earlier = inlet_events[CHURN_SOURCES].ascending(False).limit(100)
        changes = unannounced(changed_sources(), [(e.extra or {}).get("files", {}) for e in earlier])
        if not changes:
            raise AirflowSkipException("no new or changed churn source file")
        outlet_events[CHURN_SOURCES].extra = {"files": changes}
        return changes

    detect_new_files()


@dag(
    dag_id="churn_training_dag",
    schedule=[CHURN_SOURCES],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "snapshot": Param("2026-09-01", type="string", format="date", description="snapshot date T"),
        "spec": Param(
            "", type="string", description="training spec (jobs/churn/specs/ or a path); empty: CHURN_SPEC"
        ),
    },
    tags=["churn", "training"],
)
def churn_training_dag():
    snapshot = "{{ params.snapshot }}"
    ingest = spark_task("ingest", "jobs/churn/ingest.py", ["--as-of", snapshot])
    features = spark_task("build_features", "jobs/churn/build_features.py", ["--snapshot", snapshot])
    train = spark_task("train", "jobs/churn/train.py", ["--spec", "{{ params.spec }}", "--snapshot", snapshot],
                       execution_timeout=timedelta(hours=2))  # fmt: skip

    @task
    def promote() -> dict:
        from jobs.churn.promote import parse_args, run

        decision = run(parse_args([]))
        return {
            "promote": decision.promote,
            "reason": decision.reason,
            "version": decision.challenger_version,
        }

    score = spark_task("batch_score", "jobs/churn/score_batch.py", ["--snapshot", snapshot])
    ingest >> features >> train >> promote() >> score


@dag(
    dag_id="churn_drift_monitor_w",
    schedule=CronTriggerTimetable("0 6 * * 1", timezone=TIMEZONE),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["churn", "monitoring"],
)
def churn_drift_monitor_w():
    drift = spark_task("drift_report", "jobs/churn/drift.py", ["--date", "{{ ds }}"])

    @task.short_circuit
    def critical(ds: str) -> bool:
        """True (go on and retrain) only when the report of the logical date says critical."""
        import json

        from jobs.common.config import load_settings
        from jobs.common.objectstore import open_store

        settings = load_settings().object_store
        summary = json.loads(
            open_store(settings).get_bytes(
                settings.mlflow_artifacts_bucket, f"drift-reports/{ds}/summary.json"
            )
        )
        return bool(summary["retrain"])

    retrain = TriggerDagRunOperator(task_id="trigger_training", trigger_dag_id="churn_training_dag")
    drift >> critical() >> retrain


churn_data_watchdog()
churn_training_dag()
churn_drift_monitor_w()
