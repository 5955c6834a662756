"""Pure Spark transformations of the crypto events workflow: normalise, parse, judge, split.

`annotate` turns the raw extract (one row per source row, every value text) into one row per source
row with the typed target columns, the array of rule codes it breaks, its reason and whether it is a
collapsed exact duplicate. Every source row stays accounted for: valid + rejected + collapsed = read.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from jobs.common.dates import pattern_regex
from jobs.common.rules import Rule, codes_column, reasons_column, rule_flags
from jobs.crypto_events.rules import (
    INT_PATTERN,
    NUMBER_PATTERN,
    PRICE_TYPE,
    UNITS_TYPE,
    VALUE_TYPE,
)

RAW_COLUMNS = ("site_id", "user_id", "purchase_date", "crypto_type", "purchase_price", "purchase_units")
KEY_COLUMNS = ("site_id", "user_id", "purchase_date", "crypto_type")
TARGET_COLUMNS = (*KEY_COLUMNS, "purchase_price", "purchase_units", "purchase_value")
_PARSE_SCALE = DecimalType(38, 18)


def _blank_to_null(col: Column) -> Column:
    trimmed = F.trim(col)
    return F.when(trimmed == "", None).otherwise(trimmed)


def normalise(raw: DataFrame) -> DataFrame:
    """Trimmed copies of the raw values (`n_*`), codes upper-cased, blanks as NULL; raw values kept."""
    return raw.withColumns(
        {
            "n_site_id": F.upper(_blank_to_null(F.col("site_id"))),
            "n_user_id": _blank_to_null(F.col("user_id")),
            "n_purchase_date": _blank_to_null(F.col("purchase_date")),
            "n_crypto_type": F.upper(_blank_to_null(F.col("crypto_type"))),
            "n_purchase_price": _blank_to_null(F.col("purchase_price")),
            "n_purchase_units": _blank_to_null(F.col("purchase_units")),
        }
    )


def _decimal(text: Column, is_number: Column, precision: int, scale: int) -> Column:
    """Rounded (HALF_UP) to the target scale; NULL when not a number or when it does not fit."""
    parsed = F.when(is_number, text.try_cast(_PARSE_SCALE))
    return F.round(parsed, scale).try_cast(DecimalType(precision, scale))


def parse_dates(text: Column, date_formats: Sequence[str]) -> tuple[Column, Column]:
    """(shape matches an accepted format, parsed date or NULL when not a real calendar date)."""
    shapes = [text.rlike(pattern_regex(fmt)) for fmt in date_formats]
    shape_ok = F.coalesce(*[F.when(s, F.lit(True)) for s in shapes], F.lit(False))
    parsed = F.coalesce(
        *[F.when(s, F.try_to_date(text, fmt)) for s, fmt in zip(shapes, date_formats, strict=True)]
    )
    return shape_ok, parsed


def parse_rows(normalised: DataFrame, date_formats: Sequence[str], reference_prices: DataFrame) -> DataFrame:
    """Typed target columns (`t_*`, NULL when the value is invalid or overflows) and the reference price.

    Each text is matched against its pattern once (`*_is_int`, `*_is_number`, `date_shape_ok`); the rules
    read those flags instead of evaluating the regular expressions again."""
    shape_ok, parsed_date = parse_dates(F.col("n_purchase_date"), date_formats)
    matched = normalised.withColumns(
        {
            "user_is_int": F.coalesce(F.col("n_user_id").rlike(INT_PATTERN), F.lit(False)),
            "price_is_number": F.coalesce(F.col("n_purchase_price").rlike(NUMBER_PATTERN), F.lit(False)),
            "units_is_number": F.coalesce(F.col("n_purchase_units").rlike(NUMBER_PATTERN), F.lit(False)),
            "date_shape_ok": shape_ok,
            "p_purchase_date": parsed_date,
        }
    )
    user = F.when(F.col("user_is_int"), F.col("n_user_id").try_cast(DecimalType(38, 0)))
    typed = matched.withColumns(
        {
            "t_user_id": user.try_cast("bigint"),
            "t_purchase_price": _decimal(F.col("n_purchase_price"), F.col("price_is_number"), *PRICE_TYPE),
            "t_purchase_units": _decimal(F.col("n_purchase_units"), F.col("units_is_number"), *UNITS_TYPE),
        }
    ).withColumn(
        "t_purchase_value",
        F.round(F.try_multiply(F.col("t_purchase_price"), F.col("t_purchase_units")), VALUE_TYPE[1]).try_cast(
            DecimalType(*VALUE_TYPE)
        ),
    )
    refs = reference_prices.select(
        F.col("price_date").alias("_ref_date"),
        F.col("crypto_type").alias("_ref_crypto"),
        F.col("reference_price").cast(_PARSE_SCALE).alias("reference_price"),
    )
    joined = typed.join(
        F.broadcast(refs),
        (F.col("p_purchase_date") == F.col("_ref_date")) & (F.col("n_crypto_type") == F.col("_ref_crypto")),
        "left",
    )
    return joined.drop("_ref_date", "_ref_crypto")


def flag_duplicates(df: DataFrame, row_codes: str = "row_codes") -> DataFrame:
    """Among rows that break no row rule: keys with differing values conflict (`dup_conflict`); exact
    copies beyond the first (lowest `source_row`) are `is_duplicate_copy` and get collapsed."""
    clean = F.size(row_codes) == 0
    key = [F.col("n_site_id"), F.col("t_user_id"), F.col("p_purchase_date"), F.col("n_crypto_type")]
    values = F.concat_ws(
        "|", F.col("t_purchase_price").cast("string"), F.col("t_purchase_units").cast("string")
    )
    by_key = Window.partitionBy(clean, *key)
    distinct_values = F.size(F.collect_set(values).over(by_key))
    first = F.row_number().over(by_key.orderBy("source_row")) == 1
    return df.withColumns(
        {
            "dup_conflict": clean & (distinct_values > 1),
            "is_duplicate_copy": clean & (distinct_values == 1) & ~first,
        }
    )


def annotate(
    raw: DataFrame,
    rules: Sequence[Rule],
    date_formats: Sequence[str],
    reference_prices: DataFrame,
) -> DataFrame:
    """One pass over the extract: every row with its typed values, rule codes, reason and flags."""
    row_rules = [r for r in rules if r.scope == "row"]
    key_rules = [r for r in rules if r.scope == "key"]
    parsed = parse_rows(normalise(raw), date_formats, reference_prices)
    judged = flag_duplicates(parsed.withColumn("row_codes", codes_column(row_rules)))
    judged = judged.withColumn("rule_codes", F.concat(F.col("row_codes"), codes_column(key_rules)))
    judged = judged.withColumns(
        {
            "is_rejected": F.size("rule_codes") > 0,
            "reason": reasons_column(rules),
        }
    )
    # keep what later steps read (staging, quarantine, gate, counts): the cache holds no intermediates
    intermediates = [
        "row_codes", "dup_conflict", "reference_price", "date_shape_ok", "user_is_int", "price_is_number",
        "units_is_number", "n_user_id", "n_purchase_date", "n_purchase_price", "n_purchase_units",
    ]  # fmt: skip
    return rule_flags(judged, rules).drop(*intermediates)


def valid_rows(annotated: DataFrame) -> DataFrame:
    """Rule-clean rows, exact duplicates collapsed, in the shape of the staging candidate table."""
    kept = annotated.where(~F.col("is_rejected") & ~F.col("is_duplicate_copy"))
    return kept.select(
        F.col("n_site_id").alias("site_id"),
        F.col("t_user_id").alias("user_id"),
        F.col("p_purchase_date").alias("purchase_date"),
        F.col("n_crypto_type").alias("crypto_type"),
        F.col("t_purchase_price").alias("purchase_price"),
        F.col("t_purchase_units").alias("purchase_units"),
        F.col("t_purchase_value").alias("purchase_value"),
        "source_row",
        "row_hash",
    )


def rejected_rows(annotated: DataFrame) -> DataFrame:
    """Quarantine rows: codes, reason, the raw values as text and the key where it parses."""
    return annotated.where(F.col("is_rejected")).select(
        "source_row",
        "rule_codes",
        "reason",
        *[F.col(name).alias(f"raw_{name}") for name in RAW_COLUMNS],
        "row_hash",
        F.col("n_site_id").alias("key_site_id"),
        F.col("t_user_id").alias("key_user_id"),
        F.col("p_purchase_date").alias("key_purchase_date"),
        F.col("n_crypto_type").alias("key_crypto_type"),
    )


def summarise(annotated: DataFrame, rules: Sequence[Rule]) -> dict[str, object]:
    """Counts of the run in one aggregation: read, valid, rejected, duplicates collapsed, per rule."""
    as_int = lambda cond: F.sum(F.when(cond, 1).otherwise(0))  # noqa: E731
    row = annotated.agg(
        F.count(F.lit(1)).alias("rows_read"),
        as_int(~F.col("is_rejected") & ~F.col("is_duplicate_copy")).alias("rows_valid"),
        as_int(F.col("is_rejected")).alias("rows_rejected"),
        as_int(F.col("is_duplicate_copy")).alias("duplicates_collapsed"),
        *[as_int(F.col(rule.flag_column)).alias(rule.code) for rule in rules],
    ).first()
    counts = {
        k: int(row[k] or 0) for k in ("rows_read", "rows_valid", "rows_rejected", "duplicates_collapsed")
    }
    by_rule = {rule.code: int(row[rule.code] or 0) for rule in rules}
    return {**counts, "rejects_by_rule": {code: n for code, n in by_rule.items() if n}}
