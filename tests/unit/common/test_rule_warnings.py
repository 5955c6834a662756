"""Warning rules (`Rule(severity="warn")`): measured and judged by the GX gate, never a reject, never critical."""

from __future__ import annotations

import pytest

from jobs.common.gate import GateConfig, build_expectations, run_gate
from jobs.common.rules import Rule, codes_column, frequent_values, reasons_column, rule_flags


def _rules():
    from pyspark.sql import functions as F

    return [
        Rule("AMOUNT_NEGATIVE", "amount is negative", lambda: F.col("amount") < 0),
        Rule(
            "COLOUR_UNKNOWN",
            "colour is not a known one",
            lambda: ~F.lower(F.col("colour")).isin("red", "blue"),
            severity="warn",
            max_share=0.25,
            subject=lambda: F.col("colour"),
        ),
    ]


@pytest.fixture
def judged(spark):
    from pyspark.sql import functions as F

    rows = [(1, "red"), (-2, "Green"), (3, "green"), (4, "Blue"), (5, "pink"), (6, None)]
    df = spark.createDataFrame(rows, "amount int, colour string")
    rules = _rules()
    df = df.withColumn("rule_codes", codes_column(rules))
    df = df.withColumns({"is_rejected": F.size("rule_codes") > 0, "reason": reasons_column(rules)})
    return rule_flags(df, rules), rules


def test_a_warning_is_never_a_rule_code_and_its_flag_is_its_predicate(judged):
    df, rules = judged
    got = [
        tuple(r)
        for r in df.select("amount", "rule_codes", "reason", *[r.flag_column for r in rules]).collect()
    ]
    assert got == [
        (1, [], "", False, False),
        (-2, ["AMOUNT_NEGATIVE"], "amount is negative", True, True),
        (3, [], "", False, True),
        (4, [], "", False, False),
        (5, [], "", False, True),
        (6, [], "", False, False),  # NULL: not broken
    ]
    assert frequent_values(df, rules[1]) == [("Green", 1), ("green", 1), ("pink", 1)]  # ties by value
    assert frequent_values(df, rules[0]) == []  # no subject: nothing to list


def test_a_warning_expectation_is_never_critical_and_has_its_own_limit():
    rules = _rules()
    config = GateConfig((), 1, 0.5, 0.01, frozenset({"AMOUNT_NEGATIVE", "COLOUR_UNKNOWN"}))
    by_check = {e.meta["check"]: e for e in build_expectations(rules, config)}
    assert by_check["AMOUNT_NEGATIVE"].meta["critical"] and by_check["AMOUNT_NEGATIVE"].mostly == 0.99
    assert not by_check["COLOUR_UNKNOWN"].meta["critical"]  # listed as critical: still only a warning
    assert by_check["COLOUR_UNKNOWN"].mostly == 0.75 and by_check["COLOUR_UNKNOWN"].meta["severity"] == "warn"
    with pytest.raises(ValueError, match="max_share must be within"):
        Rule("X", "x", lambda: None, severity="warn", max_share=1.5)


def test_the_gate_passes_with_the_warning_and_records_the_observed_share(judged, settings):
    from jobs.common.objectstore import open_store

    df, rules = judged
    config = GateConfig(
        ("amount", "colour"), 1, 0.5, 0.5, frozenset({"schema", "row_count", "COLOUR_UNKNOWN"})
    )
    result = run_gate(
        df, rules, config, suite_name="warnings_test", store=open_store(settings.object_store),
        bucket="ge-artifacts", prefix="tests/warnings",
    )  # fmt: skip
    assert result.passed and result.warnings == ["COLOUR_UNKNOWN"]  # 3 of 6 rows > its 25%, not blocking
    check = result.check("COLOUR_UNKNOWN")
    assert (check["share"], check["max_share"], check["success"], check["critical"]) == (
        0.5,
        0.25,
        False,
        False,
    )
    assert result.check("AMOUNT_NEGATIVE")["share"] == pytest.approx(1 / 6)
    assert result.message() == "gate passed (warnings: COLOUR_UNKNOWN)"


def test_the_gate_releases_only_the_cache_gx_made(judged, settings):
    """GX persists the frame it validates and never releases it; the gate does. A frame the caller cached
    stays cached: releasing it would recompute every later step of the job from its sources."""
    from jobs.common.objectstore import open_store

    df, rules = judged
    config = GateConfig(("amount", "colour"), 1, 0.5, 0.5, frozenset({"schema"}))
    kwargs = {
        "suite_name": "cache_test",
        "store": open_store(settings.object_store),
        "bucket": "ge-artifacts",
    }
    run_gate(df, rules, config, prefix="tests/cache/a", **kwargs)
    assert not df.is_cached
    mine = df.cache()
    run_gate(mine, rules, config, prefix="tests/cache/b", **kwargs)
    assert mine.is_cached
    mine.unpersist()
