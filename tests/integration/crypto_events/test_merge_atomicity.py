"""SIGKILL the merge process at random moments: prod is always either the before or the after state."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date

import pytest

from jobs.common.config import PROJECT_ROOT
from tests.integration.helpers import run_job, simulate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D1, D2 = date(2026, 11, 19), date(2026, 11, 20)
TRIALS = 12

# state that matters for atomicity: values, activity and the run that last changed each row
STATE = """SELECT coalesce(md5(string_agg(concat_ws(',', site_id, user_id, purchase_date, crypto_type,
               purchase_price, purchase_units, purchase_value, is_active, last_run_id), '|'
               ORDER BY site_id, user_id, purchase_date, crypto_type)), '') FROM prod.bt_crypto_events"""
RESET_RUN = """UPDATE dqm.dq_runs SET status = 'validated', finished_at = NULL, rows_inserted = NULL,
               rows_updated = NULL, rows_deactivated = NULL, rows_reactivated = NULL, keys_held = NULL,
               rows_unchanged = NULL WHERE run_id = %s"""


def _state(db) -> str:
    return db.execute(STATE).fetchone()[0]


def _restore(db, run_id: str) -> None:
    with db.transaction():
        db.execute("TRUNCATE prod.bt_crypto_events")
        db.execute("INSERT INTO prod.bt_crypto_events SELECT * FROM public.prod_before")
        db.execute(RESET_RUN, (run_id,))


def _wait_for_orphans(db, timeout: float = 60.0) -> None:
    """A killed client's backend finishes its statement, then notices and rolls back: wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (busy,) = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()
        if busy == 0:
            return
        time.sleep(0.05)
    raise AssertionError("orphaned merge backend did not finish")


def _merge_process(run_id: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.crypto_events.merge", "--date", D2.isoformat(), "--run-id", run_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_during_merge_leaves_before_or_after(db, admin_db, settings, spark):
    simulate(db, settings, D1, events_per_day=30_000, defect_share=0.02, history_days=0)
    run_job(settings, D1)
    simulate(db, settings, D2, events_per_day=30_000, defect_share=0.02, history_days=0)
    validated = run_job(settings, D2, stage="validate")
    run_id = validated.run_id
    admin_db.execute("DROP TABLE IF EXISTS public.prod_before")  # the test's own copy: the admin's
    admin_db.execute("CREATE TABLE public.prod_before AS SELECT * FROM prod.bt_crypto_events")
    before = _state(db)

    t0 = time.monotonic()  # one full merge gives the after state and how long a merge process takes
    assert _merge_process(run_id).wait(timeout=300) == 0
    full = time.monotonic() - t0
    after = _state(db)
    assert after != before

    rng = random.Random(20261122)
    outcomes = []
    for _ in range(TRIALS):
        _restore(admin_db, run_id)
        assert _state(db) == before
        proc = _merge_process(run_id)
        time.sleep(rng.uniform(0.0, full * 1.1))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        _wait_for_orphans(db)
        state = _state(db)
        assert state in (before, after), "prod is in a state between before and after the merge"
        (status,) = db.execute("SELECT status FROM dqm.dq_runs WHERE run_id = %s", (run_id,)).fetchone()
        assert (status == "merged") == (state == after)  # the run record moves with prod, atomically
        outcomes.append((code, "after" if state == after else "before"))
    killed_before_commit = sum(1 for code, s in outcomes if code == -signal.SIGKILL and s == "before")
    assert killed_before_commit >= 3, f"too few kills landed before the commit to mean anything: {outcomes}"
    admin_db.execute("DROP TABLE public.prod_before")
