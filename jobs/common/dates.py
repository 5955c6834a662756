"""Configured date formats (Spark datetime patterns) and the shapes they accept.

A value that has the shape of a configured format but is not a real calendar date (2026-02-30) is a
different defect from a value that has no accepted shape at all ("yesterday"), so every format also
yields a regular expression for its shape.
"""

from __future__ import annotations

import re

_TOKENS = {"yyyy": (r"\d{4}", "%Y"), "MM": (r"\d{2}", "%m"), "dd": (r"\d{2}", "%d")}
_LITERALS = set("-/. ")
_TOKEN_RE = re.compile(r"yyyy|MM|dd|.", re.DOTALL)


def _tokens(fmt: str) -> list[str]:
    tokens = _TOKEN_RE.findall(fmt)
    seen = [t for t in tokens if t in _TOKENS]
    unknown = [t for t in tokens if t not in _TOKENS and t not in _LITERALS]
    if unknown or sorted(seen) != sorted(_TOKENS):
        raise ValueError(
            f"unsupported date format {fmt!r}: use yyyy, MM and dd once each, separated by - / . or space"
        )
    return tokens


def pattern_regex(fmt: str) -> str:
    """Anchored regex for the shape of a Spark pattern such as ``dd/MM/yyyy``."""
    return "^" + "".join(_TOKENS[t][0] if t in _TOKENS else re.escape(t) for t in _tokens(fmt)) + "$"


def pattern_strftime(fmt: str) -> str:
    """The equivalent ``strftime`` format, for writing (generator) and independent checks (tests)."""
    return "".join(_TOKENS[t][1] if t in _TOKENS else t for t in _tokens(fmt))
