"""The ingest's pure transformations: a source file's text rows parsed, judged and split.

From the contract (`jobs.churn.contract.sources`) comes one rule table per file (`<FIELD>_MISSING`,
`<FIELD>_INVALID`, `<FIELD>_OUT_OF_RANGE`, plus `MALFORMED_ROW` and, for the per-customer snapshot files,
`DUPLICATE_CONFLICT`; the warning `<FIELD>_UNKNOWN` for open vocabularies); through `jobs.common.rules` and
`jobs.common.gate` it drives both the quarantine split and the GX suite. DataFrame in, DataFrame out: the
reads and writes are `jobs.churn.ingest.io`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from jobs.churn.contract.sources import (
    AMOUNT_LIMIT,
    AMOUNT_PATTERN,
    CONTROL_CHARS,
    CORRUPT,
    CUSTOMER,
    ID_MAX_LENGTH,
    INT_PATTERN,
    Field,
    IngestConfig,
    Source,
)
from jobs.common.rules import Rule, check_unique_codes, codes_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from jobs.common.gate import GateResult


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
        return F.when(text.rlike(INT_PATTERN), text).try_cast("bigint")
    if f.kind == "amount":
        return F.when(text.rlike(AMOUNT_PATTERN), text).try_cast("decimal(38,2)")
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


def summarise(annotated: DataFrame, rules: Sequence[Rule]) -> tuple[dict[str, int], dict[str, int]]:
    """Row counts, and the rows each rule flags (rejecting rules: rejects; warning rules: warned rows)."""
    from pyspark.sql import functions as F

    from jobs.common.rules import flag

    row = annotated.agg(
        F.count(F.lit(1)).alias("read"),
        F.sum(F.col("is_rejected").cast("long")).alias("rejected"),
        F.sum((F.col("is_exact_duplicate") & ~F.col("is_rejected")).cast("long")).alias("duplicates"),
        *[F.sum(flag(r).cast("long")).alias(r.code) for r in rules],
    ).first()
    read, rejected, duplicates = (int(row[k] or 0) for k in ("read", "rejected", "duplicates"))
    counts = {
        "read": read,
        "rejected": rejected,
        "duplicates": duplicates,
        "valid": read - rejected - duplicates,
    }
    by_rule = {r.code: int(row[r.code] or 0) for r in rules if row[r.code]}
    return counts, by_rule


def valid_rows(annotated: DataFrame, source: Source) -> DataFrame:
    """The rows the raw table gets (its columns but the batch id): neither rejected nor an exact copy of a
    kept row."""
    from pyspark.sql import functions as F

    keep = annotated.filter(~F.col("is_rejected") & ~F.col("is_exact_duplicate"))
    return keep.select("source_row", *source.columns, "row_hash")


def rejected_rows(annotated: DataFrame, source: Source, rules: Sequence[Rule]) -> DataFrame:
    """The quarantine rows (`dqm.churn_rejects` but the batch id): rule codes, the reason, the raw values as
    JSON."""
    from pyspark.sql import functions as F

    from jobs.common.rules import reasons_column
    from jobs.common.stage import text_array

    raw = F.to_json(
        F.struct(
            *[F.col(f.raw).alias(f.name) for f in source.fields],
            F.col(CORRUPT).alias("_malformed_line"),
        )
    )
    return annotated.filter("is_rejected").select(
        F.lit(source.name).alias("source"),
        "source_row",
        text_array("rule_codes").alias("rule_codes"),
        reasons_column(rules).alias("reason"),
        raw.alias("raw_values"),
        "row_hash",
    )


def warning_details(
    annotated: DataFrame, rules: Sequence[Rule], by_rule: dict[str, int], gate: GateResult
) -> dict:
    """Per warning rule that fired: rows, observed share, its limit and the most frequent values."""
    from jobs.common.rules import frequent_values

    details = {}
    for rule in (r for r in rules if not r.rejects and by_rule.get(r.code)):
        check = gate.check(rule.code) or {}
        details[rule.code] = {
            "rows": by_rule[rule.code],
            "share": check.get("share"),
            "max_share": rule.max_share,
            "passed": check.get("success"),
            "top_values": [[value, n] for value, n in frequent_values(annotated, rule)],
        }
    return details
