"""Behavioural tests of the production churn model (Made-With-ML's `tests/model`): what it must do, all else
equal, whatever its AUC. They score the served model of the run (tests/served.py) with the JVM-free scorer
that the app, the REST API and the pyfunc use, over every customer of its feature snapshot.

- Directional: a more recent last payment, or more payments last month, lowers the churn risk on average,
  and raises almost no one's: the served model is a small forest (15 trees of depth 4), a step function
  whose trees may each cross a split that is noise, so a few customers may rise by a tree's step or two
  (measured: at most 0.11, for at most 7% of customers by more than 0.02); a model that learned the wrong
  direction fails both bounds.
- Invariance: a city the model never saw is the "unknown" category, whatever its spelling; renaming a
  customer's city (to an unseen one or to any other) moves the probability by at most the unknown
  category's effect, which is small, since city carries no churn signal in these data (measured: at most
  0.063, 0.004 on average).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.served import MODEL, feature_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEP_NOISE = 0.02  # a rise below this is no rise: a forest is a step function
MAX_RISE = 0.15  # no customer's risk rises by more than about two trees' votes of fifteen
MAX_SHARE_RAISED = 0.10  # of customers whose risk rises by more than STEP_NOISE
UNKNOWN_EFFECT = 0.10  # the largest move of one probability that a city of no signal may cause
UNKNOWN_EFFECT_MEAN = 0.01  # and on average


@pytest.fixture(scope="module")
def model(served):
    from jobs.churn.serving.io import ModelService

    scorer = ModelService(served["tracking_uri"], MODEL).load().scorer
    frame = feature_rows(served)[list(scorer.features)].reset_index(drop=True)
    assert len(frame) >= 500  # every customer of the snapshot, not a hand-picked few
    return scorer, frame


def _probability(scorer, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(scorer.predict_proba(frame), dtype=float)


def _moved(frame: pd.DataFrame, column: str, values) -> pd.DataFrame:
    moved = frame.copy()
    moved[column] = values
    return moved


def _assert_lowers(before: np.ndarray, after: np.ndarray, frame: pd.DataFrame, what: str) -> None:
    rise = after - before
    assert rise.mean() < 0, f"{what}: the risk rises on average ({rise.mean():+.4f})"
    assert rise.max() <= MAX_RISE, (what, rise.max(), frame.iloc[int(rise.argmax())].to_dict())
    raised = float((rise > STEP_NOISE).mean())
    assert raised <= MAX_SHARE_RAISED, f"{what}: {raised:.1%} of customers riskier"


def test_a_more_recent_last_payment_lowers_the_risk(model):
    scorer, frame = model
    assert "days_since_last_payment" in scorer.features
    before = _probability(scorer, frame)
    days = frame["days_since_last_payment"].astype(float)
    for what, recent in (("half", days / 2), ("a week", np.minimum(days, 7.0)), ("today", 0.0 * days)):
        after = _probability(scorer, _moved(frame, "days_since_last_payment", recent))
        _assert_lowers(before, after, frame, f"last payment {what}")
    news = days > 30  # customers for whom "paid today" is real news
    assert news.sum() >= 50
    assert (after - before)[news].mean() < -0.01  # and it lowers the risk most where it is news


def test_more_payments_last_month_lower_the_risk(model):
    scorer, frame = model
    column = "pay_count_1m"
    assert column in scorer.features
    before = _probability(scorer, frame)
    for extra in (1, 5, 20):
        after = _probability(scorer, _moved(frame, column, frame[column].astype(float) + extra))
        _assert_lowers(before, after, frame, f"{extra} more payments")


def test_an_unseen_city_is_the_unknown_category_whatever_its_spelling(model):
    scorer, frame = model
    known = set(scorer.description["categories"]["city"])
    names = ["Atlantis", "Ciudad Gótica", "x" * 200, "Macondo 2"]
    assert not known & set(names)
    scored = [_probability(scorer, _moved(frame, "city", name)) for name in names]
    for other in scored[1:]:
        np.testing.assert_array_equal(other, scored[0])


def test_renaming_a_city_to_an_unseen_one_moves_the_risk_by_at_most_the_unknown_effect(model):
    scorer, frame = model
    before = _probability(scorer, frame)
    unseen = _probability(scorer, _moved(frame, "city", "Atlantis"))
    change = np.abs(unseen - before)
    assert change.max() <= UNKNOWN_EFFECT, frame.iloc[int(change.argmax())].to_dict()
    assert change.mean() <= UNKNOWN_EFFECT_MEAN
    # nor does renaming it to any known city: no city is a churn signal
    for city in sorted(set(frame["city"].dropna())):
        renamed = np.abs(_probability(scorer, _moved(frame, "city", city)) - before)
        assert renamed.max() <= UNKNOWN_EFFECT and renamed.mean() <= UNKNOWN_EFFECT_MEAN, city
