"""Serving's checks of what people type or upload, against the feature contract, without a JVM.

`check_number` / `check_category` / `check_record` / `read_batch_csv` validate inputs against the feature
definitions (`jobs.churn.contract.features.domain_of`, share columns included) and the source contract's id
rule (`customer_id` is opaque text, kept exactly): a value is accepted, or refused with a sentence that
says why; nothing is dropped without a trace. No Streamlit and no I/O here: the app (`app/`) lays these out
on pages, `jobs.churn.serving.io` finds the model.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobs.churn.contract import features as feature_module
from jobs.churn.contract.features import ID, Domain
from jobs.churn.contract.sources import id_problem
from jobs.common.csvfile import (
    CsvFileProblem,
    check_size,
    decode,
    missing_names,
    parse_header,
    repeated_names,
)

if TYPE_CHECKING:
    import pandas as pd

    from jobs.churn.contract.features import Shares

MAX_TEXT = 200  # characters in a category value
MAX_BATCH_ROWS = 100_000  # beyond this, the Spark batch job is the right tool
MAX_ERRORS_LISTED = 1_000
_NUMBER_RE = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_GENERIC = Domain(nullable=True)  # a spec column the feature module does not know: any finite number


class BatchFileError(ValueError):
    """The uploaded file as a whole cannot be read (not a row-level problem)."""


# ---------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------


def domain_of(column: str) -> Domain:
    return feature_module.domain_of(column) or _GENERIC


def describe(column: str, shares: Shares | None = None) -> str:
    return feature_module.describe(column, shares)


def check_customer_id(value: Any) -> tuple[str | None, str | None]:
    """(the id, None) or (None, why): trimmed text, as the source files' id rule (ids are opaque)."""
    text = "" if value is None else str(value).strip()
    problem = id_problem(text)
    return (None, f"{ID} {problem}") if problem else (text, None)


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def check_number(column: str, value: Any) -> tuple[float | None, str | None]:
    """(value, None) when `value` is acceptable for numeric `column`, else (None, why)."""
    domain = domain_of(column)
    if _blank(value):
        return None, None if domain.nullable else f"{column} is required ({describe(column)})"
    if isinstance(value, bool):
        return None, f"{column} must be {domain.describe()}, got {value!r}"
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_RE.match(text):
            return None, f"{column} must be {domain.describe()}, got {_show(value)}"
        number = float(text)
    elif isinstance(value, numbers.Real):  # numpy's numbers too
        number = float(value)
    else:
        return None, f"{column} must be {domain.describe()}, got {type(value).__name__}"
    if not math.isfinite(number):
        return None, f"{column} is too large to be a number ({_show(value)})"
    if domain.integer and not number.is_integer():
        return None, f"{column} must be a whole number, got {number:g}"
    if (domain.low is not None and number < domain.low) or (domain.high is not None and number > domain.high):
        return None, f"{column} must be {domain.describe()}, got {number:g}"
    return number, None


def check_category(column: str, value: Any) -> tuple[str | None, str | None]:
    """(text, None) or (None, why). Blank is allowed: the model has a `missing` category."""
    if _blank(value):
        return None, None
    if isinstance(value, bool) or not isinstance(value, str | numbers.Number):  # JSON's true, [..], {..}
        return None, f"{column} must be text, got {_show(value)}"
    text = str(value)
    if len(text) > MAX_TEXT:
        return None, f"{column} is longer than {MAX_TEXT} characters"
    if _CONTROL_RE.search(text):
        return None, f"{column} contains control characters ({_show(text)})"
    return text, None


