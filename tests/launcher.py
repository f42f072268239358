"""``cs360`` commands for the tests, started from one Python that has the libraries loaded.

Every ``cs360 refresh`` spends some 7 s before and during its steps on work that is the same
in every process: importing Dagster, dbt, DuckDB, pandera, SciPy and the pipeline's own modules,
and dbt building its serializers and schemas on first use. The suite starts some seventy of
them. A launcher process (one per test worker) does that work once, and forks a child for each
command: it imports the libraries and the pipeline's modules, and parses a scratch copy of the
dbt project twice. The child is the command: it takes the command's environment, working
directory and arguments, calls the entry point of the installed script it names
(``cs360_pipeline.cli:run`` for ``cs360``) and exits the way the script does, with its own
process id, exit code and signals. A test waits for it, kills it and reads its output as it
would the script's. The pipeline's definitions are not loaded before the fork (they depend on
the deployment), and tests/cli/ compares the launcher with the script.

Run as ``python -m tests.launcher`` it is the launcher: one JSON request per line on standard
input, one JSON line per fork (``id``, ``pid``) and per exit (``pid``, ``exit``) on its output.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
# What every refresh imports before its first step, none of it reading the environment.
PRELOAD = (
    "dagster",
    "dagster_dbt",
    "dbt.cli.main",
    "duckdb",
    "ibis.backends.duckdb",
    "pandera.ibis",
    "pandas",
    "pyarrow",
    "jinja2",
    "openpyxl",
    "dagster._core.storage.sqlite_storage",
    "dbt.adapters.duckdb",
    "dbt.task.build",
)
# cs360_pipeline.definitions builds the deployment's definitions from settings when imported.
READS_THE_DEPLOYMENT = {"cs360_pipeline.definitions"}


# -- the launcher process ---------------------------------------------------------------------


def _reply(message: dict[str, Any]) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _reply({"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def serve() -> dict[str, Any] | None:
    """Fork a child per request until standard input closes (then None). A child leaves this
    loop with its request; only the launcher stays in it. One thread, so forking is safe."""
    pending = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.05)
        _reap()
        if not ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return None
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                return request
            _reply({"id": request["id"], "pid": pid})


def become(request: dict[str, Any]) -> None:
    """In the child: take the command's streams, environment, folder and arguments; run it."""
    import random

    if request["new_session"]:
        os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    target = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, 1)
    os.close(target)
    if request["err"] == request["out"]:  # one file for both, as stderr=subprocess.STDOUT
        os.dup2(1, 2)
    else:
        target = os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, 2)
        os.close(target)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    random.seed()  # a process of its own draws its own numbers
    sys.argv = list(request["argv"])
    sys.path[0] = os.path.dirname(sys.argv[0])  # where the script's Python would look
    # The installed script's entry point (cs360_pipeline.cli:main for cs360), as it calls it.
    (script,) = entry_points(group="console_scripts", name=os.path.basename(sys.argv[0]))
    sys.exit(script.load()())


def preload() -> None:
    """The libraries, then every module of the pipeline but those that read the deployment."""
    import pkgutil

    import cs360_pipeline

    for module in PRELOAD:
        __import__(module)
    for info in pkgutil.walk_packages(cs360_pipeline.__path__, "cs360_pipeline."):
        if info.name not in READS_THE_DEPLOYMENT:
            __import__(info.name)


def warm_dbt() -> None:
    """Parse a scratch copy of the dbt project twice (the second reads the first's parse), so
    the commands start with dbt's serializers and schemas built. Nothing of it is kept.

    Without dbt's static parser: it is a Rust library whose worker threads do not survive a
    fork (a child's parse then waits for them forever). The children load it themselves."""
    from cs360_pipeline.catalog import dbt_in_process

    with tempfile.TemporaryDirectory(prefix="cs360-launcher-") as scratch:
        project = Path(scratch) / "build" / "dbt_project"
        leave_out = shutil.ignore_patterns("target", "logs", "dbt_packages")
        shutil.copytree(PROJECT_DIR / "dbt_project", project, ignore=leave_out)
        argv = ["parse", "--no-static-parser", "--vars", json.dumps({"as_of": "2025-01-31"})]
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            for _ in range(2):
                outcome = dbt_in_process.run(project, argv, Path(scratch) / "target")
                if not outcome.success:
                    raise RuntimeError(f"dbt parse of the scratch project failed: {outcome.errors}")


