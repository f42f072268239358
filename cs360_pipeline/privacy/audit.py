"""The independent attacker: can any primary suppressed cell be narrowed below k, or shown > 0?

It shares no suppression logic with ``complementary.py``: it only sees what is published (the
cells of one or more releases, each with its suppression pattern, plus published rates with their
denominators) and the equations from ``lattice.py``. The attacker's system:

- every published cell is a constant, every suppressed cell an unknown ``x >= 0`` (integer);
- every equation of every release with an unknown in it (published values moved to the right);
- releases are namespaced; a cell that was not revised from one release to the next (same key,
  same true count: the conservative assumption that the attacker knows what changed) is one
  value, a single unknown or, if either release publishes it, a constant. Links follow the
  releases in the order they were published (``Publication.sequence``): a count revised and
  later revised back to its old value is a new value, since knowing *that* a cell changed does
  not tell the attacker it changed back. Publications of one release (its audiences) share one
  sequence, and every cell they have in common is one value;
- a published rate ``r`` (rounded to ``decimals``) with its denominator ``d`` per ``per`` bounds the
  numerator: ``(r - h) d / per <= x <= (r + h) d / per`` with ``h = 0.5 * 10**-decimals``.

Insiders, for a publication marked ``insider`` (people who could recognise themselves, such as
probation clients or students), two attackers besides the outsider:

- a coalition holding one member of every *other* non-empty suppressed cell of that release
  (each known to be >= 1) attacks the maximum of each primary: no one may learn that a cell is
  small from knowing that theirs is not empty (the minimum stays the outsider's: a coalition of
  everyone trivially knows which cells are not empty);
- each person in a small suppressed cell, who may know everyone in it and so its count exactly,
  attacks both bounds of every other primary (``_single_insiders``), except for what the
  equations tell them about their own group.

A primary cell (``0 < n < k``) passes only if ``floor(max) >= k`` and ``ceil(min) == 0``. Bounds
come from HiGHS LPs (``solver.py``: one persistent model per component, only the objective and
bounds change between solves); when an LP optimum is fractional and the LP verdict is "pass", the
question is asked again with integrality, because the integer attacker can be sharper than the
relaxation (an integral LP optimum is already the integer optimum).

Cost: the system splits into connected components of unknowns (through shared equations and
cross-release links); each component's model is built once and reused for its primaries. Most
primaries are cleared in batches (one solution with ``x_j = 0`` or ``x_j >= k`` is a witness for
every cell it covers: a few LPs per component); only the rest get their own min and max LPs
(``exact=True`` forces that for every primary). ``benchmarks/privacy_bench.py`` measures it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from cs360_pipeline.privacy.lattice import CellKey, Lattice, normalize_key
from cs360_pipeline.privacy.solver import EPS, ComponentModel, Counters, fractional

SMALL_COMPONENTS = 64  # mean unknowns per component below which they are screened together
PARALLEL_UNKNOWNS = 5_000  # unknowns in components of their own from which a pool pays off


@dataclass(frozen=True)
class PublishedRate:
    """A rate published for a cell together with its denominator (e.g. per 1,000 residents)."""

    key: CellKey
    value: float
    denominator: float
    per: float = 1.0
    decimals: int = 1

    def numerator_bounds(self) -> tuple[float, float]:
        half = 0.5 * 10.0**-self.decimals
        low = max(0.0, (self.value - half) * self.denominator / self.per)
        return low, (self.value + half) * self.denominator / self.per


@dataclass(frozen=True)
class Publication:
    """What one release publishes for one table family: true cells plus its suppression mask."""

    lattice: Lattice
    suppressed: np.ndarray
    k: int
    name: str = "release"
    rates: tuple[PublishedRate, ...] = ()
    insider: bool = False
    sequence: int = 0  # when it was published: later releases higher, one release's equal


@dataclass(frozen=True)
class Failure:
    """A primary cell the attacker can narrow: its key and the bounds it can prove."""

    release: str
    key: CellKey
    n: int
    lower: float
    upper: float
    reason: str


@dataclass(frozen=True)
class AuditReport:
    failures: tuple[Failure, ...]
    primaries: int
    checked: int
    components: int
    largest_component: int
    lps: int
    milps: int
    seconds: float
    bounds: dict[tuple[str, CellKey], tuple[float, float]] = field(repr=False, default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def text(self) -> str:
        """A reviewer-readable summary: one line per failing cell with its bounds."""
        head = (
            f"privacy audit {'PASSED' if self.passed else 'FAILED'}: {self.checked} of "
            f"{self.primaries} primary cells checked, {len(self.failures)} failing, "
            f"{self.components} components (largest {self.largest_component} unknowns), "
            f"{self.lps} LPs + {self.milps} MILPs in {self.seconds:.2f} s"
        )
        lines = [
            f"  {f.release}: {'/'.join(f.key)} n={f.n} provable range [{f.lower:g}, {f.upper:g}]"
            f" ({f.reason})"
            for f in self.failures
        ]
        return "\n".join([head, *lines])


@dataclass
class _System:
    """The attacker's system over all releases: ``a x = b``, ``lo <= x <= hi``.

    A cell that is the same in several releases (same key, same true count: unrevised) is one
    unknown, or a constant when any of them publishes it; equations that several releases
    share are kept once.
    """

    a: sparse.csr_matrix
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    members: list[list[tuple[int, int]]]  # var -> its (publication index, cell index)
    var_of: list[np.ndarray]  # publication -> cell -> var (-1 when its value is known)


def _build_system(pubs: Sequence[Publication], link_unrevised: bool) -> _System:
    cell_group = _unrevised_groups(pubs, link_unrevised)
    values = 1 + max((int(g.max()) for g in cell_group if len(g)), default=-1)
    known = np.zeros(values, dtype=bool)  # some release publishes the value
    for groups, pub in zip(cell_group, pubs, strict=True):
        known[groups[~np.asarray(pub.suppressed, dtype=bool)]] = True
    var_of_group = np.full(values, -1, dtype=np.int64)
    var_of_group[~known] = np.arange(int((~known).sum()))
    total = int((~known).sum())
    members: list[list[tuple[int, int]]] = [[] for _ in range(total)]
    var_of, blocks, rhs = [], [], []
    for p, (pub, groups) in enumerate(zip(pubs, cell_group, strict=True)):
        lat = pub.lattice
        vid = var_of_group[groups]
        var_of.append(vid)
        unknown = vid >= 0
        for cell in np.flatnonzero(unknown):
            members[vid[cell]].append((p, int(cell)))
        part = lat.matrix[:, unknown].tocoo()
        constant = lat.matrix[:, ~unknown] @ lat.n[~unknown].astype(float)
        blocks.append((part.row + sum(len(r) for r in rhs), vid[unknown][part.col], part.data))
        rhs.append(-constant)
    rows = np.concatenate([r for r, _, _ in blocks]) if blocks else np.zeros(0, dtype=np.int64)
    cols = np.concatenate([c for _, c, _ in blocks]) if blocks else np.zeros(0, dtype=np.int64)
    data = np.concatenate([d for _, _, d in blocks]) if blocks else np.zeros(0)
    b_all = np.concatenate(rhs) if rhs else np.zeros(0)
    a = sparse.csr_matrix((data, (rows, cols)), shape=(len(b_all), total))
    a, b = _distinct_rows(a, b_all)
    system = _System(a, b, np.zeros(total), np.full(total, np.inf), members, var_of)
    _apply_rates(system, pubs)
    return system


def _unrevised_groups(pubs: Sequence[Publication], link: bool) -> list[np.ndarray]:
    """Per publication, each cell's value id: one id while a key keeps its true count from one
    release to the next (in ``sequence`` order), a new id when it is revised."""
    # key -> (value id, count) where it was last seen; a later publication of the same release
    # (another audience) finds its own release's values here too.
    latest: dict[CellKey, tuple[int, int]] = {}
    ids: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(pubs)
    count = 0
    for p in sorted(range(len(pubs)), key=lambda p: pubs[p].sequence):
        lat = pubs[p].lattice
        out = np.empty(lat.size, dtype=np.int64)
        for i, (key, n) in enumerate(zip(lat.keys, lat.n.tolist(), strict=True)):
            before = latest.get(key) if link else None
            if before is None or before[1] != n:
                before = (count, n)
                count += 1
            out[i] = before[0]
            latest[key] = before
        ids[p] = out
    return ids


def _distinct_rows(a: sparse.csr_matrix, b: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Drop rows without unknowns and repeats of the same equation (releases share most)."""
    a.sum_duplicates()
    seen: set[tuple] = set()
    keep = []
    for r in range(a.shape[0]):
        lo, hi = a.indptr[r], a.indptr[r + 1]
        if lo == hi:
            continue
        row = (a.indices[lo:hi].tobytes(), a.data[lo:hi].tobytes(), float(b[r]))
        if row not in seen:
            seen.add(row)
            keep.append(r)
    return a[keep], b[keep]


