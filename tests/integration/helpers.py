"""Helpers for the crypto integration tests: land extracts, run the job in-process, read prod."""

from __future__ import annotations

from datetime import date, timedelta

from jobs.crypto_events.__main__ import Options, run
from jobs.crypto_events.generate import Extract, land_extract

PROD_CHECKSUM = """SELECT coalesce(md5(string_agg(p::text, '|' ORDER BY site_id, user_id, purchase_date, crypto_type)), '')
                   FROM prod.bt_crypto_events p"""


def run_job(settings, d: date, **kw):
    return run(Options(d, kw.get("window_days"), "local[2]", kw.get("stage", "all"), "test"), settings)


def prod_checksum(conn) -> str:
    return conn.execute(PROD_CHECKSUM).fetchone()[0]


def prod_rows(conn) -> dict[tuple, dict]:
    cur = conn.execute("SELECT * FROM prod.bt_crypto_events")
    names = [d.name for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return {(r["site_id"], r["user_id"], r["purchase_date"], r["crypto_type"]): r for r in rows}


def land_rows(conn, d: date, rows, window_days: int = 5, price: float = 60000.0) -> None:
    refs = [
        (d - timedelta(days=k), c, p)
        for k in range(window_days)
        for c, p in (("BTC", price), ("ETH", 3000.0))
    ]
    land_extract(conn, Extract(d, [tuple(r) for r in rows], refs), source="test")
