"""The simulated upstream system: deterministic by seed and logical date.

Model (documented in docs/crypto_events.md):
- Each day d has `events_per_day` purchases with unique keys (site, user, day, crypto); prices follow a
  per-crypto random walk (the reference price of the day) with +-1% noise; amounts are log-normal.
- After day d, on every later day e of the window, each event may be edited (price moves ~1%),
  deleted, or - once deleted - restored. The extract of logical date D is the upstream state on D of
  the events of days [D - window + 1, D]. Everything is a pure function of (seed, D): regenerating an
  extract gives the same rows, so backfills are reproducible.
- A configurable share of the extract's rows is made defective, spread evenly over EVERY defect class
  (one class per row), plus exact duplicates (collapsed) and conflicting duplicates (both rejected).
  `Extract.expected` says exactly how many rows of each class were injected.

CLI: ``python -m jobs.crypto_events.generate --date 2026-11-20 [--days 3]`` lands the extracts of the
given date (and the days before it) into raw.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

from jobs.common.dates import pattern_strftime
from jobs.crypto_events import rules as R

log = logging.getLogger(__name__)

EPOCH = date(2024, 1, 1)
# (starting price in USD on EPOCH, daily volatility)
CRYPTO_MARKET = {
    "BTC": (42_000.0, 0.030),
    "ETH": (2_300.0, 0.035),
    "USDT": (1.0, 0.0005),
    "USDC": (1.0, 0.0005),
    "SOL": (100.0, 0.050),
    "ADA": (0.60, 0.045),
    "XRP": (0.60, 0.045),
    "DOGE": (0.09, 0.060),
}
CRYPTO_WEIGHTS = {
    "BTC": 0.30,
    "ETH": 0.22,
    "USDT": 0.18,
    "USDC": 0.08,
    "SOL": 0.08,
    "ADA": 0.05,
    "XRP": 0.05,
    "DOGE": 0.04,
}

EXACT_DUPLICATE = "EXACT_DUPLICATE"  # not a rule: an identical copy that the job collapses
DEFECT_CLASSES = (
    R.SITE_MISSING,
    R.SITE_UNKNOWN,
    R.USER_ID_INVALID,
    R.USER_ID_NON_POSITIVE,
    R.DATE_MISSING,
    R.DATE_UNPARSEABLE,
    R.DATE_IMPOSSIBLE,
    R.DATE_AFTER_LOGICAL_DATE,
    R.DATE_BEFORE_WINDOW,
    R.CRYPTO_MISSING,
    R.CRYPTO_UNKNOWN,
    R.PRICE_INVALID,
    R.PRICE_NON_POSITIVE,
    R.PRICE_IMPLAUSIBLE,
    R.UNITS_INVALID,
    R.UNITS_NON_POSITIVE,
    R.NUMERIC_OVERFLOW,
    R.DUPLICATE_CONFLICT,
    EXACT_DUPLICATE,
)

RawRow = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    events_per_day: int = 2000
    defect_share: float = 0.05
    window_days: int = 5
    date_formats: tuple[str, ...] = ("yyyy-MM-dd", "dd/MM/yyyy", "yyyyMMdd")
    sites: tuple[str, ...] = ("MLA", "MLB", "MLC", "MCO", "MLM", "MLU", "MPE")
    cryptos: tuple[str, ...] = tuple(CRYPTO_MARKET)
    edit_share: float = 0.03  # per event and later day
    delete_share: float = 0.01
    restore_share: float = 0.25  # of the deleted events, per later day


@dataclass
class Extract:
    logical_date: date
    rows: list[RawRow]
    reference_prices: list[tuple[date, str, float]]
    defects: Counter = field(default_factory=Counter)  # rows per defect class

    @property
    def expected(self) -> dict[str, object]:
        """What the job must find: rows per rule code, duplicates collapsed, valid rows."""
        by_rule = {k: v for k, v in self.defects.items() if k != EXACT_DUPLICATE and v}
        rejected = sum(by_rule.values())
        collapsed = self.defects[EXACT_DUPLICATE]
        return {
            "rows_read": len(self.rows),
            "rows_rejected": rejected,
            "duplicates_collapsed": collapsed,
            "rows_valid": len(self.rows) - rejected - collapsed,
            "rejects_by_rule": by_rule,
        }


# --- market ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _log_levels(seed: int, until: date, cryptos: tuple[str, ...]) -> np.ndarray:
    days = (until - EPOCH).days + 1
    vols = np.array([CRYPTO_MARKET[c][1] for c in cryptos])
    steps = np.random.default_rng([seed, 3]).normal(0.0, 1.0, size=(days, len(cryptos))) * vols
    steps[0] = 0.0
    return np.cumsum(steps, axis=0)


def reference_price(seed: int, day: date, cryptos: tuple[str, ...]) -> np.ndarray:
    """The day's reference price per crypto (random walk from EPOCH), rounded to 8 decimals."""
    if day < EPOCH:
        raise ValueError(f"the simulated market starts on {EPOCH}, got {day}")
    levels = _log_levels(seed, max(day, date(2027, 12, 31)), cryptos)[(day - EPOCH).days]
    base = np.array([CRYPTO_MARKET[c][0] for c in cryptos])
    return np.round(base * np.exp(levels), 8)


