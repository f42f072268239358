"""dbt run inside the refresh's own process, with the results Dagster needs collected as it runs.

A second Python for dbt costs every refresh about 3 s: starting it, importing dbt again and
loading the manifest the refresh has already read, then printing each event as JSON for the
first process to parse back. ``dbtRunner`` runs the same command line in this process.

Two things of dbt's are process-wide and are handled here:
- the profile names the build database relative to the project (``../build.duckdb``, the same
  in every deployment so that a parse can be shared), so dbt runs with the project as the
  working directory, restored after;
- dbt-duckdb keeps its DuckDB database open after a command (one environment per process, a
  private attribute of dbt-duckdb 1.11), and DuckDB refuses a second connection to the same file
  with other settings. The environment is closed after every command, so the steps after dbt
  open the build database as before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The events carrying a node's result: one per model, test, seed or snapshot dbt ran.
RESULT_EVENTS = frozenset({"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult"})


@dataclass
class Outcome:
    """What one dbt command left: its node results (as dbt's JSON log lines would carry them),
    its error messages, and the exception that stopped it, if any."""

    success: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exception: BaseException | None = None


@contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _close_database() -> None:
    """Close the DuckDB database dbt-duckdb keeps open for the process (see the docstring)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def run(project_dir: Path, argv: Sequence[str], target_path: Path) -> Outcome:
    """Run ``dbt <argv>`` on the project at ``project_dir``, writing its artefacts and its file log
    to ``target_path``. dbt's own messages go to standard output as its command line prints them.

    A kept parse in the project's target folder is copied to ``target_path`` first, so the
    command starts from it instead of parsing again."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.base_types import EventMsg
    from dbt_common.events.functions import msg_to_dict

    target_path.mkdir(parents=True, exist_ok=True)
    kept = project_dir / "target" / "partial_parse.msgpack"
    if kept.exists() and not (target_path / kept.name).exists():
        shutil.copy(kept, target_path / kept.name)
    outcome = Outcome()

    def listen(event: EventMsg) -> None:
        if event.info.level == "error":
            outcome.errors.append(event.info.msg)
        if event.info.name in RESULT_EVENTS:
            outcome.results.append(msg_to_dict(event))

    args = [
        *argv,
        *("--project-dir", str(project_dir), "--profiles-dir", str(project_dir)),
        *("--target-path", str(target_path), "--log-path", str(target_path)),
    ]
    with _working_directory(project_dir):
        try:
            result = dbtRunner(callbacks=[listen]).invoke(args)
        finally:
            _close_database()
    outcome.success = result.success
    outcome.exception = result.exception
    return outcome
