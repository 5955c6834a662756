"""Ingest the five churn source files into `raw`, validated before load.

``python -m jobs.churn.ingest --source-dir DIR --as-of 2026-09-01 [--only PAYMENTS,...] [--master URL]``

Per file: check the header (missing columns are a clear error, not NULLs), read every value as text,
parse and evaluate the file's rule table in one pass (`jobs.churn.ingest.rules`), collapse exact duplicates,
let the GX gate judge the batch (`jobs.common.gate`, generated from the same rule table), then in ONE
transaction replace the batch's rows in its raw table and its quarantine rows in `dqm.churn_rejects`.
A blocked batch keeps its rejects (so people can see why) and loads nothing. Each batch is recorded in
`dqm.churn_batches`; its id comes from (file, as-of date, sha256), so a retry replaces, never duplicates.
Warning rules (values of an open vocabulary outside the known set, e.g. TPV_SEGMENT_DETAIL against
CHURN_KNOWN_SEGMENTS) reject nothing: their share and most frequent values are logged as a WARNING and
kept in the batch record (`gate.warning_rules`).

Exit codes: 0 loaded, 3 a gate blocked at least one file, 2 bad input (missing file or columns), 1 error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from jobs.churn.contract.files import BadSourceFile, file_sha256, read_header, source_file
from jobs.churn.contract.sources import IngestConfig, Source, sources
from jobs.common.cli import EXIT_BLOCKED, EXIT_OK
from jobs.common.csvfile import MB
from jobs.common.gate import GateConfig
from jobs.common.spark import master_option

log = logging.getLogger("jobs.churn.ingest")


@dataclass
class BatchOutcome:
    source: str
    batch_id: str
    status: str  # loaded | blocked | failed
    counts: dict[str, int] = field(default_factory=dict)
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    message: str = ""
    warnings: dict[str, dict] = field(default_factory=dict)  # warning rule -> rows, share, top values


def gate_config(settings, source: Source) -> GateConfig:
    churn = settings.churn
    return GateConfig(
        expected_columns=tuple(f.raw for f in source.fields),
        min_rows=churn.gate_min_rows,
        max_reject_share=churn.gate_max_reject_share,
        max_rule_share=churn.gate_max_rule_share,
        critical=frozenset(churn.gate_critical),
    )


def ingest_file(spark, conn, pg, settings, source: Source, path: Path, as_of: date, store) -> BatchOutcome:
    from jobs.churn.ingest import io
    from jobs.churn.ingest.rules import (
        annotate,
        parse_rows,
        rejected_rows,
        source_rules,
        summarise,
        valid_rows,
        warning_details,
    )
    from jobs.common.gate import run_gate
    from jobs.common.logs import Progress
    from jobs.common.rules import rule_flags

    progress = Progress(log)
    header = read_header(path, source, settings.churn.max_file_mb * MB)
    sha = file_sha256(path)
    batch = io.batch_id(source.name, as_of, sha)
    io.start_batch(conn, batch, source.name, as_of, path, sha)
    try:
        contract = IngestConfig.from_settings(settings.churn)
        rules = source_rules(source, as_of, contract)
        with progress.step(f"{source.name}: read + rules") as facts:
            parsed = parse_rows(io.read_source(spark, path, header), source, contract)
            annotated = annotate(parsed, source, rules).cache()
            counts, flagged = summarise(annotated, rules)
            by_rule = {code: n for code, n in flagged.items() if code in {r.code for r in rules if r.rejects}}
            facts.update(counts)
        with progress.step(f"{source.name}: GX gate") as facts:
            gate = run_gate(
                rule_flags(annotated, rules),
                rules,
                gate_config(settings, source),
                suite_name=f"churn_{source.name.lower()}",
                store=store,
                bucket=settings.object_store.ge_artifacts_bucket,
                prefix=f"churn/{source.name.lower()}/{as_of.isoformat()}/{batch}",
            )
            facts["passed"] = gate.passed
            warnings = warning_details(annotated, rules, flagged, gate)
        for code, w in warnings.items():
            log.warning(
                "%s: %s on %d of %d rows (share %.4f, limit %s): most frequent %s",
                source.name, code, w["rows"], counts["read"], w["share"] or 0.0, w["max_share"],
                ", ".join(f"{v!r} x{n}" for v, n in w["top_values"]),
            )  # fmt: skip
        with progress.step(f"{source.name}: write") as facts:
            status = "loaded" if gate.passed else "blocked"
            columns = io.stage_batch(
                conn,
                pg,
                source.table,
                batch,
                valid_rows(annotated, source) if gate.passed else None,
                rejected_rows(annotated, source, rules),
                counts,
            )
            with conn.transaction():  # the batch's rows, its quarantine and its record: all or nothing
                written = io.publish_batch(conn, source.table, batch, columns)
                if (written["valid"], written["rejects"]) != (
                    counts["valid"] if gate.passed else 0,
                    counts["rejected"],
                ):
                    raise io.StagingMismatch(f"{source.name}: staged {written}, counted {counts}")
                io.finish_batch(conn, batch, status, counts, by_rule, gate, warnings)
            facts.update(written)
        annotated.unpersist()
    except Exception as exc:
        io.fail_batch(conn, batch, f"{type(exc).__name__}: {exc}")
        raise
    message = gate.message()
    log.info("%s: batch %s %s (%s)", source.name, batch, status, message)
    return BatchOutcome(source.name, batch, status, counts, by_rule, message, warnings)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.churn.ingest", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source-dir", type=Path, help="folder with the five CSV files (default CHURN_SOURCE_DIR)"
    )
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        required=True,
        help="snapshot date the files describe (yyyy-mm-dd)",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated subset of files, e.g. PAYMENTS,DEMOGRAFICOS"
    )
    parser.add_argument("--master", type=master_option, help="Spark master URL (default SPARK_MASTER_URL)")
    args = parser.parse_args(argv)
    known = list(sources())
    args.only = [s.strip().upper() for s in args.only.split(",") if s.strip()] or known
    unknown = [s for s in args.only if s not in known]
    if unknown:
        parser.error(f"unknown source files {unknown}; known: {known}")
    return args


def run(args: argparse.Namespace, settings=None) -> list[BatchOutcome]:
    from jobs.common.config import load_settings
    from jobs.common.metrics import push
    from jobs.common.objectstore import open_store
    from jobs.common.postgres import connect, open_business_database
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    source_dir = args.source_dir or settings.churn.source_dir
    contracts = sources(settings.churn.history_months, settings.churn.horizon_months)
    files = {name: source_file(source_dir, contracts[name]) for name in args.only}
    # every header is checked before any Spark work: a bad file fails fast with its reason
    for name, path in files.items():
        read_header(path, contracts[name], settings.churn.max_file_mb * MB)
    pg, _ = open_business_database(settings.postgres)
    spark = build_session("churn-ingest", settings.spark, args.master)
    store = open_store(settings.object_store)
    with connect(pg) as conn:
        outcomes = [
            ingest_file(spark, conn, pg, settings, contracts[name], path, args.as_of, store)
            for name, path in files.items()
        ]
    push(ingest_figures(outcomes), settings.metrics, succeeded=all(o.status == "loaded" for o in outcomes))
    return outcomes


def ingest_figures(outcomes: list[BatchOutcome]):
    """The figures Prometheus gets of an ingest (jobs/common/metrics.py): per source file, its status, rows by
    kind and rejects by rule."""
    from jobs.common.metrics import Figures

    figures = Figures("churn_ingest")
    for o in outcomes:
        for status in ("loaded", "blocked", "failed"):
            figures.add("kpi_churn_ingest_status", o.status == status, "1 for the latest batch's status",
                        source=o.source, status=status)  # fmt: skip
        for kind, rows in o.counts.items():
            if isinstance(rows, int | float):
                figures.add(
                    "kpi_churn_ingest_rows",
                    rows,
                    "rows of the latest batch, by kind",
                    source=o.source,
                    kind=kind,
                )
        for rule, rows in o.rejects_by_rule.items():
            figures.add("kpi_churn_ingest_rejects_by_rule", rows, "rejected rows of the latest batch, by rule",
                        source=o.source, rule=rule)  # fmt: skip
    return figures


def report(outcomes: list[BatchOutcome]) -> int:
    for o in outcomes:
        log.info("%-16s %-8s %s %s", o.source, o.status, o.counts, o.message)
    return EXIT_BLOCKED if any(o.status == "blocked" for o in outcomes) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, bad_input=(BadSourceFile,), sections=("churn",))


if __name__ == "__main__":
    sys.exit(main())
