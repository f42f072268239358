"""What ``cs360 refresh`` says while it runs: one line per stage of the pipeline, with its counts.

The lines come from the run's own events (those the Dagster UI shows), read as the instance
stores them: a step's start and end, what its materializations counted (files, rows, cells, the
release), the outcome of its checks, its failure. A stage's line is printed when the next stage
starts or the run ends. On a terminal the step running now is shown on one line that the next
step overwrites; anywhere else (a file, a pipe, cron) only whole lines are written, so a log
holds no control codes.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import dagster as dg

from cs360_pipeline.run_times import seconds_text, stage_of
from cs360_pipeline.settings import plain_terminal

# Step key (prefix, suffix) -> the stage a progress line reports; the first match wins. Unlike
# the timing stages, the privacy audit and gate are checks here: they run after dbt, as checks.
PROGRESS_RULES: tuple[tuple[str, str, str], ...] = (
    ("raw__", "", "ingest"),
    ("shared__", "", "aggregate"),
    ("", "_dbt_models", "dbt"),
    ("marts__", "", "checks"),
    ("", "_checks", "checks"),
    ("published__", "", "publish"),
)
# Materialization metadata a stage's line adds up, by the start of the asset's key.
COUNTED = {
    "raw/": ("files_loaded", "files_quarantined", "files_duplicate", "rows_loaded"),
    "shared/cells_": ("cells", "suppressed_cells", "cells_kept"),
}
RELEASE_ASSET = "published/warehouse"
CLEAR_LINE = "\r\x1b[K"
Event = dg.DagsterEventType


@dataclass
class Stage:
    """What one stage did so far."""

    name: str
    seconds: float = 0.0
    steps: int = 0
    materialized: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)  # passed, warned, failed
    release: str | None = None

    def line(self, dbt_log: Path) -> str:
        """The stage in one line: its counts, its time, and for dbt where its output went."""
        release = [f"release {self.release}"] if self.release else []
        parts = [*self._files(), *self._cells(), *self._models(), *release, *self._checks()]
        text = f"{self.name}: {', '.join(parts or [f'{self.steps} step(s)'])}"
        text += f" ({seconds_text(self.seconds)})"
        return f"{text}; dbt's output: {dbt_log}" if self.name == "dbt" else text

    def _files(self) -> list[str]:
        if self.name != "ingest":
            return []
        c = self.counts
        files = c["files_loaded"] + c["files_quarantined"] + c["files_duplicate"]
        if not files:
            return ["no new file"]
        return [
            f"{files:,} new file(s): {c['files_loaded']:,} loaded, "
            f"{c['files_quarantined']:,} quarantined, {c['files_duplicate']:,} duplicate",
            f"{c['rows_loaded']:,} rows",
        ]

    def _cells(self) -> list[str]:
        c = self.counts
        built = f"{c['cells']:,} cells, {c['suppressed_cells']:,} suppressed"
        kept = f"{c['cells_kept']:,} cells kept (inputs unchanged)"
        return [built] * bool(c["cells"]) + [kept] * bool(c["cells_kept"])

    def _models(self) -> list[str]:
        return [f"{self.materialized} models"] if self.name == "dbt" else []

    def _checks(self) -> list[str]:
        """Outcomes of the stage's checks (dbt's tests, for dbt): passed, warned, failed."""
        if not self.checks:
            return []
        outcomes = ", ".join(f"{self.checks[k]} {k}" for k in ("passed", "warned", "failed")
                             if self.checks[k] or k == "passed")  # fmt: skip
        if self.name == "checks":
            return [outcomes]
        total = sum(self.checks.values())
        noun = ("test" if self.name == "dbt" else "check") + ("s" if total != 1 else "")
        return [f"{total} {noun}: {outcomes}"]


class Progress:
    """Listens to one run's events (``DagsterInstance.add_event_listener``) and reports them.

    ``echo_logs``: also print the run's warnings and errors (when Dagster's own console log is
    off). ``live``: show the running step on one line that the next overwrites (a terminal).
    """

    def __init__(
        self, out: TextIO, err: TextIO, *, dbt_log: Path, echo_logs: bool, live: bool
    ) -> None:
        self.out, self.err, self.dbt_log = out, err, dbt_log
        self.echo_logs, self.live = echo_logs, live
        self.stage: Stage | None = None
        self.started: dict[str, float] = {}
        self.step_failed = False
        self.shown = False  # a live line is on screen
        self.broken = False

    def __call__(self, entry: dg.EventLogEntry) -> None:
        """Never lets a display problem fail the run: it says so once and stops displaying."""
        if self.broken:
            return
        try:
            self._handle(entry)
        except Exception as exc:  # the refresh matters more than its display
            self.broken = True
            self._say(f"(progress display stopped: {type(exc).__name__}: {exc})", self.err)

    def finish(self) -> None:
        """Print the last stage's line."""
        self._close_stage()

    def _handle(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None:
            self._log_message(entry)
        elif event.event_type == Event.STEP_START and event.step_key:
            self._step_started(event.step_key, entry.timestamp)
        elif event.event_type in (Event.STEP_SUCCESS, Event.STEP_FAILURE) and event.step_key:
            self._step_ended(event, entry.timestamp)
        elif event.event_type == Event.ASSET_MATERIALIZATION and self.stage:
            self._materialized(event.step_materialization_data.materialization)
        elif event.event_type == Event.ASSET_CHECK_EVALUATION and self.stage:
            self._checked(event.event_specific_data)
        elif event.event_type == Event.RUN_FAILURE:
            self._run_failed(event)

    def _step_started(self, step_key: str, timestamp: float) -> None:
        name = stage_of(step_key, PROGRESS_RULES)
        if self.stage is None or self.stage.name != name:
            self._close_stage()
            self.stage = Stage(name)
        self.stage.steps += 1
        self.started[step_key] = timestamp
        if self.live:
            self._show(f"{name}: {step_key} ...")

    def _step_ended(self, event: dg.DagsterEvent, timestamp: float) -> None:
        assert event.step_key is not None
        if self.stage is not None:
            self.stage.seconds += max(0.0, timestamp - self.started.pop(event.step_key, timestamp))
        if event.event_type == Event.STEP_FAILURE:
            self.step_failed = True
            error = event.step_failure_data.error
            why = root_message(error) if error else "no error recorded"
            self._say(f"ERROR: step {event.step_key} failed: {why}", self.err)

    def _run_failed(self, event: dg.DagsterEvent) -> None:
        """Dagster's words (which steps failed), and the error if no step's failure said it."""
        if event.message:
            self._say(f"ERROR: {event.message}", self.err)
        error = getattr(event.event_specific_data, "error", None)
        if error is not None and not self.step_failed:
            self._say(f"ERROR: the run failed: {root_message(error)}", self.err)

    def _materialized(self, materialization: dg.AssetMaterialization) -> None:
        assert self.stage is not None
        self.stage.materialized += 1
        key = "/".join(materialization.asset_key.path)
        for prefix, names in COUNTED.items():
            if key.startswith(prefix):
                for name in names:
                    self.stage.counts[name] += _number(materialization.metadata.get(name))
        if key == RELEASE_ASSET:
            release = materialization.metadata.get("release_id")
            self.stage.release = str(getattr(release, "value", release))

    def _checked(self, evaluation: Any) -> None:
        assert self.stage is not None
        if evaluation.passed:
            outcome = "passed"
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            outcome = "warned"
        else:
            outcome = "failed"
        self.stage.checks[outcome] += 1

    def _log_message(self, entry: dg.EventLogEntry) -> None:
        if not self.echo_logs or entry.level < logging.WARNING or not entry.user_message:
            return
        if entry.level >= logging.ERROR:
            self._say(f"ERROR: {entry.user_message}", self.err)
        else:
            self._say(f"  warning: {entry.user_message}", self.out)

    def _close_stage(self) -> None:
        if self.stage is not None:
            self._say(self.stage.line(self.dbt_log), self.out)
            self.stage = None

    def _show(self, text: str) -> None:
        width = shutil.get_terminal_size().columns
        self.out.write(CLEAR_LINE + text[: max(width - 1, 10)])
        self.out.flush()
        self.shown = True

    def _say(self, line: str, stream: TextIO) -> None:
        if self.shown:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self.shown = False
        stream.write(line + "\n")
        stream.flush()


def root_message(error: Any) -> str:
    """The message of the error that stopped a step, past Dagster's wrappers around it."""
    while error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error.message.strip()


def _number(value: object) -> int:
    value = getattr(value, "value", value)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def is_terminal(stream: TextIO) -> bool:
    """Whether a person watches this stream (a terminal that understands control codes)."""
    try:
        return stream.isatty() and not plain_terminal()
    except (AttributeError, ValueError):
        return False


@contextmanager
def own_streams() -> Iterator[tuple[TextIO, TextIO]]:
    """Copies of stdout and stderr as they are now, for the length of a run.

    While a run's steps execute, Dagster points file descriptors 1 and 2 at its capture of the
    run's output and copies that to the terminal with a delay; lines written through these
    copies reach the terminal, the pipe or cron's log at once and stay out of that capture.
    """
    copies = [_copy(sys.stdout), _copy(sys.stderr)]
    try:
        yield copies[0], copies[1]
    finally:
        for copy in copies:
            if copy not in (sys.stdout, sys.stderr):
                copy.close()


def _copy(stream: TextIO) -> TextIO:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return stream  # not a file (a test's capture): write to it directly
    stream.flush()
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding=stream.encoding or "utf-8")
