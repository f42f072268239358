"""Skipping the audit of unchanged tables is sound: the two facts it rests on, attacked.

``privacy.audit_memo`` lets a family pass without an attack when its chains of publications
(a repeat of the publication just newer left out) start a chain that passed before. That rests
on two facts about the attacker, checked here with the real attacker on random small tables
over several releases: publishing a table again unchanged teaches an attacker nothing, and
forgetting the oldest releases never narrows a bound.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cs360_pipeline.privacy import audit_memo
from cs360_pipeline.privacy.audit import Publication, audit
from cs360_pipeline.privacy.lattice import Lattice

K = 5
MONTHS = ("2025-01-01", "2025-02-01")


def table(values: list[int]) -> Lattice:
    """Beats B0..B3 in districts D0 (B0, B1) and D1 (B2, B3), for two months and their quarter."""
    parent = {f"B{i}": f"D{i // 2}" for i in range(4)}
    keys, n = [], []
    for m, month in enumerate(MONTHS):
        for i in range(4):
            keys.append(("month", month, "beat", f"B{i}", "total"))
            n.append(values[4 * m + i])
        for d in range(2):
            keys.append(("month", month, "district", f"D{d}", "total"))
            n.append(values[4 * m + 2 * d] + values[4 * m + 2 * d + 1])
    for i in range(4):
        keys.append(("quarter", MONTHS[0], "beat", f"B{i}", "total"))
        n.append(values[i] + values[4 + i])
    for d in range(2):
        keys.append(("quarter", MONTHS[0], "district", f"D{d}", "total"))
        n.append(sum(values[j] + values[4 + j] for j in (2 * d, 2 * d + 1)))
    return Lattice.build(keys, n, parent)


# Counts mostly at or above k, some small; most cells hidden: about 40 % of the families pass,
# so both outcomes are attacked.
count = st.integers(0, 24).map(lambda v: v - 20 if v > 20 else v + 6)
hidden = st.integers(0, 9).map(lambda v: v < 7)
release = st.tuples(
    st.lists(count, min_size=8, max_size=8), st.lists(hidden, min_size=18, max_size=18)
)


def publications(releases: list[tuple[list[int], list[bool]]]) -> list[Publication]:
    """Newest first, as the release audit orders them."""
    out = []
    for age, (values, hidden) in enumerate(releases):
        lattice = table(values)
        mask = np.array(hidden, dtype=bool)
        mask |= (lattice.n > 0) & (lattice.n < K)  # every small count hidden
        out.append(Publication(lattice, mask, K, f"r{age}", sequence=-age))
    return out


def verdict(pubs: list[Publication]) -> bool:
    return audit(pubs, exact=True).passed


@settings(max_examples=60, deadline=None)
@given(st.lists(release, min_size=1, max_size=3), st.integers(0, 2))
def test_a_table_published_again_unchanged_teaches_nothing(
    releases: list[tuple[list[int], list[bool]]], at: int
) -> None:
    pubs = publications(releases)
    at = min(at, len(pubs) - 1)
    again = [
        Publication(p.lattice, p.suppressed, p.k, f"x{i}", sequence=-i)
        for i, p in enumerate([*pubs[: at + 1], pubs[at], *pubs[at + 1 :]])
    ]
    assert verdict(again) == verdict(pubs)
    assert audit_memo.family_chains([("pst", again)]) == audit_memo.family_chains([("pst", pubs)])


@settings(max_examples=60, deadline=None)
@given(st.lists(release, min_size=2, max_size=3))
def test_forgetting_the_oldest_release_never_narrows_a_bound(
    releases: list[tuple[list[int], list[bool]]],
) -> None:
    pubs = publications(releases)
    if verdict(pubs):
        assert verdict(pubs[:-1])


def test_a_family_is_covered_by_the_same_chains_or_longer_ones() -> None:
    passed = (("pst", ("a", "b", "c")), ("public", ("p", "q")))
    assert audit_memo.covered(passed, [passed])
    assert audit_memo.covered((("pst", ("a", "b")), ("public", ("p",))), [passed])
    assert not audit_memo.covered((("pst", ("a", "c")), ("public", ("p", "q"))), [passed])
    assert not audit_memo.covered((("pst", ("a", "b", "c", "d")), ("public", ("p", "q"))), [passed])
    assert not audit_memo.covered((("public", ("a", "b")), ("pst", ("p",))), [passed])
    assert not audit_memo.covered((("pst", ("a", "b", "c")),), [passed])


def test_a_repeat_is_left_out_only_next_to_itself() -> None:
    a, b = publications([([3] * 8, [False] * 18), ([7] * 8, [False] * 18)])
    (chain,) = audit_memo.family_chains([("pst", [a, a, b, a])])
    digest = audit_memo.publication_digest
    assert chain == ("pst", (digest(a), digest(b), digest(a)))
