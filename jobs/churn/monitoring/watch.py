"""The churn data watchdog's decisions: which changed source files are new to announce, which snapshot date
T the payments support, and which snapshot a training run uses.

The label (task statement) needs the two months from T on: the latest T the payments file can label is
the month start two months before the month its payments end in (payments through 2026-10-31: T =
2026-09-01). A payment dated after the run day is not evidence (a typo, a clock): it is ignored here and
quarantined by the ingest. The reads (file hashes, the batches already loaded, the payment dates) are
`jobs.churn.monitoring.io`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from jobs.churn.contract.features import HORIZON_MONTHS
from jobs.common.dates import add_months, month_start


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
