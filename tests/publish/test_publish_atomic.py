"""Refresh is atomic: readers never fail or see a mix, and a killed refresh leaves the last release.

Both tests drive the real CLI in subprocesses against real files, as cron and an analyst would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.demo import generate
from tests import launcher
from tests.conftest import BIN, Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=1.5)  # of real refreshes: scheduled first

READER = """
import json, sys, time, duckdb
path, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
reads, errors = [], []
import os
while not os.path.exists(stop):
    try:
        con = duckdb.connect(path, read_only=True)
        try:
            rows = con.execute(
                "SELECT release_id, count(*) FROM metric_values GROUP BY 1"
            ).fetchall()
            catalog = con.execute("SELECT count(*) FROM metric_catalog").fetchall()[0][0]
        finally:
            con.close()
        reads.append([[list(r) for r in rows], catalog])
    except Exception as exc:
        errors.append(repr(exc))
    time.sleep(0.02)
json.dump({"reads": reads, "errors": errors}, open(out, "w"))
"""


def release_of(warehouse: Path) -> tuple[str, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT release_id, count(*) FROM metric_values GROUP BY 1").fetchall()[
            0
        ]
    finally:
        con.close()


def deliver_next_month(deployment: Deployment, month: str) -> None:
    """A new month of police calls lands in the inbox."""
    staging = deployment.root / f"next-{month}"
    generate(staging, seed=3, scale=0.03, end_month=month, months=1)
    calls = staging / "police" / "inbox" / f"calls_{month}.csv"
    shutil.copy(calls, deployment.sources / "police" / "inbox" / calls.name)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """One deployment for the module: each test delivers a month the one before did not."""
    deployment = new_deployment(tmp_path_factory.mktemp("atomic"))
    generate(deployment.sources, seed=3, scale=0.03, end_month="2025-06", months=6)
    deployment.cs360("refresh")
    return deployment


def test_readers_see_one_whole_release_throughout_a_refresh(published: Deployment) -> None:
    before = release_of(published.warehouse)
    deliver_next_month(published, "2025-07")
    stop, out = published.root / "stop", published.root / "reads.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(published.warehouse), str(stop), str(out)]
    )
    try:
        time.sleep(0.5)
        published.cs360("refresh")  # must not wait for, or trip over, the open reader
        time.sleep(0.5)
    finally:
        stop.touch()
        reader.wait(timeout=60)
    after = release_of(published.warehouse)
    seen = json.loads(out.read_text())

    assert seen["errors"] == []
    assert after[0] != before[0]
    whole = {tuple(before), tuple(after)}
    for releases, catalog in seen["reads"]:
        assert len(releases) == 1, releases  # never a mix of two releases in one file
        assert tuple(releases[0]) in whole  # and always a complete one
        assert catalog > 0
    observed = {tuple(r[0][0]) for r in seen["reads"]}
    assert observed == whole  # the loop really ran across the swap


def test_killed_refreshes_leave_the_previous_release_and_the_next_run_recovers(
    published: Deployment,
) -> None:
    """SIGKILL three refreshes at different points (ingest, cells, dbt or publish), then recover."""
    before = release_of(published.warehouse)
    deliver_next_month(published, "2025-08")
    for kill_after in (3.0, 8.0, 13.0):
        refresh = launcher.shared().start(
            [str(BIN / "cs360"), "refresh"], published.env, Path(os.devnull), Path(os.devnull),
            new_session=True,
        )
        time.sleep(kill_after)
        if refresh.poll() is None:
            os.killpg(refresh.pid, signal.SIGKILL)
        refresh.wait()
        # Whatever point it died at, a reader gets a whole release: the old one, or (if the
        # kill came after the swap) the new one.
        current = release_of(published.warehouse)
        assert current == before or current[0] != before[0]

    published.cs360("refresh")
    after = release_of(published.warehouse)
    assert after[0] != before[0]
    police = published.sources / "police"
    assert not list((police / "inbox").glob("*.csv"))
    assert list((police / "archive").glob("*__calls_2025-08.csv"))
    # August's calls are in the metric (at this scale it shows quarters: Q3 runs to August 31)
    assert published.data_through("shots_fired_calls") == "2025-08-31"
