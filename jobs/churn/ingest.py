"""Ingest the five churn source files into `raw`, validated before load.

``python -m jobs.churn.ingest --source-dir DIR --as-of 2026-09-01 [--only PAYMENTS,...] [--master URL]``

Per file: check the header (missing columns are a clear error, not NULLs), read every value as text,
parse and evaluate the file's rule table in one pass (`jobs.churn.sources`), collapse exact duplicates,
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
import hashlib
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from jobs.churn.sources import CORRUPT, IngestConfig, Source, annotate, parse_rows, source_rules, sources
from jobs.common.cli import EXIT_BLOCKED, EXIT_OK
from jobs.common.csvfile import (
    MB,
    CsvFileProblem,
    check_size,
    decode,
    missing_names,
    parse_header,
    repeated_names,
)
from jobs.common.gate import GateConfig, GateResult
from jobs.common.rules import Rule
from jobs.common.spark import master_option

log = logging.getLogger(__name__)

_BATCH_NAMESPACE = uuid.UUID("8f6f0d3e-5d1c-4f7b-9a51-1c8d2e0b7a10")
SLICE_ROWS = 250_000  # rows per driver round trip when copying into PostgreSQL
HEAD_BYTES = 1 << 20  # what the header check reads of a file: the header line and the first rows


class BadSourceFile(ValueError):
    """A file that cannot be ingested at all (missing, empty, without the expected columns)."""


@dataclass
class BatchOutcome:
    source: str
    batch_id: str
    status: str  # loaded | blocked | failed
    counts: dict[str, int] = field(default_factory=dict)
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    message: str = ""
    warnings: dict[str, dict] = field(default_factory=dict)  # warning rule -> rows, share, top values


def batch_id(source: str, as_of: date, sha256: str) -> str:
    return str(uuid.uuid5(_BATCH_NAMESPACE, f"{source}|{as_of.isoformat()}|{sha256}"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(path: Path, source: Source, max_bytes: int | None = None) -> list[str]:
    """The file's column names, from its first HEAD_BYTES only; raises BadSourceFile when it is larger than
    `max_bytes` (checked before it is opened), not UTF-8, empty, too wide or misses expected columns."""
    if not path.is_file():
        raise BadSourceFile(f"{source.name}: file not found: {path}")
    subject = f"{source.name}: {path}"
    size = path.stat().st_size
    try:
        check_size(size, max_bytes)
    except CsvFileProblem as exc:
        raise BadSourceFile(f"{subject} {exc} (CHURN_MAX_FILE_MB): split it or raise the limit") from None
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        complete = not handle.read(1)
    try:
        header = parse_header(decode(head, complete), complete)
    except CsvFileProblem as exc:
        raise BadSourceFile(f"{subject} {exc}") from None
    if not any(header):
        raise BadSourceFile(f"{subject} is empty (no header line)")
    missing = missing_names(header, source.file_columns)
    if missing:
        raise BadSourceFile(
            f"{subject} misses columns {missing} (found {header}; expected {list(source.file_columns)})"
        )
    repeated = repeated_names(header)
    if repeated:
        raise BadSourceFile(f"{subject} repeats columns {repeated}")
    return header


def read_source(spark, path: Path, header: Sequence[str]):
    """Every column as text, in the file's own column order; malformed lines land in `_corrupt_record`."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(h, StringType()) for h in header] + [StructField(CORRUPT, StringType())])
    df = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("enforceSchema", True)  # positional, by the header we just read: names are checked above
        .schema(schema)
        .csv(str(path))
    )
    return df.withColumn("source_row", F.monotonically_increasing_id())


def gate_config(settings) -> GateConfig:
    churn = settings.churn
    return GateConfig(
        expected_columns=(),  # filled per source
        min_rows=churn.gate_min_rows,
        max_reject_share=churn.gate_max_reject_share,
        max_rule_share=churn.gate_max_rule_share,
        critical=frozenset(churn.gate_critical),
    )


