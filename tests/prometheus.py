"""Reading a real Prometheus from tests: instant PromQL queries, firing alerts, and waiting for either."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def query(web: str, promql: str) -> dict[tuple, float]:
    """An instant PromQL query: labels (sorted, without __name__) -> value."""
    found = _get(f"{web}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")["data"]["result"]
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
        for r in found
    }


def firing(web: str, alertname: str) -> list[dict]:
    """The alerts of that name Prometheus holds as firing now."""
    alerts = _get(f"{web}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def eventually(what: str, check, timeout: float = 30.0, every: float = 0.5):
    """Calls `check` until it returns something truthy (returned), failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what}: not within {timeout:g} s"
            return value
        time.sleep(every)
