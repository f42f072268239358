"""A refresh costs what changed: nothing new runs nothing, one new file runs its provider's steps.

One small demo deployment is refreshed once. Refreshing it again, whole or for one provider,
starts no Dagster run, leaves the warehouse file and the release log as they were, and says the
release stays. A new day for the delivery scorecard, a file dropped into an inbox, or ``--full``
each make a real run again. A new month from one provider ingests that file and rebuilds that
provider's cells only, and publishes what a full refresh of the same files publishes.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterEventType, DagsterInstance

from cs360_pipeline.demo import generate
from cs360_pipeline.faults import FAULT_ENV
from cs360_pipeline.release.log import read as read_log
from cs360_pipeline.settings import Paths
from tests import launcher
from tests.conftest import BIN, Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=2.3)  # of real refreshes: scheduled first

STAYS = "No new files; release {} stays published"
EARLIER = "passed an earlier audit"
CALLS_MEASURES = ("shots_fired_calls", "priority1_response_minutes", "priority1_calls_reached",
                  "priority1_reached_within_10_minutes")  # fmt: skip


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = new_deployment(tmp_path_factory.mktemp("unchanged"))
    generate(deployment.sources, seed=3, scale=0.05, end_month="2025-12", months=13)
    out = deployment.cs360("refresh").stdout
    assert "Published release r-" in out
    return deployment


@contextmanager
def instance_of(deployment: Deployment) -> Iterator[DagsterInstance]:
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(deployment.root / "dagster_home")
    try:
        with DagsterInstance.get() as instance:
            yield instance
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous


def runs(deployment: Deployment) -> int:
    with instance_of(deployment) as instance:
        return len(instance.get_run_records())


def materialized(deployment: Deployment) -> set[str]:
    """The ingest and cells assets the deployment's latest run materialized."""
    with instance_of(deployment) as instance:
        run = instance.get_run_records(limit=1)[0].dagster_run
        records = instance.get_records_for_run(
            run_id=run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ).records
    keys = {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records}
    return {k for k in keys if k.startswith(("raw/", "shared/cells_"))}


def audit_lines(deployment: Deployment) -> dict[str, str]:
    """The latest privacy audit's report: table [audience] -> its line."""
    key = AssetCheckKey(AssetKey(["marts", "metric_values"]), "privacy_audit")
    with instance_of(deployment) as instance:
        record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)[0]
    report = record.event.dagster_event.event_specific_data.metadata["report"].value
    lines = [line.strip() for line in report.splitlines() if line.startswith("  ")]
    return {line.split(":")[0]: line for line in lines}


def published(deployment: Deployment) -> list[tuple]:
    return deployment.query(
        "SELECT max(release_id), count(*), sum(hash(audience, metric_id, period_level, "
        "period_start, geo_level, geo_code, breakdown, value, status)) FROM metric_values"
    )


def state(deployment: Deployment) -> tuple:
    """What a run would touch: the warehouse file itself and the release log's entries."""
    paths = Paths(data_dir=deployment.data, sources_dir=deployment.sources)
    stat = deployment.warehouse.stat()
    log = [(e.release_id, e.times_published, e.published_at) for e in read_log(paths)]
    return stat.st_ino, stat.st_mtime_ns, log, runs(deployment)


def live(deployment: Deployment) -> str:
    return deployment.query("SELECT max(release_id) FROM metric_values")[0][0]


def test_nothing_new_runs_nothing(refreshed: Deployment) -> None:
    before = state(refreshed)
    for args in (("refresh",), ("refresh", "--provider", "police")):
        result = refreshed.cs360(*args)
        assert STAYS.format(live(refreshed)) in result.stdout, result.stdout
        assert "Running refresh" not in result.stdout and "Published" not in result.stdout
        assert state(refreshed) == before  # no run, no swap, no log entry touched


def test_a_new_scorecard_day_runs_again(refreshed: Deployment) -> None:
    """The delivery scorecard is computed for a day: a later day recomputes it."""
    runs_before = runs(refreshed)
    result = refreshed.cs360("refresh", as_of="2026-02-20")
    assert "Published release" in result.stdout and "stays published" not in result.stdout
    assert runs(refreshed) == runs_before + 1
    assert str(refreshed.query("SELECT max(as_of) FROM provider_status")[0][0]) == "2026-02-20"


