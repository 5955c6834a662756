"""A rule table drives both the per-row quarantine split (Spark columns, one pass) and the GX suite.

A `Rule` is a code, a human-readable reason and a Spark predicate that is true when a row breaks it.
`evaluate_rules` turns a list of rules into one array column of the codes a row breaks; `rule_flags`
exposes one boolean column per rule, which is what the GX gate validates (`jobs.common.gate`), so the
rows that are quarantined and the numbers GX judges are the same computation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

Scope = Literal["row", "key"]


@dataclass(frozen=True)
class Rule:
    code: str
    reason: str
    violated: Callable[[], Column]  # true when the row breaks the rule; null counts as not broken
    scope: Scope = "row"  # "key": judged across the rows sharing a natural key (e.g. conflicting duplicates)

    @property
    def flag_column(self) -> str:
        return f"violates_{self.code.lower()}"


def codes_column(rules: Sequence[Rule]) -> Column:
    """Array of the codes of every rule the row breaks (empty when it breaks none), in rule order."""
    from pyspark.sql import functions as F

    if not rules:
        return F.array().cast("array<string>")
    hits = [F.when(F.coalesce(rule.violated(), F.lit(False)), F.lit(rule.code)) for rule in rules]
    return F.array_compact(F.array(*hits))  # codegen-friendly, unlike a filter() lambda


def evaluate_rules(df: DataFrame, rules: Sequence[Rule], output: str = "rule_codes") -> DataFrame:
    return df.withColumn(output, codes_column(rules))


def reasons_column(rules: Sequence[Rule], codes: str = "rule_codes") -> Column:
    """Human-readable reason: the reasons of the broken rules joined by '; '."""
    from pyspark.sql import functions as F

    by_code = F.create_map(*[F.lit(x) for rule in rules for x in (rule.code, rule.reason)])
    return F.array_join(F.transform(F.col(codes), lambda code: by_code[code]), "; ")


def rule_flags(df: DataFrame, rules: Sequence[Rule], codes: str = "rule_codes") -> DataFrame:
    """One non-null boolean column per rule (`violates_<code>`), derived from the codes array."""
    from pyspark.sql import functions as F

    return df.withColumns({rule.flag_column: F.array_contains(F.col(codes), rule.code) for rule in rules})


def check_unique_codes(rules: Sequence[Rule]) -> None:
    codes = [rule.code for rule in rules]
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    if duplicated:
        raise ValueError(f"rule codes must be unique, repeated: {duplicated}")
