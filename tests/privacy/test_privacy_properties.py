"""Property tests: random small hierarchical tables through the real suppressor and auditor.

Tables: 2 districts of 2-4 beats and the city, 2-3 months of one quarter (a partial quarter when
2), optionally by sex (F, M, U and total); leaf counts are mostly 0 or small, some large. The
broken-pattern test judges derivability with linear algebra (a null-space test), independently of
the LP auditor.
"""

from __future__ import annotations

import datetime as dt
from itertools import product

import numpy as np
import scipy.linalg
import scipy.optimize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs360_pipeline.privacy.audit import Publication, audit
from cs360_pipeline.privacy.complementary import protect
from cs360_pipeline.privacy.lattice import Lattice

K = 10
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
count = st.one_of(st.just(0), st.integers(1, 9), st.integers(1, 9), st.integers(10, 40))


@st.composite
def tables(draw: st.DrawFn) -> Lattice:
    beats_per = draw(st.lists(st.integers(2, 4), min_size=2, max_size=2))
    months = draw(st.integers(2, 3))
    sexes = ("F", "M", "U") if draw(st.booleans()) else (None,)
    parent = {f"B{d}{b}": f"D{d}" for d, per in enumerate(beats_per) for b in range(per)}
    parent.update({"D0": "RIV", "D1": "RIV"})
    beats = [b for b in parent if b.startswith("B")]
    leaf = {(b, m, s): draw(count) for b, m, s in product(beats, range(months), sexes)}
    month_codes = [dt.date(2025, m + 1, 1).isoformat() for m in range(months)]
    geos = [("beat", b, [b]) for b in beats]
    geos += [("district", d, [b for b in beats if parent[b] == d]) for d in ("D0", "D1")]
    geos.append(("city", "RIV", beats))
    periods = [("month", c, [m]) for m, c in enumerate(month_codes)]
    periods.append(("quarter", "2025-01-01", list(range(months))))
    breakdowns = [("total", list(sexes))]
    if sexes[0] is not None:
        breakdowns += [(f"sex={s}", [s]) for s in sexes]
    keys, values = [], []
    for (gl, gc, bs), (pl, ps, ms), (bd, ss) in product(geos, periods, breakdowns):
        keys.append((pl, ps, gl, gc, bd))
        values.append(sum(leaf[b, m, s] for b in bs for m in ms for s in ss))
    return Lattice.build(keys, values, parent)


def derivable(lattice: Lattice, suppressed: np.ndarray) -> set[int]:
    """Suppressed cells whose value is fixed by the published ones (exact linear algebra)."""
    cells = np.flatnonzero(suppressed)
    a = lattice.matrix[:, cells].toarray()
    null = scipy.linalg.null_space(a) if a.size else np.zeros((len(cells), len(cells)))
    if null.shape[1] == 0:
        return set(cells.tolist())
    return {int(c) for c, row in zip(cells, null, strict=True) if np.all(np.abs(row) < 1e-9)}


@SETTINGS
@given(tables())
def test_every_pattern_the_suppressor_produces_passes_the_auditor(lattice: Lattice):
    result = protect(lattice, K)
    primary = (lattice.n > 0) & (lattice.n < K)
    assert result.audit.passed
    assert np.all(result.suppressed[primary])
    assert not np.any(result.secondary & (lattice.n == 0)), "a zero was used as a complement"
    report = audit([Publication(lattice, result.suppressed, K)])
    assert report.passed, report.text()
    assert report.checked == int(primary.sum())
    assert not (derivable(lattice, result.suppressed) & set(np.flatnonzero(primary).tolist()))
    again = protect(lattice, K)
    assert np.array_equal(again.suppressed, result.suppressed), "pattern is not deterministic"


