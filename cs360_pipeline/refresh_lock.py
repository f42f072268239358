"""One writer per deployment: every refresh, however it starts, holds ``data/.refresh.lock``.

DuckDB files take a single writer, so two refreshes at once can only fail each other. The lock is
an advisory ``flock`` on one file: the kernel releases it when the holder dies, however it dies,
so a crashed refresh never leaves a stale lock behind. The holder writes who it is (pid, start
time, how it started, its Dagster run) into the same file, which lets a second trigger name the
running refresh, and lets the next holder see that the previous one died before it let go.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from cs360_pipeline.settings import Paths

LOCK_FILE = ".refresh.lock"
_held_here: set[Path] = set()  # locks this process holds (a run inside the CLI's own refresh)


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) the lock."""

    pid: int
    started_at: str  # ISO time, UTC
    how: str  # "cs360 refresh", "sensor police_inbox", "schedule nightly_refresh", ...
    run_id: str | None = None

    def describe(self) -> str:
        run = f", Dagster run {self.run_id}" if self.run_id else ""
        return f"pid {self.pid}, started {self.started_at} UTC by {self.how}{run}"


class RefreshRunning(RuntimeError):
    """Another refresh of this deployment holds the lock."""

    def __init__(self, holder: Holder | None, lock_path: Path) -> None:
        self.holder = holder
        who = holder.describe() if holder else "a process that has not said who it is yet"
        super().__init__(f"another refresh of this deployment is running ({who}); lock {lock_path}")


def lock_path(paths: Paths) -> Path:
    return paths.data_dir / LOCK_FILE


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in the lock file, if any (readers never take the lock)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return None


def held_by_this_process(paths: Paths) -> bool:
    return lock_path(paths) in _held_here


@contextmanager
def refresh_lock(
    paths: Paths,
    how: str,
    *,
    run_id: str | None = None,
    wait_seconds: float = 0.0,
    on_wait: Callable[[Holder | None], None] | None = None,
) -> Iterator[Holder | None]:
    """Hold the deployment's writer lock for the block.

    Waits up to ``wait_seconds`` for a running refresh to finish (``on_wait`` is told who holds
    it, once at the start and then every 30 s), else raises :class:`RefreshRunning`. Yields the
    holder the file still names when the lock was free: a refresh that died while holding it.
    """
    path = lock_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, wait_seconds, on_wait)
        died = read_holder(path)
        me = Holder(
            pid=os.getpid(),
            started_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            how=how,
            run_id=run_id,
        )
        _write(fd, json.dumps(asdict(me)))
        _held_here.add(path)
        try:
            yield died
        finally:
            _held_here.discard(path)
            _write(fd, "")  # a clean exit leaves no holder behind
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(
    fd: int, path: Path, wait_seconds: float, on_wait: Callable[[Holder | None], None] | None
) -> None:
    deadline = time.monotonic() + wait_seconds
    next_word = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = read_holder(path)
            now = time.monotonic()
            if now >= deadline:
                raise RefreshRunning(holder, path) from None
            if on_wait is not None and now >= next_word:
                on_wait(holder)
                next_word = now + 30
            time.sleep(min(1.0, max(deadline - now, 0.01)))


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)
    os.fsync(fd)
