"""The churn features' definitions: names, meanings, input domains and how segment shares are named.

One definition serves training, batch scoring, the API and the app: the Spark build
(`jobs.churn.features.build`) writes exactly `FEATURES` (plus id, snapshot and label); the app shows these
descriptions next to its inputs and checks typed-in values against `domain_of` (share columns included).

Segments come from the data: `TPV_SEGMENT_DETAIL` is an open vocabulary, so the table keeps one map per
customer, ``segment_counts_6m`` (normalised segment -> payments in [T - 6 months, T)), not a fixed set of
columns. A MODEL turns it into share columns with its own vocabulary (`Shares`: the top segments of its
training data, recorded in its spec; the arithmetic is `jobs.churn.features.shares`); segments outside the
vocabulary count as "other". So models with different vocabularies are scored on the same rows.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

HISTORY_MONTHS, HORIZON_MONTHS = 6, 2
ID, SNAPSHOT, LABEL = "customer_id", "snapshot_date", "churned"
SEGMENT_COUNTS = "segment_counts_6m"
SHARE_PREFIX, SHARE_SUFFIX, OTHER = "share_seg_", "_6m", "other"  # share_seg_<slug>_6m, share_seg_other_6m
TREND_DENOMINATOR = 17.5  # sum of (k - mean k)^2 over the six months k = -6..-1
NO_PAYMENT_DAYS = 185.0  # six months are at most 184 days: the same value at every snapshot

FEATURES: dict[str, str] = {
    "pay_count_6m": "payments in the 6 months before T",
    "pay_sum_6m": "amount paid in the 6 months before T",
    "pay_count_3m": "payments in the 3 months before T",
    "pay_sum_3m": "amount paid in the 3 months before T",
    "pay_count_1m": "payments in the month before T",
    "pay_sum_1m": "amount paid in the month before T",
    "pay_avg_amount_6m": "average payment amount, 6 months (0 without payments)",
    "pay_max_amount_6m": "largest payment, 6 months (0 without payments)",
    "days_since_last_payment": "days from the last payment to T (185 without payments in 6 months)",
    "active_months_6m": "months with at least one payment, of the 6 before T",
    "pay_count_trend_6m": "least-squares slope of monthly payment counts over the 6 months (per month)",
    "pay_count_ratio_3m": "payments in the last 3 months / (payments in the 3 before + 1)",
    "discount_share_6m": "share of the 6-month payments that had a discount",
    "discount_sum_6m": "total discount, 6 months",
    SEGMENT_COUNTS: "payments per segment (TPV_SEGMENT_DETAIL, trimmed, lower case), 6 months: a map",
    "distinct_sellers_6m": "distinct sellers paid, 6 months",
    "mau_mp_1": "accesses to the Mercado Pago app last month",
    "mau_ml_1": "accesses to the Mercado Libre app last month",
    "mau_ml_2": "accesses to the Mercado Libre app two months ago",
    "days_since_last_login": "days from the last Mercado Pago login to T (unknown if on/after T)",
    "balance_1": "maximum account balance last month",
    "balance_2": "maximum account balance two months ago",
    "balance_change": "balance_1 - balance_2",
    "balance_log_ratio": "ln(1 + balance_1) - ln(1 + balance_2), negatives as 0: the balance trend",
    "investment_state": "investment state (Investing, Elegible, Warmup, Pending)",
    "spent_ml": "marketplace spend, last 6 months",
    "recency_ml": "days from the last marketplace purchase to T (unknown if none, or on/after T)",
    "frequency_ml": "days with marketplace purchases, last 6 months",
    "age": "age in years",
    "gender": "gender as declared",
    "card_type": "card type (credit, debit, prepaid, none)",
    "city": "city",
}
CATEGORICAL = ("investment_state", "gender", "card_type", "city")
MAPS = (SEGMENT_COUNTS,)  # not model inputs: a model derives numeric columns from them (`Shares`)
NUMERIC = tuple(name for name in FEATURES if name not in CATEGORICAL and name not in MAPS)


@dataclass(frozen=True)
class Domain:
    """The values `build_features` can produce for one numeric column: what a typed-in input may hold.

    `nullable`: the column is null when its snapshot source has no row for the customer (the model
    imputes it); the payment aggregates are never null (0, or 185 days, without payments).
    """

    low: float | None = None
    high: float | None = None
    integer: bool = False
    nullable: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return f"{kind} from {self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{kind} >= {self.low:g}"
        return kind


SHARE_DOMAIN = Domain(0, 1)


def _domains() -> dict[str, Domain]:
    from jobs.churn.contract.sources import AMOUNT_LIMIT, sources

    fields = {f.column: f for source in sources().values() for f in source.fields}

    def from_source(column: str, integer: bool = False) -> Domain:
        # the source file's range (one contract): what ingestion lets through, the feature can hold
        f = fields[column]
        return Domain(f.low, f.high if f.high is not None else AMOUNT_LIMIT, integer, nullable=True)

    count, amount, share = Domain(0, None, True), Domain(0, None), SHARE_DOMAIN
    balance = Domain(-AMOUNT_LIMIT, AMOUNT_LIMIT, nullable=True)
    return {
        "pay_count_6m": count,
        "pay_sum_6m": amount,
        "pay_count_3m": count,
        "pay_sum_3m": amount,
        "pay_count_1m": count,
        "pay_sum_1m": amount,
        "pay_avg_amount_6m": amount,
        "pay_max_amount_6m": amount,
        "days_since_last_payment": Domain(0, NO_PAYMENT_DAYS, True),
        "active_months_6m": Domain(0, HISTORY_MONTHS, True),
        "pay_count_trend_6m": Domain(),
        "pay_count_ratio_3m": amount,
        "discount_share_6m": share,
        "discount_sum_6m": amount,
        "distinct_sellers_6m": count,
        "mau_mp_1": from_source("mau_mp_1", integer=True),
        "mau_ml_1": from_source("mau_ml_1", integer=True),
        "mau_ml_2": from_source("mau_ml_2", integer=True),
        "days_since_last_login": Domain(0, None, True, nullable=True),
        "balance_1": balance,
        "balance_2": balance,
        "balance_change": Domain(-2 * AMOUNT_LIMIT, 2 * AMOUNT_LIMIT, nullable=True),
        "balance_log_ratio": Domain(None, None, nullable=True),
        "spent_ml": from_source("spent_ml"),
        "recency_ml": Domain(1, None, True, nullable=True),  # a purchase before T is >= 1 day before it
        "frequency_ml": from_source("frequency_ml", integer=True),
        "age": from_source("age", integer=True),
    }


DOMAINS: dict[str, Domain] = _domains()


def is_share_column(column: str) -> bool:
    """A share column a model derives from `segment_counts_6m` (`share_seg_<slug>_6m`)."""
    return bool(re.fullmatch(rf"{SHARE_PREFIX}[a-z0-9_]+{SHARE_SUFFIX}", column))


def domain_of(column: str) -> Domain | None:
    """The input domain of a numeric feature (share columns by pattern), None when unknown."""
    if column in DOMAINS:
        return DOMAINS[column]
    return SHARE_DOMAIN if is_share_column(column) else None


def describe(column: str, shares: Shares | None = None) -> str:
    """The description of a feature; a share column names its segment (from the model's `shares`)."""
    if column in FEATURES:
        return FEATURES[column]
    keys = shares.columns if shares is not None and shares.resolved else {}
    if column in keys:
        segment = keys[column]
        if segment is None:
            return "share of the 6-month payments in segments outside the model's vocabulary (other)"
        return f"share of the 6-month payments in segment {segment!r}"
    if is_share_column(column):
        return "share of the 6-month payments in one segment (TPV_SEGMENT_DETAIL)"
    return column


# --- segment shares: the names of the columns a model derives from a map, one per vocabulary key ---------


def slug(key: str) -> str:
    """A column-safe, deterministic name part: ascii, lower case, runs of other characters as `_`."""
    ascii_text = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


@dataclass(frozen=True)
class Shares:
    """Spec key `shares`: one share column per top key of a map column, plus "other".

    `vocabulary` is None until the trainer resolves it (the top keys of the training data, ties by
    name); a resolved `Shares` is logged with the model, so every consumer uses the model's set.
    """

    column: str  # map<key, count>, e.g. segment_counts_6m
    total: str  # the count the shares are of, e.g. pay_count_6m (the keys may not cover it all)
    top: int  # vocabulary size
    prefix: str  # column names: <prefix><slug><suffix>, and <prefix>other<suffix>
    suffix: str = ""
    vocabulary: tuple[str, ...] | None = None

    @property
    def resolved(self) -> bool:
        return self.vocabulary is not None

    def with_vocabulary(self, keys: Sequence[str]) -> Shares:
        keys = tuple(keys)
        if len(keys) > self.top or len(set(keys)) != len(keys):
            raise ValueError(f"a vocabulary of at most {self.top} distinct keys, got {list(keys)}")
        return replace(self, vocabulary=keys)

    @property
    def columns(self) -> dict[str, str | None]:
        """Derived column -> its key (None: other), in vocabulary order then other. A key whose slug is
        empty, "other" or shared with another key gets its CRC32 appended, so names never collide."""
        if self.vocabulary is None:
            raise ValueError(f"shares of {self.column!r}: the vocabulary is not resolved yet")
        bases = [slug(k) for k in self.vocabulary]
        names: dict[str, str | None] = {}
        for key, base in zip(self.vocabulary, bases, strict=True):
            if not base or base == OTHER or bases.count(base) > 1:
                base = f"{base or 'key'}_{zlib.crc32(key.encode()):08x}"
            names[f"{self.prefix}{base}{self.suffix}"] = key
        names[f"{self.prefix}{OTHER}{self.suffix}"] = None
        return names


class MissingFeatures(ValueError):
    """A frame lacks columns a model needs (its features, or the counts its shares derive from)."""
