"""Helpers for the crypto integration tests: play upstream on its table, run the job in-process, read prod."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from jobs.crypto_events.__main__ import Options, run
from jobs.crypto_events.generate import GeneratorConfig, config_from_settings
from jobs.crypto_events.upstream import advance

SOURCE = "raw.bt_crypto_transaction_history"
SIX = ("site_id", "user_id", "purchase_date", "crypto_type", "purchase_price", "purchase_units")
PROD_CHECKSUM = """SELECT coalesce(md5(string_agg(p::text, '|' ORDER BY site_id, user_id, purchase_date, crypto_type)), '')
                   FROM prod.bt_crypto_events p"""
# prod's business content, without the run ids and timestamps that differ between two equal runs
PROD_CONTENT = """SELECT coalesce(md5(string_agg(concat_ws(',', site_id, user_id, purchase_date, crypto_type,
                      purchase_price, purchase_units, purchase_value, is_active), '|'
                      ORDER BY site_id, user_id, purchase_date, crypto_type)), '') FROM prod.bt_crypto_events"""


def run_job(settings, d: date | None, **kw):
    return run(
        Options(d, kw.get("window_days"), "local[2]", kw.get("stage", "all"), "test", kw.get("reproduce")),
        settings,
    )


def prod_checksum(conn) -> str:
    return conn.execute(PROD_CHECKSUM).fetchone()[0]


def prod_content(conn) -> str:
    return conn.execute(PROD_CONTENT).fetchone()[0]


def prod_rows(conn) -> dict[tuple, dict]:
    cur = conn.execute("SELECT * FROM prod.bt_crypto_events")
    names = [d.name for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return {(r["site_id"], r["user_id"], r["purchase_date"], r["crypto_type"]): r for r in rows}


def insert_rows(conn, rows, table: str = SOURCE) -> None:
    """Upstream adds rows: the six values of each, as given (text or typed columns alike)."""
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} ({', '.join(SIX)}) VALUES (%s, %s, %s, %s, %s, %s)", rows)


def reference_prices(conn, start: date, end: date, prices=(("BTC", 60000.0), ("ETH", 3000.0))) -> None:
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO raw.crypto_reference_prices (price_date, crypto_type, reference_price, source) "
            "VALUES (%s, %s, %s, 'test') ON CONFLICT (price_date, crypto_type) "
            "DO UPDATE SET reference_price = EXCLUDED.reference_price",
            [(day, c, p) for day in days for c, p in prices],
        )


def simulate(conn, settings, d: date, **overrides) -> GeneratorConfig:
    """Brings the simulated upstream to `d`; returns its configuration (for `expected_run`)."""
    cfg = config_from_settings(settings.crypto, **overrides)
    advance(conn, cfg, d)
    return cfg


def database_of_an_older_version(pg, tmp_path: Path, name: str, frozen: dict[str, str]):
    """A scratch database built by an older init DDL: the current roles, schemas and grants, and for each
    `frozen` entry (init file name -> file under tests/integration/sql/) that version's DDL. Returns its
    settings; apply the current DDL to it to test the upgrade."""
    import shutil

    from psycopg import sql

    from jobs.common.postgres import INIT_DDL_DIR, apply_init_ddl, connect

    scratch = pg.model_copy(update={"db": f"{pg.db}_{name}"})
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch.db)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch.db)))
    old = tmp_path / f"{name}_ddl"
    old.mkdir()
    for init in ("00_roles.sql", "01_schemas.sql", "90_grants.sql"):
        shutil.copy(INIT_DDL_DIR / init, old / init)
    for init, fixture in frozen.items():
        shutil.copy(Path(__file__).parent / "sql" / fixture, old / init)
    apply_init_ddl(scratch, old)
    return scratch
