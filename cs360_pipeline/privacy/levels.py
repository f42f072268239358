"""Table design before suppression: which levels of a measure's table an audience gets at all.

A level is one cut of a table: a geography level by a period level by a set of breakdown
dimensions (beats by month, districts by quarter by sex, ...). A level whose non-zero cells are
mostly small would be mostly suppressed, and would drag complements into the levels around it, so
it is left out, with every finer level. For a percent, a level where most denominators are below
the minimum denominator is left out too, since its percents could not be shown anyway. A
measure keeps every level some metric reading it can show, and a percent's numerator and
denominator keep the same levels, so every row it has carries both.

Leaving out whole levels, closed downwards, keeps every remaining cell's parents in the table, so
no sum runs through a missing cell and the lattice's equations stay complete. The coarsest total
(the city by year) always stays, suppressed if it must be, so every measure says at least that
much about itself. Zones sit under districts in this order (a sparse district level takes its
zones with it), and a zone's pieces, never shown, go only with their zone or district level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

from cs360_pipeline.privacy.lattice import PERIOD_LEVELS, PIECE, breakdown_parts
from cs360_pipeline.privacy.policy import Rule

Level = tuple[str, str, frozenset[str]]


def level_of(row: Sequence) -> Level:
    """(geo level, period level, breakdown dimensions) of a cell row keyed like the lattice."""
    return _level(row[2], row[0], row[4])


@cache
def _level(geo_level: str, period_level: str, breakdown: str) -> Level:
    return geo_level, period_level, frozenset(dim for dim, _ in breakdown_parts(breakdown))


def level_label(level: Level) -> str:
    geo, period, dims = level
    return " ".join((f"{geo}/{period}", *(f"by {d}" for d in sorted(dims))))


# Geography levels under each one (a partial order: beats are not under zones).
_GEO_BELOW = {
    "beat": {"beat"},
    PIECE: {PIECE},
    "zone": {PIECE, "zone"},
    "district": {"beat", PIECE, "zone", "district"},
    "city": {"beat", PIECE, "zone", "district", "city"},
}
_GEO_RANK = {"beat": 0, PIECE: 0, "zone": 1, "district": 2, "city": 3}


def _finer_or_equal(a: Level, b: Level) -> bool:
    return (
        a[0] in _GEO_BELOW[b[0]]
        and PERIOD_LEVELS.index(a[1]) <= PERIOD_LEVELS.index(b[1])
        and a[2] >= b[2]
    )


def sparse_levels(rows: Sequence[Sequence], threshold: int, max_small_share: float) -> set[Level]:
    """Levels whose non-zero cells (``row[5]``) are mostly below ``threshold``, and every level
    finer than one of them; never the coarsest total."""
    small: dict[Level, int] = {}
    nonzero: dict[Level, int] = {}
    for row in rows:
        level, n = level_of(row), row[5]
        small[level] = small.get(level, 0) + int(0 < n < threshold)
        nonzero[level] = nonzero.get(level, 0) + int(n > 0)
    top = max(
        (lv for lv in small if not lv[2]),
        key=lambda lv: (_GEO_RANK[lv[0]], PERIOD_LEVELS.index(lv[1])),
        default=None,
    )
    sparse = {
        lv
        for lv in small
        if lv != top
        and lv[0] != PIECE
        and nonzero[lv]
        and small[lv] / nonzero[lv] > max_small_share
    }
    return {lv for lv in small if any(_finer_or_equal(lv, s) for s in sparse)}


def levels_left_out(
    rows: Mapping[str, Sequence[Sequence]],
    measure_rule: Mapping[str, Rule],
    metrics: Mapping[str, tuple[tuple[str, ...], Rule]],
) -> dict[str, set[Level]]:
    """Per measure, the levels its table leaves out for one audience.

    ``rows``: each measure's cells; ``measure_rule``: the rule its cells are protected by;
    ``metrics``: metric -> (the measures it reads, numerator first, all in ``rows``; the
    metric's rule). A metric leaves out its measures' sparse levels and, for a percent, the
    levels where its denominators are mostly small. A measure keeps a level any metric reading
    it can show, and a percent's two measures keep the same levels.
    """
    own = {
        m: sparse_levels(r, measure_rule[m].min_cell_size, measure_rule[m].max_small_share)
        for m, r in rows.items()
    }
    out: dict[str, set[Level]] = {}
    for measures, rule in metrics.values():
        left_out = set().union(*(own[m] for m in measures))
        if len(measures) == 2:
            left_out |= sparse_levels(rows[measures[1]], rule.min_denominator, rule.max_small_share)
        for m in measures:
            out[m] = out[m] & left_out if m in out else left_out
    pairs = [measures for measures, _ in metrics.values() if len(measures) == 2]
    changed = True
    while changed:  # a denominator can serve several percents: settle them together
        changed = False
        for numerator, denominator in pairs:
            both = out[numerator] & out[denominator]
            changed |= both != out[numerator] or both != out[denominator]
            out[numerator] = out[denominator] = both
    return {m: out.get(m, own[m]) for m in rows}
