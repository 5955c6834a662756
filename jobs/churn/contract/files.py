"""A source file checked against the contract before anyone reads it: size, encoding, header, identity.

The ingest checks every header before any Spark work (a bad file fails fast, saying why); the watchdog
reads the payments file's dates through the same check and hashes files the same way the ingest records
them, so "a new file" means the same thing to both.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from jobs.churn.contract.sources import Source
from jobs.common.csvfile import (
    CsvFileProblem,
    check_size,
    decode,
    missing_names,
    parse_header,
    repeated_names,
)

HEAD_BYTES = 1 << 20  # what the header check reads of a file: the header line and the first rows


class BadSourceFile(ValueError):
    """A file that cannot be ingested at all (missing, empty, without the expected columns)."""


def source_file(folder: Path, source: Source) -> Path:
    """Where a source's file is: `<folder>/<NAME>.csv`, the task statement's file names."""
    return folder / f"{source.name}.csv"


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
