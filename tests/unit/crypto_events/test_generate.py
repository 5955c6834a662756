"""The simulated upstream, as pure functions of (seed, first day, logical date)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, timedelta

from jobs.crypto_events import generate as G

D = date(2026, 11, 20)
CFG = G.GeneratorConfig(events_per_day=500, defect_share=0.1)
FIRST = G.first_day_for(CFG, D)


def test_deterministic_by_seed_and_date():
    assert G.upstream_rows(CFG, FIRST, D) == G.upstream_rows(CFG, FIRST, D)
    other_seed = G.GeneratorConfig(**{**CFG.__dict__, "seed": 7})
    assert G.upstream_rows(other_seed, FIRST, D) != G.upstream_rows(CFG, FIRST, D)


def test_every_defect_class_is_injected_and_accounted_for():
    rows = G.upstream_rows(CFG, FIRST, D)
    assert {r.defect for r in rows} - {None} == set(G.DEFECT_CLASSES)
    expected = G.expected_run(rows, (D - timedelta(days=4), D), (FIRST, D))
    assert (
        expected["rows_read"]
        == expected["rows_valid"] + expected["rows_rejected"] + expected["duplicates_collapsed"]
    )
    assert expected["rejects_by_rule"][G.R.DUPLICATE_CONFLICT] % 2 == 0  # original + copy
    assert expected["rows_unplaced"] == sum(1 for r in rows if r.defect in G.UNPLACED)


def test_dates_in_every_accepted_shape_unpadded_day_first_most():
    texts = Counter(
        r.values[2] for r in G.day_rows(CFG, date(2026, 2, 1), date(2026, 2, 1)) if r.defect is None
    )
    assert texts.most_common(1)[0][0] == "1/2/2026"  # 1 February, day-first without padding
    assert {"1/2/2026", "01/02/2026", "2026-02-01", "20260201"} <= set(texts)


def test_upstream_edits_and_deletes_only_inside_the_window():
    day = D - timedelta(days=2)
    as_of = {
        e: {r.values for r in G.day_rows(CFG, day, e)}
        for e in (day, D, D + timedelta(days=2), D + timedelta(days=9))
    }
    changed = as_of[day] ^ as_of[D]
    assert 0 < len(changed) < 0.2 * len(as_of[day])  # edited, deleted or restored in place
    assert as_of[D + timedelta(days=2)] == as_of[D + timedelta(days=9)]  # out of the window: frozen
    defective = {r.values for r in G.day_rows(CFG, day, day) if r.defect}
    assert defective <= as_of[D + timedelta(days=9)]  # defective rows are never edited


def test_reference_prices_are_a_plausible_random_walk():
    prices = [G.reference_price(42, date(2026, 1, k), ("BTC", "USDT")) for k in range(1, 31)]
    btc = [p[0] for p in prices]
    usdt = [p[1] for p in prices]
    assert all(p > 0 for p in btc)
    assert max(abs(b / a - 1) for a, b in itertools.pairwise(btc)) < 0.2
    assert all(0.9 < p < 1.1 for p in usdt)
