"""Where a deployment's configuration and runtime data live.

A deployment is one city's folder (``cs360 init`` writes one; this repository's own top level is
the demo city's)::

    <deployment>/privacy/policy.yml       the city, its time zone, audiences and privacy rules
    <deployment>/metrics/*.yml            the CS360 metric catalog
    <deployment>/sources/<provider>/      provider.yml and the drop folder (inbox/)
    <deployment>/data/                    runtime data, never committed

``CS360_DEPLOYMENT_DIR`` (or ``cs360 --deployment DIR``) picks the folder, default this
repository. ``CS360_DATA_DIR``, ``CS360_SOURCES_DIR``, ``CS360_POLICY_FILE`` and
``CS360_METRICS_DIR`` move one part elsewhere (tests use them to share the demo's policy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
PRIVACY_DIR = PROJECT_DIR / "privacy"
DEPLOYMENT_ENV = "CS360_DEPLOYMENT_DIR"


@dataclass(frozen=True)
class Paths:
    """The runtime folders of one deployment."""

    data_dir: Path
    sources_dir: Path
    policy_file: Path = PRIVACY_DIR / "policy.yml"
    metrics_dir: Path = PROJECT_DIR / "metrics"

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
    def dbt_dir(self) -> Path:
        """This deployment's copy of the dbt project: its freshness sources, manifest, logs."""
        return self.build_dir / "dbt_project"

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

    @property
    def logs_dir(self) -> Path:
        """Logs a person reads: dbt's output of the last build, the nightly script's logs."""
        return self.data_dir / "logs"

    @property
    def dbt_log(self) -> Path:
        """dbt's messages of the last build, without colour codes (rewritten by each build)."""
        return self.logs_dir / "dbt.log"

    def provider_dir(self, provider: str) -> Path:
        return self.sources_dir / provider

    def ensure(self) -> Paths:
        for folder in (self.raw_db.parent, self.build_dir, self.exports_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def deployment_dir() -> Path:
    """The deployment folder: ``CS360_DEPLOYMENT_DIR``, else this repository (the demo city)."""
    return Path(os.environ.get(DEPLOYMENT_ENV) or PROJECT_DIR).resolve()


def current_paths() -> Paths:
    """Paths from the environment, read at call time so tests can redirect them."""
    root = deployment_dir()

    def part(env: str, default: Path) -> Path:
        return Path(os.environ.get(env) or default).resolve()

    return Paths(
        data_dir=part("CS360_DATA_DIR", root / "data"),
        sources_dir=part("CS360_SOURCES_DIR", root / "sources"),
        policy_file=part("CS360_POLICY_FILE", root / "privacy" / "policy.yml"),
        metrics_dir=part("CS360_METRICS_DIR", root / "metrics"),
    )


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
