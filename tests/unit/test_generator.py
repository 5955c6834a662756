from __future__ import annotations

import itertools
from datetime import date

from jobs.crypto_events import generate as G

D = date(2026, 11, 20)
CFG = G.GeneratorConfig(events_per_day=500, defect_share=0.1)


def test_deterministic_by_seed_and_date():
    assert G.build_extract(CFG, D).rows == G.build_extract(CFG, D).rows
    other_seed = G.GeneratorConfig(**{**CFG.__dict__, "seed": 7})
    assert G.build_extract(other_seed, D).rows != G.build_extract(CFG, D).rows


def test_every_defect_class_is_injected():
    extract = G.build_extract(CFG, D)
    assert set(extract.defects) == set(G.DEFECT_CLASSES)
    assert extract.expected["rows_read"] == len(extract.rows)
    assert extract.defects[G.R.DUPLICATE_CONFLICT] % 2 == 0  # original + copy


def test_window_days_and_upstream_changes_between_extracts():
    day1, day2 = G.build_extract(CFG, D), G.build_extract(CFG, date(2026, 11, 21))
    clean = G.GeneratorConfig(**{**CFG.__dict__, "defect_share": 0.0})
    rows1, rows2 = set(G.build_extract(clean, D).rows), set(G.build_extract(clean, date(2026, 11, 21)).rows)
    shared_days = {r[2] for r in rows1} & {r[2] for r in rows2}
    assert {d for d in shared_days if "-" in d} == {
        f"2026-11-{k}" for k in (17, 18, 19, 20)
    }  # windows overlap 4 days
    # the same upstream events are mostly unchanged, some edited or deleted
    overlap = [r for r in rows1 if r[2] in shared_days]
    unchanged = sum(1 for r in overlap if r in rows2)
    assert 0.8 * len(overlap) < unchanged < len(overlap)
    assert day1.reference_prices != day2.reference_prices


def test_reference_prices_are_a_plausible_random_walk():
    prices = [G.reference_price(42, date(2026, 1, k), ("BTC", "USDT")) for k in range(1, 31)]
    btc = [p[0] for p in prices]
    usdt = [p[1] for p in prices]
    assert all(p > 0 for p in btc)
    assert max(abs(b / a - 1) for a, b in itertools.pairwise(btc)) < 0.2
    assert all(0.9 < p < 1.1 for p in usdt)


def test_row_hash_distinguishes_null_from_empty():
    assert G.row_hash(("a", None, "", "", "", "")) != G.row_hash(("a", "", "", "", "", ""))
