"""A refresh with nothing to do runs nothing, and says which release stays published.

One small demo deployment is refreshed once. Refreshing it again, whole or for one provider,
starts no Dagster run, leaves the warehouse file and the release log as they were, and says the
release stays. A new day for the delivery scorecard, a file dropped into an inbox, or ``--full``
each make a real run again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from cs360_pipeline.demo import generate
from cs360_pipeline.publish.release_log import read as read_log
from cs360_pipeline.settings import Paths
from tests.conftest import Deployment, new_deployment

pytestmark = pytest.mark.refreshes  # minutes of real refreshes: scheduled first

STAYS = "No new files; release {} stays published"


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = new_deployment(tmp_path_factory.mktemp("unchanged"))
    generate(deployment.sources, seed=3, scale=0.05, end_month="2025-12", months=13)
    out = deployment.cs360("refresh").stdout
    assert "Published release r-" in out
    return deployment


def runs(deployment: Deployment) -> int:
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(deployment.root / "dagster_home")
    try:
        with DagsterInstance.get() as instance:
            return len(instance.get_run_records())
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous


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


def test_a_dropped_file_or_full_runs_again(refreshed: Deployment) -> None:
    """A file in an inbox is work even when it turns out a duplicate; ``--full`` always runs."""
    archived = sorted((refreshed.sources / "police" / "archive").glob("*calls_2025-12.csv"))[0]
    shutil.copy(archived, refreshed.sources / "police" / "inbox" / "calls_2025-12.csv")
    runs_before = runs(refreshed)
    result = refreshed.cs360("refresh", "--provider", "police")
    assert "stays published" not in result.stdout
    assert runs(refreshed) == runs_before + 1
    assert not list((refreshed.sources / "police" / "inbox").iterdir())  # archived as a duplicate
    result = refreshed.cs360("refresh", "--full")
    assert "stays published" not in result.stdout and runs(refreshed) == runs_before + 2


def test_an_unfinished_output_is_work(refreshed: Deployment, tmp_path: Path) -> None:
    """A release whose site was never written is completed by the next refresh."""
    release = live(refreshed)
    site = refreshed.data / "exports" / release / "public" / "site"
    shutil.move(site, tmp_path / "site")
    result = refreshed.cs360("refresh")
    assert "stays published" not in result.stdout
    assert (site / "index.html").is_file()
