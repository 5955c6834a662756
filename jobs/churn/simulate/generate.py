"""Generator of the five churn source files, from a documented behavioural model with a known truth.

Model (deterministic by seed; every customer is independent):
- latent engagement ``e ~ N(0, 1)``, a payment trend ``g ~ N(-0.08, 0.12)`` (log-rate change per month),
  age, gender, card type (credit/debit/prepaid/none) and city;
- monthly payment rate ``lambda_k = exp(b + g * (k + 6))`` for month k relative to the snapshot T
  (k = -6..-1 before T, k = 0, 1 the label horizon), with ``b = 0.3 + 0.9 e + card effect + 0.1 (age - 40)/10``;
  payments per month ~ Poisson(lambda_k), spread uniformly over the month; amounts log-normal by segment;
- the snapshot sources (ACTIVE_USER, DINERO_CUENTA, MARKETPLACE_DATA) depend on e, so they carry signal,
  with the statement's meanings: MAU_* are counts of app accesses in a month (Poisson, rate growing with
  e), INVERSION an investment state (Investing > Elegible > Warmup > Pending as e + noise falls),
  RECENCY_ML the date of the last marketplace purchase (empty, and SPENT_ML 0, when FREQUENCY_ML is 0);
  the trend g shows in the payment history and in the balance drawdown (PLATA_CUENTA_1 is about
  PLATA_CUENTA_2 * exp(3 g): the balance follows three months of the trend);
- ids are text: buyers numeric-looking (``100007``), sellers ``SELLER_<n>``; payment segments are the
  statement's (Instore, Transport, Utilities, transfers, top-ups, as written there) plus Online, and a
  small share (1.5%) of values outside CHURN_KNOWN_SEGMENTS (the ingest warning measures them); the
  segment of a payment does not depend on the customer;
- label (task statement): churned = no payment in [T, T + 2 months); its true probability is
  ``exp(-(lambda_0 + lambda_1))``, so the oracle AUC (true probability against the realised label) is known
  and written to ``_oracle.json`` with the data; ``_truth.csv`` holds the per-customer truth.
- ``drift`` (0 = none, 1 = strong) shifts the population: older, less active, higher balances and spend.

CLI: ``python -m jobs.churn.simulate --out var/churn/source [--customers 5000] [--snapshot 2026-09-01]``
(`jobs.churn.simulate.io` writes the files).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

import numpy as np

from jobs.churn.contract.features import HISTORY_MONTHS, HORIZON_MONTHS
from jobs.churn.contract.sources import INVESTMENT_STATES, sources
from jobs.common.dates import add_months

FILES = {name: source.file_columns for name, source in sources().items()}  # the contract's columns
# (segment, share of payments, mean log amount): the statement's five, Online, and two outside the known set
SEGMENT_MIX = (
    ("Instore", 0.29, 2.8),
    ("transfers", 0.22, 3.2),
    ("Transport", 0.15, 2.2),
    ("Utilities", 0.13, 3.6),
    ("top-ups", 0.11, 2.3),
    ("Online", 0.085, 4.0),
    ("Insurance", 0.009, 4.2),
    ("Donations", 0.006, 3.0),
)
DEFAULT_SNAPSHOT = date(2026, 9, 1)  # the demo's T: a month start, labels through 2026-10-31
SEGMENTS = tuple(name for name, _, _ in SEGMENT_MIX)
CARD_TYPES = ("credit", "debit", "prepaid", "none")
CARD_EFFECT = (0.30, 0.10, -0.10, -0.40)
CITIES = ("Buenos Aires", "Cordoba", "Rosario", "Mendoza", "La Plata", "Tucuman", "Mar del Plata", "Salta")


@dataclass(frozen=True)
class ChurnGenConfig:
    customers: int = 5000
    snapshot: date = DEFAULT_SNAPSHOT
    seed: int = 7
    drift: float = 0.0

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError(f"customers must be >= 1, got {self.customers}")
        if self.snapshot.day != 1:
            raise ValueError(f"the snapshot must be the first day of a month, got {self.snapshot}")
        if not 0.0 <= self.drift <= 3.0:
            raise ValueError(f"drift must be within [0, 3], got {self.drift}")


def generate(cfg: ChurnGenConfig) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray], dict]:
    """Returns (tables by file name, per-customer truth, oracle summary); pure, no I/O."""
    rng = np.random.default_rng([cfg.seed, cfg.snapshot.toordinal()])
    n, d = cfg.customers, cfg.drift
    ids = (np.arange(1, n + 1, dtype=np.int64) * 7 + 100_000).astype(str)  # opaque text upstream keys
    e = rng.normal(-0.5 * d, 1.0, n)
    trend = rng.normal(-0.08 - 0.03 * d, 0.12, n)
    age = np.clip(np.round(rng.normal(38 + 6 * d, 12, n)), 18, 85).astype(np.int64)
    gender = rng.choice(np.array(["M", "F"]), n)
    card = rng.choice(len(CARD_TYPES), n, p=[0.35, 0.35, 0.2, 0.1])
    city = rng.choice(np.array(CITIES), n, p=[0.35, 0.15, 0.12, 0.1, 0.1, 0.08, 0.06, 0.04])
    base = 0.3 + 0.9 * e + np.array(CARD_EFFECT)[card] + 0.1 * (age - 40) / 10

    months = range(-HISTORY_MONTHS, HORIZON_MONTHS)
    rates = {k: np.exp(base + trend * (k + HISTORY_MONTHS)) for k in months}
    counts = {k: rng.poisson(rates[k]) for k in months}
    true_p = np.exp(-(rates[0] + rates[1]))
    churned = (counts[0] + counts[1]) == 0

    payments = _payments(rng, cfg, ids, e, counts)
    last_login_days = np.minimum(rng.exponential(10 * np.exp(-e)), 180).astype(np.int64)
    balance = np.round(rng.lognormal(5 + 0.8 * e + 0.5 * d, 0.5), 2)
    # investment state: the more engaged, the further along (Investing > Elegible > Warmup > Pending)
    stage = np.digitize(e + rng.normal(0, 0.8, n), [-0.6, 0.2, 1.0])  # 0 Pending .. 3 Investing
    frequency = rng.poisson(np.exp(1 + 0.5 * e))
    recency_days = np.minimum(rng.exponential(20 * np.exp(-0.5 * e)), 180).astype(np.int64) + 1
    bought = frequency > 0
    last_purchase = np.array(  # the date of the last purchase (none without purchases), always before T
        [
            (cfg.snapshot - timedelta(days=int(x))).isoformat() if b else None
            for x, b in zip(recency_days, bought, strict=True)
        ],
        dtype=object,
    )
    tables = {
        "PAYMENTS": payments,
        "ACTIVE_USER": {
            "CUS_CUST_ID_BUY": ids,
            # accesses to each app in a month: counts, not flags
            "MAU_MP_1": rng.poisson(np.exp(2.0 + 0.6 * e - 0.3 * d)),
            "MAU_ML_1": rng.poisson(np.exp(1.5 + 0.5 * e - 0.3 * d)),
            "MAU_ML_2": rng.poisson(np.exp(1.4 + 0.45 * e - 0.3 * d)),
            "last_login_mp_date_1": np.array(
                [(cfg.snapshot - timedelta(days=int(x) + 1)).isoformat() for x in last_login_days]
            ),
        },
        "DEMOGRAFICOS": {
            "CUS_CUST_ID_BUY": ids,
            "AGE": age,
            "GENDER": gender,
            "CARD_TYPE": np.array(CARD_TYPES)[card],
            "CITY": city,
        },
        "DINERO_CUENTA": {
            "CUS_CUST_ID_BUY": ids,
            "PLATA_CUENTA_1": balance,
            # declining customers draw their balance down: last month vs the month before follows the trend
            "PLATA_CUENTA_2": np.round(balance * np.exp(-3 * trend + rng.normal(0, 0.05, n)), 2),
            "INVERSION": np.array(INVESTMENT_STATES[::-1])[stage],
        },
        "MARKETPLACE_DATA": {
            "CUS_CUST_ID_BUY": ids,
            "SPENT_ML": np.where(bought, np.round(rng.lognormal(4 + 0.5 * e + 0.4 * d, 0.9), 2), 0.0),
            # the date of the last purchase (none without purchases), always before T
            "RECENCY_ML": last_purchase,
            "FREQUENCY_ML": frequency,
        },
    }
    truth = {"CUS_CUST_ID_BUY": ids, "true_churn_probability": true_p, "churned": churned.astype(np.int64)}
    oracle = {
        **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(cfg).items()},
        "payments": len(payments["FECHA"]),
        "churn_rate": float(churned.mean()),
        "oracle_auc": _auc(churned, true_p),
        "label": f"no payment in [{cfg.snapshot}, {add_months(cfg.snapshot, HORIZON_MONTHS)})",
    }
    return tables, truth, oracle


def as_raw_frames(tables: dict[str, dict[str, np.ndarray]]) -> dict:
    """The generated tables as pandas frames shaped like the `raw.churn_*` tables (lower-case columns,
    dates as dates): what the feature module reads, without a database (tests, benchmarks)."""
    import pandas as pd

    frames = {}
    for name, cols in tables.items():
        frame = pd.DataFrame({c.lower(): v for c, v in cols.items()})
        for column in ("fecha", "last_login_mp_date_1", "recency_ml"):
            if column in frame:
                dates = pd.to_datetime(frame[column])
                frame[column] = dates.dt.date.astype(object).where(dates.notna(), None)
        frames[name] = frame
    return frames


def generated_features(spark, tables: dict[str, dict[str, np.ndarray]], snapshot: date):
    """The feature table of generated tables at `snapshot` (Spark, without a database: tests, benchmarks)."""
    from jobs.churn.features.build import build_features

    frames = {name: spark.createDataFrame(frame) for name, frame in as_raw_frames(tables).items()}
    return build_features(
        frames["PAYMENTS"], frames["ACTIVE_USER"], frames["DEMOGRAFICOS"], frames["DINERO_CUENTA"],
        frames["MARKETPLACE_DATA"], snapshot,
    )  # fmt: skip


def _payments(
    rng, cfg: ChurnGenConfig, ids: np.ndarray, e: np.ndarray, counts: dict[int, np.ndarray]
) -> dict:
    buyers, days = [], []
    for k, n_k in counts.items():
        start, end = add_months(cfg.snapshot, k), add_months(cfg.snapshot, k + 1)
        who = np.repeat(np.arange(len(ids)), n_k)
        buyers.append(who)
        days.append(start.toordinal() + rng.integers(0, (end - start).days, len(who)))
    who, ordinal = np.concatenate(buyers), np.concatenate(days)
    order = np.lexsort((who, ordinal))
    who, ordinal = who[order], ordinal[order]
    m = len(who)
    shares = np.array([share for _, share, _ in SEGMENT_MIX])
    segment = rng.choice(len(SEGMENTS), m, p=shares / shares.sum())
    mean_log = np.array([mu for _, _, mu in SEGMENT_MIX])
    spent = np.round(rng.lognormal(mean_log[segment] + 0.2 * e[who] + 0.3 * cfg.drift, 0.8), 2)
    discount = np.where(rng.random(m) < 0.2, np.round(spent * rng.uniform(0.05, 0.3, m), 2), 0.0)
    return {
        "FECHA": np.array([date.fromordinal(int(o)).isoformat() for o in ordinal])
        if m
        else np.array([], dtype=str),
        "CUS_CUST_ID_SEL": np.char.add("SELLER_", rng.integers(1, 50_000, m).astype(str)),
        "CUS_CUST_ID_BUY": ids[who],
        "SPENT": spent,
        "TPV_SEGMENT_DETAIL": np.array(SEGMENTS)[segment],
        "DESCUENTO": discount,
    }


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, scores))
