"""The jobs on a real Spark standalone cluster of TWO workers (one core each), submitted in client mode: the
executors of other JVMs read the data and write it into PostgreSQL, the driver only plans and commits. The
results are exactly those of `local[2]`, and a partition that fails once AFTER its rows were committed (the
test hook of jobs/common/stage.py) is retried by Spark without leaving a duplicate row."""

from __future__ import annotations

import subprocess
from datetime import date

import pytest

from infrastructure.standalone import standalone_cluster
from jobs.common.config import PROJECT_ROOT
from jobs.common.spark import submit_command
from tests.integration.helpers import prod_content, simulate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = date(2026, 11, 20)
T = date(2026, 9, 1)
CRYPTO_RUN_TABLES = ("prod.bt_crypto_events", "dqm.dq_runs", "dqm.bt_crypto_events_rejects",
                     "staging.bt_crypto_events_candidate", "raw.bt_crypto_landing")  # fmt: skip
QUARANTINE = """SELECT count(*), coalesce(md5(string_agg(concat_ws(',', landing_row, rule_codes, reason, row_hash), '|'
                ORDER BY row_hash, landing_row)), '') FROM dqm.bt_crypto_events_rejects"""
RAW_PAYMENTS = """SELECT count(*), count(DISTINCT source_row), coalesce(md5(string_agg(concat_ws(',', fecha,
                  cus_cust_id_sel, cus_cust_id_buy, spent, tpv_segment_detail, descuento, row_hash), '|'
                  ORDER BY row_hash, source_row)), '') FROM raw.churn_payments"""
STAGES = ("staging.bt_crypto_events_rejects", "staging.churn_payments", "staging.churn_rejects")


@pytest.fixture(scope="module")
def cluster():
    with standalone_cluster(workers=2, cores=1, memory="2g") as running:
        yield running


def _submit(
    settings, pg, script: str, args: list[str], master: str, **env: str
) -> subprocess.CompletedProcess:
    argv, child_env = submit_command(PROJECT_ROOT / script, args, settings.spark, master=master)
    child_env.update(POSTGRES_HOST=pg.host, POSTGRES_PORT=str(pg.port), SPARK_EXECUTOR_MEMORY="1g", **env)
    proc = subprocess.run(argv, env=child_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _crypto_state(db) -> tuple:
    (valid,) = db.execute("SELECT rows_valid FROM dqm.dq_runs WHERE status = 'merged'").fetchone()
    return prod_content(db), db.execute(QUARANTINE).fetchone(), valid


def test_the_crypto_job_on_two_workers_equals_local_and_a_retried_partition_leaves_no_duplicate(
    db, admin_db, pg, settings, cluster
):
    simulate(db, settings, D, events_per_day=4000, defect_share=0.05, history_days=0)
    _submit(settings, pg, "jobs/crypto_events/__main__.py", ["--date", D.isoformat()], "local[2]")
    local = _crypto_state(db)
    admin_db.execute(f"TRUNCATE {', '.join(CRYPTO_RUN_TABLES)}")

    fault = "staging.bt_crypto_events_candidate:0,staging.bt_crypto_events_rejects:0"
    proc = _submit(settings, pg, "jobs/crypto_events/__main__.py", ["--date", D.isoformat()], cluster.url,
                   KPI_FAULT_COPY_ONCE=fault)  # fmt: skip
    assert "status=merged" in proc.stdout
    assert proc.stderr.count("InjectedFault") >= 2  # both partitions failed once, after their commit
    assert _crypto_state(db) == local and local[1][0] > 0 and local[2] > 10_000
    # one copy of every candidate (the merge refuses otherwise) and nothing left in the quarantine's stage
    (staged,) = db.execute("SELECT count(*) FROM staging.bt_crypto_events_candidate").fetchone()
    assert staged == local[2]
    apps = cluster.state()["completedapps"]
    assert any(a["name"].startswith(f"crypto_events {D}") for a in apps), apps


def test_churn_ingest_on_two_workers_equals_local_and_a_retried_partition_leaves_no_duplicate(
    db, admin_db, pg, settings, cluster, tmp_path
):
    from jobs.churn.simulate.generate import ChurnGenConfig, generate
    from jobs.churn.simulate.io import write

    tables, truth, oracle = generate(ChurnGenConfig(customers=1200, snapshot=T, seed=21))
    write(tmp_path / "source", tables, truth, oracle)
    args = ["--source-dir", str(tmp_path / "source"), "--as-of", T.isoformat()]
    states = {}
    for master, fault in (("local[2]", ""), (cluster.url, "staging.churn_payments:0")):
        admin_db.execute("DELETE FROM dqm.churn_batches WHERE as_of = %s", (T,))
        admin_db.execute("TRUNCATE raw.churn_payments, dqm.churn_rejects")
        proc = _submit(settings, pg, "jobs/churn/ingest/__main__.py", args, master, KPI_FAULT_COPY_ONCE=fault)
        assert ("InjectedFault" in proc.stderr) == bool(fault)
        loaded = db.execute(
            "SELECT source, rows_valid FROM dqm.churn_batches WHERE as_of = %s AND status = 'loaded' ORDER BY 1",
            (T,),
        ).fetchall()
        states[master] = (db.execute(RAW_PAYMENTS).fetchone(), loaded)
    (local_payments, local_loaded), (cluster_payments, cluster_loaded) = states.values()
    assert cluster_payments == local_payments and cluster_loaded == local_loaded and len(local_loaded) == 5
    count, distinct, _ = local_payments
    assert count == distinct == oracle["payments"]  # every payment once, none twice
    for stage in STAGES:
        assert db.execute(f"SELECT count(*) FROM {stage}").fetchone() == (0,), stage
