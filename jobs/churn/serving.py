"""Serving without a JVM: the registered model for the app, and the checks its inputs go through.

- `ModelService` finds the version holding an alias (`production`), downloads it once and scores with
  the JVM-free `ChurnScorer` (parity with Spark is proven at training time and by the tests).
- `check_value` / `check_record` / `read_batch_csv` validate what people type or upload against the
  feature module's contract (`jobs.churn.features.domain_of`, share columns included) and the source
  contract's id rule (`customer_id` is opaque text, kept exactly): a value is accepted, or refused with a
  sentence that says why; nothing is dropped without a trace.
- `risk_band` is the batch job's banding rule, in plain Python.

No Streamlit here: the app (`app/`) only lays these out on pages.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.churn import features as feature_module
from jobs.churn.features import ID, Domain
from jobs.churn.sources import id_problem
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

    from jobs.churn.features import Shares
    from jobs.churn.models import ModelRef
    from jobs.churn.scorer import ChurnScorer

log = logging.getLogger(__name__)

MAX_TEXT = 200  # characters in a category value
MAX_BATCH_ROWS = 100_000  # beyond this, the Spark batch job is the right tool
MAX_ERRORS_LISTED = 1_000
_NUMBER_RE = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_GENERIC = Domain(nullable=True)  # a spec column the feature module does not know: any finite number


class MlflowUnavailable(RuntimeError):
    """The tracking server does not answer: the app says so instead of hanging."""


class BatchFileError(ValueError):
    """The uploaded file as a whole cannot be read (not a row-level problem)."""


# ---------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------


RISK_BANDS = ("low", "medium", "high")  # prod.churn_scores' CHECK constraint holds the same three


def risk_band(probability, cuts: tuple[float, float]):
    """low < cuts[0] <= medium < cuts[1] <= high (CHURN_RISK_BANDS), one rule for a probability (a str) and
    a Spark column (a column expression, for the batch job)."""
    bands = list(zip(cuts, RISK_BANDS, strict=False))
    if isinstance(probability, int | float):
        return next((band for cut, band in bands if probability < cut), RISK_BANDS[-1])
    from pyspark.sql import functions as F

    expr = F
    for cut, band in bands:
        expr = expr.when(probability < cut, band)
    return expr.otherwise(RISK_BANDS[-1])


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
    elif isinstance(value, int | float):
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
            f"the file {exc}: score large files with the batch job (`python -m jobs.churn.score_batch`)"
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
                "(`python -m jobs.churn.score_batch`)"
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


# ---------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    scorer: ChurnScorer
    loaded_at: datetime
    load_seconds: float

    @property
    def label(self) -> str:
        alias = f" @{self.ref.alias}" if self.ref.alias else ""
        return f"{self.ref.name} v{self.ref.version}{alias}"

    def categories(self) -> dict[str, list[str]]:
        """Known labels per categorical column (the missing marker left out)."""
        missing = self.scorer.description["missing_category"]
        return {c: [v for v in ls if v != missing] for c, ls in self.scorer.description["categories"].items()}

    def score(self, frame: pd.DataFrame, cuts: tuple[float, float]) -> pd.DataFrame:
        """`frame` plus probability and risk_band."""
        p = self.scorer.predict_proba(frame[list(self.scorer.features)])
        return frame.assign(probability=p, risk_band=[risk_band(float(v), cuts) for v in p])

    def explain(self, record: Mapping[str, Any]) -> pd.DataFrame:
        """One prediction's SHAP values: feature, value, contribution (model units), sorted by |size|."""
        import pandas as pd

        frame = pd.DataFrame([{c: record.get(c) for c in self.scorer.features}])
        for column in self.scorer.numeric:
            frame[column] = frame[column].astype("float64")
        values = self.scorer.explain(frame).iloc[0]
        out = pd.DataFrame(
            {
                "feature": list(self.scorer.features),
                "value": [_display(record.get(c)) for c in self.scorer.features],
                "contribution": [float(values[c]) for c in self.scorer.features],
            }
        )
        return out.reindex(out["contribution"].abs().sort_values(ascending=False).index).reset_index(
            drop=True
        )


