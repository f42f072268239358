"""Where the project's configuration and runtime data live.

Everything is derived from two environment variables so that tests, the demo and a production
server can point the same code at different folders:

- ``CS360_DATA_DIR``: runtime data (default ``<project>/data``), git-ignored.
- ``CS360_SOURCES_DIR``: provider folders with ``provider.yml`` and the drop folders
  (default ``<project>/sources``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
PRIVACY_DIR = PROJECT_DIR / "privacy"


@dataclass(frozen=True)
class Paths:
    """The runtime folders of one deployment."""

    data_dir: Path
    sources_dir: Path

    @property
    def raw_db(self) -> Path:
        """Row-level data: the restricted zone. Only ingest and privacy open it."""
        return self.data_dir / "restricted" / "raw.duckdb"

    @property
    def vault_db(self) -> Path:
        """True counts and suppression patterns of past releases: restricted as well."""
        return self.data_dir / "restricted" / "privacy.duckdb"

    @property
    def build_dir(self) -> Path:
        return self.data_dir / "build"

    @property
    def build_db(self) -> Path:
        """Aggregated cells and the dbt models built on them: the shared zone."""
        return self.build_dir / "build.duckdb"

    @property
    def warehouse_db(self) -> Path:
        """The published release analysts open read-only."""
        return self.data_dir / "warehouse.duckdb"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    def provider_dir(self, provider: str) -> Path:
        return self.sources_dir / provider

    def ensure(self) -> Paths:
        for folder in (self.raw_db.parent, self.build_dir, self.exports_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def current_paths() -> Paths:
    """Paths from the environment, read at call time so tests can redirect them."""
    data_dir = Path(os.environ.get("CS360_DATA_DIR") or PROJECT_DIR / "data")
    sources_dir = Path(os.environ.get("CS360_SOURCES_DIR") or PROJECT_DIR / "sources")
    return Paths(data_dir=data_dir.resolve(), sources_dir=sources_dir.resolve())


def settle_seconds() -> float:
    """Seconds a delivered file must sit unchanged before it is taken (``CS360_SETTLE_SECONDS``).

    A partner's upload may still be growing when a run starts; a file modified more recently
    than this is left for the next run. One setting for the CLI, the schedule and the sensors.
    """
    raw = os.environ.get("CS360_SETTLE_SECONDS", "").strip()
    if not raw:
        return 30.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"CS360_SETTLE_SECONDS must be a number of seconds, not {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"CS360_SETTLE_SECONDS must be zero or more seconds, not {raw!r}")
    return value
