"""Workflow 1: crypto events, validate-before-load (SPEC.md). Entry point: python -m jobs.crypto_events."""
