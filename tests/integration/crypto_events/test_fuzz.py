"""Property-based fuzz of raw rows: nothing crashes, every row is accounted for, and no loaded row
breaks a rule — checked by an independent Python oracle, not by the Spark rules themselves."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from jobs.common.dates import date_format
from jobs.crypto_events import rules as R
from jobs.crypto_events.transform import annotate, summarise, valid_rows
from tests.integration.helpers import insert_rows, reference_prices, run_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

D = date(2026, 11, 20)
WINDOW_START = D - timedelta(days=4)
FORMATS = ["d/M/yyyy", "yyyy-MM-dd", "yyyyMMdd"]
BOUNDS = (date(2009, 1, 3), date(2026, 12, 31))
SITES, CRYPTOS = ("MLA", "MLB"), ("BTC", "ETH")
REF = {"BTC": Decimal(60000), "ETH": Decimal(3000)}
SCHEMA = (
    "landing_row int, scope string, site_id string, user_id string, purchase_date string, crypto_type string, "
    "purchase_price string, purchase_units string, row_hash string"
)

garbage = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
# white space at the edges is no part of a value: spaces, tabs, line ends, no-break and wide spaces
padded = lambda s: st.tuples(  # noqa: E731
    st.sampled_from(["", " ", "  ", "\t", "\u00a0"]), s, st.sampled_from(["", " ", "\n", "\r\n", "\u2003"])
).map("".join)
site = st.one_of(st.none(), garbage, padded(st.sampled_from(["MLA", "mlb", "MLZ", "MLB"])))
user = st.one_of(
    st.none(), garbage, padded(st.integers(-5, 10**20).map(str)), st.sampled_from(["1", "2", "3"])
)
day = st.one_of(
    st.none(),
    garbage,
    st.builds(
        lambda delta, fmt, pad: date_format(fmt).render(D + timedelta(days=delta), pad),
        st.integers(-8, 3),
        st.sampled_from(FORMATS),
        st.booleans(),
    ),
    st.sampled_from(
        ["2026-02-30", "31/04/2026", "31/2/2026", "20261301", "2026/11/19", "1/1/1926", "1/1/3026"]
    ),
)
crypto = st.one_of(st.none(), garbage, padded(st.sampled_from(["BTC", "eth", "DOGE", "ＢＴＣ"])))
price = st.one_of(
    st.none(),
    garbage,
    st.sampled_from(
        ["NaN", "Infinity", "-inf", "1e13", "0", "-1", "1e-12", "60000", "3000.123456789", "61000.5"]
    ),
    st.decimals(min_value=-10, max_value=200000, allow_nan=False, places=9).map(str),
)
units = st.one_of(
    st.none(),
    garbage,
    st.sampled_from(["0", "-1", "1e15", "5e13", "0.5", "1"]),
    st.decimals(min_value=-1, max_value=100, allow_nan=False, places=11).map(str),
)
valid_row = st.tuples(
    padded(st.sampled_from(["MLA", "mlb"])),
    st.integers(1, 10**6).map(str),
    st.builds(
        lambda delta, fmt, pad: date_format(fmt).render(D - timedelta(days=delta), pad),
        st.integers(0, 4),
        st.sampled_from(FORMATS),
        st.booleans(),
    ),
    padded(st.sampled_from(["BTC", "eth"])),
    st.sampled_from(["60000", "3000.123456789", "61000.5", "2999.99", "100000"]),
    st.decimals(min_value="0.0001", max_value=100, allow_nan=False, places=11).map(str),
)
fuzzed = (site, user, day, crypto, price, units)


@st.composite
def near_valid_row(draw):
    """A valid row with 0-2 fields replaced by fuzz: most rows get far enough to be judged on every rule."""
    row = list(draw(valid_row))
    for field in draw(st.sets(st.integers(0, 5), max_size=2)):
        row[field] = draw(fuzzed[field])
    return tuple(row)


raw_row = st.one_of(near_valid_row(), st.tuples(*fuzzed))
extract = st.lists(raw_row, min_size=1, max_size=25).flatmap(
    lambda rows: st.lists(st.sampled_from(rows), max_size=5).map(lambda dups: rows + dups)  # duplicates too
)


_EDGE_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf"}  # white space, control and format characters


def _clean(text: str | None) -> str:
    """Independent of the job's regular expression: strip by Unicode category at both ends."""
    text = text or ""
    edge = lambda ch: unicodedata.category(ch) in _EDGE_CATEGORIES  # noqa: E731
    start, end = 0, len(text)
    while start < end and edge(text[start]):
        start += 1
    while end > start and edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _parse_date(text: str | None) -> date | None:
    """Independent of Spark's parser: the format's fields by regex, then Python's calendar."""
    text = _clean(text)
    for fmt in FORMATS:
        fields = date_format(fmt).fields(text)
        if fields:
            try:
                return date(*fields)
            except ValueError:
                continue
    return None