# --- events ---------------------------------------------------------------------------------------------


@dataclass
class _Day:
    day: date
    site: np.ndarray
    user: np.ndarray
    crypto: np.ndarray
    price: np.ndarray
    units: np.ndarray
    fmt: np.ndarray  # which configured date format upstream wrote the row's date in
    alive: np.ndarray


def _base_events(cfg: GeneratorConfig, day: date) -> _Day:
    n = cfg.events_per_day
    rng = np.random.default_rng([cfg.seed, day.toordinal(), 0])
    weights = np.array([CRYPTO_WEIGHTS.get(c, 0.05) for c in cfg.cryptos])
    crypto = rng.choice(len(cfg.cryptos), size=n, p=weights / weights.sum())
    site = rng.integers(0, len(cfg.sites), size=n)
    candidates = rng.integers(1, max(50 * n, 1_000_000), size=2 * n + 16)
    _, first = np.unique(candidates, return_index=True)
    user = candidates[np.sort(first)][:n]  # unique users per day -> unique keys
    ref = reference_price(cfg.seed, day, cfg.cryptos)[crypto]
    price = np.round(ref * (1 + np.clip(rng.normal(0, 0.01, n), -0.05, 0.05)), 6)
    amount_usd = np.exp(rng.normal(4.5, 1.1, n))
    units = np.round(np.maximum(amount_usd / price, 1e-6), 8)
    k = len(cfg.date_formats)
    fmt_p = [0.8] + [0.2 / (k - 1)] * (k - 1) if k > 1 else [1.0]
    fmt = rng.choice(k, size=n, p=fmt_p)
    return _Day(day, site, user, crypto, price, units, fmt, np.ones(n, dtype=bool))


def _upstream_day(cfg: GeneratorConfig, day: date, as_of: date) -> _Day:
    """The events of `day` as upstream has them on `as_of`: edits, deletions, restorations applied."""
    events = _base_events(cfg, day)
    n = len(events.user)
    for offset in range(1, (as_of - day).days + 1):
        later = day + timedelta(days=offset)
        rng = np.random.default_rng([cfg.seed, day.toordinal(), later.toordinal(), 1])
        u, move = rng.random(n), rng.normal(0, 0.01, n)
        edit = events.alive & (u < cfg.edit_share)
        delete = events.alive & (u >= cfg.edit_share) & (u < cfg.edit_share + cfg.delete_share)
        restore = ~events.alive & (u >= 1 - cfg.restore_share)
        events.price = np.where(edit, np.round(events.price * (1 + move), 6), events.price)
        events.alive = (events.alive & ~delete) | restore
    return events