def _apply_rates(system: _System, pubs: Sequence[Publication]) -> None:
    for p, pub in enumerate(pubs):
        for rate in pub.rates:
            cell = pub.lattice.index.get(normalize_key(rate.key))
            if cell is None or system.var_of[p][cell] < 0:
                continue  # the count itself is published: the rate adds nothing
            v = system.var_of[p][cell]
            low, high = rate.numerator_bounds()
            system.lo[v] = max(system.lo[v], low)
            system.hi[v] = min(system.hi[v], high)


def _components(a: sparse.csr_matrix, v: int) -> tuple[np.ndarray, np.ndarray]:
    """Component labels of variables and of rows (one bipartite graph)."""
    m = a.shape[0]
    inc = (a != 0).astype(np.int8)
    graph = sparse.bmat([[sparse.csr_matrix((m, m)), inc], [inc.T, sparse.csr_matrix((v, v))]])
    _, labels = csgraph.connected_components(graph.tocsr(), directed=False)
    return labels[m:], labels[:m]


def _bounds(
    model: ComponentModel,
    j: int,
    k: int,
    verdict_only: bool = False,
    lo_max: np.ndarray | None = None,
) -> tuple[float, float]:
    """[min, max] of x_j by LP; where a fractional LP optimum would pass, the integer attacker
    is asked for a witness (x_j = 0, x_j >= k) and the bound replaced if none exists.
    ``verdict_only`` skips the max once the min already fails (max reported as NaN).
    ``lo_max``: other lower bounds for the max (what an insider coalition knows)."""
    low, x_low = model.extreme(j, 1)
    if (
        model.integer_recheck
        and math.ceil(low - EPS) == 0
        and fractional(x_low)
        and not model.integer_witness(j, (0.0, 0.0))
    ):
        low = max(1.0, model.integer_bound(j, 1))
    if verdict_only and math.ceil(low - EPS) > 0:
        return low, math.nan
    high, x_high = model.extreme(j, -1, lo=lo_max)
    if (
        model.integer_recheck
        and math.isfinite(high)
        and math.floor(high + EPS) >= k
        and fractional(x_high)
        and not model.integer_witness(j, (float(k), math.inf), lo=lo_max)
    ):
        high = min(k - 1.0, model.integer_bound(j, -1, lo=lo_max))
    return low, high


