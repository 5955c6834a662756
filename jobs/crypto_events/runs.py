"""The run record in dqm.dq_runs and the reconciliation check."""

from __future__ import annotations

import json
from datetime import date

PIPELINE = "crypto_events"


class ReconciliationError(RuntimeError):
    """Counts that must add up do not."""


def start_run(
    conn,
    run_id: str,
    dag_run_id: str | None,
    logical_date: date,
    window: tuple[date, date],
    bounds: tuple[date, date],
    source: str,
    reproduces: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO dqm.dq_runs (run_id, pipeline, dag_run_id, logical_date, window_start, window_end, "
        "earliest_date, latest_date, source, reproduces_run_id, status) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'running')",
        (run_id, PIPELINE, dag_run_id, logical_date, *window, *bounds, source, reproduces),
    )


def record_validation(conn, run_id: str, counts: dict, gate, status: str) -> None:
    conn.execute(
        """UPDATE dqm.dq_runs SET status = %(status)s, rows_read = %(rows_read)s, rows_valid = %(rows_valid)s,
               rows_rejected = %(rows_rejected)s, duplicates_collapsed = %(duplicates_collapsed)s,
               rows_unplaced = %(rows_unplaced)s,
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
