"""Segment shares: a map column turned into one share column per vocabulary key, plus "other".

`expand_shares` (Spark: training and batch scoring through `training.pipeline.prepare`, the drift monitor)
and `expand_shares_frame` (pandas: the app, promotion, the API) are the two forms of one definition (a
parity test holds them equal); the column names and the vocabulary are `jobs.churn.contract.features.Shares`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jobs.churn.contract.features import MissingFeatures, Shares

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame


def top_keys(df: DataFrame, shares: Shares) -> list[str]:
    """The vocabulary of `df`: its `shares.top` keys with the most counts summed over the rows, ties
    broken by name (so the choice is deterministic)."""
    from pyspark.sql import functions as F

    exploded = df.select(F.explode(F.col(shares.column)).alias("key", "n"))
    ranked = exploded.groupBy("key").agg(F.sum("n").alias("n")).orderBy(F.desc("n"), F.asc("key"))
    return [row["key"] for row in ranked.limit(shares.top).collect()]


def expand_shares(df: DataFrame, shares: Shares) -> DataFrame:
    """Spark form: adds the share columns (count / total; 0 when the total is 0 or null)."""
    from pyspark.sql import functions as F

    total = F.col(shares.total).cast("double")
    counts = {c: F.coalesce(F.col(shares.column)[k], F.lit(0)) for c, k in shares.columns.items() if k}
    covered = F.lit(0)
    for count in counts.values():
        covered = covered + count
    values = {c: count.cast("double") / total for c, count in counts.items()}
    values[_other(shares)] = (total - covered.cast("double")) / total
    return df.withColumns({c: F.when(total > 0, v).otherwise(F.lit(0.0)) for c, v in values.items()})


def expand_shares_frame(frame: pd.DataFrame, shares: Shares) -> pd.DataFrame:
    """pandas form of `expand_shares` (same arithmetic, same results): a copy with the share columns. The
    map cells may be dicts (Spark's toPandas), lists of pairs (Arrow's to_pandas) or missing."""
    import numpy as np

    absent = [c for c in (shares.total, shares.column) if c not in frame.columns]
    if absent:
        raise MissingFeatures(
            f"missing feature columns {absent} (the model's segment shares derive from them)"
        )

    total = frame[shares.total].to_numpy(dtype=np.float64, na_value=np.nan)
    maps = [_as_dict(cell) for cell in frame[shares.column].tolist()]
    covered = np.zeros(len(frame), dtype=np.int64)
    out = frame.copy()
    positive = total > 0
    for column, key in shares.columns.items():
        if key is None:
            continue
        count = np.array([m.get(key, 0) for m in maps], dtype=np.int64)
        covered += count
        out[column] = np.where(positive, count.astype(np.float64) / np.where(positive, total, 1.0), 0.0)
    other = (total - covered.astype(np.float64)) / np.where(positive, total, 1.0)
    out[_other(shares)] = np.where(positive, other, 0.0)
    return out


def with_shares(frame: pd.DataFrame, shares: Shares | None) -> pd.DataFrame:
    """A model's input frame from feature-table rows: the share columns of ITS vocabulary (unchanged when
    the model has none, or the frame already holds them and no map)."""
    if shares is None or (shares.column not in frame.columns and set(shares.columns) <= set(frame.columns)):
        return frame
    return expand_shares_frame(frame, shares)


def _other(shares: Shares) -> str:
    return next(c for c, k in shares.columns.items() if k is None)


def _as_dict(cell: Any) -> Mapping[str, int]:
    if cell is None or (isinstance(cell, float) and cell != cell):
        return {}
    if isinstance(cell, Mapping):
        return cell
    return dict(cell)  # a list (or array) of (key, value) pairs
