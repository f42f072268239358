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


def test_a_process_id_used_again_names_the_new_command() -> None:
    """Process ids come round again: the exit of an earlier command with the same pid is not
    the new command's (the launcher reports an exit before it forks again)."""
    shared = launcher.shared()
    pid = 10**9  # no real process has it
    ids = [shared.next_id + 1, shared.next_id + 2]
    shared.next_id += 2
    shared.record({"id": ids[0], "pid": pid})
    shared.record({"pid": pid, "exit": 1})
    shared.record({"id": ids[1], "pid": pid})
    earlier, later = (launcher.Child(shared, i, pid) for i in ids)
    assert (earlier.returncode, later.returncode) == (1, None)
    shared.record({"pid": pid, "exit": 0})
    assert later.wait(timeout=1) == 0
