"""Privacy engine on hand-worked tables: the equation builder, complementary suppression, the audit.

Every expected pattern and bound below was worked out by hand (k = 10 throughout) and is asserted
exactly; the solver runs for real (HiGHS through scipy).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import duckdb
import numpy as np
import pytest

from cs360_pipeline.privacy import fallbacks
from cs360_pipeline.privacy.audit import Publication, PublishedRate, audit
from cs360_pipeline.privacy.complementary import protect, stable_hash
from cs360_pipeline.privacy.lattice import CellKey, Lattice, breakdown_label, unknown_components
from cs360_pipeline.privacy.policy import Rule
from cs360_pipeline.privacy.protection import NEW_PATTERN, WITHHELD, choose_pattern

K = 10
JAN, FEB, MAR = "2025-01-01", "2025-02-01", "2025-03-01"


def beat_line(values: list[int]) -> Lattice:
    """One district D with beats B0..Bm (January, total): the 1-D line D = sum of beats."""
    keys = [("month", JAN, "beat", f"B{i}", "total") for i in range(len(values))]
    keys.append(("month", JAN, "district", "D", "total"))
    return Lattice.build(keys, [*values, sum(values)], {f"B{i}": "D" for i in range(len(values))})


def months(values: dict[str, int], quarter: int | None = None) -> Lattice:
    """City-level months plus their quarter (the quarter's value defaults to the sum)."""
    keys = [("month", m, "city", "RIV", "total") for m in values]
    keys.append(("quarter", JAN, "city", "RIV", "total"))
    total = sum(values.values()) if quarter is None else quarter
    return Lattice.build(keys, [*values.values(), total], {})


def codes(lattice: Lattice, mask: np.ndarray) -> set[str]:
    """Suppressed cells named by geography code, or code/breakdown, or month."""
    names = set()
    for key in np.array(lattice.keys, dtype=object)[mask]:
        key = CellKey(*key)
        if key.period_level != "month":
            names.add(f"{key.period_level}:{key.geo_code}/{key.breakdown}")
        elif key.breakdown != "total":
            names.add(f"{key.geo_code}/{key.breakdown.removeprefix('sex=')}")
        elif key.geo_code == "RIV" and len({k.period_start for k in lattice.keys}) > 1:
            names.add(key.period_start)
        else:
            names.add(key.geo_code)
    return names


def check(lattice: Lattice, mask: np.ndarray, *rates: PublishedRate):
    return audit([Publication(lattice, mask, K, rates=rates)], exact=True)


def pattern(lattice: Lattice, names: set[str]) -> np.ndarray:
    return np.array(
        [
            name in names
            for name in (
                codes(lattice, np.eye(lattice.size, dtype=bool)[i]).pop()
                for i in range(lattice.size)
            )
        ]
    )


# -- the equation builder ------------------------------------------------------------------
def test_equations_cross_every_hierarchy_with_every_code():
    parent = {"B1": "D1", "B2": "D1", "D1": "RIV"}
    keys, values = [], []
    leaf = {
        ("B1", JAN, "F"): 3,
        ("B1", JAN, "M"): 12,
        ("B2", JAN, "F"): 20,
        ("B2", JAN, "M"): 0,
        ("B1", FEB, "F"): 7,
        ("B1", FEB, "M"): 1,
        ("B2", FEB, "F"): 4,
        ("B2", FEB, "M"): 9,
    }
    for geo, level in (("B1", "beat"), ("B2", "beat"), ("D1", "district"), ("RIV", "city")):
        beats = [geo] if level == "beat" else ["B1", "B2"]
        for period, plevel, ms in (
            (JAN, "month", [JAN]),
            (FEB, "month", [FEB]),
            (JAN, "quarter", [JAN, FEB]),
        ):
            for bd, sexes in (("sex=F", "F"), ("sex=M", "M"), ("total", "FM")):
                keys.append((plevel, period, level, geo, bd))
                values.append(sum(leaf[b, m, s] for b in beats for m in ms for s in sexes))
    lattice = Lattice.build(keys, values, parent)
    assert lattice.size == 4 * 3 * 3
    # geo: (D1 and RIV parents) x 3 periods x 3 breakdowns; period: 4 geos x 3 breakdowns (the
    # partial quarter of Jan+Feb has its equation); breakdown: 4 geos x 3 periods.
    dims = [d for d in lattice.eq_dim]
    assert (dims.count("geo"), dims.count("period"), dims.count("breakdown:sex")) == (18, 12, 12)
    assert not np.any(lattice.residuals())
    e = next(
        e
        for e in range(lattice.n_equations)
        if lattice.eq_dim[e] == "period"
        and lattice.keys[lattice.eq_parent[e]] == ("quarter", JAN, "district", "D1", "sex=F")
    )
    assert [lattice.keys[c][:2] for c in lattice.children(e)] == [("month", JAN), ("month", FEB)]
    assert lattice.rank[lattice.index[CellKey("quarter", JAN, "city", "RIV", "total")]] == 4


def test_crossed_breakdowns_sum_along_each_dimension_and_labels_are_canonical():
    assert breakdown_label([("sex", "F"), ("age_group", "0-9")]) == "age_group=0-9;sex=F"
    keys, values = [], []
    for sex, age, n in (("F", "a", 1), ("F", "b", 2), ("M", "a", 3), ("M", "b", 4)):
        keys.append(("month", JAN, "city", "RIV", f"sex={sex};age_group={age}"))
        values.append(n)
    for label, n in (
        ("sex=F", 3),
        ("sex=M", 7),
        ("age_group=a", 4),
        ("age_group=b", 6),
        ("total", 10),
    ):
        keys.append(("month", JAN, "city", "RIV", label))
        values.append(n)
    lattice = Lattice.build(keys, values, {})
    assert sorted(lattice.eq_dim) == ["breakdown:age_group"] * 3 + ["breakdown:sex"] * 3
    assert not np.any(lattice.residuals())


def test_a_non_additive_table_is_refused_by_the_auditor():
    lattice = beat_line([4, 12])
    broken = Lattice.build(lattice.keys, [4, 12, 17], {"B0": "D", "B1": "D"})
    assert broken.residuals().tolist() == [1.0]
    with pytest.raises(ValueError, match="not additive"):
        check(broken, broken.n < K)


def test_lattice_reads_a_duckdb_relation_like_shared_cells():
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE cells AS SELECT * FROM (VALUES
            ('month', DATE '2025-01-01', 'beat', 'B0', 'total', 4),
            ('month', DATE '2025-01-01', 'beat', 'B1', 'total', 12),
            ('month', DATE '2025-01-01', 'district', 'D', 'total', 16))
        AS t(period_level, period_start, geo_level, geo_code, breakdown, n)
    """)
    lattice = Lattice.from_table(con.table("cells"), {"B0": "D", "B1": "D"})
    arrow = Lattice.from_table(con.table("cells").to_arrow_table(), {"B0": "D", "B1": "D"})
    assert lattice.keys == arrow.keys == beat_line([4, 12]).keys
    assert lattice.n.tolist() == [4, 12, 16]


def test_components_split_unknowns_that_share_no_equation():
    lattice = Lattice.build(
        [("month", JAN, "beat", b, "total") for b in ("B0", "B1", "B2", "B3")]
        + [("month", JAN, "district", d, "total") for d in ("D0", "D1")],
        [3, 20, 4, 30, 23, 34],
        {"B0": "D0", "B1": "D0", "B2": "D1", "B3": "D1"},
    )
    count, labels = unknown_components(lattice, np.array([1, 1, 1, 1, 0, 0], dtype=bool))
    assert count == 2
    assert labels.tolist() == [0, 0, 1, 1, -1, -1]


# -- complementary suppression, 1-D --------------------------------------------------------
def test_one_primary_in_a_line_gets_exactly_its_smallest_non_zero_sibling():
    lattice = beat_line([4, 12, 14, 30])
    result = protect(lattice, K)
    assert codes(lattice, result.suppressed) == {"B0", "B1"}
    assert codes(lattice, result.primary) == {"B0"}
    assert codes(lattice, result.secondary) == {"B1"}
    assert result.audit.passed and check(lattice, result.suppressed).passed
    assert result.rate == pytest.approx(2 / 5)
    assert result.kinds() == [(lattice.keys[0], "primary"), (lattice.keys[1], "secondary")]


def test_a_zero_sibling_is_never_the_complement():
    lattice = beat_line([3, 0, 12, 25])
    result = protect(lattice, K)
    assert codes(lattice, result.suppressed) == {"B0", "B2"}
    # and a zero complement would protect nothing: B0 + B1 = 40 - 12 - 25 = 3 < k
    zero_pattern = np.array([True, True, False, False, False])
    report = check(lattice, zero_pattern)
    assert [(f.key.geo_code, f.lower, f.upper) for f in report.failures] == [("B0", 0, 3)]


def test_two_small_cells_in_one_line_are_not_left_summing_below_k():
    lattice = beat_line([3, 4, 15, 18])
    naive = check(lattice, np.array([True, True, False, False, False]))
    assert [(f.key.geo_code, f.lower, f.upper) for f in naive.failures] == [
        ("B0", 0, 7),
        ("B1", 0, 7),
    ]
    result = protect(lattice, K)
    assert codes(lattice, result.suppressed) == {"B0", "B1", "B2"}
    report = check(lattice, result.suppressed)
    assert report.passed
    assert report.bounds[("release", lattice.keys[0])] == (0.0, 22.0)


def test_ties_are_broken_by_a_stable_hash_whatever_the_input_order():
    lattice = beat_line([3, 12, 12, 30])
    chosen = codes(lattice, protect(lattice, K).secondary)
    expected = min(("B1", "B2"), key=lambda b: stable_hash(("month", JAN, "beat", b, "total")))
    assert chosen == {expected}
    reordered = Lattice.build(
        lattice.keys[::-1], lattice.n[::-1], {"B0": "D", "B1": "D", "B2": "D", "B3": "D"}
    )
    assert codes(reordered, protect(reordered, K).secondary) == {expected}


# -- more dimensions -----------------------------------------------------------------------
def two_d() -> Lattice:
    """Beats B1..B3 of district D by sex F/M/U, with both margins."""
    interior = {"B1": (2, 15, 20), "B2": (12, 25, 30), "B3": (18, 22, 40)}
    rows = {**interior, "D": tuple(map(sum, zip(*interior.values(), strict=True)))}
    keys, values = [], []
    for geo, row in rows.items():
        level = "district" if geo == "D" else "beat"
        for sex, n in zip(("F", "M", "U"), row, strict=True):
            keys.append(("month", JAN, level, geo, f"sex={sex}"))
            values.append(n)
        keys.append(("month", JAN, level, geo, "total"))
        values.append(sum(row))
    return Lattice.build(keys, values, {"B1": "D", "B2": "D", "B3": "D"})


def test_two_dimensional_table_with_margins_gets_one_rectangle():
    lattice = two_d()
    result = protect(lattice, K)
    assert codes(lattice, result.suppressed) == {"B1/F", "B1/M", "B2/F", "B2/M"}
    report = check(lattice, result.suppressed)
    assert report.passed
    # B1F + B2F = 32 - 18 and B1F + B1M = 37 - 20: the attacker only knows 0..14
    assert report.bounds[("release", CellKey("month", JAN, "beat", "B1", "sex=F"))] == (0.0, 14.0)
    # a row pair alone is not enough in 2-D: the column margin pins B1F
    rows_only = pattern(lattice, {"B1/F", "B1/M"})
    assert [f.upper for f in check(lattice, rows_only).failures] == [2.0]


def three_levels() -> Lattice:
    parent = {"B11": "D1", "B12": "D1", "B21": "D2", "B22": "D2", "D1": "RIV", "D2": "RIV"}
    beats = {"B11": 4, "B12": 3, "B21": 30, "B22": 40}
    keys = [("month", JAN, "beat", b, "total") for b in beats]
    keys += [
        ("month", JAN, "district", "D1", "total"),
        ("month", JAN, "district", "D2", "total"),
        ("month", JAN, "city", "RIV", "total"),
    ]
    return Lattice.build(keys, [*beats.values(), 7, 70, 77], parent)


def test_three_level_geography_protects_the_district_against_the_city_total():
    lattice = three_levels()
    # per level: both beats of D1 are hidden and so is D1 (7), but RIV - D2 = 7 gives it away
    naive = check(lattice, pattern(lattice, {"B11", "B12", "D1"}))
    assert [(f.key.geo_code, f.lower, f.upper) for f in naive.failures] == [
        ("B11", 0, 7),
        ("B12", 0, 7),
        ("D1", 7, 7),
    ]
    result = protect(lattice, K)
    assert codes(lattice, result.suppressed) == {"B11", "B12", "D1", "D2", "B21"}
    report = check(lattice, result.suppressed)
    assert report.passed
    assert report.bounds[("release", CellKey("month", JAN, "district", "D1", "total"))] == (
        0.0,
        37.0,
    )


def test_one_small_month_is_protected_against_its_quarter():
    lattice = months({JAN: 4, FEB: 15, MAR: 30})
    result = protect(lattice, K)
    assert codes(lattice, result.suppressed) == {JAN, FEB}
    assert check(lattice, result.suppressed).passed


def test_a_partial_quarter_is_still_the_sum_of_its_delivered_months():
    lattice = months({JAN: 4, FEB: 15})  # March not delivered yet: Q1 = Jan + Feb
    assert lattice.n_equations == 1
    report = check(lattice, pattern(lattice, {JAN}))
    assert [(f.lower, f.upper) for f in report.failures] == [(4.0, 4.0)]
    assert codes(lattice, protect(lattice, K).suppressed) == {JAN, FEB}


# -- several releases: sticky suppression --------------------------------------------------
def test_sticky_pattern_survives_a_revision_and_reoptimising_does_not():
    first = months({JAN: 5, FEB: 12, MAR: 20})
    r1 = protect(first, K)
    assert codes(first, r1.suppressed) == {JAN, FEB}
    published = r1.publication("R1")
    second = months({JAN: 5, FEB: 25, MAR: 20})  # February revised by late records

    fresh = protect(second, K)  # re-optimised alone: March (20) is now the cheaper complement
    assert codes(second, fresh.suppressed) == {JAN, MAR}
    assert fresh.audit.passed  # safe on its own ...
    joint = audit([published, fresh.publication("R2")])
    # ... but March is unrevised and was published in R1: Jan = 50 - 25 - 20 in both releases
    assert [(f.release, f.key.period_start, f.lower, f.upper) for f in joint.failures] == [
        ("R1", JAN, 5.0, 5.0),
        ("R2", JAN, 5.0, 5.0),
    ]

    sticky = protect(
        second,
        K,
        forced=[first.keys[i] for i in np.flatnonzero(r1.suppressed)],
        history=[published],
        name="R2",
    )
    assert codes(second, sticky.suppressed) == {JAN, FEB}
    assert codes(second, sticky.forced) == {FEB}
    assert audit([published, sticky.publication("R2")]).passed


def test_unrevised_cells_are_linked_release_to_release_in_publishing_order():
    """A count revised 18 -> 19 -> 18 is a new value in the third release: the attacker may
    know it changed twice, not that it came back. Chained in another order, the same three
    releases would pin the third release's small cell from below."""

    def district(female: int, male: int) -> Lattice:
        keys = [("month", JAN, "district", "D1", b) for b in ("total", "sex=F", "sex=M")]
        return Lattice.build(keys, [female + male, female, male], {})

    def release(lattice: Lattice, name: str, sequence: int) -> Publication:
        hidden = lattice.mask(k for k in lattice.keys if k.breakdown != "total")
        return Publication(lattice, hidden, K, name, sequence=sequence)

    first, second, third = district(2, 18), district(2, 19), district(3, 18)
    in_order = [release(first, "R1", 1), release(second, "R2", 2), release(third, "R3", 3)]
    assert audit(in_order).passed
    # R3 read right after R1: M = 18 is R1's (<= R1's total 20), so F = 21 - M >= 1 in R3.
    swapped = [release(second, "R2", 1), release(first, "R1", 2), release(third, "R3", 3)]
    report = audit(swapped)
    assert [(f.release, f.key.breakdown, f.reason) for f in report.failures] == [
        ("R3", "sex=F", "min 1 > 0")
    ]


def test_joint_audit_repairs_even_without_the_forced_pattern():
    first = months({JAN: 5, FEB: 12, MAR: 20})
    published = protect(first, K).publication("R1")
    second = months({JAN: 5, FEB: 25, MAR: 20})
    result = protect(second, K, history=[published], name="R2")
    assert result.audit.passed
    assert audit([published, result.publication("R2")]).passed


# -- rates ---------------------------------------------------------------------------------
def test_a_published_rate_with_its_denominator_pins_the_numerator():
    lattice = beat_line([4, 12, 14, 30])
    result = protect(lattice, K)
    assert check(lattice, result.suppressed).passed
    # 4 / 2,150 residents = 1.86 per 1,000, published as 1.9 next to the population
    rate = PublishedRate(lattice.keys[0], value=1.9, denominator=2150, per=1000, decimals=1)
    report = check(lattice, result.suppressed, rate)
    [failure] = report.failures
    assert failure.key == lattice.keys[0]
    assert (failure.lower, failure.upper) == pytest.approx((1.85 * 2.15, 1.95 * 2.15))
    assert failure.reason == "max 4 < k=10; min 4 > 0"
    # the rate of a published cell adds nothing
    assert check(
        lattice, result.suppressed, PublishedRate(lattice.keys[3], 14.0, 1000, per=1000)
    ).passed


def test_an_unsuppressed_primary_is_reported_as_published():
    lattice = beat_line([4, 12, 14, 30])
    report = check(lattice, np.zeros(lattice.size, dtype=bool))
    assert [(f.key.geo_code, f.reason) for f in report.failures] == [("B0", "published")]
    assert "B0/total n=4 provable range [4, 4] (published)" in report.text()


def test_pruning_never_removes_a_needed_complement():
    # Both hand cases are already minimal, so pruning must leave them exactly as they are
    # (the property tests show it does remove unneeded secondaries on random tables).
    lattice = beat_line([3, 12, 0, 0])
    assert codes(lattice, protect(lattice, K, prune=True).suppressed) == {"B0", "B1"}
    lattice = three_levels()
    assert codes(lattice, protect(lattice, K, prune=True).suppressed) == {
        "B11",
        "B12",
        "D1",
        "D2",
        "B21",
    }


# -- insiders ------------------------------------------------------------------------------
def test_an_insider_who_knows_their_cell_pins_its_line_partner():
    # D = 28 published; B0 = 3 and B1 = 8 are small: B0 is anywhere in 0..11.
    lattice = beat_line([3, 8, 17])
    two = pattern(lattice, {"B0", "B1"})
    assert audit([Publication(lattice, two, K)], exact=True).passed
    # A person who knows that B1 is not empty still leaves B0 anywhere in 0..10 ...
    # ... but the eight people in B1 may know each other: B1 = 8, so B0 = 11 - 8 = 3
    # (and the three in B0 learn B1 = 8).
    report = audit([Publication(lattice, two, K, insider=True)], exact=True)
    assert [(f.key.geo_code, f.lower, f.upper) for f in report.failures] == [
        ("B0", 3.0, 3.0),
        ("B1", 8.0, 8.0),
    ]
    assert report.failures[0].reason.endswith("an insider who knows month/2025-01-01/beat/B1/total")
    # Hiding the line's third beat: to B1's insider B0 + B2 = 20, to B0's B1 + B2 = 25.
    result = protect(lattice, K, insider=True)
    assert codes(lattice, result.suppressed) == {"B0", "B1", "B2"}
    assert audit([result.publication()], exact=True).passed


def two_by_two() -> Lattice:
    """Two beats by sex with all margins: a = B0/F = 1, b = B0/M = 20, c = B1/F = 30, d = 1."""
    leaf = {("B0", "F"): 1, ("B0", "M"): 20, ("B1", "F"): 30, ("B1", "M"): 1}
    keys, values = [], []
    for level, code, beats in [("beat", "B0", ["B0"]), ("beat", "B1", ["B1"]),
                               ("district", "D", ["B0", "B1"])]:  # fmt: skip
        for breakdown, sexes in [("total", "FM"), ("sex=F", "F"), ("sex=M", "M")]:
            keys.append(("month", JAN, level, code, breakdown))
            values.append(sum(leaf[b, s] for b in beats for s in sexes))
    return Lattice.build(keys, values, {"B0": "D", "B1": "D"}, geo_levels=("beat", "district"))


def test_the_two_by_two_rectangle_does_not_hold_against_an_insider():
    lattice = two_by_two()
    rectangle = np.array([k.geo_level == "beat" and k.breakdown != "total" for k in lattice.keys])
    outsider = audit([Publication(lattice, rectangle, K)], exact=True)
    assert outsider.passed  # a and d anywhere in 0..20
    # d = a: the person alone in a knows a = 1, so d = 1 (and the other way round).
    report = audit([Publication(lattice, rectangle, K, insider=True)], exact=True)
    assert sorted((f.key.geo_code, f.lower, f.upper) for f in report.failures) == [
        ("B0", 1.0, 1.0),
        ("B1", 1.0, 1.0),
    ]
    result = protect(lattice, K, insider=True)
    assert result.audit.passed
    assert audit([result.publication()], exact=True).passed
    assert not result.suppressed[lattice.index[CellKey("month", JAN, "district", "D", "total")]]


def test_an_insider_breaks_a_pair_that_sums_to_exactly_k():
    lattice = beat_line([4, 6, 30])
    pair = pattern(lattice, {"B0", "B1"})
    assert audit([Publication(lattice, pair, K)], exact=True).passed  # 4 + 6 = 10 = k
    # A member of B1 knows B1 >= 1, so B0 <= 9 < k (and the same the other way round).
    report = audit([Publication(lattice, pair, K, insider=True)], exact=True)
    assert [(f.key.geo_code, f.upper) for f in report.failures] == [("B0", 9.0), ("B1", 9.0)]
    result = protect(lattice, K, insider=True)
    assert codes(lattice, result.suppressed) == {"B0", "B1", "B2"}
    assert result.audit.passed
    assert audit([result.publication()], exact=True).passed


def test_an_empty_table_is_protected_trivially():
    empty = Lattice.build([], [], {})
    result = protect(empty, K)
    assert (result.suppressed.dtype, result.suppressed.size, result.audit.passed) == (bool, 0, True)


# -- no dead ends --------------------------------------------------------------------------
def corrected_month(feb_b00: int, feb_b02: int) -> Lattice:
    """Six beats in two districts, January and February and their quarter; February's B00 and
    B02 as given (a correction moves a record from one beat to the other)."""
    leaf = {
        JAN: [0, 7, 9, 0, 1, 6],
        FEB: [feb_b00, 23, feb_b02, 4, 9, 0],
    }
    beats = ["B00", "B01", "B02", "B10", "B11", "B12"]
    parent = {b: f"D{b[1]}" for b in beats} | {"D0": "RIV", "D1": "RIV"}
    places = [("beat", b, [b]) for b in beats]
    places += [("district", d, [b for b in beats if parent[b] == d]) for d in ("D0", "D1")]
    places.append(("city", "RIV", beats))
    keys, values = [], []
    for level, code, inside in places:
        for period, start, months_in in [("month", JAN, [JAN]), ("month", FEB, [FEB]),
                                         ("quarter", JAN, [JAN, FEB])]:  # fmt: skip
            keys.append((period, start, level, code, "total"))
            values.append(sum(leaf[m][beats.index(b)] for m in months_in for b in inside))
    return Lattice.build(keys, values, parent)


def test_a_corrected_month_that_no_pattern_can_protect_is_withheld_not_blocked():
    rule = Rule(min_cell_size=K, insider=True)
    first = corrected_month(6, 0)
    r1 = protect(first, K, insider=True)
    assert r1.audit.passed
    published = replace(r1.publication("R1"), sequence=1)
    sticky = [first.keys[i] for i in np.flatnonzero(r1.suppressed)]
    # February's B00 6 -> 5 and B02 0 -> 1: district D0 is unchanged, so (linked through it)
    # the one person now in B02 learns that B00 held at least one in the first release.
    second = corrected_month(5, 1)
    stuck = protect(second, K, forced=sticky, history=[published], name="R2", insider=True)
    assert not stuck.audit.passed  # what used to block the provider's release
    result, why = choose_pattern(second, rule, sticky, [], [published])
    assert why == WITHHELD
    assert result.suppressed.all() and result.audit.passed


def test_a_fallback_is_recorded_per_provider_and_ends_the_refresh(tmp_path):
    build = tmp_path / "build.duckdb"
    con = duckdb.connect(str(build))
    fallbacks.write(con, "probation", [("pst", "probation__revocations", WITHHELD)])
    fallbacks.write(con, "school", [("public", "school__suspensions", NEW_PATTERN)])
    con.close()
    line = fallbacks.summary(build)
    assert line == (
        f"WARNING: not protected the usual way: probation__revocations [pst]: {WITHHELD}; "
        f"school__suspensions [public]: {NEW_PATTERN}"
    )
    con = duckdb.connect(str(build))
    fallbacks.write(con, "probation", [])  # the next build protects it as usual
    fallbacks.write(con, "school", [])
    con.close()
    assert fallbacks.summary(build) is None


def random_cube(seed: int) -> Lattice:
    """Beats of two districts by month (with quarters and the year) by sex, Poisson counts."""
    rng = np.random.default_rng(seed)
    beats = {f"B{d}{b}": f"D{d}" for d in (1, 2) for b in range(3)}
    months = [f"2025-{m:02d}-01" for m in range(1, 7)]
    leaf = {(b, m, s): int(rng.poisson(6)) for b in beats for m in months for s in "FMU"}
    geos = {b: [b] for b in beats} | {d: [b for b in beats if beats[b] == d] for d in ("D1", "D2")}
    geos["RIV"] = list(beats)
    level = {code: "beat" if code in beats else "city" if code == "RIV" else "district"
             for code in geos}  # fmt: skip
    periods = {("month", m): [m] for m in months}
    periods |= {("quarter", JAN): months[:3], ("quarter", "2025-04-01"): months[3:]}
    periods[("year", JAN)] = months
    keys, values = [], []
    for (code, bs), ((pl, ps), ms), sexes in product(
        geos.items(), periods.items(), ["FMU", *"FMU"]
    ):
        keys.append((pl, ps, level[code], code, "total" if len(sexes) > 1 else f"sex={sexes}"))
        values.append(sum(leaf[b, m, s] for b in bs for m in ms for s in sexes))
    return Lattice.build(keys, values, {**beats, "D1": "RIV", "D2": "RIV"})


def test_a_pool_of_processes_audits_as_one_process_does(monkeypatch):
    """Large audits attack components in worker processes: same verdicts and bounds as in this
    process, also after this process has solved integer problems itself (HiGHS's threads)."""
    from cs360_pipeline.privacy import audit as audit_module

    lattice = random_cube(3)
    pattern = protect(lattice, K).suppressed
    pattern[np.flatnonzero(pattern & (lattice.rank > 0))[:5]] = False  # some cells now fail
    pub = [Publication(lattice, pattern, K)]
    monkeypatch.setattr(audit_module, "PARALLEL_UNKNOWNS", 10**9)
    alone = audit(pub, exact=True)
    assert alone.milps > 0 and not alone.passed
    monkeypatch.setattr(audit_module, "PARALLEL_UNKNOWNS", 0)
    pooled = audit(pub, exact=True)
    assert pooled.failures == alone.failures
    assert pooled.bounds == alone.bounds
    assert (pooled.lps, pooled.milps) == (alone.lps, alone.milps)
