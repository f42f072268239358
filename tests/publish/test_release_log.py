"""The release log file on its own: update in place, keep the last N, never block a reader."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.publish import outputs
from cs360_pipeline.release import log as release_log
from cs360_pipeline.settings import RELEASES_KEPT_ENV, Paths

T0 = dt.datetime(2026, 1, 1, 2, 0)


def entry(n: int, *, checks: list[release_log.Check] | None = None) -> release_log.Entry:
    at = T0 + dt.timedelta(days=n)
    return release_log.Entry(
        release_id=f"r-{n:012x}",
        published_at=at,
        first_published_at=at,
        times_published=1,
        data_as_of=at.date(),
        input_files=[release_log.InputFile("police", f"calls_{n}.csv", f"{n:064x}")],
        input_sha256="i" * 64,
        policy_sha256="p" * 64,
        code_version="0.1.0+test",
        metric_values_rows=100 + n,
        checks=checks if checks is not None else [release_log.Check("privacy_gate", True, "ERROR")],
    )


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(data_dir=tmp_path / "data", sources_dir=tmp_path / "sources")


def test_entries_round_trip_newest_first_and_keep_the_last_n(paths: Paths) -> None:
    for n in range(1, 6):
        release_log.record(paths, entry(n), keep=3)
    entries = release_log.read(paths)
    assert [e.release_id for e in entries] == ["r-000000000005", "r-000000000004", "r-000000000003"]
    assert entries[0].input_files == [release_log.InputFile("police", "calls_5.csv", f"{5:064x}")]
    assert entries[0].checks_summary == "privacy_gate passed"
    assert release_log.previous(entries, "r-000000000005").release_id == "r-000000000004"
    assert release_log.previous(entries[:1], "r-000000000005") is None
    # Analysts read it as a table.
    con = duckdb.connect(str(release_log.log_path(paths)), read_only=True)
    try:
        rows = con.execute(
            "SELECT release_id, len(input_files), checks[1].name FROM release_log "
            "ORDER BY published_at DESC"
        ).fetchall()
    finally:
        con.close()
    assert rows[0] == ("r-000000000005", 1, "privacy_gate")


def test_publishing_a_release_again_updates_its_entry(paths: Paths) -> None:
    release_log.record(paths, entry(1), keep=5)
    release_log.record(paths, entry(2), keep=5)
    again = entry(1, checks=[])
    again.published_at = T0 + dt.timedelta(days=9)
    release_log.record(paths, again, keep=5)

    entries = release_log.read(paths)
    assert [e.release_id for e in entries] == ["r-000000000001", "r-000000000002"]
    first = entries[0]
    assert first.times_published == 2
    assert first.first_published_at == T0 + dt.timedelta(days=1)
    assert first.published_at == T0 + dt.timedelta(days=9)
    assert first.checks == [release_log.Check("privacy_gate", True, "ERROR")]  # kept

    release_log.add_checks(
        paths, first.release_id, [release_log.Check("expectations:pst", False, "ERROR", "2 failed")]
    )
    updated = release_log.read(paths)[0]
    assert updated.checks_summary == "expectations FAILED; privacy_gate passed"
    release_log.add_checks(
        paths, first.release_id, [release_log.Check("expectations:pst", True, "ERROR", "ok")]
    )
    assert release_log.read(paths)[0].checks_summary == "expectations passed; privacy_gate passed"


HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM release_log").fetchall()[0][0], flush=True)
sys.stdin.readline()
print(con.execute("SELECT count(*) FROM release_log").fetchall()[0][0], flush=True)
"""


def test_an_open_reader_does_not_block_an_update(paths: Paths) -> None:
    release_log.record(paths, entry(1), keep=5)
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(release_log.log_path(paths))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "1"  # the reader holds the file open
        release_log.record(paths, entry(2), keep=5)  # must not wait for, or fail on, it
        out, _ = reader.communicate("go\n", timeout=30)
    finally:
        reader.kill()
    assert out.strip() == "1"  # the reader kept its snapshot
    assert len(release_log.read(paths)) == 2  # a new reader sees the update


def test_keep_setting_never_goes_below_the_public_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(RELEASES_KEPT_ENV, raising=False)
    assert release_log.keep_releases(2) == release_log.DEFAULT_KEEP
    monkeypatch.setenv(RELEASES_KEPT_ENV, "30")
    assert release_log.keep_releases(2) == 30
    monkeypatch.setenv(RELEASES_KEPT_ENV, "1")
    assert release_log.keep_releases(2) == 3
    monkeypatch.setenv(RELEASES_KEPT_ENV, "many")
    with pytest.raises(ValueError, match=RELEASES_KEPT_ENV):
        release_log.keep_releases(2)


def test_prune_removes_only_release_folders_not_kept(paths: Paths) -> None:
    for name in ("r-000000000001", "r-000000000002", "r-000000000003", "notes", "r-bad"):
        (paths.exports_dir / name).mkdir(parents=True)
    (paths.exports_dir / "r-000000000001" / "pst").mkdir()
    removed = outputs.prune(paths, ["r-000000000002", "r-000000000003"])
    assert removed == ["r-000000000001"]
    assert sorted(p.name for p in paths.exports_dir.iterdir()) == [
        "notes", "r-000000000002", "r-000000000003", "r-bad",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        outputs.release_dir(paths, "../../etc")
