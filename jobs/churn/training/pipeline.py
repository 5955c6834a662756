"""Spark ML construction for the churn candidates: typed inputs, one pipeline per model kind.

Pure construction, no I/O: the trainer fits what `build_pipeline` returns, and `jobs.churn.deployment.scorer` exports
the fitted stages to a JVM-free scorer, which replicates `prepare` and every stage exactly. Anything
changed here must change there too (the scorer parity test catches it).

Stage layout (column names are part of the contract with the scorer's export):
- numeric ``c``: Imputer(median) -> ``c__imp`` (null and NaN are missing);
- categorical ``c``: one StringIndexer (alphabetical, unseen/blank/null -> the extra "keep" index) -> ``c__idx``;
- logistic regression: OneHotEncoder(keep, dropLast) -> ``c__ohe``, then VectorAssembler -> ``features``;
- trees: a SQLTransformer casts ``c__idx`` to a plain double ``c__code`` (no nominal metadata, so MLlib
  splits it as a continuous feature with thresholds, which SHAP's TreeExplainer can follow), then
  VectorAssembler -> ``features``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.ml import Pipeline
    from pyspark.sql import Column, DataFrame

    from jobs.churn.contract.spec import TrainSpec

MISSING_CATEGORY = "__missing__"
# Characters that make a category "blank" (stripped from both ends in Spark and in the scorer alike).
BLANK_CHARS = " \t\n\r\f\v"
FEATURES_COL = "features"
SEED = 42
MAX_BINS = 32
# Params the grid may not set: they would break the column contract or the scorer's formulas.
RESERVED_PARAMS = frozenset(
    {
        "featuresCol",
        "labelCol",
        "predictionCol",
        "probabilityCol",
        "rawPredictionCol",
        "weightCol",
        "family",
        "thresholds",
        "lowerBoundsOnCoefficients",
        "upperBoundsOnCoefficients",
        "lowerBoundsOnIntercepts",
        "upperBoundsOnIntercepts",
    }
)
TREE_KINDS = ("random_forest", "gbt")


def imputed(col: str) -> str:
    return f"{col}__imp"


def indexed(col: str) -> str:
    return f"{col}__idx"


def one_hot(col: str) -> str:
    return f"{col}__ohe"


def coded(col: str) -> str:
    return f"{col}__code"


def prepare(df: DataFrame, spec: TrainSpec) -> DataFrame:
    """Typed model input: id, features (and the label when present), with one meaning of "missing".

    A spec with `shares` first expands its map column into the share columns of ITS vocabulary
    (`jobs.churn.features.shares.expand_shares`; a table that already holds those columns and no map is taken as
    it is). Numerics become doubles (unparsable strings -> null, imputed later); categoricals become
    strings with null, NaN and blank -> ``__missing__``; the label becomes a 0/1 double (booleans and
    yes/no/true/false strings are understood, anything else is null). The scorer replicates this in pandas.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, FractionalType, NumericType, StringType

    from jobs.churn.features.shares import expand_shares

    if spec.shares is not None:
        if not spec.shares.resolved:
            raise ValueError(
                f"the spec's shares of {spec.shares.column!r} have no vocabulary yet (train resolves it)"
            )
        if spec.shares.column in df.columns:
            df = expand_shares(df, spec.shares)
    types = {f.name: f.dataType for f in df.schema.fields}
    missing = [c for c in (spec.id, *spec.features) if c not in types]
    if missing:
        raise ValueError(f"input lacks the spec's columns {missing} (has {sorted(types)})")

    def numeric(c: str) -> Column:
        return F.col(c).try_cast("double").alias(c)

    def categorical(c: str) -> Column:
        value = F.col(c).cast("string")  # booleans -> "true"/"false", integers -> "1", doubles -> "1.0"
        absent = value.isNull() | (F.btrim(value, F.lit(BLANK_CHARS)) == "")
        if isinstance(types[c], FractionalType):
            absent = absent | F.isnan(F.col(c))  # NaN is pandas' null: missing, not the category "NaN"
        return F.when(absent, F.lit(MISSING_CATEGORY)).otherwise(value).alias(c)

    columns = [F.col(spec.id), *map(numeric, spec.numeric), *map(categorical, spec.categorical)]
    if spec.label in types:
        label_type = types[spec.label]
        if isinstance(label_type, BooleanType | NumericType):
            label = F.col(spec.label).cast("double")
        elif isinstance(label_type, StringType):
            text = F.lower(F.btrim(F.col(spec.label), F.lit(BLANK_CHARS)))
            label = (
                F.when(text.isin("1", "1.0", "yes", "true", "y"), F.lit(1.0))
                .when(text.isin("0", "0.0", "no", "false", "n"), F.lit(0.0))
                .otherwise(F.lit(None).cast("double"))
            )
        else:
            raise ValueError(f"label {spec.label!r} has type {label_type.simpleString()}, not 0/1")
        columns.append(label.alias(spec.label))
    return df.select(*columns)


