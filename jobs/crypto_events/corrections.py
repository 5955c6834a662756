"""Stewards' corrections of quarantined crypto rows: the corrections file, their loading, and how each run
judges them (docs/crypto_events.md, "Corrections and replay").

A correction names the quarantine row it corrects (`run_id`, `landing_row` of a reject of a logical date) and
gives the six source values as they should have been, with who made it and why. It is keyed by the row's
content (`row_hash`): every later run that meets that upstream row reads the corrected values instead
(`io.read_landing`), finds it by its corrected date (`date_moves`: a corrected date may move the row into another
window, or out of an undatable state), and judges it with the same rules. The merge of such a run records, in
its transaction, how it judged each correction (`judge_corrections`).
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

SOURCE_VALUES = ("site_id", "user_id", "purchase_date", "crypto_type", "purchase_price", "purchase_units")
FILE_COLUMNS = ("run_id", "landing_row", *SOURCE_VALUES, "corrected_by", "why")
MAX_FILE_LINES = 100_000  # a steward's corrections, not a load: a bigger file is refused
TABLE = "dqm.bt_crypto_events_corrections"


class CorrectionsRefused(ValueError):
    """A corrections file that cannot be loaded (the first bad line named): nothing of it is loaded."""


@dataclass(frozen=True)
class Correction:
    line: int
    run_id: str
    landing_row: int
    values: tuple[str | None, ...]  # the six source values, None where missing
    corrected_by: str
    why: str


def read_corrections(path: Path) -> list[Correction]:
    """The corrections of a CSV file, each line checked (CorrectionsRefused names the first bad line)."""
    corrections = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in FILE_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise CorrectionsRefused(
                f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(FILE_COLUMNS)}"
            )
        for record in reader:
            line = reader.line_num
            if len(corrections) >= MAX_FILE_LINES:
                raise CorrectionsRefused(f"{path}: more than {MAX_FILE_LINES} corrections; split the file")
            if None in record:  # more fields than the header
                raise CorrectionsRefused(f"{path}:{line}: more fields than the header's {len(FILE_COLUMNS)}")
            try:
                run_id = str(uuid.UUID(record["run_id"]))
            except (ValueError, TypeError):
                raise CorrectionsRefused(
                    f"{path}:{line}: run_id {record['run_id']!r} is not a run id (UUID)"
                ) from None
            try:
                landing_row = int(record["landing_row"])
            except (ValueError, TypeError):
                raise CorrectionsRefused(
                    f"{path}:{line}: landing_row {record['landing_row']!r} is not a number"
                ) from None
            who, why = (record["corrected_by"] or "").strip(), (record["why"] or "").strip()
            if not who or not why:
                raise CorrectionsRefused(
                    f"{path}:{line}: corrected_by and why are required (who corrected it, and why)"
                )
            values = tuple(record[c] if record[c] != "" else None for c in SOURCE_VALUES)
            corrections.append(Correction(line, run_id, landing_row, values, who, why))
    return corrections


def load_corrections(conn, corrections: list[Correction], logical_date: date, source: str) -> int:
    """Appends the corrections in ONE transaction, each tied to its quarantine row of `logical_date` (whose
    row_hash names the upstream row); none is loaded when one names no such row."""
    if not corrections:
        return 0
    columns = {
        "line": [c.line for c in corrections],
        "run_id": [c.run_id for c in corrections],
        "landing_row": [c.landing_row for c in corrections],
        **{name: [c.values[i] for c in corrections] for i, name in enumerate(SOURCE_VALUES)},
        "corrected_by": [c.corrected_by for c in corrections],
        "why": [c.why for c in corrections],
    }
    given = (
        "unnest(%(line)s::int[], %(run_id)s::uuid[], %(landing_row)s::int[], %(site_id)s::text[], "
        "%(user_id)s::text[], %(purchase_date)s::text[], %(crypto_type)s::text[], %(purchase_price)s::text[], "
        "%(purchase_units)s::text[], %(corrected_by)s::text[], %(why)s::text[]) AS v (line, run_id, landing_row, "
        f"{', '.join(SOURCE_VALUES)}, corrected_by, why)"
    )
    params = {**columns, "d": logical_date}
    with conn.transaction():
        unknown = conn.execute(
            f"""SELECT v.line, v.run_id::text, v.landing_row, r.logical_date FROM {given}
                LEFT JOIN dqm.bt_crypto_events_rejects r USING (run_id, landing_row)
                WHERE r.logical_date IS DISTINCT FROM %(d)s ORDER BY v.line LIMIT 5""",
            params,
        ).fetchall()
        if unknown:
            line, run_id, landing_row, other = unknown[0]
            what = f"a quarantine row of {other}, not of" if other else "not a quarantine row of"
            raise CorrectionsRefused(
                f"{source}:{line}: run {run_id} landing row {landing_row} is {what} {logical_date} "
                f"({len(unknown)}{'+' if len(unknown) == 5 else ''} such line(s)); nothing loaded"
            )
        cur = conn.execute(
            f"""INSERT INTO {TABLE} (row_hash, logical_date, run_id, landing_row, original_purchase_date,
                    {", ".join(SOURCE_VALUES)}, corrected_by, why)
                SELECT r.row_hash, r.logical_date, v.run_id, v.landing_row,
                       -- a quarantined row holds upstream's text, or an earlier correction's values (whose
                       -- original it then keeps)
                       CASE WHEN r.correction_id IS NULL THEN r.raw_purchase_date ELSE earlier.original_purchase_date END,
                       {", ".join(f"v.{c}" for c in SOURCE_VALUES)}, v.corrected_by, v.why
                FROM {given} JOIN dqm.bt_crypto_events_rejects r USING (run_id, landing_row)
                LEFT JOIN {TABLE} earlier ON earlier.correction_id = r.correction_id
                ORDER BY v.line""",
            params,
        )
        return cur.rowcount


# --- what runs do with them ---------------------------------------------------------------------------------


def latest(conn) -> int:
    """The newest correction's id (0 when none): a run applies the corrections up to it."""
    return conn.execute(f"SELECT coalesce(max(correction_id), 0) FROM {TABLE}").fetchone()[0]


