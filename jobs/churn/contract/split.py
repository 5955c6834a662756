"""The train / validation / test split of a spec: by a hash of the id, so it is stable across runs, table
versions and snapshots, and the same in Spark (training) and without a JVM (promotion re-derives the
challenger's test rows). Two forms of one definition, held equal by a test."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.churn.contract.spec import TrainSpec

if TYPE_CHECKING:
    from pyspark.sql import Column

SPLIT = "_split"
HASH_BUCKETS = 10_000


def split_key(spec: TrainSpec) -> str:
    return f"{spec.split.seed}:"


def split_bucket(ids: Iterable[Any], spec: TrainSpec) -> np.ndarray:
    """JVM-free twin of `split_column`: the same bucket for the same id (ids are integers or strings)."""
    prefix = split_key(spec)
    return np.array([zlib.crc32(f"{prefix}{i}".encode()) % HASH_BUCKETS for i in ids], dtype=np.int64)


def split_name(bucket: np.ndarray, spec: TrainSpec) -> np.ndarray:
    cut_train = spec.split.train * HASH_BUCKETS
    cut_validation = (spec.split.train + spec.split.validation) * HASH_BUCKETS
    return np.where(bucket < cut_train, "train", np.where(bucket < cut_validation, "validation", "test"))


def split_column(spec: TrainSpec) -> Column:
    """train / validation / test by a hash of the id: stable across runs, versions and snapshots."""
    from pyspark.sql import functions as F

    bucket = F.crc32(F.concat(F.lit(split_key(spec)), F.col(spec.id).cast("string"))) % HASH_BUCKETS
    cut_train = spec.split.train * HASH_BUCKETS
    cut_validation = (spec.split.train + spec.split.validation) * HASH_BUCKETS
    return F.when(bucket < cut_train, "train").when(bucket < cut_validation, "validation").otherwise("test")
