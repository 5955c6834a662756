"""pgAdmin 4 as the native stack runs it: its own venv, started and stopped by the stack's own `start`/`stop`
(whose `prepare` writes its configuration, login and preconfigured server) with a private STACK_DIR and port,
against the test database. Real Chromium logs in with .env's login, opens the preconfigured server (no password
prompt, as kpi_analyst), opens a saved query from the shared storage in the Query Tool's file dialog, runs it
and reads the grid, which must hold what the same query returns to kpi_analyst directly."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta

import pytest

from jobs.common.queries import QUERIES_DIR, saved_query
from tests.browser import SHOTS, chromium, page_on_failure

pytestmark = pytest.mark.integration

QUERY = "crypto_run_history"
# three runs of the crypto job (dqm.dq_runs), so the saved query has rows to show (the test database may hold
# others: the grid must show whatever the query returns)
RUNS = [(date(2026, 11, 1), "merged"), (date(2026, 11, 2), "blocked"), (date(2026, 11, 3), "failed")]
MARK = "test_pgadmin"  # their dag_run_id, to remove them afterwards


@pytest.fixture(scope="module")
def pgadmin(pg, tmp_path_factory):
    """pgAdmin started as `make up` starts it, with the settings of a second stack (isolated_env); yields
    (settings, seconds from start() to a healthy /misc/ping, `prepare` included)."""
    from infrastructure.native import stack
    from infrastructure.pgadmin.native import service
    from jobs.common.config import load_settings

    root = tmp_path_factory.mktemp("pgadmin-stack")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.isolated_env(root).items():
            patch.setenv(name, value)
        settings = load_settings()
        pgadmin = service(settings)
        began = time.monotonic()
        stack.start(settings, pgadmin)
        try:
            while not pgadmin.ready():
                if stack.running(settings, pgadmin.name) is None or time.monotonic() - began > 90:
                    pytest.fail(f"pgAdmin did not become healthy:\n{stack.tail(settings, pgadmin.name)}")
                time.sleep(0.5)
            yield settings, time.monotonic() - began
        finally:
            stack.stop(settings, pgadmin.name)


@pytest.fixture(scope="module")
def runs(pg):
    """The crypto runs the saved query lists, and what it returns to kpi_analyst: (column names, rows)."""
    from jobs.common.postgres import connect

    with connect(pg, role="admin") as admin:
        for day, status in RUNS:
            started = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
            admin.execute(
                "INSERT INTO dqm.dq_runs (run_id, pipeline, dag_run_id, logical_date, window_start, window_end, "
                "status, started_at, finished_at, rows_read, rows_valid, rows_rejected, duplicates_collapsed) "
                "VALUES (gen_random_uuid(), 'crypto_events', %s, %s, %s, %s, %s, %s, %s, 100, 90, 8, 2)",
                (MARK, day, day - timedelta(days=2), day, status, started, started + timedelta(minutes=2)),
            )
    with connect(pg, role="analyst") as analyst:
        cursor = analyst.execute(saved_query(QUERY))
        expected = [column.name for column in cursor.description], cursor.fetchall()
    yield expected
    with connect(pg, role="admin") as admin:
        admin.execute("DELETE FROM dqm.dq_runs WHERE dag_run_id = %s", (MARK,))


def test_pgadmin_answers_its_health_check_in_time(pgadmin):
    settings, seconds = pgadmin
    url = f"http://{settings.stack.host}:{settings.pgadmin.port}/misc/ping"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert (response.status, response.read()) == (200, b"PING")
    assert seconds < 60, f"pgAdmin took {seconds:.0f} s to start"


def test_the_login_is_a_plain_user_so_the_saved_queries_stay_read_only(pgadmin):
    """pgAdmin lets only an Administrator write into restricted shared storage."""
    from infrastructure.pgadmin.native import LOGIN_ROLE, cli

    settings, _ = pgadmin
    email = settings.pgadmin.default_email
    shown = cli(settings, "get-users", "--username", email, "--json", expect=email)
    (user,) = json.loads(shown[shown.index("[") :])
    assert (user["email"], user["role"], user["active"]) == (email, LOGIN_ROLE, True)


def _tree_node(page, name: str):
    return page.locator(
        ".file-entry", has=page.locator(".file-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def _expand(page, name: str, child: str) -> None:
    """Opens a node of the object explorer until `child` shows. Opening a server connects it, and pgAdmin may
    draw the server opened but empty when the connection completes after the expansion: then once more."""
    toggle = _tree_node(page, name).locator(".directory-toggle")
    toggle.click()
    try:
        _tree_node(page, child).wait_for(timeout=5_000)
    except Exception:  # playwright's TimeoutError
        toggle.click()
        toggle.click()
        _tree_node(page, child).wait_for(timeout=15_000)


def test_a_saved_query_runs_in_the_query_tool_as_the_analyst(pgadmin, runs, pg):
    from infrastructure.pgadmin.native import SHARED_STORAGE_NAME, servers

    settings, _ = pgadmin
    (server,) = servers(settings)["Servers"].values()
    columns, rows = runs
    login = settings.pgadmin
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(20_000)
        with page_on_failure(page, SHOTS / "failed_pgadmin.png"):
            page.goto(f"http://{settings.stack.host}:{login.port}")
            page.get_by_placeholder("Email Address / Username").fill(login.default_email)
            page.get_by_placeholder("Password").fill(login.default_password.get_secret_value())
            page.get_by_role("button", name="Login").click()

            # the preconfigured server, under its group, connects without asking for a password
            _expand(page, server["Group"], server["Name"])
            _expand(page, server["Name"], "Databases")
            assert page.get_by_text("Connect to Server").count() == 0, "pgAdmin asked for a password"
            _expand(page, "Databases", pg.db)
            _tree_node(page, pg.db).click()
            page.get_by_role("button", name="Tools").click()
            page.get_by_role("menuitem", name="Query Tool").click()

            tool = page.locator("iframe[id^='id-query-tool_']:visible").content_frame
            title = f"{pg.db}/{server['Username']}@{server['Name']}"
            tool.get_by_text(title).first.wait_for()

            # the saved query, from the shared storage (database/queries/), through the file dialog
            tool.get_by_role("button", name="Open File").click()
            tool.locator("button[aria-label='My Storage']").click()  # the storage menu (a modal: no roles)
            tool.locator("[role=menuitem]", has_text=SHARED_STORAGE_NAME).click()
            saved = sorted(QUERIES_DIR.glob("*.sql"))
            tool.get_by_text(f"{len(saved)} items", exact=True).wait_for()
            tool.get_by_text(f"{QUERY}.sql", exact=True).click()
            tool.locator("button[data-label='Open']").click()
            tool.locator(".cm-content", has_text="FROM dqm.dq_runs").wait_for()
            tool.get_by_role("button", name="Execute script").click()
            tool.get_by_text(f"Total rows: {len(rows)}", exact=True).wait_for()

            grid = tool.locator("[role=grid]")
            assert int(grid.get_attribute("aria-colcount")) == 1 + len(columns)  # + the row numbers
            shown = [text.split("\n")[0] for text in grid.locator("[role=columnheader]").all_inner_texts()][
                1:
            ]
            assert len(shown) >= 5 and shown == columns[: len(shown)]  # the grid draws what fits
            cells = [
                grid.locator(f"[role=gridcell][aria-colindex='{index}']").all_inner_texts()
                for index in (2, 3)  # logical_date, status
            ]
            drawn = list(zip(*cells, strict=True))  # the rows that fit, from the first
            assert len(drawn) >= min(len(rows), len(RUNS))
            assert drawn == [(str(row[0]), row[1]) for row in rows[: len(drawn)]]
    assert set(RUNS) <= {(row[0], row[1]) for row in rows}
