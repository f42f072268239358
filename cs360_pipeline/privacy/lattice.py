"""The cells of one table family and the additive equations that link them.

This is the only piece the complementary suppressor and the independent auditor share: both must
agree on *which* sums a reader can form, and nothing else.

Data model (one measure, one audience = one "table family"):

- a cell is keyed by ``CellKey(period_level, period_start, geo_level, geo_code, breakdown)`` and
  holds its true count ``n >= 0`` (integer);
- geography is a tree given as ``geo_parent`` (code -> parent code, codes unique across levels),
  levels ordered finest first (default beat -> district -> city); where the policy defines zones
  it is a :class:`~cs360_pipeline.privacy.geography.Geography`, whose pieces sit between beats
  and districts and also sum to the zones they lie in (the ``'zone'`` equations);
- periods are ISO dates of the period start; month -> quarter -> year parents are computed;
- a breakdown is ``'total'`` or ``'dim=value'`` pairs joined by ``';'`` (``'sex=F'``,
  ``'age_group=0-9;sex=F'`` for a crossed table). Dropping one pair gives the parent along that
  dimension, so each breakdown dimension sums to its total separately (what ``cells.py`` builds)
  and crossed breakdowns are supported as well.

For every cell and every dimension, "parent = sum of its children" is an equation, crossed with
every code of the other dimensions. **Partial parents** (a quarter with only some months
delivered, a district whose beat has no cell): the equation is written over the children that are
present. That is exact for cells built by one ``GROUPING SETS`` pass (an undelivered month has no
rows, so the quarter is the sum of the delivered months) and it is the *stronger* attacker, so
the audit stays conservative. A child that exists but is deliberately not published must be in
the table as a (forced) suppressed cell, never left out. ``residuals()`` verifies additivity.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

GEO_LEVELS = ("beat", "district", "city")
# Zones cut across districts; pieces (never shown) are their atoms: see privacy/geography.py.
PIECE = "piece"
ZONE = "zone"
PERIOD_LEVELS = ("month", "quarter", "year")
TOTAL = "total"
KEY_COLUMNS = ("period_level", "period_start", "geo_level", "geo_code", "breakdown")


class CellKey(NamedTuple):
    """The identity of a cell, as stored in ``shared.cells_*`` (dates as ISO strings)."""

    period_level: str
    period_start: str
    geo_level: str
    geo_code: str
    breakdown: str


@cache
def breakdown_parts(breakdown: str) -> tuple[tuple[str, str], ...]:
    """``'sex=F;age_group=0-9'`` -> sorted ``(('age_group','0-9'), ('sex','F'))``; total -> ().

    Cached: a table has hundreds of thousands of cells but only a few dozen breakdowns."""
    if breakdown == TOTAL:
        return ()
    parts = []
    for part in breakdown.split(";"):
        dim, sep, value = part.partition("=")
        if not sep or not dim:
            raise ValueError(f"breakdown {breakdown!r}: expected 'total' or 'dim=value[;...]'")
        parts.append((dim, value))
    if len({d for d, _ in parts}) != len(parts):
        raise ValueError(f"breakdown {breakdown!r} repeats a dimension")
    return tuple(sorted(parts))


def breakdown_label(parts: Iterable[tuple[str, str]]) -> str:
    """The canonical label of a breakdown (sorted pairs), ``'total'`` when empty."""
    return _label(tuple(parts))


@cache
def _label(parts: tuple[tuple[str, str], ...]) -> str:
    pairs = sorted(parts)
    return ";".join(f"{d}={v}" for d, v in pairs) if pairs else TOTAL


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


@cache
def period_parent(level: str, start: str) -> tuple[str, str] | None:
    """Month -> quarter -> year on ISO period starts; None at the top."""
    day = dt.date.fromisoformat(start)
    if level == "month":
        return "quarter", dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1).isoformat()
    if level == "quarter":
        return "year", dt.date(day.year, 1, 1).isoformat()
    if level == "year":
        return None
    raise ValueError(f"unknown period level {level!r}")


def _period_chain(key: CellKey) -> list[tuple[str, str]]:
    """The key's period and every period containing it."""
    chain = [(key.period_level, key.period_start)]
    while (up := period_parent(*chain[-1])) is not None:
        chain.append(up)
    return chain


def _nested(a: list, b: list) -> bool:
    """Two chains from a node up to the root: is one node an ancestor (or self) of the other?"""
    return a[0] in b or b[0] in a


def normalize_key(key: Sequence[Any]) -> CellKey:
    """Any 5-sequence (dates or strings) -> a canonical ``CellKey`` (a ``CellKey`` is one)."""
    if type(key) is CellKey:
        return key
    pl, ps, gl, gc, bd = key
    return CellKey(str(pl), _iso(ps), str(gl), str(gc), _canonical_breakdown(str(bd)))


@cache
def _canonical_breakdown(breakdown: str) -> str:
    return breakdown_label(breakdown_parts(breakdown))


