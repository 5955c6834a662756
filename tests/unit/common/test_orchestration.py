"""The spark-submit task factory: a job's decided exits (bad input, blocked) fail the task for good, anything
else is left to the retries. A real SparkSubmitOperator runs a stand-in `spark-submit` that exits as told."""

from __future__ import annotations

import os
import stat

import pytest


@pytest.fixture
def spark_submit_exiting(tmp_path, monkeypatch):
    def exiting(code: int) -> None:
        script = tmp_path / "bin" / "spark-submit"
        script.parent.mkdir(exist_ok=True)
        script.write_text(f"#!/bin/sh\necho 'the job ran'\nexit {code}\n")
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
