"""Publication survives a kill at every step: the vault and the release log always catch up with
what readers could open, one release id is one set of tables, and no pair of releases still
public pins a small count.

A real deployment is refreshed again and again with a revised probation file each time; each
refresh is killed by SIGKILL at another step of publication (the test-only fault hook), or the
moment the warehouse file changes. Every later refresh must first reconcile what the dead one
left, and the final state is audited independently from the vault's true counts.
"""

from __future__ import annotations

import csv
import hashlib
import signal
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.demo import generate
from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.audit import audit
from cs360_pipeline.settings import Paths
from tests import launcher
from tests.conftest import BIN, Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=2.5)  # of real refreshes: scheduled first

# Each step boundary, and what the refresh after a kill there must say it recovered.
RECOVERED = {
    "ingest:snapshot_taken": "an unfinished copy was removed from .work/",
    "ingest:committed": "(recorded earlier)",
    "ingest:archived": "removed from the inbox (recorded and kept earlier)",
    "publish:staged": "removed a staged warehouse file that was never published",
    "publish:vault_pending": "was stored for a publication that never happened: dropped",
    "publish:swapped": "went live before the vault recorded it: recorded now",
    "publish:vault_published": "was live but missing from the release log: logged now",
    "publish:logged": "was interrupted before it finished",
    "warehouse file replaced": "went live before the vault recorded it: recorded now",
}
RELEASES_PUBLIC = 2  # privacy/policy.yml history.releases_public


def paths_of(deployment: Deployment) -> Paths:
    return Paths(data_dir=deployment.data, sources_dir=deployment.sources)


def refresh(deployment: Deployment, fault: str | None = None) -> Run:
    env = {**deployment.env, **({"CS360_FAULT_AT": fault} if fault else {})}
    return Run.start([str(BIN / "cs360"), "refresh"], env, deployment.root)


class Run:
    """A subprocess whose output goes to a file, so it never blocks on a full pipe."""

    def __init__(self, process: launcher.Child, log: Path) -> None:
        self.process, self.log = process, log

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], root: Path) -> Run:
        log = root / f"run-{time.monotonic_ns()}.log"
        return cls(launcher.shared().start(argv, env, log, log), log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def finish(self, timeout: float = 600) -> tuple[int, str]:
        """Wait for the end; the exit code and everything it printed."""
        code = self.process.wait(timeout=timeout)
        return code, self.log.read_text(encoding="utf-8", errors="replace")


def live(deployment: Deployment) -> tuple[str, str] | None:
    """The live release id and a digest of what its metric_values table shows."""
    if not deployment.warehouse.exists():
        return None
    rows = deployment.query(
        "SELECT * EXCLUDE (release_id), release_id FROM metric_values ORDER BY ALL"
    )
    ids = {r[-1] for r in rows}
    assert len(ids) == 1, ids  # one release per warehouse, never a mix
    return ids.pop(), hashlib.sha256(repr([r[:-1] for r in rows]).encode()).hexdigest()


def vault_releases(deployment: Deployment) -> list[tuple[str, str]]:
    con = duckdb.connect(str(paths_of(deployment).vault_db), read_only=True)
    try:
        return con.execute(
            "SELECT release_id, state FROM releases ORDER BY published_at DESC, release_id"
        ).fetchall()
    finally:
        con.close()


def logged(deployment: Deployment) -> list[str]:
    con = duckdb.connect(str(deployment.data / "releases.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT release_id FROM release_log").fetchall()]
    finally:
        con.close()


def revise_probation(deployment: Deployment, month: str, step: int) -> None:
    """The probation office re-sends a month with some records withdrawn."""
    archived = sorted((deployment.sources / "probation" / "archive").glob(f"*events_{month}*.csv"))
    with archived[-1].open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0], *(r for i, r in enumerate(rows[1:]) if (i + step) % 4)]
    target = deployment.sources / "probation" / "inbox" / f"events_{month}.csv"
    with target.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(kept)


def kill_when_warehouse_changes(run: Run, warehouse: Path) -> bool:
    """SIGKILL the refresh the moment the warehouse file is replaced; False if it never was."""
    before = warehouse.stat().st_ino
    while run.process.poll() is None:
        try:
            if warehouse.stat().st_ino != before:
                run.process.send_signal(signal.SIGKILL)
                run.process.wait()
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    return False


def assert_audit_passes(deployment: Deployment, release_ids: list[str]) -> int:
    """Attack every table with all ``release_ids`` at once, from the vault's true counts."""
    con = duckdb.connect()
    vault.attach(con, paths_of(deployment), read_only=True)
    build = deployment.data / "build" / "build.duckdb"
    con.execute(f"ATTACH '{build}' AS build (READ_ONLY)")
    parents = dict(
        con.execute(
            "SELECT geo_code, parent_code FROM build.shared.geography WHERE parent_code IS NOT NULL"
        ).fetchall()
    )
    families = 0
    for audience, measure in vault.candidate_measures(con):
        past = vault.past_releases(con, audience, measure, parents, limit=len(release_ids))
        assert [p.release_id for p in past] == release_ids, (audience, measure)
        report = audit([p.publication(p.release_id, -age) for age, p in enumerate(past)])
        assert report.passed, report.text()
        families += 1
    con.close()
    return families


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = replace(new_deployment(tmp_path_factory.mktemp("faults")), as_of="2025-07-10")
    generate(deployment.sources, seed=7, scale=0.05, end_month="2025-06", months=6)
    deployment.cs360("refresh")
    return deployment


