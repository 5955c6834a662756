"""THE feature module: leakage is impossible by construction, and the tests prove it.

Features at T must not change when anything on or after T changes; the label must not change when
anything before T changes. Sources come from the generator (small), typed like the raw tables.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from jobs.churn.contract.features import FEATURES, ID, LABEL
from jobs.churn.features.build import build_features
from jobs.churn.simulate.generate import ChurnGenConfig, as_raw_frames, generate

T = date(2026, 9, 1)


@pytest.fixture(scope="module")
def source_frames() -> dict[str, pd.DataFrame]:
    tables, truth, _ = generate(ChurnGenConfig(customers=400, snapshot=T, seed=11))
    frames = as_raw_frames(tables)
    au = frames["ACTIVE_USER"]
    # some logins and last purchases already on/after T: they must be ignored, whatever their value
    au.loc[au.index[:20], "last_login_mp_date_1"] = T + timedelta(days=3)
    market = frames["MARKETPLACE_DATA"]
    market.loc[market.index[:20], "recency_ml"] = T
    frames["_truth"] = pd.DataFrame(truth)
    return frames


def _features(spark, frames: dict[str, pd.DataFrame], with_label: bool = True) -> pd.DataFrame:
    dfs = {name: spark.createDataFrame(frame) for name, frame in frames.items() if not name.startswith("_")}
    out = build_features(
        dfs["PAYMENTS"], dfs["ACTIVE_USER"], dfs["DEMOGRAFICOS"], dfs["DINERO_CUENTA"], dfs["MARKETPLACE_DATA"],
        T, with_label=with_label,
    ).toPandas()  # fmt: skip
    return out.sort_values(ID).reset_index(drop=True)


def _copy(frames):
    return {k: v.copy() for k, v in frames.items()}


def test_label_is_the_task_definition_and_matches_the_generators_truth(spark, source_frames):
    features = _features(spark, source_frames)
    truth = source_frames["_truth"].rename(columns={"CUS_CUST_ID_BUY": ID, "churned": "true_label"})
    merged = features.merge(truth, on=ID)
    assert len(merged) == len(truth) == 400
    assert (merged[LABEL].to_numpy() == merged["true_label"].to_numpy()).all()
    assert list(features.columns) == [ID, "snapshot_date", *FEATURES, LABEL]


def test_features_ignore_everything_on_or_after_t(spark, source_frames):
    before = _features(spark, source_frames)
    mutated = _copy(source_frames)
    pay = mutated["PAYMENTS"]
    future = pay["fecha"] >= T
    assert future.sum() > 100
    pay.loc[future, "spent"] = pay.loc[future, "spent"] * 10 + 1
    pay.loc[future, "tpv_segment_detail"] = "Never Seen Before"
    pay.loc[future, "cus_cust_id_sel"] = "SELLER_7"
    pay = pay.drop(pay[future].index[::2])  # delete half of the future payments
    extra = pay.head(50).assign(fecha=T + timedelta(days=10), spent=999.0)
    newcomer = pay.head(1).assign(fecha=T, cus_cust_id_buy="9999999")  # a customer who first pays at T
    mutated["PAYMENTS"] = pd.concat([pay, extra, newcomer], ignore_index=True)
    au = mutated["ACTIVE_USER"]
    au.loc[au.index[:20], "last_login_mp_date_1"] = T + timedelta(days=40)
    market = mutated["MARKETPLACE_DATA"]
    market.loc[market.index[:20], "recency_ml"] = T + timedelta(days=25)
    after = _features(spark, mutated)
    columns = [ID, "snapshot_date", *FEATURES]
    pd.testing.assert_frame_equal(before[columns], after[columns])
    assert not before[LABEL].equals(after[LABEL])  # the mutation did reach the label: the test can fail


def test_label_ignores_everything_before_t(spark, source_frames):
    before = _features(spark, source_frames)
    mutated = _copy(source_frames)
    pay = mutated["PAYMENTS"]
    past = pay["fecha"] < T
    pay.loc[past, "spent"] = 1.0
    pay.loc[past, "descuento"] = 0.0
    mutated["PAYMENTS"] = pay.drop(pay[past].index[::3])
    mutated["DINERO_CUENTA"]["plata_cuenta_1"] = 0.0
    mutated["DEMOGRAFICOS"]["age"] = 99
    mutated["ACTIVE_USER"]["mau_mp_1"] = 0
    mutated["DINERO_CUENTA"]["inversion"] = "Pending"
    mutated["MARKETPLACE_DATA"]["recency_ml"] = T - timedelta(days=100)
    pay = mutated["PAYMENTS"]
    pay.loc[pay["fecha"] < T, "tpv_segment_detail"] = "Kiosco"
    after = _features(spark, mutated)
    assert (before[ID].to_numpy() == after[ID].to_numpy()).all()
    assert (before[LABEL].to_numpy() == after[LABEL].to_numpy()).all()
    assert not before["segment_counts_6m"].equals(after["segment_counts_6m"])
    assert not np.allclose(before["pay_sum_6m"], after["pay_sum_6m"])  # features did see the change


def test_hand_computed_payment_features(spark):
    pays = pd.DataFrame(
        {
            "fecha": [date(2026, 3, 1), date(2026, 6, 15), date(2026, 8, 31), date(2026, 8, 1), date(2026, 9, 1),
                      date(2026, 2, 28)],
            "cus_cust_id_sel": ["SELLER_1", "SELLER_2", "SELLER_2", "SELLER_3", "SELLER_4", "SELLER_5"],
            "cus_cust_id_buy": ["10"] * 6,
            "spent": [10.0, 20.0, 30.0, 40.0, 1000.0, 500.0],
            "tpv_segment_detail": ["Instore", "transfers", " INSTORE", "Kiosco", "Instore", "Instore"],
            "descuento": [0.0, 2.0, 0.0, 0.0, 0.0, 0.0],
        }
    )  # fmt: skip
    au = pd.DataFrame({"cus_cust_id_buy": ["10", "20"], "mau_mp_1": [31, 0], "mau_ml_1": [0, 4], "mau_ml_2": [2, 0],
                       "last_login_mp_date_1": [date(2026, 8, 21), date(2026, 9, 2)]})  # fmt: skip
    demo = pd.DataFrame({"cus_cust_id_buy": ["10", "20"], "age": [30, 40], "gender": ["F", None],
                         "card_type": ["debit", "none"], "city": ["Salta", "Cordoba"]})  # fmt: skip
    money = pd.DataFrame(
        {
            "cus_cust_id_buy": ["10"],
            "plata_cuenta_1": [100.0],
            "plata_cuenta_2": [60.0],
            "inversion": ["Elegible"],
        }
    )
    market = pd.DataFrame(
        {"cus_cust_id_buy": ["10", "20"], "spent_ml": [7.0, 5.0], "recency_ml": [date(2026, 8, 29), date(2026, 9, 1)],
         "frequency_ml": [1, 2]}
    )  # fmt: skip
    frames = {
        "PAYMENTS": pays,
        "ACTIVE_USER": au,
        "DEMOGRAFICOS": demo,
        "DINERO_CUENTA": money,
        "MARKETPLACE_DATA": market,
    }
    out = _features(spark, frames).set_index(ID)
    a, b = out.loc["10"], out.loc["20"]
    # 2026-02-28 is before T - 6 months (2026-03-01) and 2026-09-01 is T: both outside the window
    assert a["pay_count_6m"] == 4 and a["pay_sum_6m"] == 100.0
    assert a["pay_count_3m"] == 3 and a["pay_count_1m"] == 2 and a["pay_sum_1m"] == 70.0
    assert a["days_since_last_payment"] == 1 and a["active_months_6m"] == 3
    assert a["pay_max_amount_6m"] == 40.0 and a["pay_avg_amount_6m"] == 25.0
    # months k = -6, -3, -1, -1 -> sum(k + 3.5) / 17.5
    assert a["pay_count_trend_6m"] == pytest.approx((-2.5 + 0.5 + 2.5 + 2.5) / 17.5)
    assert a["pay_count_ratio_3m"] == pytest.approx(3 / 2)
    assert a["discount_share_6m"] == 0.25 and a["distinct_sellers_6m"] == 3
    # segments as data: trimmed and lower-cased, counted per segment, whatever the segment is
    assert a["segment_counts_6m"] == {"instore": 2, "kiosco": 1, "transfers": 1}
    assert (a["mau_mp_1"], a["mau_ml_1"], a["mau_ml_2"]) == (31, 0, 2)  # counts, as the files give them
    assert (
        a["days_since_last_login"] == 11
        and a["balance_change"] == 40.0
        and a["investment_state"] == "Elegible"
    )
    assert a["recency_ml"] == 3 and a["spent_ml"] == 7.0  # the last purchase was 3 days before T
    assert a[LABEL] == 0  # paid on T
    # customer 20: no payments at all, login and last purchase on/after T ignored, no balances
    assert b["pay_count_6m"] == 0 and b["days_since_last_payment"] == 185 and b[LABEL] == 1
    assert b["segment_counts_6m"] == {}
    assert pd.isna(b["days_since_last_login"]) and pd.isna(b["recency_ml"]) and pd.isna(b["balance_1"])
    assert pd.isna(b["gender"]) and pd.isna(b["investment_state"]) and b["spent_ml"] == 5.0
    assert len(out) == 2  # customer base: known before T only


def test_scoring_snapshot_has_no_label(spark, source_frames):
    out = _features(spark, source_frames, with_label=False)
    assert out[LABEL].isna().all() and len(out) == 400
