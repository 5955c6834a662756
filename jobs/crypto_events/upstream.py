"""The simulated upstream applied ON the task's table: `advance` brings `raw.bt_crypto_transaction_history` to
a logical date, one day at a time, in one transaction (days `jobs.crypto_events.generate` computes).

CLI: ``python -m jobs.crypto_events.upstream --date 2026-11-20`` brings the simulated upstream to that date
(a new upstream starts `CRYPTO_GEN_HISTORY_DAYS` before the first window). Applying a day twice changes
nothing; upstream never goes back in time (a backfill reads the current state).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np

from jobs.crypto_events.generate import (
    EPOCH,
    SOURCE_TABLE,
    GeneratorConfig,
    SimRow,
    SimulatorError,
    clean_row,
    config_from_settings,
    day_rows,
    first_day_for,
    reference_price,
    upstream_day,
    upstream_rows,
)
from jobs.crypto_events.source import SOURCE_COLUMNS

log = logging.getLogger("jobs.crypto_events.upstream")


@dataclass
class Advance:
    first_day: date
    applied: list[date] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def _fingerprint(cfg: GeneratorConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def _check_text_columns(conn) -> tuple[bool, bool]:
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = 'bt_crypto_transaction_history'"
        ).fetchall()
    )
    typed = {c: t for c, t in types.items() if c in SOURCE_COLUMNS and t not in ("text", "character varying")}
    if typed or len([c for c in SOURCE_COLUMNS if c in types]) != len(SOURCE_COLUMNS):
        raise SimulatorError(
            f"the simulator writes every value as text (defects included): {SOURCE_TABLE} needs the six text "
            f"columns, it has {types}"
        )
    return "inserted_at" in types, "updated_at" in types


def _insert(conn, rows: list[SimRow]) -> int:
    with conn.cursor().copy(f"COPY {SOURCE_TABLE} ({', '.join(SOURCE_COLUMNS)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(r.values)
    return len(rows)


def _apply_day(
    conn, cfg: GeneratorConfig, e: date, first_day: date, stamp_updates: bool
) -> tuple[int, int, int]:
    """Day e happens upstream: its new rows, and in-place changes to the window's earlier days."""
    inserted = _insert(conn, day_rows(cfg, e, e))
    updates, deletes, restores = [], [], []
    for k in range(1, cfg.window_days):
        d = e - timedelta(days=k)
        if d < first_day:
            break
        old, new = upstream_day(cfg, d, e - timedelta(days=1)), upstream_day(cfg, d, e)
        for i in np.flatnonzero((old.alive != new.alive) | (old.price != new.price)):
            key = clean_row(cfg, old, int(i))[:4]
            if old.alive[i] and not new.alive[i]:
                deletes.append(key)
            elif new.alive[i] and not old.alive[i]:
                restores.append(SimRow(d, clean_row(cfg, new, int(i)), None))
            elif new.alive[i]:
                updates.append((f"{new.price[i]:.6f}", *key))
    where = "site_id = %s AND user_id = %s AND purchase_date = %s AND crypto_type = %s"
    stamp = ", updated_at = now()" if stamp_updates else ""
    with conn.cursor() as cur:
        if updates:
            cur.executemany(f"UPDATE {SOURCE_TABLE} SET purchase_price = %s{stamp} WHERE {where}", updates)
        if deletes:
            cur.executemany(f"DELETE FROM {SOURCE_TABLE} WHERE {where}", deletes)
    inserted += _insert(conn, restores)
    return inserted, len(updates), len(deletes)


def _land_reference_prices(conn, cfg: GeneratorConfig, days: list[date]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO raw.crypto_reference_prices (price_date, crypto_type, reference_price, source) "
            "VALUES (%s, %s, %s, 'simulator') ON CONFLICT (price_date, crypto_type) "
            "DO UPDATE SET reference_price = EXCLUDED.reference_price, source = EXCLUDED.source",
            [
                (day, c, float(p))
                for day in days
                for c, p in zip(cfg.cryptos, reference_price(cfg.seed, day, cfg.cryptos), strict=True)
            ],
        )