def summarise(annotated, rules) -> tuple[dict[str, int], dict[str, int]]:
    """Row counts, and the rows each rule flags (rejecting rules: rejects; warning rules: warned rows)."""
    from pyspark.sql import functions as F

    from jobs.common.rules import flag

    row = annotated.agg(
        F.count(F.lit(1)).alias("read"),
        F.sum(F.col("is_rejected").cast("long")).alias("rejected"),
        F.sum((F.col("is_exact_duplicate") & ~F.col("is_rejected")).cast("long")).alias("duplicates"),
        *[F.sum(flag(r).cast("long")).alias(r.code) for r in rules],
    ).first()
    read, rejected, duplicates = (int(row[k] or 0) for k in ("read", "rejected", "duplicates"))
    counts = {
        "read": read,
        "rejected": rejected,
        "duplicates": duplicates,
        "valid": read - rejected - duplicates,
    }
    by_rule = {r.code: int(row[r.code] or 0) for r in rules if row[r.code]}
    return counts, by_rule


def valid_rows(annotated, source: Source, batch: str):
    from pyspark.sql import functions as F

    keep = annotated.filter(~F.col("is_rejected") & ~F.col("is_exact_duplicate"))
    return keep.select(F.lit(batch).alias("batch_id"), "source_row", *source.columns, "row_hash")


def rejected_rows(annotated, source: Source, rules, batch: str):
    from pyspark.sql import functions as F

    from jobs.common.rules import reasons_column

    raw = F.to_json(
        F.struct(
            *[F.col(f.raw).alias(f.name) for f in source.fields],
            F.col(CORRUPT).alias("_malformed_line"),
        )
    )
    return annotated.filter("is_rejected").select(
        F.lit(batch).alias("batch_id"),
        F.lit(source.name).alias("source"),
        "source_row",
        F.concat(F.lit("{"), F.array_join("rule_codes", ","), F.lit("}")).alias("rule_codes"),
        reasons_column(rules).alias("reason"),
        raw.alias("raw_values"),
        "row_hash",
    )


