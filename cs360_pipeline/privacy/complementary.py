"""Complementary (secondary) suppression: hide enough extra cells that no primary is derivable.

Primary cells (``0 < n < k``) and the forced cells (the previous release's pattern: sticky, so
two releases cannot be differenced) are suppressed first. Then:

1. **Line rule to a fixpoint.** Every equation with a suppressed member needs at least two
   suppressed members, and when its parent is published the suppressed children must sum to at
   least k (else "two small cells in one line" are both provably below k). A deficient equation
   gets one complement, the first published non-zero member by
   ``(rank, -net, n, stable hash)``: finest level first, then the cell that repairs the most other
   deficient equations minus the ones it would make deficient (closes rectangles/hypercubes instead
   of opening new lines), then the smallest count, then a blake2b hash of the key (deterministic
   across runs and machines, never random). A zero is never a complement: it protects nothing.
2. **Audit and repair.** The independent auditor attacks the pattern; for each failing primary
   the cheapest published non-zero cell sharing an equation with it (or, if none, with a
   suppressed cell of its component) is added, the line rule runs again, and only the components
   that changed are re-audited. Repeat until the audit passes or ``max_rounds`` is reached (then
   the result says it failed: never publish it).
3. **Prune (optional, ``prune=True``).** Greedy heuristics over-suppress, so each secondary,
   most valuable first, is tentatively published again and kept published if the audit of the
   components it touches still passes. One small audit per secondary: worth it for modest tables
   and for the public audience, too slow for 1e5-cell tables with 1e4 secondaries.

The line rule is local (a work list of the equations touched), and audits are per connected
component of suppressed cells, so cost follows the suppressed structure, not the table size.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cs360_pipeline.privacy.audit import AuditReport, Publication, audit
from cs360_pipeline.privacy.lattice import CellKey, Lattice, unknown_components


@dataclass(frozen=True)
class SuppressionResult:
    """The final pattern and why each cell is in it."""

    lattice: Lattice
    k: int
    primary: np.ndarray
    forced: np.ndarray
    suppressed: np.ndarray
    rounds: int
    audit: AuditReport
    seconds: float

    @property
    def secondary(self) -> np.ndarray:
        return self.suppressed & ~self.primary & ~self.forced

    @property
    def rate(self) -> float:
        """Share of cells suppressed (primary, forced and complementary)."""
        return float(self.suppressed.mean()) if self.lattice.size else 0.0

    def kinds(self) -> list[tuple[CellKey, str]]:
        """(key, 'primary' | 'forced' | 'secondary') for every suppressed cell, key order."""
        out = []
        for i in np.flatnonzero(self.suppressed):
            kind = "primary" if self.primary[i] else "forced" if self.forced[i] else "secondary"
            out.append((self.lattice.keys[i], kind))
        return out

    insider: bool = False

    def publication(self, name: str = "release") -> Publication:
        return Publication(self.lattice, self.suppressed, self.k, name, insider=self.insider)

    def summary(self) -> str:
        return (
            f"{self.lattice.size} cells, {int(self.primary.sum())} primary, "
            f"{int(self.forced.sum())} forced, {int(self.secondary.sum())} secondary, "
            f"{int(self.suppressed.sum())} suppressed ({self.rate:.1%}), {self.rounds} audit "
            f"rounds, audit {'passed' if self.audit.passed else 'FAILED'}, {self.seconds:.2f} s"
        )


def stable_hash(key: Sequence[str]) -> int:
    """A tie-break that is the same on every run and machine (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b("\x1f".join(key).encode(), digest_size=8).digest())


