"""What every DAG shares: default arguments (retries with exponential backoff, timeouts, a failure alert)
and the spark-submit task factory. DAG files import this at parse time, so it has no side effects: no
connection, no DB query, no environment read until a task runs.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from jobs.common.config import PROJECT_ROOT

log = logging.getLogger("kpidelivery.alerts")

TIMEZONE = "America/Argentina/Buenos_Aires"
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
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,  # a float multiplier in Airflow 3
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=45),
    "on_failure_callback": alert_on_failure,
}


def spark_task(task_id: str, script: str, args: list[str], **kwargs: Any):
    """A SparkSubmitOperator for a job script of this project, in client mode (Python needs it), with the
    Debian JDBC jar on --jars and the project on PYTHONPATH; the master comes from the connection."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    jar = os.environ.get("SPARK_JDBC_JAR", "/usr/share/java/postgresql.jar")
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(PROJECT_ROOT / script),
        application_args=args,
        conn_id=SPARK_CONN_ID,
        deploy_mode="client",
        jars=jar,
        name=f"kpidelivery-{task_id}",
        conf={"spark.eventLog.enabled": "true", "spark.master.rest.enabled": "false"},
        env_vars={
            "PYTHONPATH": str(PROJECT_ROOT),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false",
        },
        **kwargs,
    )
