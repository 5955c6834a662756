"""Shared plumbing: configuration, PostgreSQL, Spark, object store, logging, rule mechanism, GX gate."""
