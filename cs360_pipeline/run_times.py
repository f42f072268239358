"""Where a refresh's time went: seconds per Dagster step, grouped into the pipeline's stages.

A refresh is one in-process Dagster run whose steps run one after the other, so the run's own
event log (STEP_START to STEP_SUCCESS or STEP_FAILURE) says exactly where the time went. Asking
"is the privacy step the slow part?" should not need the UI: ``cs360 refresh`` ends with a
line made by :func:`summary`, and ``benchmarks/refresh_bench.py`` checks the privacy share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

# Step key (prefix, suffix) -> stage; the first rule that matches wins, an empty part matches
# anything. Step keys are asset keys joined by "__" (raw__police__incidents), the asset key
# plus the check's name for a single check (marts__metric_values_privacy_audit), or the
# function's name for dbt and the multi-asset freshness check.
STAGE_RULES: tuple[tuple[str, str, str], ...] = (
    ("raw__", "", "ingest"),
    ("shared__cells_", "", "privacy"),
    ("", "_privacy_audit", "privacy"),
    ("shared__", "", "catalog & reference"),
    ("", "_dbt_models", "dbt"),
    ("", "_privacy_gate", "checks"),
    ("", "_checks", "checks"),
    ("published__", "", "publish"),
)
OTHER = "other"
STAGES = tuple(dict.fromkeys([*(stage for _, _, stage in STAGE_RULES), OTHER]))

STEP_END = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)


def stage_of(step_key: str, rules: tuple[tuple[str, str, str], ...] = STAGE_RULES) -> str:
    """The stage a step belongs to, by the first matching rule (``STAGE_RULES`` by default)."""
    for prefix, suffix, stage in rules:
        if step_key.startswith(prefix) and step_key.endswith(suffix):
            return stage
    return OTHER


@dataclass(frozen=True)
class StepTime:
    step_key: str
    seconds: float
    failed: bool = False

    @property
    def stage(self) -> str:
        return stage_of(self.step_key)


@dataclass(frozen=True)
class RunTimes:
    """The steps of one run in the order they started, and the run's wall time if it ended."""

    run_id: str
    steps: tuple[StepTime, ...]
    run_seconds: float | None = None

    @property
    def step_seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def by_stage(self) -> dict[str, float]:
        """Seconds per stage, in pipeline order, for the stages that had a step."""
        seconds = {stage: 0.0 for stage in STAGES}
        present = {s.stage for s in self.steps}
        for step in self.steps:
            seconds[step.stage] += step.seconds
        return {stage: t for stage, t in seconds.items() if stage in present}

    def share(self, stage: str) -> float:
        """The stage's part of the step time, 0 to 1 (0 when no step took measurable time)."""
        total = self.step_seconds
        return self.by_stage().get(stage, 0.0) / total if total > 0 else 0.0

    def slowest(self, n: int = 3) -> list[StepTime]:
        return sorted(self.steps, key=lambda s: s.seconds, reverse=True)[:n]


def run_times(instance: dg.DagsterInstance, run_id: str) -> RunTimes:
    """Read one run's step timings from the instance's event log."""
    entries = instance.all_logs(run_id)
    return RunTimes(run_id=run_id, steps=_steps(entries), run_seconds=_run_seconds(entries))


def _steps(entries: Iterable[dg.EventLogEntry]) -> tuple[StepTime, ...]:
    """Per step, STEP_START to its end event; a step cut short ends at its last event."""
    started: dict[str, float] = {}
    ended: dict[str, tuple[float, bool]] = {}
    last_seen: dict[str, float] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        key = event.step_key
        last_seen[key] = entry.timestamp
        if event.event_type == dg.DagsterEventType.STEP_START:
            started.setdefault(key, entry.timestamp)
        elif event.event_type in STEP_END:
            ended[key] = (entry.timestamp, event.event_type == dg.DagsterEventType.STEP_FAILURE)
    steps = []
    for key, start in started.items():
        end, failed = ended.get(key, (last_seen[key], False))
        steps.append(StepTime(key, max(0.0, end - start), failed))
    return tuple(steps)


def _run_seconds(entries: Iterable[dg.EventLogEntry]) -> float | None:
    start = end = None
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.RUN_START:
            start = entry.timestamp
        elif event.event_type in (
            dg.DagsterEventType.RUN_SUCCESS,
            dg.DagsterEventType.RUN_FAILURE,
        ):
            end = entry.timestamp
    return end - start if start is not None and end is not None else None


def seconds_text(value: float) -> str:
    """Seconds as a person reads them: one decimal under ten."""
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def summary(times: RunTimes, slowest: int = 3) -> str:
    """Two lines: the step time per stage with its share, then the slowest steps."""
    if not times.steps:
        return "Time: no step ran."
    total = times.step_seconds
    run = f" (run {seconds_text(times.run_seconds)})" if times.run_seconds is not None else ""
    stages = ", ".join(
        f"{stage} {seconds_text(seconds)} ({times.share(stage):.0%})"
        for stage, seconds in times.by_stage().items()
    )
    steps = ", ".join(
        f"{s.step_key} {seconds_text(s.seconds)}{' (failed)' if s.failed else ''}"
        for s in times.slowest(slowest)
    )
    return f"Time: {seconds_text(total)} in steps{run}: {stages}.\nSlowest steps: {steps}."
