"""The Dagster instance folder the CLI and the UI share (run history, schedules, sensors)."""

from __future__ import annotations

import os
from pathlib import Path

from cs360_pipeline.settings import current_paths

DAGSTER_YAML = """\
# Written by cs360-pipeline. Local SQLite storage; see README for a server set-up.
telemetry:
  enabled: false
"""


def ensure_dagster_home() -> Path:
    """Use ``$DAGSTER_HOME`` if set, else ``<data>/dagster_home``, with telemetry off."""
    home = Path(os.environ.get("DAGSTER_HOME") or current_paths().dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
