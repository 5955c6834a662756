"""Job figures reach Prometheus and its alert rules fire: a real Pushgateway and Prometheus (Debian's), the
crypto job run in-process pushing to them, PromQL and the alerts API read back."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import date, timedelta

import pytest

from infrastructure.observability import (
    PROMTOOL,
    RULES,
    prometheus_command,
    prometheus_config,
    pushgateway_command,
)
from tests.integration.helpers import insert_rows, reference_prices, run_job
from tests.prometheus import eventually, firing, query
from tests.servers import start_server, stop_server

pytestmark = pytest.mark.integration

D = date(2026, 11, 20)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_alert_rules_are_valid_and_fire_on_their_unit_series():
    check = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=RULES.parent, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A Pushgateway and a Prometheus that scrapes it every second and evaluates the rules every second."""
    tmp = tmp_path_factory.mktemp("prometheus")
    gateway = f"127.0.0.1:{_port()}"
    web = f"127.0.0.1:{_port()}"
    (tmp / "prometheus.yml").write_text(prometheus_config(gateway, "1s", "1s"))
    servers = [
        start_server(
            pushgateway_command(gateway), f"http://{gateway}/-/healthy", tmp / "gateway.log", timeout=30
        )
    ]
    try:
        servers.append(
            start_server(
                prometheus_command(tmp / "prometheus.yml", tmp / "data", web),
                f"http://{web}/-/ready",
                tmp / "prometheus.log",
                timeout=60,
            )
        )
        yield {"gateway": f"http://{gateway}", "web": f"http://{web}"}
    finally:
        for server in reversed(servers):
            stop_server(server)


def _settings_pushing_to(monkeypatch, gateway: str):
    from jobs.common.config import Settings

    monkeypatch.setenv("METRICS_PUSHGATEWAY_URL", gateway)
    return Settings()


def test_a_run_pushes_its_figures_and_a_blocked_run_fires_its_alert(db, spark, monkeypatch, prometheus):
    settings = _settings_pushing_to(monkeypatch, prometheus["gateway"])
    web = prometheus["web"]
    reference_prices(db, D - timedelta(days=6), D + timedelta(days=1))
    rows = [("MLA", str(100 + k), "18/11/2026", "BTC", "60000", "0.5") for k in range(19)]
    insert_rows(db, [*rows, ("MLA", "1", "18/11/2026", "BTC", "-5", "0.5")])
    merged = run_job(settings, D)
    assert merged.status == "merged"

    def figures_of_the_run():
        found = query(web, 'kpi_crypto_rows{job="crypto_events"}')
        return found if found.get((("job", "crypto_events"), ("kind", "read"))) == 20 else None

    rows_by_kind = eventually("the merged run's figures in Prometheus", figures_of_the_run)
    assert rows_by_kind[(("job", "crypto_events"), ("kind", "valid"))] == merged.counts["rows_valid"] == 19
    assert rows_by_kind[(("job", "crypto_events"), ("kind", "rejected"))] == 1
    assert query(web, 'kpi_crypto_rejects_by_rule{rule="PRICE_NON_POSITIVE"}') == {
        (("job", "crypto_events"), ("rule", "PRICE_NON_POSITIVE")): 1.0
    }
    assert query(web, 'kpi_crypto_merge_rows{action="inserted"}') == {
        (("action", "inserted"), ("job", "crypto_events")): 19.0
    }
    assert query(web, "kpi_crypto_reject_share")[(("job", "crypto_events"),)] == pytest.approx(0.05)
    assert query(web, "kpi_crypto_gate_passed")[(("job", "crypto_events"),)] == 1.0
    steps = query(web, 'kpi_job_step_seconds{job="crypto_events"}')
    assert {dict(k)["step"] for k in steps} >= {"land snapshot", "read + judge snapshot", "GX gate"}
    success = query(web, 'kpi_job_last_success_timestamp_seconds{pipeline="crypto_events"}')
    assert abs(next(iter(success.values())) - time.time()) < 120

    # the next day: a quarter of the window's rows have no price, the gate blocks the run
    insert_rows(db, [("MLA", str(200 + k), "21/11/2026", "BTC", "NaN", "1") for k in range(10)])
    blocked = run_job(settings, D + timedelta(days=1))
    assert blocked.status == "blocked"

    (alert,) = eventually("CryptoGateBlocked firing", lambda: firing(web, "CryptoGateBlocked"))
    assert alert["labels"]["severity"] == "critical"
    # the success group is kept: the blocked run replaced the run's figures, not the last success
    assert query(web, 'kpi_job_last_success_timestamp_seconds{pipeline="crypto_events"}') == success
    assert query(web, "kpi_crypto_gate_passed")[(("job", "crypto_events"),)] == 0.0

    # the app's Operations page shows the alert and plots the figures, read from Prometheus's API
    at = operations_page(METRICS_PROMETHEUS_URL=web)
    assert any("CryptoGateBlocked" in e.value and "firing" in e.value for e in at.error)
    assert len(at.get("vega_lite_chart")) >= 3  # rows, reject share, durations
    assert not [i for i in at.info if "No crypto events figures" in i.value]


def operations_page(**env: str):
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import clear_app_caches
    from tests.served import ROOT, environment

    clear_app_caches()
    with environment(**env):
        at = AppTest.from_file(str(ROOT / "app" / "pages" / "7_Operations.py"), default_timeout=60)
        at.run()
    clear_app_caches()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_operations_page_says_what_to_set_and_when_prometheus_is_down():
    assert "METRICS_PROMETHEUS_URL" in operations_page(METRICS_PROMETHEUS_URL="").info[0].value
    down = operations_page(METRICS_PROMETHEUS_URL=f"http://127.0.0.1:{_port()}")
    assert "Prometheus is not reachable" in down.error[0].value


def test_a_gateway_that_does_not_answer_never_fails_the_job(db, spark, monkeypatch):
    settings = _settings_pushing_to(monkeypatch, f"http://127.0.0.1:{_port()}")  # nothing listens there
    reference_prices(db, D - timedelta(days=6), D)
    insert_rows(db, [("MLA", str(100 + k), "18/11/2026", "BTC", "60000", "0.5") for k in range(5)])
    assert run_job(settings, D).status == "merged"
