"""The churn source generator: file contract, determinism, the time frame, the known truth, drift."""

from __future__ import annotations

import csv
import json
import re
from datetime import date

import numpy as np
import pytest

from jobs.churn.simulate.__main__ import main
from jobs.churn.simulate.generate import FILES, ChurnGenConfig, generate
from jobs.churn.simulate.io import write
from jobs.common.config import ChurnSettings
from jobs.common.dates import add_months

T = date(2026, 9, 1)


@pytest.fixture(scope="module")
def small():
    return generate(ChurnGenConfig(customers=4000, snapshot=T, seed=3))


STATEMENT_COLUMNS = {
    "PAYMENTS": ("FECHA", "CUS_CUST_ID_SEL", "CUS_CUST_ID_BUY", "SPENT", "TPV_SEGMENT_DETAIL", "DESCUENTO"),
    "ACTIVE_USER": ("CUS_CUST_ID_BUY", "MAU_MP_1", "MAU_ML_1", "MAU_ML_2", "last_login_mp_date_1"),
    "DEMOGRAFICOS": ("CUS_CUST_ID_BUY", "AGE", "GENDER", "CARD_TYPE", "CITY"),
    "DINERO_CUENTA": ("CUS_CUST_ID_BUY", "PLATA_CUENTA_1", "PLATA_CUENTA_2", "INVERSION"),
    "MARKETPLACE_DATA": ("CUS_CUST_ID_BUY", "SPENT_ML", "RECENCY_ML", "FREQUENCY_ML"),
}


def test_files_have_the_task_statement_columns(tmp_path, small):
    write(tmp_path, *small)
    assert FILES == STATEMENT_COLUMNS  # the generator writes the source contract's columns
    for name, columns in STATEMENT_COLUMNS.items():
        with open(tmp_path / f"{name}.csv", newline="") as f:
            assert tuple(next(csv.reader(f))) == columns
    oracle = json.loads((tmp_path / "_oracle.json").read_text())
    assert oracle["customers"] == 4000 and oracle["snapshot"] == "2026-09-01"


def test_deterministic_by_seed(tmp_path):
    cfg = ChurnGenConfig(customers=300, snapshot=T, seed=11)
    write(tmp_path / "a", *generate(cfg))
    write(tmp_path / "b", *generate(cfg))
    for name in [*FILES, "_truth"]:
        assert (tmp_path / "a" / f"{name}.csv").read_bytes() == (tmp_path / "b" / f"{name}.csv").read_bytes()
    other = generate(ChurnGenConfig(customers=300, snapshot=T, seed=12))[0]["PAYMENTS"]["SPENT"]
    assert not np.array_equal(other, generate(cfg)[0]["PAYMENTS"]["SPENT"])


def test_payments_cover_six_months_before_and_two_after_the_snapshot(small):
    dates = small[0]["PAYMENTS"]["FECHA"]
    assert min(dates) == "2026-03-01" and max(dates) < "2026-11-01"
    assert add_months(T, -6) == date(2026, 3, 1) and add_months(T, 2) == date(2026, 11, 1)
    assert (
        small[0]["ACTIVE_USER"]["last_login_mp_date_1"] < T.isoformat()
    ).all()  # snapshot sources before T


def test_label_matches_the_generated_future_payments(small):
    tables, truth, oracle = small
    pay = tables["PAYMENTS"]
    future = set(
        pay["CUS_CUST_ID_BUY"][(pay["FECHA"] >= "2026-09-01") & (pay["FECHA"] < "2026-11-01")].tolist()
    )
    expected = np.array([0 if cid in future else 1 for cid in truth["CUS_CUST_ID_BUY"]])
    assert np.array_equal(truth["churned"], expected)
    assert 0.1 < oracle["churn_rate"] < 0.5
    assert 0.75 < oracle["oracle_auc"] < 0.98  # the truth is informative but not trivial


def test_drift_shifts_the_population(small):
    drifted = generate(ChurnGenConfig(customers=4000, snapshot=T, seed=3, drift=1.0))[0]
    same = generate(ChurnGenConfig(customers=4000, snapshot=T, seed=4))[0]
    base = small[0]
    assert drifted["DEMOGRAFICOS"]["AGE"].mean() > base["DEMOGRAFICOS"]["AGE"].mean() + 4
    assert drifted["ACTIVE_USER"]["MAU_MP_1"].mean() < base["ACTIVE_USER"]["MAU_MP_1"].mean() - 1.5
    assert abs(same["DEMOGRAFICOS"]["AGE"].mean() - base["DEMOGRAFICOS"]["AGE"].mean()) < 1.5


def test_values_have_the_task_statements_meanings(small):
    tables, truth, _ = small
    pay, active, money, market = (
        tables[n] for n in ("PAYMENTS", "ACTIVE_USER", "DINERO_CUENTA", "MARKETPLACE_DATA")
    )
    # ids are opaque text: sellers SELLER_<n>, buyers numeric-looking text
    assert all(re.fullmatch(r"SELLER_[0-9]+", s) for s in pay["CUS_CUST_ID_SEL"][:1000])
    assert truth["CUS_CUST_ID_BUY"][:3].tolist() == ["100007", "100014", "100021"]
    # MAU columns count accesses (not 0/1 flags)
    for column in ("MAU_MP_1", "MAU_ML_1", "MAU_ML_2"):
        assert active[column].min() >= 0 and active[column].max() > 10 and 3 < active[column].mean() < 15
    # INVERSION is one of the four states, all of them present
    assert sorted(set(money["INVERSION"])) == ["Elegible", "Investing", "Pending", "Warmup"]
    # RECENCY_ML is the date of the last purchase: before T, none without purchases
    bought = market["FREQUENCY_ML"] > 0
    assert all(d is None for d in market["RECENCY_ML"][~bought]) and (market["SPENT_ML"][~bought] == 0).all()
    dates = market["RECENCY_ML"][bought]
    assert min(dates) >= "2026-03-04" and max(dates) < T.isoformat()
    # segments as the statement writes them, plus Online, plus a small share outside the known set
    segments, counts = np.unique(pay["TPV_SEGMENT_DETAIL"], return_counts=True)
    assert set(segments) == {
        "Instore",
        "Transport",
        "Utilities",
        "transfers",
        "top-ups",
        "Online",
        "Insurance",
        "Donations",
    }
    known = {s.lower() for s in ChurnSettings.model_fields["known_segments"].default}
    unknown = counts[[s.lower() not in known for s in segments]].sum() / counts.sum()
    assert 0.01 < unknown < 0.02  # the warning has something to measure, under its default limit 0.05


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--customers", "0"], "customers must be >= 1"),
        (["--snapshot", "2026-09-15"], "first day of a month"),
        (["--drift", "-1"], "drift must be within"),
    ],
)
def test_bad_cli_input_is_a_clear_error(tmp_path, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
