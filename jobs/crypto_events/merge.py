"""The merge of a validated run into prod.bt_crypto_events, in ONE database transaction.

Insert new keys; update keys whose values changed (IS DISTINCT FROM, so unchanged rows keep
`updated_at`); reactivate keys that reappear; deactivate window keys that no longer exist upstream;
hold (leave untouched, count) keys whose source rows were all rejected. Each change is traced in
dqm.bt_crypto_events_lineage (the run, the action, the landing row and correction it came from) by the statement
that makes it; the stewards' corrections the run applied get its judgment. The run record is updated in the
same transaction, and EVERY reconciliation check runs before COMMIT: a check that fails rolls the merge
back (the caller records the run `failed` with the reason); a kill at any moment leaves prod either as
before or as after.

CLI: ``python -m jobs.crypto_events.merge --date YYYY-MM-DD [--run-id UUID]`` merges the latest validated
run of that date (what the Airflow merge task runs), under the window's lock. Exit codes: 0 merged (or
already merged), 2 refused (the run cannot be merged: the message says why), 4 the window is busy,
1 failed (recorded on the run).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict, dataclass
from datetime import date

from psycopg.pq import TransactionStatus

from jobs.crypto_events.corrections import judge_corrections
from jobs.crypto_events.runs import ReconciliationError, fetch_run, latest_run, reconcile

log = logging.getLogger(__name__)

_MERGE_LOCK_KEY = 824_311_002  # one merge into prod.bt_crypto_events at a time
_KEY = ("site_id", "user_id", "purchase_date", "crypto_type")

_UPSERT = """
WITH cand AS (
    SELECT site_id, user_id, purchase_date, crypto_type, purchase_price, purchase_units, purchase_value,
           landing_row, row_hash, correction_id
    FROM staging.bt_crypto_events_candidate
    WHERE logical_date = %(d)s AND run_id = %(run)s
), classified AS (
    SELECT c.*,
           p.site_id IS NULL AS is_new,
           coalesce(p.is_active, FALSE) AS was_active,
           (p.purchase_price, p.purchase_units, p.purchase_value)
               IS DISTINCT FROM (c.purchase_price, c.purchase_units, c.purchase_value) AS changed
    FROM cand c
    LEFT JOIN prod.bt_crypto_events p USING (site_id, user_id, purchase_date, crypto_type)
), written AS (  -- each change is traced in the lineage, in the same statement
    SELECT *, CASE WHEN is_new THEN 'inserted' WHEN NOT was_active THEN 'reactivated' ELSE 'updated' END AS action
    FROM classified
    WHERE is_new OR changed OR NOT was_active
), upserted AS (
    INSERT INTO prod.bt_crypto_events AS p
        (site_id, user_id, purchase_date, crypto_type, purchase_price, purchase_units, purchase_value,
         is_active, created_at, updated_at, deactivated_at, last_run_id)
    SELECT site_id, user_id, purchase_date, crypto_type, purchase_price, purchase_units, purchase_value,
           TRUE, now(), now(), NULL, %(run)s
    FROM written
    ON CONFLICT (site_id, user_id, purchase_date, crypto_type) DO UPDATE SET
        purchase_price = EXCLUDED.purchase_price,
        purchase_units = EXCLUDED.purchase_units,
        purchase_value = EXCLUDED.purchase_value,
        is_active = TRUE,
        deactivated_at = NULL,
        updated_at = EXCLUDED.updated_at,
        last_run_id = EXCLUDED.last_run_id
    RETURNING 1
), traced AS (
    INSERT INTO dqm.bt_crypto_events_lineage
        (site_id, user_id, purchase_date, crypto_type, run_id, action, landing_row, row_hash, correction_id)
    SELECT site_id, user_id, purchase_date, crypto_type, %(run)s, action, landing_row, row_hash, correction_id
    FROM written
    RETURNING 1
)
SELECT count(*) FILTER (WHERE is_new),
       count(*) FILTER (WHERE NOT is_new AND was_active AND changed),
       count(*) FILTER (WHERE NOT is_new AND NOT was_active),
       count(*) FILTER (WHERE NOT is_new AND was_active AND NOT changed),
       (SELECT count(*) FROM upserted),
       (SELECT count(*) FROM traced)
