"""Segment shares: the model's vocabulary from the train rows, unseen segments as other, the Spark and pandas
forms equal, and `prepare` deriving the same columns."""

from __future__ import annotations

from jobs.churn.contract.features import ID


def test_segment_shares_use_the_models_vocabulary_and_unseen_segments_are_other(spark):
    """Spark (training, batch scoring) and pandas (app, promotion) forms give the same shares."""
    from pyspark.sql import functions as F

    from jobs.churn.contract.features import Shares
    from jobs.churn.contract.spec import load_spec
    from jobs.churn.features.shares import expand_shares, expand_shares_frame, top_keys, with_shares
    from jobs.churn.training.pipeline import prepare

    schema = "customer_id string, pay_count_6m double, segment_counts_6m map<string,bigint>"
    training = spark.createDataFrame(
        [("a", 4.0, {"instore": 3, "kiosco": 1}), ("b", 2.0, {"transfers": 1, "kiosco": 1}),
         ("c", 3.0, {"transfers": 2, "top-ups": 1})],
        schema,
    )  # fmt: skip
    shares = Shares("segment_counts_6m", "pay_count_6m", 3, "share_seg_", "_6m")
    # counts: instore 3, transfers 3, kiosco 2, top-ups 1: the top 3, the tie instore/transfers by name
    vocabulary = top_keys(training, shares)
    assert vocabulary == ["instore", "transfers", "kiosco"]
    shares = shares.with_vocabulary(vocabulary)
    # at scoring time: a segment the model never saw ("bizum") and one outside its top 3 count as other
    scoring = spark.createDataFrame(
        [("x", 5.0, {"instore": 1, "bizum": 3, "top-ups": 1}), ("y", 0.0, {}), ("z", 2.0, None),
         ("w", 3.0, {"kiosco": 3})],
        schema,
    )  # fmt: skip
    columns = list(shares.columns)
    assert columns == [
        "share_seg_instore_6m",
        "share_seg_transfers_6m",
        "share_seg_kiosco_6m",
        "share_seg_other_6m",
    ]
    spark_rows = {r[ID]: tuple(r[c] for c in columns) for r in expand_shares(scoring, shares).collect()}
    assert spark_rows == {
        "x": (0.2, 0.0, 0.0, 0.8),
        "y": (0.0, 0.0, 0.0, 0.0),  # no payments: no shares
        "z": (0.0, 0.0, 0.0, 1.0),  # payments without a segment map: all other
        "w": (0.0, 0.0, 1.0, 0.0),
    }
    # the pandas form, on rows as Spark (dicts) and as Arrow (lists of pairs) hand them over
    for frame in (scoring.toPandas(), scoring.toArrow().to_pandas()):
        got = expand_shares_frame(frame, shares).set_index(ID)[columns]
        assert {i: tuple(row) for i, row in got.iterrows()} == spark_rows
        assert with_shares(frame, None) is frame  # a model without shares takes the rows as they are
    # and pipeline.prepare (training, batch scoring) derives exactly these columns
    spec = load_spec("churn.yaml")
    base = {c: F.lit(1.0) for c in spec.base_numeric if c != "pay_count_6m"}
    base.update({c: F.lit("x") for c in spec.categorical})
    spec = spec.with_vocabulary(vocabulary)  # the model's vocabulary (at most its top 5: here 3)
    prepared = prepare(scoring.withColumns({**base, "churned": F.lit(0)}), spec)
    assert {r[ID]: tuple(r[c] for c in columns) for r in prepared.collect()} == spark_rows
