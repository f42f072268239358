"""Shared fixtures: an isolated deployment (its own sources and data folders) per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.publish.audiences import readers
from cs360_pipeline.settings import PROJECT_DIR, SHIPPED_POLICY, Paths
from cs360_pipeline.sql import connect
from tests import launcher

BIN = Path(sys.executable).parent
DEMO_END_MONTH = "2025-12"
DEMO_SCALE = 0.1
DEMO_SEED = 11
# The shipped policy's audiences, by name: what the demo publishes for.
READERS = {reader.name: reader for reader in readers(load_policy(SHIPPED_POLICY))}
AUDIENCES = tuple(READERS)


@dataclass(frozen=True)
class Deployment:
    root: Path
    sources: Path
    data: Path
    delivered: Path  # an untouched copy of every file dropped, for independent checks
    as_of: str = "2026-01-15"  # the frozen "today" of the delivery scorecard

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CS360_SOURCES_DIR": str(self.sources),
            "CS360_DATA_DIR": str(self.data),
            "DAGSTER_HOME": str(self.root / "dagster_home"),
            "CS360_AS_OF": self.as_of,
            # Great Expectations costs ~8 s a refresh; the tests that need it turn it on.
            "CS360_EXPECTATIONS": os.environ.get("CS360_EXPECTATIONS", "off"),
            # Test files are written just before each refresh: take them without waiting.
            "CS360_SETTLE_SECONDS": "0",
        }

    @property
    def dbt_dir(self) -> Path:
        """The deployment's copy of the dbt project, where dbt runs by hand."""
        return Paths(data_dir=self.data, sources_dir=self.sources).dbt_dir

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    def query(self, sql: str) -> list[tuple]:
        """Read the published warehouse the way an analyst does: read-only, then close."""
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def data_through(self, metric_id: str) -> str:
        """The last day the metric's published data runs to, whatever levels it shows (a sparse
        metric may show quarters only, whose start says nothing of the months in them)."""
        sql = "SELECT max(data_through) FROM metric_values WHERE metric_id = ?"
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return str(con.execute(sql, [metric_id]).fetchall()[0][0])
        finally:
            con.close()

    def cs360(
        self, *args: str, check: bool = True, as_of: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = launcher.run(
            [str(BIN / "cs360"), *args],
            env={**self.env, **({"CS360_AS_OF": as_of} if as_of else {})},
            timeout=900,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"cs360 {' '.join(args)} exited {result.returncode}\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result


def warehouse_copy(deployment: Deployment, folder: Path, *statements: str) -> Paths:
    """A copy of the deployment's published warehouse in ``folder/data``, changed by
    ``statements``: what a page would show for another release, without refreshing."""
    data = folder / "data"
    data.mkdir()
    shutil.copy(deployment.warehouse, data / "warehouse.duckdb")
    con = duckdb.connect(str(data / "warehouse.duckdb"))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()
    return Paths(data_dir=data, sources_dir=deployment.sources)


# Every delivered file of the demo by table name, for independent computations over the CSVs.
DELIVERED_FILES = {
    "incidents": "police/incidents_*.csv",
    "calls": "police/calls_*.csv",
    "attendance": "school/attendance_*.csv",
    "schools": "school/schools.csv",
    "visits": "hospital/ed_visits_*.csv",
    "events": "probation/events_*.csv",
    "caseload": "probation/caseload_*.csv",
    "responses": "survey/responses_*.csv",
    "beats": "city/beats.csv",
    "tracts": "city/tracts.csv",
    "population": "city/population.csv",
}


# The organisation fields every test provider needs, whatever its datasets.
TEST_PROVIDER_HEADER: dict[str, object] = {
    "provider": "police",
    "organisation": "Test Police Department",
    "community_map_area": "justice & crime",
    "data_owner": {"role": "Records Manager", "name": "Dana"},
    "steward": {"role": "Analyst", "name": "Sam"},
}


# A monthly dataset of calls revised by month: the smallest contract the loader's tests share.
CALLS_DATASET: dict[str, object] = {
    "title": "Calls",
    "file_pattern": "calls_*",
    "cadence": "monthly",
    "period": "received_at",
    "columns": {
        "call_number": {"type": "VARCHAR", "required": True},
        "kind": {"type": "VARCHAR", "required": True, "allowed": ["A", "B"]},
        "received_at": {"type": "TIMESTAMP", "required": True},
    },
}


def copy_provider_configs(root: Path) -> Path:
    """The project's provider.yml files under ``root/sources``, with empty drop folders."""
    sources = root / "sources"
    for config in sorted((PROJECT_DIR / "sources").glob("*/provider.yml")):
        target = sources / config.parent.name / "provider.yml"
        target.parent.mkdir(parents=True)
        shutil.copy(config, target)
    return sources


def new_deployment_at(root: Path) -> Deployment:
    """The deployment whose folders are under ``root`` (nothing is created)."""
    return Deployment(root=root, sources=root / "sources", data=root / "data",
                      delivered=root / "delivered")  # fmt: skip


def new_deployment(root: Path) -> Deployment:
    """A new deployment under ``root``: the project's provider configurations, no files yet."""
    copy_provider_configs(root)
    return new_deployment_at(root)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first module that reads the shared demo, then the modules marked ``refreshes``, the
    longest first (``minutes``, their rough length on two cores; 1 when not given), then the
    rest, each in file order. The two workers take whole modules in this order: one builds the
    demo while the other starts the longest module, so no worker waits for the demo, and no long
    module starts last and runs alone at the end."""
    demo_first = next((item.path for item in items if "demo" in item.fixturenames), None)

    def order(item: pytest.Item) -> tuple[int, float]:
        if item.path == demo_first:
            return (0, 0.0)
        marker = item.get_closest_marker("refreshes")
        return (2, 0.0) if marker is None else (1, -float(marker.kwargs.get("minutes", 1)))

    items.sort(key=order)


@pytest.fixture
def raw_db(tmp_path: Path) -> Path:
    """Where a deployment under ``tmp_path`` keeps its restricted database."""
    return tmp_path / "data" / "restricted" / "raw.duckdb"


@pytest.fixture
def con(raw_db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A real restricted database file, as the loader writes it."""
    connection = connect(raw_db)
    yield connection
    connection.close()


@pytest.fixture
def folder(tmp_path: Path) -> DropFolder:
    """The police provider's drop folders, taking every file at once (no settle time)."""
    drop = DropFolder(tmp_path / "sources" / "police", settle_seconds=0)
    drop.inbox.mkdir(parents=True)
    return drop


def edit_provider(sources: Path, provider: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """Apply ``change`` to one provider's parsed YAML and write it back; returns the file."""
    path = sources / provider / "provider.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def check_result(deployment: Deployment, asset: list[str], check: str) -> tuple[bool, str, str]:
    """(passed, severity, status) of an asset check's latest evaluation in the deployment's
    Dagster instance, as the UI shows it; status is the check's metadata, else its words."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(deployment.root / "dagster_home"))
    try:
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)[0]
        evaluation = record.event.dagster_event.event_specific_data
        status = evaluation.metadata.get("status")
        return (
            evaluation.passed,
            evaluation.severity.value,
            status.value if status is not None else evaluation.description or "",
        )
    finally:
        instance.dispose()


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder every pytest-xdist worker of this run shares (each worker's own
    temporary folder is inside it), or this run's when it has no workers."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache for this run's deployments (dbt's parses, shared by content), in the run's
    temporary folder, not the user's: every deployment a test makes uses it."""
    cache = run_folder(tmp_path_factory) / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """The demo city generated, delivered and refreshed once for the whole test run.

    Under pytest-xdist the workers share one: the first to need it builds it under a file lock
    in the run's common temporary folder, the others find it ready. Tests only read it (a test
    that changes anything works on a copy), so sharing is safe."""
    from filelock import FileLock

    from cs360_pipeline.demo import generate

    shared = run_folder(tmp_path_factory)
    deployment = new_deployment_at(shared / "demo")
    ready = shared / "demo.ready"
    with FileLock(str(shared / "demo.lock")):
        if not ready.exists():
            shutil.rmtree(deployment.root, ignore_errors=True)
            deployment = new_deployment(deployment.root)
            generate(deployment.sources, seed=DEMO_SEED, scale=DEMO_SCALE,
                     end_month=DEMO_END_MONTH)  # fmt: skip
            for inbox in deployment.sources.glob("*/inbox"):
                shutil.copytree(inbox, deployment.delivered / inbox.parent.name)
            deployment.cs360("refresh")
            ready.touch()
    return deployment
