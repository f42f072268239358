"""Refresh benchmark: where a whole demo refresh spends its time, and the privacy step's share.

    .venv/bin/python benchmarks/refresh_bench.py [--scale 1] [--max-privacy-share 0.20]

1. Copies every ``sources/<provider>/provider.yml`` into a temporary deployment (its own data,
   sources and Dagster home), so the checkout's ``data/`` and inboxes are left alone.
2. Runs ``cs360 demo --scale <scale>`` and one ``cs360 refresh`` there, each in its own process,
   offline like every refresh. With ``--next-months N`` the demo first ends N months earlier,
   and N more deliveries follow, one refresh each: the privacy step then also reads the
   releases still public. The demo re-sends every earlier month with new numbers each time, so
   every cell is revised: the hardest case for the privacy step, shown but not judged.
3. Reads the refresh's step timings from that Dagster home (``cs360_pipeline.run_times``) and
   prints seconds and share per stage, and the slowest steps.
4. Goal: the privacy step (aggregation and suppression per provider, ``shared__cells_*``, and
   the blocking privacy audit) takes at most ``--max-privacy-share`` of the refresh's step
   time. Exits 1 when it does not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cs360_pipeline.run_times import RunTimes, run_times

PROJECT = Path(__file__).resolve().parents[1]
JOB = "refresh_all"
PRIVACY = "privacy"


def scratch_deployment(root: Path) -> dict[str, str]:
    """A fresh sources folder holding only the providers' contracts; the env that points at it."""
    for contract in sorted((PROJECT / "sources").glob("*/provider.yml")):
        target = root / "sources" / contract.parent.name
        target.mkdir(parents=True)
        shutil.copy(contract, target / "provider.yml")
    return {
        **os.environ,
        "CS360_DATA_DIR": str(root / "data"),
        "CS360_SOURCES_DIR": str(root / "sources"),
        "DAGSTER_HOME": str(root / "dagster_home"),
    }


def cs360(env: dict[str, str], *args: str) -> float:
    """Run ``cs360 <args>``; its wall seconds. Stops the benchmark with its output if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cs360_pipeline.cli", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"cs360 {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return time.perf_counter() - started


def read_times(dagster_home: Path) -> RunTimes:
    """The step timings of the last refresh recorded in ``dagster_home``."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=JOB), limit=1)
        if not runs:
            raise SystemExit(f"no {JOB} run recorded in {dagster_home}")
        return run_times(instance, runs[0].run_id)


def print_table(times: RunTimes, slowest: int) -> None:
    steps_per_stage: dict[str, int] = {}
    for step in times.steps:
        steps_per_stage[step.stage] = steps_per_stage.get(step.stage, 0) + 1
    print(f"{'stage':22} {'steps':>5} {'seconds':>8} {'share':>6}")
    for stage, seconds in times.by_stage().items():
        print(f"{stage:22} {steps_per_stage[stage]:5} {seconds:8.1f} {times.share(stage):6.1%}")
    print(f"{'all steps':22} {len(times.steps):5} {times.step_seconds:8.1f} {1:6.1%}")
    print()
    print(f"{'slowest steps':40} {'stage':22} {'seconds':>8}")
    for step in times.slowest(slowest):
        print(f"{step.step_key:40} {step.stage:22} {step.seconds:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="demo volume (1.0 = a city)")
    parser.add_argument(
        "--max-privacy-share",
        type=float,
        default=0.20,
        help="goal: the privacy step's largest share of the refresh's step time",
    )
    parser.add_argument("--slowest", type=int, default=5, help="slowest steps to list")
    parser.add_argument(
        "--next-months",
        type=int,
        default=0,
        help="then deliver this many more months, one refresh each (shown, not judged)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: temp)")
    args = parser.parse_args()

    months = delivery_months(args.next_months)
    with tempfile.TemporaryDirectory(prefix="refresh-bench-", dir=args.dir) as scratch:
        root = Path(scratch)
        env = scratch_deployment(root)
        runs = []
        for month in months:
            demo_seconds = cs360(env, "demo", "--scale", str(args.scale), "--end-month", month)
            refresh_seconds = cs360(env, "refresh")
            runs.append((month, demo_seconds, refresh_seconds, read_times(root / "dagster_home")))
    month, demo_seconds, refresh_seconds, times = runs[0]
    run = f"{times.run_seconds:.1f} s" if times.run_seconds is not None else "?"
    print(f"demo --scale {args.scale:g} up to {month}: {demo_seconds:.1f} s; refresh: "
          f"{refresh_seconds:.1f} s wall, run {run}, {times.step_seconds:.1f} s in "
          f"{len(times.steps)} steps")  # fmt: skip
    print()
    print_table(times, args.slowest)
    for month, _, refresh_seconds, later in runs[1:]:
        print()
        print(f"next delivery, up to {month} (every earlier month re-sent, revised): refresh "
              f"{refresh_seconds:.1f} s wall, privacy {later.by_stage().get(PRIVACY, 0):.1f} s "
              f"of {later.step_seconds:.1f} s in steps ({later.share(PRIVACY):.2f})")  # fmt: skip
    print()
    share = times.share(PRIVACY)
    verdict = "PASS" if share <= args.max_privacy_share else "FAIL"
    print(f"privacy share of the demo refresh's step time: {share:.2f} "
          f"(goal <= {args.max_privacy_share:.2f}) {verdict}")  # fmt: skip
    if verdict == "FAIL":
        sys.exit(1)


def delivery_months(after: int) -> list[str]:
    """The demo's end months: ``after`` months before last month, then one more each time."""
    today = dt.date.today()
    last = today.year * 12 + today.month - 2  # last month, as months since year 0
    return [f"{m // 12}-{m % 12 + 1:02d}" for m in range(last - after, last + 1)]


if __name__ == "__main__":
    main()