@dataclass(frozen=True)
class DateMove:
    """A correction that rewrites a row's date text: the run finds the row by its `original` text and places
    it by its `corrected` one (None: missing)."""

    row_hash: str
    original: str | None
    corrected: str | None


def date_moves(conn, upto: int) -> list[DateMove]:
    """The standing corrections (the latest of each row, up to `upto`) whose date text differs from upstream's."""
    rows = conn.execute(
        f"""SELECT row_hash, original_purchase_date, purchase_date FROM (
                SELECT DISTINCT ON (row_hash) row_hash, original_purchase_date, purchase_date FROM {TABLE}
                WHERE correction_id <= %s ORDER BY row_hash, correction_id DESC) k
            WHERE original_purchase_date IS DISTINCT FROM purchase_date""",
        (upto,),
    ).fetchall()
    return [DateMove(*row) for row in rows]


# the corrections a run applied: the latest of each row_hash of its landing snapshot, up to its limit
_APPLIED = f"""SELECT DISTINCT ON (k.row_hash) k.correction_id, k.row_hash
    FROM {TABLE} k
    WHERE k.correction_id <= %(upto)s
      AND k.row_hash IN (SELECT row_hash FROM raw.bt_crypto_landing WHERE run_id = %(run)s)
    ORDER BY k.row_hash, k.correction_id DESC"""

_JUDGE = f"""UPDATE {TABLE} k
    SET judged_by_run_id = %(run)s, judged_at = now(), outcome = o.outcome, outcome_reason = o.reason
    FROM (
        SELECT a.correction_id, rj.reason,
               CASE WHEN rj.reason IS NOT NULL THEN 'rejected'
                    WHEN c.row_hash IS NULL THEN 'collapsed'
                    ELSE coalesce(l.action, 'unchanged') END AS outcome
        FROM ({_APPLIED}) a
        LEFT JOIN (SELECT DISTINCT ON (correction_id) correction_id, reason FROM dqm.bt_crypto_events_rejects
                   WHERE run_id = %(run)s AND correction_id IS NOT NULL) rj USING (correction_id)
        LEFT JOIN (SELECT DISTINCT ON (correction_id) correction_id, row_hash, site_id, user_id, purchase_date,
                          crypto_type
                   FROM staging.bt_crypto_events_candidate
                   WHERE logical_date = %(d)s AND run_id = %(run)s AND correction_id IS NOT NULL) c USING (correction_id)
        LEFT JOIN dqm.bt_crypto_events_lineage l
               ON l.run_id = %(run)s AND (l.site_id, l.user_id, l.purchase_date, l.crypto_type)
                                         = (c.site_id, c.user_id, c.purchase_date, c.crypto_type)
    ) o
    WHERE k.correction_id = o.correction_id"""


def judge_corrections(conn, run_id: str, logical_date: date, upto: int) -> int:
    """Inside the merge's transaction: each correction the run applied, with how the run judged it (inserted,
    updated, reactivated or unchanged in prod; collapsed into an identical row; rejected again, with its new
    reason). Returns the number judged."""
    return conn.execute(_JUDGE, {"run": run_id, "d": logical_date, "upto": upto}).rowcount


def mark_absent(conn, run_id: str, logical_date: date, upto: int) -> int:
    """The corrections of `logical_date`'s quarantine (up to `upto`, the latest of their row) that the merged run
    `run_id` did not meet: their row is not in its window now. Marked `absent`, saying why."""
    return conn.execute(
        f"""UPDATE {TABLE} k SET judged_by_run_id = %(run)s, judged_at = now(), outcome = 'absent',
                outcome_reason = 'not among the source rows of the window of ' || %(d)s::text
                    || ': upstream has changed or deleted the row since, or its corrected purchase_date belongs '
                    || 'to another window (replay the date whose window holds it)'
            WHERE k.logical_date = %(d)s AND k.correction_id <= %(upto)s
              AND k.correction_id = (SELECT max(correction_id) FROM {TABLE} WHERE row_hash = k.row_hash
                                     AND correction_id <= %(upto)s)
              AND k.row_hash NOT IN (SELECT row_hash FROM raw.bt_crypto_landing WHERE run_id = %(run)s)""",
        {"run": run_id, "d": logical_date, "upto": upto},
    ).rowcount


def outcomes(conn, run_id: str) -> dict[str, int]:
    """How the run judged the corrections: the count per outcome."""
    return dict(
        conn.execute(
            f"SELECT outcome, count(*) FROM {TABLE} WHERE judged_by_run_id = %s GROUP BY outcome ORDER BY 1",
            (run_id,),
        ).fetchall()
    )
