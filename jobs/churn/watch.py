"""The churn data watchdog's check: which source files are new or changed since they were last ingested
and not yet announced."""

from __future__ import annotations

from pathlib import Path


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
