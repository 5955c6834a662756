"""An application for spark-submit (tests/integration/common/test_entrypoints.py): prints the input arguments
of the driver JVM it runs in, one JSON line."""

import json

from jobs.common.config import load_settings
from jobs.common.spark import build_session

spark = build_session("jvm-arguments", load_settings().spark)
runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
print("JVM " + json.dumps(list(runtime.getInputArguments())))
spark.stop()
