"""The demo city is one deployment among others: written elsewhere, cut down to what a city has.

`cs360 --deployment DIR demo` writes the fictional city's configuration and deliveries into a
new folder. Taking its hospital and survey partners out (their folders, their metrics and their
policy lines, nothing outside the folder) leaves a deployment that refreshes and publishes the
other partners' metrics, and names no partner it no longer has anywhere it publishes.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from tests import launcher

pytestmark = pytest.mark.refreshes(minutes=0.5)  # of real refreshes: scheduled first

BIN = Path(sys.executable).parent
GONE = ("hospital", "survey")


def test_a_city_without_hospital_and_survey_refreshes_and_publishes(tmp_path: Path) -> None:
    folder = tmp_path / "riverton"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CS360_")},
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "CS360_AS_OF": "2026-01-15",
        "CS360_SETTLE_SECONDS": "0",
        "CS360_EXPECTATIONS": "off",
    }

    def cs360(*args: str, ok: tuple[int, ...] = (0,)) -> str:
        result = launcher.run([str(BIN / "cs360"), "--deployment", str(folder), *args],
                              env=env, timeout=900)  # fmt: skip
        assert result.returncode in ok, f"cs360 {args}: {result.stdout}\n{result.stderr}"
        return result.stdout

    cs360("demo", "--scale", "0.05", "--end-month", "2025-12", "--months", "13", "--seed", "5")
    for provider in GONE:
        shutil.rmtree(folder / "sources" / provider)
    catalog_file = folder / "metrics" / "cs360_metrics.yml"
    catalog = yaml.safe_load(catalog_file.read_text(encoding="utf-8"))
    kept = {m: d for m, d in catalog["metrics"].items() if not set(d["providers"]) & set(GONE)}
    assert 0 < len(kept) < len(catalog["metrics"])
    catalog_file.write_text(yaml.safe_dump({**catalog, "metrics": kept}), encoding="utf-8")
    notes_file = folder / "metrics" / "notes.yml"  # notes on metrics that went go with them
    notes = yaml.safe_load(notes_file.read_text(encoding="utf-8"))["notes"]
    notes_file.write_text(yaml.safe_dump({"notes": [n for n in notes if n["metric"] in kept]}))
    policy_file = folder / "privacy" / "policy.yml"
    policy = yaml.safe_load(policy_file.read_text(encoding="utf-8"))
    policy["providers"] = {p: r for p, r in policy["providers"].items() if p not in GONE}
    policy_file.write_text(yaml.safe_dump(policy), encoding="utf-8")

    out = cs360("refresh")
    assert "Published release r-" in out

    con = duckdb.connect(str(folder / "data" / "warehouse.duckdb"), read_only=True)
    try:
        rows = "SELECT DISTINCT metric_id FROM metric_values WHERE status = 'published'"
        published = {m for (m,) in con.execute(rows).fetchall()}
        rows = "SELECT DISTINCT provider FROM provider_status"
        providers = {p for (p,) in con.execute(rows).fetchall()}
    finally:
        con.close()
    assert published <= set(kept) and len(published) >= len(kept) // 2, sorted(published)
    assert providers.isdisjoint(GONE)
    status = cs360("status", ok=(0, 1, 3))  # a flagged dataset is not the point here
    brief = next((folder / "data" / "exports").glob("r-*/pst/brief.html")).read_text()
    for provider in GONE:
        assert f"{provider}/" not in status
        assert provider not in brief.lower()
