"""The churn source generator: file contract, determinism, the time frame, the known truth, drift."""

from __future__ import annotations

import csv
import json
from datetime import date

import numpy as np
import pytest

from jobs.churn.generate import FILES, ChurnGenConfig, add_months, generate, main, write

T = date(2026, 9, 1)


@pytest.fixture(scope="module")
def small():
    return generate(ChurnGenConfig(customers=4000, snapshot=T, seed=3))


def test_files_have_the_task_statement_columns(tmp_path, small):
    write(tmp_path, *small)
    for name, columns in FILES.items():
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
    assert drifted["ACTIVE_USER"]["MAU_MP_1"].mean() < base["ACTIVE_USER"]["MAU_MP_1"].mean() - 0.1
    assert abs(same["DEMOGRAFICOS"]["AGE"].mean() - base["DEMOGRAFICOS"]["AGE"].mean()) < 1.5


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
