"""Workflow 2: churn (SPEC.md). Issue 3 in progress: the source-data generator."""
