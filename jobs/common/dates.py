"""Configured date formats (Spark datetime patterns): their shapes, how to write them, how Spark parses them.

Supported tokens: ``yyyy`` (four digits), ``MM``/``dd`` (two digits), ``M``/``d`` (one or two digits: ``d/M/yyyy``
accepts ``1/2/2023`` and ``01/02/2023``), separated by ``-``, ``/``, ``.`` or a space, each of year, month
and day exactly once. A value that has the shape of a configured format but is not a real calendar date
(``31/2/2023``) is a different defect from a value with no accepted shape (``yesterday``), so every format
yields an anchored regular expression for its shape, and the Spark parse says both.

A list of formats is refused when two of them read one text as two different dates (``d/M/yyyy`` with
``M/d/yyyy``): day-first or month-first is a decision, not a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column

# token -> (shape regex, group name, zero padded when written)
_TOKENS = {
    "yyyy": (r"\d{4}", "y", True),
    "MM": (r"\d{2}", "m", True),
    "M": (r"\d{1,2}", "m", False),
    "dd": (r"\d{2}", "d", True),
    "d": (r"\d{1,2}", "d", False),
}
_LITERALS = set("-/. ")
_TOKEN_RE = re.compile(r"yyyy|MM|M|dd|d|.", re.DOTALL)
SUPPORTED = (
    "yyyy, MM or M, dd or d once each, separated by - / . or a space (e.g. d/M/yyyy, yyyy-MM-dd, yyyyMMdd)"
)


class UnsupportedDateFormat(ValueError):
    """A configured pattern this module cannot read, or a list of patterns that contradict each other."""


@dataclass(frozen=True)
class DateFormat:
    pattern: str  # the Spark pattern, e.g. d/M/yyyy
    tokens: tuple[str, ...]

    @property
    def regex(self) -> str:
        """Anchored regex of the shape (no groups): what Spark's `rlike` checks."""
        return "^" + "".join(_TOKENS[t][0] if t in _TOKENS else re.escape(t) for t in self.tokens) + "$"

    @property
    def _grouped(self) -> re.Pattern[str]:
        parts = [
            f"(?P<{_TOKENS[t][1]}>{_TOKENS[t][0]})" if t in _TOKENS else re.escape(t) for t in self.tokens
        ]
        return re.compile("^" + "".join(parts) + "$", re.ASCII)  # \d as in Java (Spark): ASCII digits only

    def fields(self, text: str) -> tuple[int, int, int] | None:
        """(year, month, day) as written, when `text` has this shape (the date may still be impossible)."""
        match = self._grouped.match(text)
        return (int(match["y"]), int(match["m"]), int(match["d"])) if match else None

    def render(self, day: date, padded: bool | None = None) -> str:
        """`day` written in this format; `padded` overrides the padding of ``d``/``M`` (None: as the token says)."""
        return self.render_fields(day.year, day.month, day.day, padded)

    def render_fields(self, year: int, month: int, day: int, padded: bool | None = None) -> str:
        """As `render`, for any fields, real date or not (31/2/2026 has this shape too)."""
        values = {"y": year, "m": month, "d": day}
        out = []
        for t in self.tokens:
            if t not in _TOKENS:
                out.append(t)
                continue
            _, group, pad = _TOKENS[t]
            width = (
                4 if group == "y" else (2 if (pad if padded is None or t in ("MM", "dd") else padded) else 1)
            )
            out.append(f"{values[group]:0{width}d}")
        return "".join(out)


def date_format(pattern: str) -> DateFormat:
    tokens = tuple(_TOKEN_RE.findall(pattern))
    groups = sorted(_TOKENS[t][1] for t in tokens if t in _TOKENS)
    unknown = [t for t in tokens if t not in _TOKENS and t not in _LITERALS]
    if unknown or groups != ["d", "m", "y"]:
        raise UnsupportedDateFormat(f"unsupported date format {pattern!r}: use {SUPPORTED}")
    return DateFormat(pattern, tokens)


def date_formats(patterns: Sequence[str]) -> tuple[DateFormat, ...]:
    """Parses and cross-checks a configured list; raises UnsupportedDateFormat with a one-line reason."""
    return _checked(tuple(patterns))


@lru_cache(maxsize=32)
def _checked(patterns: tuple[str, ...]) -> tuple[DateFormat, ...]:
    if not patterns:
        raise UnsupportedDateFormat(f"no date format configured: use {SUPPORTED}")
    formats = tuple(date_format(p) for p in patterns)
    for i, a in enumerate(formats):
        for b in formats[i + 1 :]:
            clash = _contradiction(a, b)
            if clash:
                raise UnsupportedDateFormat(
                    f"date formats {a.pattern!r} and {b.pattern!r} contradict each other: {clash!r} would be "
                    f"{_as_date(a.fields(clash))} and {_as_date(b.fields(clash))}; keep one of them"
                )
    return formats


def _as_date(fields: tuple[int, int, int] | None) -> str:
    return f"{fields[0]:04d}-{fields[1]:02d}-{fields[2]:02d}" if fields else "?"


def _contradiction(a: DateFormat, b: DateFormat) -> str | None:
    """A text that both formats accept as two different REAL dates, if there is one. Probed over every day of
    a few years written padded and unpadded by each format: enough for every swap of day, month and year
    (years such as 2001 and 2010 also read as a day and a month)."""
    for year in (1999, 2001, 2010, 2012, 2024):
        day = date(year, 1, 1)
        while day.year == year:
            for fmt, other in ((a, b), (b, a)):
                for padded in (True, False):
                    text = fmt.render(day, padded)
                    got = other.fields(text)
                    if got and got != (day.year, day.month, day.day) and _real(got):
                        return text
            day += timedelta(days=1)
    return None


def _real(fields: tuple[int, int, int]) -> bool:
    try:
        date(*fields)
    except ValueError:
        return False
    return True


def pattern_regex(pattern: str) -> str:
    """Anchored regex for the shape of a Spark pattern such as ``d/M/yyyy``."""
    return date_format(pattern).regex


def parse_date_column(text: Column, patterns: Sequence[str]) -> tuple[Column, Column]:
    """(shape matches an accepted format, parsed date or NULL when not a real calendar date), for a column
    that holds normalised text (trimmed, blank as NULL). The first format that parses decides: the formats
    of a checked list never read one text as two different dates."""
    from pyspark.sql import functions as F

    formats = date_formats(patterns)
    shapes = [text.rlike(f.regex) for f in formats]
    shape_ok = F.coalesce(*[F.when(s, F.lit(True)) for s in shapes], F.lit(False))
    parsed = F.coalesce(
        *[F.when(s, F.try_to_date(text, f.pattern)) for s, f in zip(shapes, formats, strict=True)]
    )
    return shape_ok, parsed


def parse_date_text(text: str, patterns: Sequence[str]) -> date | None:
    """The date a text of an accepted format names (the first format that parses decides, as in
    `parse_date_column`), or None when no format fits or the date is not a real one. `text` is stripped."""
    for fmt in date_formats(patterns):
        fields = fmt.fields(text.strip())
        if fields and _real(fields):
            return date(*fields)
    return None


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after (or before) `day`'s month."""
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)
