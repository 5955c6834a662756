"""The watchdog announces a file content once: new or changed files, minus what earlier events announced;
and the snapshot a training run trains on: requested, announced, labelled by the files, or by the run day."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.churn.monitoring.io import latest_labelled_snapshot, snapshot_of_run
from jobs.churn.monitoring.watch import labelled_snapshot, training_snapshot, unannounced

FORMATS = ["yyyy-MM-dd", "d/M/yyyy", "yyyyMMdd"]


def test_nothing_announced_yet_passes_every_change():
    changed = {"PAYMENTS": "a1", "ACTIVE_USER": "b1"}
    assert unannounced(changed, []) == changed


def test_a_content_announced_by_any_earlier_event_is_not_announced_again():
    changed = {"PAYMENTS": "a1", "ACTIVE_USER": "b1"}
    earlier = [{"PAYMENTS": "a1"}, {"ACTIVE_USER": "b1", "DEMOGRAFICOS": "c0"}]
    assert unannounced(changed, earlier) == {}


def test_a_file_changed_again_after_its_announcement_is_announced():
    assert unannounced({"PAYMENTS": "a2"}, [{"PAYMENTS": "a1"}]) == {"PAYMENTS": "a2"}


@pytest.mark.parametrize(
    ("last_payment", "snapshot"),
    [
        (date(2026, 10, 31), date(2026, 9, 1)),  # payments through October: [Sep 1, Nov 1) is covered
        (date(2026, 10, 30), date(2026, 8, 1)),  # October 31 unseen: September's window is not complete
        (date(2026, 11, 2), date(2026, 9, 1)),
        (date(2027, 1, 31), date(2026, 12, 1)),  # across the year
    ],
)
def test_the_latest_snapshot_the_payments_label(last_payment, snapshot):
    days = [date(2026, 3, 5), last_payment, date(2026, 7, 1)]
    assert labelled_snapshot(days, today=date(2027, 6, 1)) == snapshot


def test_payments_after_the_run_day_are_no_evidence():
    days = [date(2026, 10, 31), date(2099, 1, 1)]
    assert labelled_snapshot(days, today=date(2026, 12, 3)) == date(2026, 9, 1)
    assert labelled_snapshot([date(2099, 1, 1)], today=date(2026, 12, 3)) is None


def test_the_run_snapshot_requested_then_announced_then_files_then_run_day():
    day = date(2026, 12, 3)
    files = date(2026, 6, 1)
    assert training_snapshot("2026-05-01", ["2026-09-01"], files, day) == date(2026, 5, 1)
    assert training_snapshot(None, ["2026-08-01", None, "2026-09-01"], files, day) == date(2026, 9, 1)
    assert training_snapshot("", [None], files, day) == date(2026, 6, 1)
    # nothing else: the latest complete label window as of the run day (two months before its month start)
    assert training_snapshot(None, [], None, day) == date(2026, 10, 1)


def _payments(folder, lines):
    folder.mkdir(exist_ok=True)
    header = "FECHA,CUS_CUST_ID_SEL,CUS_CUST_ID_BUY,SPENT,TPV_SEGMENT_DETAIL,DESCUENTO\n"
    (folder / "PAYMENTS.csv").write_text(header + "".join(f"{d},1,2,10.0,Online,0\n" for d in lines))


def test_the_snapshot_of_a_payments_file_reads_every_accepted_format_and_skips_what_does_not_parse(tmp_path):
    _payments(tmp_path, ["2026-07-03", "31/10/2026", "20261015", "2026-02-30", "soon", "", "2099-01-01"])
    assert latest_labelled_snapshot(tmp_path, FORMATS, date(2026, 12, 3)) == date(2026, 9, 1)
    # only one accepted format: 31/10/2026 is no date, the last payment is 2026-10-15
    assert latest_labelled_snapshot(tmp_path, ["yyyy-MM-dd", "yyyyMMdd"], date(2026, 12, 3)) == date(
        2026, 8, 1
    )


def test_no_payments_file_or_one_without_its_columns_names_no_snapshot(tmp_path):
    assert latest_labelled_snapshot(tmp_path, FORMATS, date(2026, 12, 3)) is None
    (tmp_path / "PAYMENTS.csv").write_text("a,b\n1,2\n")
    assert latest_labelled_snapshot(tmp_path, FORMATS, date(2026, 12, 3)) is None


def test_a_run_reads_the_files_only_when_nothing_names_its_snapshot(tmp_path):
    from types import SimpleNamespace

    _payments(tmp_path, ["2026-07-31"])
    churn = SimpleNamespace(source_dir=tmp_path, date_formats=FORMATS)
    day = date(2026, 12, 3)
    assert snapshot_of_run(None, [], churn, day) == date(2026, 6, 1)  # from the files
    assert snapshot_of_run(None, ["2026-09-01"], churn, day) == date(2026, 9, 1)
    assert snapshot_of_run("2026-04-01", [], churn, day) == date(2026, 4, 1)
    assert snapshot_of_run(None, [], SimpleNamespace(source_dir=tmp_path / "none", date_formats=FORMATS),
                           day) == date(2026, 10, 1)  # fmt: skip
