"""Prometheus for the jobs' figures: its configuration (the Pushgateway scraped with `honor_labels`, so each
figure keeps the `job` of the run that pushed it; the alert rules of infrastructure/prometheus/alerts.yml), and
the commands that run Debian's `prometheus` and `prometheus-pushgateway` as processes of our own."""

from __future__ import annotations

from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parent / "prometheus" / "alerts.yml"
PROMETHEUS = "/usr/bin/prometheus"
PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
PROMTOOL = "/usr/bin/promtool"


def prometheus_config(
    pushgateway: str, scrape_interval: str = "15s", evaluation_interval: str = "15s"
) -> str:
    """prometheus.yml: scrape the gateway at `pushgateway` (host:port) and Prometheus itself; evaluate the rules."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [pushgateway]}]},
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def pushgateway_command(listen: str) -> list[str]:
    return [PUSHGATEWAY, f"--web.listen-address={listen}"]


def prometheus_command(config: Path, data_dir: Path, listen: str) -> list[str]:
    return [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={listen}",
        "--web.enable-lifecycle",  # POST /-/reload after a rule change
    ]
