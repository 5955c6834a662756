"""The contract of the five churn source files, and the rule table derived from it.

Each file is described once, column by column (`Field`: kind, required, range, closed choices or an open
vocabulary), with the task statement's meanings: ids are opaque text (``SELLER_1`` is valid), the MAU
columns are counts of accesses, ``INVERSION`` is an investment state, ``RECENCY_ML`` is the date of the
last marketplace purchase, ``TPV_SEGMENT_DETAIL`` is an open vocabulary. From that description come the
file columns (the generator writes them), the typed parse, the rule table (`<FIELD>_MISSING`,
`<FIELD>_INVALID`, `<FIELD>_OUT_OF_RANGE`, plus `MALFORMED_ROW` and, for the per-customer snapshot files,
`DUPLICATE_CONFLICT`; the warning `<FIELD>_UNKNOWN` for open vocabularies), and through
`jobs.common.rules` / `jobs.common.gate` both the quarantine split and the GX suite: never two copies.

What is configured (accepted date shapes, the known segments, the warning's limit) comes in an
`IngestConfig`. Transformations here are pure (DataFrame in, DataFrame out); `jobs.churn.ingest` does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Literal

from jobs.common.rules import Rule, check_unique_codes, codes_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from jobs.common.config import ChurnSettings

Kind = Literal["id", "int", "amount", "date", "text", "category"]
CORRUPT = "_corrupt_record"
AMOUNT_LIMIT = 1e12  # NUMERIC(14, 2) in raw: anything at or above is an overflow, not a value
ID_MAX_LENGTH = 64  # opaque ids: trimmed text of 1..64 characters without control characters
CONTROL_CHARS = "[\\x00-\\x1f\\x7f]"  # the same class in Python's and Java's regex dialects
MAU_LIMIT = 10_000  # accesses to an app in one month: more is a broken counter, not a customer
INVESTMENT_STATES = ("Investing", "Elegible", "Warmup", "Pending")  # the statement's spelling
_INT_RE = r"^[+-]?[0-9]{1,18}$"
_AMOUNT_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"  # no exponent, NaN or Infinity
_CONTROL = re.compile(CONTROL_CHARS)


@dataclass(frozen=True)
class Field:
    name: str  # as in the file
    kind: Kind
    required: bool = True
    low: float | None = None  # inclusive; for dates: months relative to the as-of date
    high: float | None = None  # inclusive for numbers; for dates: exclusive, months relative to as-of
    choices: tuple[str, ...] = ()  # category: the canonical values (matched case-insensitively)
    aliases: tuple[tuple[str, str], ...] = ()  # category: other spellings -> a canonical value
    open_vocabulary: bool = False  # text: values outside the configured known set are valid, and counted

    @property
    def column(self) -> str:
        return self.name.lower()

    @property
    def raw(self) -> str:
        return f"{self.column}__raw"

    def canonical(self) -> dict[str, str]:
        """category: lower-cased spelling -> canonical value."""
        spelled = {c.lower(): c for c in self.choices}
        spelled.update({alias.lower(): target for alias, target in self.aliases})
        return spelled


@dataclass(frozen=True)
class Source:
    name: str
    table: str
    fields: tuple[Field, ...]
    per_customer: bool  # one row per customer: repeated customers with different values are conflicts

    @property
    def file_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.fields)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


@dataclass(frozen=True)
class IngestConfig:
    """The configured part of the contract (CHURN_DATE_FORMATS, CHURN_KNOWN_SEGMENTS, ...)."""

    date_formats: tuple[str, ...]
    known_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # open field -> known values
    max_unknown_share: float = 0.05

    @classmethod
    def from_settings(cls, churn: ChurnSettings) -> IngestConfig:
        return cls(
            date_formats=tuple(churn.date_formats),
            known_values={"TPV_SEGMENT_DETAIL": tuple(churn.known_segments)},
            max_unknown_share=churn.gate_max_unknown_segment_share,
        )


CUSTOMER = Field("CUS_CUST_ID_BUY", "id")


def sources(history_months: int = 12, horizon_months: int = 2) -> dict[str, Source]:
    """The five files of the task statement, keyed by file name (without `.csv`)."""
    return {
        "PAYMENTS": Source(
            "PAYMENTS",
            "raw.churn_payments",
            (
                Field("FECHA", "date", low=-history_months, high=horizon_months),
                Field("CUS_CUST_ID_SEL", "id"),
                CUSTOMER,
                Field("SPENT", "amount", low=0),
                Field("TPV_SEGMENT_DETAIL", "text", open_vocabulary=True),
                Field("DESCUENTO", "amount", low=0),
            ),
            per_customer=False,
        ),
        "ACTIVE_USER": Source(
            "ACTIVE_USER",
            "raw.churn_active_user",
            (
                CUSTOMER,
                Field("MAU_MP_1", "int", required=False, low=0, high=MAU_LIMIT),
                Field("MAU_ML_1", "int", required=False, low=0, high=MAU_LIMIT),
                Field("MAU_ML_2", "int", required=False, low=0, high=MAU_LIMIT),
                # a login after the as-of date cannot be in a snapshot taken on that date
                Field("last_login_mp_date_1", "date", required=False, low=-120, high=0),
            ),
            per_customer=True,
        ),
        "DEMOGRAFICOS": Source(
            "DEMOGRAFICOS",
            "raw.churn_demograficos",
            (
                CUSTOMER,
                Field("AGE", "int", required=False, low=14, high=120),
                Field("GENDER", "text", required=False),
                Field("CARD_TYPE", "text", required=False),
                Field("CITY", "text", required=False),
            ),
            per_customer=True,
        ),
        "DINERO_CUENTA": Source(
            "DINERO_CUENTA",
            "raw.churn_dinero_cuenta",
            (
                CUSTOMER,
                Field("PLATA_CUENTA_1", "amount", required=False, low=-AMOUNT_LIMIT),
                Field("PLATA_CUENTA_2", "amount", required=False, low=-AMOUNT_LIMIT),
                Field(
                    "INVERSION",
                    "category",
                    required=False,
                    choices=INVESTMENT_STATES,
                    aliases=(("Eligible", "Elegible"),),
                ),
            ),
            per_customer=True,
        ),
        "MARKETPLACE_DATA": Source(
            "MARKETPLACE_DATA",
            "raw.churn_marketplace_data",
            (
                CUSTOMER,
                Field("SPENT_ML", "amount", required=False, low=0),
                # the last purchase of a summary taken at the as-of date is before it (leak-free)
                Field("RECENCY_ML", "date", required=False, low=-120, high=0),
                Field("FREQUENCY_ML", "int", required=False, low=0, high=1_000_000),
            ),
            per_customer=True,
        ),
    }


def id_problem(text: str) -> str | None:
    """Why `text` (already trimmed) is not a valid opaque id, or None: the contract's id rule in plain
    Python (the app's batch upload checks `customer_id` with it)."""
    if not text:
        return "is empty"
    if len(text) > ID_MAX_LENGTH:
        return f"is longer than {ID_MAX_LENGTH} characters"
    if _CONTROL.search(text):
        return "contains control characters"
    return None


def _blank_to_null(col: Column) -> Column:
    from pyspark.sql import functions as F

    trimmed = F.trim(col)
    return F.when(trimmed != "", trimmed)


def _parse(f: Field, text: Column, config: IngestConfig) -> Column:
    """Typed value, or NULL when the text does not parse (the INVALID rule tells the two apart)."""
    from pyspark.sql import functions as F

    from jobs.common.dates import parse_date_column

    if f.kind == "id":
        return F.when((F.length(text) <= ID_MAX_LENGTH) & ~text.rlike(CONTROL_CHARS), text)
    if f.kind == "int":
        return F.when(text.rlike(_INT_RE), text).try_cast("bigint")
    if f.kind == "amount":
        return F.when(text.rlike(_AMOUNT_RE), text).try_cast("decimal(38,2)")
    if f.kind == "date":
        return parse_date_column(text, config.date_formats)[1]
    if f.kind == "category":
        spelled = F.create_map(*[F.lit(x) for pair in f.canonical().items() for x in pair])
        return spelled[F.lower(text)]
    return text


def parse_rows(raw: DataFrame, source: Source, config: IngestConfig) -> DataFrame:
    """Raw text columns (file names) -> `<col>__raw` (trimmed, blank = NULL) and typed `<col>`."""
    from pyspark.sql import functions as F

    texts = {f.raw: _blank_to_null(F.col(f"`{f.name}`").cast("string")) for f in source.fields}
    df = raw.select("source_row", CORRUPT, *[c.alias(name) for name, c in texts.items()])
    return df.withColumns({f.column: _parse(f, F.col(f.raw), config) for f in source.fields})


def _out_of_range(field: Field, as_of: date) -> Column | None:
    from pyspark.sql import functions as F

    value = F.col(field.column)
    checks: list[Column] = []
    if field.kind == "date":
        if field.low is not None:
            checks.append(value < F.add_months(F.lit(as_of), int(field.low)))
        if field.high is not None:
            checks.append(value >= F.add_months(F.lit(as_of), int(field.high)))
    elif field.kind in ("int", "amount"):
        if field.low is not None and field.low > -AMOUNT_LIMIT:
            checks.append(value < F.lit(field.low))
        if field.kind == "amount":
            checks.append(F.abs(value) >= F.lit(AMOUNT_LIMIT))  # would overflow NUMERIC(14, 2)
        elif field.high is not None:
            checks.append(value > F.lit(field.high))
    if not checks:
        return None
    combined = checks[0]
    for check in checks[1:]:
        combined = combined | check
    return combined


def source_rules(source: Source, as_of: date, config: IngestConfig) -> list[Rule]:
    """The rule table of one file; rule order is the order of the reason text."""
    from pyspark.sql import functions as F

    rules = [
        Rule(
            "MALFORMED_ROW",
            "the line does not have the file's number of fields",
            lambda: F.col(CORRUPT).isNotNull(),
        )
    ]
    for f in source.fields:
        label = f"{f.name} ({source.name})"
        if f.required:
            rules.append(Rule(f"{f.name.upper()}_MISSING", f"{label} is missing", _missing(f)))
        if f.kind != "text":
            rules.append(
                Rule(
                    f"{f.name.upper()}_INVALID",
                    f"{label} is not a valid {_kind_text(f, config)}",
                    _invalid(f),
                )
            )
        range_check = _out_of_range(f, as_of)
        if range_check is not None:
            rules.append(
                Rule(
                    f"{f.name.upper()}_OUT_OF_RANGE",
                    f"{label} is out of range ({_range_text(f)})",
                    (lambda check=range_check: check),
                )
            )
        known = config.known_values.get(f.name, ())
        if f.open_vocabulary and known:
            rules.append(_unknown_value_rule(f, label, known, config.max_unknown_share))
    if source.per_customer:
        rules.append(
            Rule(
                "DUPLICATE_CONFLICT",
                "the customer appears more than once with different values (all copies rejected)",
                lambda: F.col("is_conflicting_duplicate"),
                scope="key",
            )
        )
    check_unique_codes(rules)
    return rules


def _unknown_value_rule(f: Field, label: str, known: Sequence[str], max_share: float) -> Rule:
    """A warning, never a reject: the value is valid, but outside the known set (case-insensitive, trimmed)."""
    from pyspark.sql import functions as F

    lowered = sorted({k.strip().lower() for k in known})
    return Rule(
        f"{f.name.upper()}_UNKNOWN",
        f"{label} is none of the {len(lowered)} known values (a warning: the row is kept)",
        lambda: F.col(f.raw).isNotNull() & ~F.lower(F.col(f.raw)).isin(lowered),
        severity="warn",
        max_share=max_share,
        subject=lambda: F.col(f.raw),
    )


def _missing(f: Field):
    from pyspark.sql import functions as F

    return lambda: F.col(f.raw).isNull()


def _invalid(f: Field):
    from pyspark.sql import functions as F

    return lambda: F.col(f.raw).isNotNull() & F.col(f.column).isNull()


def _kind_text(f: Field, config: IngestConfig) -> str:
    if f.kind == "id":
        return f"id (1 to {ID_MAX_LENGTH} characters, no control characters)"
    if f.kind == "date":
        return f"date ({' or '.join(config.date_formats)})"
    if f.kind == "category":
        extra = "".join(f", or {alias} for {target}" for alias, target in f.aliases)
        return f"value: one of {', '.join(f.choices)} (any case{extra})"
    return {"int": "whole number", "amount": "plain decimal number"}[f.kind]


def _months(m: float) -> str:
    if m == 0:
        return "the as-of date"
    return f"{abs(int(m))} months {'before' if m < 0 else 'after'} the as-of date"


def _range_text(f: Field) -> str:
    if f.kind == "date":
        return f"on or after {_months(f.low)} and before {_months(f.high)}"
    if f.kind == "amount":
        low = "" if f.low is None or f.low <= -AMOUNT_LIMIT else f">= {f.low:g}, "
        return f"{low}|value| < {AMOUNT_LIMIT:.0e}"
    return f"{f.low:g}..{f.high:g}"


def annotate(parsed: DataFrame, source: Source, rules: Sequence[Rule]) -> DataFrame:
    """Adds `rule_codes`, `is_rejected`, `row_hash` and, for per-customer files, duplicate handling:
    exact copies (same values) collapse to the first, conflicting copies are all rejected."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    row_rules = [r for r in rules if r.scope == "row"]
    df = parsed.withColumn(
        "row_hash", F.sha2(F.to_json(F.struct(*[F.col(f.raw) for f in source.fields])), 256)
    )
    df = df.withColumn("row_codes", codes_column(row_rules))
    if source.per_customer:
        key = Window.partitionBy(CUSTOMER.column)
        clean = F.size("row_codes") == 0
        df = df.withColumns(
            {
                "is_conflicting_duplicate": clean
                & F.col(CUSTOMER.column).isNotNull()
                & (F.size(F.collect_set(F.when(clean, F.col("row_hash"))).over(key)) > 1),
                "copy_number": F.row_number().over(
                    Window.partitionBy(CUSTOMER.column, "row_hash").orderBy("source_row")
                ),
            }
        )
        df = df.withColumn(
            "is_exact_duplicate", clean & ~F.col("is_conflicting_duplicate") & (F.col("copy_number") > 1)
        ).drop("copy_number")
    else:
        df = df.withColumns({"is_conflicting_duplicate": F.lit(False), "is_exact_duplicate": F.lit(False)})
    df = df.withColumn("rule_codes", codes_column(rules))
    return df.withColumn("is_rejected", F.size("rule_codes") > 0)
