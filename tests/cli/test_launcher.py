"""The tests start their ``cs360`` commands from a preloaded launcher (tests/launcher.py): a
command started there prints, exits and sees its environment exactly as the installed script."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests import launcher
from tests.conftest import BIN, copy_provider_configs


def test_a_launched_command_is_the_installed_script(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CS360_")},
        "CS360_SOURCES_DIR": str(copy_provider_configs(tmp_path)),
        "CS360_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    for args in (["--help"], ["status", "--nosuch"], ["status"], ["releases"]):
        argv = [str(BIN / "cs360"), *args]
        script = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        launched = launcher.run(argv, env=env, timeout=120)
        assert (launched.returncode, launched.stdout, launched.stderr) == (
            script.returncode, script.stdout, script.stderr,
        ), args  # fmt: skip


def test_each_launched_command_has_its_own_environment(tmp_path: Path) -> None:
    """Nothing of one command's environment stays for the next: each names its own folder."""
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        env = {**os.environ, "CS360_DEPLOYMENT_DIR": str(folder)}
        result = launcher.run([str(BIN / "cs360"), "status"], env=env, timeout=120)
        assert result.returncode == 2
        assert result.stderr.startswith(f"cs360: {folder} is not a deployment"), result.stderr