class LineRule:
    """Incremental state of the line rule: suppressed count and child sum per equation."""

    def __init__(
        self, lattice: Lattice, suppressed: np.ndarray, k: int, known: np.ndarray | None = None
    ) -> None:
        self.k = k
        # Cells a release still public shows with the same count: hiding them hides nothing,
        # so they count as published in every equation and are never a complement.
        self.known = (np.zeros(lattice.size, dtype=bool) if known is None else known).tolist()
        self.n = lattice.n.tolist()
        self.rank = lattice.rank.tolist()
        self.tie = [stable_hash(key) for key in lattice.keys]
        self.parent = lattice.eq_parent.tolist()
        self.members = [lattice.members(e).tolist() for e in range(lattice.n_equations)]
        inc = lattice.cell_equations
        self.cell_eqs = [
            inc.indices[inc.indptr[c] : inc.indptr[c + 1]].tolist() for c in range(lattice.size)
        ]
        self.sup = [False] * lattice.size
        self.count = [0] * lattice.n_equations
        self.child_sum = [0] * lattice.n_equations
        for c in np.flatnonzero(suppressed):
            self.add(int(c))

    def add(self, c: int) -> None:
        self.sup[c] = True
        if self.known[c]:
            return
        for e in self.cell_eqs[c]:
            self.count[e] += 1
            if self.parent[e] != c:
                self.child_sum[e] += self.n[c]

    def deficient(self, e: int) -> bool:
        count = self.count[e]
        if count == 0:
            return False
        return count == 1 or (not self.hidden(self.parent[e]) and self.child_sum[e] < self.k)

    def hidden(self, c: int) -> bool:
        return self.sup[c] and not self.known[c]

    def net(self, c: int, skip: int) -> int:
        """Deficient equations ``c`` would repair minus clean ones it would open."""
        score = 0
        for e in self.cell_eqs[c]:
            if e == skip:
                continue
            if self.deficient(e):
                score += 1
            elif self.count[e] == 0:
                score -= 1
        return score

    def candidates(self, cells: Iterable[int]) -> list[int]:
        return [c for c in cells if not self.sup[c] and not self.known[c] and self.n[c] > 0]

    def cheapest(self, cells: list[int], skip: int = -1) -> int:
        return min(cells, key=lambda c: (self.rank[c], -self.net(c, skip), self.n[c], self.tie[c]))

    def run(self, equations: Iterable[int]) -> list[int]:
        """Fix deficient equations until none is left; returns the complements added."""
        heap = sorted(set(equations))
        queued = set(heap)
        added = []
        while heap:
            e = heapq.heappop(heap)
            queued.discard(e)
            if not self.deficient(e):
                continue
            options = self.candidates(self.members[e])
            if not options:
                continue  # cannot happen on additive data; the audit would catch it
            c = self.cheapest(options, skip=e)
            self.add(c)
            added.append(c)
            for e2 in [*self.cell_eqs[c], e]:
                if e2 not in queued:
                    queued.add(e2)
                    heapq.heappush(heap, e2)
        return added

    def repair(self, cell: int, far: bool = False) -> int | None:
        """A complement next to a failing primary: its equations first, then its neighbours'.

        ``far`` (an insider's finding): search the whole suppressed component, and where no
        published non-zero cell is left, hide a published zero (to an insider who knows their
        own cell, a hidden zero is one more cell that might hold the others)."""
        frontier, seen = [cell], {cell}
        zeros: list[int] = []
        for _ in range(len(self.n) if far else 4):
            eqs = sorted({e for c in frontier for e in self.cell_eqs[c]})
            near = {m for e in eqs for m in self.members[e]}
            options = self.candidates(near)
            if options:
                return self.cheapest(options)
            zeros += [m for m in near if not self.sup[m] and not self.known[m]]
            frontier = [m for m in near if self.hidden(m) and m not in seen]
            if not frontier:
                break
            seen.update(frontier)
        return self.cheapest(sorted(set(zeros))) if far and zeros else None


def protect(
    lattice: Lattice,
    k: int,
    *,
    forced: Iterable[Sequence[Any]] | np.ndarray = (),
    unshown: Iterable[Sequence[Any]] | np.ndarray = (),
    history: Sequence[Publication] = (),
    max_rounds: int = 100,
    name: str = "release",
    prune: bool = False,
    insider: bool = False,
    line_rule: type[LineRule] | None = None,
) -> SuppressionResult:
    """Primary + complementary suppression for one table family, audited until it passes.

    ``forced`` are keys (or a mask) suppressed regardless, e.g. the previous release's pattern;
    ``unshown`` are never published either but are no reason for a complement of their own (a
    zone's pieces): complements start from the primary and forced cells only, and the audit
    then decides whether what an unshown cell gives away matters;
    ``history`` are earlier publications still public: the audit then covers their union with
    this one, and failures in them are repaired around the same key here. ``insider``: the
    pattern must also hold against a person counted in one of the suppressed cells.
    ``line_rule``: another choice of complements, for comparison (the benchmark's classic rule).
    """
    start = time.perf_counter()
    names = [p.name for p in history] + [name]
    if len(set(names)) != len(names):
        raise ValueError(f"release names must be unique across history and this one: {names}")
    primary = (lattice.n > 0) & (lattice.n < k)
    forced_mask, unshown_mask = (
        np.asarray(keys, dtype=bool) if isinstance(keys, np.ndarray) else lattice.mask(keys)
        for keys in (forced, unshown)
    )
    rule = (line_rule or LineRule)(
        lattice, primary | forced_mask | unshown_mask, k, _shown_before(lattice, history)
    )
    rule.run(e for c in np.flatnonzero(primary | forced_mask) for e in rule.cell_eqs[c])
    forced_mask |= unshown_mask
    check: list[np.ndarray] | None = None
    cleared: set = set()  # insider pairs that passed: the pattern only grows in this loop
    rounds = 0
    # LP verdicts until the LP attacker learns nothing, then the integer one; against insiders
    # the integer attacker from the start, as their cleared pairs are only kept from it.
    integer = insider
    while True:
        rounds += 1
        report = _audit(
            lattice, np.array(rule.sup, dtype=bool), k, name, history, check, insider,
            cleared if integer else None, integer,
        )  # fmt: skip
        if report.passed and not integer:
            integer, check = True, None  # every primary again, against the integer attacker
            continue
        if report.passed or rounds >= max_rounds:
            break
        added = _repair(rule, lattice, report, insider)
        if not added:
            break
        added += rule.run(e for c in added for e in rule.cell_eqs[c])
        check = None if insider else _failing(lattice, history, report, name)
    # Suppression only grows in this loop, and hiding one more cell turns a constant into an
    # unknown: every earlier solution stays feasible, so bounds only widen and a primary that
    # passed once passes for good. Each round therefore re-attacks only the cells that failed;
    # except against insiders: a newly hidden non-empty cell is one more insider. Against
    # outsiders the first rounds ask the LP only (integer re-checks are most of an audit's cost,
    # and the LP finds almost every failure); once it passes, every primary is attacked again
    # with them.
    suppressed = np.array(rule.sup, dtype=bool)
    if prune and report.passed:
        suppressed = _prune(lattice, suppressed, primary | forced_mask, k, name, history, insider)
    return SuppressionResult(
        lattice,
        k,
        primary,
        forced_mask & ~primary,
        suppressed,
        rounds,
        report,
        time.perf_counter() - start,
        insider,
    )