def test_a_kill_at_any_step_of_ingest_or_publication_is_reconciled(
    deployment: Deployment,
) -> None:
    went_live = [live(deployment)]
    months = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]
    killed_at = None
    for step, point in enumerate([*RECOVERED, None]):
        revise_probation(deployment, months[step % len(months)], step)
        watched = point == "warehouse file replaced"
        run = refresh(deployment, None if watched else point)
        if watched:
            assert kill_when_warehouse_changes(run, deployment.warehouse), point
        code, output = run.finish()
        expected = 0 if point is None else -signal.SIGKILL
        assert code == expected, f"{point}: exit {code}\n{output}"
        if killed_at is not None:
            # The refresh after a kill finishes what the dead one left, and says so; its
            # Dagster run is marked failed instead of staying STARTED.
            assert RECOVERED[killed_at] in output, f"after a kill at {killed_at}:\n{output}"
            assert "its run is now marked failed" in output, killed_at
        killed_at = point
        now_live = live(deployment)
        assert now_live is not None
        went_live.append(now_live)
        # The release readers open is in the vault at every instant, published or pending.
        assert now_live[0] in dict(vault_releases(deployment)), (point, now_live)

    # One release id, one set of tables.
    digests: dict[str, set[str]] = {}
    for release_id, digest in went_live:
        digests.setdefault(release_id, set()).add(digest)
    assert all(len(d) == 1 for d in digests.values()), digests

    distinct = list(dict.fromkeys(r for r, _ in reversed(went_live)))  # newest first
    assert len(distinct) >= 4, went_live  # the revisions made new releases, also after kills
    # The vault holds exactly the newest releases readers could open, all published.
    assert vault_releases(deployment)[:RELEASES_PUBLIC] == [
        (r, "published") for r in distinct[:RELEASES_PUBLIC]
    ]
    assert all(state == "published" for _, state in vault_releases(deployment))
    # The release log knows every release that ever went live.
    assert set(distinct) <= set(logged(deployment))
    assert not list(deployment.data.glob(".warehouse.next*"))
    assert_ledger_archive_and_inbox_agree(deployment)
    assert assert_audit_passes(deployment, distinct[:RELEASES_PUBLIC]) > 0


def assert_ledger_archive_and_inbox_agree(deployment: Deployment) -> None:
    """Every delivered file once in the ledger, its kept bytes hashing as recorded; the inbox
    and the scratch folder empty."""
    con = duckdb.connect(str(deployment.data / "restricted" / "raw.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT status, sha256, stored_as FROM _ingest_ledger WHERE provider = 'probation'"
        ).fetchall()
    finally:
        con.close()
    kept = {Path(stored) for _, _, stored in rows}
    assert len(kept) == len(rows)  # no file recorded twice
    for status, sha, stored in rows:
        assert status in ("loaded", "duplicate"), (status, stored)
        assert hashlib.sha256(Path(stored).read_bytes()).hexdigest() == sha, stored
    folder = deployment.sources / "probation"
    on_disk = {p for p in (folder / "archive").iterdir()}
    assert on_disk == kept
    assert not list((folder / "inbox").iterdir())
    work = folder / ".work"
    assert not work.exists() or not list(work.iterdir())


def dagster_run(deployment: Deployment, job: str) -> Run:
    """A run as the daemon launches it: the job's own executor, in its own process."""
    argv = [str(BIN / "dagster"), "job", "execute", "-m", "cs360_pipeline.definitions", "-j", job]
    return Run.start(argv, deployment.env, deployment.root)


def test_triggers_at_once_wait_their_turn_or_name_the_running_refresh(
    deployment: Deployment,
) -> None:
    lock = deployment.data / ".refresh.lock"
    first = dagster_run(deployment, "refresh_survey")
    deadline = time.monotonic() + 120
    while not lock.read_text(encoding="utf-8").strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = dagster_run(deployment, "refresh_survey")
    cli = deployment.cs360("refresh", check=False)
    readers = [deployment.cs360("status", "--files") for _ in range(3)]  # never a lock error
    first_code, first_out = first.finish()
    second_code, second_out = second.finish()

    assert first_code == 0, first_out
    assert second_code == 0, second_out  # it waited instead of failing on DuckDB's lock
    assert "waiting for the running refresh to finish" in second_out
    assert "Conflicting lock" not in first_out + second_out
    assert cli.returncode == 3, cli.stdout + cli.stderr
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, cli.stderr  # one line, naming who runs
    assert f"pid {first.pid}" in lines[0] and "Dagster run" in lines[0]
    assert "stays published" in lines[0]
    assert lock.read_text(encoding="utf-8") == ""  # a clean exit leaves no holder
    assert all("events_2025-01.csv" in r.stdout for r in readers)


def test_a_full_disk_stops_before_anything_is_touched(deployment: Deployment) -> None:
    before = live(deployment)
    env = {**deployment.env, "CS360_MIN_FREE_BYTES": str(1 << 60)}
    result = launcher.run([str(BIN / "cs360"), "refresh"], env=env, timeout=120)
    assert result.returncode == 1
    assert "Refresh not started: only" in result.stderr
    assert str(deployment.data) in result.stderr
    assert before is not None and f"Release {before[0]} stays published." in result.stderr
    assert live(deployment) == before


def test_the_instance_queues_runs_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Dagster instance the CLI and the UI share runs one run at a time; a dagster.yaml
    this project wrote before the queue existed is brought up to date, an operator's is not."""
    from dagster import DagsterInstance

    from cs360_pipeline.instance import dagster_yaml, ensure_dagster_home

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "# Written by cs360-pipeline. Local SQLite storage.\ntelemetry:\n  enabled: false\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == dagster_yaml(home)
    with DagsterInstance.get() as instance:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
        assert instance.run_monitoring_enabled

    own = "telemetry:\n  enabled: false\n"  # an operator's file, not ours
    (home / "dagster.yaml").write_text(own, encoding="utf-8")
    ensure_dagster_home()
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == own