@cache
def _breakdown_parents(breakdown: str) -> tuple[tuple[str, str], ...]:
    """(dimension, parent breakdown) for each dimension the breakdown can be summed over."""
    parts = breakdown_parts(breakdown)
    return tuple(
        (f"breakdown:{dim}", breakdown_label(parts[:i] + parts[i + 1 :]))
        for i, (dim, _) in enumerate(parts)
    )


@dataclass(frozen=True, eq=False)
class Lattice:
    """Cells (sorted by key) plus the equations ``parent - sum(children) = 0``.

    Equation ``e`` has parent ``eq_parent[e]``, children ``eq_child[eq_ptr[e]:eq_ptr[e+1]]`` and
    the dimension it sums over ``eq_dim[e]`` (``'geo'``, ``'period'`` or ``'breakdown:<dim>'``).
    ``rank`` is how coarse a cell is (0 = a leaf in every dimension).
    """

    keys: tuple[CellKey, ...]
    n: np.ndarray
    rank: np.ndarray
    eq_parent: np.ndarray
    eq_ptr: np.ndarray
    eq_child: np.ndarray
    eq_dim: tuple[str, ...]
    index: dict[CellKey, int] = field(repr=False)
    geo_parent: Mapping[str, str] = field(repr=False, default_factory=dict)
    pieces: Mapping[str, tuple[str, ...]] = field(repr=False, default_factory=dict)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        keys: Iterable[Sequence[Any]],
        n: Iterable[int],
        geo_parent: Mapping[str, str],
        geo_levels: Sequence[str] = GEO_LEVELS,
    ) -> Lattice:
        """Cells from parallel keys and counts; equations derived from the hierarchies."""
        pairs = sorted(zip((normalize_key(k) for k in keys), (int(v) for v in n), strict=True))
        cell_keys = tuple(k for k, _ in pairs)
        counts = np.array([v for _, v in pairs], dtype=np.int64)
        if len(set(cell_keys)) != len(cell_keys):
            raise ValueError("duplicate cell keys")
        if (counts < 0).any():
            raise ValueError("cell counts must be >= 0")
        index = {k: i for i, k in enumerate(cell_keys)}
        pieces = dict(getattr(geo_parent, "pieces", {}))
        groups = _equation_groups(cell_keys, index, geo_parent, pieces, tuple(geo_levels))
        order = sorted(groups)
        ptr = np.zeros(len(order) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(groups[g]) for g in order])
        child = np.array([c for g in order for c in groups[g]], dtype=np.int64)  # ascending
        return cls(
            keys=cell_keys,
            n=counts,
            rank=_ranks(cell_keys, tuple(geo_levels)),
            eq_parent=np.array([p for p, _ in order], dtype=np.int64),
            eq_ptr=ptr,
            eq_child=child,
            eq_dim=tuple(d for _, d in order),
            index=index,
            geo_parent=dict(geo_parent),
            pieces=pieces,
        )

    @classmethod
    def from_table(
        cls, table: Any, geo_parent: Mapping[str, str], geo_levels: Sequence[str] = GEO_LEVELS
    ) -> Lattice:
        """From a pyarrow Table or a DuckDB relation with the key columns and ``n``."""
        columns = [*KEY_COLUMNS, "n"]
        if hasattr(table, "fetchall") and hasattr(table, "columns"):
            rows = table.select(*columns).fetchall()
        else:
            data = table.select(columns).to_pydict()
            rows = list(zip(*(data[c] for c in columns), strict=True))
        if any(r[5] is None for r in rows):
            raise ValueError("the lattice needs true counts: n is NULL in some rows")
        return cls.build((r[:5] for r in rows), (r[5] for r in rows), geo_parent, geo_levels)

    # -- views -----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def n_equations(self) -> int:
        return len(self.eq_parent)

    def children(self, e: int) -> np.ndarray:
        return self.eq_child[self.eq_ptr[e] : self.eq_ptr[e + 1]]

    def members(self, e: int) -> np.ndarray:
        """Parent first, then children."""
        return np.concatenate(([self.eq_parent[e]], self.children(e)))

    @cached_property
    def matrix(self) -> sparse.csr_matrix:
        """E x N: +1 for the parent, -1 for each child; ``matrix @ n == 0`` when additive."""
        sizes = np.diff(self.eq_ptr)
        rows = np.concatenate(
            (np.arange(self.n_equations), np.repeat(np.arange(len(sizes)), sizes))
        )
        cols = np.concatenate((self.eq_parent, self.eq_child))
        vals = np.concatenate((np.ones(len(self.eq_parent)), -np.ones(len(self.eq_child))))
        return sparse.csr_matrix((vals, (rows, cols)), shape=(self.n_equations, self.size))

    @cached_property
    def cell_equations(self) -> sparse.csr_matrix:
        """N x E incidence: which equations each cell is a member of."""
        return (self.matrix != 0).T.tocsr().astype(np.int8)

    def residuals(self) -> np.ndarray:
        """``parent - sum(children)`` per equation: all zero for an additive table."""
        return self.matrix @ self.n.astype(float)

    def overlap(self, a: CellKey, b: CellKey) -> bool:
        """Could cells ``a`` and ``b`` count one record in both, by their keys alone? Their
        periods and their places must be one inside the other, and no breakdown dimension may
        hold two different values (beat B0 by sex F and beat B1 by sex M never do)."""
        if not _nested(_period_chain(a), _period_chain(b)):
            return False
        if not self._covers(a.geo_code) & self._covers(b.geo_code):
            return False
        values = dict(breakdown_parts(a.breakdown))
        return all(values.get(dim, value) == value for dim, value in breakdown_parts(b.breakdown))

    def _covers(self, code: str) -> frozenset[str]:
        """The code and every code under it; a zone covers its pieces and their beats."""
        return self._cover_sets.get(code, frozenset((code,)))

    @cached_property
    def _cover_sets(self) -> dict[str, frozenset[str]]:
        below: dict[str, set[str]] = defaultdict(set)
        for code in self.geo_parent:
            chain, up = [code], self.geo_parent.get(code)
            while up is not None and len(chain) <= len(self.geo_parent):
                chain.append(up)
                up = self.geo_parent.get(up)
            for i, above in enumerate(chain):
                below[above].update(chain[: i + 1])
        for piece, zones in self.pieces.items():
            for zone in zones:
                below[zone] |= below[piece] | {zone, piece}
        return {code: frozenset(codes) for code, codes in below.items()}

    def mask(self, keys: Iterable[Sequence[Any]]) -> np.ndarray:
        """Boolean mask of the given keys; keys absent from this table are ignored."""
        out = np.zeros(self.size, dtype=bool)
        for key in keys:
            i = self.index.get(normalize_key(key))
            if i is not None:
                out[i] = True
        return out


