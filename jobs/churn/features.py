"""THE churn feature module: one definition serves training, batch scoring and the app.

`build_features` is a pure Spark transformation of the five typed sources (the `raw.churn_*` column
names) at a snapshot date T. Leakage rules, enforced here and proven by tests:
- payment features use only payments in [T - 6 months, T);
- the snapshot sources are as of T, and any date in them on or after T is ignored (treated as unknown):
  the last login, the last marketplace purchase (`RECENCY_ML`);
- the customer base is every customer known before T (snapshot files, or a payment before T), so data on
  or after T cannot add or remove a row;
- the label (task statement) is churned = no payment in [T, T + 2 months); it reads nothing before T.

Segments come from the data: `TPV_SEGMENT_DETAIL` is an open vocabulary, so the table keeps one map per
customer, ``segment_counts_6m`` (normalised segment -> payments in [T - 6 months, T)), not a fixed set of
columns. A MODEL turns it into share columns with its own vocabulary (`Shares`: the top segments of its
training data, recorded in its spec): `expand_shares` (Spark: training and batch scoring through
`pipeline.prepare`, the drift monitor) and `expand_shares_frame` (pandas: the app, promotion) are the two
forms of that one definition (a parity test holds them equal); segments outside the vocabulary count as
"other". So models with different vocabularies are scored on the same rows.

`FEATURES` documents every column (the app shows these descriptions next to the inputs), `describe` and
`domain_of` also cover the share columns a model derives.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame

HISTORY_MONTHS, HORIZON_MONTHS = 6, 2
ID, SNAPSHOT, LABEL = "customer_id", "snapshot_date", "churned"
SEGMENT_COUNTS = "segment_counts_6m"
SHARE_PREFIX, SHARE_SUFFIX, OTHER = "share_seg_", "_6m", "other"  # share_seg_<slug>_6m, share_seg_other_6m
_TREND_DENOMINATOR = 17.5  # sum of (k - mean k)^2 over the six months k = -6..-1
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
    from jobs.churn.sources import AMOUNT_LIMIT, sources

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


# --- segment shares: a map column turned into one share column per vocabulary key, plus other ----------


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


def top_keys(df: DataFrame, shares: Shares) -> list[str]:
    """The vocabulary of `df`: its `shares.top` keys with the most counts summed over the rows, ties
    broken by name (so the choice is deterministic)."""
    from pyspark.sql import functions as F

    exploded = df.select(F.explode(F.col(shares.column)).alias("key", "n"))
    ranked = exploded.groupBy("key").agg(F.sum("n").alias("n")).orderBy(F.desc("n"), F.asc("key"))
    return [row["key"] for row in ranked.limit(shares.top).collect()]


def expand_shares(df: DataFrame, shares: Shares) -> DataFrame:
    """Spark form: adds the share columns (count / total; 0 when the total is 0 or null)."""
    from pyspark.sql import functions as F

    total = F.col(shares.total).cast("double")
    counts = {c: F.coalesce(F.col(shares.column)[k], F.lit(0)) for c, k in shares.columns.items() if k}
    covered = F.lit(0)
    for count in counts.values():
        covered = covered + count
    values = {c: count.cast("double") / total for c, count in counts.items()}
    values[_other(shares)] = (total - covered.cast("double")) / total
    return df.withColumns({c: F.when(total > 0, v).otherwise(F.lit(0.0)) for c, v in values.items()})


class MissingFeatures(ValueError):
    """A frame lacks columns a model needs (its features, or the counts its shares derive from)."""


def expand_shares_frame(frame: pd.DataFrame, shares: Shares) -> pd.DataFrame:
    """pandas form of `expand_shares` (same arithmetic, same results): a copy with the share columns. The
    map cells may be dicts (Spark's toPandas), lists of pairs (Arrow's to_pandas) or missing."""
    import numpy as np

    absent = [c for c in (shares.total, shares.column) if c not in frame.columns]
    if absent:
        raise MissingFeatures(
            f"missing feature columns {absent} (the model's segment shares derive from them)"
        )

    total = frame[shares.total].to_numpy(dtype=np.float64, na_value=np.nan)
    maps = [_as_dict(cell) for cell in frame[shares.column].tolist()]
    covered = np.zeros(len(frame), dtype=np.int64)
    out = frame.copy()
    positive = total > 0
    for column, key in shares.columns.items():
        if key is None:
            continue
        count = np.array([m.get(key, 0) for m in maps], dtype=np.int64)
        covered += count
        out[column] = np.where(positive, count.astype(np.float64) / np.where(positive, total, 1.0), 0.0)
    other = (total - covered.astype(np.float64)) / np.where(positive, total, 1.0)
    out[_other(shares)] = np.where(positive, other, 0.0)
    return out


def with_shares(frame: pd.DataFrame, shares: Shares | None) -> pd.DataFrame:
    """A model's input frame from feature-table rows: the share columns of ITS vocabulary (unchanged when
    the model has none, or the frame already holds them and no map)."""
    if shares is None or (shares.column not in frame.columns and set(shares.columns) <= set(frame.columns)):
        return frame
    return expand_shares_frame(frame, shares)


def _other(shares: Shares) -> str:
    return next(c for c, k in shares.columns.items() if k is None)


def _as_dict(cell: Any) -> Mapping[str, int]:
    if cell is None or (isinstance(cell, float) and cell != cell):
        return {}
    if isinstance(cell, Mapping):
        return cell
    return dict(cell)  # a list (or array) of (key, value) pairs


# --- the feature table -----------------------------------------------------------------------------------


def payment_features(payments: DataFrame, snapshot: date) -> DataFrame:
    """Aggregates of the payments in [T - 6 months, T), one row per buyer with at least one payment."""
    from pyspark.sql import functions as F

    t = F.lit(snapshot)
    hist = payments.filter(
        (F.col("fecha") >= F.add_months(t, -HISTORY_MONTHS)) & (F.col("fecha") < t)
    ).withColumns(
        {
            "k": F.floor(F.months_between(F.col("fecha"), t)).cast("int"),  # -6..-1
            "amount": F.col("spent").cast("double"),
            "discount": F.col("descuento").cast("double"),
            "segment": F.lower(F.trim(F.col("tpv_segment_detail"))),
        }
    )

    def count_if(cond: Column) -> Column:
        return F.sum(F.when(cond, 1).otherwise(0))

    def sum_if(cond: Column, value: str = "amount") -> Column:
        return F.sum(F.when(cond, F.col(value)).otherwise(0.0))

    n = F.count(F.lit(1))
    aggregated = hist.groupBy(F.col("cus_cust_id_buy").cast("string").alias(ID)).agg(
        n.alias("pay_count_6m"),
        F.sum("amount").alias("pay_sum_6m"),
        count_if(F.col("k") >= -3).alias("pay_count_3m"),
        sum_if(F.col("k") >= -3).alias("pay_sum_3m"),
        count_if(F.col("k") == -1).alias("pay_count_1m"),
        sum_if(F.col("k") == -1).alias("pay_sum_1m"),
        (F.sum("amount") / n).alias("pay_avg_amount_6m"),
        F.max("amount").alias("pay_max_amount_6m"),
        F.datediff(t, F.max("fecha")).alias("days_since_last_payment"),
        F.countDistinct("k").alias("active_months_6m"),
        (F.sum(F.col("k") + 3.5) / _TREND_DENOMINATOR).alias("pay_count_trend_6m"),
        (count_if(F.col("k") >= -3) / (count_if(F.col("k") < -3) + 1)).alias("pay_count_ratio_3m"),
        (count_if(F.col("discount") > 0) / n).alias("discount_share_6m"),
        F.sum("discount").alias("discount_sum_6m"),
        F.collect_list("segment").alias("_segments"),  # one pass: counted per segment below
        F.countDistinct("cus_cust_id_sel").alias("distinct_sellers_6m"),
    )
    keys = F.array_sort(F.array_distinct(F.col("_segments")))
    counts = F.transform(keys, lambda s: F.size(F.filter(F.col("_segments"), lambda x: x == s)).cast("long"))
    return aggregated.withColumn(SEGMENT_COUNTS, F.map_from_arrays(keys, counts)).drop("_segments")


def churn_label(payments: DataFrame, snapshot: date) -> DataFrame:
    """Buyers with at least one payment in [T, T + 2 months): the customers who did NOT churn."""
    from pyspark.sql import functions as F

    t = F.lit(snapshot)
    future = payments.filter((F.col("fecha") >= t) & (F.col("fecha") < F.add_months(t, HORIZON_MONTHS)))
    return (
        future.select(F.col("cus_cust_id_buy").cast("string").alias(ID))
        .distinct()
        .withColumn("_paid", F.lit(True))
    )


def build_features(
    payments: DataFrame,
    active_user: DataFrame,
    demograficos: DataFrame,
    dinero_cuenta: DataFrame,
    marketplace: DataFrame,
    snapshot: date,
    with_label: bool = True,
) -> DataFrame:
    """One row per customer known before T: `customer_id`, `snapshot_date`, FEATURES, `churned`."""
    from pyspark.sql import functions as F

    t = F.lit(snapshot)

    def customer(df: DataFrame) -> Column:
        return df["cus_cust_id_buy"].cast("string").alias(ID)

    before_t = payments.filter(F.col("fecha") < t)
    base = before_t.select(customer(before_t))
    for df in (active_user, demograficos, dinero_cuenta, marketplace):
        base = base.unionByName(df.select(customer(df)))
    base = base.distinct()

    pay = payment_features(payments, snapshot)
    login, purchase = F.col("last_login_mp_date_1"), F.col("recency_ml")
    activity = active_user.select(
        customer(active_user),
        *[F.col(c).cast("double").alias(c) for c in ("mau_mp_1", "mau_ml_1", "mau_ml_2")],
        F.when(login < t, F.datediff(t, login)).cast("double").alias("days_since_last_login"),
    )
    balances = dinero_cuenta.select(
        customer(dinero_cuenta),
        F.col("plata_cuenta_1").cast("double").alias("balance_1"),
        F.col("plata_cuenta_2").cast("double").alias("balance_2"),
        (F.col("plata_cuenta_1") - F.col("plata_cuenta_2")).cast("double").alias("balance_change"),
        (
            F.log1p(F.greatest(F.col("plata_cuenta_1").cast("double"), F.lit(0.0)))
            - F.log1p(F.greatest(F.col("plata_cuenta_2").cast("double"), F.lit(0.0)))
        ).alias("balance_log_ratio"),
        F.col("inversion").cast("string").alias("investment_state"),
    )
    market = marketplace.select(
        customer(marketplace),
        F.col("spent_ml").cast("double").alias("spent_ml"),
        F.when(purchase < t, F.datediff(t, purchase)).cast("double").alias("recency_ml"),
        F.col("frequency_ml").cast("double").alias("frequency_ml"),
    )
    people = demograficos.select(
        customer(demograficos),
        F.col("age").cast("double").alias("age"),
        *[F.col(c).cast("string").alias(c) for c in ("gender", "card_type", "city")],
    )
    df = base
    for part in (pay, activity, balances, market, people):
        df = df.join(part, ID, "left")

    zero_when_absent = [c for c in pay.columns if c not in (ID, "days_since_last_payment", SEGMENT_COUNTS)]
    df = df.fillna(0, subset=zero_when_absent).fillna(NO_PAYMENT_DAYS, subset=["days_since_last_payment"])
    no_segments = F.create_map().cast("map<string,bigint>")
    df = df.withColumns({SEGMENT_COUNTS: F.coalesce(F.col(SEGMENT_COUNTS), no_segments), SNAPSHOT: t})
    if with_label:
        df = df.join(churn_label(payments, snapshot), ID, "left").withColumn(
            LABEL, F.when(F.col("_paid"), 0).otherwise(1)
        )
    else:
        df = df.withColumn(LABEL, F.lit(None).cast("int"))

    def typed(c: str) -> Column:
        kind = "string" if c in CATEGORICAL else "map<string,bigint>" if c in MAPS else "double"
        return F.col(c).cast(kind).alias(c)

    return df.select(F.col(ID), SNAPSHOT, *map(typed, FEATURES), F.col(LABEL).cast("int").alias(LABEL))
