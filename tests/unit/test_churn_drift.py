"""Drift severity and the reading of Evidently 0.7 results: pure functions."""

from __future__ import annotations

import pytest

from jobs.churn.drift import ColumnDrift, TableRef, column_drifts, judge, parse_args

SHARE_CUTS, IMPORTANT_CUTS = (0.1, 0.3, 0.5), (1, 2, 3)


def _drifts(**values: float) -> list[ColumnDrift]:
    return [ColumnDrift(c, "Wasserstein distance (normed)", v, 0.1) for c, v in values.items()]


def test_distance_drifts_at_or_above_the_threshold_p_values_below_it():
    assert ColumnDrift("a", "Wasserstein distance (normed)", 0.1, 0.1).drifted
    assert not ColumnDrift("a", "Jensen-Shannon distance", 0.09, 0.1).drifted
    assert ColumnDrift("a", "K-S p_value", 0.01, 0.05).drifted
    assert not ColumnDrift("a", "chi-square p_value", 0.2, 0.05).drifted


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.0, "none"), (0.09, "none"), (0.1, "moderate"), (0.35, "severe"), (0.5, "critical")],
)
def test_severity_by_drifted_share(share, expected):
    severity, _, reasons = judge(share, _drifts(a=0.0), [], SHARE_CUTS, IMPORTANT_CUTS)
    assert severity == expected and "of the columns drifted" in reasons[0]


def test_drift_of_the_models_top_features_escalates():
    drifts = _drifts(a=0.5, b=0.4, c=0.3, d=0.0, e=0.0, f=0.0, g=0.0, h=0.0, i=0.0, j=0.0, k=0.0)
    severity, important, reasons = judge(3 / 11, drifts, ["a", "b", "c", "d"], SHARE_CUTS, IMPORTANT_CUTS)
    assert (severity, important) == ("critical", ["a", "b", "c"])  # share alone would say moderate
    assert "3 of the top 4 features drifted (a, b, c)" in reasons[1]
    assert judge(1 / 11, drifts[:1] + drifts[3:], ["a", "d"], SHARE_CUTS, IMPORTANT_CUTS)[0] == "moderate"


def test_column_drifts_reads_the_evidently_snapshot_dict():
    report = {
        "metrics": [
            {"config": {"type": "evidently:metric_v2:DriftedColumnsCount"}, "value": {"count": 1.0, "share": 0.5}},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "x", "method": "K-S p_value",
                        "threshold": 0.05}, "value": 0.001},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "y", "method": "K-S p_value",
                        "threshold": 0.05}, "value": 0.7},
        ]
    }  # fmt: skip
    share, drifts = column_drifts(report)
    assert share == 0.5 and [(d.column, d.drifted) for d in drifts] == [("x", True), ("y", False)]
    with pytest.raises(ValueError, match="no DriftedColumnsCount"):
        column_drifts({"metrics": report["metrics"][1:]})


def test_table_refs_and_cli_errors(capsys):
    assert TableRef.parse("var/lake/churn_features@3") == TableRef("var/lake/churn_features", 3)
    assert TableRef.parse("x.parquet") == TableRef("x.parquet", None)
    with pytest.raises(ValueError, match="must be a number"):
        TableRef.parse("t@latest")
    for argv, message in [
        (["--date", "2026-11-22", "--reference", "a.parquet"], "go together"),
        (["--date", "2026-11-22", "--reference", "a.parquet", "--current", "b.parquet"], "--columns"),
        (["--date", "2026-11-22", "--sample-rows", "5"], ">= 100"),
        (["--date", "yesterday"], "invalid"),
    ]:
        with pytest.raises(SystemExit) as exc:
            parse_args(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
