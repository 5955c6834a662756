"""The REST verbs' default logical dates: the latest scheduled slot that has passed, in Buenos Aires time."""

from __future__ import annotations

import re
from datetime import date, datetime

from infrastructure.control import CRYPTO, DRIFT, TIMEZONE, latest_slot, logical_datetime
from jobs.common.config import PROJECT_ROOT


def test_crypto_defaults_to_today_after_nine_and_to_yesterday_before():
    assert latest_slot(CRYPTO, datetime(2026, 11, 22, 9, 0, tzinfo=TIMEZONE)) == date(2026, 11, 22)
    assert latest_slot(CRYPTO, datetime(2026, 11, 22, 8, 59, tzinfo=TIMEZONE)) == date(2026, 11, 21)


def test_drift_defaults_to_the_latest_monday_six_am():
    assert latest_slot(DRIFT, datetime(2026, 11, 22, 12, 0, tzinfo=TIMEZONE)) == date(2026, 11, 16)  # Sunday
    assert latest_slot(DRIFT, datetime(2026, 11, 23, 5, 0, tzinfo=TIMEZONE)) == date(2026, 11, 16)
    assert latest_slot(DRIFT, datetime(2026, 11, 23, 6, 0, tzinfo=TIMEZONE)) == date(2026, 11, 23)


def test_logical_datetime_is_the_dag_schedule_so_ds_is_the_date():
    crypto = logical_datetime(CRYPTO, date(2026, 11, 20))
    assert crypto.isoformat() == "2026-11-20T09:00:00-03:00"
    assert logical_datetime(DRIFT, date(2026, 11, 16)).hour == 6


def test_the_verbs_read_the_schedules_the_dags_run_on():
    """One home for each cron: the DAG files and the REST verbs' slots read the same SCHEDULES."""
    from jobs.common.orchestration import SCHEDULES

    assert SCHEDULES[CRYPTO] == "0 9 * * *" and SCHEDULES[DRIFT] == "0 6 * * 1"
    dags = (PROJECT_ROOT / "airflow" / "dags").glob("*.py")
    text = "\n".join(p.read_text() for p in dags)
    assert not re.search(r"CronTriggerTimetable\(\s*\"", text)  # no cron written in a DAG file
    assert text.count("SCHEDULES[") == len(SCHEDULES)
