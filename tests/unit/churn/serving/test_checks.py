"""The app's input checks (typed form values and uploaded CSV files), without a model."""

from __future__ import annotations

import pandas as pd
import pytest

from jobs.churn.contract.features import CATEGORICAL, DOMAINS, NUMERIC
from jobs.churn.serving.checks import (
    BatchFileError,
    batch_results,
    check_category,
    check_number,
    check_record,
    read_batch_csv,
)

NUM = ("pay_count_6m", "share_seg_instore_6m", "age", "balance_1")
CAT = ("gender", "city")


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


HEADER = "customer_id,pay_count_6m,share_seg_instore_6m,age,balance_1,gender,city"


def test_every_model_feature_has_a_domain():
    assert set(NUMERIC) <= set(DOMAINS)
    assert not set(CATEGORICAL) & set(DOMAINS)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("pay_count_6m", 3, 3.0),
        ("pay_count_6m", " 12 ", 12.0),
        ("pay_count_6m", "1e3", 1000.0),
        ("share_seg_instore_6m", 0.25, 0.25),
        ("age", None, None),  # nullable: the model imputes it
        ("age", "", None),
        ("balance_1", "-1500.5", -1500.5),
        ("mau_mp_1", 37, 37.0),  # a count of accesses, not a flag
        ("share_seg_any_segment_6m", "0.3", 0.3),  # a share column of any model's vocabulary
        ("recency_ml", 12, 12.0),
    ],
)
def test_accepted_numbers(column, value, expected):
    assert check_number(column, value) == (expected, None)


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("pay_count_6m", None, "pay_count_6m is required"),
        ("pay_count_6m", "  ", "is required"),
        ("pay_count_6m", -1, "must be a whole number >= 0, got -1"),
        ("pay_count_6m", 2.5, "must be a whole number, got 2.5"),
        ("pay_count_6m", "12abc", "got '12abc'"),
        ("pay_count_6m", "1_000", "got '1_000'"),
        ("pay_count_6m", "1e400", "too large"),
        ("pay_count_6m", float("inf"), "too large"),
        ("pay_count_6m", "nan", "got 'nan'"),
        ("pay_count_6m", True, "got True"),
        ("share_seg_instore_6m", 1.5, "from 0 to 1, got 1.5"),
        ("age", 7, "from 14 to 120, got 7"),  # the DEMOGRAFICOS contract's range
        ("age", "'; DROP TABLE prod.churn_scores; --", "must be a whole number"),
        ("balance_1", 1e13, "got 1e+13"),
        ("mau_mp_1", 2.5, "must be a whole number, got 2.5"),
        ("mau_ml_2", 10_001, "from 0 to 10000, got 10001"),  # the ACTIVE_USER contract's bound
        ("share_seg_other_6m", -0.1, "from 0 to 1, got -0.1"),
        ("recency_ml", 0, "a whole number >= 1, got 0"),  # a purchase on T is not before T
    ],
)
def test_refused_numbers_say_why(column, value, fragment):
    number, error = check_number(column, value)
    assert number is None and error is not None and fragment in error


def test_categories_blank_is_missing_hostile_text_is_checked():
    assert check_category("city", "  ") == (None, None)
    assert check_category("city", 'O\'Higgins "norte"') == ('O\'Higgins "norte"', None)
    assert check_category("city", "Robert'); DROP TABLE x;--") == ("Robert'); DROP TABLE x;--", None)
    assert "control characters" in check_category("city", "bad\x00city")[1]
    assert "longer than 200" in check_category("city", "x" * 201)[1]
    # what only JSON can send (the REST API): a number is a label, a boolean or a container is not
    assert check_category("city", 5) == ("5", None)
    assert [check_category("city", v)[1] for v in (True, [1], {"a": 1})] == [
        "city must be text, got True",
        "city must be text, got [1]",
        "city must be text, got {'a': 1}",
    ]


def test_check_record_collects_every_error():
    record, errors = check_record(
        {"pay_count_6m": "x", "share_seg_instore_6m": 2, "gender": "F\x07"}, NUM, CAT
    )
    assert set(errors) == {"pay_count_6m", "share_seg_instore_6m", "gender"}
    assert record["age"] is None and record["city"] is None


