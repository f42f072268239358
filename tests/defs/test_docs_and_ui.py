"""What the README promises and what the Dagster UI shows, checked against the real thing."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import duckdb

from cs360_pipeline.settings import PROJECT_DIR
from tests.conftest import BIN, Deployment

README = PROJECT_DIR / "README.md"


def readme_sql() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    statements = [s.strip() for block in blocks for s in block.split(";")]
    return [
        s for s in statements if s and not all(line.startswith("--") for line in s.splitlines())
    ]


def test_readme_queries_run_as_written(demo: Deployment) -> None:
    queries = readme_sql()
    assert len(queries) == 3
    con = duckdb.connect(str(demo.warehouse), read_only=True)
    try:
        results = [con.execute(q).fetchall() for q in queries]
    finally:
        con.close()
    catalog, districts, violations = results
    assert len(catalog) >= 8
    assert len(districts) == 10
    assert {row[1] for row in violations} >= {"population=JUV", "population=ADULT"}


def test_readme_commands_exist() -> None:
    text = README.read_text(encoding="utf-8")
    makefile = (PROJECT_DIR / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test", "ui"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, re.M)
    ci = (PROJECT_DIR / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci == "make test"


def test_definitions_validate_for_the_workspace(demo: Deployment) -> None:
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_DIR,
        env={**demo.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "All code locations passed validation" in result.stderr + result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_ui_serves_the_asset_graph_schedule_and_sensors(demo: Deployment, tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            str(BIN / "dagster-webserver"),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT_DIR,
        env={**demo.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        stdout=(tmp_path / "webserver.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        answer: dict = {}
        while time.monotonic() < deadline:
            try:
                answer = _graphql(
                    port,
                    "{ assetNodes { assetKey { path } "
                    "    assetChecksOrError { ... on AssetChecks { checks { name } } } } "
                    "  workspaceOrError { ... on Workspace { locationEntries { name "
                    "    locationOrLoadError { ... on RepositoryLocation { repositories { "
                    "      schedules { name scheduleState { status } } "
                    "      sensors { name sensorState { status } } } } } } } } }",
                )
                if answer.get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        keys = {"/".join(n["assetKey"]["path"]) for n in answer["data"]["assetNodes"]}
        assert {"raw/police/incidents", "shared/cells_hospital", "marts/metric_values"} <= keys
        assert "published/warehouse" in keys
        checks = {
            "/".join(n["assetKey"]["path"]): {c["name"] for c in n["assetChecksOrError"]["checks"]}
            for n in answer["data"]["assetNodes"]
            if n.get("assetChecksOrError", {}).get("checks")
        }
        assert {
            "delivered_on_time", "data_current", "no_missing_months", "delivery_size_usual",
            "owner_and_steward_named",
        } <= checks["raw/survey/responses"]  # fmt: skip
        assert {"metrics_owned", "metric_sources_fresh"} <= checks["marts/metric_catalog"]
        repo = answer["data"]["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"][
            "repositories"
        ][0]
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert schedules == {"nightly_refresh": "RUNNING"}
        assert set(sensors) == {
            f"{p}_inbox" for p in ("city", "police", "school", "hospital", "probation", "survey")
        }
        assert set(sensors.values()) == {"RUNNING"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