def build_pipeline(spec: TrainSpec, kind: str, params: dict[str, Any] | None = None) -> Pipeline:
    """The unfitted pipeline of one candidate at one grid point (needs an active Spark session).

    Params are checked against the estimator here, in Python and in the JVM, so a bad grid fails before
    any fitting with the name of the param.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import Imputer, OneHotEncoder, SQLTransformer, StringIndexer, VectorAssembler

    params = dict(params or {})
    if kind == "logistic_regression":
        estimator = LogisticRegression(standardization=True, family="binomial")
    elif kind == "random_forest":
        estimator = RandomForestClassifier(seed=SEED, maxBins=MAX_BINS)
    elif kind == "gbt":
        estimator = GBTClassifier(seed=SEED, maxBins=MAX_BINS)
    else:
        raise ValueError(f"unknown model kind {kind!r} (known: logistic_regression, random_forest, gbt)")
    estimator = estimator.setFeaturesCol(FEATURES_COL).setLabelCol(spec.label)
    _set_params(estimator, kind, params)

    stages: list[Any] = []
    if spec.numeric:
        stages.append(
            Imputer(
                strategy="median",
                inputCols=list(spec.numeric),
                outputCols=[imputed(c) for c in spec.numeric],
            )
        )
    if spec.categorical:
        stages.append(
            StringIndexer(
                inputCols=list(spec.categorical),
                outputCols=[indexed(c) for c in spec.categorical],
                handleInvalid="keep",
                stringOrderType="alphabetAsc",
            )
        )
    if kind == "logistic_regression":
        if spec.categorical:
            stages.append(
                OneHotEncoder(
                    inputCols=[indexed(c) for c in spec.categorical],
                    outputCols=[one_hot(c) for c in spec.categorical],
                    handleInvalid="keep",
                    dropLast=True,
                )
            )
        category_inputs = [one_hot(c) for c in spec.categorical]
    else:
        if spec.categorical:
            casts = ", ".join(f"CAST(`{indexed(c)}` AS DOUBLE) AS `{coded(c)}`" for c in spec.categorical)
            stages.append(SQLTransformer(statement=f"SELECT *, {casts} FROM __THIS__"))
        category_inputs = [coded(c) for c in spec.categorical]
    stages.append(
        VectorAssembler(
            inputCols=[imputed(c) for c in spec.numeric] + category_inputs, outputCol=FEATURES_COL
        )
    )
    stages.append(estimator)
    return Pipeline(stages=stages)


def positive_probability(df: DataFrame) -> Column:
    """P(label = 1) as a plain double column, from the pipeline's `probability` vector."""
    from pyspark.ml.functions import vector_to_array

    return vector_to_array(df["probability"])[1]


def _set_params(estimator: Any, kind: str, params: dict[str, Any]) -> None:
    reserved = sorted(RESERVED_PARAMS & set(params))
    if reserved:
        raise ValueError(f"{kind}: params {reserved} are fixed by the pipeline and cannot be searched")
    unknown = sorted(p for p in params if not estimator.hasParam(p))
    if unknown:
        raise ValueError(f"{kind}: unknown params {unknown} for {type(estimator).__name__}")
    for name, value in params.items():
        try:
            estimator._set(**{name: value})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{kind}: bad value {value!r} for param {name!r}: {exc}") from exc
    try:
        # The JVM validates every param value (e.g. maxDepth >= 0) when it receives it.
        estimator._transfer_params_to_java()
    except Exception as exc:  # py4j / captured IllegalArgumentException: not ValueError subclasses
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{kind}: invalid params {params}: {message}") from exc
