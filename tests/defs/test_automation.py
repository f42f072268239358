"""Automation: the nightly schedule, one inbox sensor per provider, and how a sensor settles.

Sensors are evaluated for real with ``dagster.build_sensor_context`` against a real inbox in
``tmp_path``; ``CS360_SOURCES_DIR`` points ``current_paths()`` at it.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from cs360_pipeline.defs.automation import (
    NIGHTLY_CRON,
    build_defs,
    inbox_sensor,
    provider_job,
    stable_files,
)
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.registry import Provider, load_providers
from cs360_pipeline.settings import current_paths
from tests.conftest import copy_provider_configs

PROVIDERS = ["city", "hospital", "police", "probation", "school", "survey"]
T0 = 1_750_000_000_000_000_000  # a fixed mtime (ns) so listings are reproducible


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.Definitions]:
    """cs360_pipeline.definitions.defs, loaded with the environment pointed at tmp copies."""
    root = tmp_path_factory.mktemp("automation")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CS360_SOURCES_DIR", str(copy_provider_configs(root)))
        mp.setenv("CS360_DATA_DIR", str(root / "data"))
        mp.delenv("CS360_TIMEZONE", raising=False)
        module = importlib.import_module("cs360_pipeline.definitions")
        yield module.defs


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = copy_provider_configs(tmp_path)
    monkeypatch.setenv("CS360_SOURCES_DIR", str(path))
    monkeypatch.setenv("CS360_DATA_DIR", str(tmp_path / "data"))
    return path


@pytest.fixture
def police(sources: Path) -> Provider:
    return load_providers(sources)["police"]


@pytest.fixture
def inbox(sources: Path) -> Path:
    path = current_paths().provider_dir("police") / "inbox"
    assert path == sources / "police" / "inbox"
    path.mkdir(parents=True)
    return path


def put(path: Path, data: bytes, mtime_ns: int = T0) -> Path:
    """Write a file and pin its modification time."""
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


class Ticker:
    """Evaluates one sensor tick after tick, carrying the cursor like the daemon does."""

    def __init__(self, sensor: dg.SensorDefinition, cursor: str | None = None) -> None:
        self.sensor = sensor
        self.cursor = cursor
        # The deployment the environment names (the test's folders), as the daemon gives it.
        self.resources = {"deployment": DeploymentResource.from_settings()}

    def tick(self) -> tuple[str | None, list[dg.RunRequest]]:
        context = dg.build_sensor_context(cursor=self.cursor, resources=self.resources)
        data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data.skip_message, list(data.run_requests or [])


@pytest.fixture
def ticker(police: Provider) -> Ticker:
    return Ticker(inbox_sensor(police, provider_job("police")))


# -- the loaded definitions -------------------------------------------------------------------


def test_nightly_schedule(defs: dg.Definitions) -> None:
    """A nightly refresh of everything runs at 02:00 UTC and is on without a UI toggle."""
    schedule = defs.resolve_schedule_def("nightly_refresh")

    assert [s.name for s in defs.schedules] == ["nightly_refresh"]
    assert schedule.cron_schedule == NIGHTLY_CRON == "0 2 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "refresh_all"
    assert schedule.execution_timezone == "UTC"


def test_schedule_timezone_from_environment(sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CS360_TIMEZONE sets the schedule's timezone."""
    monkeypatch.setenv("CS360_TIMEZONE", "America/Chicago")
    schedule = build_defs(load_providers(sources)).resolve_schedule_def("nightly_refresh")

    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "America/Chicago")


def test_one_running_sensor_per_provider(defs: dg.Definitions) -> None:
    """Each provider has '<provider>_inbox', on by default, starting refresh_<provider>."""
    assert sorted(s.name for s in defs.sensors) == [f"{p}_inbox" for p in PROVIDERS]
    for provider in PROVIDERS:
        sensor = defs.resolve_sensor_def(f"{provider}_inbox")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.job_name == f"refresh_{provider}"
        assert sensor.minimum_interval_seconds == 60


def asset_keys(defs: dg.Definitions, job: str) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}


def test_provider_job_rebuilds_downstream_only(defs: dg.Definitions) -> None:
    """refresh_police ingests police and rebuilds what depends on it, not other providers."""
    keys = asset_keys(defs, "refresh_police")

    assert {
        "raw/police/calls",
        "raw/police/incidents",
        "shared/cells_police",
        "published/warehouse",
    } <= keys
    assert not {k for k in keys if re.match(r"(raw|shared)/(cells_)?(hospital|school|city)", k)}


def test_beat_map_delivery_rebuilds_every_providers_cells(defs: dg.Definitions) -> None:
    """A new city beat map or tract crosswalk must re-place every provider's cells."""
    keys = asset_keys(defs, "refresh_city")

    assert {f"shared/cells_{p}" for p in PROVIDERS if p != "city"} <= keys
    assert not {k for k in keys if k.startswith(("raw/police", "raw/hospital"))}


# -- stable_files -----------------------------------------------------------------------------


def test_stable_files_needs_an_identical_earlier_listing() -> None:
    """Only names whose [size, mtime] equal the previous tick's are ready, sorted."""
    previous = {"b.csv": [10, 1], "a.csv": [5, 1], "grew.csv": [5, 1], "touched.csv": [5, 1]}
    current = {
        "b.csv": [10, 1],
        "a.csv": [5, 1],
        "grew.csv": [6, 1],
        "touched.csv": [5, 2],
        "new.csv": [1, 1],
    }

    assert stable_files(previous, current) == ["a.csv", "b.csv"]
    assert stable_files({}, current) == []
    assert stable_files(current, {}) == []


