"""The Great Expectations 1.x gate, built from a rule table (`jobs.common.rules`).

The suite is generated, never hand-written: a schema expectation, a minimum row count, the overall
reject share, and one expectation per rule on its `violates_<code>` flag column. Which of them block
the merge is configuration (`critical`); the others are recorded as warnings. A warning rule
(`Rule.severity == "warn"`) is never critical, whatever the configuration, and is judged against its own
`max_share`; every rule check records the observed share of rows (`share`) next to its limit. GX runs with BASIC
results without a sample of unexpected values (counts and shares; per-row failures are the quarantine's job,
see DESIGN.md); the validation result JSON and the Data Docs site go to the object store.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.common.objectstore import ObjectStore, put_tree
from jobs.common.rules import Rule

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

SCHEMA, ROW_COUNT, REJECT_SHARE = "schema", "row_count", "reject_share"


@dataclass(frozen=True)
class GateConfig:
    expected_columns: tuple[str, ...]
    min_rows: int
    max_reject_share: float
    max_rule_share: float
    critical: frozenset[str]  # checks that block: schema, row_count, reject_share and/or rule codes


@dataclass
class GateResult:
    passed: bool
    blocking_failures: list[str]
    warnings: list[str]
    checks: list[dict] = field(default_factory=list)
    results_uri: str | None = None
    docs_uri: str | None = None

    def message(self) -> str:
        if self.passed:
            extra = f" (warnings: {', '.join(self.warnings)})" if self.warnings else ""
            return f"gate passed{extra}"
        failed = [c for c in self.checks if c["check"] in self.blocking_failures]
        parts = [f"{c['check']}: {c['observed']}" for c in failed]
        return "gate blocked the merge: " + "; ".join(parts)

    def check(self, name: str) -> dict | None:
        """The recorded outcome of one check (a rule code, `schema`, ...), or None when it did not run."""
        return next((c for c in self.checks if c["check"] == name), None)

    def summary(self) -> dict:
        return {
            "passed": self.passed,
            "blocking_failures": self.blocking_failures,
            "warnings": self.warnings,
            "checks": self.checks,
        }


def build_expectations(rules: Sequence[Rule], config: GateConfig) -> list:
    import great_expectations.expectations as gxe

    def meta(check: str) -> dict:
        return {"check": check, "critical": check in config.critical}

    expectations = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(config.expected_columns), exact_match=False, meta=meta(SCHEMA)
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows, meta=meta(ROW_COUNT)),
        gxe.ExpectColumnValuesToBeInSet(
            column="is_rejected",
            value_set=[False],
            mostly=1 - config.max_reject_share,
            meta=meta(REJECT_SHARE),
        ),
    ]
    for rule in rules:
        limit = config.max_rule_share if rule.max_share is None else rule.max_share
        critical = rule.rejects and rule.code in config.critical
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=rule.flag_column,
                value_set=[False],
                mostly=1 - limit,
                meta={
                    "check": rule.code,
                    "critical": critical,
                    "severity": rule.severity,
                    "reason": rule.reason,
                },
            )
        )
    return expectations


def run_gate(
    df: DataFrame,
    rules: Sequence[Rule],
    config: GateConfig,
    *,
    suite_name: str,
    store: ObjectStore,
    bucket: str,
    prefix: str,
) -> GateResult:
    """Validates `df` (one row per source row with the rule flag columns) and publishes the results."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    with tempfile.TemporaryDirectory(prefix="gx-docs-") as docs_dir:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.add_data_docs_site(
            site_name="local",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        batch = (
            context.data_sources.add_spark(name="spark")
            .add_dataframe_asset(name=suite_name)
            .add_batch_definition_whole_dataframe("whole_batch")
        )
        suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
        for expectation in build_expectations(rules, config):
            suite.add_expectation(expectation)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite_name}_gate", data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{suite_name}_checkpoint",
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="data_docs")],
                # counts and shares per check; no sample of unexpected values: the checks run on boolean
                # flag columns (a sample would be a list of `true`), and fetching one costs a Spark job per
                # expectation (about a second per gate). The offending values are `frequent_values`.
                result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
            )
        )
        cached_by_caller = df.is_cached
        try:
            outcome = checkpoint.run(batch_parameters={"dataframe": df})
        finally:
            # GX persists the batch's DataFrame and never releases it: a later batch with the same plan (the
            # same file path re-read in this session after the file changed) would be served the old rows.
            # A cache the caller made is the caller's: releasing it would recompute every later step.
            if not cached_by_caller:
                df.unpersist()
        validation_result = next(iter(outcome.run_results.values()))
        result = _judge(validation_result.to_json_dict())
        result.results_uri = store.put_bytes(
            bucket,
            f"{prefix}/validation_result.json",
            json.dumps(validation_result.to_json_dict(), indent=2, default=str).encode(),
            "application/json",
        )
        docs_keys = put_tree(store, bucket, f"{prefix}/data_docs", Path(docs_dir))
        index = next((k for k in docs_keys if k.endswith("/data_docs/index.html")), None)
        result.docs_uri = store.uri(bucket, index) if index else None
    return result


def _judge(validation: dict) -> GateResult:
    checks, blocking, warnings = [], [], []
    for item in validation["results"]:
        config = item["expectation_config"]
        meta = config.get("meta") or {}
        check = meta.get("check", config["type"])
        result = item.get("result") or {}
        entry = {
            "check": check,
            "expectation": config["type"],
            "success": bool(item["success"]),
            "critical": bool(meta.get("critical")),
            "observed": _observed(result, config),
        }
        if result.get("unexpected_percent") is not None:
            entry["share"] = float(result["unexpected_percent"]) / 100
            entry["max_share"] = round(1 - (config.get("kwargs") or {}).get("mostly", 1.0), 10)
        checks.append(entry)
        if not item["success"]:
            (blocking if meta.get("critical") else warnings).append(check)
        if item.get("exception_info", {}).get("raised_exception"):
            blocking.append(check)  # an expectation that could not run must not let the batch through
    return GateResult(passed=not blocking, blocking_failures=blocking, warnings=warnings, checks=checks)


def _observed(result: dict, config: dict) -> str:
    kwargs = config.get("kwargs") or {}
    if "unexpected_percent" in result and result["unexpected_percent"] is not None:
        limit = round((1 - kwargs.get("mostly", 1.0)) * 100, 4)
        return f"{result['unexpected_count']} rows ({result['unexpected_percent']:.2f}%), limit {limit}%"
    if config["type"] == "expect_table_row_count_to_be_between":
        return f"{result.get('observed_value')} rows, minimum {kwargs.get('min_value')}"
    if config["type"] == "expect_table_columns_to_match_set":
        missing = (result.get("details") or {}).get("mismatched", {}).get("missing")
        return f"missing columns {missing}" if missing else "all expected columns present"
    return json.dumps(result.get("observed_value"), default=str)
