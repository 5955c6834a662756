"""Crypto events, validate-before-load: one Spark job per logical date.

    python -m jobs.crypto_events --date 2026-11-20 [--window-days 5] [--master spark://host:7077]
    python -m jobs.crypto_events --reproduce RUN_ID      # the same run again, from its landing snapshot
    spark-submit jobs/crypto_events/__main__.py --date 2026-11-20

Snapshots the window [D-4, D] of upstream's history table as it stands (plus the rows whose date no window
can hold, once) into the run's landing table, normalises and parses it, evaluates every rule in one pass,
quarantines rejects with their reasons (dqm), stages the valid rows, lets the GX gate judge the batch, then
merges into prod in one transaction and reconciles. Exit codes: 0 merged (or validated with --stage
validate), 3 blocked by the gate, 2 bad input or configuration (one line, no traceback), 4 refused: another
run of the same window held it longer than CRYPTO_RUN_LOCK_WAIT_SECONDS, 1 failed (recorded on the run).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as a file by spark-submit: make `jobs` importable
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from jobs.common.cli import EXIT_BLOCKED, EXIT_OK  # after the sys.path set-up

if TYPE_CHECKING:
    from jobs.crypto_events.source import Landed, SourceTable

log = logging.getLogger("jobs.crypto_events")


class BadInput(ValueError):
    """Input the run cannot start on: said in one line, exit 2."""


@dataclass(frozen=True)
class Options:
    logical_date: date | None
    window_days: int | None
    master: str | None
    stage: str
    dag_run_id: str | None
    reproduce: str | None = None  # run id whose landing snapshot to run again
    replay: bool = False  # started by a steward's replay of corrections (jobs.crypto_events.replay)


def parse_args(argv: list[str] | None) -> Options:
    from jobs.common.spark import master_option  # after the sys.path set-up above (spark-submit runs a file)

    parser = argparse.ArgumentParser(prog="python -m jobs.crypto_events", description=__doc__.split("\n")[0])
    parser.add_argument("--date", help="Airflow logical date of the run, YYYY-MM-DD (never today)")
    parser.add_argument("--window-days", type=int, help="window length in days (default CRYPTO_WINDOW_DAYS)")
    parser.add_argument(
        "--master",
        type=master_option,
        help="Spark master URL (default SPARK_MASTER_URL; ignored under spark-submit)",
    )
    parser.add_argument(
        "--stage",
        choices=["all", "validate"],
        default="all",
        help="'validate' stops after quarantine + gate + staging (the merge task runs jobs.crypto_events.merge)",
    )
    parser.add_argument(
        "--dag-run-id", default=os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"), help="Airflow DAG run id"
    )
    parser.add_argument(
        "--reproduce",
        metavar="RUN_ID",
        help="run again what that run read (its landing snapshot, its window and date bounds), not upstream",
    )
    args = parser.parse_args(argv)
    logical_date = None
    if args.date is not None:
        try:
            logical_date = date.fromisoformat(args.date)
        except ValueError:
            parser.error(f"--date must be YYYY-MM-DD, got {args.date!r}")
    if args.reproduce is not None:
        try:
            args.reproduce = str(uuid.UUID(args.reproduce))
        except ValueError:
            parser.error(f"--reproduce must be a run id (a UUID from dqm.dq_runs), got {args.reproduce!r}")
        if args.window_days is not None:
            parser.error("--reproduce takes the window of the run it reproduces: drop --window-days")
    elif logical_date is None:
        parser.error("the following arguments are required: --date (or --reproduce RUN_ID)")
    if args.window_days is not None and not 1 <= args.window_days <= 60:
        parser.error("--window-days must be between 1 and 60")
    return Options(logical_date, args.window_days, args.master, args.stage, args.dag_run_id, args.reproduce)


@dataclass
class RunOutcome:
    run_id: str
    status: str
    counts: dict
    message: str


@dataclass(frozen=True)
class Plan:
    """What a run reads: decided before any Spark work."""

    logical_date: date
    window: tuple[date, date]
    bounds: tuple[date, date]
    source: str
    table: SourceTable | None  # None when reproducing


def _plan(conn, opts: Options, crypto) -> Plan:
    from jobs.crypto_events import runs, source

    if opts.reproduce:
        try:
            original = runs.fetch_run(conn, opts.reproduce)
        except LookupError as err:
            raise BadInput(str(err)) from err
        if opts.logical_date and opts.logical_date != original["logical_date"]:
            raise BadInput(f"run {opts.reproduce} is of {original['logical_date']}, not {opts.logical_date}")
        if original["rows_read"] is None:
            raise BadInput(f"run {opts.reproduce} ended {original['status']} before its snapshot was judged")
        if source.landed_counts(conn, opts.reproduce).rows != original["rows_read"]:
            raise BadInput(
                f"the landing snapshot of run {opts.reproduce} is gone (pruned after "
                f"CRYPTO_LANDING_RETENTION_DAYS={crypto.landing_retention_days})"
            )
        return Plan(
            original["logical_date"],
            (original["window_start"], original["window_end"]),
            (original["earliest_date"], original["latest_date"]),
            f"{source.LANDING_TABLE} of run {opts.reproduce}",
            None,
        )
    if opts.logical_date is not None and opts.logical_date < crypto.earliest_date:
        raise BadInput(
            f"--date {opts.logical_date} is before CRYPTO_EARLIEST_DATE {crypto.earliest_date}: no purchase "
            "of its window can be real"
        )
    try:
        table = source.describe_source(conn, crypto.source_table)
    except source.SourceTableError as err:
        raise BadInput(str(err)) from err
    d = opts.logical_date
    assert d is not None
    try:
        window, bounds = crypto.window(d, opts.window_days), crypto.date_bounds(d, date.today())
    except OverflowError:
        raise BadInput(
            f"--date {d} is too far in the future: its window and bounds leave the calendar"
        ) from None
    return Plan(d, window, bounds, table.name, table)


def place_texts(conn, spark, plan: Plan, date_formats, also: set[str]) -> dict[str, str]:
    """Where the date texts the run needs fall: the source's distinct texts that mean a day of the window or
    fit no window (an index walk, then THE parse of the rules on Spark: few rows, one per distinct text), and
    every text of `also` (the corrections' dates) wherever it falls. Returns text -> placement."""
    from pyspark.sql import functions as F

    from jobs.crypto_events import source, transform

    texts = source.distinct_date_texts(conn, plan.table)
    frame = spark.createDataFrame([(t,) for t in sorted(set(texts) | also)], "purchase_date string")
    placed = transform.place_dates(frame, date_formats, plan.window, plan.bounds)
    wanted = placed.where(
        (F.col("placement") != transform.ELSEWHERE) | F.col("purchase_date").isin(sorted(also))
    )
    placement = {
        row["purchase_date"]: row["placement"]
        for row in wanted.select("purchase_date", "placement").collect()
    }
    log.info(
        "%d distinct date texts in %s: %d in the window, %d fit no window",
        len(texts), plan.source, sum(1 for t in texts if placement.get(t) == transform.WINDOW),
        sum(1 for t in texts if placement.get(t) == transform.UNPLACED),
    )  # fmt: skip
    return placement


def land(conn, spark, run_id: str, plan: Plan, date_formats, corrections_upto: int) -> Landed:
    """The run's landing snapshot, in one REPEATABLE READ transaction: the texts placed, the rows copied. A row
    whose date a steward corrected is placed by its corrected date (`source.Moves`)."""
    from jobs.crypto_events import corrections, source, transform

    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        moves = corrections.date_moves(conn, corrections_upto)
        placement = place_texts(conn, spark, plan, date_formats, {m.corrected for m in moves if m.corrected})
        texts = [t for t in placement if placement[t] in (transform.WINDOW, transform.UNPLACED)]
        moved = source.Moves.of(moves, placement, transform.WINDOW, transform.ELSEWHERE)
        if moved.into_window or moved.out:
            log.info("corrected dates: %d row(s) moved into the window, %d placed elsewhere by their correction",
                     len(moved.into_window), len(moved.out) - len(moved.into_window))  # fmt: skip
        return source.land_snapshot(
            conn,
            run_id,
            plan.table,
            [t for t in texts if placement[t] == transform.WINDOW],
            [t for t in texts if placement[t] == transform.UNPLACED],
            moved,
        )


def run(opts: Options, settings=None) -> RunOutcome:
    from jobs.common.config import load_settings
    from jobs.common.gate import GateConfig, run_gate
    from jobs.common.logs import Progress
    from jobs.common.objectstore import open_store
    from jobs.common.postgres import connect, open_business_database
    from jobs.common.spark import build_session
    from jobs.crypto_events import corrections, io, runs, source, transform
    from jobs.crypto_events.merge import merge_run
    from jobs.crypto_events.rules import RuleContext, crypto_rules

    settings = settings or load_settings()
    crypto = settings.crypto
    progress = Progress(log)
    pg, _ = open_business_database(settings.postgres)
    run_id = str(uuid.uuid4())

    with connect(pg) as conn, ExitStack() as held:
        plan = _plan(conn, opts, crypto)
        d, window = plan.logical_date, plan.window
        record = partial(
            runs.start_run, conn, run_id, opts.dag_run_id, d, window, plan.bounds, plan.source, opts.reproduce,
            replay=opts.replay,
        )  # fmt: skip
        try:  # the window is this run's from its record to its reconciliation
            held.enter_context(runs.window_lock(conn, d, crypto.run_lock_wait_seconds))
        except runs.WindowBusy as err:  # refused, and recorded; nothing of the running one is touched
            record(refused=f"refused: {err}")
            raise
        record()
        runs.close_abandoned(conn, d, run_id)
        upto = corrections.latest(conn)  # the stewards' corrections this run applies: those up to here
        runs.record_corrections_upto(conn, run_id, upto)
        log.info("run %s: logical date %s, window %s..%s, reading %s", run_id, d, *window, plan.source)
        try:
            with progress.step("spark session") as facts:
                spark = build_session(f"crypto_events {d}", settings.spark, opts.master)
                facts["master"] = spark.sparkContext.master
            with progress.step("land snapshot") as facts:
                if opts.reproduce:
                    landed = source.copy_landing(conn, run_id, opts.reproduce)
                else:
                    landed = land(conn, spark, run_id, plan, crypto.date_formats, upto)
                facts.update(window_rows=landed.window, unplaced_rows=landed.unplaced)
            ctx = RuleContext(
                *window,
                *plan.bounds,
                tuple(crypto.known_sites),
                tuple(crypto.known_cryptos),
                crypto.price_tolerance,
            )
            rules = crypto_rules(ctx)
            with progress.step("read + judge snapshot") as facts:
                raw = io.read_landing(spark, pg, run_id, landed.rows, upto)
                refs = io.read_reference_prices(spark, pg, *window)
                annotated = transform.annotate(raw, rules, crypto.date_formats, refs).cache()
                counts = transform.summarise(annotated, rules)
                facts.update({k: v for k, v in counts.items() if k != "rejects_by_rule"})
            if counts["rejects_by_rule"]:
                log.info("rejects by rule: %s", counts["rejects_by_rule"])
            with progress.step("quarantine rejects") as facts:
                rejects = transform.rejected_rows(annotated)
                facts["rows"] = io.quarantine(conn, pg, rejects, d, run_id, counts["rows_rejected"])
            with progress.step("GX gate") as facts:
                gate_config = GateConfig(
                    expected_columns=transform.RAW_COLUMNS,
                    min_rows=crypto.gate_min_rows,
                    max_reject_share=crypto.gate_max_reject_share,
                    max_rule_share=crypto.gate_max_rule_share,
                    critical=frozenset(crypto.gate_critical),
                )
                gate = run_gate(
                    annotated,
                    rules,
                    gate_config,
                    suite_name="bt_crypto_events",
                    store=open_store(settings.object_store),
                    bucket=settings.object_store.ge_artifacts_bucket,
                    prefix=f"crypto_events/{d.isoformat()}/{run_id}",
                )
                facts.update(passed=gate.passed, results=gate.results_uri)
            if not gate.passed:
                runs.record_validation(conn, run_id, counts, gate, status="blocked")
                source.prune_landing(conn, crypto.landing_retention_days)
                log.error("run %s BLOCKED, prod untouched: %s", run_id, gate.message())
                return RunOutcome(run_id, "blocked", counts, gate.message())
            with progress.step("stage candidates") as facts:
                candidates = transform.valid_rows(annotated)
                facts["rows"] = io.stage_candidates(conn, pg, candidates, d, run_id, counts["rows_valid"])
            runs.record_validation(conn, run_id, counts, gate, status="validated")
            source.prune_landing(conn, crypto.landing_retention_days)
            if opts.stage == "validate":
                return RunOutcome(run_id, "validated", counts, gate.message())
            with progress.step("merge + reconcile (one transaction)") as facts:
                merged = merge_run(conn, run_id)
                facts.update(asdict(merged))
            log.info("run %s merged and reconciled in %.1fs", run_id, progress.elapsed)
            return RunOutcome(run_id, "merged", {**counts, **asdict(merged)}, gate.message())
        except Exception as err:
            runs.record_failure(conn, run_id, err)  # never masks err, even when the database is what failed
            raise
        finally:
            if "annotated" in locals():
                annotated.unpersist()
            runs.publish_figures(conn, run_id, progress.timings, settings)


def report(outcome: RunOutcome) -> int:
    print(
        f"run_id={outcome.run_id} status={outcome.status} "
        + " ".join(f"{k}={v}" for k, v in outcome.counts.items())
    )
    return EXIT_BLOCKED if outcome.status == "blocked" else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli
    from jobs.crypto_events.runs import WindowBusy

    return run_cli(
        argv, parse_args, run, report, bad_input=(BadInput,), busy=(WindowBusy,), sections=("crypto",)
    )


if __name__ == "__main__":
    sys.exit(main())