@SETTINGS
@given(tables(), st.data())
def test_the_auditor_catches_a_dropped_complement(lattice: Lattice, data: st.DataObject):
    result = protect(lattice, K)
    primary = (lattice.n > 0) & (lattice.n < K)
    secondaries = np.flatnonzero(result.secondary).tolist()
    if not secondaries:
        return
    for dropped in data.draw(st.lists(st.sampled_from(secondaries), max_size=3, unique=True)):
        broken = result.suppressed.copy()
        broken[dropped] = False
        exposed = derivable(lattice, broken) & set(np.flatnonzero(primary).tolist())
        report = audit([Publication(lattice, broken, K)])
        exact = audit([Publication(lattice, broken, K)], exact=True)
        failing = {lattice.index[f.key] for f in report.failures}
        assert failing == {lattice.index[f.key] for f in exact.failures}
        assert exposed <= failing, "a derivable primary passed the audit"
        for f in exact.failures:
            assert f.lower - 1e-6 <= f.n <= f.upper + 1e-6, "the attacker's bounds must hold"
            if lattice.index[f.key] in exposed:
                assert f.lower == f.upper == f.n


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_pruning_keeps_the_pattern_safe_and_only_removes_secondaries(lattice: Lattice):
    greedy = protect(lattice, K)
    pruned = protect(lattice, K, prune=True)
    assert np.all(greedy.suppressed[pruned.suppressed]), "pruning may only remove cells"
    assert np.array_equal(greedy.primary, pruned.primary & pruned.suppressed)
    assert audit([Publication(lattice, pruned.suppressed, K)]).passed


def lp_range(lattice: Lattice, hidden: np.ndarray, cost: dict[int, float], pin: int | None):
    """min and max of ``sum(cost[c] * x_c)`` over the hidden cells by two plain LPs over the
    published equations, with hidden cell ``pin`` fixed at its true count (independent of the
    auditor's code)."""
    cells = np.flatnonzero(hidden)
    a = lattice.matrix.toarray()
    b = -a[:, ~hidden] @ lattice.n[~hidden]
    a = a[:, cells]
    bounds = [(lattice.n[c], lattice.n[c]) if c == pin else (0, None) for c in cells]
    c = np.array([cost.get(int(cell), 0.0) for cell in cells])
    out = []
    for sense in (1, -1):
        res = scipy.optimize.linprog(sense * c, A_eq=a, b_eq=b, bounds=bounds, method="highs")
        assert res.status in (0, 3), res.message
        out.append(-sense * np.inf if res.status == 3 else sense * res.fun)
    return out[0], out[1]


def share_a_leaf(lattice: Lattice, a: int, b: int) -> bool:
    """Do two cells of ``tables()`` add up a (beat, month, sex) leaf in common?"""

    def leaves(key) -> tuple[set, set, set]:
        parent = lattice.geo_parent
        beats = {x for x in parent if x.startswith("B") and key.geo_code in (x, parent[x], "RIV")}
        months = {key.period_start} if key.period_level == "month" else {"quarter"}
        sexes = {key.breakdown} if key.breakdown != "total" else {"any"}
        return beats, months, sexes

    return all(
        x & y or "quarter" in x | y or "any" in x | y
        for x, y in zip(leaves(lattice.keys[a]), leaves(lattice.keys[b]), strict=True)
    )


@SETTINGS
@given(tables(), st.integers(0, 10**6))
def test_insider_patterns_hold_against_each_insider_who_knows_their_own_cell(
    lattice: Lattice, pick: int
):
    """With ``insider=True``, a member of any one small hidden cell, who knows its count
    exactly, cannot narrow another small hidden cell: its minimum stays 0 and its maximum k,
    except for what the equations say about the insider's own group, among the cells that
    share a leaf with the insider's: a cell always part of the insider's only needs a maximum
    of ``min(k, own count)``, one always holding it a maximum of k, and one always equal to it
    is theirs."""
    result = protect(lattice, K, insider=True)
    assert result.audit.passed
    assert audit([result.publication()], exact=True).passed
    assert audit([Publication(lattice, result.suppressed, K)]).passed  # outsiders as before
    hidden = result.suppressed
    small = np.flatnonzero(hidden & (lattice.n > 0) & (lattice.n < K)).tolist()
    pairs = [(t, u) for t in small for u in small if t != u]
    for t, u in [pairs[(pick + 7919 * i) % len(pairs)] for i in range(min(6, len(pairs)))]:
        low, high = lp_range(lattice, hidden, {t: 1.0}, pin=u)
        related = share_a_leaf(lattice, t, u)
        part = related and lp_range(lattice, hidden, {u: 1.0, t: -1.0}, pin=None)[0] >= -1e-6
        whole = related and lp_range(lattice, hidden, {t: 1.0, u: -1.0}, pin=None)[0] >= -1e-6
        if part and whole:
            continue
        floor = min(K, int(lattice.n[u])) if part else K
        assert high >= floor - 1e-6, (lattice.keys[t], lattice.keys[u], low, high)
        if not (part or whole):
            assert low <= 1e-6, (lattice.keys[t], lattice.keys[u], low, high)