def _shown_before(lattice: Lattice, history: Sequence[Publication]) -> np.ndarray:
    """Cells a release still public shows with the same true count, unrevised since (walking
    back from the newest release, a cell stops at its first revision)."""
    known = np.zeros(lattice.size, dtype=bool)
    open_ = np.ones(lattice.size, dtype=bool)  # not revised in any newer release so far
    for pub in sorted(history, key=lambda p: p.sequence, reverse=True):
        shown = ~np.asarray(pub.suppressed, dtype=bool)
        for i, key in enumerate(pub.lattice.keys):
            j = lattice.index.get(key)
            if j is None or not open_[j]:
                continue
            if lattice.n[j] != pub.lattice.n[i]:
                open_[j] = False
            elif shown[i]:
                known[j] = True
    return known


def _prune(
    lattice: Lattice,
    suppressed: np.ndarray,
    kept: np.ndarray,
    k: int,
    name: str,
    history: Sequence[Publication],
    insider: bool,
) -> np.ndarray:
    """Publish again every secondary whose removal the audit accepts (most valuable first)."""
    suppressed = suppressed.copy()
    inc = lattice.cell_equations
    ties = {int(c): stable_hash(lattice.keys[c]) for c in np.flatnonzero(suppressed & ~kept)}
    order = sorted(ties, key=lambda c: (-lattice.n[c], -lattice.rank[c], ties[c]))
    for c in order:
        trial = suppressed.copy()
        trial[c] = False
        eqs = inc.indices[inc.indptr[c] : inc.indptr[c + 1]]
        near = np.unique(np.concatenate([lattice.members(e) for e in eqs]))
        _, labels = unknown_components(lattice, trial)
        touched = np.unique(labels[near][labels[near] >= 0])
        near_mask = np.isin(labels, touched) & (labels >= 0)
        check = None if history else [near_mask]
        if _audit(lattice, trial, k, name, history, check, insider).passed:
            suppressed = trial
    return suppressed


def _audit(
    lattice: Lattice,
    suppressed: np.ndarray,
    k: int,
    name: str,
    history: Sequence[Publication],
    check: list[np.ndarray] | None,
    insider: bool,
    cleared: set | None = None,
    integer: bool = True,
) -> AuditReport:
    """Audit the current pattern jointly with the history; ``check``: one mask per release;
    ``cleared``: the insider pairs smaller patterns of the same table passed (see ``audit``);
    ``integer``: re-check fractional LP verdicts with integrality (the full attacker)."""
    sequence = 1 + max((p.sequence for p in history), default=0)  # this release is the newest
    pubs = [*history, Publication(lattice, suppressed, k, name, insider=insider, sequence=sequence)]
    if check is not None and len(check) == 1 and history:
        check = [np.zeros(p.lattice.size, dtype=bool) for p in history] + check
    return audit(
        pubs, check=check, verdict_only=True, insiders_cleared=cleared, integer_recheck=integer
    )


def _repair(rule: LineRule, lattice: Lattice, report: AuditReport, insider: bool) -> list[int]:
    """One complement per failing cell, except where a complement added this round already
    sits in one of its equations (that may be enough: the next audit tells)."""
    added: list[int] = []
    touched: set[int] = set()
    for failure in report.failures:
        cell = lattice.index.get(failure.key)
        if cell is None or touched.intersection(rule.cell_eqs[cell]):
            continue
        c = cell if not rule.sup[cell] else rule.repair(cell, far=insider)  # a history primary
        if c is not None and not rule.sup[c]:
            rule.add(c)
            added.append(c)
            touched.update(rule.cell_eqs[c])
    return added


def _failing(
    lattice: Lattice, history: Sequence[Publication], report: AuditReport, name: str
) -> list[np.ndarray]:
    """Per release, the primaries that failed this round (the only ones worth re-attacking)."""
    lattices = [p.lattice for p in history] + [lattice]
    names = [p.name for p in history] + [name]
    masks = [np.zeros(lat.size, dtype=bool) for lat in lattices]
    for failure in report.failures:
        p = names.index(failure.release)
        masks[p][lattices[p].index[failure.key]] = True
    return masks
