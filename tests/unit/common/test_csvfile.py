"""The first checks of a CSV file, the same for the app's batch upload (`read_batch_csv`) and the churn
ingest (`read_header`): its size before it is read, its encoding, and its header (a column cap, repeated
and missing names) in time linear in the header (issue 14, defects 11 and 12).

Each test runs against both readers; they differ only in how they name the file and which error they raise.
"""

from __future__ import annotations

import codecs
import csv
import os
from pathlib import Path

import pytest

from jobs.churn.contract.files import BadSourceFile, read_header
from jobs.churn.contract.sources import sources
from jobs.churn.serving.checks import BatchFileError, read_batch_csv

MB = 1 << 20
NUM = ("pay_count_6m", "share_seg_instore_6m", "age", "balance_1")
CAT = ("gender", "city")
APP_HEADER = "customer_id,pay_count_6m,share_seg_instore_6m,age,balance_1,gender,city"
APP_TEXT = f"{APP_HEADER}\n1,3,0.5,30,100.0,F,Bogotá\n"
DEMOGRAFICOS = sources()["DEMOGRAFICOS"]
INGEST_TEXT = "CUS_CUST_ID_BUY,AGE,GENDER,CARD_TYPE,CITY\nB1,30,F,Credit,Bogotá\n"


class App:
    """The Batch page's reader: the whole upload in memory."""

    name = "app"
    text = APP_TEXT
    columns = ("customer_id", *NUM, *CAT)

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def refusal(self, data: bytes, **limit: int) -> str:
        with pytest.raises(BatchFileError) as err:
            read_batch_csv(data, NUM, CAT, **limit)
        return str(err.value)

    def accepts(self, data: bytes) -> list[str]:
        return read_batch_csv(data, NUM, CAT).rows["customer_id"].tolist()


class Ingest:
    """The churn ingest's reader: a file on disk, of which only the head is read."""

    name = "ingest"
    text = INGEST_TEXT
    columns = DEMOGRAFICOS.file_columns

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "DEMOGRAFICOS.csv"

    def refusal(self, data: bytes | None, **limit: int) -> str:
        if data is not None:
            self.path.write_bytes(data)
        with pytest.raises(BadSourceFile) as err:
            read_header(self.path, DEMOGRAFICOS, **limit)
        message = str(err.value)
        assert message.startswith(f"DEMOGRAFICOS: {self.path} "), message  # the file is named
        return message

    def accepts(self, data: bytes) -> list[str]:
        self.path.write_bytes(data)
        return read_header(self.path, DEMOGRAFICOS)


@pytest.fixture(params=[App, Ingest], ids=["app", "ingest"])
def reader(request, tmp_path):
    return request.param(tmp_path)


def wide_header(columns: int, model_columns: tuple[str, ...]) -> str:
    """A header of `columns` distinct names that holds every expected column."""
    return ",".join([*model_columns, *(f"extra_{i}" for i in range(columns - len(model_columns)))])


# --- defect 11: size, column cap, linear header checks ----------------------------------------------------


def test_a_million_column_header_is_refused_by_the_column_cap(reader):
    data = (wide_header(1_000_000, reader.columns) + "\n").encode()
    message = reader.refusal(data)
    assert "columns in its header, more than the limit of 2,000" in message
    if reader.name == "app":  # the whole header is in memory: the exact count
        assert "has 1,000,000 columns in its header" in message


def test_a_40k_column_header_is_refused_by_the_column_cap_with_its_count(reader):
    data = (wide_header(40_000, reader.columns) + "\n" + ",".join(["1"] * 40_000) + "\n").encode()
    assert "has 40,000 columns in its header, more than the limit of 2,000" in reader.refusal(data)


def test_a_header_at_the_cap_is_accepted(reader):
    header = wide_header(2_000, reader.columns)
    row = reader.text.splitlines()[1].split(",")
    data = (header + "\n" + ",".join(row + ["x"] * (2_000 - len(row))) + "\n").encode()
    assert reader.accepts(data)


