"""The churn data watchdog's check: which source files are new or changed since they were last ingested
and not yet announced, and which snapshot date T they support; and the training run's snapshot.

The label (task statement) needs the two months from T on: the latest T the payments file can label is
the month start two months before the month its payments end in (payments through 2026-10-31: T =
2026-09-01). A payment dated after the run day is not evidence (a typo, a clock): it is ignored here and
quarantined by the ingest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

from jobs.churn.features import HORIZON_MONTHS
from jobs.common.dates import add_months, month_start, parse_date_text

PAYMENTS, PAYMENT_DATE = "PAYMENTS", "FECHA"
log = logging.getLogger(__name__)


def changed_sources(source_dir: Path | None = None, settings=None) -> dict[str, str]:
    """{file name: sha256} of every present source file whose content no loaded batch has ingested yet."""
    from jobs.churn.ingest import file_sha256
    from jobs.churn.sources import sources
    from jobs.common.config import load_settings
    from jobs.common.postgres import connect, open_business_database

    settings = settings or load_settings()
    folder = source_dir or settings.churn.source_dir
    present = {name: folder / f"{name}.csv" for name in sources() if (folder / f"{name}.csv").is_file()}
    hashes = {name: file_sha256(path) for name, path in present.items()}
    if not hashes:
        return {}
    pg, _ = open_business_database(settings.postgres)
    with connect(pg) as conn:
        seen = {
            (source, sha)
            for source, sha in conn.execute(
                "SELECT source, file_sha256 FROM dqm.churn_batches WHERE status = 'loaded'"
            ).fetchall()
        }
    return {name: sha for name, sha in hashes.items() if (name, sha) not in seen}


def unannounced(changed: dict[str, str], announced: list[dict[str, str]]) -> dict[str, str]:
    """Drops the files whose current content an earlier asset event already announced, so a second watchdog
    run before the training has ingested them (the next hourly tick, a manual run) does not retrain twice.
    A content announced once is not announced again even if its training failed: rerun the training."""
    seen = {(name, sha) for files in announced for name, sha in files.items()}
    return {name: sha for name, sha in changed.items() if (name, sha) not in seen}


def labelled_snapshot(payment_dates: Iterable[date], today: date) -> date | None:
    """The latest snapshot T whose label window [T, T + 2 months) the payments cover: two months before
    the month start of the day after the last payment (dates after `today` ignored); None without one."""
    last = max((d for d in payment_dates if d <= today), default=None)
    return None if last is None else add_months(month_start(last + timedelta(days=1)), -HORIZON_MONTHS)


def latest_labelled_snapshot(source_dir: Path, date_formats: Sequence[str], today: date) -> date | None:
    """`labelled_snapshot` of the payments file in `source_dir` (None when it is missing). Reads only its
    date column, in blocks, and parses each distinct text once: a file of millions of payments holds a few
    hundred dates."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    from jobs.churn.ingest import BadSourceFile, read_header
    from jobs.churn.sources import sources

    path = source_dir / f"{PAYMENTS}.csv"
    try:
        header = read_header(path, sources()[PAYMENTS])
    except BadSourceFile as exc:  # the ingest reports it; no snapshot from this file
        log.warning("no snapshot from the payments file: %s", exc)
        return None
    column = next(h for h in header if h.strip().lower() == PAYMENT_DATE.lower())
    texts: set[str] = set()
    options = csv.ConvertOptions(include_columns=[column], column_types={column: pa.string()})
    skip = csv.ParseOptions(invalid_row_handler=lambda row: "skip")  # malformed lines: the ingest's business
    with csv.open_csv(path, convert_options=options, parse_options=skip) as reader:
        for batch in reader:
            texts.update(t for t in pc.unique(batch.column(0)).to_pylist() if t is not None)
    dates = (parse_date_text(t, date_formats) for t in texts)
    return labelled_snapshot((d for d in dates if d is not None), today)


def training_snapshot(
    requested: str | None, announced: Sequence[str | None], in_files: date | None, run_day: date
) -> date:
    """The snapshot a churn_training_dag run trains on: the one requested (a run param: on demand, or the
    drift monitor's current snapshot), else the latest one the triggering asset events announced (new
    source files), else the latest the present source files can label, else the latest complete label
    window as of the run day."""
    if requested:
        return date.fromisoformat(requested)
    given = [date.fromisoformat(a) for a in announced if a]
    if given:
        return max(given)
    return in_files or add_months(month_start(run_day), -HORIZON_MONTHS)


def snapshot_of_run(requested: str | None, announced: Sequence[str | None], churn, run_day: date) -> date:
    """`training_snapshot`, reading the source files (ChurnSettings' folder and date formats) only when
    neither the run's params nor its asset events name a snapshot."""
    in_files = None
    if not requested and not any(announced):
        in_files = latest_labelled_snapshot(churn.source_dir, churn.date_formats, run_day)
    return training_snapshot(requested, announced, in_files, run_day)
