"""A small synthetic customer table with a known signal, for the pipeline and scorer tests: numerics and
categoricals, ~5% missing values of every kind (null, NaN, blank), unseen categories on request."""

from __future__ import annotations

import math

import numpy as np

from jobs.churn.contract.spec import parse_spec

SPEC = parse_spec(
    {
        "id": "customer_id",
        "label": "churned",
        "numeric": ["tenure", "monthly", "balance", "logins"],
        "categorical": ["contract", "city", "card"],
        "models": {"logistic_regression": {}, "random_forest": {}, "gbt": {}},
    },
    source="test",
)
TINY = {
    "logistic_regression": {"regParam": 0.01, "maxIter": 20},
    "random_forest": {"numTrees": 10, "maxDepth": 4},
    "gbt": {"maxIter": 10, "maxDepth": 3},
}
CONTRACTS = ("month", "year", "two_year")
CITIES = ("Cordoba", "Rosario", "Salta", "Mendoza", "La Plata")
CARDS = ("credit", "debit", "prepaid")
SCHEMA = (
    "customer_id long, tenure int, monthly double, balance double, logins long, "
    "contract string, city string, card string, churned int"
)
PARITY = 1e-6


def customers(n: int, seed: int, unseen: bool = False) -> list[tuple]:
    """Rows with signal in tenure, monthly, contract and card; ~5% missing values of every kind."""
    rng = np.random.default_rng(seed)
    contracts = (*CONTRACTS, "weekly") if unseen else CONTRACTS
    cities = (*CITIES, "Ushuaia") if unseen else CITIES
    rows = []
    for i in range(n):
        tenure = int(rng.integers(0, 72))
        monthly = float(np.round(rng.uniform(20, 120), 2))
        balance = float(np.round(rng.lognormal(5, 1), 2))
        logins = int(rng.poisson(6))
        contract = str(rng.choice(contracts))
        city = str(rng.choice(cities))
        card = str(rng.choice(CARDS))
        margin = (
            1.2
            - 0.05 * tenure
            + 0.02 * (monthly - 70)
            - 0.15 * logins
            + {"month": 1.0, "year": -0.5}.get(contract, -1.2)
            + {"prepaid": 0.7, "debit": 0.0}.get(card, -0.3)
        )
        churned = int(rng.random() < 1 / (1 + math.exp(-margin)))
        row = [i, tenure, monthly, balance, logins, contract, city, card, churned]
        for j, missing in ((1, None), (2, math.nan), (2, None), (3, None), (4, None)):
            if rng.random() < 0.04:
                row[j] = missing
        for j in (5, 6, 7):
            if rng.random() < 0.05:
                row[j] = str(rng.choice([None, "", "  "]))
                row[j] = None if row[j] == "None" else row[j]
        rows.append(tuple(row))
    return rows