def _screen(
    model: ComponentModel,
    targets: list[int],
    ks: list[int],
    lo_max: np.ndarray | None = None,
    blocks: np.ndarray | None = None,
) -> dict[int, tuple[float, float]]:
    """Clear many primaries with few solves: one point with ``x_j = 0`` proves min 0 and one
    with ``x_j >= k`` proves max >= k, and a single solution witnesses many cells at once.

    Minimise the sum of the open targets (zeros are witnesses), then maximise the sum of
    ``min(x_j, k)`` (values reaching k are witnesses); repeat while that clears something. Cleared
    cells get (0, witnessed value); the rest are solved exactly by ``_bounds``. The integer
    attacker must accept every witness: for one component the model re-solves with integrality
    when the LP's point is fractional. ``blocks`` (the component of each unknown) screens many
    components in one model; a component whose part of the point is fractional is then not used,
    and its targets are left for its own pass. ``lo_max``: the lower bounds of the maximising
    phase (an insider coalition's knowledge).
    """
    if len(targets) < 2:
        return {}
    k_of = dict(zip(targets, ks, strict=True))
    one_component = blocks is None

    def usable(x: np.ndarray | None, open_: list[int]) -> list[int]:
        if x is None:
            return []
        if one_component or not model.integer_recheck:
            return open_
        frac = np.abs(x[: model.v] - np.round(x[: model.v])) > EPS
        if not frac.any():
            return open_
        spoiled = np.isin(blocks, np.unique(blocks[frac]))
        return [j for j in open_ if not spoiled[j]]

    low_ok: set[int] = set()
    open_ = sorted(set(targets))
    while len(open_) > 1:
        x = model.batch_min(open_, integer=one_component)
        hit = [j for j in usable(x, open_) if x[j] <= EPS]
        if not hit:
            break
        low_ok.update(hit)
        open_ = [j for j in open_ if j not in low_ok]
    witnessed: dict[int, float] = {}
    open_ = sorted(low_ok)
    while len(open_) > 1:
        x = model.batch_max(open_, lo_max, integer=one_component)
        hit = [j for j in usable(x, open_) if x[j] >= k_of[j] - EPS]
        if not hit:
            break
        witnessed.update((j, float(x[j])) for j in hit)
        open_ = [j for j in open_ if j not in witnessed]
    return {j: (0.0, witnessed[j]) for j in sorted(witnessed)}


