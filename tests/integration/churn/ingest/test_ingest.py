"""Churn ingest on the real PostgreSQL + Spark + GX: files shaped like the task statement, bad files, bad
rows, duplicates, the gate and its warnings, retries, build_features after blocked batches, and the
upgrade of a database created by the previous DDL."""

from __future__ import annotations

import codecs
import csv
import json
import math
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.churn.contract.files import BadSourceFile
from jobs.churn.ingest.__main__ import main, parse_args, run
from jobs.churn.simulate.generate import ChurnGenConfig, generate
from jobs.churn.simulate.io import write

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
        body[3][0] = "AB\x07C"  # customer id with a control character
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
    assert codes == sorted(["AGE_INVALID", "AGE_OUT_OF_RANGE", "CUS_CUST_ID_BUY_MISSING", "CUS_CUST_ID_BUY_INVALID",
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


def test_a_utf8_byte_order_mark_is_dropped_and_every_row_loads(settings, spark, churn_db, source_dir):
    path = source_dir / "DEMOGRAFICOS.csv"
    with path.open(newline="") as handle:
        first_customer = list(csv.reader(handle))[1][0]
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    (outcome,) = _ingest(settings, source_dir, "DEMOGRAFICOS")
    assert outcome.status == "loaded"
    assert outcome.counts == {"read": 200, "rejected": 0, "duplicates": 0, "valid": 200}
    (loaded,) = churn_db.execute(
        "SELECT cus_cust_id_buy FROM raw.churn_demograficos WHERE batch_id = %s ORDER BY source_row LIMIT 1",
        (outcome.batch_id,),
    ).fetchone()
    assert loaded == first_customer


def test_a_utf16_file_and_a_file_above_the_size_cap_are_bad_input_that_says_why(
    monkeypatch, caplog, source_dir
):
    path = source_dir / "ACTIVE_USER.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + path.read_text().encode("utf-16-le"))
    assert main(["--source-dir", str(source_dir), "--as-of", AS_OF.isoformat(), "--only", "ACTIVE_USER"]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line == (
        f"bad input: ACTIVE_USER: {path} is not UTF-8 (looks like UTF-16 LE, byte order mark FF FE): "
        "save it as UTF-8"
    )
    monkeypatch.setenv("CHURN_MAX_FILE_MB", "1")
    big = source_dir / "PAYMENTS.csv"
    with big.open("ab") as handle:
        handle.truncate(55 << 20)  # 55 MB (sparse), refused by its size: never opened for reading
    caplog.clear()
    assert main(["--source-dir", str(source_dir), "--as-of", AS_OF.isoformat(), "--only", "PAYMENTS"]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line == (
        f"bad input: PAYMENTS: {big} is 55.0 MB ({55 << 20:,} bytes), more than the limit of 1.0 MB "
        "(CHURN_MAX_FILE_MB): split it or raise the limit"
    )


def test_cli_rejects_unknown_files_and_bad_dates(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--as-of", "2025-03-01", "--only", "PAYMENTS,CLIENTES"])
    assert exc.value.code == 2 and "CLIENTES" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--as-of", "2025-13-01"])


# --- files shaped like the task statement: zero rejects, features by hand -------------------------------

STATEMENT_T = date(2025, 6, 1)  # a date of its own: no other test's batches are the latest as of it
STATEMENT_FILES = {
    # dates in every accepted shape; sellers are text ids; segments outside any fixed list ("Kiosco")
    "PAYMENTS": """FECHA,CUS_CUST_ID_SEL,CUS_CUST_ID_BUY,SPENT,TPV_SEGMENT_DETAIL,DESCUENTO
2025-05-20,SELLER_1,1001,100.00,Instore,0
20/5/2025,SELLER_2,1001,50.50,transfers,5.00
20250310,SELLER_1,1001,20,Transport,0
2025-01-15,SELLER_3,1001,30,Kiosco,0
1/12/2024,SELLER_1,1001, 10 , instore ,0
10/6/2025,SELLER_1,1001,999,Instore,0
2025-04-01,SELLER_9,ABC-7,15,Utilities,0
2025-02-01,SELLER_9,ABC-7,25,top-ups,1
30/11/2024,SELLER_2,ABC-7,40,Instore,0
""",
    # MAU columns are numbers of accesses
    "ACTIVE_USER": """CUS_CUST_ID_BUY,MAU_MP_1,MAU_ML_1,MAU_ML_2,last_login_mp_date_1
1001,25,3,0,2025-05-30
ABC-7,0,12,7,15/5/2025
C 3,,,,
""",
    "DEMOGRAFICOS": """CUS_CUST_ID_BUY,AGE,GENDER,CARD_TYPE,CITY
1001,34,F,credit,Buenos Aires
ABC-7,61,M,debit,Mar del Plata
C 3,,,,
""",
    # INVERSION is a state, any case, Eligible accepted for the statement's Elegible
    "DINERO_CUENTA": """CUS_CUST_ID_BUY,PLATA_CUENTA_1,PLATA_CUENTA_2,INVERSION
1001,1500.50,1200.00,Investing
ABC-7,10.00,250.00,Eligible
C 3,0,0,warmup
""",
    # RECENCY_ML is the date of the last purchase (empty: none)
    "MARKETPLACE_DATA": """CUS_CUST_ID_BUY,SPENT_ML,RECENCY_ML,FREQUENCY_ML
1001,350.75,2025-05-10,4
ABC-7,0,,0
C 3,12.5,1/4/2025,1
""",
}
NAN = float("nan")
# every column of the feature table at T = 2025-06-01, worked out by hand from the files above
EXPECTED_FEATURES = {
    "1001": {
        # in [2024-12-01, T): 05-20 (k=-1) twice, 03-10 (k=-3), 01-15 (k=-5), 12-01 (k=-6); 06-10 is the label's
        "pay_count_6m": 5.0, "pay_sum_6m": 210.5, "pay_count_3m": 3.0, "pay_sum_3m": 170.5,
        "pay_count_1m": 2.0, "pay_sum_1m": 150.5, "pay_avg_amount_6m": 210.5 / 5, "pay_max_amount_6m": 100.0,
        "days_since_last_payment": 12.0, "active_months_6m": 4.0,
        "pay_count_trend_6m": (2.5 + 2.5 + 0.5 - 1.5 - 2.5) / 17.5, "pay_count_ratio_3m": 3 / (2 + 1),
        "discount_share_6m": 0.2, "discount_sum_6m": 5.0,
        "segment_counts_6m": {"instore": 2, "kiosco": 1, "transfers": 1, "transport": 1},
        "distinct_sellers_6m": 3.0, "mau_mp_1": 25.0, "mau_ml_1": 3.0, "mau_ml_2": 0.0,
        "days_since_last_login": 2.0, "balance_1": 1500.5, "balance_2": 1200.0, "balance_change": 300.5,
        "balance_log_ratio": math.log1p(1500.5) - math.log1p(1200.0), "investment_state": "Investing",
        "spent_ml": 350.75, "recency_ml": 22.0, "frequency_ml": 4.0, "age": 34.0, "gender": "F",
        "card_type": "credit", "city": "Buenos Aires", "churned": 0,
    },
    "ABC-7": {
        # 04-01 (k=-2), 02-01 (k=-4); 2024-11-30 is before the six months
        "pay_count_6m": 2.0, "pay_sum_6m": 40.0, "pay_count_3m": 1.0, "pay_sum_3m": 15.0,
        "pay_count_1m": 0.0, "pay_sum_1m": 0.0, "pay_avg_amount_6m": 20.0, "pay_max_amount_6m": 25.0,
        "days_since_last_payment": 61.0, "active_months_6m": 2.0, "pay_count_trend_6m": (1.5 - 0.5) / 17.5,
        "pay_count_ratio_3m": 1 / (1 + 1), "discount_share_6m": 0.5, "discount_sum_6m": 1.0,
        "segment_counts_6m": {"top-ups": 1, "utilities": 1}, "distinct_sellers_6m": 1.0,
        "mau_mp_1": 0.0, "mau_ml_1": 12.0, "mau_ml_2": 7.0, "days_since_last_login": 17.0,
        "balance_1": 10.0, "balance_2": 250.0, "balance_change": -240.0,
        "balance_log_ratio": math.log1p(10.0) - math.log1p(250.0), "investment_state": "Elegible",
        "spent_ml": 0.0, "recency_ml": NAN, "frequency_ml": 0.0, "age": 61.0, "gender": "M",
        "card_type": "debit", "city": "Mar del Plata", "churned": 1,
    },
    "C 3": {  # known from the snapshot files only: no payment, the counts are 0 and the days 185
        "pay_count_6m": 0.0, "pay_sum_6m": 0.0, "pay_count_3m": 0.0, "pay_sum_3m": 0.0, "pay_count_1m": 0.0,
        "pay_sum_1m": 0.0, "pay_avg_amount_6m": 0.0, "pay_max_amount_6m": 0.0, "days_since_last_payment": 185.0,
        "active_months_6m": 0.0, "pay_count_trend_6m": 0.0, "pay_count_ratio_3m": 0.0, "discount_share_6m": 0.0,
        "discount_sum_6m": 0.0, "segment_counts_6m": {}, "distinct_sellers_6m": 0.0, "mau_mp_1": NAN,
        "mau_ml_1": NAN, "mau_ml_2": NAN, "days_since_last_login": NAN, "balance_1": 0.0, "balance_2": 0.0,
        "balance_change": 0.0, "balance_log_ratio": 0.0, "investment_state": "Warmup", "spent_ml": 12.5,
        "recency_ml": 61.0, "frequency_ml": 1.0, "age": NAN, "gender": None, "card_type": None, "city": None,
        "churned": 1,
    },
}  # fmt: skip


def _ingest_at(settings, folder: Path, as_of: date, *only: str):
    argv = ["--source-dir", str(folder), "--as-of", as_of.isoformat(), "--master", "local[2]"]
    return run(parse_args([*argv, "--only", ",".join(only)] if only else argv), settings)


def _write_files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


def _same(got, expected) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return got is None or (isinstance(got, float) and math.isnan(got))
    return got == expected


def test_files_shaped_like_the_statement_load_with_no_reject_and_give_the_hand_computed_features(
    settings, spark, churn_db, tmp_path, monkeypatch
):
    from jobs.churn.contract.features import FEATURES, ID, LABEL, SNAPSHOT
    from jobs.churn.features import __main__ as build_features
    from jobs.churn.features.io import FeatureTable
    from jobs.common.config import load_settings

    folder = _write_files(tmp_path / "statement", STATEMENT_FILES)
    outcomes = {o.source: o for o in _ingest_at(settings, folder, STATEMENT_T)}
    assert {name: (o.status, o.counts["rejected"], o.counts["valid"]) for name, o in outcomes.items()} == {
        "PAYMENTS": ("loaded", 0, 9), "ACTIVE_USER": ("loaded", 0, 3), "DEMOGRAFICOS": ("loaded", 0, 3),
        "DINERO_CUENTA": ("loaded", 0, 3), "MARKETPLACE_DATA": ("loaded", 0, 3),
    }  # fmt: skip
    # the values are stored with their meaning: text ids, counts, the canonical state, dates
    payments = outcomes["PAYMENTS"].batch_id
    assert churn_db.execute(
        "SELECT DISTINCT cus_cust_id_sel FROM raw.churn_payments WHERE batch_id = %s ORDER BY 1", (payments,)
    ).fetchall() == [("SELLER_1",), ("SELLER_2",), ("SELLER_3",), ("SELLER_9",)]
    assert churn_db.execute(
        "SELECT cus_cust_id_buy, inversion FROM raw.churn_dinero_cuenta WHERE batch_id = %s ORDER BY 1",
        (outcomes["DINERO_CUENTA"].batch_id,),
    ).fetchall() == [("1001", "Investing"), ("ABC-7", "Elegible"), ("C 3", "Warmup")]
    assert churn_db.execute(
        "SELECT cus_cust_id_buy, recency_ml FROM raw.churn_marketplace_data WHERE batch_id = %s ORDER BY 1",
        (outcomes["MARKETPLACE_DATA"].batch_id,),
    ).fetchall() == [("1001", date(2025, 5, 10)), ("ABC-7", None), ("C 3", date(2025, 4, 1))]
    # one payment of nine has a segment outside CHURN_KNOWN_SEGMENTS: a warning, recorded, nothing rejected
    warning = {"rows": 1, "share": 1 / 9, "max_share": 0.05, "passed": False, "top_values": [["Kiosco", 1]]}
    assert outcomes["PAYMENTS"].warnings == {"TPV_SEGMENT_DETAIL_UNKNOWN": warning}
    assert outcomes["PAYMENTS"].message == "gate passed (warnings: TPV_SEGMENT_DETAIL_UNKNOWN)"
    gate, rejects = churn_db.execute(
        "SELECT gate, rejects_by_rule FROM dqm.churn_batches WHERE batch_id = %s", (payments,)
    ).fetchone()
    assert gate["warning_rules"] == {"TPV_SEGMENT_DETAIL_UNKNOWN": warning} and rejects == {}
    check = next(c for c in gate["checks"] if c["check"] == "TPV_SEGMENT_DETAIL_UNKNOWN")
    assert (check["share"], check["critical"], check["success"]) == (pytest.approx(1 / 9), False, False)

    monkeypatch.setenv("CHURN_LAKE_DIR", str(tmp_path / "lake"))
    ref, summary = build_features.run(
        build_features.parse_args(["--snapshot", STATEMENT_T.isoformat(), "--master", "local[2]"]),
        load_settings(),
    )
    assert summary["customers"] == 3 and summary["batches"] == {n: o.batch_id for n, o in outcomes.items()}
    table = FeatureTable(ref).read().to_pylist()
    assert [list(row) for row in table[:1]] == [[ID, SNAPSHOT, *FEATURES, LABEL]]
    got = {row[ID]: row for row in table}
    assert sorted(got) == sorted(EXPECTED_FEATURES)
    for customer, expected in EXPECTED_FEATURES.items():
        row = {**got[customer], "segment_counts_6m": dict(got[customer]["segment_counts_6m"])}
        assert row[SNAPSHOT] == STATEMENT_T
        wrong = {
            c: (row[c], v)
            for c, v in expected.items()
            if not (_same(row[c], v) or (c == "balance_log_ratio" and row[c] == pytest.approx(v, rel=1e-12)))
        }
        assert not wrong, (customer, wrong)


def test_bad_values_of_the_statements_kinds_are_quarantined_with_their_reasons(
    settings, spark, churn_db, source_dir
):
    def active(rows):
        rows[1][1], rows[2][2], rows[3][3] = "-1", "3.5", "10001"  # MAU: negative, not whole, implausible
        return rows

    def money(rows):
        rows[1][3], rows[2][3] = "Maybe", "invested"  # not one of the four states
        return rows

    def market(rows):
        rows[1][2], rows[2][2], rows[3][2] = (
            AS_OF.isoformat(),
            "2/3/2025",
            "2025-13-01",
        )  # on, after T; no date
        return rows

    def payments(rows):
        rows[1][1], rows[2][2] = "SELLER\x071", "x" * 65  # a control character; an id too long
        return rows

    for name, edit in (("ACTIVE_USER", active), ("DINERO_CUENTA", money), ("MARKETPLACE_DATA", market),
                       ("PAYMENTS", payments)):  # fmt: skip
        _rewrite(source_dir / f"{name}.csv", edit)
    outcomes = {o.source: o for o in _ingest(settings, source_dir, "ACTIVE_USER", "DINERO_CUENTA",
                                              "MARKETPLACE_DATA", "PAYMENTS")}  # fmt: skip
    assert {name: o.rejects_by_rule for name, o in outcomes.items()} == {
        "ACTIVE_USER": {"MAU_MP_1_OUT_OF_RANGE": 1, "MAU_ML_1_INVALID": 1, "MAU_ML_2_OUT_OF_RANGE": 1},
        "DINERO_CUENTA": {"INVERSION_INVALID": 2},
        "MARKETPLACE_DATA": {"RECENCY_ML_OUT_OF_RANGE": 2, "RECENCY_ML_INVALID": 1},
        "PAYMENTS": {"CUS_CUST_ID_SEL_INVALID": 1, "CUS_CUST_ID_BUY_INVALID": 1},
    }
    reasons = dict(
        churn_db.execute(
            "SELECT DISTINCT ON (rule_codes[1]) rule_codes[1], reason FROM dqm.churn_rejects "
            "WHERE batch_id = ANY(%s) ORDER BY rule_codes[1]",
            ([o.batch_id for o in outcomes.values()],),
        ).fetchall()
    )
    assert reasons == {
        "CUS_CUST_ID_BUY_INVALID": "CUS_CUST_ID_BUY (PAYMENTS) is not a valid id (1 to 64 characters, no control characters)",
        "CUS_CUST_ID_SEL_INVALID": "CUS_CUST_ID_SEL (PAYMENTS) is not a valid id (1 to 64 characters, no control characters)",
        "INVERSION_INVALID": "INVERSION (DINERO_CUENTA) is not a valid value: one of Investing, Elegible, Warmup, "
        "Pending (any case, or Eligible for Elegible)",
        "MAU_ML_1_INVALID": "MAU_ML_1 (ACTIVE_USER) is not a valid whole number",
        "MAU_ML_2_OUT_OF_RANGE": "MAU_ML_2 (ACTIVE_USER) is out of range (0..10000)",
        "MAU_MP_1_OUT_OF_RANGE": "MAU_MP_1 (ACTIVE_USER) is out of range (0..10000)",
        "RECENCY_ML_INVALID": "RECENCY_ML (MARKETPLACE_DATA) is not a valid date (yyyy-MM-dd or d/M/yyyy or yyyyMMdd)",
        "RECENCY_ML_OUT_OF_RANGE": "RECENCY_ML (MARKETPLACE_DATA) is out of range (on or after 120 months before "
        "the as-of date and before the as-of date)",
    }  # fmt: skip
    raw = churn_db.execute(
        "SELECT raw_values FROM dqm.churn_rejects WHERE batch_id = %s AND 'INVERSION_INVALID' = ANY(rule_codes) "
        "ORDER BY source_row",
        (outcomes["DINERO_CUENTA"].batch_id,),
    ).fetchall()
    assert [r[0]["INVERSION"] for r in raw] == ["Maybe", "invested"]  # kept as received
    assert all(o.status == "loaded" for o in outcomes.values())  # a few bad rows: the rest loads


def test_build_features_after_blocked_or_failed_batches_says_which_why_and_where_the_rejects_are(
    settings, spark, churn_db, source_dir, caplog
):
    from jobs.churn.features import __main__ as build_features

    early = date(2024, 1, 1)  # before every other test's batches: only these count as of it
    (demographics,) = _ingest_at(settings, source_dir, date(2023, 12, 1), "DEMOGRAFICOS")
    _rewrite(
        source_dir / "DEMOGRAFICOS.csv", lambda rows: [rows[0]] + [[r[0], "old", *r[2:]] for r in rows[1:]]
    )
    _rewrite(
        source_dir / "DINERO_CUENTA.csv", lambda rows: [rows[0]] + [[r[0], "n/a", *r[2:]] for r in rows[1:]]
    )
    blocked = {o.source: o for o in _ingest_at(settings, source_dir, early, "DEMOGRAFICOS", "DINERO_CUENTA")}
    assert {n: o.status for n, o in blocked.items()} == {
        "DEMOGRAFICOS": "blocked",
        "DINERO_CUENTA": "blocked",
    }
    failed = "0b6f1c9e-3c1a-4d7e-9a0a-5d1f6e7a8b9c"
    churn_db.execute(
        "INSERT INTO dqm.churn_batches (batch_id, source, as_of, file_path, file_sha256, status, message) "
        "VALUES (%s, 'ACTIVE_USER', %s, 'ACTIVE_USER.csv', 'x', 'failed', 'OSError: disk full') "
        "ON CONFLICT (batch_id) DO NOTHING",
        (failed, early),
    )
    dinero = blocked["DINERO_CUENTA"]
    uri = churn_db.execute(
        "SELECT gx_results_uri FROM dqm.churn_batches WHERE batch_id = %s", (dinero.batch_id,)
    ).fetchone()[0]
    caplog.clear()
    assert build_features.main(["--snapshot", early.isoformat(), "--master", "local[2]"]) == 2
    assert (
        "no loaded batch as of 2024-01-01 for ['PAYMENTS', 'ACTIVE_USER', 'DINERO_CUENTA', 'MARKETPLACE_DATA']: "
        "PAYMENTS was never ingested: run `python -m jobs.churn.ingest --as-of ...` first; "
        f"ACTIVE_USER batch {failed} (as of 2024-01-01) failed (OSError: disk full); its rejects: "
        f"SELECT * FROM dqm.churn_rejects WHERE batch_id = '{failed}'; fix the file and ingest it again; "
        f"DINERO_CUENTA batch {dinero.batch_id} (as of 2024-01-01) was blocked by the gate ({dinero.message}); "
        f"its rejects: SELECT * FROM dqm.churn_rejects WHERE batch_id = '{dinero.batch_id}'; "
        f"GX results: {uri}; fix the file and ingest it again; MARKETPLACE_DATA was never ingested"
    ) in caplog.text
    assert dinero.message.startswith("gate blocked the merge: reject_share: 200 rows (100.00%)")
    assert uri.endswith("/validation_result.json")
    # DEMOGRAFICOS has an older loaded batch: used, but not silently
    newer = blocked["DEMOGRAFICOS"].batch_id
    assert (
        f"DEMOGRAFICOS: using loaded batch {demographics.batch_id} (as of 2023-12-01); the newer batch {newer} "
        "(as of 2024-01-01) is blocked: gate blocked the merge"
    ) in caplog.text
    kept = churn_db.execute(
        "SELECT count(*) FROM dqm.churn_rejects WHERE batch_id = %s", (dinero.batch_id,)
    ).fetchone()
    assert kept == (200,)  # the query the message gives finds the rejects


# --- the init DDL upgrades a database created by the previous version ------------------------------------


def test_init_ddl_upgrades_a_database_of_the_previous_version_in_place(pg, tmp_path):
    from psycopg import sql

    from jobs.common.postgres import apply_init_ddl, connect
    from tests.integration.helpers import database_of_an_older_version

    scratch = database_of_an_older_version(
        pg, tmp_path, "ddl_upgrade", {"20_churn.sql": "20_churn_before_text_ids.sql"}
    )
    batch, scores = "11111111-1111-4111-8111-111111111111", "2025-03-01"
    with connect(scratch) as conn:
        conn.execute(
            "INSERT INTO dqm.churn_batches (batch_id, source, as_of, file_path, file_sha256, status, rows_read, "
            "rows_valid, rows_rejected, duplicates_collapsed) VALUES (%s, 'MARKETPLACE_DATA', '2025-03-01', 'f', "
            "'s', 'loaded', 2, 2, 0, 0)",
            (batch,),
        )
        conn.execute(
            "INSERT INTO raw.churn_payments VALUES (%s, 0, '2025-02-01', 42, 100007, 10.50, 'QR', 0, 'h')",
            (batch,),
        )
        conn.execute(
            "INSERT INTO raw.churn_active_user VALUES (%s, 0, 100007, 1, 0, 1, '2025-02-20', 'h')", (batch,)
        )
        conn.execute(
            "INSERT INTO raw.churn_demograficos VALUES (%s, 0, 100007, 30, 'F', 'debit', 'Salta', 'h')",
            (batch,),
        )
        conn.execute(
            "INSERT INTO raw.churn_dinero_cuenta VALUES (%s, 0, 100007, 5, 4, 1, 'h'), (%s, 1, 100014, 5, 4, 0, 'h')",
            (batch, batch),
        )
        conn.execute(
            "INSERT INTO raw.churn_marketplace_data VALUES (%s, 0, 100007, 9.99, 10, 3, 'h'), "
            "(%s, 1, 100014, NULL, NULL, 0, 'h')",
            (batch, batch),
        )
        conn.execute(
            "INSERT INTO dqm.churn_rejects VALUES (%s, 'MARKETPLACE_DATA', 7, '{RECENCY_ML_INVALID}', 'r', "
            "'{\"RECENCY_ML\": \"x\"}', 'h')",
            (batch,),
        )
        conn.execute(
            "INSERT INTO prod.churn_scores VALUES (100007, %s, 0.25, 'low', 'churn_model', 3, 'production', 4, now())",
            (scores,),
        )

    apply_init_ddl(scratch)  # the new DDL, as every start applies it
    apply_init_ddl(scratch)  # and again: nothing changes the second time

    with connect(scratch) as conn:
        types = dict(
            conn.execute(
                "SELECT table_schema || '.' || table_name || '.' || column_name, data_type "
                "FROM information_schema.columns WHERE (table_schema, column_name) IN (('raw', 'cus_cust_id_sel'), "
                "('raw', 'cus_cust_id_buy'), ('raw', 'mau_mp_1'), ('raw', 'mau_ml_1'), ('raw', 'mau_ml_2'), "
                "('raw', 'inversion'), ('raw', 'recency_ml'), ('prod', 'customer_id'))"
            ).fetchall()
        )
        assert types == {
            "raw.churn_payments.cus_cust_id_sel": "text", "raw.churn_payments.cus_cust_id_buy": "text",
            "raw.churn_active_user.cus_cust_id_buy": "text", "raw.churn_demograficos.cus_cust_id_buy": "text",
            "raw.churn_dinero_cuenta.cus_cust_id_buy": "text", "raw.churn_marketplace_data.cus_cust_id_buy": "text",
            "raw.churn_active_user.mau_mp_1": "integer", "raw.churn_active_user.mau_ml_1": "integer",
            "raw.churn_active_user.mau_ml_2": "integer", "raw.churn_dinero_cuenta.inversion": "text",
            "raw.churn_marketplace_data.recency_ml": "date", "prod.churn_scores.customer_id": "text",
        }  # fmt: skip

        def rows(query: str) -> list[tuple]:
            return conn.execute(query).fetchall()

        assert rows("SELECT cus_cust_id_sel, cus_cust_id_buy, spent FROM raw.churn_payments") == [
            ("42", "100007", Decimal("10.50"))
        ]
        assert rows("SELECT cus_cust_id_buy, mau_mp_1, mau_ml_1, mau_ml_2 FROM raw.churn_active_user") == [
            ("100007", 1, 0, 1)
        ]
        assert rows("SELECT cus_cust_id_buy, age FROM raw.churn_demograficos") == [("100007", 30)]
        # old 0/1 kept as text: no investment state is invented for them
        assert rows("SELECT cus_cust_id_buy, inversion FROM raw.churn_dinero_cuenta ORDER BY 1") == [
            ("100007", "1"), ("100014", "0")
        ]  # fmt: skip
        # RECENCY_ML was days before the batch's as_of: the date of that purchase now
        assert rows(
            "SELECT cus_cust_id_buy, spent_ml, recency_ml, frequency_ml FROM raw.churn_marketplace_data ORDER BY 1"
        ) == [("100007", Decimal("9.99"), date(2025, 2, 19), 3), ("100014", None, None, 0)]
        assert rows("SELECT source, status, rows_read FROM dqm.churn_batches") == [
            ("MARKETPLACE_DATA", "loaded", 2)
        ]
        assert rows("SELECT source_row, rule_codes, raw_values FROM dqm.churn_rejects") == [
            (7, ["RECENCY_ML_INVALID"], {"RECENCY_ML": "x"})
        ]
        assert rows(
            "SELECT customer_id, snapshot_date, probability, model_version FROM prod.churn_scores"
        ) == [("100007", date(2025, 3, 1), 0.25, 3)]
        # and the upgraded tables take the new kinds of values
        conn.execute(
            "INSERT INTO raw.churn_payments VALUES (%s, 1, '2025-02-02', 'SELLER_1', 'ABC-7', 1, 'Instore', 0, 'h')",
            (batch,),
        )
        conn.execute(
            "INSERT INTO raw.churn_dinero_cuenta VALUES (%s, 2, 'ABC-7', 1, 1, 'Elegible', 'h')", (batch,)
        )
    with connect(pg, dbname="postgres", role="admin") as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch.db)))


def test_a_wrong_date_format_setting_is_one_line_and_exit_2(monkeypatch, caplog, source_dir):
    monkeypatch.setenv("CHURN_DATE_FORMATS", "d/M/yyyy,M/d/yyyy")
    assert main(["--source-dir", str(source_dir), "--as-of", AS_OF.isoformat()]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert line.startswith(
        "configuration error: CHURN_DATE_FORMATS: date formats 'd/M/yyyy' and 'M/d/yyyy' contradict"
    )
    monkeypatch.setenv("CHURN_DATE_FORMATS", "dd-MMM-yyyy")
    caplog.clear()
    assert main(["--source-dir", str(source_dir), "--as-of", AS_OF.isoformat()]) == 2
    assert "CHURN_DATE_FORMATS: unsupported date format 'dd-MMM-yyyy'" in caplog.text