def copy_in_slices(conn, table: str, df, rows: int) -> int:
    """COPY `df` through the driver in slices of ~SLICE_ROWS (bounded driver memory), inside the caller's
    transaction: a file of millions of rows still loads all-or-nothing."""
    from pyspark.sql import functions as F

    from jobs.common.postgres import copy_arrow

    slices = max(1, -(-rows // SLICE_ROWS))
    written = 0
    for i in range(slices):
        part = df if slices == 1 else df.filter(F.col("source_row") % slices == i)
        written += copy_arrow(conn, table, part.toArrow())
    return written


def warning_details(annotated, rules: list[Rule], by_rule: dict[str, int], gate: GateResult) -> dict:
    """Per warning rule that fired: rows, observed share, its limit and the most frequent values."""
    from jobs.common.rules import frequent_values

    details = {}
    for rule in (r for r in rules if not r.rejects and by_rule.get(r.code)):
        check = gate.check(rule.code) or {}
        details[rule.code] = {
            "rows": by_rule[rule.code],
            "share": check.get("share"),
            "max_share": rule.max_share,
            "passed": check.get("success"),
            "top_values": [[value, n] for value, n in frequent_values(annotated, rule)],
        }
    return details


def ingest_file(spark, conn, settings, source: Source, path: Path, as_of: date, store) -> BatchOutcome:
    from dataclasses import replace

    from jobs.common.gate import run_gate
    from jobs.common.logs import Progress
    from jobs.common.rules import rule_flags

    progress = Progress(log)
    header = read_header(path, source, settings.churn.max_file_mb * MB)
    sha = file_sha256(path)
    batch = batch_id(source.name, as_of, sha)
    _start_batch(conn, batch, source.name, as_of, path, sha)
    try:
        contract = IngestConfig.from_settings(settings.churn)
        rules = source_rules(source, as_of, contract)
        with progress.step(f"{source.name}: read + rules") as facts:
            parsed = parse_rows(read_source(spark, path, header), source, contract)
            annotated = annotate(parsed, source, rules).cache()
            counts, flagged = summarise(annotated, rules)
            by_rule = {code: n for code, n in flagged.items() if code in {r.code for r in rules if r.rejects}}
            facts.update(counts)
        with progress.step(f"{source.name}: GX gate") as facts:
            config = replace(gate_config(settings), expected_columns=tuple(f.raw for f in source.fields))
            gate = run_gate(
                rule_flags(annotated, rules),
                rules,
                config,
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
            with conn.transaction():
                conn.execute(f"DELETE FROM {source.table} WHERE batch_id = %s", (batch,))
                conn.execute("DELETE FROM dqm.churn_rejects WHERE batch_id = %s", (batch,))
                rejects = copy_in_slices(
                    conn,
                    "dqm.churn_rejects",
                    rejected_rows(annotated, source, rules, batch),
                    counts["rejected"],
                )
                valid = (
                    copy_in_slices(conn, source.table, valid_rows(annotated, source, batch), counts["valid"])
                    if gate.passed
                    else 0
                )
                _finish_batch(conn, batch, status, counts, by_rule, gate, warnings)
            facts.update(valid=valid, rejects=rejects)
        annotated.unpersist()
    except Exception as exc:
        _fail_batch(conn, batch, f"{type(exc).__name__}: {exc}")
        raise
    message = gate.message()
    log.info("%s: batch %s %s (%s)", source.name, batch, status, message)
    return BatchOutcome(source.name, batch, status, counts, by_rule, message, warnings)


def _start_batch(conn, batch: str, source: str, as_of: date, path: Path, sha: str) -> None:
    conn.execute(
        """
        INSERT INTO dqm.churn_batches (batch_id, source, as_of, file_path, file_sha256, status)
        VALUES (%s, %s, %s, %s, %s, 'running')
        ON CONFLICT (batch_id) DO UPDATE SET status = 'running', started_at = now(), finished_at = NULL,
            message = NULL, file_path = EXCLUDED.file_path
        """,
        (batch, source, as_of, str(path), sha),
    )


def _finish_batch(
    conn, batch: str, status: str, counts: dict, by_rule: dict, gate: GateResult, warnings: dict
) -> None:
    conn.execute(
        """
        UPDATE dqm.churn_batches SET status = %s, rows_read = %s, rows_valid = %s, rows_rejected = %s,
            duplicates_collapsed = %s, rejects_by_rule = %s, gate = %s, gx_results_uri = %s,
            gx_docs_uri = %s, message = %s, finished_at = now()
        WHERE batch_id = %s
        """,
        (
            status,
            counts["read"],
            counts["valid"],
            counts["rejected"],
            counts["duplicates"],
            json.dumps(by_rule),
            json.dumps({**gate.summary(), "warning_rules": warnings}),
            gate.results_uri,
            gate.docs_uri,
            gate.message(),
            batch,
        ),
    )


def _fail_batch(conn, batch: str, message: str) -> None:
    conn.execute(
        "UPDATE dqm.churn_batches SET status = 'failed', message = %s, finished_at = now() WHERE batch_id = %s",
        (message[:2000], batch),
    )


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
    from jobs.common.objectstore import open_store
    from jobs.common.postgres import connect, open_business_database
    from jobs.common.spark import build_session

    settings = settings or load_settings()
    source_dir = args.source_dir or settings.churn.source_dir
    contracts = sources(settings.churn.history_months, settings.churn.horizon_months)
    # every header is checked before any Spark work: a bad file fails fast with its reason
    for name in args.only:
        read_header(source_dir / f"{name}.csv", contracts[name], settings.churn.max_file_mb * MB)
    pg, _ = open_business_database(settings.postgres)
    spark = build_session("churn-ingest", settings.spark, args.master)
    store = open_store(settings.object_store)
    with connect(pg) as conn:
        return [
            ingest_file(spark, conn, settings, contracts[name], source_dir / f"{name}.csv", args.as_of, store)
            for name in args.only
        ]


def report(outcomes: list[BatchOutcome]) -> int:
    for o in outcomes:
        log.info("%-16s %-8s %s %s", o.source, o.status, o.counts, o.message)
    return EXIT_BLOCKED if any(o.status == "blocked" for o in outcomes) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, bad_input=(BadSourceFile,), sections=("churn",))


if __name__ == "__main__":
    sys.exit(main())
