"""What every DAG shares: default arguments (retries with exponential backoff, timeouts, a failure alert)
and the spark-submit task factory. DAG files import this at parse time, so it has no side effects: no
connection, no DB query, no environment read until a task runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from jobs.common.config import PROJECT_ROOT

log = logging.getLogger("kpidelivery.alerts")

TIMEZONE = "America/Argentina/Buenos_Aires"
# Each scheduled DAG's cron (in TIMEZONE): the DAG files and the REST verbs' default dates read it here.
SCHEDULES = {
    "crypto_events_dag": "0 9 * * *",  # daily 09:00
    "churn_data_watchdog": "0 * * * *",  # hourly
    "churn_drift_monitor_w": "0 6 * * 1",  # Mondays 06:00
}
SPARK_CONN_ID = "spark_default"  # AIRFLOW_CONN_SPARK_DEFAULT='spark://local%5B2%5D' or spark://host:7077


def alert_on_failure(context: dict[str, Any]) -> None:
    """Logs the failure loudly and, when ALERT_EMAIL is set (SMTP from Airflow's [smtp] settings), mails it."""
    ti = context.get("task_instance")
    message = (
        f"KPIdelivery task failed: dag={getattr(ti, 'dag_id', '?')} task={getattr(ti, 'task_id', '?')} "
        f"run={context.get('run_id')} try={getattr(ti, 'try_number', '?')}: {context.get('exception')}"
    )
    log.error(message)
    recipients = [r for r in os.environ.get("ALERT_EMAIL", "").split(",") if r.strip()]
    if recipients:
        try:
            from airflow.utils.email import send_email

            send_email(recipients, f"[kpidelivery] {getattr(ti, 'dag_id', '?')} failed", message)
        except Exception as exc:  # an alert must never mask the failure it reports
            log.error("could not send the failure e-mail: %s", exc)


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "kpidelivery",
    "retries": 2,
    # the first retry's delay and the longest one are Airflow's settings ([core] default_task_retry_delay and
    # max_task_retry_delay: STACK_TASK_RETRY_DELAY_SECONDS, STACK_MAX_TASK_RETRY_DELAY_SECONDS), not code
    "retry_exponential_backoff": 2.0,  # a float multiplier in Airflow 3
    "execution_timeout": timedelta(minutes=45),
    "on_failure_callback": alert_on_failure,
}


def spark_task(task_id: str, script: str, args: list[str], **kwargs: Any):
    """A SparkSubmitOperator for a job script of this project, in client mode (Python needs it), with the
    Debian JDBC jar on --jars and the project on PYTHONPATH; the master comes from the connection."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from jobs.common.config import load_settings
    from jobs.common.spark import launch_conf, local_ip

    spark = load_settings().spark
    events = spark.event_log_dir  # the history server's folder (SPARK_EVENT_LOG_DIR)
    return _final_on_decided_exits(SparkSubmitOperator)(
        task_id=task_id,
        application=str(PROJECT_ROOT / script),
        application_args=args,
        conn_id=SPARK_CONN_ID,
        deploy_mode="client",
        jars=str(spark.jdbc_jar),
        name=f"kpidelivery-{task_id}",
        conf=launch_conf(spark),
        on_execute_callback=lambda _: events.mkdir(parents=True, exist_ok=True),  # before the JVM needs it
        env_vars={
            "SPARK_LOCAL_IP": local_ip(),  # the driver and its UI bind there (loopback unless a container)
            "PYTHONPATH": str(PROJECT_ROOT),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false",
        },
        **kwargs,
    )


def _final_on_decided_exits(operator: type) -> type:
    """The operator, failing for good (no retry) when the job exits with a decision a retry cannot change:
    bad input (2) or blocked by the quality gate (3), as jobs.common.cli maps them. Every other failure (1:
    the infrastructure or a bug, 4: another run holds the window) is retried as DEFAULT_ARGS say."""

    class DecidedExitsAreFinal(operator):
        def execute(self, context: Any) -> Any:
            from airflow.sdk.exceptions import AirflowException, AirflowFailException

            from jobs.common.cli import EXIT_BAD_INPUT, EXIT_BLOCKED

            try:
                return super().execute(context)
            except AirflowException as exc:
                # the hook keeps the spark-submit process it waited for (client mode: the driver's exit code)
                code = getattr(getattr(self._hook, "_submit_sp", None), "returncode", None)
                decided = {EXIT_BAD_INPUT: "bad input", EXIT_BLOCKED: "blocked by the quality gate"}
                if code in decided:
                    raise AirflowFailException(
                        f"{self.task_id} exited {code} ({decided[code]}): a retry would decide the same, "
                        "so it is not retried"
                    ) from exc
                raise

    DecidedExitsAreFinal.__name__ = operator.__name__  # the UI and logs keep naming the operator
    return DecidedExitsAreFinal


def in_process_env(home: Path) -> dict[str, str]:
    """Environment for Airflow's in-process runner (`airflow dags test`) on the embedded default: SQLite
    metadata under `home`, this project's DAG folder, Spark `local[2]` through the spark_default
    connection (brackets URL-encoded, else the provider falls back to YARN silently)."""
    import sys

    from jobs.common.config import load_settings
    from jobs.common.spark import local_ip

    stack = load_settings().stack
    return {
        **os.environ,
        "SPARK_LOCAL_IP": local_ip(),  # spark-submit's driver and UI on loopback, not *:4040
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "airflow" / "dags"),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(stack.task_retry_delay_seconds),
        "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": str(stack.max_task_retry_delay_seconds),
        "AIRFLOW_CONN_SPARK_DEFAULT": "spark://local%5B2%5D",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def run_dag_in_process(
    dag_id: str, logical_date: str, env: dict[str, str], conf: dict | None = None, timeout: float = 3600
) -> subprocess.CompletedProcess:
    """Migrates the runner's metadata DB once per Airflow home and version, and runs the real DAG file
    with `airflow dags test`; the return code says whether the run succeeded."""
    import json
    import sys
    from importlib.metadata import version

    airflow = [sys.executable, "-m", "airflow"]
    home = Path(env["AIRFLOW_HOME"])
    # the in-process runner's SQLite DB: migrated by this Airflow once, while it exists
    migrated = home / f".migrated-{version('apache-airflow')}"
    if not (migrated.is_file() and (home / "airflow.db").is_file()):
        migrate = subprocess.run(
            [*airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
        )
        if migrate.returncode != 0:
            return migrate
        migrated.touch()
    extra = ["--conf", json.dumps(conf)] if conf else []
    return subprocess.run([*airflow, "dags", "test", dag_id, logical_date, *extra], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