FROM classified
"""


# Key sets as hash-friendly set operations: the plan stays linear even when the planner has no
# statistics for freshly loaded staging rows (a correlated NOT EXISTS degraded to O(n^2) there).
_CANDIDATE_KEYS = """SELECT site_id, user_id, purchase_date, crypto_type FROM staging.bt_crypto_events_candidate
    WHERE logical_date = %(d)s AND run_id = %(run)s"""
_REJECTED_KEYS = """SELECT key_site_id, key_user_id, key_purchase_date, key_crypto_type
    FROM dqm.bt_crypto_events_rejects
    WHERE logical_date = %(d)s AND run_id = %(run)s AND key_site_id IS NOT NULL AND key_user_id IS NOT NULL
      AND key_purchase_date IS NOT NULL AND key_crypto_type IS NOT NULL"""
_IN_WINDOW = "p.purchase_date BETWEEN %(ws)s AND %(we)s"

# keys whose source rows were all rejected: held, never deactivated
_HELD = f"""SELECT count(*), count(*) FILTER (WHERE p.is_active) FROM prod.bt_crypto_events p
    JOIN ({_REJECTED_KEYS} EXCEPT {_CANDIDATE_KEYS}) AS held (site_id, user_id, purchase_date, crypto_type)
    USING (site_id, user_id, purchase_date, crypto_type)
    WHERE {_IN_WINDOW}"""

_DEACTIVATE = f"""WITH deactivated AS (
    UPDATE prod.bt_crypto_events p
    SET is_active = FALSE, deactivated_at = now(), updated_at = now(), last_run_id = %(run)s
    FROM (SELECT site_id, user_id, purchase_date, crypto_type FROM prod.bt_crypto_events p
          WHERE {_IN_WINDOW} AND p.is_active
          EXCEPT {_CANDIDATE_KEYS}
          EXCEPT {_REJECTED_KEYS}) AS gone
    WHERE p.site_id = gone.site_id AND p.user_id = gone.user_id AND p.purchase_date = gone.purchase_date
      AND p.crypto_type = gone.crypto_type
    RETURNING p.site_id, p.user_id, p.purchase_date, p.crypto_type
)
INSERT INTO dqm.bt_crypto_events_lineage (site_id, user_id, purchase_date, crypto_type, run_id, action)
SELECT site_id, user_id, purchase_date, crypto_type, %(run)s, 'deactivated' FROM deactivated"""

_ACTIVE_IN_WINDOW = f"SELECT count(*) FROM prod.bt_crypto_events p WHERE {_IN_WINDOW} AND p.is_active"


@dataclass(frozen=True)
class MergeCounts:
    rows_inserted: int
    rows_updated: int
    rows_deactivated: int
    rows_reactivated: int
    keys_held: int
    rows_unchanged: int


class MergeRefused(RuntimeError):
    """The run cannot be merged (not validated, staging incomplete, ...)."""


def merge_run(conn, run_id: str) -> MergeCounts:
    """Merges a validated run. Idempotent: merging an already merged run returns its recorded counts."""
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        raise MergeRefused("merge_run needs an idle autocommit connection: its transaction must be its own")
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")  # compiling these large statements costs seconds, saves nothing
        # set-wise statements over a run's rows: hash joins. The quarantine just published has no statistics
        # yet (only its owner may ANALYZE it), so the planner took it for one row and chose nested loops over
        # prod's date index: 4.7 s instead of 0.1 s for the held keys of a 100k-row re-run (bench-crypto).
        conn.execute("SET LOCAL enable_nestloop = off")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MERGE_LOCK_KEY,))
        run = fetch_run(conn, run_id)
        if run["status"] == "merged":
            return MergeCounts(**{f: run[f] for f in MergeCounts.__dataclass_fields__})
        if run["status"] != "validated":
            why = f": {run['message']}" if run["message"] else ""
            raise MergeRefused(f"run {run_id} is {run['status']}, only a validated run can be merged{why}")
        p = {"d": run["logical_date"], "run": run_id, "ws": run["window_start"], "we": run["window_end"]}
        (staged,) = conn.execute(
            "SELECT count(*) FROM staging.bt_crypto_events_candidate WHERE logical_date = %(d)s AND run_id = %(run)s",
            p,
        ).fetchone()
        if staged != run["rows_valid"]:
            raise MergeRefused(
                f"staging holds {staged} candidates for run {run_id}, the run validated {run['rows_valid']}: "
                "re-run the validation (staging is unlogged and may have been emptied)"
            )
        held, held_active = conn.execute(_HELD, p).fetchone()
        inserted, updated, reactivated, unchanged, written, traced = conn.execute(_UPSERT, p).fetchone()
        deactivated = conn.execute(_DEACTIVATE, p).rowcount
        (active,) = conn.execute(_ACTIVE_IN_WINDOW, p).fetchone()
        if (
            not written == traced == inserted + updated + reactivated
            or active != run["rows_valid"] + held_active
        ):
            raise ReconciliationError(
                f"merge of run {run_id} does not reconcile: {active} active keys in the window, expected "
                f"{run['rows_valid']} valid + {held_active} held; {written} rows written and {traced} traced, "
                f"expected {inserted} inserted + {updated} updated + {reactivated} reactivated"
            )
        counts = MergeCounts(inserted, updated, deactivated, reactivated, held, unchanged)
        conn.execute(
            """UPDATE dqm.dq_runs SET status = 'merged', finished_at = now(),
                   rows_inserted = %(rows_inserted)s, rows_updated = %(rows_updated)s,
                   rows_deactivated = %(rows_deactivated)s, rows_reactivated = %(rows_reactivated)s,
                   keys_held = %(keys_held)s, rows_unchanged = %(rows_unchanged)s
               WHERE run_id = %(run_id)s""",
            {**asdict(counts), "run_id": run_id},
        )
        if run["rows_corrected"]:  # how this run judged the stewards' corrections it applied
            judge_corrections(conn, run_id, run["logical_date"], run["corrections_upto"])
        reconcile(conn, run_id)  # inside the transaction: a failed check rolls the merge back
    return counts


class NoRunToMerge(LookupError):
    """No run of the date in dqm.dq_runs (or not the one named): exit 2, with what to run first."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.crypto_events.merge", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="logical date (YYYY-MM-DD)")
    parser.add_argument("--run-id", help="run to merge (default: the latest validated run of --date)")
    return parser.parse_args(argv)