def test_a_dropped_file_runs_again(refreshed: Deployment) -> None:
    """A file in an inbox is work even when it turns out a duplicate."""
    archived = sorted((refreshed.sources / "police" / "archive").glob("*calls_2025-12.csv"))[0]
    shutil.copy(archived, refreshed.sources / "police" / "inbox" / "calls_2025-12.csv")
    runs_before = runs(refreshed)
    result = refreshed.cs360("refresh", "--provider", "police")
    assert "stays published" not in result.stdout
    assert runs(refreshed) == runs_before + 1
    # Taken in, found a duplicate: police's cells step keeps what the same files built.
    assert materialized(refreshed) == {"raw/police/calls", "shared/cells_police"}
    assert "cells kept (inputs unchanged)" in result.stdout, result.stdout
    assert not list((refreshed.sources / "police" / "inbox").iterdir())  # archived as a duplicate


def test_an_unfinished_output_is_work(refreshed: Deployment, tmp_path: Path) -> None:
    """A release whose site was never written is completed by the next refresh."""
    release = live(refreshed)
    site = refreshed.data / "exports" / release / "public" / "site"
    shutil.move(site, tmp_path / "site")
    result = refreshed.cs360("refresh")
    assert "stays published" not in result.stdout
    assert (site / "index.html").is_file()


def test_one_new_month_runs_its_provider_only(refreshed: Deployment, tmp_path: Path) -> None:
    """January's police calls: police's calls are ingested and police's cells rebuilt; no other
    ingest or cells step runs, and the release is the one a full refresh publishes."""
    later = tmp_path / "later"
    generate(later, seed=3, scale=0.05, end_month="2026-01", months=14)
    shutil.copy(later / "police" / "inbox" / "calls_2026-01.csv",
                refreshed.sources / "police" / "inbox" / "calls_2026-01.csv")  # fmt: skip
    result = refreshed.cs360("refresh")
    assert "Files waiting: police/calls; cells to build: police;" in result.stdout, result.stdout
    assert materialized(refreshed) == {"raw/police/calls", "shared/cells_police"}
    assert refreshed.data_through("shots_fired_calls") == "2026-01-31"
    # The audit attacks the tables of the measures read from calls again; every other table
    # passed an audit of the same cells before.
    lines = audit_lines(refreshed)
    attacked = {t.split(" ")[0] for t, line in lines.items() if EARLIER not in line}
    assert "police__shots_fired_calls" in attacked
    assert attacked <= {f"police__{m}" for m in CALLS_MEASURES}
    assert EARLIER in lines["police__violent_crimes [pst]"]  # police's incidents: unchanged
    kept, runs_before = published(refreshed), runs(refreshed)
    result = refreshed.cs360("refresh", "--full")  # nothing new: --full runs all the same
    assert "Files waiting" not in result.stdout  # --full: every step
    assert "stays published" not in result.stdout and runs(refreshed) == runs_before + 1
    assert {k for k in materialized(refreshed) if k.startswith("shared/")} == {
        f"shared/cells_{p}" for p in ("hospital", "police", "probation", "school", "survey")
    }
    assert not any(EARLIER in line for line in audit_lines(refreshed).values())
    assert published(refreshed) == kept  # the same release id and the same values


def test_a_kill_before_the_cells_record_their_inputs_rebuilds_them(
    refreshed: Deployment, tmp_path: Path
) -> None:
    """Killed after police's cells and true counts were written but before their inputs were
    recorded: the next refresh, with no file waiting, builds police's cells again."""
    later = tmp_path / "later"
    generate(later, seed=3, scale=0.05, end_month="2026-01", months=14)
    shutil.copy(later / "police" / "inbox" / "incidents_2026-01.csv",
                refreshed.sources / "police" / "inbox" / "incidents_2026-01.csv")  # fmt: skip
    env = {**refreshed.env, FAULT_ENV: "cells:built"}
    killed = launcher.run([str(BIN / "cs360"), "refresh"], env=env, timeout=900)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert not list((refreshed.sources / "police" / "inbox").iterdir())  # the file was taken
    result = refreshed.cs360("refresh")
    assert "Files waiting: none; cells to build: police;" in result.stdout, result.stdout
    assert materialized(refreshed) == {"shared/cells_police"}
    assert refreshed.data_through("violent_firearm_crimes") == "2026-01-31"
