"""The promotion rule: first model, better, worse, tie, and the cases where it must not promote."""

from __future__ import annotations

import pytest

from jobs.churn.validation.promotion import decide


def test_first_model_is_promoted():
    d = decide(1, 0.80, None, None, margin=0.002)
    assert d.promote and "no production" in d.reason


def test_better_by_more_than_the_margin_is_promoted():
    d = decide(2, 0.85, 1, 0.84, margin=0.002)
    assert d.promote and d.champion_version == 1 and d.challenger_score == 0.85


@pytest.mark.parametrize("challenger", [0.8410, 0.8420, 0.83])
def test_within_the_margin_or_worse_is_kept(challenger):
    d = decide(2, challenger, 1, 0.84, margin=0.002)
    assert not d.promote and "does not exceed" in d.reason


def test_a_tie_never_promotes_even_with_zero_margin():
    assert not decide(2, 0.84, 1, 0.84, margin=0.0).promote


def test_the_champion_itself_is_not_promoted_again():
    d = decide(3, 0.9, 3, 0.9, margin=0.0)
    assert not d.promote and "already" in d.reason


def test_a_champion_that_cannot_score_the_data_blocks_automatic_promotion():
    d = decide(2, 0.9, 1, None, margin=0.0)
    assert not d.promote and "cannot be evaluated" in d.reason


def test_decision_tags_record_the_numbers():
    tags = decide(2, 0.85, 1, 0.84, margin=0.002).tags()
    assert tags["promotion.challenger_score"] == "0.85" and tags["promotion.champion_score"] == "0.84"
    assert tags["promotion.margin"] == "0.002" and tags["promotion.metric"] == "roc_auc"


def _scorer():
    """A one-numeric, one-category logistic scorer, described as `export` writes it."""
    from jobs.churn.deployment.scorer.score import FORMAT, UNITS, ChurnScorer

    return ChurnScorer({
        "format": FORMAT, "kind": "logistic_regression", "units": UNITS["logistic_regression"],
        "spec": {"name": "t", "id": "customer_id", "label": "churned", "numeric": ["a"], "categorical": ["c"],
                 "shares": None},
        "missing_category": "__missing__", "blank_chars": " ", "numeric_fill": {"a": 0.0},
        "categories": {"c": ["x", "y"]},
        "model": {"coefficients": [2.0, 1.0, -1.0], "means": [0.0, 0.5, 0.5], "intercept": 0.0,
                  "numeric_slots": {"a": 0}, "category_slots": {"c": [1, 2]}},
    })  # fmt: skip


def test_a_champion_missing_columns_of_the_evaluation_data_scores_none_instead_of_crashing():
    import pandas as pd

    from jobs.churn.validation.promotion import auc

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "c": ["x", "y", "x", "y"], "churned": [0, 0, 1, 1]})
    assert auc(_scorer(), frame, "churned") == 1.0
    assert auc(_scorer(), frame.drop(columns="a"), "churned") is None  # the scorer's own error: not a crash


def test_any_other_scoring_error_is_not_taken_for_an_unscorable_champion():
    import pandas as pd

    from jobs.churn.validation.promotion import auc

    class Broken:
        shares = None

        def predict_proba(self, frame):
            raise ValueError("a bug in the scorer")

    with pytest.raises(ValueError, match="a bug"):
        auc(Broken(), pd.DataFrame({"churned": [0, 1]}), "churned")
