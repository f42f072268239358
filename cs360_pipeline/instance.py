"""The Dagster instance folder the CLI and the UI share (run history, schedules, sensors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from cs360_pipeline.settings import Paths, dagster_home, use_dagster_home

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from cs360_pipeline.refresh_lock import Holder

HEADER = "# Written by cs360-pipeline."
DAGSTER_YAML = f"""\
{HEADER} Local SQLite storage; see README for a server set-up.
telemetry:
  enabled: false
# No "Join the Dagster community" pop-up when the UI opens (it would ask for an e-mail address).
nux:
  enabled: false
# One refresh at a time: sensors and the schedule queue their runs instead of failing on
# DuckDB's single-writer lock (cs360 refresh, outside the queue, takes the same file lock).
concurrency:
  runs:
    max_concurrent_runs: 1
# A run that never got going is marked failed instead of staying STARTING forever.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  poll_interval_seconds: 60
# Dagster's SQLite files in this folder, written through connections kept open while a
# process runs (cs360_pipeline/instance_storage.py): a refresh writes ~1,000 events.
storage:
  custom:
    module: cs360_pipeline.instance_storage
    class: LocalStorage
    config:
      base_dir: {{home}}
"""


def dagster_yaml(home: Path) -> str:
    """The ``dagster.yaml`` this project writes into the Dagster home ``home``."""
    return DAGSTER_YAML.replace("{home}", json.dumps(str(home)))  # a JSON string is YAML


def ensure_dagster_home(paths: Paths | None = None) -> Path:
    """Use ``$DAGSTER_HOME`` if set, else the deployment's ``<data>/dagster_home`` (``paths``,
    else the deployment settings name): telemetry and pop-up off.

    A ``dagster.yaml`` this project wrote earlier (its first line says so) is brought up to
    date; one an operator wrote is left alone.
    """
    if paths is None:
        from cs360_pipeline.deployment import Deployment

        paths = Deployment.from_settings().paths
    home = dagster_home(paths)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    text = config.read_text(encoding="utf-8") if config.exists() else None
    wanted = dagster_yaml(home)  # names the folder: a moved one is rewritten
    if text is None or (text.startswith(HEADER) and text != wanted):
        config.write_text(wanted, encoding="utf-8")
    use_dagster_home(home)
    return home


def fail_interrupted_run(instance: DagsterInstance | None, died: Holder) -> str:
    """Mark the run of a refresh that died holding the writer lock as failed; say what happened.

    A killed process cannot report its own end, so Dagster would show it running forever.
    Without an instance (the holder had no run, as ``cs360 reingest``), it only says so.
    """
    from dagster import DagsterRunStatus

    what = f"the refresh {died.describe()} was interrupted before it finished"
    run = instance.get_run_by_id(died.run_id) if instance and died.run_id else None
    if run is not None and run.status in (
        DagsterRunStatus.STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.NOT_STARTED,
    ):
        instance.report_run_failed(run, message=f"{what}; marked failed by the next refresh")
        return f"{what}; its run is now marked failed"
    return what
