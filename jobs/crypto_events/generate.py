"""The simulated upstream system, ON the task's table: deterministic by seed and logical date.

Upstream is a history table that upstream itself keeps current (SPEC.md, workflow 1 "Source"); this module
plays upstream on `raw.bt_crypto_transaction_history` (docs/crypto_events.md, "The simulated upstream"):
- Each day d has `events_per_day` purchases with unique keys (site, user, day, crypto); prices follow a
  per-crypto random walk (the reference price of the day) with +-1% noise; amounts are log-normal. Each row
  writes its date in one of the accepted shapes: unpadded day-first (1/2/2026 is 1 February) most often,
  then padded (01/02/2026), ISO and compact.
- On every later day e of the window (e <= d + window - 1) each event may be edited in place (price moves
  ~1%), deleted, or - once deleted - restored. `upstream.advance(D)` applies days up to D in order: day e inserts its
  new rows and UPDATEs/DELETEs/re-INSERTs the rows of the window's earlier days, so the table is always
  upstream's CURRENT state, a pure function of (seed, first day, D). Applying a day twice changes nothing;
  upstream never goes back in time (a backfill reads the current state).
- A configurable share of each day's rows is defective, spread evenly over EVERY defect class (one class per
  row), plus exact duplicates (collapsed) and conflicting duplicates (both rejected). Rows whose date no
  window can hold (missing, unparseable, impossible, before any history, far in the future) are inserted on
  their day like any row. Defective rows are never edited. `expected_run` says what a run must find.

What happens each day is computed here, purely (rows, edits, defects: `day_rows`, `upstream_rows`,
`expected_run`); `jobs.crypto_events.upstream` applies it to the table.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

from jobs.common.dates import date_formats as checked_formats
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


EXACT_DUPLICATE = "EXACT_DUPLICATE"  # not a rule: an identical copy that the job collapses
DEFECT_CLASSES = (
    R.SITE_MISSING,
    R.SITE_UNKNOWN,
    R.USER_ID_INVALID,
    R.USER_ID_NON_POSITIVE,
    R.DATE_MISSING,
    R.DATE_UNPARSEABLE,
    R.DATE_IMPOSSIBLE,
    R.DATE_BEFORE_HISTORY,
    R.DATE_FAR_FUTURE,
    R.CRYPTO_MISSING,
    R.CRYPTO_UNKNOWN,
    R.PRICE_INVALID,
    R.PRICE_NON_POSITIVE,
    R.PRICE_IMPLAUSIBLE,
    R.UNITS_INVALID,
    R.UNITS_NON_POSITIVE,
    R.NUMERIC_OVERFLOW,
    R.NUMERIC_UNDERFLOW,
    R.DUPLICATE_CONFLICT,
    EXACT_DUPLICATE,
)
UNPLACED = frozenset(R.UNPLACED_DATE_CODES)
SOURCE_TABLE = "raw.bt_crypto_transaction_history"

RawRow = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


class SimulatorError(RuntimeError):
    """The table cannot be played upstream on (typed columns, or started with another configuration)."""


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    events_per_day: int = 2000
    defect_share: float = 0.05
    window_days: int = 5
    date_formats: tuple[str, ...] = ("d/M/yyyy", "yyyy-MM-dd", "yyyyMMdd")
    sites: tuple[str, ...] = ("MLA", "MLB", "MLC", "MCO", "MLM", "MLU", "MPE")
    cryptos: tuple[str, ...] = tuple(CRYPTO_MARKET)
    edit_share: float = 0.03  # per event and later day
    delete_share: float = 0.01
    restore_share: float = 0.25  # of the deleted events, per later day
    history_days: int = 30  # days before the first window a new upstream starts with

    def renderings(self) -> list[tuple[object, bool]]:
        """(format, padded) pairs upstream writes dates in: the first format unpadded most often."""
        out: list[tuple[object, bool]] = []
        for fmt in checked_formats(self.date_formats):
            flexible = any(t in ("d", "M") for t in fmt.tokens)
            out.extend([(fmt, False), (fmt, True)] if flexible else [(fmt, True)])
        return out


@dataclass(frozen=True)
class SimRow:
    day: date  # the upstream day the row belongs to (its date text may say otherwise: a defect)
    values: RawRow
    defect: str | None  # the defect class, EXACT_DUPLICATE for a collapsed copy, None for a clean row


# --- events ---------------------------------------------------------------------------------------------


@dataclass
class _Day:
    day: date
    site: np.ndarray
    user: np.ndarray
    crypto: np.ndarray
    price: np.ndarray
    units: np.ndarray
    text: list[str]  # the date as this event's row writes it
    alive: np.ndarray
    frozen: np.ndarray  # defective rows (and the originals of duplicates) are never edited or deleted


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
    shapes = cfg.renderings()
    k = len(shapes)
    p = [0.5] + [0.5 / (k - 1)] * (k - 1) if k > 1 else [1.0]
    texts = [fmt.render(day, padded) for fmt, padded in shapes]
    text = [texts[j] for j in rng.choice(k, size=n, p=p)]
    frozen = np.zeros(n, dtype=bool)
    frozen[_defect_targets(cfg, day, n)] = True
    return _Day(day, site, user, crypto, price, units, text, np.ones(n, dtype=bool), frozen)


def _defect_targets(cfg: GeneratorConfig, day: date, n: int) -> np.ndarray:
    rng = np.random.default_rng([cfg.seed, day.toordinal(), 2])
    return rng.permutation(n)[: round(cfg.defect_share * n)]


@lru_cache(maxsize=16)
def upstream_day(cfg: GeneratorConfig, day: date, as_of: date) -> _Day:
    """The events of `day` as upstream has them on `as_of`: edits, deletions, restorations applied (only
    within the window: a day older than the window no longer changes). Cached: never mutate the result."""
    if as_of <= day:
        return _base_events(cfg, day)
    last = min(as_of, day + timedelta(days=cfg.window_days - 1))
    if last < as_of:
        return upstream_day(cfg, day, last)
    before = upstream_day(cfg, day, last - timedelta(days=1))
    events = _Day(**{**before.__dict__, "price": before.price.copy(), "alive": before.alive.copy()})
    n = len(events.user)
    rng = np.random.default_rng([cfg.seed, day.toordinal(), last.toordinal(), 1])
    u, move = rng.random(n), rng.normal(0, 0.01, n)
    free = ~events.frozen
    edit = free & events.alive & (u < cfg.edit_share)
    delete = free & events.alive & (u >= cfg.edit_share) & (u < cfg.edit_share + cfg.delete_share)
    restore = free & ~events.alive & (u >= 1 - cfg.restore_share)
    events.price = np.where(edit, np.round(events.price * (1 + move), 6), events.price)
    events.alive = (events.alive & ~delete) | restore
    return events


def clean_row(cfg: GeneratorConfig, ev: _Day, i: int) -> RawRow:
    return (
        cfg.sites[ev.site[i]],
        str(int(ev.user[i])),
        ev.text[i],
        cfg.cryptos[ev.crypto[i]],
        f"{ev.price[i]:.6f}",
        f"{ev.units[i]:.8f}",
    )


def day_rows(cfg: GeneratorConfig, day: date, as_of: date) -> list[SimRow]:
    """Every row of upstream day `day` as the table holds it on `as_of`."""
    base = _base_events(cfg, day)
    ev = upstream_day(cfg, day, as_of)
    defective, copies = _defects(cfg, base)
    rows = []
    for i in range(len(ev.user)):
        if i in defective:
            rows.append(SimRow(day, *defective[i]))
        elif ev.alive[i]:
            rows.append(SimRow(day, clean_row(cfg, ev, i), None))
    rows.extend(SimRow(day, values, defect) for values, defect in copies)
    return rows


def upstream_rows(cfg: GeneratorConfig, first_day: date, as_of: date) -> list[SimRow]:
    """The whole simulated table on `as_of` (upstream started on `first_day`)."""
    days = (as_of - first_day).days + 1
    return [r for k in range(days) for r in day_rows(cfg, first_day + timedelta(days=k), as_of)]


def first_day_for(cfg: GeneratorConfig, logical_date: date) -> date:
    """Where a new upstream starts when it is first brought to `logical_date`."""
    return logical_date - timedelta(days=cfg.window_days - 1 + cfg.history_days)


def expected_run(
    rows: list[SimRow], window: tuple[date, date], unplaced_days: tuple[date, date] | None
) -> dict[str, object]:
    """What a run of `window` must find in the table `rows`: its window rows, plus the rows whose date no
    window holds of the upstream days in `unplaced_days` (those no merged run has quarantined yet)."""
    defects: Counter = Counter()
    read = unplaced = 0
    for r in rows:
        if r.defect in UNPLACED:
            if unplaced_days is None or not unplaced_days[0] <= r.day <= unplaced_days[1]:
                continue
            unplaced += 1
        elif not window[0] <= r.day <= window[1]:
            continue
        read += 1
        if r.defect:
            defects[r.defect] += 1
    by_rule = {k: v for k, v in sorted(defects.items()) if k != EXACT_DUPLICATE}
    rejected, collapsed = sum(by_rule.values()), defects[EXACT_DUPLICATE]
    return {
        "rows_read": read,
        "rows_rejected": rejected,
        "duplicates_collapsed": collapsed,
        "rows_valid": read - rejected - collapsed,
        "rows_unplaced": unplaced,
        "rejects_by_rule": by_rule,
    }


# --- defects --------------------------------------------------------------------------------------------


def _defects(cfg: GeneratorConfig, base: _Day) -> tuple[dict[int, tuple[RawRow, str | None]], list]:
    """The day's defective rows (replacing their event's row) and appended copies, one class per row,
    spread evenly over every class (the rotation starts at the day, so small days still cover them all)."""
    d = base.day
    targets = _defect_targets(cfg, d, len(base.user))
    rng = np.random.default_rng([cfg.seed, d.toordinal(), 3])
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    shape = lambda day: (lambda fmt, padded: fmt.render(day, padded))(*pick(cfg.renderings()))  # noqa: E731
    offset = d.toordinal() % len(DEFECT_CLASSES)
    replaced: dict[int, tuple[RawRow, str | None]] = {}
    copies: list[tuple[RawRow, str | None]] = []
    for j, target in enumerate(targets):
        i = int(target)
        defect = DEFECT_CLASSES[(offset + j) % len(DEFECT_CLASSES)]
        row = list(clean_row(cfg, base, i))
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
                    f"{d.day}-{d.month}-{d.year}x",
                    "Robert'); DROP TABLE x;--",
                ]
            )
        elif defect == R.DATE_IMPOSSIBLE:
            fmt, padded = pick(cfg.renderings())  # the shape of an accepted format, not a calendar date
            row[2] = fmt.render_fields(d.year, *pick([(2, 30), (2, 31), (4, 31), (13, 1), (0, 12)]), padded)
        elif defect == R.DATE_BEFORE_HISTORY:
            row[2] = shape(d.replace(year=d.year - 100, day=min(d.day, 28)))  # a typo of the century
        elif defect == R.DATE_FAR_FUTURE:
            row[2] = shape(d.replace(year=d.year + 1000, day=min(d.day, 28)))  # a typo of the millennium
        elif defect == R.CRYPTO_MISSING:
            row[3] = pick([None, "", " "])
        elif defect == R.CRYPTO_UNKNOWN:
            row[3] = pick(["DOGEX", "ＢＴＣ", "B\x07TC", "ETH;--", 'B"TC'])
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
        elif defect == R.NUMERIC_UNDERFLOW:  # positive, but 0 at the target scale: never a 0 in prod
            row[5] = pick(["1e-11", "0.00000000001", "0.000000000049"])
        elif defect == R.DUPLICATE_CONFLICT:
            copies.append(((site, user, day_text, crypto, f"{float(price) * 1.01:.6f}", units), defect))
        elif defect == EXACT_DUPLICATE:
            copies.append(
                (
                    (
                        pick(
                            [f" {site.lower()} ", f"{site}\n", f"\u00a0{site}\r\n"]
                        ),  # white space is no value
                        pick([user, f"{user}\n", f"\t{user}"]),
                        pick([day_text, f"{day_text}\n", f"{day_text}\r"]),
                        crypto.lower(),
                        pick([f"{float(price):.8f}", f"{price}\n"]),
                        pick([units, f" {units}\u2003"]),
                    ),
                    defect,
                )
            )
            defect = None  # the original is a clean row; its copy collapses into it
        replaced[i] = (tuple(row), defect)  # type: ignore[assignment]
    return replaced, copies


def config_from_settings(crypto, **overrides) -> GeneratorConfig:
    cfg = GeneratorConfig(
        seed=crypto.gen_seed,
        events_per_day=crypto.gen_events_per_day,
        defect_share=crypto.gen_defect_share,
        window_days=crypto.window_days,
        date_formats=tuple(crypto.date_formats),
        sites=tuple(crypto.known_sites),
        cryptos=tuple(c for c in crypto.known_cryptos if c in CRYPTO_MARKET),
        history_days=crypto.gen_history_days,
    )
    return GeneratorConfig(**{**cfg.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
