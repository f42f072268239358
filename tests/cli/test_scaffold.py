"""`cs360 init` writes a deployment whose every file validates, and refuses what it cannot write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cs360_pipeline.catalog.metrics import CatalogError, load_catalog
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.registry import load_registry
from cs360_pipeline.scaffold import City, ScaffoldError, init_deployment

BIN = Path(sys.executable).parent


def cs360(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CS360_")}
    return subprocess.run([str(BIN / "cs360"), *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_init_writes_a_deployment_that_validates(tmp_path: Path) -> None:
    folder = tmp_path / "metro"
    result = cs360("init", str(folder), "--name", 'Metro "City"', "--code", "MET",
                   "--time-zone", "America/Denver")  # fmt: skip
    assert result.returncode == 0, result.stderr
    policy = load_policy(folder / "privacy" / "policy.yml")
    assert (policy.tables.city.code, policy.tables.city.name) == ("MET", 'Metro "City"')
    assert policy.tables.city.time_zone == "America/Denver"
    assert policy.providers == {}
    registry = load_registry(folder / "sources")
    assert not registry.problems and set(registry.providers) == {"city"}
    assert (folder / "sources" / "city" / "inbox").is_dir()
    # The taxonomy is there and the catalog says what is missing: the city's own metrics.
    with pytest.raises(CatalogError, match="no metrics defined"):
        load_catalog(registry.providers, folder / "metrics")
    assert "dimensions:" in (folder / "metrics" / "cs360_metrics.yml").read_text()


@pytest.mark.parametrize(
    ("name", "code", "zone", "complaint"),
    [
        ("Metro", "met", "America/Denver", "--code"),
        ("Metro", "MET", "Mars/Olympus", "--time-zone"),
        ("Metro\x1b[31m", "MET", "America/Denver", "--name"),
    ],
)
def test_init_refuses_a_bad_city(name: str, code: str, zone: str, complaint: str) -> None:
    with pytest.raises(ScaffoldError, match=complaint):
        City(name, code, zone)


def test_init_never_writes_into_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ScaffoldError, match="not empty"):
        init_deployment(tmp_path, City("Metro", "MET", "America/Denver"))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    result = cs360("init", str(tmp_path), "--name", "Metro", "--code", "MET",
                   "--time-zone", "America/Denver")  # fmt: skip
    assert result.returncode == 2 and "not empty" in result.stderr


def test_a_folder_that_is_no_deployment_is_named(tmp_path: Path) -> None:
    result = cs360("--deployment", str(tmp_path), "status")
    assert result.returncode == 2
    assert f"{tmp_path} is not a deployment (no privacy/policy.yml)" in result.stderr