def _display(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(missing)"
    if isinstance(value, float):  # 96.29, not 96.28999999999999; 10000000, not 1e+07
        return f"{value:.0f}" if value.is_integer() else str(round(value, 4))
    return str(value)


class ModelService:
    """The registered model behind an alias, downloaded once per version (no Spark, no JVM)."""

    def __init__(self, tracking_uri: str, model_name: str, timeout: float = 3.0) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.timeout = timeout

    def client(self):
        from mlflow.tracking import MlflowClient

        self.check_server()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def check_server(self) -> None:
        """A quick health probe, so a stopped server is a clear message and not minutes of retries."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return
        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                if response.status == 200:
                    return
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            problem = str(getattr(exc, "reason", exc))
        raise MlflowUnavailable(
            f"the MLflow server at {self.tracking_uri} does not answer ({problem}). Start the stack "
            "(`make up`) or point MLFLOW_TRACKING_URI at a running server."
        )

    def version_of(self, alias: str) -> int | None:
        """The version number holding `alias` right now (one REST call), or None."""
        from jobs.churn.registry import version_by_alias

        mv = version_by_alias(self.client(), self.model_name, alias)
        return int(mv.version) if mv else None

    def load(self, alias: str | None = "production", version: int | None = None) -> LoadedModel:
        """Resolves and downloads the model; raises `jobs.churn.models.NoModel` when nothing answers."""
        from jobs.churn.models import download, load_scorer, resolve

        started = time.perf_counter()
        ref = resolve(self.client(), self.model_name, alias, version)
        with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
            model_dir = download(ref, Path(tmp) / "model", self.tracking_uri)
            scorer = load_scorer(model_dir)  # reads the JSON into memory: the folder can go
        seconds = time.perf_counter() - started
        log.info("loaded %s v%s (%s) in %.1f s", ref.name, ref.version, scorer.kind, seconds)
        return LoadedModel(ref, scorer, datetime.now(UTC), seconds)


def quiet_mlflow_client() -> None:
    """Few, short HTTP retries: an interactive app must not wait minutes for a dead server."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


# ---------------------------------------------------------------------------------------------------------
# Look-ups for one customer
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerSnapshot:
    customer_id: str
    snapshot_date: Any
    table_version: int
    features: dict[str, Any]


def customer_snapshot(
    path: str | Path, customer_id: str, features: tuple[str, ...], shares: Shares | None = None
) -> CustomerSnapshot | None:
    """The customer's row in the latest snapshot that has them, from THE feature table (no Spark); with
    a model's `shares`, its share inputs derived from the row's segment map with ITS vocabulary."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from jobs.churn.features import SNAPSHOT, with_shares
    from jobs.churn.snapshots import open_version

    table = open_version(path)
    names = table.schema().to_arrow().names
    wanted = [*features, *((shares.column, shares.total) if shares is not None else ())]
    columns = [ID, SNAPSHOT, *dict.fromkeys(c for c in wanted if c in names)]
    rows = table.to_pyarrow_dataset().to_table(columns=columns, filter=ds.field(ID) == str(customer_id))
    if rows.num_rows == 0:
        return None
    latest = rows.filter(pc.equal(rows[SNAPSHOT], pc.max(rows[SNAPSHOT]))).slice(0, 1).to_pandas()
    if shares is not None and shares.column in latest.columns:
        latest = with_shares(latest, shares)
    row = latest.iloc[0]
    values = {c: _plain(row[c]) if c in latest.columns else None for c in features}
    return CustomerSnapshot(str(customer_id), row[SNAPSHOT], table.version(), values)


def _plain(value: Any) -> Any:
    """A pandas cell as a plain Python value (NaN and NA as None)."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def batch_scores_of(conn, customer_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The customer's latest rows in prod.churn_scores (what the Spark batch job wrote), newest first."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT snapshot_date, probability, risk_band, model_version, model_alias, feature_version, scored_at "
            "FROM prod.churn_scores WHERE customer_id = %s ORDER BY snapshot_date DESC, scored_at DESC LIMIT %s",
            (customer_id, limit),
        )
        columns = [c.name for c in cur.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
