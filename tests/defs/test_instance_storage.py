"""The Dagster home's storage: Dagster's SQLite files, written through connections kept open.

Runs materialize a small asset with a check through the home ``cs360`` writes; what they wrote
reads back through this storage and through Dagster's plain SQLite storage alike, the engines
kept stay bounded, and wiping the history closes them before the files go.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from cs360_pipeline.instance import dagster_yaml, ensure_dagster_home
from cs360_pipeline.instance_storage import ENGINES_KEPT, ReusedConnectionEventLogStorage


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="counted")])
def counted() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"rows": 3}, check_results=[dg.AssetCheckResult(passed=True)]
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert ensure_dagster_home() == home
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == dagster_yaml(home)
    return home


def test_runs_read_back_here_and_through_plain_dagster(home: Path) -> None:
    runs = ENGINES_KEPT + 3
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, ReusedConnectionEventLogStorage)
        for _ in range(runs):
            assert dg.materialize([counted], instance=instance).success
        # The index and the latest runs' files stay open; older engines were closed.
        assert len(storage._engines) == ENGINES_KEPT
        assert "index" in storage._engines
        latest = instance.get_latest_materialization_event(dg.AssetKey("counted"))
        assert latest is not None and latest.asset_materialization is not None
        assert latest.asset_materialization.metadata["rows"].value == 3
        key = dg.AssetCheckKey(dg.AssetKey("counted"), "positive")
        history = storage.get_asset_check_execution_history(key, limit=runs + 1)
        assert len(history) == runs

    # The folder is named in the file: opened by path alone, without $DAGSTER_HOME.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DAGSTER_HOME")
        by_path = dg.DagsterInstance.from_config(str(home))
        try:
            assert isinstance(by_path.event_log_storage, ReusedConnectionEventLogStorage)
            assert len(by_path.get_runs()) == runs
        finally:
            by_path.dispose()

    # The same home opened with Dagster's own storage: the same runs and events.
    (home / "plain.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    plain = dg.DagsterInstance.from_config(str(home), config_filename="plain.yaml")
    try:
        assert type(plain.event_log_storage) is not ReusedConnectionEventLogStorage
        assert len(plain.get_runs()) == runs
        records = plain.fetch_materializations(dg.AssetKey("counted"), limit=runs + 1).records
        assert len(records) == runs
    finally:
        plain.dispose()


def test_a_moved_home_is_written_for_its_new_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = tmp_path / "moved"
    home.rename(moved)
    monkeypatch.setenv("DAGSTER_HOME", str(moved))
    ensure_dagster_home()
    assert (moved / "dagster.yaml").read_text(encoding="utf-8") == dagster_yaml(moved)
    assert str(home) not in dagster_yaml(moved)


def test_wiping_the_history_closes_every_engine_first(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([counted], instance=instance).success
        storage = instance.event_log_storage
        assert isinstance(storage, ReusedConnectionEventLogStorage)
        run_files = {p.name for p in (home / "history" / "runs").glob("*.db")} - {"index.db"}
        assert len(run_files) == 1
        instance.wipe()
        assert list(storage._engines) == ["index"]  # reopened to empty it; no run's file
        assert not [p for p in (home / "history" / "runs").glob("*.db") if p.name != "index.db"]
        assert instance.get_latest_materialization_event(dg.AssetKey("counted")) is None
        assert dg.materialize([counted], instance=instance).success  # and it writes again
        assert instance.get_latest_materialization_event(dg.AssetKey("counted")) is not None
