"""Pure Spark transformations of the crypto events workflow: place dates, normalise, parse, judge, split.

`place_dates` decides, from the distinct date texts of the source, which texts belong to the run's window
and which fit no window at all; `annotate` turns the run's landing snapshot (one row per landed row, every
value text) into one row per landed row with the typed target columns, the array of rule codes it breaks,
its reason and whether it is a collapsed exact duplicate. Every landed row stays accounted for:
valid + rejected + collapsed = read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from jobs.common.dates import parse_date_column
from jobs.common.rules import Rule, codes_column, reasons_column, rule_flags
from jobs.crypto_events.rules import INT_PATTERN, NUMBER_PATTERN, PRICE_TYPE, UNITS_TYPE, VALUE_TYPE

RAW_COLUMNS = ("site_id", "user_id", "purchase_date", "crypto_type", "purchase_price", "purchase_units")
KEY_COLUMNS = ("site_id", "user_id", "purchase_date", "crypto_type")
TARGET_COLUMNS = (*KEY_COLUMNS, "purchase_price", "purchase_units", "purchase_value")
_PARSE_SCALE = DecimalType(38, 18)


WINDOW, UNPLACED, ELSEWHERE = "window", "unplaced", "elsewhere"


# Unicode white space (Z*, and the ASCII ones), control (Cc) and format characters (Cf: BOM, zero-width space)
_EDGE = r"[\s\p{Z}\p{Cc}\p{Cf}]+"


def normalised_text(col: Column) -> Column:
    """The one normalisation of every raw value: white space and control characters stripped at both ends
    (a trailing newline or a no-break space is not part of a value), blank as NULL."""
    stripped = F.regexp_replace(col, f"^{_EDGE}|{_EDGE}$", "")
    return F.when(stripped == "", None).otherwise(stripped)


def normalise(raw: DataFrame) -> DataFrame:
    """Normalised copies of the raw values (`n_*`), codes upper-cased; raw values kept."""
    return raw.withColumns(
        {
            "n_site_id": F.upper(normalised_text(F.col("site_id"))),
            "n_user_id": normalised_text(F.col("user_id")),
            "n_purchase_date": normalised_text(F.col("purchase_date")),
            "n_crypto_type": F.upper(normalised_text(F.col("crypto_type"))),
            "n_purchase_price": normalised_text(F.col("purchase_price")),
            "n_purchase_units": normalised_text(F.col("purchase_units")),
        }
    )


def place_dates(
    texts: DataFrame, date_formats: Sequence[str], window: tuple[date, date], bounds: tuple[date, date]
) -> DataFrame:
    """Distinct raw date texts (`purchase_date`) -> the date each means (`day`, NULL when none) and its
    `placement`: in the run's `window`; `unplaced` when no window can hold it (no date, or a date outside
    `bounds`, the plausible history); `elsewhere` when it belongs to another day's window.

    The same normalisation and parse as `annotate`, so the rows fetched for a window are exactly the rows
    whose date the rules read as a day of that window."""
    _, day = parse_date_column(normalised_text(F.col("purchase_date")), date_formats)
    placed = texts.select("purchase_date", day.alias("day"))
    in_window = F.col("day").between(F.lit(window[0]), F.lit(window[1]))
    plausible = F.col("day").between(F.lit(bounds[0]), F.lit(bounds[1]))
    return placed.withColumn(
        "placement",
        F.when(in_window, F.lit(WINDOW)).when(plausible, F.lit(ELSEWHERE)).otherwise(F.lit(UNPLACED)),
    )


# a number text whose digits are all zero (0, -0.000, 0e5): neither positive nor negative
ZERO_PATTERN = r"^[+-]?[0.]*([eE][+-]?[0-9]+)?$"


def _decimal(text: Column, is_number: Column, precision: int, scale: int) -> Column:
    """The text as the target type, rounded HALF_UP once, straight from its exact value (a cast through a
    wider decimal first would round twice); NULL when not a number or when it does not fit."""
    return F.when(is_number, text.try_cast(DecimalType(precision, scale)))


def _sign(text: Column, is_number: Column) -> Column:
    """+1, 0 or -1: the sign of the number the text writes, read from the text itself, so a value too small
    for the target scale is still known to be positive."""
    negative = text.startswith("-")
    return F.when(is_number, F.when(text.rlike(ZERO_PATTERN), 0).when(negative, -1).otherwise(1))


def exact_value(price: Column, units: Column, scale: int) -> Column:
    """round_half_up(price * units, scale) of the EXACT product, rounded once.

    Spark types decimal(20,8) * decimal(24,10) as decimal(45,18), more than 38 digits, so it rounds the
    product to scale 11 first and a second rounding is then off by one unit in the last place
    (1.001669 * 16.16154883 = 16.18852245499... would become 16.18852246). Instead: units = whole + fraction
    with the same sign; price * whole is exact at the target scale, price * fraction is exact at scale 18 and
    is the only term that needs rounding; both terms have the sign of the product, so rounding half away
    from zero commutes with adding the exact, already-on-grid term."""
    whole = F.when(units >= 0, F.floor(units)).otherwise(F.ceil(units))
    fraction = (units - whole).cast(DecimalType(UNITS_TYPE[1], UNITS_TYPE[1]))  # |fraction| < 1: exact
    return price * whole + F.round(price * fraction, scale)


def parse_rows(normalised: DataFrame, date_formats: Sequence[str], reference_prices: DataFrame) -> DataFrame:
    """Typed target columns (`t_*`, NULL when the value is invalid or overflows) and the reference price.

    Each text is matched against its pattern once (`*_is_int`, `*_is_number`, `date_shape_ok`); the rules
    read those flags instead of evaluating the regular expressions again."""
    shape_ok, parsed_date = parse_date_column(F.col("n_purchase_date"), date_formats)
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
            "price_sign": _sign(F.col("n_purchase_price"), F.col("price_is_number")),
            "units_sign": _sign(F.col("n_purchase_units"), F.col("units_is_number")),
        }
    ).withColumn(
        "t_purchase_value",
        exact_value(F.col("t_purchase_price"), F.col("t_purchase_units"), VALUE_TYPE[1]).try_cast(
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
    copies beyond the first (lowest `landing_row`) are `is_duplicate_copy` and get collapsed."""
    clean = F.size(row_codes) == 0
    key = [F.col("n_site_id"), F.col("t_user_id"), F.col("p_purchase_date"), F.col("n_crypto_type")]
    values = F.concat_ws(
        "|", F.col("t_purchase_price").cast("string"), F.col("t_purchase_units").cast("string")
    )
    # min/max over the key, not a collected set and a row number: the same answer (values differ iff their
    # min and max do; the first copy holds the key's lowest landing row) without building a set per row or
    # sorting within the key (30% of the judging time at 1M rows, bench-crypto)
    by_key = Window.partitionBy(clean, *key)
    differ = F.min(values).over(by_key) != F.max(values).over(by_key)
    first = F.col("landing_row") == F.min("landing_row").over(by_key)
    return df.withColumns({"dup_conflict": clean & differ, "is_duplicate_copy": clean & ~differ & ~first})


