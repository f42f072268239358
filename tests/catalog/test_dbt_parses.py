"""Deployments whose dbt copies hold the same bytes share one parse; any other byte parses anew."""

from __future__ import annotations

from pathlib import Path

import pytest

from cs360_pipeline.catalog import dbt_parses
from cs360_pipeline.catalog.dbt_workdir import prepare
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.defs.transform import build_defs
from cs360_pipeline.settings import SHIPPED_METRICS, SHIPPED_POLICY
from tests.conftest import copy_provider_configs

# Written by a dbt process parsing, never by a copy of a kept parse.
PARSE_ONLY = "perf_info.json"


def deployment_at(root: Path) -> DeploymentResource:
    return DeploymentResource(
        data_dir=str(root / "data"),
        sources_dir=str(copy_provider_configs(root)),
        policy_file=str(SHIPPED_POLICY),
        metrics_dir=str(SHIPPED_METRICS),
    )


def test_a_second_deployment_takes_the_first_ones_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # none kept yet
    first, second = deployment_at(tmp_path / "first"), deployment_at(tmp_path / "second")
    targets = [Path(d.paths.dbt_dir) / "target" for d in (first, second)]

    build_defs(first)  # the definitions load: dbt parses the first copy
    assert (targets[0] / PARSE_ONLY).exists()
    key = dbt_parses.digest(first.paths.dbt_dir)
    kept = tmp_path / "cache" / "cs360-pipeline" / "dbt-parses" / key
    assert sorted(p.name for p in kept.iterdir()) == sorted(dbt_parses.KEPT)

    defs = build_defs(second)  # the same bytes elsewhere: no dbt process, the same graph
    assert dbt_parses.digest(second.paths.dbt_dir) == key
    assert not (targets[1] / PARSE_ONLY).exists()
    for name in dbt_parses.KEPT:
        assert (targets[1] / name).read_bytes() == (targets[0] / name).read_bytes()
    (models,) = defs.assets or ()
    assert len(models.keys) > 20  # type: ignore[union-attr]


def test_any_changed_byte_or_provider_is_another_parse(tmp_path: Path) -> None:
    paths = deployment_at(tmp_path / "a").paths
    key = dbt_parses.digest(prepare(paths))
    (paths.sources_dir / "hospital" / "provider.yml").unlink()  # its freshness sources go
    without_hospital = dbt_parses.digest(prepare(paths))
    assert without_hospital != key
    macro = next((paths.dbt_dir / "macros").rglob("*.sql"))
    macro.write_text(macro.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert dbt_parses.digest(paths.dbt_dir) not in (key, without_hospital)


def test_a_kept_parse_missing_a_file_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kept = tmp_path / "cache" / "cs360-pipeline" / "dbt-parses" / "k"
    kept.mkdir(parents=True)
    (kept / "manifest.json").write_text("{}", encoding="utf-8")  # no partial-parse file
    assert not dbt_parses.restore("k", tmp_path / "target")
    assert not (tmp_path / "target" / "manifest.json").exists()
