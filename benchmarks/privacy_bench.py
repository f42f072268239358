"""Benchmark the privacy engine on 4-dimensional tables of 74-130k cells (not a test).

``standard``: 1 city + 10 districts + 80 beats, 36 months + 12 quarters + 3 years, sex (F, M, U)
+ total crossed with 6 age bands + total: 91 x 51 x 4 x 7 = 129,948 cells, even shares.
``dense``: 1 + 9 + 90 geographies, the same periods and sexes, 5 age bands: 100 x 51 x 4 x 6 =
122,400 cells, with realistic shares (few 'U', few under 18), so about a fifth are small.
``designed``: the dense table as the pipeline's table design would publish it with
``max_small_share: 0.4`` (levels more than 40% small are left out, ``privacy/levels.py``): beats by
month by sex by age (43% small) go, 73,800 cells stay.
Leaf counts (beat x month x sex x age) are Poisson with a gamma-distributed beat intensity, so
small cells cluster in quiet beats as in real data.

Per table it prints cells, equations, primaries, the engine's pattern (share hidden, seconds to
protect and for the independent audit) against the goal, and the classic line rule's share on
the same table (the smallest cell of a line as its complement, repaired by the same audit).
Each table runs in a process of its own, stopped after ``--budget`` seconds; its peak memory
includes the audit's worker processes. Large audits use one worker per core.

    .venv/bin/python benchmarks/privacy_bench.py [--table standard|dense|designed|all]
        [--budget 900]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import signal
import subprocess
import sys
import time
from itertools import product

import numpy as np

from cs360_pipeline.privacy.audit import Publication, audit
from cs360_pipeline.privacy.complementary import LineRule, protect
from cs360_pipeline.privacy.lattice import Lattice
from cs360_pipeline.privacy.levels import level_label, level_of, sparse_levels

SEXES = ("F", "M", "U")
SEX_WEIGHTS = (0.47, 0.48, 0.05)
GOAL_SECONDS = 60
AGES = ("0-9", "10-17", "18-24", "25-34", "35-64", "65+")
AGE_WEIGHTS = (0.03, 0.12, 0.22, 0.25, 0.3, 0.08)
AGES_5 = ("0-17", "18-24", "25-34", "35-64", "65+")
AGE_WEIGHTS_5 = (0.15, 0.22, 0.25, 0.3, 0.08)
TABLES = {
    # 91 x 51 x 4 x 7 = 129,948 cells, even sex and age shares
    "standard": {"districts": 10, "beats_per_district": 8, "ages": 6, "skewed": False},
    # 100 x 51 x 4 x 6 = 122,400 cells, realistic shares: few 'U', few under 18
    "dense": {"districts": 9, "beats_per_district": 10, "ages": 5, "skewed": True},
    # the dense table after the table design of a policy with max_small_share 0.4
    "designed": {
        "districts": 9,
        "beats_per_district": 10,
        "ages": 5,
        "skewed": True,
        "max_small_share": 0.4,
    },
}


def age_bands(args: argparse.Namespace) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return (AGES, AGE_WEIGHTS) if args.ages == 6 else (AGES_5, AGE_WEIGHTS_5)


def leaf_counts(args: argparse.Namespace) -> np.ndarray:
    """beat x month x sex x age Poisson counts."""
    rng = np.random.default_rng(args.seed)
    beats = args.districts * args.beats_per_district
    intensity = rng.gamma(args.beat_shape, 1 / args.beat_shape, size=beats)  # mean 1
    season = 1 + 0.2 * np.sin(np.arange(args.months) / 12 * 2 * np.pi)
    ages, weights = age_bands(args)
    mix = np.ones((len(SEXES), len(ages)))
    if args.skewed:  # realistic shares: few 'U' and few children, so far more small cells
        mix = np.outer(SEX_WEIGHTS, weights) * len(SEXES) * len(ages)
    lam = args.leaf_mean * intensity[:, None, None, None] * season[None, :, None, None]
    return rng.poisson(lam * mix[None, None, :, :])


def _roll(a: np.ndarray, axis: int, groups: list[np.ndarray]) -> np.ndarray:
    """Append the sums over each group of indices along ``axis``."""
    sums = [np.take(a, g, axis=axis).sum(axis=axis, keepdims=True) for g in groups]
    return np.concatenate([a, *sums], axis=axis)


def cube(leaf: np.ndarray, args: argparse.Namespace) -> tuple[np.ndarray, list, list, dict]:
    """Every level of every dimension, plus the codes along each axis."""
    nb, nm = leaf.shape[:2]
    d = args.districts
    beats = [
        f"B{i // args.beats_per_district + 1:02d}{i % args.beats_per_district + 1}"
        for i in range(nb)
    ]
    geo = [("beat", b) for b in beats] + [("district", f"D{j + 1:02d}") for j in range(d)]
    geo.append(("city", "RIV"))
    parent = {b: f"D{i // args.beats_per_district + 1:02d}" for i, b in enumerate(beats)}
    parent.update({f"D{j + 1:02d}": "RIV" for j in range(d)})
    per = args.beats_per_district
    a = _roll(leaf, 0, [np.arange(j * per, (j + 1) * per) for j in range(d)])
    a = _roll(a, 0, [np.arange(nb, nb + d)])
    months = [dt.date(2023 + m // 12, m % 12 + 1, 1) for m in range(nm)]
    period = [("month", m.isoformat()) for m in months]
    period += [
        ("quarter", dt.date(2023 + q // 4, q % 4 * 3 + 1, 1).isoformat()) for q in range(nm // 3)
    ]
    period += [("year", dt.date(2023 + y, 1, 1).isoformat()) for y in range(nm // 12)]
    a = _roll(a, 1, [np.arange(q * 3, q * 3 + 3) for q in range(nm // 3)])
    a = _roll(a, 1, [np.arange(nm + y * 4, nm + y * 4 + 4) for y in range(nm // 12)])
    ages, _ = age_bands(args)
    a = _roll(_roll(a, 2, [np.arange(len(SEXES))]), 3, [np.arange(len(ages))])
    breakdowns = [
        ";".join(p for p in (f"age_group={age}" if age else "", f"sex={sex}" if sex else "") if p)
        or "total"
        for sex, age in product((*SEXES, None), (*ages, None))
    ]
    return a, geo, period, {"parent": parent, "breakdowns": breakdowns}


def build(args: argparse.Namespace) -> Lattice:
    a, geo, period, meta = cube(leaf_counts(args), args)
    keys, values = [], []
    for (g, (gl, gc)), (p, (pl, ps)) in product(enumerate(geo), enumerate(period)):
        block = a[g, p].reshape(-1)
        for b, bd in enumerate(meta["breakdowns"]):
            keys.append((pl, ps, gl, gc, bd))
            values.append(int(block[b]))
    share = getattr(args, "max_small_share", None)
    if share is not None:  # the table design: sparse levels left out, as the pipeline does
        rows = [(*key, n) for key, n in zip(keys, values, strict=True)]
        gone = sparse_levels(rows, args.k, share)
        print(f"  left out (over {share:.0%} small): {', '.join(map(level_label, gone))}")
        kept = [i for i, row in enumerate(rows) if level_of(row) not in gone]
        keys, values = [keys[i] for i in kept], [values[i] for i in kept]
    return Lattice.build(keys, values, meta["parent"])


class ClassicLineRule(LineRule):
    """The textbook line rule, for comparison: the smallest non-zero published cell of a line
    is its complement, whatever its level (the engine prefers fine cells that repair most)."""

    def cheapest(self, cells: list[int], skip: int = -1) -> int:
        return min(cells, key=lambda c: (self.n[c], self.tie[c]))


def run(table: str, args: argparse.Namespace) -> None:
    """Protect one table with the engine and with the classic rule; audit the engine's."""
    args = argparse.Namespace(**{**vars(args), **TABLES[table]})
    t0 = time.perf_counter()
    lattice = build(args)
    t1 = time.perf_counter()
    primaries = int(((lattice.n > 0) & (lattice.n < args.k)).sum())
    print(
        f"[{table}] cells {lattice.size:,}  equations {lattice.n_equations:,}  "
        f"primaries {primaries:,} ({primaries / lattice.size:.1%})  "
        f"zeros {int((lattice.n == 0).sum()):,}  build {t1 - t0:.1f} s"
    )
    result = protect(lattice, args.k, max_rounds=200)
    print(f"  complementary: {result.summary()}")
    print(f"  last round audit: {result.audit.text().splitlines()[0]}")
    seconds = result.seconds
    if args.no_audit:
        print("  independent full audit: skipped (--no-audit)")
    else:
        report = audit([Publication(lattice, result.suppressed, args.k)])
        print(f"  independent full audit: {report.text()}")
        seconds += report.seconds
    print(
        f"  protected and audited in {seconds:.1f} s (goal {GOAL_SECONDS} s): "
        f"{result.rate:.1%} hidden"
    )
    if not args.no_baseline:
        classic = protect(lattice, args.k, max_rounds=200, line_rule=ClassicLineRule)
        print(
            f"  classic line rule with the same audit and repair: {classic.rate:.1%} hidden "
            f"({classic.seconds:.1f} s, audit {'passed' if classic.audit.passed else 'FAILED'})"
        )


def peak_memory_mb() -> tuple[float, float]:
    """(this process, its audit workers) peak resident memory. The workers are children of
    the fork server, which accounts for them once it is stopped."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run_alone(table: str, budget: float) -> None:
    """This script for one table in a process group of its own, stopped (with its audit
    workers) when the budget runs out."""
    command = [sys.executable, __file__, *sys.argv[1:], "--table", table]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        child.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        print(f"[{table}] did not finish within {budget:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=[*TABLES, "all"], default="all")
    parser.add_argument("--budget", type=float, default=900, help="seconds per table")
    parser.add_argument("--leaf-mean", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--beat-shape", type=float, default=8.0, help="gamma shape of beat load")
    parser.add_argument("--no-audit", action="store_true", help="skip the independent full audit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the classic line rule")
    args = parser.parse_args()
    if args.table == "all":
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
        for table in TABLES:  # each in a process of its own, with its own memory and budget
            run_alone(table, args.budget)
        return
    start = time.perf_counter()
    run(args.table, args)
    own, workers = peak_memory_mb()
    print(
        f"  total {time.perf_counter() - start:.1f} s, peak memory {own:,.0f} MB "
        f"(largest audit worker {workers:,.0f} MB), load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
