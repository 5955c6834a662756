"""The spark-submit task factory: a job's decided exits (bad input, blocked) fail the task for good, anything
else is left to the retries; it launches with the same Spark properties as every other way of starting a job,
SPARK_JVM_OPTIONS included. A real SparkSubmitOperator runs a stand-in `spark-submit` that records its command
line and exits as told."""

from __future__ import annotations

import os
import stat

import pytest


@pytest.fixture
def spark_submit_exiting(tmp_path, monkeypatch):
    def exiting(code: int) -> None:
        script = tmp_path / "bin" / "spark-submit"
        script.parent.mkdir(exist_ok=True)
        script.write_text(
            f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > {tmp_path / "argv"}\nexit {code}\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("SPARK_HOME", raising=False)  # else the hook runs $SPARK_HOME/bin/spark-submit

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", "spark://local%5B1%5D")
    monkeypatch.setenv("SPARK_EVENT_LOG_DIR", str(tmp_path / "events"))
    return exiting


@pytest.mark.parametrize(("code", "final"), [(2, True), (3, True), (1, False), (4, False)])
def test_bad_input_and_blocked_are_final_other_failures_are_retried(spark_submit_exiting, code, final):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from jobs.common.orchestration import spark_task

    spark_submit_exiting(code)
    task = spark_task("validate", "jobs/crypto_events/__main__.py", ["--date", "2026-11-20"])
    assert type(task).__name__ == "SparkSubmitOperator"
    with pytest.raises(AirflowException) as raised:
        task.execute({})
    assert isinstance(raised.value, AirflowFailException) is final, raised.value
    if final:
        assert f"exited {code}" in str(raised.value) and "not retried" in str(raised.value)


def test_a_job_that_succeeds_passes(spark_submit_exiting):
    from jobs.common.orchestration import spark_task

    spark_submit_exiting(0)
    spark_task("validate", "jobs/crypto_events/__main__.py", ["--date", "2026-11-20"]).execute({})


OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def test_launch_conf_carries_the_jvm_options_to_driver_and_executors(tmp_path):
    from jobs.common.config import SparkSettings
    from jobs.common.spark import launch_conf

    plain = launch_conf(SparkSettings(event_log_dir=tmp_path, jvm_options=""))
    assert plain == {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": tmp_path.as_uri(),
        "spark.master.rest.enabled": "false",
    }
    tuned = launch_conf(SparkSettings(event_log_dir=tmp_path, jvm_options=f"  {OPTIONS} "))
    assert tuned == {
        **plain,
        "spark.driver.extraJavaOptions": OPTIONS,
        "spark.executor.extraJavaOptions": OPTIONS,
    }


def test_submit_command_and_the_dag_task_pass_the_same_launch_conf(
    spark_submit_exiting, tmp_path, monkeypatch
):
    """(That a job's JVM runs with the options: tests/integration/common/test_entrypoints.py.)"""
    from jobs.common.config import load_settings
    from jobs.common.orchestration import spark_task
    from jobs.common.spark import launch_conf, submit_command

    monkeypatch.setenv("SPARK_JVM_OPTIONS", OPTIONS)
    spark_submit_exiting(0)
    spark = load_settings().spark
    expected = launch_conf(spark)
    assert expected["spark.executor.extraJavaOptions"] == OPTIONS

    spark_task("validate", "jobs/crypto_events/__main__.py", ["--date", "2026-11-20"]).execute({})
    from_dag = (tmp_path / "argv").read_text().splitlines()
    argv, _ = submit_command("jobs/crypto_events/__main__.py", ["--date", "2026-11-20"], spark, "local[1]")
    for command in (from_dag, argv):
        confs = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "--conf")
        assert expected.items() <= confs.items(), command
        assert command[command.index("--jars") + 1] == str(spark.jdbc_jar)
