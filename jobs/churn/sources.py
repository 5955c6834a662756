"""The contract of the five churn source files, and the rule table derived from it.

Each file is described once, column by column (`Field`: kind, required, range). From that description come
the typed parse, the rule table (`<FIELD>_MISSING`, `<FIELD>_INVALID`, `<FIELD>_OUT_OF_RANGE`, plus
`MALFORMED_ROW` and, for the per-customer snapshot files, `DUPLICATE_CONFLICT`), and through
`jobs.common.rules` / `jobs.common.gate` both the quarantine split and the GX suite: never two copies.

Transformations here are pure (DataFrame in, DataFrame out); `jobs.churn.ingest` does the I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal

from jobs.common.rules import Rule, check_unique_codes, codes_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

Kind = Literal["id", "int", "flag", "amount", "date", "text"]
CORRUPT = "_corrupt_record"
AMOUNT_LIMIT = 1e12  # NUMERIC(14, 2) in raw: anything at or above is an overflow, not a value
_INT_RE = r"^[+-]?[0-9]{1,18}$"
_AMOUNT_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"  # no exponent, NaN or Infinity
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@dataclass(frozen=True)
class Field:
    name: str  # as in the file
    kind: Kind
    required: bool = True
    low: float | None = None  # inclusive; for dates: months relative to the as-of date
    high: float | None = None  # inclusive for numbers; for dates: exclusive, months relative to as-of

    @property
    def column(self) -> str:
        return self.name.lower()

    @property
    def raw(self) -> str:
        return f"{self.column}__raw"


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
                Field("TPV_SEGMENT_DETAIL", "text"),
                Field("DESCUENTO", "amount", low=0),
            ),
            per_customer=False,
        ),
        "ACTIVE_USER": Source(
            "ACTIVE_USER",
            "raw.churn_active_user",
            (
                CUSTOMER,
                Field("MAU_MP_1", "flag", required=False),
                Field("MAU_ML_1", "flag", required=False),
                Field("MAU_ML_2", "flag", required=False),
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
                Field("INVERSION", "flag", required=False),
            ),
            per_customer=True,
        ),
        "MARKETPLACE_DATA": Source(
            "MARKETPLACE_DATA",
            "raw.churn_marketplace_data",
            (
                CUSTOMER,
                Field("SPENT_ML", "amount", required=False, low=0),
                Field("RECENCY_ML", "int", required=False, low=0, high=36_500),
                Field("FREQUENCY_ML", "int", required=False, low=0, high=1_000_000),
            ),
            per_customer=True,
        ),
    }


def _blank_to_null(col: Column) -> Column:
    from pyspark.sql import functions as F

    trimmed = F.trim(col)
    return F.when(trimmed != "", trimmed)


def _parse(field: Field, text: Column) -> Column:
    """Typed value, or NULL when the text does not parse (the INVALID rule tells the two apart)."""
    from pyspark.sql import functions as F

    if field.kind in ("id", "int", "flag"):
        return F.when(text.rlike(_INT_RE), text).try_cast("bigint")
    if field.kind == "amount":
        return F.when(text.rlike(_AMOUNT_RE), text).try_cast("decimal(38,2)")
    if field.kind == "date":
        return F.try_to_timestamp(F.when(text.rlike(_DATE_RE), text), F.lit("yyyy-MM-dd")).cast("date")
    return text


def parse_rows(raw: DataFrame, source: Source) -> DataFrame:
    """Raw text columns (file names) -> `<col>__raw` (trimmed, blank = NULL) and typed `<col>`."""
    from pyspark.sql import functions as F

    texts = {f.raw: _blank_to_null(F.col(f"`{f.name}`").cast("string")) for f in source.fields}
    df = raw.select("source_row", CORRUPT, *[c.alias(name) for name, c in texts.items()])
    return df.withColumns({f.column: _parse(f, F.col(f.raw)) for f in source.fields})


def _out_of_range(field: Field, as_of: date) -> Column | None:
    from pyspark.sql import functions as F

    value = F.col(field.column)
    checks: list[Column] = []
    if field.kind == "id":
        checks.append(value <= 0)
    elif field.kind == "flag":
        checks.append(~value.isin(0, 1))
    elif field.kind == "date":
        if field.low is not None:
            checks.append(value < F.add_months(F.lit(as_of), int(field.low)))
        if field.high is not None:
            checks.append(value >= F.add_months(F.lit(as_of), int(field.high)))
    else:
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


def source_rules(source: Source, as_of: date) -> list[Rule]:
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
                Rule(f"{f.name.upper()}_INVALID", f"{label} is not a valid {_kind_text(f.kind)}", _invalid(f))
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


def _missing(f: Field):
    from pyspark.sql import functions as F

    return lambda: F.col(f.raw).isNull()


def _invalid(f: Field):
    from pyspark.sql import functions as F

    return lambda: F.col(f.raw).isNotNull() & F.col(f.column).isNull()


def _kind_text(kind: Kind) -> str:
    return {
        "id": "positive integer id",
        "int": "whole number",
        "flag": "0/1 flag",
        "amount": "plain decimal number",
        "date": "yyyy-MM-dd date",
    }[kind]


def _range_text(f: Field) -> str:
    if f.kind == "date":
        return f"from {f.low} to {f.high} months around the as-of date"
    if f.kind == "flag":
        return "0 or 1"
    if f.kind == "id":
        return "> 0"
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
