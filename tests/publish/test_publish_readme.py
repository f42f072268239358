"""The README's analyst workflow and server set-up, checked against the real thing."""

from __future__ import annotations

import re
import subprocess
import sys

from cs360_pipeline.settings import PROJECT_DIR
from tests.conftest import Deployment

README = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")


def test_the_analyst_workflow_runs_as_written(demo: Deployment) -> None:
    section = README.split("### The analyst's workflow")[1].split("\n## ")[0]
    [code] = [c for c in re.findall(r"```python\n(.*?)```", section, re.S) if "minutes =" in c]
    # The README's paths are relative to the checkout; the demo deployment has the same layout.
    result = subprocess.run(
        [sys.executable, "-c", code + "\nprint(len(minutes), minutes['status'].unique().tolist())"],
        cwd=demo.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    log_line, frame_line = result.stdout.strip().splitlines()
    # The release's entry in the log: its checks summary came back.
    assert "privacy_gate passed" in log_line and "privacy_audit passed" in log_line
    rows, statuses = frame_line.split(" ", 1)
    assert int(rows) > 0 and "published" in statuses


def test_the_server_files_the_readme_names_exist() -> None:
    for name in re.findall(r"deploy/[\w@.-]+", README):
        assert (PROJECT_DIR / name.rstrip(".")).exists(), name
    unit = (PROJECT_DIR / "deploy" / "cs360-dagster.service").read_text(encoding="utf-8")
    assert re.search(r"^ExecStart=\S+/dagster-daemon run -w workspace.yaml$", unit, re.M)
    assert "EnvironmentFile=/etc/cs360.env" in unit and "Restart=on-failure" in unit
    env = (PROJECT_DIR / "deploy" / "cs360.env").read_text(encoding="utf-8")
    for variable in ("CS360_DATA_DIR", "CS360_SOURCES_DIR", "DAGSTER_HOME", "CS360_ALERT_EMAIL"):
        assert re.search(rf"^{variable}=", env, re.M), variable
    script = PROJECT_DIR / "deploy" / "cs360-nightly.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
