"""Every rule code on crafted rows, date placement and parsing, normalisation, duplicates, typed values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from jobs.crypto_events import rules as R
from jobs.crypto_events.transform import annotate, place_dates, rejected_rows, summarise, valid_rows

D = date(2026, 11, 20)
WINDOW = (date(2026, 11, 16), D)
BOUNDS = (date(2009, 1, 3), date(2026, 12, 31))
FORMATS = ["d/M/yyyy", "yyyy-MM-dd", "yyyyMMdd"]
SCHEMA = (
    "landing_row int, scope string, site_id string, user_id string, purchase_date string, crypto_type string, "
    "purchase_price string, purchase_units string, row_hash string"
)
GOOD = ("MLA", "10", "2026-11-19", "BTC", "60000.5", "0.01")


@pytest.fixture(scope="module")
def judge(spark, settings):
    ctx = R.RuleContext(
        *WINDOW, *BOUNDS, tuple(settings.crypto.known_sites), tuple(settings.crypto.known_cryptos), 3.0
    )
    rules = R.crypto_rules(ctx)
    refs = spark.createDataFrame(
        [(date(2026, 11, 19), "BTC", Decimal("60000")), (date(2026, 11, 19), "USDT", Decimal("1"))],
        "price_date date, crypto_type string, reference_price decimal(20,8)",
    )

    def _judge(*raw_rows):
        rows = [(i, "window", *row, f"h{i}") for i, row in enumerate(raw_rows, start=1)]
        df = spark.createDataFrame(rows, SCHEMA)
        return annotate(df, rules, FORMATS, refs), rules

    return _judge


def codes(judge, row):
    annotated, _ = judge(row)
    return annotated.first()["rule_codes"]


def with_(**changes):
    names = ["site_id", "user_id", "purchase_date", "crypto_type", "purchase_price", "purchase_units"]
    row = dict(zip(names, GOOD, strict=True))
    row.update(changes)
    return tuple(row[n] for n in names)


CASES = [
    ("clean row", with_(), []),
    ("site missing (NULL)", with_(site_id=None), [R.SITE_MISSING]),
    ("site missing (blank)", with_(site_id="   "), [R.SITE_MISSING]),
    ("site unknown", with_(site_id="XXX"), [R.SITE_UNKNOWN]),
    ("site hostile SQL", with_(site_id="'; DROP TABLE prod.x; --"), [R.SITE_UNKNOWN]),
    ("user missing", with_(user_id=None), [R.USER_ID_INVALID]),
    ("user non-numeric", with_(user_id="12a"), [R.USER_ID_INVALID]),
    ("user decimal", with_(user_id="1.5"), [R.USER_ID_INVALID]),
    ("user zero", with_(user_id="0"), [R.USER_ID_NON_POSITIVE]),
    ("user negative", with_(user_id="-7"), [R.USER_ID_NON_POSITIVE]),
    ("user overflows bigint", with_(user_id="9223372036854775808"), [R.NUMERIC_OVERFLOW]),
    ("date missing", with_(purchase_date=""), [R.DATE_MISSING]),
    ("date unparseable", with_(purchase_date="yesterday"), [R.DATE_UNPARSEABLE]),
    ("date in an unaccepted format", with_(purchase_date="2026/11/19"), [R.DATE_UNPARSEABLE]),
    ("date impossible (Feb 30)", with_(purchase_date="2026-02-30"), [R.DATE_IMPOSSIBLE]),
    ("date impossible (month 13)", with_(purchase_date="19/13/2026"), [R.DATE_IMPOSSIBLE]),
    ("date impossible (31 February, unpadded)", with_(purchase_date="31/2/2026"), [R.DATE_IMPOSSIBLE]),
    ("date before any history", with_(purchase_date="19/11/1926"), [R.DATE_BEFORE_HISTORY]),
    ("date far in the future", with_(purchase_date="3026-11-19"), [R.DATE_FAR_FUTURE]),
    ("date outside the window (guard)", with_(purchase_date="15/11/2026"), [R.DATE_NOT_IN_WINDOW]),
    ("crypto missing", with_(crypto_type=None), [R.CRYPTO_MISSING]),
    ("crypto unknown", with_(crypto_type="DOGEX"), [R.CRYPTO_UNKNOWN]),
    ("crypto with a control char inside", with_(crypto_type="B\x07TC"), [R.CRYPTO_UNKNOWN]),
    ("crypto with a control char at its end (stripped)", with_(crypto_type="BTC\x07"), []),
    ("price missing", with_(purchase_price=None), [R.PRICE_INVALID]),
    ("price NaN", with_(purchase_price="NaN"), [R.PRICE_INVALID]),
    ("price Infinity", with_(purchase_price="Infinity"), [R.PRICE_INVALID]),
    ("price thousands separator", with_(purchase_price="60,000.5"), [R.PRICE_INVALID]),
    ("price zero", with_(purchase_price="0"), [R.PRICE_NON_POSITIVE]),
    ("price negative", with_(purchase_price="-1"), [R.PRICE_NON_POSITIVE]),
    ("price implausibly high", with_(purchase_price="600000"), [R.PRICE_IMPLAUSIBLE]),
    ("price implausibly low", with_(purchase_price="100"), [R.PRICE_IMPLAUSIBLE]),
    ("price overflows NUMERIC(20,8)", with_(purchase_price="1e13"), [R.NUMERIC_OVERFLOW]),
    ("units missing", with_(purchase_units=""), [R.UNITS_INVALID]),
    ("units non-numeric", with_(purchase_units="two"), [R.UNITS_INVALID]),
    ("units zero", with_(purchase_units="0"), [R.UNITS_NON_POSITIVE]),
    ("units negative", with_(purchase_units="-0.5"), [R.UNITS_NON_POSITIVE]),
    ("units overflow", with_(purchase_units="1e15"), [R.NUMERIC_OVERFLOW]),
    ("value overflows NUMERIC(24,8)", with_(purchase_units="5e13"), [R.NUMERIC_OVERFLOW]),
    ("units below the target scale (1e-11)", with_(purchase_units="1e-11"), [R.NUMERIC_UNDERFLOW]),
    ("units below the target scale (decimal)", with_(purchase_units="0.000000000049"), [R.NUMERIC_UNDERFLOW]),
    (
        "price below the target scale",
        with_(crypto_type="USDT", purchase_price="0.000000001"),
        [R.NUMERIC_UNDERFLOW],
    ),
    (
        "value below the target scale (0.000000001 x 1.01)",
        with_(crypto_type="USDT", purchase_price="1.01", purchase_units="0.000000001"),
        [R.NUMERIC_UNDERFLOW],
    ),
    ("units tiny but negative", with_(purchase_units="-1e-11"), [R.UNITS_NON_POSITIVE]),
    ("price negative and huge", with_(purchase_price="-1e400"), [R.PRICE_NON_POSITIVE]),
    ("price -0", with_(purchase_price="-0.000e3"), [R.PRICE_NON_POSITIVE]),
    ("no reference price that day", with_(purchase_date="2026-11-18"), [R.PRICE_NO_REFERENCE]),
    (
        "BTC at 99,999,999,999 on a day without a reference price",
        with_(purchase_date="2026-11-18", purchase_price="99999999999"),
        [R.PRICE_NO_REFERENCE],
    ),
    (
        "BTC at 0.00000001 on a day without a reference price",
        with_(purchase_date="2026-11-18", purchase_price="0.00000001", purchase_units="1"),
        [R.PRICE_NO_REFERENCE],
    ),
    ("a known crypto without any reference price", with_(crypto_type="ETH"), [R.PRICE_NO_REFERENCE]),
    ("site with a line break inside", with_(site_id="ML\nA"), [R.SITE_UNKNOWN]),
    ("user id with a control character inside", with_(user_id="1\x002"), [R.USER_ID_INVALID]),
    (
        "every field broken",
        (None, None, None, None, None, None),
        [
            R.SITE_MISSING,
            R.USER_ID_INVALID,
            R.DATE_MISSING,
            R.CRYPTO_MISSING,
            R.PRICE_INVALID,
            R.UNITS_INVALID,
        ],
    ),
]


def _own_key(row: tuple, i: int) -> tuple:
    """The case's row with a user id of its own unless the case is about the user id, so that no two clean
    cases share a key (they would be judged duplicates of each other in one DataFrame)."""
    return row if row[1] != GOOD[1] else (row[0], str(1000 + i), *row[2:])


@pytest.fixture(scope="module")
def case_codes(judge) -> dict[str, list[str]]:
    """Every case judged in ONE DataFrame (one Spark job instead of one per case)."""
    annotated, _ = judge(*[_own_key(row, i) for i, (_, row, _) in enumerate(CASES)])
    by_row = {
        r["landing_row"]: r["rule_codes"] for r in annotated.select("landing_row", "rule_codes").collect()
    }
    assert len(by_row) == len(CASES)
    return {case: by_row[i] for i, (case, _, _) in enumerate(CASES, start=1)}


@pytest.mark.parametrize(("case", "row", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule_codes(case_codes, case, row, expected):
    assert case_codes[case] == expected


def test_a_case_alone_is_judged_as_among_the_others(judge, case_codes):
    """The shared DataFrame changes nothing: the clean cases (the ones a shared key would make duplicates)
    and the all-broken one, each judged alone, give the same codes."""
    alone = ("clean row", "crypto with a control char at its end (stripped)", "every field broken")
    for case, row, expected in (c for c in CASES if c[0] in alone):
        assert codes(judge, row) == expected == case_codes[case], case


def test_every_rule_code_is_exercised():
    exercised = {code for _, _, expected in CASES for code in expected} | {R.DUPLICATE_CONFLICT}
    ctx = R.RuleContext(D, D, D, D, ("MLA",), ("BTC",), 3.0)
    assert exercised == {rule.code for rule in R.crypto_rules(ctx)}


def test_normalisation_and_typed_values(judge):
    annotated, _ = judge((" mla ", " 0042 ", " 19/11/2026 ", "btc", " 60000.123456789 ", "2"))
    row = valid_rows(annotated).first().asDict()
    assert row == {
        "site_id": "MLA",
        "user_id": 42,
        "purchase_date": date(2026, 11, 19),
        "crypto_type": "BTC",
        "purchase_price": Decimal("60000.12345679"),  # HALF_UP to the target scale
        "purchase_units": Decimal("2.0000000000"),
        "purchase_value": Decimal("120000.24691358"),
        "landing_row": 1,
        "row_hash": "h1",
        "correction_id": None,  # upstream's own values, no steward's correction
    }


@pytest.mark.parametrize("text", ["2026-11-19", "19/11/2026", "20261119", " 19/11/2026 "])
def test_every_configured_date_format_parses(judge, text):
    annotated, _ = judge(with_(purchase_date=text))
    assert annotated.first()["p_purchase_date"] == date(2026, 11, 19)


def test_duplicates_exact_collapse_conflicting_all_rejected(judge):
    annotated, rules = judge(
        with_(),
        with_(site_id=" mla", crypto_type="btc", purchase_price="60000.50"),  # same after normalising
        with_(user_id="11"),
        with_(user_id="11", purchase_price="60001"),  # same key, other price
        with_(user_id="12"),
        with_(user_id="12", purchase_price="abc"),  # a broken copy does not make a conflict
    )
    by_row = {r["landing_row"]: (r["rule_codes"], r["is_duplicate_copy"]) for r in annotated.collect()}
    assert by_row == {
        1: ([], False),
        2: ([], True),
        3: ([R.DUPLICATE_CONFLICT], False),
        4: ([R.DUPLICATE_CONFLICT], False),
        5: ([], False),
        6: ([R.PRICE_INVALID], False),
    }
    counts = summarise(annotated, rules)
    assert (
        counts["rows_read"],
        counts["rows_valid"],
        counts["rows_rejected"],
        counts["duplicates_collapsed"],
    ) == (6, 2, 3, 1)


def test_rejected_rows_keep_raw_text_reason_and_parsed_key(judge):
    annotated, _ = judge(with_(purchase_price=" abc "))
    row = rejected_rows(annotated).first().asDict()
    assert row["rule_codes"] == [R.PRICE_INVALID]
    assert row["reason"] == "purchase_price is missing or not a finite number"
    assert row["raw_purchase_price"] == " abc "
    assert (row["key_site_id"], row["key_user_id"], row["key_purchase_date"], row["key_crypto_type"]) == (
        "MLA",
        10,
        date(2026, 11, 19),
        "BTC",
    )


def test_place_dates_reads_day_first_and_says_where_each_text_belongs(spark):
    texts = {
        "1/2/2023": (date(2023, 2, 1), "window"),  # 1 February, not 2 January
        "01/02/2023": (date(2023, 2, 1), "window"),
        "1/02/2023": (date(2023, 2, 1), "window"),
        " 2/2/2023 ": (date(2023, 2, 2), "window"),
        "2023-02-03": (date(2023, 2, 3), "window"),
        "20230204": (date(2023, 2, 4), "window"),
        "14/1/2023": (date(2023, 1, 14), "elsewhere"),
        "5/2/2023": (date(2023, 2, 5), "elsewhere"),
        "31/2/2023": (None, "unplaced"),
        "2023/02/01": (None, "unplaced"),
        "": (None, "unplaced"),
        "1/1/1926": (date(1926, 1, 1), "unplaced"),
        "1/2/3023": (date(3023, 2, 1), "unplaced"),
        "001/2/2023": (None, "unplaced"),
    }
    frame = spark.createDataFrame([(t,) for t in texts], "purchase_date string")
    placed = place_dates(frame, FORMATS, (date(2023, 1, 31), date(2023, 2, 4)), BOUNDS)
    assert {r["purchase_date"]: (r["day"], r["placement"]) for r in placed.collect()} == texts


# every kind of white space and control character a file or a hand edit leaves at the edge of a value
EDGES = ["\n", "\r", "\r\n", "\t", " ", "\u00a0", "\u2003", "\u3000", "\ufeff", "\u200b", "\x0b", "\x00"]
FIELDS = ["site_id", "user_id", "purchase_date", "crypto_type", "purchase_price", "purchase_units"]


@pytest.mark.parametrize("field", FIELDS)
def test_white_space_and_control_characters_at_the_edges_are_no_part_of_a_value(judge, field):
    """One normalisation for every field: each edge character, before or after, gives the clean row's
    outcome (no code) and its typed values; a value made only of them is missing, with the missing code."""
    good = dict(zip(FIELDS, GOOD, strict=True))
    rows = [with_(**{field: edge + good[field]}) for edge in EDGES] + [
        with_(**{field: good[field] + edge}) for edge in EDGES
    ]
    annotated, _ = judge(*rows)
    assert {tuple(r["rule_codes"]) for r in annotated.collect()} == {()}
    typed = {
        tuple(sorted(r.asDict().items()))
        for r in valid_rows(annotated).drop("landing_row", "row_hash").collect()
    }
    clean, _ = judge(with_())
    assert typed == {
        tuple(sorted(r.asDict().items())) for r in valid_rows(clean).drop("landing_row", "row_hash").collect()
    }
    blank, _ = judge(with_(**{field: "".join(EDGES)}))
    missing = {
        "site_id": R.SITE_MISSING, "user_id": R.USER_ID_INVALID, "purchase_date": R.DATE_MISSING,
        "crypto_type": R.CRYPTO_MISSING, "purchase_price": R.PRICE_INVALID, "purchase_units": R.UNITS_INVALID,
    }  # fmt: skip
    assert blank.first()["rule_codes"] == [missing[field]]


HALF_WAY = [
    # (price, units, the exact product rounded half-up ONCE at scale 8)
    ("1.001669", "16.16154883", "16.18852245"),  # 16.18852245499727...: a double rounding gives ...246
    ("0.00000001", "0.5", "0.00000001"),  # exactly half: up
    ("1.00000001", "0.5", "0.50000001"),  # 0.500000005: up
    ("3.00000001", "0.1666666666", "0.50000000"),  # 0.5000000014666...: down
    ("99999999999.99999999", "0.0000000001", "10.00000000"),  # 9.999999999999999999: up
    ("123456789012.12345678", "0.0000012345", "152407.40603547"),  # precision 45 exact
    ("0.33333333", "3.0000000015", "0.99999999"),  # 0.999999990499999995: down, by a hair
    ("2.5", "0.000000002", "0.00000001"),  # 0.000000005: up, not to even
]


def _oracle(price: str, units: str) -> Decimal:
    """The exact product of the STORED values (each rounded half-up to its target scale), rounded once."""
    from decimal import ROUND_HALF_UP, Context

    exact = Context(prec=100)
    stored_price = Decimal(price).quantize(Decimal("1e-8"), ROUND_HALF_UP, exact)
    stored_units = Decimal(units).quantize(Decimal("1e-10"), ROUND_HALF_UP, exact)
    return exact.multiply(stored_price, stored_units).quantize(Decimal("1e-8"), ROUND_HALF_UP, exact)


def _values(spark, settings, pairs):
    ctx = R.RuleContext(*WINDOW, *BOUNDS, ("MLA",), ("XTEST",), 1e30)
    rules = [r for r in R.crypto_rules(ctx) if r.code not in (R.PRICE_IMPLAUSIBLE, R.PRICE_NO_REFERENCE)]
    rows = [
        (i, "window", "MLA", str(i), "2026-11-19", "XTEST", p, u, f"h{i}")
        for i, (p, u) in enumerate(pairs, 1)
    ]
    refs = spark.createDataFrame([], "price_date date, crypto_type string, reference_price decimal(20,8)")
    annotated = annotate(spark.createDataFrame(rows, SCHEMA), rules, FORMATS, refs)
    return {r["landing_row"]: r for r in valid_rows(annotated).collect()}


def test_purchase_value_is_the_exact_product_rounded_half_up_once(spark, settings):
    values = _values(spark, settings, [(p, u) for p, u, _ in HALF_WAY])
    for i, (price, units, expected) in enumerate(HALF_WAY, start=1):
        assert _oracle(price, units) == Decimal(expected)
        assert values[i]["purchase_value"] == Decimal(expected), (price, units)


def test_purchase_value_matches_an_exact_decimal_oracle_on_random_values(spark, settings):
    """Property: for prices and units of every magnitude the target types hold, with more decimals than the
    target scale (the stored values are rounded first), the value is the oracle's, digit for digit."""
    import random

    rng = random.Random(20261202)

    def number(int_digits: int, decimals: int) -> str:
        whole = rng.randrange(10 ** rng.randint(0, int_digits))
        return f"{whole}.{rng.randrange(10**decimals):0{decimals}d}"

    pairs = []
    while len(pairs) < 3000:
        price, units = number(12, rng.randint(1, 12)), number(rng.randint(0, 14), rng.randint(1, 14))
        value = _oracle(price, units)
        stored = Decimal(price).quantize(Decimal("1e-8")), Decimal(units).quantize(Decimal("1e-10"))
        if min(stored) > 0 and Decimal(0) < value < Decimal("1e16"):  # a valid row: the others are rejected
            pairs.append((price, units))
    values = _values(spark, settings, pairs)
    wrong = [(p, u, values[i]["purchase_value"], _oracle(p, u)) for i, (p, u) in enumerate(pairs, 1)
             if values[i]["purchase_value"] != _oracle(p, u)]  # fmt: skip
    assert len(values) == len(pairs) and not wrong, wrong[:5]
