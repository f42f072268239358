"""The deployment resource, and single assets materialized against a temporary deployment.

``dg.materialize`` runs one asset (no job, no CLI) with the resource pointing at folders under
``tmp_path``: what the asset writes lands there and nowhere else.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest

from cs360_pipeline.defs import catalog, ingest
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.registry import load_registry
from cs360_pipeline.settings import SHIPPED_METRICS, SHIPPED_POLICY
from tests.conftest import copy_provider_configs

CALLS = [
    ["call_number", "call_type_code", "priority", "received_at", "first_arrived_at", "beat"],
    ["C1", "SHOTS", "1", "2025-03-01 08:00:00", "2025-03-01 08:07:00", "0705"],
    ["C2", "WELFR", "2", "2025-03-02 09:30:00", "", "0802"],
]


def deployment_at(root: Path, policy: Path = SHIPPED_POLICY) -> DeploymentResource:
    return DeploymentResource(
        data_dir=str(root / "data"),
        sources_dir=str(root / "sources"),
        policy_file=str(policy),
        metrics_dir=str(SHIPPED_METRICS),
    )


def test_the_policy_is_read_again_only_when_its_file_changes(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    shutil.copy(SHIPPED_POLICY, policy)
    deployment = deployment_at(tmp_path, policy)
    first = deployment.policy()
    assert deployment.policy() is first  # one validation for every step of a run
    text = policy.read_text(encoding="utf-8").replace("min_cell_size: 10 ", "min_cell_size: 11 ")
    policy.write_text(text, encoding="utf-8")
    os.utime(policy, ns=(0, policy.stat().st_mtime_ns + 1_000_000))
    second = deployment.policy()
    assert second is not first and second.sha256 != first.sha256
    assert second.defaults.min_cell_size == 11


def test_a_zone_is_named_or_refused(tmp_path: Path) -> None:
    deployment = deployment_at(tmp_path)
    with closing(deployment.connect("shared")) as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]
    assert (tmp_path / "data" / "build" / "build.duckdb").exists()
    with pytest.raises(ValueError, match="unknown zone 'raw'"):
        deployment.connect("raw")


def test_one_ingest_asset_materializes_into_a_temporary_deployment(tmp_path: Path) -> None:
    sources = copy_provider_configs(tmp_path)
    registry = load_registry(sources)
    police = registry.providers["police"]
    pattern = police.datasets["calls"].file_pattern.replace("*", "2025-03")
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(CALLS)
    inbox = sources / "police" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    delivered = inbox / pattern
    delivered.write_text(text.getvalue(), encoding="utf-8")
    an_hour_ago = delivered.stat().st_mtime - 3600  # settled: no longer being written
    os.utime(delivered, (an_hour_ago, an_hour_ago))

    assets = ingest.build_defs(registry.providers).assets or []
    [calls] = [a for a in assets if a.key == ingest.raw_key("police", "calls")]
    deployment = deployment_at(tmp_path)
    with dg.instance_for_test() as instance:
        result = dg.materialize([calls], resources={"deployment": deployment}, instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node(calls.node_def.name)
    assert materialization.metadata["rows_loaded"].value == len(CALLS) - 1
    assert materialization.metadata["files_loaded"].value == 1
    assert not list(inbox.iterdir())  # archived
    with closing(deployment.connect("restricted", read_only=True)) as con:
        rows = con.execute("SELECT call_number FROM police__calls").fetchall()
    assert sorted(rows) == [("C1",), ("C2",)]


def test_the_datasets_asset_materializes_on_its_own(tmp_path: Path) -> None:
    registry = load_registry(copy_provider_configs(tmp_path))
    assets = catalog.build_defs(registry.providers).assets or []
    [datasets] = [a for a in assets if a.key.path[-1] == "datasets"]
    deployment = deployment_at(tmp_path)
    with dg.instance_for_test() as instance:
        result = dg.materialize([datasets], resources={"deployment": deployment}, instance=instance)
    assert result.success
    expected = sum(len(p.datasets) for p in registry.providers.values())
    with closing(deployment.connect("shared", read_only=True)) as con:
        assert con.execute("SELECT count(*) FROM shared.datasets").fetchall()[0][0] == expected