def check_record(
    record: Mapping[str, Any], numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The clean record (floats, strings or None) and the errors by column."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for column in numeric:
        clean[column], error = check_number(column, record.get(column))
        if error:
            errors[column] = error
    for column in categorical:
        clean[column], error = check_category(column, record.get(column))
        if error:
            errors[column] = error
    return clean, errors


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------
# Batch files
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    line: int  # line number in the file (the header is line 1)
    column: str
    value: str
    message: str


@dataclass
class Batch:
    """An uploaded file checked row by row: every data line is either in `rows` or has errors."""

    rows: pd.DataFrame  # line, customer_id (when given), then the model's features (clean values)
    errors: list[RowError]
    lines: int  # data lines read
    rejected_lines: list[int]
    ignored_columns: list[str] = field(default_factory=list)
    unseen: dict[str, list[str]] = field(default_factory=dict)  # categories the model never saw
    rejected_ids: dict[int, str] = field(default_factory=dict)  # line -> its customer_id as written


def read_batch_csv(
    data: bytes,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
    known_categories: Mapping[str, list[str]] | None = None,
    max_rows: int = MAX_BATCH_ROWS,
    max_bytes: int | None = None,
) -> Batch:
    """Checks a CSV of customers (header row, one customer per line; `customer_id` optional).

    Raises `BatchFileError` when the file as a whole is unusable (larger than `max_bytes`, judged before
    anything is decoded; not UTF-8, empty, more than `MAX_COLUMNS` columns, model columns missing,
    repeated header names, too many rows); otherwise every line is accounted for.
    """
    import pandas as pd

    try:
        check_size(len(data), max_bytes)
    except CsvFileProblem as exc:
        raise BatchFileError(
            f"the file {exc}: score large files with the batch job (`python -m jobs.churn.deployment`)"
        ) from None
    try:
        text = decode(data)
        header = parse_header(text)
    except CsvFileProblem as exc:
        raise BatchFileError(f"the file {exc}") from None
    if not header:
        raise BatchFileError("the file is empty: expected a header row and one customer per line")
    features = (*numeric, *categorical)
    repeated = repeated_names(header)
    if repeated:
        raise BatchFileError(f"repeated column names in the header: {repeated}")
    missing = missing_names(header, features)
    if missing:
        hint = " (the file looks ';'-separated: use commas)" if len(header) == 1 and ";" in header[0] else ""
        raise BatchFileError(
            f"the file lacks {len(missing)} of the model's {len(features)} input columns{hint}: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)  # the header, checked above
    position = {name: i for i, name in enumerate(header)}
    has_id = ID in position
    used = {name: position[name] for name in (*features, ID) if name in position}  # per row: only these
    errors: list[RowError] = []
    rejected: list[int] = []
    records: list[dict[str, Any]] = []
    first_line_of: dict[str, int] = {}
    rejected_ids: dict[int, str] = {}  # line -> id text, when the line's fields line up with the header
    lines = 0
    while True:
        line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num
            errors.append(RowError(line, "", "", f"not valid CSV: {exc}"))
            rejected.append(line)
            lines += 1
            continue
        line = reader.line_num
        if not values:  # a blank line
            continue
        lines += 1
        if lines > max_rows:
            raise BatchFileError(
                f"more than {max_rows:,} customers: score large files with the batch job "
                "(`python -m jobs.churn.deployment`)"
            )
        row_errors = []
        written = None  # the line's customer_id, trimmed
        if len(values) != len(header):
            row_errors.append(
                RowError(
                    line, "", _show(",".join(values)), f"{len(values)} fields, the header has {len(header)}"
                )
            )
        else:
            raw = {name: values[i] for name, i in used.items()}
            written = raw[ID].strip() if has_id else None
            clean, by_column = check_record(raw, numeric, categorical)
            row_errors += [RowError(line, c, _show(raw[c]), m) for c, m in by_column.items()]
            if has_id:
                customer, problem = check_customer_id(raw[ID])
                if problem:
                    row_errors.append(RowError(line, ID, _show(raw[ID]), problem))
                else:
                    text = customer
                    if customer in first_line_of:
                        message = f"duplicate {ID} (first on line {first_line_of[customer]})"
                        row_errors.append(RowError(line, ID, text, message))
                    else:
                        first_line_of[customer] = line
                        clean[ID] = customer
        if row_errors:
            errors += row_errors
            if written is not None:
                rejected_ids[line] = written
            rejected.append(line)
        else:
            records.append({"line": line, **clean})
    if lines == 0:
        raise BatchFileError("the file has a header but no customer rows")
    columns = ["line", *([ID] if has_id else []), *features]
    rows = pd.DataFrame.from_records(records, columns=columns)
    if has_id:
        rows[ID] = rows[ID].astype(object)  # the exact text: "000123" stays "000123"
    for column in numeric:
        rows[column] = rows[column].astype("float64")
    unseen = {}
    for column in categorical:
        known = set((known_categories or {}).get(column, []))
        if known:
            new = sorted({v for v in rows[column].dropna() if v not in known})
            if new:
                unseen[column] = new
    wanted = {*features, ID}
    ignored = [h for h in header if h not in wanted]
    return Batch(rows, errors, lines, rejected, ignored, unseen, rejected_ids)


def errors_frame(errors: list[RowError], limit: int = MAX_ERRORS_LISTED) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        [(e.line, e.column, e.value, e.message) for e in errors[:limit]],
        columns=["line", "column", "value", "problem"],
    )


def batch_results(batch: Batch, scored: pd.DataFrame) -> pd.DataFrame:
    """Every data line of the file: scored ones with probability and band, rejected ones with why (and
    their id as written, so the download still says who).

    Built from the rows with fixed types, not by concatenating a scored and a rejected frame: that made
    line numbers floats (``2.0``) whenever one side was empty, and left the ids of rejected lines blank
    (a column of digits with holes reads back as floats: ``1.2345678901234568e+17``). Line numbers are
    int64, ids the file's text."""
    import pandas as pd

    reasons: dict[int, list[str]] = {}
    for e in batch.errors:
        reasons.setdefault(e.line, []).append(e.message)
    has_id = ID in scored.columns
    by_line = {
        int(line): (customer, "scored", float(p), band, "")
        for line, customer, p, band in zip(
            scored["line"].tolist(),
            scored[ID].tolist() if has_id else [None] * len(scored),
            scored["probability"].tolist(),
            scored["risk_band"].tolist(),
            strict=True,
        )
    }
    for line in batch.rejected_lines:
        by_line[line] = (batch.rejected_ids.get(line), "rejected", math.nan, None, "; ".join(reasons[line]))
    columns = ["line", ID, "status", "probability", "risk_band", "problems"]
    out = pd.DataFrame.from_records([(n, *by_line[n]) for n in sorted(by_line)], columns=columns)
    out = out.astype({"line": "int64", ID: object, "probability": "float64"})
    return out if has_id else out.drop(columns=ID)


def batch_template(
    numeric_fill: Mapping[str, float],
    typical: Mapping[str, str | None],
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
) -> pd.DataFrame:
    """One typical customer in the upload's format: the training medians and each categorical input's
    most frequent value (`typical`, ChurnScorer.most_frequent; None or absent: left blank). Whole-number
    inputs are written whole (a count's median of 12.5 would be refused when the template is uploaded
    back)."""
    import pandas as pd

    values: dict[str, Any] = {ID: "CUSTOMER_1"}
    for column in numeric:
        value = numeric_fill[column]
        values[column] = round(float(value)) if domain_of(column).integer else value
    values.update({c: typical.get(c) or "" for c in categorical})
    return pd.DataFrame([values], columns=[ID, *numeric, *categorical])
