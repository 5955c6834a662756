"""The run record in dqm.dq_runs, the lock that gives a window one run at a time, and the reconciliation."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

log = logging.getLogger(__name__)

PIPELINE = "crypto_events"
# pg_advisory_lock(namespace, day): one lock per window, named by its logical date (the window's last day)
_WINDOW_LOCK_NAMESPACE = 824_311


class ReconciliationError(RuntimeError):
    """Counts that must add up do not."""


class WindowBusy(RuntimeError):
    """Another run of the same window holds its lock and did not finish within the configured wait."""


def _holder(conn, logical_date: date, settle_s: float = 2.0) -> str:
    """Who holds the window: its run when its record is written (a lock holder writes it right after taking
    the lock, so give it a moment), else the backend."""
    deadline = time.monotonic() + settle_s
    while True:
        row = _holder_row(conn, logical_date)
        if row is None or row[1] is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if row is None:
        return "another run"
    pid, run_id, status, started = row
    if run_id is None:
        return f"backend pid {pid}"
    return f"run {run_id} ({status} since {started:%Y-%m-%d %H:%M:%S %Z}, backend pid {pid})"


def _holder_row(conn, logical_date: date):
    return conn.execute(
        """SELECT l.pid, r.run_id, r.status, r.started_at FROM pg_locks l
           LEFT JOIN LATERAL (SELECT run_id, status, started_at FROM dqm.dq_runs
                              WHERE pipeline = %s AND logical_date = %s AND status IN ('running', 'validated')
                              ORDER BY started_at DESC LIMIT 1) r ON TRUE
           WHERE l.locktype = 'advisory' AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 2
             AND l.granted""",
        (PIPELINE, logical_date, _WINDOW_LOCK_NAMESPACE, logical_date.toordinal()),
    ).fetchone()


@contextmanager
def window_lock(conn, logical_date: date, wait_seconds: float, poll_seconds: float = 0.5) -> Iterator[None]:
    """Holds the window of `logical_date` for this connection's session: landing, judging, staging, merge
    and reconciliation of one run happen under it, so a second run of the same window waits (up to
    `wait_seconds`) or raises WindowBusy naming the holder. A session lock: it dies with the connection, so a
    killed run never leaves it held."""
    key = (_WINDOW_LOCK_NAMESPACE, logical_date.toordinal())
    deadline = time.monotonic() + wait_seconds
    waited = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s::int4, %s::int4)", key).fetchone()[0]:
        if time.monotonic() >= deadline:
            raise WindowBusy(
                f"{_holder(conn, logical_date)} holds the window of {logical_date}; waited {wait_seconds:g} s "
                "(CRYPTO_RUN_LOCK_WAIT_SECONDS): run again when it has finished"
            )
        if not waited:
            log.info("the window of %s is busy (%s): waiting up to %g s", logical_date,
                     _holder(conn, logical_date), wait_seconds)  # fmt: skip
            waited = True
        time.sleep(poll_seconds)
    try:
        yield
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s::int4, %s::int4)", key)
        except Exception as err:  # a lost connection took the lock with it; never mask what the run raised
            log.debug("window lock not released explicitly (%s): the session that held it is gone", err)


def close_abandoned(conn, logical_date: date, by_run: str) -> int:
    """Under the window's lock no other run of it is alive: a run of that date still `running` died before it
    finished, and one still `validated` was never merged and is superseded by `by_run`. Both become `failed`,
    saying so (a superseded run can no longer be merged: its snapshot is older than this run's)."""
    cur = conn.execute(
        """UPDATE dqm.dq_runs SET status = 'failed', finished_at = now(),
               message = left(CASE status
                   WHEN 'running' THEN 'abandoned: the run ended without finishing (process killed or connection '
                                       || 'lost); found by run ' || %(by)s
                   ELSE 'superseded: validated but not merged before run ' || %(by)s || ' of the same date started'
               END || coalesce(' (last message: ' || message || ')', ''), 2000)
           WHERE pipeline = %(p)s AND logical_date = %(d)s AND status IN ('running', 'validated')
             AND run_id <> %(by)s::uuid""",
        {"p": PIPELINE, "d": logical_date, "by": by_run},
    )
    if cur.rowcount:
        log.warning("%d earlier run(s) of %s were left running or unmerged: marked failed", cur.rowcount,
                    logical_date)  # fmt: skip
    return cur.rowcount


def start_run(
    conn,
    run_id: str,
    dag_run_id: str | None,
    logical_date: date,
    window: tuple[date, date],
    bounds: tuple[date, date],
    source: str,
    reproduces: str | None = None,
    refused: str | None = None,
    replay: bool = False,
) -> None:
    """The run's record, `running`; or, with `refused` (why), `failed` at once: a run that never started.
    `replay`: started by a steward's replay of corrections (jobs.crypto_events.replay), not by the schedule."""
    conn.execute(
        "INSERT INTO dqm.dq_runs (run_id, pipeline, dag_run_id, logical_date, window_start, window_end, "
        "earliest_date, latest_date, source, reproduces_run_id, status, message, finished_at, is_replay) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, %s)",
        (
            run_id, PIPELINE, dag_run_id, logical_date, *window, *bounds, source, reproduces,
            "failed" if refused else "running", refused and refused[:2000], bool(refused), replay,
        ),
    )  # fmt: skip


def record_corrections_upto(conn, run_id: str, upto: int) -> None:
    """The stewards' corrections the run applies: those up to this id (what reproduces its reading)."""
    conn.execute("UPDATE dqm.dq_runs SET corrections_upto = %s WHERE run_id = %s", (upto, run_id))


def record_validation(conn, run_id: str, counts: dict, gate, status: str) -> None:
    conn.execute(
        """UPDATE dqm.dq_runs SET status = %(status)s, rows_read = %(rows_read)s, rows_valid = %(rows_valid)s,
               rows_rejected = %(rows_rejected)s, duplicates_collapsed = %(duplicates_collapsed)s,
               rows_unplaced = %(rows_unplaced)s, rows_corrected = %(rows_corrected)s,
               rejects_by_rule = %(by_rule)s, gate_passed = %(passed)s, gate_summary = %(summary)s,
               gx_results_uri = %(results)s, gx_docs_uri = %(docs)s, message = %(message)s,
               finished_at = CASE WHEN %(status)s = 'blocked' THEN now() END
           WHERE run_id = %(run_id)s""",
        {
            **counts,
            "status": status,
            "by_rule": json.dumps(counts["rejects_by_rule"]),
            "passed": gate.passed,
            "summary": json.dumps(gate.summary()),
            "results": gate.results_uri,
            "docs": gate.docs_uri,
            "message": gate.message(),
            "run_id": run_id,
        },
    )


def fail_run(conn, run_id: str, message: str) -> None:
    conn.execute(
        "UPDATE dqm.dq_runs SET status = 'failed', message = %s, finished_at = now() "
        "WHERE run_id = %s AND status NOT IN ('merged', 'blocked')",
        (message[:2000], run_id),
    )


def record_failure(conn, run_id: str, err: BaseException) -> None:
    """Records `err` on the run, never masking it: when the database itself is what failed, the record cannot
    be written now; it is logged, and the next run of the window marks this one abandoned."""
    try:
        if conn.closed:
            raise ConnectionError("the connection is closed")
        fail_run(conn, run_id, f"{type(err).__name__}: {err}")
    except Exception as record_err:  # the original failure is what the caller raises and reports
        log.warning(
            "could not record the failure of run %s in dqm.dq_runs (%s: %s); the next run of its window "
            "will mark it abandoned", run_id, type(record_err).__name__, record_err,
        )  # fmt: skip


def fetch_run(conn, run_id: str) -> dict:
    cur = conn.execute("SELECT * FROM dqm.dq_runs WHERE run_id = %s", (run_id,))
    names = [d.name for d in cur.description]
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no run {run_id} in dqm.dq_runs")
    return dict(zip(names, row, strict=True))


def latest_run(conn, logical_date: date, status: str | None = None) -> str | None:
    row = conn.execute(
        "SELECT run_id::text FROM dqm.dq_runs WHERE pipeline = %s AND logical_date = %s "
        "AND (%s::text IS NULL OR status = %s) ORDER BY started_at DESC LIMIT 1",
        (PIPELINE, logical_date, status, status),
    ).fetchone()
    return row[0] if row else None


def reconcile(conn, run_id: str) -> dict:
    """Checks that every source row is accounted for and that the tables hold what the record says."""
    run = fetch_run(conn, run_id)
    d = run["logical_date"]
    problems = []
    if run["rows_read"] != run["rows_valid"] + run["rows_rejected"] + run["duplicates_collapsed"]:
        problems.append("read != valid + rejected + duplicates collapsed")
    (rejects,) = conn.execute(
        "SELECT count(*) FROM dqm.bt_crypto_events_rejects WHERE logical_date = %s AND run_id = %s",
        (d, run_id),
    ).fetchone()
    if rejects != run["rows_rejected"]:
        problems.append(f"quarantine holds {rejects} rows, run record says {run['rows_rejected']}")
    landed, unplaced = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE scope = 'unplaced') FROM raw.bt_crypto_landing WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    if landed != run["rows_read"] or unplaced != run["rows_unplaced"]:
        problems.append(
            f"landing holds {landed} rows ({unplaced} unplaced), run read {run['rows_read']} "
            f"({run['rows_unplaced']} unplaced)"
        )
    if run["status"] == "merged":
        (active,) = conn.execute(
            """SELECT count(*) FROM prod.bt_crypto_events p
               JOIN staging.bt_crypto_events_candidate c USING (site_id, user_id, purchase_date, crypto_type)
               WHERE c.logical_date = %s AND c.run_id = %s AND p.is_active""",
            (d, run_id),
        ).fetchone()
        if active != run["rows_valid"]:
            problems.append(f"{active} valid keys active in prod, expected {run['rows_valid']}")
    if problems:
        raise ReconciliationError(f"run {run_id} ({d}) does not reconcile: " + "; ".join(problems))
    return run