def _verdict(low: float, high: float, k: int) -> str | None:
    reasons = []
    if math.isfinite(high) and math.floor(high + EPS) < k:
        reasons.append(f"max {math.floor(high + EPS)} < k={k}")
    if not math.isnan(low) and math.ceil(low - EPS) > 0:
        reasons.append(f"min {math.ceil(low - EPS)} > 0")
    return "; ".join(reasons) or None


def audit(
    publications: Sequence[Publication],
    *,
    check: Sequence[np.ndarray | None] | None = None,
    link_unrevised: bool = True,
    integer_recheck: bool = True,
    exact: bool = False,
    verdict_only: bool = False,
    insiders_cleared: set | None = None,
) -> AuditReport:
    """Attack every primary cell of every publication (jointly) and report the failures.

    ``check`` optionally restricts, per publication, which primary cells are solved for (the
    others are still part of the system); the complementary suppressor uses it to re-audit only
    components it changed. Passing cells are cleared in batches (``_screen``) and get the bounds
    (0, a witnessed value >= k); ``exact=True`` solves every primary's own min and max instead
    (2 LPs each), for review reports. ``verdict_only=True`` stops at the first failing side of a
    cell (its other bound is NaN): enough for the suppressor's repair loop.
    ``insiders_cleared``: the (insider, target) pairs that passed, kept by a caller that only
    ever hides more cells of the same publications: a pair that passed once passes for good (a
    hidden cell is one more unknown, every earlier solution stays feasible), as long as the
    same cells make up each of its unknowns.
    """
    start = time.perf_counter()
    for pub in publications:
        if np.any(np.abs(pub.lattice.residuals()) > EPS):
            raise ValueError(f"{pub.name}: cells are not additive; the attacker model is wrong")
    system = _build_system(publications, link_unrevised)
    var_labels, row_labels = _components(system.a, len(system.members))
    failures: list[Failure] = []
    targets: dict[int, list[int]] = {}  # component -> its unknowns to attack
    ks: dict[int, int] = {}  # unknown -> the largest k of the releases it is a primary in
    primaries = checked = 0
    for p, pub in enumerate(publications):
        lat, sup = pub.lattice, np.asarray(pub.suppressed, dtype=bool)
        primary = (lat.n > 0) & (lat.n < pub.k)
        primaries += int(primary.sum())
        for i in np.flatnonzero(primary & ~sup):
            n = int(lat.n[i])
            failures.append(Failure(pub.name, lat.keys[i], n, n, n, "published"))
        wanted = primary & sup
        if check is not None and check[p] is not None:
            wanted &= np.asarray(check[p], dtype=bool)
        for i in np.flatnonzero(wanted):
            checked += 1
            v = int(system.var_of[p][i])
            if v < 0:
                n = int(lat.n[i])
                failures.append(Failure(pub.name, lat.keys[i], n, n, n, "published elsewhere"))
                continue
            if v not in ks:
                targets.setdefault(int(var_labels[v]), []).append(v)
            ks[v] = max(ks.get(v, 0), pub.k)
    counters = Counters()
    bounds: dict[tuple[str, CellKey], tuple[float, float]] = {}
    rows_by_label = _group(row_labels)
    vars_by_label = _group(var_labels)
    coalition = _insider_lower(system, publications)
    insider_var = np.array(
        [any(publications[p].insider for p, _ in m) for m in system.members], dtype=bool
    )
    # Many small components: all at once first (block-diagonal: one LP answers for all of
    # them), then each component with targets left on its own. Large components each get their
    # own model from the start: one LP over all of them costs more than it clears.
    together = [label for label in sorted(targets) if label in rows_by_label]
    unknowns = sum(len(vars_by_label[label]) for label in together)
    screened: dict[int, tuple[float, float]] = {}
    if not exact and len(together) > 1 and unknowns <= SMALL_COMPONENTS * len(together):
        cols = np.concatenate([vars_by_label[label] for label in together])
        rows = np.concatenate([rows_by_label[label] for label in together])
        wanted = [v for label in together for v in targets[label]]
        screened = _screen_block(
            system, cols, rows, wanted, ks, coalition, counters, integer_recheck,
            blocks=var_labels[cols],
        )  # fmt: skip
    largest = max((len(vars_by_label[label]) for label in targets), default=0)
    jobs: dict[int, _Job] = {}
    for label in sorted(targets):
        left = [v for v in targets[label] if v not in screened]
        if left and label in rows_by_label:
            jobs[label] = _job(
                system, vars_by_label[label], rows_by_label[label], left, ks, coalition,
                insider_var, exact=exact, verdict_only=verdict_only,
                integer_recheck=integer_recheck,
            )  # fmt: skip
    for label, (found, lps, milps) in _run(jobs).items():
        counters.lps += lps
        counters.milps += milps
        cols = vars_by_label[label]
        screened.update((int(cols[j]), found[j]) for j in found)
    for label in sorted(targets):
        for v in targets[label]:
            # An unknown in no equation: only its own bounds hold it.
            low, high = screened.get(v, (float(system.lo[v]), float(system.hi[v])))
            for p, cell in system.members[v]:
                pub = publications[p]
                if not (0 < pub.lattice.n[cell] < pub.k):
                    continue
                key = pub.lattice.keys[cell]
                bounds[(pub.name, key)] = (low, high)
                reason = _verdict(low, high, pub.k)
                if reason:
                    n = int(pub.lattice.n[cell])
                    failures.append(Failure(pub.name, key, n, low, high, reason))
    # Insiders are attacked once outsiders learn nothing (a repair loop fixes those first).
    if any(pub.insider for pub in publications) and not (verdict_only and failures):
        failing = {(f.release, f.key) for f in failures}
        for found in _single_insiders(
            system, publications, targets, ks, vars_by_label, rows_by_label, counters,
            integer_recheck, set() if insiders_cleared is None else insiders_cleared,
        ):  # fmt: skip
            if (found.release, found.key) not in failing:
                failing.add((found.release, found.key))
                failures.append(found)
    failures.sort(key=lambda f: (f.release, f.key))
    return AuditReport(
        failures=tuple(failures),
        primaries=primaries,
        checked=checked,
        components=len(targets),
        largest_component=largest,
        lps=counters.lps,
        milps=counters.milps,
        seconds=time.perf_counter() - start,
        bounds=bounds,
    )


