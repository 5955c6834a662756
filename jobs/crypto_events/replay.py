"""Quarantine replay: load a data steward's corrections of a date's quarantined rows, then run that date again so
that they are judged by the SAME rules and gate and the passing ones merged in ONE transaction, with an audit trail.

    python -m jobs.crypto_events.replay --date 2026-11-20 [--corrections fixes.csv] [--master local[2]]

The corrections file is CSV with the header
`run_id,landing_row,site_id,user_id,purchase_date,crypto_type,purchase_price,purchase_units,corrected_by,why`
(`run_id` and `landing_row` name the quarantine row corrected, a row of dqm.bt_crypto_events_rejects of --date;
an empty field is a missing value). It is checked line by line and loaded in one transaction, or not at all
(jobs/crypto_events/corrections.py); corrections inserted into dqm.bt_crypto_events_corrections by other means
are replayed too.

The replay is a run of the crypto events job for --date (recorded in dqm.dq_runs with `is_replay`), reading
upstream's window as it stands with every standing correction in place of upstream's values: the same landing,
rules, quarantine, gate and one-transaction merge as the scheduled run, so a replayed row can never be merged
in a way the scheduled run would not. Its merge records how it judged each correction (inserted, updated,
reactivated, unchanged, collapsed into an identical row, or rejected again with its new reason: it stays in the
quarantine, under the replay's run id); the corrections of --date that the run did not meet are marked
`absent`, with why. Later scheduled runs keep applying the corrections while upstream still has the wrong
values, so a replayed key is never deactivated as gone. Exit codes as the job's: 0 merged, 3 blocked by the
gate, 2 bad input (a bad corrections file: nothing loaded), 4 the window is busy, 1 failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make `jobs` importable
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from jobs.common.cli import EXIT_BLOCKED, EXIT_OK  # after the sys.path set-up

log = logging.getLogger("jobs.crypto_events.replay")


@dataclass(frozen=True)
class Options:
    logical_date: date
    corrections: Path | None
    master: str | None
    dag_run_id: str | None


@dataclass
class ReplayOutcome:
    run_id: str
    status: str
    loaded: int  # corrections loaded from the file
    counts: dict
    outcomes: dict[str, int]  # how the run judged the corrections (absent included)
    message: str


def parse_args(argv: list[str] | None) -> Options:
    from jobs.common.spark import master_option

    parser = argparse.ArgumentParser(
        prog="python -m jobs.crypto_events.replay", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--date", required=True, help="logical date whose quarantine was corrected, YYYY-MM-DD"
    )
    parser.add_argument(
        "--corrections", type=Path, help="CSV of corrections to load first (see the module doc)"
    )
    parser.add_argument("--master", type=master_option, help="Spark master URL (default SPARK_MASTER_URL)")
    parser.add_argument(
        "--dag-run-id", default=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"), help="Airflow DAG run id"
    )
    args = parser.parse_args(argv)
    try:
        logical_date = date.fromisoformat(args.date)
    except ValueError:
        parser.error(f"--date must be YYYY-MM-DD, got {args.date!r}")
    if args.corrections is not None and not args.corrections.is_file():
        parser.error(f"--corrections {args.corrections}: no such file")
    return Options(logical_date, args.corrections, args.master, args.dag_run_id)


def replay(opts: Options, settings=None) -> ReplayOutcome:
    from jobs.common.config import load_settings
    from jobs.common.postgres import connect, open_business_database
    from jobs.crypto_events import corrections, runs
    from jobs.crypto_events.__main__ import Options as RunOptions
    from jobs.crypto_events.__main__ import run

    settings = settings or load_settings()
    pg, _ = open_business_database(settings.postgres)
    d = opts.logical_date
    loaded = 0
    if opts.corrections is not None:  # loaded whatever the run does next: the steward's work is kept
        with connect(pg) as conn:
            found = corrections.read_corrections(opts.corrections)
            loaded = corrections.load_corrections(conn, found, d, str(opts.corrections))
        log.info("%d correction(s) of the quarantine of %s loaded from %s", loaded, d, opts.corrections)
    outcome = run(RunOptions(d, None, opts.master, "all", opts.dag_run_id, None, replay=True), settings)
    judged: dict[str, int] = {}
    if outcome.status == "merged":
        with connect(pg) as conn:
            upto = runs.fetch_run(conn, outcome.run_id)["corrections_upto"]
            absent = corrections.mark_absent(conn, outcome.run_id, d, upto)
            judged = corrections.outcomes(conn, outcome.run_id)
        if absent:
            log.warning(
                "%d correction(s) of %s were not among the window's source rows: marked absent", absent, d
            )
        log.info("replay %s of %s: corrections judged %s", outcome.run_id, d, judged)
    return ReplayOutcome(outcome.run_id, outcome.status, loaded, outcome.counts, judged, outcome.message)


def report(outcome: ReplayOutcome) -> int:
    counts = {k: v for k, v in outcome.counts.items() if k != "rejects_by_rule"}
    print(
        f"run_id={outcome.run_id} status={outcome.status} corrections_loaded={outcome.loaded} "
        + " ".join(f"{k}={v}" for k, v in counts.items())
        + "".join(f" corrections_{k}={v}" for k, v in outcome.outcomes.items())
    )
    if outcome.status == "blocked":
        print(f"blocked by the gate, prod untouched: {outcome.message}")
    return EXIT_BLOCKED if outcome.status == "blocked" else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli
    from jobs.crypto_events.__main__ import BadInput
    from jobs.crypto_events.corrections import CorrectionsRefused
    from jobs.crypto_events.runs import WindowBusy

    return run_cli(
        argv,
        parse_args,
        replay,
        report,
        bad_input=(CorrectionsRefused, BadInput),
        busy=(WindowBusy,),
        sections=("crypto",),
    )


if __name__ == "__main__":
    sys.exit(main())
