"""The contract of the five churn source files: each file described once, column by column.

`Field` says a column's kind, whether it is required, its range, closed choices or an open vocabulary, with
the task statement's meanings: ids are opaque text (``SELLER_1`` is valid), the MAU columns are counts of
accesses, ``INVERSION`` is an investment state, ``RECENCY_ML`` is the date of the last marketplace
purchase, ``TPV_SEGMENT_DETAIL`` is an open vocabulary. Everything else follows from this description: the
file columns (the generator writes them, `jobs.churn.contract.files` checks a header against them), the
typed parse and the rule table of the ingest (`jobs.churn.ingest.rules`), and through it both the quarantine
split and the GX suite (never two copies), the input domains of the features
(`jobs.churn.contract.features`). What is configured (accepted date shapes, the known segments, the
warning's limit) comes in an `IngestConfig`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from jobs.common.config import ChurnSettings

Kind = Literal["id", "int", "amount", "date", "text", "category"]
CORRUPT = "_corrupt_record"
AMOUNT_LIMIT = 1e12  # NUMERIC(14, 2) in raw: anything at or above is an overflow, not a value
ID_MAX_LENGTH = 64  # opaque ids: trimmed text of 1..64 characters without control characters
CONTROL_CHARS = "[\\x00-\\x1f\\x7f]"  # the same class in Python's and Java's regex dialects
MAU_LIMIT = 10_000  # accesses to an app in one month: more is a broken counter, not a customer
INVESTMENT_STATES = ("Investing", "Elegible", "Warmup", "Pending")  # the statement's spelling
INT_PATTERN = r"^[+-]?[0-9]{1,18}$"
AMOUNT_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"  # no exponent, NaN or Infinity
_CONTROL = re.compile(CONTROL_CHARS)


@dataclass(frozen=True)
class Field:
    name: str  # as in the file
    kind: Kind
    required: bool = True
    low: float | None = None  # inclusive; for dates: months relative to the as-of date
    high: float | None = None  # inclusive for numbers; for dates: exclusive, months relative to as-of
    choices: tuple[str, ...] = ()  # category: the canonical values (matched case-insensitively)
    aliases: tuple[tuple[str, str], ...] = ()  # category: other spellings -> a canonical value
    open_vocabulary: bool = False  # text: values outside the configured known set are valid, and counted

    @property
    def column(self) -> str:
        return self.name.lower()

    @property
    def raw(self) -> str:
        return f"{self.column}__raw"

    def canonical(self) -> dict[str, str]:
        """category: lower-cased spelling -> canonical value."""
        spelled = {c.lower(): c for c in self.choices}
        spelled.update({alias.lower(): target for alias, target in self.aliases})
        return spelled


@dataclass(frozen=True)
class Source:
    name: str
    table: str
    fields: tuple[Field, ...]
    per_customer: bool  # one row per customer: repeated customers with different values are conflicts

    @property
    def file_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.fields)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


@dataclass(frozen=True)
class IngestConfig:
    """The configured part of the contract (CHURN_DATE_FORMATS, CHURN_KNOWN_SEGMENTS, ...)."""

    date_formats: tuple[str, ...]
    known_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # open field -> known values
    max_unknown_share: float = 0.05

    @classmethod
    def from_settings(cls, churn: ChurnSettings) -> IngestConfig:
        return cls(
            date_formats=tuple(churn.date_formats),
            known_values={"TPV_SEGMENT_DETAIL": tuple(churn.known_segments)},
            max_unknown_share=churn.gate_max_unknown_segment_share,
        )


CUSTOMER = Field("CUS_CUST_ID_BUY", "id")


def sources(history_months: int = 12, horizon_months: int = 2) -> dict[str, Source]:
    """The five files of the task statement, keyed by file name (without `.csv`)."""
    return {
        "PAYMENTS": Source(
            "PAYMENTS",
            "raw.churn_payments",
            (
                Field("FECHA", "date", low=-history_months, high=horizon_months),
                Field("CUS_CUST_ID_SEL", "id"),
                CUSTOMER,
                Field("SPENT", "amount", low=0),
                Field("TPV_SEGMENT_DETAIL", "text", open_vocabulary=True),
                Field("DESCUENTO", "amount", low=0),
            ),
            per_customer=False,
        ),
        "ACTIVE_USER": Source(
            "ACTIVE_USER",
            "raw.churn_active_user",
            (
                CUSTOMER,
                Field("MAU_MP_1", "int", required=False, low=0, high=MAU_LIMIT),
                Field("MAU_ML_1", "int", required=False, low=0, high=MAU_LIMIT),
                Field("MAU_ML_2", "int", required=False, low=0, high=MAU_LIMIT),
                # a login after the as-of date cannot be in a snapshot taken on that date
                Field("last_login_mp_date_1", "date", required=False, low=-120, high=0),
            ),
            per_customer=True,
        ),
        "DEMOGRAFICOS": Source(
            "DEMOGRAFICOS",
            "raw.churn_demograficos",
            (
                CUSTOMER,
                Field("AGE", "int", required=False, low=14, high=120),
                Field("GENDER", "text", required=False),
                Field("CARD_TYPE", "text", required=False),
                Field("CITY", "text", required=False),
            ),
            per_customer=True,
        ),
        "DINERO_CUENTA": Source(
            "DINERO_CUENTA",
            "raw.churn_dinero_cuenta",
            (
                CUSTOMER,
                Field("PLATA_CUENTA_1", "amount", required=False, low=-AMOUNT_LIMIT),
                Field("PLATA_CUENTA_2", "amount", required=False, low=-AMOUNT_LIMIT),
                Field(
                    "INVERSION",
                    "category",
                    required=False,
                    choices=INVESTMENT_STATES,
                    aliases=(("Eligible", "Elegible"),),
                ),
            ),
            per_customer=True,
        ),
        "MARKETPLACE_DATA": Source(
            "MARKETPLACE_DATA",
            "raw.churn_marketplace_data",
            (
                CUSTOMER,
                Field("SPENT_ML", "amount", required=False, low=0),
                # the last purchase of a summary taken at the as-of date is before it (leak-free)
                Field("RECENCY_ML", "date", required=False, low=-120, high=0),
                Field("FREQUENCY_ML", "int", required=False, low=0, high=1_000_000),
            ),
            per_customer=True,
        ),
    }


def id_problem(text: str) -> str | None:
    """Why `text` (already trimmed) is not a valid opaque id, or None: the contract's id rule in plain
    Python (the app's batch upload checks `customer_id` with it)."""
    if not text:
        return "is empty"
    if len(text) > ID_MAX_LENGTH:
        return f"is longer than {ID_MAX_LENGTH} characters"
    if _CONTROL.search(text):
        return "contains control characters"
    return None
