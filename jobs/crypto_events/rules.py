"""The crypto events rule table: the one definition behind the quarantine split and the GX gate.

Predicates read the normalised (`n_*`) and parsed (`p_*`, typed target) columns that
`jobs.crypto_events.transform.parse_rows` adds. Each defect class has its own code; rules that need a
value another rule already rejects (e.g. plausibility needs a valid price and date) stay silent, so a
row with one defect carries one code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from jobs.common.rules import Rule, check_unique_codes

INT_PATTERN = r"^[+-]?[0-9]+$"
NUMBER_PATTERN = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"  # NaN/Infinity do not match

# Target precision of prod.bt_crypto_events (must match database/sql/init/10_crypto.sql).
PRICE_TYPE = (20, 8)
UNITS_TYPE = (24, 10)
VALUE_TYPE = (24, 8)

SITE_MISSING = "SITE_MISSING"
SITE_UNKNOWN = "SITE_UNKNOWN"
USER_ID_INVALID = "USER_ID_INVALID"
USER_ID_NON_POSITIVE = "USER_ID_NON_POSITIVE"
DATE_MISSING = "DATE_MISSING"
DATE_UNPARSEABLE = "DATE_UNPARSEABLE"
DATE_IMPOSSIBLE = "DATE_IMPOSSIBLE"
DATE_BEFORE_HISTORY = "DATE_BEFORE_HISTORY"
DATE_FAR_FUTURE = "DATE_FAR_FUTURE"
DATE_NOT_IN_WINDOW = "DATE_NOT_IN_WINDOW"  # a guard: never fires when the snapshot was taken by these rules
# the codes of a row whose date no window can hold: quarantined once, by the first merged run that sees it
UNPLACED_DATE_CODES = (DATE_MISSING, DATE_UNPARSEABLE, DATE_IMPOSSIBLE, DATE_BEFORE_HISTORY, DATE_FAR_FUTURE)
CRYPTO_MISSING = "CRYPTO_MISSING"
CRYPTO_UNKNOWN = "CRYPTO_UNKNOWN"
PRICE_INVALID = "PRICE_INVALID"
PRICE_NON_POSITIVE = "PRICE_NON_POSITIVE"
PRICE_IMPLAUSIBLE = "PRICE_IMPLAUSIBLE"
PRICE_NO_REFERENCE = "PRICE_NO_REFERENCE"
UNITS_INVALID = "UNITS_INVALID"
UNITS_NON_POSITIVE = "UNITS_NON_POSITIVE"
NUMERIC_OVERFLOW = "NUMERIC_OVERFLOW"
NUMERIC_UNDERFLOW = "NUMERIC_UNDERFLOW"
DUPLICATE_CONFLICT = "DUPLICATE_CONFLICT"


@dataclass(frozen=True)
class RuleContext:
    window_start: date
    window_end: date
    earliest_date: date  # the plausible history: a purchase date outside [earliest, latest] fits no window
    latest_date: date
    known_sites: tuple[str, ...]
    known_cryptos: tuple[str, ...]
    price_tolerance: float


def crypto_rules(ctx: RuleContext) -> list[Rule]:
    from pyspark.sql import functions as F

    c = F.col

    # `*_is_int` / `*_is_number`: the text matched INT_PATTERN / NUMBER_PATTERN; `*_sign`: the sign the text
    # writes (exact, whatever its size); all computed once, in parse_rows
    price_ok = c("price_is_number") & c("t_purchase_price").isNotNull()
    units_ok = c("units_is_number") & c("t_purchase_units").isNotNull()
    both_positive = (c("t_purchase_price") > 0) & (c("t_purchase_units") > 0)
    overflow = (
        (c("user_is_int") & c("t_user_id").isNull())
        | ((c("price_sign") > 0) & c("t_purchase_price").isNull())
        | ((c("units_sign") > 0) & c("t_purchase_units").isNull())
        | (price_ok & units_ok & both_positive & c("t_purchase_value").isNull())
    )
    underflow = (
        ((c("price_sign") > 0) & (c("t_purchase_price") == 0))
        | ((c("units_sign") > 0) & (c("t_purchase_units") == 0))
        | (both_positive & (c("t_purchase_value") == 0))
    )
    in_window = c("p_purchase_date").between(F.lit(ctx.window_start), F.lit(ctx.window_end))
    low, high = 1.0 / ctx.price_tolerance, ctx.price_tolerance
    ratio = c("t_purchase_price") / c("reference_price")

    rules = [
        Rule(SITE_MISSING, "site_id is missing", lambda: c("n_site_id").isNull()),
        Rule(
            SITE_UNKNOWN,
            f"site_id is not one of the known sites {list(ctx.known_sites)}",
            lambda: c("n_site_id").isNotNull() & ~c("n_site_id").isin(list(ctx.known_sites)),
        ),
        Rule(
            USER_ID_INVALID,
            "user_id is missing or not an integer",
            lambda: c("n_user_id").isNull() | ~c("user_is_int"),
        ),
        Rule(USER_ID_NON_POSITIVE, "user_id is not positive", lambda: c("t_user_id") <= 0),
        Rule(DATE_MISSING, "purchase_date is missing", lambda: c("n_purchase_date").isNull()),
        Rule(
            DATE_UNPARSEABLE,
            "purchase_date matches none of the accepted formats",
            lambda: c("n_purchase_date").isNotNull() & ~c("date_shape_ok"),
        ),
        Rule(
            DATE_IMPOSSIBLE,
            "purchase_date has an accepted format but is not a real calendar date",
            lambda: c("date_shape_ok") & c("p_purchase_date").isNull(),
        ),
        Rule(
            DATE_BEFORE_HISTORY,
            f"purchase_date is before {ctx.earliest_date}, the start of any plausible history: no window holds it",
            lambda: c("p_purchase_date") < F.lit(ctx.earliest_date),
        ),
        Rule(
            DATE_FAR_FUTURE,
            f"purchase_date is after {ctx.latest_date}, too far in the future for any window to hold it",
            lambda: c("p_purchase_date") > F.lit(ctx.latest_date),
        ),
        Rule(
            DATE_NOT_IN_WINDOW,
            f"purchase_date is a plausible date outside the run's window {ctx.window_start}..{ctx.window_end} "
            "(the snapshot was taken under other date formats)",
            lambda: (
                c("p_purchase_date").between(F.lit(ctx.earliest_date), F.lit(ctx.latest_date))
                & ~c("p_purchase_date").between(F.lit(ctx.window_start), F.lit(ctx.window_end))
            ),
        ),
        Rule(CRYPTO_MISSING, "crypto_type is missing", lambda: c("n_crypto_type").isNull()),
        Rule(
            CRYPTO_UNKNOWN,
            f"crypto_type is not one of the known cryptos {list(ctx.known_cryptos)}",
            lambda: c("n_crypto_type").isNotNull() & ~c("n_crypto_type").isin(list(ctx.known_cryptos)),
        ),
        Rule(
            PRICE_INVALID,
            "purchase_price is missing or not a finite number",
            lambda: c("n_purchase_price").isNull() | ~c("price_is_number"),
        ),
        Rule(PRICE_NON_POSITIVE, "purchase_price is not positive", lambda: c("price_sign") <= 0),
        Rule(
            PRICE_IMPLAUSIBLE,
            f"purchase_price is more than {ctx.price_tolerance:g}x away from that day's reference price",
            lambda: (c("t_purchase_price") > 0) & ((ratio > high) | (ratio < low)),
        ),
        Rule(
            PRICE_NO_REFERENCE,
            "raw.crypto_reference_prices has no price for this crypto on this day: the price cannot be checked "
            "for plausibility (load the day's reference prices, then run the date again)",
            lambda: (
                (c("t_purchase_price") > 0)
                & in_window
                & c("n_crypto_type").isin(list(ctx.known_cryptos))
                & c("reference_price").isNull()
            ),
        ),
        Rule(
            UNITS_INVALID,
            "purchase_units is missing or not a finite number",
            lambda: c("n_purchase_units").isNull() | ~c("units_is_number"),
        ),
        Rule(UNITS_NON_POSITIVE, "purchase_units is not positive", lambda: c("units_sign") <= 0),
        Rule(
            NUMERIC_OVERFLOW,
            "a number does not fit its target type (user_id BIGINT, price NUMERIC(20,8), "
            "units NUMERIC(24,10), value NUMERIC(24,8))",
            lambda: overflow,
        ),
        Rule(
            NUMERIC_UNDERFLOW,
            "a positive number is too small for its target scale and would be stored as 0 (price below "
            "0.000000005, units below 0.00000000005, or a purchase_value below 0.000000005)",
            lambda: underflow,
        ),
        Rule(
            DUPLICATE_CONFLICT,
            "several rows share this key with different values (all copies rejected)",
            lambda: c("dup_conflict"),
            scope="key",
        ),
    ]
    check_unique_codes(rules)
    return rules
