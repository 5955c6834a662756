"""The watchdog announces a file content once: new or changed files, minus what earlier events announced."""

from __future__ import annotations

from jobs.churn.watch import unannounced


def test_nothing_announced_yet_passes_every_change():
    changed = {"PAYMENTS": "a1", "ACTIVE_USER": "b1"}
    assert unannounced(changed, []) == changed


def test_a_content_announced_by_any_earlier_event_is_not_announced_again():
    changed = {"PAYMENTS": "a1", "ACTIVE_USER": "b1"}
    earlier = [{"PAYMENTS": "a1"}, {"ACTIVE_USER": "b1", "DEMOGRAFICOS": "c0"}]
    assert unannounced(changed, earlier) == {}


def test_a_file_changed_again_after_its_announcement_is_announced():
    assert unannounced({"PAYMENTS": "a2"}, [{"PAYMENTS": "a1"}]) == {"PAYMENTS": "a2"}