def annotate(
    raw: DataFrame,
    rules: Sequence[Rule],
    date_formats: Sequence[str],
    reference_prices: DataFrame,
) -> DataFrame:
    """One pass over the landed rows: every row with its typed values, rule codes, reason and flags.

    `correction_id` (when the rows were read with the stewards' corrections, `io.read_landing`) names the
    correction whose values replaced upstream's; it is judged like any other row."""
    row_rules = [r for r in rules if r.scope == "row"]
    key_rules = [r for r in rules if r.scope == "key"]
    if "correction_id" not in raw.columns:  # no steward's correction read with the rows
        raw = raw.withColumn("correction_id", F.lit(None).cast("bigint"))
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
        "units_is_number", "price_sign", "units_sign", "n_user_id", "n_purchase_date", "n_purchase_price",
        "n_purchase_units",
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
        "landing_row",
        "row_hash",
        "correction_id",
    )


def rejected_rows(annotated: DataFrame) -> DataFrame:
    """Quarantine rows: codes, reason, the raw values as text and the key where it parses."""
    return annotated.where(F.col("is_rejected")).select(
        "landing_row",
        "scope",
        "rule_codes",
        "reason",
        *[F.col(name).alias(f"raw_{name}") for name in RAW_COLUMNS],
        "row_hash",
        F.col("n_site_id").alias("key_site_id"),
        F.col("t_user_id").alias("key_user_id"),
        F.col("p_purchase_date").alias("key_purchase_date"),
        F.col("n_crypto_type").alias("key_crypto_type"),
        "correction_id",
    )


def summarise(annotated: DataFrame, rules: Sequence[Rule]) -> dict[str, object]:
    """Counts of the run in one aggregation: read, valid, rejected, duplicates collapsed, per rule."""
    as_int = lambda cond: F.sum(F.when(cond, 1).otherwise(0))  # noqa: E731
    row = annotated.agg(
        F.count(F.lit(1)).alias("rows_read"),
        as_int(~F.col("is_rejected") & ~F.col("is_duplicate_copy")).alias("rows_valid"),
        as_int(F.col("is_rejected")).alias("rows_rejected"),
        as_int(F.col("is_duplicate_copy")).alias("duplicates_collapsed"),
        as_int(F.col("scope") == UNPLACED).alias("rows_unplaced"),
        as_int(F.col("correction_id").isNotNull()).alias("rows_corrected"),
        *[as_int(F.col(rule.flag_column)).alias(rule.code) for rule in rules],
    ).first()
    counts = {
        k: int(row[k] or 0)
        for k in (
            "rows_read",
            "rows_valid",
            "rows_rejected",
            "duplicates_collapsed",
            "rows_unplaced",
            "rows_corrected",
        )
    }
    by_rule = {rule.code: int(row[rule.code] or 0) for rule in rules}
    return {**counts, "rejects_by_rule": {code: n for code, n in by_rule.items() if n}}