def test_batch_every_line_is_scored_or_rejected_with_its_reason():
    data = csv(
        HEADER,
        "1,3,0.5,30,100.0,F,Rosario",
        "2,-1,0.5,30,100.0,F,Rosario",  # negative count
        "3,2,1.5,,100.0,,",  # share > 1; blanks are missing values
        "",  # a blank line is not a customer
        "1,2,0.1,40,5,M,Salta",  # duplicate id
        "x\x014,2,0.1,40,5,M,Salta",  # an id with a control character
        "5,2,0.1",  # ragged
        '6,4,0.2,50,7,"M","Robert\'); DROP TABLE prod.churn_scores;--"',
        "7,1,0.2,1e400,7,M,Salta",  # oversized
    )
    batch = read_batch_csv(data, NUM, CAT, {"gender": ["F", "M"], "city": ["Rosario", "Salta"]})
    assert batch.lines == 8
    assert list(batch.rows["line"]) == [2, 9]  # line numbers count the blank line
    assert batch.rejected_lines == [3, 4, 6, 7, 8, 10]
    assert len(batch.rows) + len(batch.rejected_lines) == batch.lines
    by_line = {e.line: e for e in batch.errors}
    assert "must be a whole number >= 0" in by_line[3].message
    assert by_line[4].column == "share_seg_instore_6m"
    assert "duplicate customer_id (first on line 2)" in by_line[6].message
    assert (
        by_line[7].column == "customer_id" and by_line[7].message == "customer_id contains control characters"
    )
    assert "3 fields, the header has 7" in by_line[8].message
    assert "too large" in by_line[10].message
    assert batch.unseen == {"city": ["Robert'); DROP TABLE prod.churn_scores;--"]}
    assert batch.rows["pay_count_6m"].dtype == "float64"


def test_batch_customer_ids_are_text_kept_as_written():
    data = csv(
        HEADER,
        "000123,1,0.5,30,100.0,F,A",  # leading zeros are part of the id
        " SELLER_1 ,1,0.5,30,100.0,F,A",  # any text; surrounding spaces are not
        "123,1,0.5,30,100.0,F,A",  # not the same customer as 000123
        f"{'x' * 65},1,0.5,30,100.0,F,A",
        ",1,0.5,30,100.0,F,A",
    )
    batch = read_batch_csv(data, NUM, CAT)
    assert batch.rows["customer_id"].tolist() == ["000123", "SELLER_1", "123"]
    assert [(e.line, e.message) for e in batch.errors] == [
        (5, "customer_id is longer than 64 characters"),
        (6, "customer_id is empty"),
    ]
    scored = batch.rows.assign(probability=[0.1, 0.2, 0.3], risk_band=["low"] * 3)
    assert batch_results(batch, scored)["customer_id"].tolist()[:3] == ["000123", "SELLER_1", "123"]


def test_batch_results_keep_every_line_in_file_order():
    batch = read_batch_csv(csv(HEADER, "1,3,0.5,30,100.0,F,A", "2,x,0.5,30,1,F,A", "3,1,0,,,,"), NUM, CAT)
    scored = batch.rows.assign(probability=[0.2, 0.7], risk_band=["low", "high"])
    out = batch_results(batch, scored)
    assert list(out["line"]) == [2, 3, 4]
    assert list(out["status"]) == ["scored", "rejected", "scored"]
    assert "pay_count_6m must be" in out.loc[1, "problems"]
    assert pd.isna(out.loc[1, "probability"]) and out.loc[2, "risk_band"] == "high"


def test_batch_without_id_column_and_with_extra_columns():
    batch = read_batch_csv(
        csv("pay_count_6m,share_seg_instore_6m,age,balance_1,gender,city,note", "1,0,20,0,F,A,hi"), NUM, CAT
    )
    assert list(batch.rows.columns[:2]) == ["line", "pay_count_6m"]
    assert batch.ignored_columns == ["note"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "the file is empty"),
        (csv(HEADER), "header but no customer rows"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"a,b\x00,c\n1,2,3\n", "NUL bytes"),
        (
            csv("customer_id,pay_count_6m"),
            "lacks 5 of the model's 6 input columns: share_seg_instore_6m, age",
        ),
        (csv("pay_count_6m;share_seg_instore_6m;age;balance_1;gender;city"), "looks ';'-separated"),
        (csv(HEADER + ",age", "1,1,0,20,0,F,A,20"), "repeated column names in the header: ['age']"),
    ],
)
def test_unusable_files_are_refused_as_a_whole(data, fragment):
    with pytest.raises(BatchFileError, match=None) as err:
        read_batch_csv(data, NUM, CAT)
    assert fragment in str(err.value)


def test_too_many_rows_point_to_the_batch_job():
    data = csv(HEADER, *[f"{i},1,0,20,0,F,A" for i in range(11)])
    with pytest.raises(BatchFileError, match=r"more than 10 customers: .*jobs\.churn\.deployment"):
        read_batch_csv(data, NUM, CAT, max_rows=10)


def test_a_byte_order_mark_is_not_part_of_the_first_column():
    batch = read_batch_csv(b"\xef\xbb\xbf" + csv(HEADER, "1,3,0.5,30,100.0,F,A"), NUM, CAT)
    assert list(batch.rows["customer_id"]) == ["1"]
