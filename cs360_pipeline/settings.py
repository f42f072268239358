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

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
PRIVACY_DIR = PROJECT_DIR / "privacy"
DEPLOYMENT_ENV = "CS360_DEPLOYMENT_DIR"
# The demo city's policy and metric catalog, shipped with the installation.
SHIPPED_POLICY = PRIVACY_DIR / "policy.yml"
SHIPPED_METRICS = PROJECT_DIR / "metrics"


@dataclass(frozen=True)
class Paths:
    """The runtime folders of one deployment."""

    data_dir: Path
    sources_dir: Path
    policy_file: Path = SHIPPED_POLICY
    metrics_dir: Path = SHIPPED_METRICS

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


# -- the other settings: every environment variable the pipeline reads is read here -----------

AS_OF_ENV = "CS360_AS_OF"
EXPECTATIONS_ENV = "CS360_EXPECTATIONS"
RELEASES_KEPT_ENV = "CS360_RELEASES_KEPT"
MIN_FREE_ENV = "CS360_MIN_FREE_BYTES"
FAULT_ENV = "CS360_FAULT_AT"  # the tests' fault hook (faults.py)
DAGSTER_HOME_ENV = "DAGSTER_HOME"


def schedule_time_zone() -> str:
    """The time zone of the nightly schedule's clock (``CS360_TIMEZONE``, default UTC)."""
    return os.environ.get("CS360_TIMEZONE") or "UTC"


def frozen_as_of() -> dt.date | None:
    """``CS360_AS_OF``: the day the delivery scorecard is computed for, instead of today."""
    frozen = os.environ.get(AS_OF_ENV)
    return dt.date.fromisoformat(frozen) if frozen else None


def expectations_enabled() -> bool:
    """Great Expectations runs unless ``CS360_EXPECTATIONS`` is 0/off/false/no."""
    value = os.environ.get(EXPECTATIONS_ENV, "on").strip().lower()
    return value not in {"0", "off", "false", "no"}


def releases_kept() -> int | None:
    """``CS360_RELEASES_KEPT``: how many releases the log keeps (None: the default)."""
    setting = os.environ.get(RELEASES_KEPT_ENV)
    if not setting:
        return None
    try:
        return int(setting)
    except ValueError:
        raise ValueError(
            f"{RELEASES_KEPT_ENV} must be a whole number, got {setting!r}"
        ) from None


def min_free_bytes(default: int) -> int:
    """``CS360_MIN_FREE_BYTES``: the free disk a refresh keeps in reserve."""
    return int(os.environ.get(MIN_FREE_ENV) or default)


def fault_point_wanted() -> str | None:
    """The step boundary a test asked a run to die at (``CS360_FAULT_AT``), if any."""
    return os.environ.get(FAULT_ENV)


def plain_terminal() -> bool:
    """A terminal that cannot move the cursor (``TERM=dumb``)."""
    return os.environ.get("TERM") == "dumb"


def cache_dir() -> Path:
    """Where this user's deployments keep what any of them can reuse (``$XDG_CACHE_HOME`` or
    ``~/.cache``, then ``cs360-pipeline``): nothing there is a deployment's data."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cs360-pipeline"


def dagster_home(paths: Paths) -> Path:
    """``$DAGSTER_HOME`` if set, else the deployment's ``data/dagster_home``."""
    return Path(os.environ.get(DAGSTER_HOME_ENV) or paths.dagster_home)


def use_dagster_home(home: Path) -> None:
    """Point Dagster (this process and the ones it starts) at ``home``."""
    os.environ[DAGSTER_HOME_ENV] = str(home)


def use_deployment(folder: Path) -> None:
    """Point every part of this run (and the processes it starts) at the deployment ``folder``."""
    os.environ[DEPLOYMENT_ENV] = str(folder)