def merge_date(args: argparse.Namespace, settings) -> MergeCounts:
    """Under the window's lock: the named run, else the latest validated run of the date, else its latest
    run (whose status then says why it cannot be merged). A failure other than a refusal is rolled back and
    recorded on the run before it is raised."""
    from jobs.common.logs import Progress
    from jobs.common.postgres import connect, open_business_database
    from jobs.crypto_events.runs import publish_figures, record_failure, window_lock

    pg, _ = open_business_database(settings.postgres)
    with connect(pg) as conn, window_lock(conn, args.date, settings.crypto.run_lock_wait_seconds):
        run_id = args.run_id or latest_run(conn, args.date, "validated") or latest_run(conn, args.date)
        if run_id is None:
            raise NoRunToMerge(
                f"no run for {args.date} in dqm.dq_runs: run `python -m jobs.crypto_events --date {args.date}` first"
            )
        progress = Progress(log)
        try:
            with progress.step("merge + reconcile (one transaction)") as facts:
                counts = merge_run(conn, run_id)
                facts.update(asdict(counts))
        except (MergeRefused, LookupError):
            raise
        except Exception as err:  # reconciliation, database: rolled back, recorded, then reported
            record_failure(conn, run_id, err)
            publish_figures(conn, run_id, progress.timings, settings)
            raise
        publish_figures(conn, run_id, progress.timings, settings)
    log.info("merged run %s: %s", run_id, asdict(counts))
    return counts


def report(counts: MergeCounts) -> None:
    print(asdict(counts))


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli
    from jobs.crypto_events.runs import WindowBusy

    return run_cli(
        argv, parse_args, merge_date, report, bad_input=(MergeRefused, LookupError), busy=(WindowBusy,)
    )


if __name__ == "__main__":
    sys.exit(main())