def _threads() -> int:
    """The process's threads, native ones included (a library's pool is not in ``threading``)."""
    return len(os.listdir("/proc/self/task"))


def launcher_main() -> None:
    preload()  # BLAS and DuckDB's allocator start threads of their own, made to survive a fork
    imported = _threads()
    warm_dbt()
    if threading.active_count() != 1 or _threads() != imported:
        started = "a Python thread" if threading.active_count() != 1 else "warming dbt"
        raise RuntimeError(f"{started} left threads running: the launcher cannot fork safely")
    request = serve()
    if request is not None:
        become(request)


# -- the tests' side --------------------------------------------------------------------------


class Child:
    """A command the launcher started: what the tests use of ``subprocess.Popen``."""

    def __init__(self, launcher: Launcher, request_id: int, pid: int) -> None:
        self.launcher, self.request_id, self.pid = launcher, request_id, pid

    @property
    def returncode(self) -> int | None:
        return self.launcher.exits.get(self.request_id)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self.launcher.changed:
            if not self.launcher.changed.wait_for(
                lambda: self.request_id in self.launcher.exits, timeout=timeout
            ):
                raise subprocess.TimeoutExpired(f"cs360 (pid {self.pid})", timeout or 0)
        return self.launcher.exits[self.request_id]

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Launcher:
    """The launcher process of this test worker, and what it has said."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.launcher"],
            cwd=PROJECT_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.changed = threading.Condition()
        # By request: process ids come round again (pid_max is often 32768), so a pid names a
        # command only while it runs. The launcher reports an exit before it forks again.
        self.pids: dict[int, int] = {}
        self.running: dict[int, int] = {}  # pid -> request, while it runs
        self.exits: dict[int, int] = {}
        self.next_id = 0
        self.output = Path(tempfile.mkdtemp(prefix="cs360-commands-"))
        self.outputs = itertools.count()
        threading.Thread(target=self._listen, name="cs360-launcher", daemon=True).start()

    def _listen(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.record(json.loads(line))

    def record(self, message: dict[str, int]) -> None:
        """Take in one line of the launcher's: a command forked, or a command ended."""
        with self.changed:
            if "id" in message:
                self.pids[message["id"]] = message["pid"]
                self.running[message["pid"]] = message["id"]
            else:
                self.exits[self.running.pop(message["pid"])] = message["exit"]
            self.changed.notify_all()

    def start(
        self, argv: list[str], env: dict[str, str], out: Path, err: Path, new_session: bool = False
    ) -> Child:
        """Start ``argv`` (``cs360`` and its arguments) with exactly ``env``; its standard output
        and error go to the files ``out`` and ``err`` (the same file for both is fine). With
        ``new_session`` it leads a process group of its own, as ``start_new_session=True``."""
        assert self.process.stdin is not None
        with self.changed:
            request_id = self.next_id = self.next_id + 1
            request = {"id": request_id, "argv": argv, "env": env, "cwd": os.getcwd(),
                       "out": str(out), "err": str(err), "new_session": new_session}  # fmt: skip
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            if not self.changed.wait_for(lambda: request_id in self.pids, timeout=60):
                raise RuntimeError("the cs360 launcher did not start the command")
            return Child(self, request_id, self.pids[request_id])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        shutil.rmtree(self.output, ignore_errors=True)


_shared: Launcher | None = None


def shared() -> Launcher:
    """This worker's launcher, started the first time a test needs it."""
    global _shared
    if _shared is None or _shared.process.poll() is not None:
        _shared = Launcher()
        atexit.register(_shared.close)
    return _shared


def run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)``."""
    launcher = shared()
    stamp = next(launcher.outputs)
    out, err = launcher.output / f"{stamp}.out", launcher.output / f"{stamp}.err"
    child = launcher.start(argv, env, out, err)
    try:
        code = child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise
    result = subprocess.CompletedProcess(
        argv, code, out.read_text(encoding="utf-8", errors="replace"),
        err.read_text(encoding="utf-8", errors="replace"),
    )  # fmt: skip
    out.unlink()
    err.unlink()
    return result


if __name__ == "__main__":
    launcher_main()