_ROW_KINDS = {"rows_read": "read", "rows_valid": "valid", "rows_rejected": "rejected",
              "duplicates_collapsed": "collapsed", "rows_unplaced": "unplaced", "rows_corrected": "corrected"}  # fmt: skip
_MERGE_ACTIONS = {"rows_inserted": "inserted", "rows_updated": "updated", "rows_deactivated": "deactivated",
                  "rows_reactivated": "reactivated", "keys_held": "held", "rows_unchanged": "unchanged"}  # fmt: skip
STATUSES = ("running", "validated", "merged", "blocked", "failed")


def run_figures(run: dict, timings: dict[str, float] | None = None):
    """The figures Prometheus gets of a run (jobs/common/metrics.py), from its record in dqm.dq_runs (the one
    account of the run) and the seconds of each step the process timed."""
    from jobs.common.metrics import Figures, epoch_of

    figures = Figures(PIPELINE)
    for status in STATUSES:
        figures.add(
            "kpi_crypto_run_status", run["status"] == status, "1 for the latest run's status", status=status
        )
    figures.add(
        "kpi_crypto_run_logical_date_seconds",
        epoch_of(run["logical_date"]),
        "logical date of the latest run (unix time)",
    )
    for column, kind in _ROW_KINDS.items():
        figures.add("kpi_crypto_rows", run.get(column), "rows of the latest run, by kind", kind=kind)
    if run.get("rows_read"):
        figures.add(
            "kpi_crypto_reject_share",
            run["rows_rejected"] / run["rows_read"],
            "rejected / read of the latest run",
        )
    for rule, rows in (run.get("rejects_by_rule") or {}).items():
        figures.add("kpi_crypto_rejects_by_rule", rows, "rejected rows of the latest run, by rule", rule=rule)
    if run.get("gate_passed") is not None:
        figures.add("kpi_crypto_gate_passed", run["gate_passed"], "1 when the GX gate passed the latest run")
    for column, action in _MERGE_ACTIONS.items():
        figures.add(
            "kpi_crypto_merge_rows",
            run.get(column),
            "prod rows the latest merge changed, by action",
            action=action,
        )
    if run.get("started_at") and run.get("finished_at"):
        seconds = (run["finished_at"] - run["started_at"]).total_seconds()
        figures.add("kpi_job_duration_seconds", seconds, "start to end of the latest run")
    for step, seconds in (timings or {}).items():
        figures.add("kpi_job_step_seconds", seconds, "seconds of each step of the latest run", step=step)
    return figures


def publish_figures(conn, run_id: str, timings: dict[str, float], settings) -> None:
    """The run's figures to Prometheus's Pushgateway, from its record (whatever its ending)."""
    from jobs.common.metrics import push

    try:
        run = fetch_run(conn, run_id)
    except Exception as err:  # the database is what failed: the next run's record says so
        log.warning("figures of run %s not published: its record cannot be read (%s)", run_id, err)
        return
    push(run_figures(run, timings), settings.metrics, succeeded=run["status"] == "merged")
