"""Generate the five churn source files from the documented behavioural model (`jobs.churn.simulate.generate`).

``python -m jobs.churn.simulate --out var/churn/source [--customers 5000] [--snapshot 2026-09-01] [--seed 7]
[--drift 0.5]``: the CSV files, `_truth.csv` (per-customer true churn probability) and `_oracle.json` (churn
rate, oracle AUC).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from jobs.churn.simulate.generate import DEFAULT_SNAPSHOT, ChurnGenConfig

log = logging.getLogger("jobs.churn.simulate")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.churn.simulate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the five CSV files and the oracle"
    )
    parser.add_argument("--customers", type=int, default=5000, help="number of customers (default 5000)")
    parser.add_argument(
        "--snapshot", type=date.fromisoformat, default=DEFAULT_SNAPSHOT, help="snapshot T, a month start"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--drift", type=float, default=0.0, help="population shift, 0 (none) to 3")
    args = parser.parse_args(argv)
    try:
        args.config = ChurnGenConfig(args.customers, args.snapshot, args.seed, args.drift)
    except ValueError as err:
        parser.error(str(err))
    return args


def generate_files(args: argparse.Namespace, settings=None) -> dict:
    from jobs.churn.simulate.generate import generate
    from jobs.churn.simulate.io import write

    cfg = args.config
    tables, truth, oracle = generate(cfg)
    write(args.out, tables, truth, oracle)
    log.info(
        "wrote %d customers, %d payments to %s: churn rate %.3f, oracle AUC %.4f",
        cfg.customers, oracle["payments"], args.out, oracle["churn_rate"], oracle["oracle_auc"],
    )  # fmt: skip
    return oracle


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, generate_files, lambda _: None)


if __name__ == "__main__":
    sys.exit(main())
