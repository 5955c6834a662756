"""Churn orchestration: the data watchdog emits an asset, training runs on it (or on demand, with params),
the weekly drift monitor triggers training on critical drift. The DAGs only wire `jobs/churn/` steps.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from jobs.common.orchestration import DEFAULT_ARGS, SCHEDULES, TIMEZONE, spark_task

CHURN_SOURCES = Asset("kpidelivery://churn/source-files")
START = pendulum.datetime(2026, 1, 1, tz=TIMEZONE)


def run_day(dag_run):
    """The run's day in the DAGs' time zone: its logical date, or when it has none (asset-triggered runs
    in Airflow 3) the time it was scheduled to run after."""
    return pendulum.instance(dag_run.logical_date or dag_run.run_after).in_timezone(TIMEZONE).date()


@dag(
    dag_id="churn_data_watchdog",
    schedule=CronTriggerTimetable(
        SCHEDULES["churn_data_watchdog"], timezone=TIMEZONE
    ),  # hourly; no run on unpause
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["churn"],
)
def churn_data_watchdog():
    @task(inlets=[CHURN_SOURCES], outlets=[CHURN_SOURCES])
    def detect_new_files(inlet_events=None, outlet_events=None, dag_run=None) -> dict:
        """Emits the asset only when a source file is new or its content changed (sha256 of every file
        against the batches already ingested and the files earlier events announced), with the snapshot the
        files can label; otherwise the task is skipped and nothing downstream runs."""
        from airflow.exceptions import AirflowSkipException

        from jobs.churn.monitoring.io import changed_sources, latest_labelled_snapshot
        from jobs.churn.monitoring.watch import unannounced
        from jobs.common.config import load_settings

        earlier = inlet_events[CHURN_SOURCES].ascending(False).limit(100)
        changes = unannounced(changed_sources(), [(e.extra or {}).get("files", {}) for e in earlier])
        if not changes:
            raise AirflowSkipException("no new or changed churn source file")
        churn = load_settings().churn
        snapshot = latest_labelled_snapshot(churn.source_dir, churn.date_formats, run_day(dag_run))
        announcement = {"files": changes, "snapshot": snapshot.isoformat() if snapshot else None}
        outlet_events[CHURN_SOURCES].extra = announcement
        return announcement

    detect_new_files()


@dag(
    dag_id="churn_training_dag",
    schedule=[CHURN_SOURCES],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "snapshot": Param(
            None,
            type=["null", "string"],
            pattern=r"^(\d{4}-\d{2}-\d{2})?$",
            description="snapshot date T; empty: the asset event's, else the latest the source files label",
        ),
        "spec": Param(
            "",
            type="string",
            description="training spec (jobs/churn/contract/specs/ or a path); empty: CHURN_SPEC",
        ),
    },
    tags=["churn", "training"],
)
def churn_training_dag():
    @task(task_id="snapshot")
    def resolve_snapshot(params=None, triggering_asset_events=None, dag_run=None) -> str:
        """The snapshot every step of this run uses (see `training_snapshot`), in XCom."""
        from jobs.churn.monitoring.io import snapshot_of_run
        from jobs.common.config import load_settings

        announced = [
            (event.extra or {}).get("snapshot")
            for events in (triggering_asset_events or {}).values()
            for event in events
        ]
        day = run_day(dag_run)
        return snapshot_of_run(params.get("snapshot"), announced, load_settings().churn, day).isoformat()

    snapshot = "{{ ti.xcom_pull(task_ids='snapshot') }}"
    ingest = spark_task("ingest", "jobs/churn/ingest/__main__.py", ["--as-of", snapshot])
    features = spark_task("build_features", "jobs/churn/features/__main__.py", ["--snapshot", snapshot])
    train = spark_task("train", "jobs/churn/training/__main__.py", ["--spec", "{{ params.spec }}", "--snapshot", snapshot],
                       execution_timeout=timedelta(hours=2))  # fmt: skip

    @task
    def promote() -> dict:
        from jobs.churn.validation.__main__ import parse_args, run

        decision = run(parse_args([]))
        return {
            "promote": decision.promote,
            "reason": decision.reason,
            "version": decision.challenger_version,
        }

    score = spark_task("batch_score", "jobs/churn/deployment/__main__.py", ["--snapshot", snapshot])
    resolve_snapshot() >> ingest >> features >> train >> promote() >> score


@dag(
    dag_id="churn_drift_monitor_w",
    schedule=CronTriggerTimetable(SCHEDULES["churn_drift_monitor_w"], timezone=TIMEZONE),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["churn", "monitoring"],
)
def churn_drift_monitor_w():
    drift = spark_task("drift_report", "jobs/churn/monitoring/__main__.py", ["--date", "{{ ds }}"])

    @task.short_circuit
    def critical(ds: str, ti=None) -> bool:
        """True (go on and retrain) only when the report of the logical date says critical; the current
        snapshot it drifted on goes to XCom `snapshot` for the training run."""
        from jobs.churn.monitoring.drift import retrain_snapshot
        from jobs.churn.monitoring.io import read_summary
        from jobs.common.config import load_settings

        snapshot = retrain_snapshot(read_summary(load_settings().object_store, ds))
        if snapshot is None:
            return False
        ti.xcom_push(key="snapshot", value=snapshot)
        return True

    retrain = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id="churn_training_dag",
        conf={"snapshot": "{{ ti.xcom_pull(task_ids='critical', key='snapshot') or '' }}"},
    )
    drift >> critical() >> retrain


churn_data_watchdog()
churn_training_dag()
churn_drift_monitor_w()
