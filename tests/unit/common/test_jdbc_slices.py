"""JDBC read slicing, in one place for every job: each row in exactly one slice, NULL and numbers outside
1..n included, the slice count bounded."""

from __future__ import annotations

import pytest

from jobs.common.spark import MAX_READ_SLICES, row_slices


@pytest.mark.parametrize(
    ("n_rows", "per_slice", "numbered"),
    [(0, 100, True), (1, 100, True), (100, 100, True), (101, 100, True), (1050, 100, True), (5000, 100, True),
     (1050, 100, False), (7, 2, False)],
)  # fmt: skip
def test_every_row_is_in_exactly_one_slice(spark, n_rows, per_slice, numbered):
    from pyspark.sql import functions as F

    ids = [None, -3, 0, *range(1, n_rows + 1), n_rows + 1, n_rows + 10_000, 8_589_934_592 + 5]  # gaps too
    df = spark.createDataFrame([(i,) for i in ids], "row_id bigint")
    slices = row_slices("row_id", n_rows, per_slice, numbered=numbered)
    assert len(slices) == max(1, min(MAX_READ_SLICES, -(-n_rows // per_slice)))
    hits = df.select(sum(F.expr(f"CASE WHEN {s} THEN 1 ELSE 0 END") for s in slices).alias("hits"))
    assert [r["hits"] for r in hits.collect()] == [1] * len(ids)


def test_numbered_rows_are_contiguous_ranges_of_about_the_same_size():
    assert row_slices("landing_row", 300, 100) == [
        "(landing_row <= 100) OR landing_row IS NULL",
        "landing_row > 100 AND landing_row <= 200",
        "landing_row > 200",
    ]
    assert row_slices("source_row", 300, 100, numbered=False)[1] == "(source_row % 3 + 3) % 3 = 1"
