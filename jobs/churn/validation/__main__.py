"""Promote the challenger to production when it beats the champion on the SAME evaluation data.

``python -m jobs.churn.validation [--version N] [--force]``

The evaluation data is the challenger's own test split (its pinned feature version and snapshot, the
split recomputed from its spec), as the feature table holds it. Both models score it with their JVM-free
scorers, so no Spark is needed; each derives its segment-share inputs from those same rows with ITS OWN
vocabulary (`jobs.churn.features.shares.with_shares`), so models with different vocabularies are compared
on the same evaluation data. The decision (`jobs.churn.validation.promotion.decide`), its reason and both
scores are recorded as tags on the challenger version; the alias `production` moves only on promotion.
Exit codes: 0 decided (promoted or kept), 2 bad input, 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from jobs.churn.deployment.io import NoModel
from jobs.churn.validation.promotion import Decision

log = logging.getLogger("jobs.churn.validation")


def run(args: argparse.Namespace, settings=None) -> Decision:
    from mlflow.tracking import MlflowClient

    from jobs.churn.deployment.io import (
        CHALLENGER,
        PRODUCTION,
        configure,
        download,
        load_scorer,
        load_spec_of,
        resolve,
        version_by_alias,
    )
    from jobs.churn.validation.io import apply_decision, evaluation_rows
    from jobs.churn.validation.promotion import auc, decide
    from jobs.common.config import load_settings

    settings = settings or load_settings()
    configure(settings.mlflow)
    client = MlflowClient()
    name = settings.mlflow.model_name
    challenger = resolve(client, name, CHALLENGER, args.version)
    champion_mv = version_by_alias(client, name, PRODUCTION)
    spec = load_spec_of(challenger)
    frame = evaluation_rows(challenger, spec)
    with tempfile.TemporaryDirectory() as tmp:
        challenger_score = auc(load_scorer(download(challenger, Path(tmp) / "challenger")), frame, spec.label)
        if challenger_score is None:
            raise RuntimeError(f"the challenger v{challenger.version} cannot score its own test data")
        champion_score = None
        if champion_mv is not None and int(champion_mv.version) != challenger.version:
            champion = resolve(client, name, version=int(champion_mv.version))
            champion_score = auc(load_scorer(download(champion, Path(tmp) / "champion")), frame, spec.label)
    decision = decide(
        challenger.version,
        challenger_score,
        int(champion_mv.version) if champion_mv is not None else None,
        champion_score,
        settings.churn.promotion_margin,
    )
    if args.force and not decision.promote:
        decision = Decision(**{**decision.__dict__, "promote": True, "reason": f"forced ({decision.reason})"})
    client.set_model_version_tag(name, str(challenger.version), "promotion.evaluation_rows", str(len(frame)))
    apply_decision(client, name, decision)
    return decision


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.churn.validation", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--version", type=int, help="model version to consider (default: the challenger alias)"
    )
    parser.add_argument(
        "--force", action="store_true", help="promote even when the rule says keep (recorded)"
    )
    args = parser.parse_args(argv)
    if args.version is not None and args.version < 1:
        parser.error("--version must be >= 1")
    return args


def report(decision: Decision) -> None:
    print(json.dumps(decision.__dict__, default=str))


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, run, report, bad_input=(NoModel,))


if __name__ == "__main__":
    sys.exit(main())
