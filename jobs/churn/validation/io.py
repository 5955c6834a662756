"""The validation step's I/O: the challenger's evaluation rows from the data it was trained on, and the
decision recorded in the registry (version tags; the `production` alias moves only on promotion)."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING

from jobs.churn.deployment.io import PRODUCTION

if TYPE_CHECKING:
    import pandas as pd

    from jobs.churn.contract.spec import TrainSpec
    from jobs.churn.deployment.io import ModelRef
    from jobs.churn.validation.promotion import Decision

log = logging.getLogger(__name__)


def training_rows(ref: ModelRef) -> pd.DataFrame:
    """The rows a model was trained on, read without a JVM: its recorded table, version and snapshot."""
    from jobs.churn.features.io import FeatureTable, TableRef

    version, snapshot = ref.tags.get("feature_version", ""), ref.tags.get("snapshot_date") or None
    table = TableRef(
        ref.tags["feature_path"],
        int(version) if version.isdigit() else None,  # a Parquet or CSV table records none ("None")
        date.fromisoformat(snapshot) if snapshot else None,
    )
    return FeatureTable(table).read().to_pandas()


def evaluation_rows(ref: ModelRef, spec: TrainSpec) -> pd.DataFrame:
    """The challenger's test rows, from the same data it was trained on."""
    from jobs.churn.validation.promotion import test_rows

    return test_rows(training_rows(ref), spec)


def apply_decision(client, name: str, decision: Decision) -> None:
    for key, value in decision.tags().items():
        client.set_model_version_tag(name, str(decision.challenger_version), key, value)
    client.set_model_version_tag(
        name,
        str(decision.challenger_version),
        "promotion.decision",
        "promoted" if decision.promote else "kept",
    )
    if decision.promote:
        client.set_registered_model_alias(name, PRODUCTION, str(decision.challenger_version))
        if decision.champion_version is not None:
            client.set_model_version_tag(
                name, str(decision.champion_version), "replaced_by", str(decision.challenger_version)
            )
    log.info(
        "promotion of %s v%s: %s (%s)",
        name,
        decision.challenger_version,
        "PROMOTED to production" if decision.promote else "kept as challenger",
        decision.reason,
    )