@dataclass(frozen=True)
class _Job:
    """One component's attack, in the component's own indices: picklable, so it can run in
    another process."""

    a: sparse.csr_matrix
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    targets: list[int]
    ks: list[int]
    coalition: np.ndarray  # the lower bounds an insider coalition knows
    insider: list[bool]  # per target: is it a cell of an insider publication
    exact: bool
    verdict_only: bool
    integer_recheck: bool

    @property
    def size(self) -> int:
        return self.a.shape[1]


def _job(
    system: _System,
    cols: np.ndarray,
    rows: np.ndarray,
    wanted: list[int],
    ks: dict[int, int],
    coalition: np.ndarray,
    insider_var: np.ndarray,
    **flags: bool,
) -> _Job:
    sub, local = _local(system, cols, rows)
    return _Job(
        sub, system.b[rows], system.lo[cols], system.hi[cols], [int(local[v]) for v in wanted],
        [ks[v] for v in wanted], coalition[cols], [bool(insider_var[v]) for v in wanted],
        **flags,
    )  # fmt: skip


def _attack(job: _Job) -> tuple[dict[int, tuple[float, float]], int, int]:
    """[min, max] of each target of one component: batch witnesses first, then its own LPs."""
    counters = Counters()
    model = ComponentModel(
        job.a, job.b, job.lo, job.hi, job.targets, job.ks, counters, job.integer_recheck
    )
    found = {} if job.exact else _screen(model, job.targets, job.ks, lo_max=job.coalition)
    for j, k, insider in zip(job.targets, job.ks, job.insider, strict=True):
        if j not in found:
            lo_max = None
            if insider:
                lo_max = job.coalition.copy()
                lo_max[j] = job.lo[j]
            found[j] = _bounds(model, j, k, job.verdict_only, lo_max=lo_max)
    return found, counters.lps, counters.milps


