"""THE churn feature build: a pure Spark transformation of the five typed sources at a snapshot date T.

Inputs are the `raw.churn_*` tables' columns; the output is one row per customer with `FEATURES`
(`jobs.churn.contract.features`), the snapshot date and the label. Leakage rules, enforced here and proven
by tests:
- payment features use only payments in [T - 6 months, T);
- the snapshot sources are as of T, and any date in them on or after T is ignored (treated as unknown):
  the last login, the last marketplace purchase (`RECENCY_ML`);
- the customer base is every customer known before T (snapshot files, or a payment before T), so data on
  or after T cannot add or remove a row;
- the label (task statement) is churned = no payment in [T, T + 2 months); it reads nothing before T.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from jobs.churn.contract.features import (
    CATEGORICAL,
    FEATURES,
    HISTORY_MONTHS,
    HORIZON_MONTHS,
    ID,
    LABEL,
    MAPS,
    NO_PAYMENT_DAYS,
    SEGMENT_COUNTS,
    SNAPSHOT,
    TREND_DENOMINATOR,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


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
        (F.sum(F.col("k") + 3.5) / TREND_DENOMINATOR).alias("pay_count_trend_6m"),
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
