"""Releases across refreshes, through the real CLI: the log, exports per release, --full, changes.

One small deployment goes through four refreshes: a first release (with Great Expectations on),
the same inputs again (nothing to rewrite), ``--full`` (everything rewritten), and a new month of
police calls (a new release whose brief says what changed).
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.demo import generate
from tests.conftest import Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=1.1)  # of real refreshes: scheduled first


def current_release(deployment: Deployment) -> str:
    return deployment.query("SELECT max(release_id) FROM metric_values")[0][0]


def log(deployment: Deployment) -> list[tuple]:
    con = duckdb.connect(str(deployment.data / "releases.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT release_id, times_published, checks_summary, len(input_files), "
            "policy_sha256, code_version FROM release_log ORDER BY published_at DESC"
        ).fetchall()
    finally:
        con.close()


def stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = new_deployment(tmp_path_factory.mktemp("releases"))
    generate(deployment.sources, seed=5, scale=0.03, end_month="2025-06", months=6)
    return deployment


def test_releases_are_logged_exported_and_compared(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The code must not change between these refreshes: in a shared checkout another commit
    # would change the release id (it holds the git commit), so leave git out of it.
    monkeypatch.setenv("GIT_DIR", str(deployment.root / "no-git"))
    # 1. The first release, with Great Expectations and its Data Docs.
    monkeypatch.setenv("CS360_EXPECTATIONS", "on")
    out = deployment.cs360("refresh", "--log-level", "WARNING")
    monkeypatch.setenv("CS360_EXPECTATIONS", "off")
    # dbt, Great Expectations and DuckDB in one process: nothing false on the way out (DuckDB's
    # bindings report their own constants as leaked when the interpreter is torn down).
    assert "leaked" not in out.stderr, out.stderr
    first = current_release(deployment)
    exports = deployment.data / "exports" / first
    assert f"Brief (pst): {exports / 'pst' / 'brief.html'}" in out.stdout
    [(release_id, times, checks, files, policy, code)] = log(deployment)
    assert (release_id, times) == (first, 1)
    assert files == len(list(deployment.sources.glob("*/archive/*")))
    assert len(policy) == 64 and code.startswith("0.1.0+nogit")
    assert "privacy_gate passed" in checks and "privacy_audit passed" in checks
    assert re.search(r"dbt tests (\d+)/\1 passed", checks), checks
    assert "expectations 2/2 passed" in checks
    for audience in ("pst", "public"):
        folder = exports / audience
        assert (folder / "data_docs" / "index.html").exists()
        assert {"brief.html", "metric_values.parquet", "metric_values.csv"} <= set(stamps(folder))
    before = stamps(exports / "pst")
    csv_before = (exports / "pst" / "metric_values.csv").read_bytes()

    # 2. Nothing changed: the release stays as it is, nothing runs, nothing is rewritten.
    again = deployment.cs360("refresh", "--log-level", "WARNING")
    assert f"No new files; release {first} stays published" in again.stdout
    assert current_release(deployment) == first
    assert [(r[0], r[1]) for r in log(deployment)] == [(first, 1)]
    assert "expectations 2/2 passed" in log(deployment)[0][2]
    assert stamps(exports / "pst") == before

    # 3. --full runs anyway and rewrites everything, identically: the same release again.
    deployment.cs360("refresh", "--full", "--log-level", "WARNING")
    assert [(r[0], r[1]) for r in log(deployment)] == [(first, 2)]
    after = stamps(exports / "pst")
    assert set(after) == set(before)
    rewritten = [n for n in before if after[n] > before[n]]
    assert sorted(rewritten) == sorted(n for n in before if n != "expectations.json")  # GX is off
    assert (exports / "pst" / "metric_values.csv").read_bytes() == csv_before
    refused = deployment.cs360("refresh", "--full", "--provider", "police", check=False)
    assert refused.returncode == 2 and "--full" in refused.stderr

    # 4. A new month of police calls: a new release, compared with the first.
    staging = deployment.root / "next"
    generate(staging, seed=5, scale=0.03, end_month="2025-07", months=1)
    calls = staging / "police" / "inbox" / "calls_2025-07.csv"
    shutil.copy(calls, deployment.sources / "police" / "inbox" / calls.name)
    stale = deployment.data / "exports" / "r-0000000000aa"  # a release long out of the log
    stale.mkdir()
    deployment.cs360("refresh", "--log-level", "WARNING")
    second = current_release(deployment)
    assert second != first
    entries = log(deployment)
    assert [r[0] for r in entries] == [second, first]  # the log survived the swap
    assert entries[0][3] == entries[1][3] + 1
    assert exports.exists() and not stale.exists()

    pst = html.unescape(
        (deployment.data / "exports" / second / "pst" / "brief.html").read_text(encoding="utf-8")
    )
    public = html.unescape(
        (deployment.data / "exports" / second / "public" / "brief.html").read_text(encoding="utf-8")
    )
    for page in (pst, public):
        changes = page.split('<section id="changes">')[1].split("</section>")[0]
        assert f"Compared with release <b>{first}</b>" in changes
        assert "New deliveries: police: 1 file" in changes
        shots = re.search(r"<tr><td>Shots-fired calls for service</td><td>([^<]*)</td>", changes)
        # July is new, at the level the metric is charted (by quarter when months are sparse).
        assert shots and shots.group(1) in {"Jul 2025", "Q3 2025"}
        history = page.split('<section id="history">')[1]
        assert first in history and second in history
    assert "calls_2025-07.csv" in pst and "calls_2025-07.csv" not in public

    listing = deployment.cs360("releases").stdout.splitlines()
    assert listing[1].startswith(f"* {second}") and listing[2].startswith(f"  {first}")
    detail = deployment.cs360("releases", first).stdout
    assert "calls_2025-06.csv" in detail and "calls_2025-07.csv" not in detail
