"""A rule table drives both the per-row quarantine split (Spark columns, one pass) and the GX suite.

A `Rule` is a code, a human-readable reason and a Spark predicate that is true when a row breaks it.
`evaluate_rules` turns a list of rules into one array column of the codes a row breaks; `rule_flags`
exposes one boolean column per rule, which is what the GX gate validates (`jobs.common.gate`), so the
rows that are quarantined and the numbers GX judges are the same computation.

A rule with ``severity="warn"`` only measures: it is never in `rule_codes` (so it never quarantines a
row), its `violates_<code>` flag is its predicate, and its GX expectation is never critical, judged
against the rule's own `max_share`. Use it for what is worth watching but valid (an open vocabulary
meeting values outside the known set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

Scope = Literal["row", "key"]
Severity = Literal["reject", "warn"]


@dataclass(frozen=True)
class Rule:
    code: str
    reason: str
    violated: Callable[[], Column]  # true when the row breaks the rule; null counts as not broken
    scope: Scope = "row"  # "key": judged across the rows sharing a natural key (e.g. conflicting duplicates)
    severity: Severity = "reject"  # "warn": measured and reported, never quarantines
    max_share: float | None = None  # share of rows above which its expectation fails (None: the gate's)
    subject: Callable[[], Column] | None = None  # the value a warning is about, for `frequent_values`

    def __post_init__(self) -> None:
        if self.max_share is not None and not 0.0 <= self.max_share <= 1.0:
            raise ValueError(f"{self.code}: max_share must be within [0, 1], got {self.max_share}")
        if self.severity == "warn" and self.scope != "row":
            raise ValueError(f"{self.code}: a warning rule is judged row by row")

    @property
    def flag_column(self) -> str:
        return f"violates_{self.code.lower()}"

    @property
    def rejects(self) -> bool:
        return self.severity == "reject"


def rejecting(rules: Sequence[Rule]) -> list[Rule]:
    return [rule for rule in rules if rule.rejects]


def warning(rules: Sequence[Rule]) -> list[Rule]:
    return [rule for rule in rules if not rule.rejects]


def codes_column(rules: Sequence[Rule]) -> Column:
    """Array of the codes of every rejecting rule the row breaks (empty when none), in rule order."""
    from pyspark.sql import functions as F

    rules = rejecting(rules)
    if not rules:
        return F.array().cast("array<string>")
    hits = [F.when(F.coalesce(rule.violated(), F.lit(False)), F.lit(rule.code)) for rule in rules]
    return F.array_compact(F.array(*hits))  # codegen-friendly, unlike a filter() lambda


def evaluate_rules(df: DataFrame, rules: Sequence[Rule], output: str = "rule_codes") -> DataFrame:
    return df.withColumn(output, codes_column(rules))


def reasons_column(rules: Sequence[Rule], codes: str = "rule_codes") -> Column:
    """Human-readable reason: the reasons of the broken rules joined by '; '."""
    from pyspark.sql import functions as F

    by_code = F.create_map(*[F.lit(x) for rule in rejecting(rules) for x in (rule.code, rule.reason)])
    return F.array_join(F.transform(F.col(codes), lambda code: by_code[code]), "; ")


def flag(rule: Rule, codes: str = "rule_codes") -> Column:
    """The non-null `violates_<code>` value of one rule: from the codes array for a rejecting rule, the
    predicate itself for a warning (which is never in the array)."""
    from pyspark.sql import functions as F

    if rule.rejects:
        return F.array_contains(F.col(codes), rule.code)
    return F.coalesce(rule.violated(), F.lit(False))


def rule_flags(df: DataFrame, rules: Sequence[Rule], codes: str = "rule_codes") -> DataFrame:
    """One non-null boolean column per rule (`violates_<code>`)."""
    return df.withColumns({rule.flag_column: flag(rule, codes) for rule in rules})


def frequent_values(df: DataFrame, rule: Rule, limit: int = 5) -> list[tuple[str, int]]:
    """The most frequent values (`rule.subject`) among the rows that break `rule`, most frequent first
    (ties by value): what a warning is about."""
    from pyspark.sql import functions as F

    if rule.subject is None:
        return []
    hits = df.filter(F.coalesce(rule.violated(), F.lit(False)))
    counted = hits.groupBy(rule.subject().cast("string").alias("value")).count()
    rows = counted.orderBy(F.desc("count"), F.asc("value")).limit(limit).collect()
    return [(row["value"], int(row["count"])) for row in rows]


def check_unique_codes(rules: Sequence[Rule]) -> None:
    codes = [rule.code for rule in rules]
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    if duplicated:
        raise ValueError(f"rule codes must be unique, repeated: {duplicated}")
