"""The first checks of an uploaded or ingested CSV file, one implementation for the app's batch upload
(`jobs.churn.serving.read_batch_csv`) and the churn ingest (`jobs.churn.ingest.read_header`):

1. its size, from the size alone, before a byte of it is decoded or parsed;
2. its encoding: UTF-8 (a UTF-8 byte order mark is accepted and dropped); UTF-16/32 (with or without a
   byte order mark), NUL bytes and invalid UTF-8 are refused with what the file looks like instead;
3. its header: at most `MAX_COLUMNS` columns, then repeated and missing names.

Every check is linear in the size of what it looks at: names are counted in a dict and looked up in a set,
never with `list.count` or `in list` inside a loop over the header (which took 51 s for a 40k-column
header and did not finish for 1M columns).

A problem raises `CsvFileProblem`, whose text completes a sentence about the file ("is not UTF-8 (...)"):
callers name the file their way and raise their own error.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence

MB = 1 << 20
MAX_COLUMNS = 2_000  # far above any real file (the model takes ~40 inputs, the source files 4 to 6)
_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32 LE"),
    (codecs.BOM_UTF32_BE, "UTF-32 BE"),
    (codecs.BOM_UTF16_LE, "UTF-16 LE"),
    (codecs.BOM_UTF16_BE, "UTF-16 BE"),
)
# which byte positions (mod 4) hold NULs when mostly-ASCII text is written in a wide encoding
_NUL_PATTERNS = (
    ("UTF-32 LE", (1, 2, 3), (0,)),
    ("UTF-32 BE", (0, 1, 2), (3,)),
    ("UTF-16 LE", (1, 3), (0, 2)),
    ("UTF-16 BE", (0, 2), (1, 3)),
)
_SAMPLE = 4096  # bytes looked at to recognise a wide encoding without a byte order mark


class CsvFileProblem(ValueError):
    """Why a file cannot be read at all; the text follows the file's name ("<file> is not UTF-8 ...")."""


def check_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise CsvFileProblem(
            f"is {size / MB:,.1f} MB ({size:,} bytes), more than the limit of {max_bytes / MB:,.1f} MB"
        )


def decode(data: bytes, complete: bool = True) -> str:
    """`data` as text, without a UTF-8 byte order mark. `complete=False`: `data` is the head of a longer
    file, so a character cut at its end is not a problem (it is left out)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            mark = bom.hex(" ").upper()
            raise CsvFileProblem(
                f"is not UTF-8 (looks like {name}, byte order mark {mark}): save it as UTF-8"
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        wide = _wide_encoding(data[:_SAMPLE])
        if wide:
            raise CsvFileProblem(
                f"is not UTF-8 (looks like {wide} without a byte order mark: NUL bytes between the "
                "characters): save it as UTF-8"
            )
        raise CsvFileProblem(
            f"contains NUL bytes (the first on line {_line_of(data, nul)}): it is not a CSV text file"
        )
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=complete)
    except UnicodeDecodeError as exc:
        raise CsvFileProblem(
            f"is not UTF-8 (invalid byte 0x{data[exc.start]:02X} on line {_line_of(data, exc.start)}; "
            "Latin-1 or Windows-1252, perhaps): save it as UTF-8"
        ) from None


def _wide_encoding(sample: bytes) -> str | None:
    """UTF-16/32 without a byte order mark: ASCII characters leave NULs at fixed byte positions."""
    n = len(sample) // 4 * 4
    if n == 0:
        return None
    zeros = [sample[i:n:4].count(0) / (n // 4) for i in range(4)]
    for name, nul, text in _NUL_PATTERNS:
        if all(zeros[i] >= 0.5 for i in nul) and all(zeros[i] <= 0.1 for i in text):
            return name
    return None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def parse_header(text: str, complete: bool = True, max_columns: int = MAX_COLUMNS) -> list[str]:
    """The first CSV record of `text`, names stripped; [] for an empty file. `complete=False`: `text` is
    the head of a longer file, so a header without its line end is cut (too long to be a header)."""
    buffer = io.StringIO(text, newline="")
    try:
        names = next(csv.reader(buffer), [])
    except csv.Error as exc:
        raise CsvFileProblem(f"has a header row that is not valid CSV: {exc}") from exc
    end = buffer.tell()
    cut = not complete and text[end - 1 : end] not in ("\n", "\r")
    if len(names) > max_columns:
        raise CsvFileProblem(
            f"has {'at least ' if cut else ''}{len(names):,} columns in its header, more than the limit "
            f"of {max_columns:,}"
        )
    if cut:
        raise CsvFileProblem(f"has a header line longer than {len(text):,} characters: is it a CSV file?")
    return [name.strip() for name in names]


def repeated_names(names: Iterable[str]) -> list[str]:
    return sorted(name for name, n in Counter(names).items() if n > 1)


def missing_names(names: Iterable[str], expected: Sequence[str]) -> list[str]:
    """The expected names that are not in `names`, in the expected order."""
    present = set(names)
    return [name for name in expected if name not in present]
