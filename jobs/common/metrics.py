"""Job figures for Prometheus: every run pushes its figures to the Pushgateway when it ends, the standard route
for batch jobs (a run is gone before a scrape could find it; Prometheus scrapes the gateway instead). The alert
rules in infrastructure/prometheus/alerts.yml read them; docs/operations.md lists them.

Each job pushes ONE group (`job=<name>`) and replaces it with every run, so the gateway holds the figures of
the latest run and Prometheus keeps their history. A successful run also pushes a group of its own
(`job=<name>_success`) with its time, which a failed run never replaces (the "no successful run" alert reads
it). A push that fails is logged and never fails the job: the data is what the job is for, and the run record
in the database says what happened either way.

    figures = Figures("crypto_events")
    figures.add("kpi_crypto_rows", 1000, "rows of the run by kind", kind="read")
    push(figures, settings.metrics)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    doc: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class Figures:
    """The figures of one run of `job`, as gauges (a figure is the state of the latest run, not a total)."""

    job: str
    items: list[Figure] = field(default_factory=list)

    def add(self, name: str, value: float | int | bool | None, doc: str, **labels: object) -> None:
        if value is None:  # a figure the run did not reach (a blocked run merges nothing): not pushed
            return
        self.items.append(
            Figure(name, float(value), doc, tuple(sorted((k, str(v)) for k, v in labels.items())))
        )

    def value(self, name: str, **labels: object) -> float | None:
        wanted = tuple(sorted((k, str(v)) for k, v in labels.items()))
        return next((f.value for f in self.items if f.name == name and f.labels == wanted), None)

    def registry(self):
        """A fresh prometheus-client registry holding the figures (one Gauge per name; every figure of a name
        must have the same label names)."""
        from prometheus_client import CollectorRegistry, Gauge

        registry = CollectorRegistry()
        gauges: dict[str, Gauge] = {}
        for figure in self.items:
            names = tuple(k for k, _ in figure.labels)
            gauge = gauges.get(figure.name)
            if gauge is None:
                gauge = gauges[figure.name] = Gauge(figure.name, figure.doc, names, registry=registry)
            elif tuple(gauge._labelnames) != names:
                raise ValueError(f"{figure.name}: labels {names} differ from {gauge._labelnames}")
            (gauge.labels(*(v for _, v in figure.labels)) if names else gauge).set(figure.value)
        return registry


def success_figures(job: str, finished: float | None = None) -> Figures:
    """The group a successful run pushes besides its figures: when it finished."""
    figures = Figures(f"{job}_success")
    figures.add(
        "kpi_job_last_success_timestamp_seconds",
        finished if finished is not None else time.time(),
        "when the job last ended successfully (unix time)",
        pipeline=job,
    )
    return figures


def push(figures: Figures, settings, succeeded: bool = False) -> bool:
    """Replaces the job's group on the Pushgateway with these figures (and, when `succeeded`, its success
    group). Returns whether they were pushed; never raises for the gateway's sake."""
    from prometheus_client import push_to_gateway

    url = settings.pushgateway_url
    summary = " ".join(
        f"{f.name}{dict(f.labels) if f.labels else ''}={f.value:g}" for f in figures.items[:12]
    )
    if not url:
        log.info("figures of %s (METRICS_PUSHGATEWAY_URL unset, not pushed): %s", figures.job, summary)
        return False
    groups = [figures, success_figures(figures.job)] if succeeded else [figures]
    try:
        for group in groups:
            push_to_gateway(
                url, job=group.job, registry=group.registry(), timeout=settings.push_timeout_seconds
            )
    except Exception as err:  # the gateway's outage must not fail a data job: said, and the job goes on
        log.warning("figures of %s not pushed to %s (%s: %s)", figures.job, url, type(err).__name__, err)
        return False
    log.info("figures of %s pushed to %s (%d)", figures.job, url, len(figures.items))
    return True


def step_figures(figures: Figures, timings: dict[str, float], total: float | None = None) -> Figures:
    """Adds each step's seconds (jobs.common.logs.Progress) and the run's total to `figures`."""
    for step, seconds in timings.items():
        figures.add("kpi_job_step_seconds", seconds, "seconds of each step of the latest run", step=step)
    figures.add("kpi_job_duration_seconds", total, "start to end of the latest run")
    return figures


def epoch_of(day) -> float:
    """A date (or ISO date text) as the unix time of its midnight UTC: how figures carry dates."""
    from datetime import UTC, date, datetime

    day = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


# --- reading them back (the app's Operations page) ------------------------------------------------------------


class PrometheusUnavailable(RuntimeError):
    """Prometheus's HTTP API did not answer, or answered with an error."""


def _api(url: str, path: str, params: dict[str, str] | None = None, timeout: float = 10.0) -> dict:
    import requests

    try:
        response = requests.get(f"{url.rstrip('/')}/api/v1/{path}", params=params, timeout=timeout)
        body = response.json()
    except (requests.RequestException, ValueError) as err:
        raise PrometheusUnavailable(f"{url}: {err}") from err
    if body.get("status") != "success":
        raise PrometheusUnavailable(
            f"{url}: {body.get('errorType', response.status_code)}: {body.get('error', '')}"
        )
    return body["data"]


def query_range(url: str, promql: str, start: float, end: float, step: float):
    """A PromQL range query as a long frame: `time` (UTC), `value` and one column per label of the series."""
    import pandas as pd

    data = _api(
        url,
        "query_range",
        {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
    )
    rows = [
        {**{k: v for k, v in series["metric"].items() if k != "__name__"}, "time": t, "value": float(v)}
        for series in data["result"]
        for t, v in series["values"]
    ]
    frame = pd.DataFrame(rows, columns=["time", "value"]) if not rows else pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    return frame


def alerts(url: str) -> list[dict]:
    """The alerts Prometheus holds now (pending or firing), each with its labels, state and since when."""
    return [
        {
            "alert": a["labels"].get("alertname", ""),
            "state": a["state"],
            "severity": a["labels"].get("severity", ""),
            "since": a.get("activeAt", ""),
            "summary": a.get("annotations", {}).get("summary", ""),
            "labels": {k: v for k, v in a["labels"].items() if k not in ("alertname", "severity")},
        }
        for a in _api(url, "alerts")["alerts"]
    ]
