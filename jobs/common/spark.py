"""One place that builds Spark sessions, for `local[*]` and for a standalone master alike.

Under spark-submit the master and resources come from the submit command and win; run directly
(`python -m jobs....`) the session is configured from settings. The PostgreSQL JDBC driver comes
from the Debian package (no jar is downloaded at run time) and is shipped to executors.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
from itertools import pairwise
from pathlib import Path

from jobs.common.config import PROJECT_ROOT, SparkSettings

# local, local[4], local[*], local[4,2] (retries), local[*,2]; spark://host:port[,host:port...] (standby masters)
_LOCAL = re.compile(r"local(\[(\*|[1-9][0-9]*)(,[1-9][0-9]*)?\])?")
_STANDALONE = re.compile(r"spark://([^\s:/,]+:[0-9]{1,5})(,[^\s:/,]+:[0-9]{1,5})*")


class MasterError(ValueError):
    """A --master that Spark cannot use: said in one line before any Spark work (exit 2)."""


def check_master_url(url: str) -> str:
    """The master URL when Spark can use it, else MasterError: `local[abc]` would cost a JVM start and a
    Java stack trace to learn the same."""
    if _LOCAL.fullmatch(url) or _STANDALONE.fullmatch(url):
        return url
    raise MasterError(f"--master must be local, local[N], local[*] or spark://host:port, got {url!r}")


def master_option(value: str) -> str:
    """argparse `type=` for every job's --master: a bad URL is a usage error (exit 2), before any Spark work."""
    import argparse

    try:
        return check_master_url(value)
    except MasterError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def check_master_reachable(url: str, timeout_s: float = 10.0) -> None:
    """A standalone master must answer on its port (any one of a standby list): else MasterError naming the
    URL within `timeout_s`, instead of a Py4J error minutes later. Local masters need nothing."""
    if not url.startswith("spark://"):
        return
    deadline = time.monotonic() + timeout_s
    errors = []
    for address in url.removeprefix("spark://").split(","):
        host, port = address.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.5, deadline - time.monotonic())):
                return
        except OSError as err:
            errors.append(f"{address}: {err.strerror or err}")
    raise MasterError(
        f"the Spark master {url} does not answer ({'; '.join(errors)}): start it (`make up`) or "
        "pass another --master"
    )


def java_home() -> str | None:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else None


def local_ip() -> str:
    """The address a Spark driver binds its RPC, block manager and UI to, and advertises: SPARK_LOCAL_IP
    (a container's own name in compose), else loopback. Spark binds its UI to 0.0.0.0 when SPARK_LOCAL_IP
    is unset, so it must be in the environment before the JVM starts: every launch path sets it."""
    return os.environ.get("SPARK_LOCAL_IP") or "127.0.0.1"


def spark_env() -> dict[str, str]:
    """Environment a Spark driver (or spark-submit) needs: same Python on driver and workers, and the
    address to bind (`local_ip`)."""
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
    env["SPARK_LOCAL_IP"] = local_ip()
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
        url = check_master_url(master or spark.master_url)
        check_master_reachable(url)
        builder = builder.master(url)
    conf = {
        "spark.driver.memory": spark.driver_memory,
        "spark.executor.memory": spark.executor_memory,
        "spark.jars": str(spark.jdbc_jar),
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **launch_conf(spark),
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def launch_conf(spark: SparkSettings) -> dict[str, str]:
    """Spark properties that every way of starting a job sets (a session built here, `submit_command`, the
    DAGs' SparkSubmitOperator): the history server's event log, no REST submission port, and the JVM options
    of the driver and its executors (SPARK_JVM_OPTIONS), which must be known before the driver JVM starts."""
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": spark.event_log_dir.as_uri(),
        "spark.master.rest.enabled": "false",
    }
    if options := spark.jvm_options.strip():
        conf["spark.driver.extraJavaOptions"] = options
        conf["spark.executor.extraJavaOptions"] = options
    return conf


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
        *(arg for key, value in launch_conf(spark).items() for arg in ("--conf", f"{key}={value}")),
        str(script),
        *args,
    ]
    spark.event_log_dir.mkdir(parents=True, exist_ok=True)
    return argv, {**os.environ, **spark_env()}


MAX_READ_SLICES = 16


def row_slices(column: str, n_rows: int, per_slice: int, numbered: bool = True, most: int = MAX_READ_SLICES):
    """WHERE clauses that split `n_rows` rows into JDBC read partitions of about `per_slice` rows by an
    integer `column`. `numbered`: the rows are numbered 1..n_rows there, and the slices are contiguous
    ranges (an index range scan each); else (e.g. Spark's monotonically_increasing_id) residues modulo
    the slice count. Either way every row falls in exactly one slice: the first also takes NULL, and the
    ranges are open at both ends (numbers below 1, beyond n_rows, gaps)."""
    parts = max(1, min(most, -(-n_rows // per_slice)))
    if parts == 1:
        return ["TRUE"]
    if numbered:
        step = -(-n_rows // parts)
        cuts = [i * step for i in range(1, parts)]
        slices = [f"{column} <= {cuts[0]}"]
        slices += [f"{column} > {lo} AND {column} <= {hi}" for lo, hi in pairwise(cuts)]
        slices.append(f"{column} > {cuts[-1]}")
    else:
        # (x % p + p) % p: SQL's % keeps the dividend's sign, so a negative number would match no residue
        slices = [f"({column} % {parts} + {parts}) % {parts} = {i}" for i in range(parts)]
    slices[0] = f"({slices[0]}) OR {column} IS NULL"
    return slices


def read_jdbc_slices(spark, url: str, query: str, properties: dict[str, str], slices: list[str]):
    """`query` (a subquery with an alias) read over JDBC, one partition per `row_slices` clause."""
    return spark.read.jdbc(url, query, predicates=slices, properties=properties)
