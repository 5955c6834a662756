"""One place that builds Spark sessions, for `local[*]` and for a standalone master alike.

Under spark-submit the master and resources come from the submit command and win; run directly
(`python -m jobs....`) the session is configured from settings. The PostgreSQL JDBC driver comes
from the Debian package (no jar is downloaded at run time) and is shipped to executors.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from jobs.common.config import PROJECT_ROOT, SparkSettings


def java_home() -> str | None:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else None


def spark_env() -> dict[str, str]:
    """Environment a Spark driver (or spark-submit) needs: same Python on driver and workers."""
    import pyspark

    env = {
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_CONF_DIR": str(PROJECT_ROOT / "infrastructure" / "spark" / "conf"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }
    if home := java_home():
        env["JAVA_HOME"] = home
    env.setdefault("SPARK_LOCAL_IP", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
    return env


def build_session(app_name: str, spark: SparkSettings, master: str | None = None):
    """Returns a SparkSession; `master` overrides SPARK_MASTER_URL (the --master option of a job)."""
    from pyspark.sql import SparkSession

    if not spark.jdbc_jar.exists():
        raise FileNotFoundError(
            f"PostgreSQL JDBC driver not found at {spark.jdbc_jar}: run `make setup` "
            "(installs Debian's libpostgresql-jdbc-java) or set SPARK_JDBC_JAR"
        )
    for key, value in spark_env().items():
        os.environ.setdefault(key, value)
    spark.event_log_dir.mkdir(parents=True, exist_ok=True)

    builder = SparkSession.builder.appName(app_name)
    if not under_spark_submit():
        builder = builder.master(master or spark.master_url)
    conf = {
        "spark.driver.memory": spark.driver_memory,
        "spark.executor.memory": spark.executor_memory,
        "spark.jars": str(spark.jdbc_jar),
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": spark.event_log_dir.as_uri(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.master.rest.enabled": "false",
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def under_spark_submit() -> bool:
    """spark-submit starts the Python driver with a gateway already open; its --master then wins."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def submit_command(
    script: str | Path, args: list[str], spark: SparkSettings, master: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The spark-submit command line and environment for a job script (client mode, as Python needs).

    The JDBC driver goes on --jars: under spark-submit the driver JVM exists before any session config.
    """
    submit = Path(sys.executable).parent / "spark-submit"
    argv = [
        str(submit),
        "--master",
        master or spark.master_url,
        "--deploy-mode",
        "client",
        "--driver-memory",
        spark.driver_memory,
        "--executor-memory",
        spark.executor_memory,
        "--jars",
        str(spark.jdbc_jar),
        "--conf",
        f"spark.eventLog.dir={spark.event_log_dir.as_uri()}",
        str(script),
        *args,
    ]
    spark.event_log_dir.mkdir(parents=True, exist_ok=True)
    return argv, {**os.environ, **spark_env()}