def _number(text: str | None, scale: int) -> Decimal | None:
    try:
        value = Decimal(_clean(text))
    except InvalidOperation:
        return None
    return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP) if value.is_finite() else None


def oracle_violations(row: dict, raw: tuple) -> list[str]:
    """Independent re-statement of the rules for a row the job LOADED: must be empty."""
    s, u, d, c, p, n = raw
    problems = []
    if _clean(s).upper() not in SITES or row["site_id"] != _clean(s).upper():
        problems.append("site")
    if not _clean(u).lstrip("+-").isdigit() or int(_clean(u)) <= 0 or int(_clean(u)) != row["user_id"]:
        problems.append("user")
    parsed = _parse_date(d)
    if parsed is None or not WINDOW_START <= parsed <= D or parsed != row["purchase_date"]:
        problems.append("date")
    if _clean(c).upper() not in CRYPTOS or row["crypto_type"] != _clean(c).upper():
        problems.append("crypto")
    p8, n10 = _number(p, 8), _number(n, 10)
    if p8 is None or p8 <= 0 or p8 != row["purchase_price"] or p8 >= Decimal(10) ** 12:
        problems.append("price")
    elif not Decimal(1) / 3 <= p8 / REF[row["crypto_type"]] <= 3:
        problems.append("plausibility")
    if n10 is None or n10 <= 0 or n10 != row["purchase_units"] or n10 >= Decimal(10) ** 14:
        problems.append("units")
    if p8 is not None and n10 is not None:
        value = (p8 * n10).quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP)
        if value != row["purchase_value"] or not 0 < value < Decimal(10) ** 16:  # 0 is an underflow
            problems.append("value")
    return problems


@pytest.fixture(scope="module")
def judge_rules(spark):
    ctx = R.RuleContext(WINDOW_START, D, *BOUNDS, SITES, CRYPTOS, 3.0)
    refs = spark.createDataFrame(
        [(D - timedelta(days=k), c, p) for k in range(5) for c, p in REF.items()],
        "price_date date, crypto_type string, reference_price decimal(20,8)",
    )
    return R.crypto_rules(ctx), refs


@hyp_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=extract)
def test_transform_never_loads_a_row_that_breaks_a_rule(spark, judge_rules, rows):
    rules, refs = judge_rules
    df = spark.createDataFrame([(i, "window", *r, f"h{i}") for i, r in enumerate(rows, start=1)], SCHEMA)
    annotated = annotate(df, rules, FORMATS, refs)
    counts = summarise(annotated, rules)
    assert (
        counts["rows_read"]
        == len(rows)
        == counts["rows_valid"] + counts["rows_rejected"] + counts["duplicates_collapsed"]
    )
    for loaded in valid_rows(annotated).collect():
        raw = rows[loaded["landing_row"] - 1]
        assert oracle_violations(loaded.asDict(), raw) == [], (raw, loaded)
    keys = [
        (r["site_id"], r["user_id"], r["purchase_date"], r["crypto_type"])
        for r in valid_rows(annotated).collect()
    ]
    assert len(keys) == len(set(keys))  # one row per natural key reaches staging


@hyp_settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(raw_row, min_size=1, max_size=30))
def test_job_never_crashes_and_prod_only_gets_clean_rows(db, settings, spark, rows):
    for table in ("raw.bt_crypto_transaction_history", "raw.bt_crypto_landing", "prod.bt_crypto_events",
                  "dqm.dq_runs", "dqm.bt_crypto_events_rejects"):  # fmt: skip
        db.execute(f"DELETE FROM {table}")  # the loader may not TRUNCATE
    reference_prices(db, WINDOW_START, D)
    insert_rows(db, rows)
    outcome = run_job(settings, D)
    assert outcome.status in ("merged", "blocked")
    (reconciled,) = db.execute(
        "SELECT rows_read = rows_valid + rows_rejected + duplicates_collapsed FROM dqm.dq_runs WHERE run_id = %s",
        (outcome.run_id,),
    ).fetchone()
    assert reconciled
    # every row of the table is in the window, elsewhere (a plausible date of another window) or landed
    (landed,) = db.execute(
        "SELECT count(*) FROM raw.bt_crypto_landing WHERE run_id = %s", (outcome.run_id,)
    ).fetchone()
    assert (
        landed
        == outcome.counts["rows_read"]
        == sum(
            1
            for r in rows
            if (p := _parse_date(r[2])) is None or WINDOW_START <= p <= D or not BOUNDS[0] <= p <= BOUNDS[1]
        )
    )
    bad = db.execute(
        "SELECT count(*) FROM prod.bt_crypto_events WHERE site_id NOT IN ('MLA','MLB','MLC','MCO','MLM','MLU','MPE') "
        "OR user_id <= 0 OR purchase_price <= 0 OR purchase_units <= 0 OR purchase_date > %s "
        "OR purchase_value <> round(purchase_price * purchase_units, 8)",
        (D,),
    ).fetchone()[0]
    assert bad == 0
