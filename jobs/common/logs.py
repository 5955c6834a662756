"""Logging set-up for entrypoints and a progress helper that reports counts and elapsed time."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

FORMAT = "%(asctime)s %(levelname)s %(name)s | %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Called by entrypoints only (never at import time)."""
    root = logging.getLogger()
    if not any(getattr(h, "_kpi", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler._kpi = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("py4j", "great_expectations", "botocore", "urllib3", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Progress:
    """Logs each step of a job with its elapsed time and the total since the job started."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, object]]:
        facts: dict[str, object] = {}
        t0 = time.perf_counter()
        self.log.info("%s ...", name)
        yield facts
        took = time.perf_counter() - t0
        self.timings[name] = took
        detail = " ".join(f"{k}={v}" for k, v in facts.items())
        self.log.info("%s done in %.1fs (total %.1fs) %s", name, took, self.elapsed, detail)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