def build_extract(cfg: GeneratorConfig, logical_date: date) -> Extract:
    """The upstream window [D - window + 1, D] as it stands on D, with the configured defects."""
    days = [logical_date - timedelta(days=k) for k in range(cfg.window_days - 1, -1, -1)]
    rng = np.random.default_rng([cfg.seed, logical_date.toordinal(), 2])
    formats = [pattern_strftime(f) for f in cfg.date_formats]
    rows: list[list[str | None]] = []
    for day in days:
        ev = _upstream_day(cfg, day, logical_date)
        idx = np.flatnonzero(ev.alive)
        date_text = [day.strftime(f) for f in formats]
        for i, f in zip(idx, ev.fmt[idx], strict=True):
            rows.append(
                [
                    cfg.sites[ev.site[i]],
                    str(int(ev.user[i])),
                    date_text[f],
                    cfg.cryptos[ev.crypto[i]],
                    f"{ev.price[i]:.6f}",
                    f"{ev.units[i]:.8f}",
                ]
            )
    refs = {day: reference_price(cfg.seed, day, cfg.cryptos) for day in days}
    extract = Extract(
        logical_date,
        [],
        [(day, c, float(p)) for day in days for c, p in zip(cfg.cryptos, refs[day], strict=True)],
    )
    _inject_defects(cfg, logical_date, rows, rng, extract.defects)
    extract.rows = [tuple(r) for r in rows]  # type: ignore[misc]
    return extract


# --- defects --------------------------------------------------------------------------------------------


def _inject_defects(
    cfg: GeneratorConfig, d: date, rows: list[list[str | None]], rng, counts: Counter
) -> None:
    n_defects = round(cfg.defect_share * len(rows))
    if n_defects == 0:
        return
    targets = rng.permutation(len(rows))[:n_defects]
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    fmt0 = pattern_strftime(cfg.date_formats[0])
    appended: list[list[str | None]] = []
    for j, target in enumerate(targets):
        defect = DEFECT_CLASSES[j % len(DEFECT_CLASSES)]
        row = rows[target]
        site, user, day_text, crypto, price, units = row
        if defect == R.SITE_MISSING:
            row[0] = pick([None, "", "   "])
        elif defect == R.SITE_UNKNOWN:
            row[0] = pick(["XXX", "MLZ", "M LA", "'; DROP TABLE prod.bt_crypto_events; --"])
        elif defect == R.USER_ID_INVALID:
            row[1] = pick([None, "", "abc", "12a", "1.5", "\t\n", "1 OR 1=1"])
        elif defect == R.USER_ID_NON_POSITIVE:
            row[1] = pick(["0", "-7", "-000"])
        elif defect == R.DATE_MISSING:
            row[2] = pick([None, "", "  "])
        elif defect == R.DATE_UNPARSEABLE:
            row[2] = pick(
                [
                    "yesterday",
                    d.strftime("%Y/%m/%d"),
                    f"{d.year}-{d.month}-{d.day}x",
                    "Robert'); DROP TABLE x;--",
                ]
            )
        elif defect == R.DATE_IMPOSSIBLE:
            row[2] = pick([f"{d.year}-02-30", f"{d.year}-13-01", f"{d.year}-04-31"])
        elif defect == R.DATE_AFTER_LOGICAL_DATE:
            row[2] = (d + timedelta(days=int(rng.integers(1, 30)))).strftime(fmt0)
        elif defect == R.DATE_BEFORE_WINDOW:
            row[2] = (d - timedelta(days=cfg.window_days + int(rng.integers(0, 30)))).strftime(fmt0)
        elif defect == R.CRYPTO_MISSING:
            row[3] = pick([None, "", " "])
        elif defect == R.CRYPTO_UNKNOWN:
            row[3] = pick(["DOGEX", "ＢＴＣ", "BTC\x07", "ETH;--", 'B"TC'])
        elif defect == R.PRICE_INVALID:
            row[4] = pick([None, "", "NaN", "Infinity", "-inf", "abc", "1,234.5", "0x1F"])
        elif defect == R.PRICE_NON_POSITIVE:
            row[4] = pick(["0", "-12.5", "-0.0"])
        elif defect == R.PRICE_IMPLAUSIBLE:
            row[4] = f"{float(price) * pick([25.0, 0.02]):.6f}"
        elif defect == R.UNITS_INVALID:
            row[5] = pick([None, "", "NaN", "two", "1e"])
        elif defect == R.UNITS_NON_POSITIVE:
            row[5] = pick(["0", "-1", "-0.5"])
        elif defect == R.NUMERIC_OVERFLOW:
            which = pick(["user", "units", "price"])
            if which == "user":
                row[1] = "99999999999999999999"
            elif which == "units":
                row[5] = "1e15"
            else:
                row[4] = "1e13"
        elif defect == R.DUPLICATE_CONFLICT:
            appended.append([site, user, day_text, crypto, f"{float(price) * 1.01:.6f}", units])
            counts[defect] += 1  # the original row is rejected too
        elif defect == EXACT_DUPLICATE:
            appended.append(
                [f" {site.lower()} ", user, day_text, f"{crypto.lower()}", f"{float(price):.8f}", units]
            )
        counts[defect] += 1
    rows.extend(appended)