def _run(jobs: dict[int, _Job]) -> dict[int, tuple[dict[int, tuple[float, float]], int, int]]:
    """Every component's attack: in this process, or, for a large audit on a machine with
    several cores, in a pool of processes (largest components first, so the cores finish
    together). Components share nothing, so the result is the same either way."""
    workers = min(len(os.sched_getaffinity(0)), len(jobs))
    if (
        workers < 2
        or sum(job.size for job in jobs.values()) < PARALLEL_UNKNOWNS
        or "forkserver" not in multiprocessing.get_all_start_methods()
    ):
        return {label: _attack(job) for label, job in jobs.items()}
    order = sorted(jobs, key=lambda label: -jobs[label].size)
    # Not a plain fork: HiGHS runs integer problems on a pool of threads, and a process forked
    # from one that has used it can spin forever in the copy of that pool. Workers come from a
    # fork server that has imported this module and never solved anything.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {label: pool.submit(_attack, jobs[label]) for label in order}
        return {label: futures[label].result() for label in sorted(jobs)}


def _model(
    system: _System,
    cols: np.ndarray,
    rows: np.ndarray,
    wanted: list[int],
    ks: dict[int, int],
    counters: Counters,
    integer_recheck: bool,
) -> ComponentModel:
    """The solver model of the rows and unknowns of one or more components."""
    sub, local = _local(system, cols, rows)
    return ComponentModel(
        sub, system.b[rows], system.lo[cols], system.hi[cols], [int(local[v]) for v in wanted],
        [ks[v] for v in wanted], counters, integer_recheck,
    )  # fmt: skip


