"""The churn data watchdog's check: which source files are new or changed since they were last ingested."""

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
