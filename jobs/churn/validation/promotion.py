"""Promotion as code: the challenger becomes production only when it beats the champion on the SAME
evaluation data by the configured margin, or when there is no champion (a tie never promotes).

`decide` is the pure rule; `test_rows` is the challenger's test split re-derived from its spec without a
JVM; `auc` scores one model on those rows, each model deriving its segment-share inputs with ITS OWN
vocabulary, so models with different vocabularies are compared on the same rows.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from jobs.churn.contract.split import split_bucket, split_name

if TYPE_CHECKING:
    import pandas as pd

    from jobs.churn.contract.spec import TrainSpec
    from jobs.churn.deployment.scorer.score import ChurnScorer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    metric: str
    challenger_version: int
    challenger_score: float
    champion_version: int | None
    champion_score: float | None
    margin: float

    def tags(self) -> dict[str, str]:
        return {f"promotion.{k}": "" if v is None else str(v) for k, v in asdict(self).items()}


def decide(
    challenger_version: int,
    challenger_score: float,
    champion_version: int | None,
    champion_score: float | None,
    margin: float,
    metric: str = "roc_auc",
) -> Decision:
    """Promote when there is no champion, or when challenger - champion > margin (a tie never promotes)."""
    facts = dict(
        metric=metric,
        challenger_version=challenger_version,
        challenger_score=challenger_score,
        champion_version=champion_version,
        champion_score=champion_score,
        margin=margin,
    )
    if champion_version is None:
        return Decision(True, "no production model yet", **facts)
    if champion_version == challenger_version:
        return Decision(False, "the challenger already is the production model", **facts)
    if champion_score is None:
        return Decision(False, "the production model cannot be evaluated on the challenger's data", **facts)
    gain = challenger_score - champion_score
    if gain > margin + 1e-12:  # 0.842 - 0.840 is 0.0020000000000000018 in floating point: not a win
        return Decision(True, f"{metric} better by {gain:.5f} > margin {margin}", **facts)
    return Decision(False, f"{metric} gain {gain:.5f} does not exceed margin {margin}", **facts)


def test_rows(frame: pd.DataFrame, spec: TrainSpec) -> pd.DataFrame:
    """The labelled rows of `frame` in the spec's test split (the split re-derived from the ids)."""
    frame = frame[frame[spec.label].notna()]
    test = split_name(split_bucket(frame[spec.id].tolist(), spec), spec) == "test"
    return frame[test].reset_index(drop=True)


def auc(scorer: ChurnScorer, frame: pd.DataFrame, label: str) -> float | None:
    """ROC AUC of one model on the evaluation rows (its share columns derived with its vocabulary); None
    when the model needs columns these rows do not have (it cannot be evaluated on them)."""
    from sklearn.metrics import roc_auc_score

    from jobs.churn.contract.features import MissingFeatures
    from jobs.churn.features.shares import with_shares

    try:
        p = scorer.predict_proba(with_shares(frame, scorer.shares))
    except MissingFeatures as exc:  # the champion needs columns this data does not have
        log.warning("cannot score the evaluation data: %s", exc)
        return None
    return float(roc_auc_score(frame[label].to_numpy().astype(int), np.asarray(p)))