def _check_date_impossible_shapes(cfg: GeneratorConfig) -> None:
    if pattern_strftime(cfg.date_formats[0]) != "%Y-%m-%d":
        raise ValueError("the generator writes impossible dates in yyyy-MM-dd: keep it the first format")


# --- landing --------------------------------------------------------------------------------------------


def row_hash(row: RawRow) -> str:
    joined = "\x1f".join("\x00" if v is None else v for v in row)
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


def land_extract(conn, extract: Extract, source: str = "generator") -> int:
    """Replaces the extract of its logical date in raw (one transaction) and upserts reference prices."""
    d = extract.logical_date
    batch_id = f"crypto_events:{d.isoformat()}:{source}"
    with conn.transaction():
        conn.execute("DELETE FROM raw.bt_crypto_transaction_history WHERE extract_date = %s", (d,))
        with conn.cursor().copy(
            "COPY raw.bt_crypto_transaction_history (extract_date, source_row, site_id, user_id, purchase_date, "
            "crypto_type, purchase_price, purchase_units, batch_id, source, row_hash) FROM STDIN"
        ) as copy:
            for i, row in enumerate(extract.rows, start=1):
                copy.write_row((d, i, *row, batch_id, source, row_hash(row)))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO raw.crypto_reference_prices (price_date, crypto_type, reference_price, source) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (price_date, crypto_type) "
                "DO UPDATE SET reference_price = EXCLUDED.reference_price, source = EXCLUDED.source",
                [(day, c, p, source) for day, c, p in extract.reference_prices],
            )
    return len(extract.rows)


def config_from_settings(crypto, **overrides) -> GeneratorConfig:
    cfg = GeneratorConfig(
        seed=crypto.gen_seed,
        events_per_day=crypto.gen_events_per_day,
        defect_share=crypto.gen_defect_share,
        window_days=crypto.window_days,
        date_formats=tuple(crypto.date_formats),
        sites=tuple(crypto.known_sites),
        cryptos=tuple(c for c in crypto.known_cryptos if c in CRYPTO_MARKET),
    )
    cfg = GeneratorConfig(**{**cfg.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    _check_date_impossible_shapes(cfg)
    return cfg


def main(argv: list[str] | None = None) -> int:
    from jobs.common.config import load_settings
    from jobs.common.logs import setup_logging
    from jobs.common.postgres import connect, open_business_database

    parser = argparse.ArgumentParser(
        prog="python -m jobs.crypto_events.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--date", required=True, type=date.fromisoformat, help="logical date of the extract (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--days", type=int, default=1, help="also land the extracts of the N-1 days before --date"
    )
    parser.add_argument(
        "--events-per-day", type=int, help="events per upstream day (default CRYPTO_GEN_EVENTS_PER_DAY)"
    )
    parser.add_argument(
        "--defect-share", type=float, help="share of defective rows (default CRYPTO_GEN_DEFECT_SHARE)"
    )
    parser.add_argument("--seed", type=int, help="generator seed (default CRYPTO_GEN_SEED)")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be >= 1")
    if args.defect_share is not None and not 0 <= args.defect_share <= 0.9:
        parser.error("--defect-share must be within [0, 0.9]")
    setup_logging()
    settings = load_settings()
    cfg = config_from_settings(
        settings.crypto, seed=args.seed, events_per_day=args.events_per_day, defect_share=args.defect_share
    )
    pg, _ = open_business_database(settings.postgres)
    with connect(pg) as conn:
        for k in range(args.days - 1, -1, -1):
            d = args.date - timedelta(days=k)
            extract = build_extract(cfg, d)
            n = land_extract(conn, extract)
            log.info(
                "landed extract %s: %d rows, %d defective",
                d,
                n,
                sum(extract.expected["rejects_by_rule"].values()),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