# -- a sensor against a real inbox ------------------------------------------------------------


def test_empty_inbox_skips(ticker: Ticker, inbox: Path) -> None:
    """No file: a skip that says so, and an empty cursor."""
    assert ticker.tick() == ("inbox is empty", [])
    assert json.loads(ticker.cursor or "") == {}


def test_new_file_settles_then_requests_one_run(ticker: Ticker, inbox: Path) -> None:
    """First sight of a file waits; an unchanged second sight requests exactly one run."""
    put(inbox / "calls_2025_01.csv", b"call_number\nC1\n")

    assert ticker.tick() == ("1 file(s) waiting to settle", [])
    assert json.loads(ticker.cursor or "") == {"calls_2025_01.csv": [15, T0]}

    skip, requests = ticker.tick()

    assert skip is None
    assert len(requests) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", requests[0].run_key or "")
    assert requests[0].tags["cs360/files"] == "calls_2025_01.csv"
    assert requests[0].tags["dagster/sensor_name"] == "police_inbox"


def test_run_key_is_idempotent(police: Provider, ticker: Ticker, inbox: Path) -> None:
    """The same settled listing always yields the same run_key, so Dagster runs it once."""
    put(inbox / "calls_2025_01.csv", b"call_number\nC1\n")
    put(inbox / "incidents_2025_01.csv", b"incident_number\nI1\n")
    ticker.tick()
    _, first = ticker.tick()
    _, again = ticker.tick()
    # A freshly built sensor (e.g. after a code-server restart) with the stored cursor agrees.
    _, restarted = Ticker(inbox_sensor(police, provider_job("police")), ticker.cursor).tick()

    assert (
        [r.run_key for r in first] == [r.run_key for r in again] == [r.run_key for r in restarted]
    )
    assert first[0].tags["cs360/files"] == "calls_2025_01.csv, incidents_2025_01.csv"


def test_new_settled_listing_gets_a_new_run_key(ticker: Ticker, inbox: Path) -> None:
    """A later file joins the request only once it has settled, under a new run_key."""
    put(inbox / "calls_2025_01.csv", b"call_number\nC1\n")
    ticker.tick()
    _, first = ticker.tick()
    put(inbox / "calls_2025_02.csv", b"call_number\nC2\n")

    _, while_settling = ticker.tick()
    _, settled = ticker.tick()

    assert [r.run_key for r in while_settling] == [r.run_key for r in first]
    assert while_settling[0].tags["cs360/files"] == "calls_2025_01.csv"
    assert len(settled) == 1 and settled[0].run_key != first[0].run_key
    assert settled[0].tags["cs360/files"] == "calls_2025_01.csv, calls_2025_02.csv"


def test_growing_file_is_not_requested(ticker: Ticker, inbox: Path) -> None:
    """A file whose size changed between ticks waits; it is requested once it stops."""
    path = put(inbox / "calls_2025_01.csv", b"call_number\nC1\n")
    assert ticker.tick() == ("1 file(s) waiting to settle", [])

    put(path, b"call_number\nC1\nC2\n")
    assert ticker.tick() == ("1 file(s) waiting to settle", [])

    _, requests = ticker.tick()
    assert [r.tags["cs360/files"] for r in requests] == ["calls_2025_01.csv"]


def test_rewritten_file_with_same_size_is_not_requested(ticker: Ticker, inbox: Path) -> None:
    """A same-size rewrite (new mtime) between ticks also waits."""
    path = put(inbox / "calls_2025_01.csv", b"call_number\nC1\n")
    ticker.tick()

    put(path, b"call_number\nC9\n", mtime_ns=T0 + 1_000_000_000)

    assert ticker.tick() == ("1 file(s) waiting to settle", [])


def test_only_the_settled_file_is_requested(ticker: Ticker, inbox: Path) -> None:
    """With one file settled and another still growing, only the settled one is named."""
    put(inbox / "calls_2025_01.csv", b"call_number\nC1\n")
    growing = put(inbox / "calls_2025_02.csv", b"call_number\n")
    ticker.tick()
    put(growing, b"call_number\nC2\n")

    _, requests = ticker.tick()

    assert [r.tags["cs360/files"] for r in requests] == ["calls_2025_01.csv"]


def test_in_progress_and_foreign_files_are_never_requested(ticker: Ticker, inbox: Path) -> None:
    """.part/.tmp uploads, hidden files and names no dataset expects never start a run."""
    for name in (
        "calls_2025_01.csv.part",
        "calls_2025_01.csv.tmp",
        ".calls_2025_01.csv",
        "notes.txt",
    ):
        put(inbox / name, b"call_number\nC1\n")

    for _ in range(3):
        assert ticker.tick() == ("inbox is empty", [])
    assert json.loads(ticker.cursor or "") == {}

    # The upload completes: the renamed file settles like any other.
    (inbox / "calls_2025_01.csv.part").rename(inbox / "calls_2025_01.csv")
    assert ticker.tick() == ("1 file(s) waiting to settle", [])
    _, requests = ticker.tick()
    assert [r.tags["cs360/files"] for r in requests] == ["calls_2025_01.csv"]


def test_processed_files_leave_the_listing(ticker: Ticker, inbox: Path) -> None:
    """Once a run has moved the file out of the inbox, the sensor goes quiet."""
    path = put(inbox / "calls_2025_01.csv", b"call_number\nC1\n")
    ticker.tick()
    assert len(ticker.tick()[1]) == 1

    path.unlink()

    assert ticker.tick() == ("inbox is empty", [])