def test_a_55_mb_file_is_refused_by_its_size_before_any_parsing(reader, monkeypatch):
    size = 55 * MB
    if reader.name == "ingest":
        with reader.path.open("wb") as handle:  # sparse: 55 MB on paper, nothing written
            handle.truncate(size)
        data = None
    else:
        data = reader.text.encode() + b"2,1,0.5,30,100.0,F,A\n" * ((size - len(reader.text)) // 21 + 1)
        assert len(data) >= size

    def parse(*args, **kwargs):
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(csv, "reader", parse)
    message = reader.refusal(data, max_bytes=20 * MB)
    assert "is 55.0 MB" in message and "more than the limit of 20.0 MB" in message


def test_the_ingest_names_the_setting_of_its_size_cap(tmp_path):
    path = tmp_path / "DEMOGRAFICOS.csv"
    with path.open("wb") as handle:
        handle.truncate(55 * MB)
    with pytest.raises(BadSourceFile) as err:
        read_header(path, DEMOGRAFICOS, max_bytes=20 * MB)
    assert str(err.value) == (
        f"DEMOGRAFICOS: {path} is 55.0 MB ({55 * MB:,} bytes), more than the limit of 20.0 MB "
        "(CHURN_MAX_FILE_MB): split it or raise the limit"
    )


def test_the_app_points_a_file_above_the_upload_limit_to_the_batch_job():
    data = (APP_TEXT.encode() * (22 * MB // len(APP_TEXT)))[: 21 * MB]
    with pytest.raises(BatchFileError) as err:
        read_batch_csv(data, NUM, CAT, max_bytes=20 * MB)
    assert str(err.value) == (
        f"the file is 21.0 MB ({len(data):,} bytes), more than the limit of 20.0 MB: score large files "
        "with the batch job (`python -m jobs.churn.deployment`)"
    )


def test_repeated_and_missing_columns_keep_their_messages_in_the_ingest(tmp_path):
    path = tmp_path / "DEMOGRAFICOS.csv"
    path.write_text("CUS_CUST_ID_BUY,AGE,GENDER,CITY\nB1,30,F,Rosario\n")
    with pytest.raises(BadSourceFile) as err:
        read_header(path, DEMOGRAFICOS)
    assert str(err.value) == (
        f"DEMOGRAFICOS: {path} misses columns ['CARD_TYPE'] (found ['CUS_CUST_ID_BUY', 'AGE', 'GENDER', "
        "'CITY']; expected ['CUS_CUST_ID_BUY', 'AGE', 'GENDER', 'CARD_TYPE', 'CITY'])"
    )
    path.write_text("CUS_CUST_ID_BUY,AGE,GENDER,CARD_TYPE,CITY, AGE,CITY\n")
    with pytest.raises(BadSourceFile) as err:
        read_header(path, DEMOGRAFICOS)
    assert str(err.value) == f"DEMOGRAFICOS: {path} repeats columns ['AGE', 'CITY']"
    path.write_text("")
    with pytest.raises(BadSourceFile) as err:
        read_header(path, DEMOGRAFICOS)
    assert str(err.value) == f"DEMOGRAFICOS: {path} is empty (no header line)"


def test_repeated_and_missing_columns_keep_their_messages_in_the_app():
    def refusal(text: str) -> str:
        with pytest.raises(BatchFileError) as err:
            read_batch_csv(text.encode(), NUM, CAT)
        return str(err.value)

    assert refusal("customer_id,pay_count_6m,age,age,city,city\n") == (
        "repeated column names in the header: ['age', 'city']"
    )
    assert refusal("customer_id,pay_count_6m,gender\n1,2,F\n") == (
        "the file lacks 4 of the model's 6 input columns: share_seg_instore_6m, age, balance_1, city"
    )
    assert refusal("") == "the file is empty: expected a header row and one customer per line"


def test_many_ignored_columns_are_listed_once_in_file_order():
    header = wide_header(1_500, ("customer_id", *NUM, *CAT))
    row = ["1", "3", "0.5", "30", "100.0", "F", "A"] + ["x"] * (1_500 - 7)
    batch = read_batch_csv(f"{header}\n{','.join(row)}\n".encode(), NUM, CAT)
    assert batch.ignored_columns == [f"extra_{i}" for i in range(1_493)] and not batch.errors


# --- defect 12: encodings ---------------------------------------------------------------------------------

NO_BOM = "without a byte order mark: NUL bytes between the characters"


@pytest.mark.parametrize(
    ("codec", "bom", "expected"),
    [
        ("utf-16-le", codecs.BOM_UTF16_LE, "looks like UTF-16 LE, byte order mark FF FE"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "looks like UTF-16 BE, byte order mark FE FF"),
        ("utf-32-le", codecs.BOM_UTF32_LE, "looks like UTF-32 LE, byte order mark FF FE 00 00"),
        ("utf-32-be", codecs.BOM_UTF32_BE, "looks like UTF-32 BE, byte order mark 00 00 FE FF"),
        ("utf-16-le", b"", f"looks like UTF-16 LE {NO_BOM}"),
        ("utf-16-be", b"", f"looks like UTF-16 BE {NO_BOM}"),
    ],
    ids=["utf16le-bom", "utf16be-bom", "utf32le-bom", "utf32be-bom", "utf16le", "utf16be"],
)
def test_a_utf16_or_utf32_file_is_named_as_such_not_listed_with_nul_bytes(reader, codec, bom, expected):
    message = reader.refusal(bom + reader.text.encode(codec))
    assert message.endswith(f" is not UTF-8 ({expected}): save it as UTF-8"), message
    assert "\x00" not in message


def test_latin1_bytes_are_named_with_their_line(reader):
    message = reader.refusal(reader.text.encode("latin-1"))
    assert message.endswith(
        " is not UTF-8 (invalid byte 0xE1 on line 2; Latin-1 or Windows-1252, perhaps): save it as UTF-8"
    ), message


def test_nul_bytes_that_are_not_utf16_are_refused_as_not_text(reader):
    message = reader.refusal(reader.text.replace("30", "3\x000", 1).encode())
    assert message.endswith(" contains NUL bytes (the first on line 2): it is not a CSV text file")


def test_a_utf8_byte_order_mark_is_accepted_and_stripped(reader):
    accepted = reader.accepts(codecs.BOM_UTF8 + reader.text.encode())
    assert accepted == (["1"] if reader.name == "app" else list(DEMOGRAFICOS.file_columns))


def test_the_ingest_reads_only_the_head_of_a_large_file(tmp_path):
    """A valid header, then a multi-byte character cut by the end of the head: no false refusal."""
    from jobs.churn.contract.files import HEAD_BYTES

    path = tmp_path / "DEMOGRAFICOS.csv"
    head = INGEST_TEXT.encode()
    pad = b"x" * (HEAD_BYTES - 1 - len(head))  # the first "é" straddles the end of the head
    path.write_bytes(head + pad + "é".encode() * MB)
    assert os.path.getsize(path) > HEAD_BYTES
    assert read_header(path, DEMOGRAFICOS) == list(DEMOGRAFICOS.file_columns)