def _equation_groups(
    keys: tuple[CellKey, ...],
    index: dict[CellKey, int],
    geo_parent: Mapping[str, str],
    pieces: Mapping[str, tuple[str, ...]],
    geo_levels: tuple[str, ...],
) -> dict[tuple[int, str], list[int]]:
    """(parent index, dimension) -> present children: one equation each.

    A cell's parent along each dimension is the cell with that one key part moved up a level
    (geography through ``geo_parent``, period month -> quarter -> year, a breakdown pair dropped).
    A beat whose piece is not in the table (its level left out) sums to its district directly;
    a piece also sums to each zone it lies in. Parents are looked up as plain tuples: equal to
    their ``CellKey``, and cheaper to make.
    """
    up_level = dict(pairwise(geo_levels))
    known = {*geo_levels, PIECE, ZONE}
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, (pl, ps, gl, gc, bd) in enumerate(keys):
        if gl not in known:
            raise ValueError(f"unknown geography level {gl!r}")
        j, up = None, geo_parent.get(gc) if gl != ZONE else None
        if up in pieces:
            j = index.get((pl, ps, PIECE, up, bd))
            up = geo_parent.get(up) if j is None else None
        level = up_level.get(geo_levels[0] if gl == PIECE else gl)
        if up is not None and level is not None:
            j = index.get((pl, ps, level, up, bd))
        if j is not None:
            groups[(j, "geo")].append(i)
        for zone in pieces.get(gc, ()) if gl == PIECE else ():
            j = index.get((pl, ps, ZONE, zone, bd))
            if j is not None:
                groups[(j, ZONE)].append(i)
        up = period_parent(pl, ps)
        if up is not None:
            j = index.get((up[0], up[1], gl, gc, bd))
            if j is not None:
                groups[(j, "period")].append(i)
        for dim, parent in _breakdown_parents(bd):
            j = index.get((pl, ps, gl, gc, parent))
            if j is not None:
                groups[(j, dim)].append(i)
    return groups


def _ranks(keys: tuple[CellKey, ...], geo_levels: tuple[str, ...]) -> np.ndarray:
    """Coarseness: geography level + period level + breakdown dimensions summed away."""
    dims = max((len(breakdown_parts(k.breakdown)) for k in keys), default=0)
    geo_rank = {level: i for i, level in enumerate(geo_levels)} | {PIECE: 0, ZONE: 1}
    return np.array(
        [
            geo_rank[k.geo_level]
            + PERIOD_LEVELS.index(k.period_level)
            + dims
            - len(breakdown_parts(k.breakdown))
            for k in keys
        ],
        dtype=np.int64,
    )


def unknown_components(lattice: Lattice, unknown: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the unknown cells linked through shared equations.

    Returns (count, labels) with label -1 for known cells. Two unknowns in different components
    share no equation, so each component can be protected or audited on its own.
    """
    incidence = lattice.cell_equations[unknown]  # U x E
    u, e = incidence.shape
    if u == 0:
        return 0, np.full(lattice.size, -1, dtype=np.int64)
    graph = sparse.bmat(
        [[sparse.csr_matrix((u, u)), incidence], [incidence.T, sparse.csr_matrix((e, e))]],
        format="csr",
    )
    _, labels = csgraph.connected_components(graph, directed=False)
    cell_labels = labels[:u]
    _, dense = np.unique(cell_labels, return_inverse=True)
    out = np.full(lattice.size, -1, dtype=np.int64)
    out[np.flatnonzero(unknown)] = dense
    return int(dense.max()) + 1, out