def advance(conn, cfg: GeneratorConfig, logical_date: date) -> Advance:
    """Brings the simulated upstream to `logical_date`, in one transaction; idempotent."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(824311003)")  # one upstream at a time
        _, stamp_updates = _check_text_columns(conn)
        state = conn.execute(
            "SELECT config, first_day, applied_through FROM raw.crypto_upstream_simulator WHERE name = %s",
            (SOURCE_TABLE,),
        ).fetchone()
        if state is None:
            first = first_day_for(cfg, logical_date)
            result = Advance(
                first, applied=[first + timedelta(days=k) for k in range((logical_date - first).days + 1)]
            )
            result.inserted = _insert(conn, upstream_rows(cfg, first, logical_date))
        else:
            config, first, through = state
            if config != _fingerprint(cfg):
                raise SimulatorError(
                    f"the simulated upstream in {SOURCE_TABLE} was started with another configuration "
                    f"({config}); empty it first (make reset, or TRUNCATE it and raw.crypto_upstream_simulator)"
                )
            result = Advance(first)
            e = through + timedelta(days=1)
            while e <= logical_date:
                inserted, updated, deleted = _apply_day(conn, cfg, e, first, stamp_updates)
                result.inserted, result.updated, result.deleted = (
                    result.inserted + inserted, result.updated + updated, result.deleted + deleted,
                )  # fmt: skip
                result.applied.append(e)
                e += timedelta(days=1)
        if result.applied:
            _land_reference_prices(conn, cfg, result.applied)
            conn.execute(
                """INSERT INTO raw.crypto_upstream_simulator (name, config, first_day, applied_through)
                   VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE
                   SET applied_through = EXCLUDED.applied_through, updated_at = now()""",
                (SOURCE_TABLE, json.dumps(_fingerprint(cfg)), result.first_day, logical_date),
            )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.crypto_events.upstream", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--date",
        required=True,
        type=date.fromisoformat,
        help="logical date to bring upstream to (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--events-per-day", type=int, help="events per upstream day (default CRYPTO_GEN_EVENTS_PER_DAY)"
    )
    parser.add_argument(
        "--defect-share", type=float, help="share of defective rows (default CRYPTO_GEN_DEFECT_SHARE)"
    )
    parser.add_argument("--seed", type=int, help="generator seed (default CRYPTO_GEN_SEED)")
    args = parser.parse_args(argv)
    if args.defect_share is not None and not 0 <= args.defect_share <= 0.9:
        parser.error("--defect-share must be within [0, 0.9]")
    if args.date < EPOCH + timedelta(days=60):
        parser.error(
            f"the simulated market starts on {EPOCH}: --date must be after {EPOCH + timedelta(days=60)}"
        )
    return args


def bring_upstream_to(args: argparse.Namespace, settings) -> Advance:
    from jobs.common.postgres import connect, open_business_database

    cfg = config_from_settings(
        settings.crypto, seed=args.seed, events_per_day=args.events_per_day, defect_share=args.defect_share
    )
    pg, _ = open_business_database(settings.postgres)
    with connect(pg) as conn:
        result = advance(conn, cfg, args.date)
    if result.applied:
        log.info(
            "upstream brought to %s (days %s..%s applied): %d rows inserted, %d edited in place, %d deleted",
            args.date, result.applied[0], result.applied[-1], result.inserted, result.updated, result.deleted,
        )  # fmt: skip
    else:
        log.info(
            "upstream is already at or after %s: nothing to apply (a backfill reads the current state)",
            args.date,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    from jobs.common.cli import run_cli

    return run_cli(argv, parse_args, bring_upstream_to, lambda _: None, bad_input=(SimulatorError,))


if __name__ == "__main__":
    sys.exit(main())
