"""Churn ingest on the real PostgreSQL + Spark + GX: bad files, bad rows, duplicates, gate, retries."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest

from jobs.churn.generate import ChurnGenConfig, generate, write
from jobs.churn.ingest import BadSourceFile, main, parse_args, run

pytestmark = pytest.mark.integration

AS_OF = date(2025, 3, 1)  # earlier than the workflow tests' snapshot: never picked up by them


@pytest.fixture
def churn_db(pg):
    from jobs.common.postgres import connect

    with connect(pg) as conn:
        yield conn


@pytest.fixture
def source_dir(tmp_path) -> Path:
    tables, truth, oracle = generate(ChurnGenConfig(customers=200, snapshot=AS_OF, seed=3))
    write(tmp_path, tables, truth, oracle)
    return tmp_path


def _rewrite(path: Path, edit) -> None:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    rows = edit(rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def _ingest(settings, folder: Path, *only: str):
    args = parse_args(["--source-dir", str(folder), "--as-of", AS_OF.isoformat(), "--master", "local[2]",
                       "--only", ",".join(only)])  # fmt: skip
    return run(args, settings)


def test_bad_rows_are_quarantined_with_their_codes_and_nothing_is_lost(settings, spark, churn_db, source_dir):
    path = source_dir / "DEMOGRAFICOS.csv"

    def edit(rows):
        header, body = rows[0], rows[1:]
        body[0][1] = "abc"  # AGE not a number
        body[1][1] = "300"  # AGE out of range
        body[2][0] = ""  # customer missing
        body[3][0] = "-5"  # customer not positive
        body[4] = [*body[4], "extra"]  # malformed: one field too many
        body[5][4] = "'; DROP TABLE raw.churn_demograficos; --"  # hostile but valid text
        body.append(list(body[6]))  # exact duplicate: collapses
        conflict = list(body[7])
        conflict[2] = "X"
        body.append(conflict)  # conflicting duplicate: both copies rejected
        return [header, *body]

    _rewrite(path, edit)
    (outcome,) = _ingest(settings, source_dir, "DEMOGRAFICOS")
    assert outcome.status == "loaded"
    assert outcome.counts == {"read": 202, "rejected": 7, "duplicates": 1, "valid": 194}
    rejects = churn_db.execute(
        "SELECT rule_codes, reason, raw_values FROM dqm.churn_rejects WHERE batch_id = %s ORDER BY source_row",
        (outcome.batch_id,),
    ).fetchall()
    codes = sorted(c for row in rejects for c in row[0])
    assert codes == sorted(["AGE_INVALID", "AGE_OUT_OF_RANGE", "CUS_CUST_ID_BUY_MISSING", "CUS_CUST_ID_BUY_OUT_OF_RANGE",
                            "MALFORMED_ROW", "DUPLICATE_CONFLICT", "DUPLICATE_CONFLICT"])  # fmt: skip
    by_code = {row[0][0]: row for row in rejects}
    assert by_code["AGE_INVALID"][2]["AGE"] == "abc" and "AGE (DEMOGRAFICOS)" in by_code["AGE_INVALID"][1]
    loaded = churn_db.execute(
        "SELECT count(*), count(*) FILTER (WHERE city LIKE '%%DROP TABLE%%') FROM raw.churn_demograficos "
        "WHERE batch_id = %s",
        (outcome.batch_id,),
    ).fetchone()
    assert loaded == (194, 1)
    batch = churn_db.execute(
        "SELECT status, rows_read, rows_valid, rows_rejected, duplicates_collapsed, rejects_by_rule "
        "FROM dqm.churn_batches WHERE batch_id = %s",
        (outcome.batch_id,),
    ).fetchone()
    assert batch[:5] == ("loaded", 202, 194, 7, 1) and batch[5]["DUPLICATE_CONFLICT"] == 2


def test_retry_of_the_same_file_replaces_instead_of_duplicating(settings, spark, churn_db, source_dir):
    first = _ingest(settings, source_dir, "MARKETPLACE_DATA")[0]
    second = _ingest(settings, source_dir, "MARKETPLACE_DATA")[0]
    assert first.batch_id == second.batch_id
    n = churn_db.execute(
        "SELECT count(*) FROM raw.churn_marketplace_data WHERE batch_id = %s", (first.batch_id,)
    ).fetchone()[0]
    assert n == 200


def test_payment_values_are_checked_against_types_ranges_and_the_as_of_date(
    settings, spark, churn_db, source_dir
):
    def edit(rows):
        header, body = rows[0], rows[1:]
        body[0][3] = "NaN"  # SPENT
        body[1][3] = "-4.5"  # negative
        body[2][0] = "2025-02-30"  # impossible date
        body[3][0] = "2030-01-01"  # after the horizon
        body[4][5] = "1e3"  # DESCUENTO with an exponent: not a plain decimal
        body[5][3] = "99999999999999"  # overflows NUMERIC(14, 2)
        return [header, *body]

    _rewrite(source_dir / "PAYMENTS.csv", edit)
    (outcome,) = _ingest(settings, source_dir, "PAYMENTS")
    assert outcome.rejects_by_rule == {
        "SPENT_INVALID": 1, "SPENT_OUT_OF_RANGE": 2, "FECHA_INVALID": 1, "FECHA_OUT_OF_RANGE": 1,
        "DESCUENTO_INVALID": 1,
    }  # fmt: skip
    assert outcome.counts["rejected"] == 6


def test_gate_blocks_a_batch_with_too_many_rejects_and_loads_nothing(settings, spark, churn_db, source_dir):
    _rewrite(
        source_dir / "DINERO_CUENTA.csv", lambda rows: [rows[0]] + [[r[0], "n/a", *r[2:]] for r in rows[1:]]
    )
    (outcome,) = _ingest(settings, source_dir, "DINERO_CUENTA")
    assert outcome.status == "blocked" and "reject_share" in outcome.message
    loaded = churn_db.execute(
        "SELECT count(*) FROM raw.churn_dinero_cuenta WHERE batch_id = %s", (outcome.batch_id,)
    ).fetchone()[0]
    kept = churn_db.execute(
        "SELECT count(*) FROM dqm.churn_rejects WHERE batch_id = %s", (outcome.batch_id,)
    ).fetchone()[0]
    gate = churn_db.execute(
        "SELECT gate FROM dqm.churn_batches WHERE batch_id = %s", (outcome.batch_id,)
    ).fetchone()[0]
    assert loaded == 0 and kept == 200 and "reject_share" in json.dumps(gate["blocking_failures"])


def test_bad_files_fail_fast_with_a_clear_message(settings, source_dir):
    _rewrite(source_dir / "ACTIVE_USER.csv", lambda rows: [[c for c in r[:-1]] for r in rows])
    with pytest.raises(BadSourceFile, match=r"misses columns \['last_login_mp_date_1'\]"):
        _ingest(settings, source_dir, "ACTIVE_USER")
    (source_dir / "DEMOGRAFICOS.csv").write_text("")
    with pytest.raises(BadSourceFile, match="is empty"):
        _ingest(settings, source_dir, "DEMOGRAFICOS")
    assert main(["--source-dir", str(source_dir / "nope"), "--as-of", "2025-03-01"]) == 2


def test_cli_rejects_unknown_files_and_bad_dates(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--as-of", "2025-03-01", "--only", "PAYMENTS,CLIENTES"])
    assert exc.value.code == 2 and "CLIENTES" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--as-of", "2025-13-01"])
