"""The command line as people meet it: mistakes, help, progress, exit codes and the alarm.

The first tests call ``cs360_pipeline.cli.main`` in this process on a deployment with no data:
every mistake in a command line is one line on stderr and exit code 2, before anything runs.
The rest follow one small city through real refreshes: the quiet progress lines of a refresh,
a clean scorecard, then a police file quarantined by the nightly script (which prints the
warning for cron's mail), the scorecard's warning exit code and the Dagster check that stays
a warning until the corrected file loads.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from cs360_pipeline import cli
from cs360_pipeline.demo import generate
from cs360_pipeline.progress import CLEAR_LINE, Progress
from cs360_pipeline.release.identity import code_version
from cs360_pipeline.settings import PROJECT_DIR, current_paths
from tests.conftest import Deployment, check_result, copy_provider_configs, new_deployment

pytestmark = pytest.mark.refreshes(minutes=1.2)  # of real refreshes: scheduled first

NIGHTLY = PROJECT_DIR / "deploy" / "cs360-nightly.sh"
BAD_TIME = "31/02/2025 25:00"  # a value no export may ever show in a message
STAGES = ("ingest", "aggregate", "dbt", "checks", "publish")
Refreshed = tuple[Deployment, subprocess.CompletedProcess[str]]  # and its first refresh


# -- mistakes in the command line --------------------------------------------------------------


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A deployment's providers without any data: nothing may be written by a mistake."""
    monkeypatch.setenv("CS360_SOURCES_DIR", str(copy_provider_configs(tmp_path)))
    monkeypatch.setenv("CS360_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path


PROVIDERS = "providers: city, hospital, police, probation, school, survey"
MISTAKES = [
    (["refresh", "--provider", "nosuch"], f"cs360 refresh: no provider 'nosuch' ({PROVIDERS})"),
    (["status", "--provider", "nosuch"], f"cs360 status: no provider 'nosuch' ({PROVIDERS})"),
    (["status", "--files", "--provider", "x"], f"cs360 status: no provider 'x' ({PROVIDERS})"),
    (["reingest", "--provider", "nosuch"], f"cs360 reingest: no provider 'nosuch' ({PROVIDERS})"),
    (["refresh", "--full", "--provider", "police"], "cs360 refresh: --full refreshes every"),
    (["refresh", "--wait", "-1"], "cs360 refresh: argument --wait: it must be at least 0"),
    (["demo", "--end-month", "2025-13"], "cs360 demo: argument --end-month: '2025-13' is not a"),
    (["demo", "--end-month", "May"], "cs360 demo: argument --end-month: 'May' is not a month"),
    (["demo", "--scale", "-1"], "cs360 demo: argument --scale: it must be more than 0, not '-1'"),
    (["demo", "--scale", "0"], "cs360 demo: argument --scale: it must be more than 0"),
    (["demo", "--scale", "lots"], "cs360 demo: argument --scale: 'lots' is not a number"),
    (["demo", "--months", "0"], "cs360 demo: argument --months: it must be at least 1"),
    (["demo", "--hold-back", "nosuch"], "cs360 demo: --hold-back 'nosuch': no demo provider"),
    ([], "cs360: the following arguments are required: COMMAND"),
    (["nosuch"], "cs360: argument COMMAND: invalid choice: 'nosuch'"),
    (["status", "--nosuch"], "cs360: unrecognized arguments: --nosuch"),
]


@pytest.mark.parametrize(("argv", "start"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_is_one_line_on_stderr_and_exit_code_2(
    empty: Path, argv: list[str], start: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == cli.USAGE == 2
    assert err.startswith(start), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""
    assert not (empty / "data").exists()  # nothing ran


def test_not_a_deployment_is_a_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Named by ``--deployment`` or by ``CS360_DEPLOYMENT_DIR``, a folder without a policy is
    one line and exit code 2, not a traceback from whatever reads it first."""
    expected = f"cs360: {tmp_path} is not a deployment (no privacy/policy.yml): see " \
               "`cs360 init --help`\n"  # fmt: skip
    for argv in (["--deployment", str(tmp_path), "status"], ["--deployment", str(tmp_path),
                                                            "--version"]):  # fmt: skip
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == expected
    monkeypatch.setenv("CS360_DEPLOYMENT_DIR", str(tmp_path))
    for argv in (["status"], ["refresh"], ["--version"]):
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == expected


def test_version_names_the_package_and_the_code_version(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"cs360 0.1.0 (code {code_version(current_paths())})\n"


def test_help_gives_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "examples:\n  cs360 demo && cs360 refresh" in top
    assert cli.main(["status", "--help"]) == 0
    status = capsys.readouterr().out
    assert "cs360 status --provider hospital" in status
    assert "exit codes: 0 all well, 1 warnings only, 2 a mistake in the command line, 3 errors" in (
        " ".join(status.split())
    )
    assert "quarantined" in status and "--wide" in status
    assert cli.main(["refresh", "--help"]) == 0
    refresh = " ".join(capsys.readouterr().out.split())
    assert "<data>/logs/dbt.log" in refresh and "--verbose" in refresh
    assert "3 another refresh of this deployment is running" in refresh


def test_the_ui_opens_without_the_community_pop_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instance's dagster.yaml turns the pop-up off; one this project wrote before is
    brought up to date."""
    from cs360_pipeline.instance import HEADER, dagster_yaml, ensure_dagster_home

    home = tmp_path / "dagster_home"
    home.mkdir()
    older = re.sub(r"# No \"Join.*?enabled: false\n", "", dagster_yaml(home), flags=re.S)
    assert older.startswith(HEADER) and "nux" not in older
    (home / "dagster.yaml").write_text(older, encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ensure_dagster_home()
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == dagster_yaml(home)
    with dg.DagsterInstance.get() as instance:
        assert instance.nux_enabled is False
        assert instance.telemetry_enabled is False


# -- a small city, refreshed for real --------------------------------------------------------


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Refreshed:
    """A year of deliveries through June 2025, refreshed as of 2025-07-20: every dataset in."""
    deployment = replace(new_deployment(tmp_path_factory.mktemp("cli")), as_of="2025-07-20")
    generate(deployment.sources, seed=5, scale=0.03, end_month="2025-06", months=12)
    generate(deployment.root / "next", seed=5, scale=0.03, end_month="2025-07", months=1)
    return deployment, deployment.cs360("refresh")


def test_a_refresh_says_a_line_per_stage(
    city: Refreshed,
) -> None:
    deployment, refresh = city
    lines = refresh.stdout.splitlines()
    assert lines[0] == (
        f"cs360 refresh: deployment {PROJECT_DIR}, data in {deployment.data}; "
        "loading the pipeline ..."
    )
    assert re.fullmatch(r"Running refresh_all \(Dagster run [0-9a-f-]{36}\) \.\.\.", lines[1])
    stages = [line.split(":")[0] for line in lines[2:] if line.split(":")[0] in STAGES]
    assert stages == list(STAGES)  # one line each, in the order they ran
    ingest = next(line for line in lines if line.startswith("ingest: "))
    files = len(list(deployment.sources.glob("*/archive/*")))
    assert ingest.startswith(f"ingest: {files} new file(s): {files} loaded, 0 quarantined, "
                             "0 duplicate, "), ingest  # fmt: skip
    dbt_log = deployment.data / "logs" / "dbt.log"
    dbt = next(line for line in lines if line.startswith("dbt: "))
    # seconds_text: one decimal under ten seconds, whole seconds above
    assert re.match(r"dbt: \d+ models, \d+ tests: \d+ passed \(\d+(\.\d)? s\); dbt's output: ", dbt)
    assert dbt.endswith(str(dbt_log))
    publish = next(line for line in lines if line.startswith("publish: "))
    assert f"release {deployment.query('SELECT max(release_id) FROM metric_values')[0][0]}" in (
        publish
    )
    # Quiet: neither Dagster's log nor dbt's messages, and no control code anywhere.
    assert refresh.stderr == ""
    assert "START sql" not in refresh.stdout and " - dagster - " not in refresh.stdout
    assert len(lines) < 20
    log = dbt_log.read_text(encoding="utf-8")
    assert "START sql view model" in log and "Completed successfully" in log
    assert "\x1b" not in refresh.stdout + log


def test_the_live_line_is_for_a_terminal_only(
    city: Refreshed,
) -> None:
    """The first refresh's own events, told again: on a terminal the running step is shown on
    one line the next overwrites; elsewhere the same stage lines, without control codes."""
    deployment, refresh = city
    run_id = refresh.stdout.splitlines()[1].split("Dagster run ")[1].split(")")[0]
    instance = dg.DagsterInstance.from_config(str(deployment.root / "dagster_home"))
    try:
        entries = instance.all_logs(run_id)
    finally:
        instance.dispose()
    said = {}
    for live in (True, False):
        out, err = io.StringIO(), io.StringIO()
        progress = Progress(out, err, dbt_log=deployment.data / "logs" / "dbt.log",
                            echo_logs=True, live=live)  # fmt: skip
        for entry in entries:
            progress(entry)
        progress.finish()
        said[live] = out.getvalue()
        assert err.getvalue() == ""
    assert f"{CLEAR_LINE}ingest: raw__police__calls ..." in said[True]
    assert "\x1b" not in said[False] and "\r" not in said[False]
    plain = [line for line in said[False].splitlines() if not line.startswith("  warning: ")]
    assert [line.split(":")[0] for line in plain] == list(STAGES)
    assert plain == [line for line in refresh.stdout.splitlines() if line in plain]
    assert [line for line in said[True].replace(CLEAR_LINE, "\n").splitlines()
            if line.split(":")[0] in STAGES and not line.endswith(" ...")] == plain  # fmt: skip


def status_table(result: subprocess.CompletedProcess) -> dict[tuple[str, str], str]:
    lines = result.stdout.splitlines()
    table = lines[2 : lines.index("")] if "" in lines else lines[2:]
    return {tuple(line.split()[:2]): line for line in table}


def test_all_well_exits_0_and_fits_100_columns(
    city: Refreshed,
) -> None:
    deployment, _ = city
    status = deployment.cs360("status")
    assert (status.returncode, status.stderr) == (0, "")
    rows = status_table(status)
    assert len(rows) == 12 and all(" ok" in line for line in rows.values())
    assert max(len(line) for line in status.stdout.splitlines()) <= cli.WIDTH
    header = status.stdout.splitlines()[1].split()
    assert header[:4] == ["provider", "dataset", "loaded", "quarantine"]
    wide = deployment.cs360("status", "--wide").stdout.splitlines()
    assert wide[1].split()[-3:] == ["severity", "steward", "issues"] and "cadence" in wide[1]
    release = deployment.query("SELECT max(release_id) FROM metric_values")[0][0]
    for command in (("status", "--files"), ("releases",), ("releases", release)):
        out = deployment.cs360(*command).stdout
        assert max(len(line) for line in out.splitlines()) <= cli.WIDTH, command
    unknown = deployment.cs360("releases", "r-nosuch", check=False)
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "cs360 releases: 'r-nosuch' is not in the release log (`cs360 releases` lists them)\n"
    )


def write_calls(source: Path, target: Path, bad_value: str | None = None) -> None:
    """A police calls file, with one bad time in its first row if asked."""
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if bad_value is not None:
        rows[1][rows[0].index("received_at")] = bad_value
    with target.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def nightly(deployment: Deployment) -> subprocess.CompletedProcess[str]:
    """The real cron script, with this deployment's settings instead of /etc/cs360.env."""
    settings = deployment.root / "cs360.env"
    settings.write_text("# nothing beyond the environment\n", encoding="utf-8")
    return subprocess.run(
        ["bash", str(NIGHTLY)],
        env={**deployment.env, "CS360_ENV_FILE": str(settings)},
        capture_output=True,
        text=True,
        timeout=900,
    )


QUARANTINE_WARNING = (
    "WARNING: police/calls: 1 quarantined file(s) awaiting a corrected delivery; contact Sam "
    "Ortiz (Crime Analyst); `cs360 status --files --provider police` shows which and why."
)


def test_a_quarantined_file_makes_the_nightly_script_mail(
    city: Refreshed,
) -> None:
    deployment, _ = city
    good = deployment.root / "next" / "police" / "inbox" / "calls_2025-07.csv"
    write_calls(good, deployment.sources / "police" / "inbox" / good.name, BAD_TIME)

    script = nightly(deployment)

    assert script.returncode == 1, script.stdout + script.stderr
    assert script.stdout.startswith("cs360 status: warnings (exit 1); the log: ")
    assert QUARANTINE_WARNING in script.stdout.splitlines()
    assert "ERROR" not in script.stdout and script.stderr == ""
    log = next((deployment.data / "logs").glob("refresh-*.log")).read_text(encoding="utf-8")
    assert "ingest: 1 new file(s): 0 loaded, 1 quarantined, 0 duplicate" in log
    assert "received_at" in log  # the reason names the column ...
    assert BAD_TIME not in log + script.stdout  # ... never the partner's value
    quarantined = list((deployment.sources / "police" / "quarantine").glob("*__calls_2025-07.csv"))
    assert len(quarantined) == 1


def test_status_warns_with_exit_code_1_until_a_corrected_file_loads(
    city: Refreshed,
) -> None:
    deployment, _ = city
    status = deployment.cs360("status", check=False)
    assert status.returncode == cli.WARNINGS == 1
    assert status.stderr.splitlines() == [QUARANTINE_WARNING]
    rows = status_table(status)
    assert rows[("police", "calls")].split()[-1] == "warn"
    assert rows[("police", "calls")].split()[3] == "1"  # quarantined
    assert rows[("police", "incidents")].split()[-1] == "ok"
    files = deployment.cs360("status", "--files", "--provider", "police").stdout.splitlines()
    assert [line.split()[3] for line in files if "calls_2025-07.csv" in line] == ["quarantined"]
    assert check_result(deployment, ["raw", "police", "calls"], "quarantine_cleared") == (
        False,
        "WARN",
        "1",
    )
    assert check_result(deployment, ["raw", "police", "incidents"], "quarantine_cleared")[0]

    # Another night with nothing new: still waiting for the partner, still a warning.
    deployment.cs360("refresh")
    assert deployment.cs360("status", check=False).returncode == 1
    only_school = deployment.cs360("status", "--provider", "school")
    assert (only_school.returncode, only_school.stderr) == (0, "")

    # The corrected file arrives and loads: the warning clears.
    good = deployment.root / "next" / "police" / "inbox" / "calls_2025-07.csv"
    shutil.copy(good, deployment.sources / "police" / "inbox" / good.name)
    deployment.cs360("refresh", "--provider", "police")
    cleared = deployment.cs360("status")
    assert (cleared.returncode, cleared.stderr) == (0, "")
    assert status_table(cleared)[("police", "calls")].split()[3] == "1"  # still counted
    assert check_result(deployment, ["raw", "police", "calls"], "quarantine_cleared") == (
        True,
        "WARN",
        "0",
    )
    assert os.path.getsize(deployment.data / "logs" / "dbt.log") > 0
