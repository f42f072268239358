"""Refreshing again: determinism, duplicate deliveries, and a bad file that blocks nobody else."""

from __future__ import annotations

import csv
import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cs360_pipeline.demo import generate
from tests.conftest import Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=1)  # of real refreshes: scheduled first


def metric_values_digest(path: Path) -> tuple[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT * FROM metric_values ORDER BY ALL").fetchall()
        release = con.execute("SELECT DISTINCT release_id FROM metric_values").fetchall()
    finally:
        con.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest(), release[0][0]


def ledger(deployment: Deployment) -> list[tuple]:
    con = duckdb.connect(str(deployment.data / "restricted" / "raw.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT file_name, status, reason FROM _ingest_ledger ORDER BY processed_at"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = replace(new_deployment(tmp_path_factory.mktemp("cycle")), as_of="2025-07-20")
    generate(deployment.sources, seed=5, scale=0.03, end_month="2025-06", months=12)
    for inbox in deployment.sources.glob("*/inbox"):
        shutil.copytree(inbox, deployment.delivered / inbox.parent.name)
    deployment.cs360("refresh")
    return deployment


def test_refresh_with_nothing_new_keeps_the_release(small: Deployment) -> None:
    """Nothing new: the release stays, its tables untouched. (That ``--full`` then publishes the
    same tables again is tests/defs/test_refresh_proportional.py's.)"""
    before = metric_values_digest(small.warehouse)
    assert "stays published" in small.cs360("refresh").stdout
    assert metric_values_digest(small.warehouse) == before  # same data and same release id


def test_same_file_dropped_twice_is_a_noop_that_says_so(small: Deployment) -> None:
    original = sorted((small.delivered / "police").glob("calls_*.csv"))[0]
    before = metric_values_digest(small.warehouse)
    shutil.copy(original, small.sources / "police" / "inbox" / original.name)
    small.cs360("refresh", "--provider", "police")
    last = ledger(small)[-1]
    assert last[:2] == (original.name, "duplicate")
    assert "same sha256" in last[2]
    assert not (small.sources / "police" / "inbox" / original.name).exists()
    assert metric_values_digest(small.warehouse) == before


def test_bad_file_is_quarantined_and_other_providers_still_refresh(small: Deployment) -> None:
    good = sorted((small.delivered / "hospital").glob("ed_visits_*.csv"))[-1]
    with good.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    rows[1][rows[0].index("visit_at")] = "31/02/2025 25:00"
    bad = small.sources / "hospital" / "inbox" / "ed_visits_2025-07.csv"
    with bad.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    bad_bytes = bad.read_bytes()

    # A new, good police delivery arrives the same night.
    generate(small.root / "next", seed=5, scale=0.03, end_month="2025-07", months=1)
    new_calls = small.root / "next" / "police" / "inbox" / "calls_2025-07.csv"
    shutil.copy(new_calls, small.sources / "police" / "inbox" / new_calls.name)

    small.cs360("refresh", as_of="2025-09-15")

    quarantined = list((small.sources / "hospital" / "quarantine").glob("*__ed_visits_2025-07.csv"))
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == bad_bytes
    reason = quarantined[0].with_name(quarantined[0].name + ".reason.txt").read_text()
    assert "ed_visits_2025-07.csv" in reason and "line(s) 2" in reason and "visit_at" in reason
    statuses = {name: status for name, status, _ in ledger(small)}
    assert statuses["ed_visits_2025-07.csv"] == "quarantined"
    assert statuses["calls_2025-07.csv"] == "loaded"
    assert small.data_through("shots_fired_calls") == "2025-07-31"


def test_status_flags_late_and_overdue_deliveries(small: Deployment) -> None:
    """As of 2025-09-15 (frozen clock of the last refresh): police calls run through July
    (46 days: past the 40-day warning), incidents and ED visits only through June (77 days:
    past their 70- and 75-day limits), so status exits non-zero and names whom to call."""
    result = small.cs360("status", check=False)
    lines = result.stdout.splitlines()
    table = lines[2 : lines.index("")] if "" in lines else lines[2:]
    rows = {tuple(line.split()[:2]): line for line in table}
    assert " behind " in rows[("police", "calls")]
    assert " far_behind " in rows[("police", "incidents")]
    assert " far_behind " in rows[("hospital", "ed_visits")]
    assert " 1 " in rows[("hospital", "ed_visits")]  # the quarantined July file
    assert result.returncode == 3  # errors (1 is for warnings only)
    assert (
        "ERROR: police/incidents: data far behind: through 2025-06-30; "
        "contact Sam Ortiz (Crime Analyst)." in result.stderr
    )


def test_freshness_checks_in_dagster_agree_with_the_scorecard(small: Deployment) -> None:
    """The UI's per-dataset checks were evaluated in the last run with the same statuses."""
    instance = dg.DagsterInstance.from_config(str(small.root / "dagster_home"))
    try:

        def latest(
            dataset: str, check: str = "data_current"
        ) -> tuple[bool, dg.AssetCheckSeverity, str]:
            key = dg.AssetCheckKey(dg.AssetKey(["raw", *dataset.split("/")]), check)
            record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)[0]
            evaluation = record.event.dagster_event.event_specific_data
            return evaluation.passed, evaluation.severity, evaluation.metadata["status"].value

        assert latest("police/incidents") == (False, dg.AssetCheckSeverity.ERROR, "far_behind")
        assert latest("police/calls") == (False, dg.AssetCheckSeverity.WARN, "behind")
        assert latest("city/beats", "delivered_on_time")[::2] == (True, "not_scheduled")
    finally:
        instance.dispose()


def test_status_files_lists_the_ledger(small: Deployment) -> None:
    out = small.cs360("status", "--files", "--provider", "hospital").stdout.splitlines()
    assert out[0].split()[:4] == ["provider", "dataset", "file", "status"]
    assert max(len(line) for line in out) <= 100
    rows = {line.split()[2]: line for line in out[1:] if not line.startswith(" ")}
    assert len(rows) == 13  # 12 monthly deliveries and the bad July file
    assert " quarantined " in rows["ed_visits_2025-07.csv"]
    why = out[out.index(rows["ed_visits_2025-07.csv"]) + 1]  # the reason follows its file
    assert why.startswith("  why: rule 'visit_at must be a TIMESTAMP")
    assert all(" loaded " in line for name, line in rows.items() if name != "ed_visits_2025-07.csv")
    wide = small.cs360("status", "--files", "--provider", "hospital", "--wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["sha256", "reason"] and len(wide) == 14
    assert "visit_at" in next(line for line in wide if "ed_visits_2025-07.csv" in line)
