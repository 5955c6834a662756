"""The stewards' corrections file: each line checked before anything is loaded, the first bad one named."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jobs.crypto_events.corrections import FILE_COLUMNS, CorrectionsRefused, read_corrections

RUN = str(uuid.UUID(int=7))
HEADER = ",".join(FILE_COLUMNS)


def _file(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / "fixes.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_a_good_file_gives_every_correction_with_missing_values_as_none(tmp_path):
    found = read_corrections(
        _file(
            tmp_path,
            f"{RUN},3,MLA,1,18/11/2026,BTC,60000,0.5,ana,DQ-1",
            f'{RUN},4,MLA,,"1/2/2026",ETH,"3,5",1,bob,"typo, said the desk"',
        )
    )
    assert [(c.line, c.landing_row, c.corrected_by) for c in found] == [(2, 3, "ana"), (3, 4, "bob")]
    assert found[0].values == ("MLA", "1", "18/11/2026", "BTC", "60000", "0.5")
    assert found[1].values == (
        "MLA",
        None,
        "1/2/2026",
        "ETH",
        "3,5",
        "1",
    )  # quoted commas kept, empty = missing
    assert found[1].why == "typo, said the desk"


@pytest.mark.parametrize(
    "line, header, message",
    [
        (
            f"{RUN},3,MLA,1,18/11/2026,BTC,60000,0.5,ana,DQ-1",
            HEADER.replace(",why", ""),
            "missing column(s) why",
        ),
        (
            "not-a-run,3,MLA,1,18/11/2026,BTC,60000,0.5,ana,DQ",
            HEADER,
            ":2: run_id 'not-a-run' is not a run id",
        ),
        (
            f"{RUN},three,MLA,1,18/11/2026,BTC,60000,0.5,ana,DQ",
            HEADER,
            ":2: landing_row 'three' is not a number",
        ),
        (f"{RUN},3,MLA,1,18/11/2026,BTC,60000,0.5,  ,DQ", HEADER, ":2: corrected_by and why are required"),
        (f"{RUN},3,MLA,1,18/11/2026,BTC,60000,0.5,ana,", HEADER, ":2: corrected_by and why are required"),
        (f"{RUN},3,MLA,1,18/11/2026,BTC,60000,0.5,ana,DQ,extra", HEADER, ":2: more fields than the header"),
    ],
)
def test_a_bad_line_is_refused_naming_it(tmp_path, line, header, message):
    with pytest.raises(CorrectionsRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_corrections(_file(tmp_path, line, header=header))
