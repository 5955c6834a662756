"""Crypto events, validate-before-load: daily at 09:00 Buenos Aires, for the run's LOGICAL date.

(simulated upstream, development only) -> Spark: snapshot the window of upstream's table + validate +
quarantine + GX gate + staging -> one-transaction merge -> reconcile. The DAG only wires; the jobs live in
`jobs/crypto_events/`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from jobs.common.orchestration import DEFAULT_ARGS, SCHEDULES, TIMEZONE, spark_task


@dag(
    dag_id="crypto_events_dag",
    schedule=CronTriggerTimetable(SCHEDULES["crypto_events_dag"], timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 11, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["crypto", "validate-before-load"],
)
def crypto_events_dag():
    @task
    def simulate_upstream(ds: str) -> int:
        """Where no real upstream writes the table (CRYPTO_SIMULATE_UPSTREAM=true: development, the demo),
        the simulator plays upstream up to the logical date first; elsewhere this task is skipped."""
        from airflow.exceptions import AirflowSkipException

        from jobs.common.config import load_settings
        from jobs.crypto_events.upstream import main

        if not load_settings().crypto.simulate_upstream:
            raise AirflowSkipException("CRYPTO_SIMULATE_UPSTREAM is off: upstream writes the table itself")
        code = main(["--date", ds])
        if code != 0:
            raise RuntimeError(f"the upstream simulator exited {code}")
        return code

    validate = spark_task(
        "validate",
        "jobs/crypto_events/__main__.py",
        ["--date", "{{ ds }}", "--stage", "validate", "--dag-run-id", "{{ run_id }}"],
        trigger_rule="none_failed",  # runs after a skipped simulator too
    )

    @task
    def merge(ds: str) -> int:
        from jobs.crypto_events.merge import main

        code = main(["--date", ds])
        if code != 0:
            raise RuntimeError(f"merge of {ds} exited {code} (see dqm.dq_runs.message)")
        return code

    @task
    def reconcile(ds: str) -> dict:
        """Reads the run record back and checks read = valid + rejected + duplicates collapsed."""
        from datetime import date

        from jobs.common.config import load_settings
        from jobs.common.postgres import connect, open_business_database
        from jobs.crypto_events.runs import fetch_run, latest_run, reconcile

        pg, _ = open_business_database(load_settings().postgres)
        with connect(pg) as conn:
            run_id = latest_run(conn, date.fromisoformat(ds), status="merged")
            if run_id is None:
                raise RuntimeError(f"no merged run for {ds}")
            reconcile(conn, run_id)
            return {k: str(v) for k, v in fetch_run(conn, run_id).items()}

    simulate_upstream() >> validate >> merge() >> reconcile()


crypto_events_dag()
