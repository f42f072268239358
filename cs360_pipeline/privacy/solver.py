"""The attacker's solver: one persistent HiGHS model per component of the audit's system.

An audit asks many questions of the same system ``A x = b, lo <= x <= hi`` (the minimum and the
maximum of each target, and batch questions over many targets at once). Building the model once
and changing only the objective and the bounds lets HiGHS restart from the previous basis, so a
re-solve costs a fraction of a millisecond on the components the demo has, where rebuilding the
model for every LP (``scipy.optimize.linprog``) cost about 4 ms.

Columns are the component's unknowns ``x``, then one helper ``y_t`` per target with
``0 <= y_t <= k_t`` and a row ``y_t - x_t <= 0``: maximising ``sum(y_t)`` maximises
``sum(min(x_t, k_t))``, the batch question "which targets can reach k". The helpers cost nothing
in every other question (``y = 0`` is always feasible).

LPs are solved by the primal simplex: most questions change only the objective, which leaves the
last basis primal feasible, so it picks up where it stopped. HiGHS's default, the dual simplex,
starts over in effect: on a component of 16,700 unknowns a question took 13 s instead of 0.4 s.
Integer problems keep HiGHS's default.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import highspy
import numpy as np
from highspy._core import _Highs
from scipy import sparse

EPS = 1e-6
_STATUS = highspy.HighsModelStatus
_UNBOUNDED = {_STATUS.kUnbounded, _STATUS.kUnboundedOrInfeasible}
_CONTINUOUS = highspy.HighsVarType.kContinuous
_INTEGER = highspy.HighsVarType.kInteger
_PRIMAL, _DEFAULT_SIMPLEX = 4, 1  # HiGHS option simplex_strategy


@dataclass
class Counters:
    """How many LPs and integer programs an audit solved."""

    lps: int = 0
    milps: int = 0


def fractional(x: np.ndarray | None) -> bool:
    return x is not None and bool(np.any(np.abs(x - np.round(x)) > EPS))


class ComponentModel:
    """``A x = b`` over the unknowns of one component (or of several: the system is then
    block-diagonal and every question splits into independent ones) plus the batch helpers."""

    def __init__(
        self,
        a: sparse.csr_matrix,
        b: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        targets: list[int],
        caps: list[int],
        counters: Counters,
        integer_recheck: bool = True,
        time_limit: float = 10.0,
    ) -> None:
        self.v, self.t = a.shape[1], len(targets)
        self.targets = targets
        self._helper = {target: self.v + i for i, target in enumerate(targets)}  # its y column
        self.lo, self.hi = lo.astype(float), hi.astype(float)
        self.counters = counters
        self.integer_recheck = integer_recheck
        self.time_limit = time_limit
        t = self.t
        m = a.shape[0]
        coo = a.tocoo()
        helper_rows = m + np.arange(t)
        full = sparse.csc_matrix(
            (
                np.r_[coo.data, -np.ones(t), np.ones(t)],
                (
                    np.r_[coo.row, helper_rows, helper_rows],
                    np.r_[coo.col, targets, self.v + np.arange(t)],
                ),
            ),
            shape=(m + t, self.v + t),
        )
        n_col = self.v + t
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n_col, full.shape[0]
        lp.col_cost_ = np.zeros(n_col)
        lp.col_lower_ = np.r_[self.lo, np.zeros(t)]
        lp.col_upper_ = np.r_[_inf(self.hi), np.asarray(caps, dtype=float)]
        lp.row_lower_ = np.r_[b, np.full(t, -highspy.kHighsInf)]
        lp.row_upper_ = np.r_[b, np.zeros(t)]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = full.indptr
        lp.a_matrix_.index_ = full.indices
        lp.a_matrix_.value_ = full.data
        # The core class: the public ``highspy.Highs`` adds Python callbacks this does not use
        # and prints a banner to stdout when the first one of a process is made.
        self.highs = _Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("simplex_strategy", _PRIMAL)
        self.highs.passModel(lp)
        self.columns = np.arange(n_col, dtype=np.int32)
        self.x_columns = self.columns[: self.v]
        self._bounds = (self.lo, self.hi)

    # -- questions ---------------------------------------------------------------------------
    def extreme(
        self, j: int, sense: int, lo: np.ndarray | None = None
    ) -> tuple[float, np.ndarray | None]:
        """``min x_j`` (sense 1) or ``max x_j`` (sense -1) by LP: (bound, solution or None)."""
        cost = np.zeros(self.v)
        cost[j] = sense
        status, x = self.solve(cost, lo=lo)
        if status in _UNBOUNDED:
            return math.inf, None
        return float(x[j]), x

    def batch_min(self, open_: list[int], integer: bool = True) -> np.ndarray | None:
        """A point minimising the sum of the open targets; ``integer``: an integer point (the
        problem is solved again with integrality when the LP's optimum is fractional)."""
        cost = np.zeros(self.v)
        cost[open_] = 1.0
        return self._batch(cost, None, integer)

    def batch_max(
        self, open_: list[int], lo: np.ndarray | None, integer: bool = True
    ) -> np.ndarray | None:
        """A point maximising ``sum(min(x_t, k_t))`` over the open targets."""
        cost = np.zeros(self.v + self.t)
        cost[[self._helper[j] for j in open_]] = -1.0
        return self._batch(cost, lo, integer)

    def integer_witness(
        self, j: int, side: tuple[float, float], lo: np.ndarray | None = None
    ) -> bool:
        """Is there an integer solution with ``x_j`` in ``side``? A time-out counts as no."""
        lo = (self.lo if lo is None else lo).copy()
        hi = self.hi.copy()
        lo[j], hi[j] = max(lo[j], side[0]), min(hi[j], side[1])
        status, _ = self.solve(np.zeros(self.v), lo=lo, hi=hi, integer=True)
        return status == _STATUS.kOptimal

    def integer_bound(self, j: int, sense: int, lo: np.ndarray | None = None) -> float:
        """The integer attacker's bound of ``x_j``, or its proven dual bound after a time-out."""
        cost = np.zeros(self.v)
        cost[j] = sense
        status, x = self.solve(cost, lo=lo, integer=True)
        if status == _STATUS.kOptimal:
            return float(x[j])
        bound = self.highs.getInfo().mip_dual_bound
        return sense * float(bound) if math.isfinite(bound) else math.nan

    @contextmanager
    def pinned(self, j: int, value: float) -> Iterator[None]:
        """Every question asked inside the block knows ``x_j = value`` (an insider's own cell)."""
        saved = self.lo, self.hi
        self.lo, self.hi = self.lo.copy(), self.hi.copy()
        self.lo[j] = self.hi[j] = value
        try:
            yield
        finally:
            self.lo, self.hi = saved

    def always_at_most(self, i: int, j: int) -> bool:
        """Does every solution have ``x_i <= x_j`` (cell i is part of cell j, as far as the
        published equations tell)?"""
        cost = np.zeros(self.v)
        cost[i], cost[j] = -1.0, 1.0
        status, x = self.solve(cost)
        return status == _STATUS.kOptimal and float(x[j] - x[i]) >= -EPS

    # -- mechanics ---------------------------------------------------------------------------
    def _batch(self, cost: np.ndarray, lo: np.ndarray | None, integer: bool) -> np.ndarray | None:
        status, x = self.solve(cost, lo=lo)
        if status != _STATUS.kOptimal:
            return None
        if not integer or not self.integer_recheck or not fractional(x[: self.v]):
            return x
        status, x = self.solve(cost, lo=lo, integer=True)
        feasible = self.highs.getInfo().primal_solution_status == 2
        return x if status == _STATUS.kOptimal or feasible else None

    def solve(
        self,
        cost: np.ndarray,
        *,
        lo: np.ndarray | None = None,
        hi: np.ndarray | None = None,
        integer: bool = False,
    ) -> tuple[object, np.ndarray]:
        """Minimise ``cost`` (over x, or over x and the helpers) within the given x bounds."""
        highs = self.highs
        full = np.zeros(self.v + self.t)
        full[: len(cost)] = cost
        highs.changeColsCost(len(full), self.columns, full)
        self._set_bounds(self.lo if lo is None else lo, self.hi if hi is None else hi)
        if integer:
            self.counters.milps += 1
            highs.changeColsIntegrality(self.v, self.x_columns, np.full(self.v, _INTEGER))
            highs.setOptionValue("time_limit", self.time_limit)
            highs.setOptionValue("simplex_strategy", _DEFAULT_SIMPLEX)
        else:
            self.counters.lps += 1
        try:
            highs.run()
            status = highs.getModelStatus()
            x = np.asarray(highs.getSolution().col_value)
        finally:
            if integer:
                highs.changeColsIntegrality(self.v, self.x_columns, np.full(self.v, _CONTINUOUS))
                highs.setOptionValue("time_limit", math.inf)
                highs.setOptionValue("simplex_strategy", _PRIMAL)
        if not integer and status not in _UNBOUNDED and status != _STATUS.kOptimal:
            raise RuntimeError(
                f"attacker LP ended {status.name}: the published cells are inconsistent"
            )
        return status, x

    def _set_bounds(self, lo: np.ndarray, hi: np.ndarray) -> None:
        current_lo, current_hi = self._bounds
        if lo is current_lo and hi is current_hi:
            return
        changed = np.flatnonzero((lo != current_lo) | (hi != current_hi))
        if len(changed):
            self.highs.changeColsBounds(
                len(changed), changed.astype(np.int32), lo[changed], _inf(hi[changed])
            )
        self._bounds = (lo, hi)


def _inf(values: np.ndarray) -> np.ndarray:
    """numpy's infinity as HiGHS spells it."""
    return np.where(np.isinf(values), highspy.kHighsInf, values)
