"""A broken contract is a blocking Dagster check: the release it would have published is not.

The demo deployment is copied; its built marts are broken the way a faulty model would break
them; Dagster then runs the published tables' contract checks and the publication step as it
plans them in any run. The publication must not run and the live release must stay.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import duckdb

from tests.conftest import Deployment

HOSTILE = "SECRET-4711"

RUN = """
import dagster as dg
from cs360_pipeline.definitions import defs
from cs360_pipeline.instance import ensure_dagster_home

contracts = {
    dg.AssetCheckKey(dg.AssetKey(["marts", table]), "contract")
    for table in ("metric_values", "metric_catalog", "geography")
}
job = defs.resolve_implicit_global_asset_job_def().get_subset(
    asset_selection={dg.AssetKey(["published", "warehouse"])}, asset_check_selection=contracts
)
ensure_dagster_home()
with dg.DagsterInstance.get() as instance:
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    print("success", result.success)
    for event in result.all_events:
        if event.event_type_value in ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"):
            data = event.event_specific_data
            outcome = getattr(data, "passed", None)
            described = getattr(data, "description", None) or ""
            key = (event.asset_key or data.asset_key).to_user_string()
            print(event.event_type_value, key, outcome, described)
"""


def copy_deployment(demo: Deployment, root: Path) -> Deployment:
    """The demo's sources and data in ``root``, with a Dagster instance of its own."""
    shutil.copytree(demo.sources, root / "sources")
    shutil.copytree(demo.data, root / "data")
    return replace(demo, root=root, sources=root / "sources", data=root / "data")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_broken_published_contract_stops_publication(demo: Deployment, tmp_path: Path) -> None:
    deployment = copy_deployment(demo, tmp_path)
    live = deployment.query("SELECT DISTINCT release_id FROM metric_values")
    before = digest(deployment.warehouse)
    con = duckdb.connect(str(deployment.data / "build" / "build.duckdb"))
    con.execute(
        "UPDATE marts.metric_values SET value = 7, numerator = 7 WHERE rowid IN "
        "(SELECT rowid FROM marts.metric_values WHERE status = 'suppressed' LIMIT 3)"
    )
    con.execute(f"UPDATE marts.geography SET name = '{HOSTILE}'")  # allowed: any name
    con.close()

    run = subprocess.run(
        [sys.executable, "-c", RUN], env=deployment.env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "success False" in lines, run.stdout
    checks = [line for line in lines if line.startswith("ASSET_CHECK_EVALUATION")]
    assert sorted(checks) == sorted([
        "ASSET_CHECK_EVALUATION marts/geography True every rule holds",
        "ASSET_CHECK_EVALUATION marts/metric_catalog True every rule holds",
        "ASSET_CHECK_EVALUATION marts/metric_values False metric_values: a suppressed row "
        "shows no value, numerator or denominator (3 rows)",
    ]), run.stdout  # fmt: skip
    # The publication never ran: nothing materialized, the live file and release untouched.
    assert not [line for line in lines if line.startswith("ASSET_MATERIALIZATION")], run.stdout
    assert digest(deployment.warehouse) == before
    assert deployment.query("SELECT DISTINCT release_id FROM metric_values") == live
    assert HOSTILE not in run.stdout + run.stderr
