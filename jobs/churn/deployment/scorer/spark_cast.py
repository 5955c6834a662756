"""Spark's casts in plain Python, for the values a pandas frame carries: what `training.pipeline.prepare`
does to a cell in Spark (`try_cast(x AS DOUBLE)`, `CAST(x AS STRING)`), so the JVM-free scorer reads an
input exactly as the fitted pipeline does."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

_TRUE_WORDS = ("true", "false")


def to_double(value: Any) -> float:
    """Spark's try_cast(value AS DOUBLE): None and unparsable text -> NaN (imputed later)."""
    if value is None:
        return math.nan
    if isinstance(value, float | int | np.number | Decimal):  # bool is an int: True -> 1.0 like Spark
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if "_" in text:  # Python accepts 1_000, Spark does not
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    if value is pd.NA or value is pd.NaT:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def spark_string(value: Any) -> str | None:
    """Spark's CAST(value AS STRING) for the types a pandas frame carries; None for missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return _TRUE_WORDS[0] if value else _TRUE_WORDS[1]
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else java_double(float(value))
    return str(value)


def java_double(value: float) -> str:
    """Java's Double.toString (what Spark prints): 1.0, 0.001, 1.0E7, 1.5E-4, Infinity."""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if ("." in text or "e" in text) else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = exponent + len(digits) - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"