def _local(
    system: _System, cols: np.ndarray, rows: np.ndarray
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The rows and unknowns given, renumbered from 0 (and system unknown -> local index)."""
    local = np.full(system.a.shape[1], -1, dtype=np.int64)
    local[cols] = np.arange(len(cols))
    block = system.a[rows].tocoo()
    sub = sparse.csr_matrix(
        (block.data, (block.row, local[block.col])), shape=(len(rows), len(cols))
    )
    return sub, local


def _screen_block(
    system: _System,
    cols: np.ndarray,
    rows: np.ndarray,
    wanted: list[int],
    ks: dict[int, int],
    coalition: np.ndarray,
    counters: Counters,
    integer_recheck: bool,
    blocks: np.ndarray,
) -> dict[int, tuple[float, float]]:
    """``_screen`` over the unknowns of many small components at once; results keyed by
    system variable."""
    if len(wanted) < 2:
        return {}
    model = _model(system, cols, rows, wanted, ks, counters, integer_recheck)
    cleared = _screen(
        model, model.targets, [ks[v] for v in wanted], lo_max=coalition[cols], blocks=blocks
    )
    return {int(cols[j]): found for j, found in cleared.items()}


def _single_insiders(
    system: _System,
    publications: Sequence[Publication],
    targets: dict[int, list[int]],
    ks: dict[int, int],
    vars_by_label: dict[int, np.ndarray],
    rows_by_label: dict[int, np.ndarray],
    counters: Counters,
    integer_recheck: bool,
    cleared: set,
) -> list[Failure]:
    """A person counted in a small hidden cell (``0 < n < k``) of an ``insider`` publication
    may know everyone in it, so its count exactly. Pin it and attack both bounds of every other
    primary of its component. (Of a larger hidden cell a member knows that it is not empty:
    the coalition of ``_insider_lower``.)

    What the insider learns about their own group is not a disclosure, as far as the keys tell
    which cells can share a record (``Lattice.overlap``) and the equations which of those is
    part of which (``always_at_most``: a year whose only delivered quarter is the insider's is
    their cell under another name): a cell that always equals the
    insider's is not attacked; a cell that always holds at least it (a district around their
    beat) only fails when its maximum falls below k; a part of their own cell (their beat's
    juveniles) only fails when its maximum falls below ``min(k, own count)``, that is, when the
    insider could rule out that all of their cellmates are in it.

    ``cleared``: (insider, target) pairs that passed an earlier audit of a smaller pattern of
    the same publications; they pass again (see ``audit``) and are not attacked. Pairs that
    pass here are added.
    """
    own: dict[int, tuple[int, int, int]] = {}  # unknown -> (its count, publication, cell)
    for v, members in enumerate(system.members):
        for p, cell in members:
            if publications[p].insider and 0 < publications[p].lattice.n[cell] < publications[p].k:
                own[v] = (int(publications[p].lattice.n[cell]), p, cell)
                break
    failures: list[Failure] = []
    for label in sorted(targets):
        cols = vars_by_label[label]
        rows = rows_by_label.get(label)
        insiders = [int(v) for v in cols if int(v) in own]
        if rows is None or not insiders:
            continue
        cells = {int(v): tuple(system.members[v]) for v in cols}  # what a pair is keyed by
        local = {int(v): j for j, v in enumerate(cols)}
        model = None  # built once some pair of the component is still to attack
        for u in insiders:
            count, p, cell = own[u]
            key = publications[p].lattice.keys[cell]
            pair = {v: (cells[u], cells[v]) for v in targets[label]}
            attacked = [v for v in targets[label] if v != u and pair[v] not in cleared]
            if not attacked:
                continue
            if model is None:
                model = _model(system, cols, rows, targets[label], ks, counters, integer_recheck)
            found: list[tuple[int, float, float]] = []
            with model.pinned(local[u], float(count)):
                witnessed = _screen(model, [local[v] for v in attacked], [ks[v] for v in attacked])
                for v in attacked:
                    j = local[v]
                    low, high = witnessed[j] if j in witnessed else _bounds(model, j, ks[v])
                    if _verdict(low, high, ks[v]):
                        found.append((v, low, high))
                    else:
                        cleared.add(pair[v])
            for v, low, high in found:
                q, c = system.members[v][0]
                related = publications[q].lattice.overlap(publications[q].lattice.keys[c], key)
                reason = _insider_verdict(
                    model, local[v], local[u], low, high, ks[v], count, related
                )
                if reason is None:
                    continue
                for q, c in system.members[v]:
                    pub = publications[q]
                    if 0 < pub.lattice.n[c] < pub.k:
                        failures.append(
                            Failure(
                                pub.name, pub.lattice.keys[c], int(pub.lattice.n[c]), low, high,
                                f"{reason}, to an insider who knows {'/'.join(key)}",
                            )
                        )  # fmt: skip
    return failures


def _insider_verdict(
    model: ComponentModel,
    j: int,
    own: int,
    low: float,
    high: float,
    k: int,
    count: int,
    overlap: bool,
) -> str | None:
    """The verdict on cell ``j`` for the insider of cell ``own`` (see ``_single_insiders``).
    Only cells that can hold a record in common (``overlap``) are judged part or whole of the
    insider's: two cells the margins force equal (the corners of a 2 x 2 table) are others."""
    part = overlap and model.always_at_most(j, own)
    whole = overlap and model.always_at_most(own, j)
    if part and whole:
        return None  # the insider's own cell under another name
    if part:
        return _verdict(math.nan, high, min(k, count))
    if whole:
        return _verdict(math.nan, high, k)
    return _verdict(low, high, k)


def _insider_lower(system: _System, publications: Sequence[Publication]) -> np.ndarray:
    """Lower bounds as the insider coalition knows them: every non-empty suppressed cell of an
    ``insider`` release holds at least one (the attacked cell's own bound is put back by the
    caller; for batch witnesses keeping it only makes the witness stricter).
    """
    lo = system.lo.copy()
    for v, members in enumerate(system.members):
        if any(publications[p].insider and publications[p].lattice.n[c] > 0 for p, c in members):
            lo[v] = max(lo[v], 1.0)
    return lo


def _group(labels: np.ndarray) -> dict[int, np.ndarray]:
    """label -> sorted indices carrying it."""
    if len(labels) == 0:
        return {}
    order = np.argsort(labels, kind="stable")
    uniq, starts = np.unique(labels[order], return_index=True)
    ends = np.r_[starts[1:], len(order)]
    return {int(u): order[s:e] for u, s, e in zip(uniq, starts, ends, strict=True)}
