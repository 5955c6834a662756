"""THE churn feature module: one definition serves training, batch scoring and the app.

`build_features` is a pure Spark transformation of the five typed sources (the `raw.churn_*` column
names) at a snapshot date T. Leakage rules, enforced here and proven by tests:
- payment features use only payments in [T - 6 months, T);
- the snapshot sources are as of T, and any date in them on or after T is ignored (treated as unknown);
- the customer base is every customer known before T (snapshot files, or a payment before T), so data on
  or after T cannot add or remove a row;
- the label (task statement) is churned = no payment in [T, T + 2 months); it reads nothing before T.

`FEATURES` documents every column (the app shows these descriptions next to the inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

HISTORY_MONTHS, HORIZON_MONTHS = 6, 2
ID, SNAPSHOT, LABEL = "customer_id", "snapshot_date", "churned"
SEGMENTS = ("P2P", "QR", "ONLINE", "SERVICES", "RECHARGE")
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
    **{f"share_{s.lower()}_6m": f"share of the 6-month payments in segment {s}" for s in SEGMENTS},
    "distinct_sellers_6m": "distinct sellers paid, 6 months",
    "mau_mp_1": "monthly active on Mercado Pago last month (0/1)",
    "mau_ml_1": "monthly active on Mercado Libre last month (0/1)",
    "mau_ml_2": "monthly active on Mercado Libre two months ago (0/1)",
    "days_since_last_login": "days from the last Mercado Pago login to T (unknown if on/after T)",
    "balance_1": "account balance last month",
    "balance_2": "account balance two months ago",
    "balance_change": "balance_1 - balance_2",
    "balance_log_ratio": "ln(1 + balance_1) - ln(1 + balance_2), negatives as 0: the balance trend",
    "has_investment": "has an investment product (0/1)",
    "spent_ml": "marketplace spend",
    "recency_ml": "days since the last marketplace purchase",
    "frequency_ml": "marketplace purchases",
    "age": "age in years",
    "gender": "gender as declared",
    "card_type": "card type (credit, debit, prepaid, none)",
    "city": "city",
}
CATEGORICAL = ("gender", "card_type", "city")
NUMERIC = tuple(name for name in FEATURES if name not in CATEGORICAL)


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


def _domains() -> dict[str, Domain]:
    from jobs.churn.sources import AMOUNT_LIMIT, sources

    fields = {f.column: f for source in sources().values() for f in source.fields}

    def from_source(column: str, integer: bool = False) -> Domain:
        # the source file's range (one contract): what ingestion lets through, the feature can hold
        f = fields[column]
        return Domain(f.low, f.high if f.high is not None else AMOUNT_LIMIT, integer, nullable=True)

    count, amount, share = Domain(0, None, True), Domain(0, None), Domain(0, 1)
    flag = Domain(0, 1, True, nullable=True)
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
        **{f"share_{s.lower()}_6m": share for s in SEGMENTS},
        "distinct_sellers_6m": count,
        "mau_mp_1": flag,
        "mau_ml_1": flag,
        "mau_ml_2": flag,
        "days_since_last_login": Domain(0, None, True, nullable=True),
        "balance_1": balance,
        "balance_2": balance,
        "balance_change": Domain(-2 * AMOUNT_LIMIT, 2 * AMOUNT_LIMIT, nullable=True),
        "balance_log_ratio": Domain(None, None, nullable=True),
        "has_investment": flag,
        "spent_ml": from_source("spent_ml"),
        "recency_ml": from_source("recency_ml", integer=True),
        "frequency_ml": from_source("frequency_ml", integer=True),
        "age": from_source("age", integer=True),
    }


DOMAINS: dict[str, Domain] = _domains()


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
        }
    )

    def count_if(cond: Column) -> Column:
        return F.sum(F.when(cond, 1).otherwise(0))

    def sum_if(cond: Column, value: str = "amount") -> Column:
        return F.sum(F.when(cond, F.col(value)).otherwise(0.0))

    n = F.count(F.lit(1))
    return hist.groupBy(F.col("cus_cust_id_buy").alias(ID)).agg(
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
        *[(count_if(F.col("tpv_segment_detail") == s) / n).alias(f"share_{s.lower()}_6m") for s in SEGMENTS],
        F.countDistinct("cus_cust_id_sel").alias("distinct_sellers_6m"),
    )


def churn_label(payments: DataFrame, snapshot: date) -> DataFrame:
    """Buyers with at least one payment in [T, T + 2 months): the customers who did NOT churn."""
    from pyspark.sql import functions as F

    t = F.lit(snapshot)
    future = payments.filter((F.col("fecha") >= t) & (F.col("fecha") < F.add_months(t, HORIZON_MONTHS)))
    return future.select(F.col("cus_cust_id_buy").alias(ID)).distinct().withColumn("_paid", F.lit(True))


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
    before_t = payments.filter(F.col("fecha") < t)
    snapshot_ids = [
        df.select(F.col("cus_cust_id_buy").alias(ID))
        for df in (active_user, demograficos, dinero_cuenta, marketplace)
    ]
    base = before_t.select(F.col("cus_cust_id_buy").alias(ID))
    for ids in snapshot_ids:
        base = base.unionByName(ids)
    base = base.distinct()

    pay = payment_features(payments, snapshot)
    login = F.col("last_login_mp_date_1")
    activity = active_user.select(
        F.col("cus_cust_id_buy").alias(ID),
        F.col("mau_mp_1").cast("double").alias("mau_mp_1"),
        F.col("mau_ml_1").cast("double").alias("mau_ml_1"),
        F.col("mau_ml_2").cast("double").alias("mau_ml_2"),
        F.when(login < t, F.datediff(t, login)).cast("double").alias("days_since_last_login"),
    )
    balances = dinero_cuenta.select(
        F.col("cus_cust_id_buy").alias(ID),
        F.col("plata_cuenta_1").cast("double").alias("balance_1"),
        F.col("plata_cuenta_2").cast("double").alias("balance_2"),
        (F.col("plata_cuenta_1") - F.col("plata_cuenta_2")).cast("double").alias("balance_change"),
        (
            F.log1p(F.greatest(F.col("plata_cuenta_1").cast("double"), F.lit(0.0)))
            - F.log1p(F.greatest(F.col("plata_cuenta_2").cast("double"), F.lit(0.0)))
        ).alias("balance_log_ratio"),
        F.col("inversion").cast("double").alias("has_investment"),
    )
    market = marketplace.select(
        F.col("cus_cust_id_buy").alias(ID),
        F.col("spent_ml").cast("double").alias("spent_ml"),
        F.col("recency_ml").cast("double").alias("recency_ml"),
        F.col("frequency_ml").cast("double").alias("frequency_ml"),
    )
    people = demograficos.select(
        F.col("cus_cust_id_buy").alias(ID),
        F.col("age").cast("double").alias("age"),
        *[F.col(c).cast("string").alias(c) for c in CATEGORICAL],
    )
    df = base
    for part in (pay, activity, balances, market, people):
        df = df.join(part, ID, "left")

    zero_when_absent = [c for c in pay.columns if c not in (ID, "days_since_last_payment")]
    df = df.fillna(0, subset=zero_when_absent).fillna(NO_PAYMENT_DAYS, subset=["days_since_last_payment"])
    df = df.withColumn(SNAPSHOT, t)
    if with_label:
        df = df.join(churn_label(payments, snapshot), ID, "left").withColumn(
            LABEL, F.when(F.col("_paid"), 0).otherwise(1)
        )
    else:
        df = df.withColumn(LABEL, F.lit(None).cast("int"))
    return df.select(
        F.col(ID).cast("long").alias(ID),
        SNAPSHOT,
        *[F.col(c).cast("string" if c in CATEGORICAL else "double").alias(c) for c in FEATURES],
        F.col(LABEL).cast("int").alias(LABEL),
    )
