"""The CS360 metric catalog as reviewed configuration: what the project defines, and every way a
broken definition is refused with a message naming the file, the metric and the key.

Negative tests copy ``metrics/cs360_metrics.yml`` into ``tmp_path``, break one thing
and load it against the project's real provider registry and privacy policy.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cs360_pipeline.catalog import dbt_in_process
from cs360_pipeline.catalog.freshness_sources import RELATIVE_PATH, render, sync
from cs360_pipeline.catalog.metrics import (
    METRICS_DIR,
    CatalogError,
    check_against_policy,
    load_catalog,
    source_providers,
    uncovered_goals,
)
from cs360_pipeline.contracts.published import CONTRACTS
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.publish.warehouse import PUBLISHED_TABLES
from cs360_pipeline.registry import load_providers
from cs360_pipeline.settings import PROJECT_DIR, SHIPPED_POLICY
from cs360_pipeline.sql import connect
from tests.conftest import BIN, Deployment, new_deployment

PROVIDERS = load_providers(PROJECT_DIR / "sources")
METRICS_FILE = METRICS_DIR / "cs360_metrics.yml"


def broken(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the project's metric file with ``change`` applied; returns its folder."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    data = yaml.safe_load(METRICS_FILE.read_text(encoding="utf-8"))
    change(data)
    (folder / "cs360_metrics.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def refused(folder: Path, *fragments: str) -> None:
    """Loading the folder fails with the file path first, then every fragment in order."""
    pattern = "(?s)" + re.escape(str(folder / "cs360_metrics.yml"))
    pattern += "".join(".*" + re.escape(f) for f in fragments)
    with pytest.raises(CatalogError, match=pattern):
        load_catalog(PROVIDERS, folder)


# -- what the project defines ----------------------------------------------------------------


def test_project_catalog_spans_five_providers_three_dimensions_and_every_goal() -> None:
    catalog = load_catalog(PROVIDERS, METRICS_DIR)
    check_against_policy(catalog, load_policy(SHIPPED_POLICY))
    metrics = catalog.metrics
    assert len(metrics) >= 20
    per_provider: dict[str, int] = {}
    for metric in metrics.values():
        for provider in metric.providers:
            per_provider[provider] = per_provider.get(provider, 0) + 1
    assert {p: n for p, n in per_provider.items() if p != "city"}.keys() == {
        "police", "school", "hospital", "probation", "survey",
    }  # fmt: skip
    assert min(n for p, n in per_provider.items() if p != "city") >= 2
    assert {m.dimension for m in metrics.values()} == {"crime", "partners", "organization"}
    # CS360: at least one measure per goal, and beyond Part 1 crime.
    assert uncovered_goals(catalog) == []
    assert sum("police" not in m.providers for m in metrics.values()) >= 12
    # Every percent metric of the survey is respondents agreeing over respondents.
    survey = [m for m in metrics.values() if m.providers == ["survey"]]
    assert len(survey) >= 3
    assert all(m.unit == "percent" and m.denominator == "survey.respondents" for m in survey)
    for metric in metrics.values():
        assert metric.owner.organisation and metric.owner.role
        assert metric.privacy is not None
        assert sorted(metric.providers) == source_providers(metric)


def test_freshness_sources_follow_the_providers(tmp_path: Path) -> None:
    """dbt's source freshness limits are rendered from provider.yml, rewritten only on change."""
    written_to = tmp_path / RELATIVE_PATH
    assert sync(PROVIDERS, tmp_path)
    written = written_to.stat().st_mtime_ns
    assert written_to.read_text(encoding="utf-8") == render(PROVIDERS)
    assert not sync(PROVIDERS, tmp_path) and written_to.stat().st_mtime_ns == written
    document = yaml.safe_load(written_to.read_text(encoding="utf-8"))
    tables = {t["name"]: t["config"] for t in document["sources"][0]["tables"]}
    assert tables["police__incidents"]["freshness"]["error_after"] == {"count": 70, "period": "day"}
    assert tables["police__incidents"]["loaded_at_field"] == "_loaded_at"
    assert tables["city__beats"]["freshness"] is None
    assert len(tables) == sum(len(p.datasets) for p in PROVIDERS.values())


# -- refusals ------------------------------------------------------------------------------


def test_metric_without_owner(tmp_path: Path) -> None:
    folder = broken(tmp_path, lambda d: d["metrics"]["shots_fired_calls"].pop("owner"))
    refused(folder, "metrics.shots_fired_calls.owner", "every metric needs an owner")


def test_owner_without_role(tmp_path: Path) -> None:
    folder = broken(
        tmp_path, lambda d: d["metrics"]["trust_in_police"].update(owner={"organisation": "X"})
    )
    refused(folder, "metrics.trust_in_police.owner.role", "Field required")


def test_unknown_provider(tmp_path: Path) -> None:
    folder = broken(
        tmp_path, lambda d: d["metrics"]["probation_revocations"].update(providers=["courts"])
    )
    refused(folder, "metrics.probation_revocations.providers", "unknown provider 'courts'")


def test_providers_must_match_the_measures(tmp_path: Path) -> None:
    folder = broken(
        tmp_path, lambda d: d["metrics"]["violent_firearm_crime_rate"].update(providers=["police"])
    )
    refused(
        folder,
        "metrics.violent_firearm_crime_rate.providers",
        "lists police, but its numerator and denominator come from city, police",
    )


def test_unknown_measure(tmp_path: Path) -> None:
    folder = broken(
        tmp_path, lambda d: d["metrics"]["shots_fired_calls"].update(numerator="police.gunshots")
    )
    refused(folder, "metrics.shots_fired_calls.numerator", "'police.gunshots'")


def test_unknown_dimension(tmp_path: Path) -> None:
    folder = broken(
        tmp_path, lambda d: d["metrics"]["shots_fired_calls"].update(dimension="wellness")
    )
    refused(folder, "metrics.shots_fired_calls.dimension", "unknown dimension 'wellness'")


def test_goal_of_another_dimension(tmp_path: Path) -> None:
    folder = broken(tmp_path, lambda d: d["metrics"]["shots_fired_calls"].update(goal="trust"))
    refused(folder, "metrics.shots_fired_calls.goal", "'trust' is not a goal of dimension 'crime'")


def test_indicator_of_another_goal(tmp_path: Path) -> None:
    folder = broken(
        tmp_path, lambda d: d["metrics"]["shots_fired_calls"].update(indicator="Crime Rates")
    )
    refused(
        folder,
        "metrics.shots_fired_calls.indicator",
        "'Crime Rates' is not an indicator of goal 'interrupt'",
    )


def test_count_target_must_be_relative(tmp_path: Path) -> None:
    folder = broken(
        tmp_path, lambda d: d["metrics"]["shots_fired_calls"].update(target={"value": 12})
    )
    refused(folder, "metrics.shots_fired_calls", "use target.change_pct")


def test_baseline_is_required_and_ordered(tmp_path: Path) -> None:
    folder = broken(tmp_path, lambda d: d["metrics"]["shots_fired_calls"].pop("baseline"))
    refused(folder, "metrics.shots_fired_calls.baseline", "every metric needs a baseline")
    other = tmp_path / "other"
    other.mkdir()
    folder = broken(
        other,
        lambda d: d["metrics"]["shots_fired_calls"].update(
            baseline={"start": "2024-12", "end": "2024-01"}
        ),
    )
    refused(folder, "metrics.shots_fired_calls.baseline", "baseline end is before its start")


def test_rate_needs_population(tmp_path: Path) -> None:
    folder = broken(
        tmp_path,
        lambda d: d["metrics"]["violent_firearm_crime_rate"].update(
            denominator="police.violent_crimes"
        ),
    )
    refused(folder, "metrics.violent_firearm_crime_rate", "denominator must be 'population'")


def test_metric_defined_twice_across_files(tmp_path: Path) -> None:
    folder = broken(tmp_path, lambda d: None)
    extra = {"metrics": {"shots_fired_calls": yaml.safe_load(METRICS_FILE.read_text())["metrics"][
        "shots_fired_calls"
    ]}}  # fmt: skip
    (folder / "extra.yml").write_text(yaml.safe_dump(extra))
    with pytest.raises(CatalogError, match=re.escape("extra.yml: metrics.shots_fired_calls")):
        load_catalog(PROVIDERS, folder)


def test_audience_and_privacy_key_are_checked_against_the_policy(tmp_path: Path) -> None:
    policy = load_policy(SHIPPED_POLICY)
    folder = broken(tmp_path, lambda d: d["metrics"]["trust_in_police"].update(audiences=["press"]))
    with pytest.raises(
        CatalogError, match=re.escape("trust_in_police.audiences: unknown audience")
    ):
        check_against_policy(load_catalog(PROVIDERS, folder), policy)
    other = tmp_path / "other"
    other.mkdir()
    folder = broken(
        other, lambda d: d["metrics"]["trust_in_police"].update(privacy="providers.police")
    )
    with pytest.raises(
        CatalogError,
        match=re.escape(
            "metrics.trust_in_police.privacy: says 'providers.police', but privacy/policy.yml "
            "sets this metric's rule in 'providers.survey'"
        ),
    ):
        check_against_policy(load_catalog(PROVIDERS, folder), policy)


# -- the build stops ---------------------------------------------------------------------------


def test_a_metric_without_owner_fails_the_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real refresh (CS360_METRICS_DIR pointing at a broken catalog) fails, says why, and
    publishes nothing."""
    deployment = new_deployment(tmp_path / "deployment")
    folder = broken(tmp_path, lambda d: d["metrics"]["youth_assault_firearm_injuries"].pop("owner"))
    monkeypatch.setenv("CS360_METRICS_DIR", str(folder))
    result = deployment.cs360("refresh", "--log-level", "WARNING", check=False)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "metrics.youth_assault_firearm_injuries.owner" in output
    assert "every metric needs an owner" in output
    assert not deployment.warehouse.exists()


# -- dbt: docs, contracts and tests on the marts -----------------------------------------------


def dbt_copy(demo: Deployment, folder: Path) -> Path:
    """The demo's dbt project beside a copy of its build database, as in a deployment: dbt opens
    its database for writing, and other tests read the demo's meanwhile."""
    shutil.copy(demo.data / "build" / "build.duckdb", folder / "build.duckdb")
    return shutil.copytree(demo.dbt_dir, folder / "dbt_project")


AS_OF = ["--vars", '{"as_of": "2026-01-15"}']


def test_dbt_in_process_builds_and_leaves_the_build_database_to_the_next_step(
    demo: Deployment, tmp_path: Path
) -> None:
    """The refresh runs dbt in its own process: the results come back node by node, the working
    directory is restored, and the build database opens afterwards with the pipeline's own
    settings (dbt-duckdb would keep it open with others, which DuckDB refuses)."""
    project, before = dbt_copy(demo, tmp_path), Path.cwd()
    outcome = dbt_in_process.run(
        project, ["build", "--select", "stg_catalog__datasets", *AS_OF], tmp_path / "target"
    )
    assert outcome.success and outcome.exception is None and not outcome.errors
    infos = [result["data"]["node_info"] for result in outcome.results]
    assert {info["unique_id"].split(".")[0] for info in infos} == {"model", "test"}
    assert {info["node_status"] for info in infos} <= {"success", "pass"}
    assert Path.cwd() == before
    assert "Completed successfully" in (tmp_path / "target" / "dbt.log").read_text()
    con = connect(tmp_path / "build.duckdb")
    try:
        assert con.execute("SELECT count(*) FROM staging.stg_catalog__datasets").fetchone()[0] > 0
    finally:
        con.close()


def test_dbt_in_process_reports_a_failing_model_by_name(demo: Deployment, tmp_path: Path) -> None:
    project = dbt_copy(demo, tmp_path)
    (project / "models" / "staging" / "stg_broken__things.sql").write_text(
        "select * from no_such_table\n", encoding="utf-8"
    )
    outcome = dbt_in_process.run(
        project, ["build", "--select", "stg_broken__things", *AS_OF], tmp_path / "target"
    )
    assert not outcome.success
    assert any("stg_broken__things" in error for error in outcome.errors), outcome.errors
    assert [r["data"]["node_info"]["node_status"] for r in outcome.results] == ["error"]
    connect(tmp_path / "build.duckdb").close()  # closed after a failure too


def test_dbt_unit_tests_of_the_scorecard_and_the_catalog_pass(
    demo: Deployment, tmp_path: Path
) -> None:
    """The marts' unit tests (rows worked out by hand, in _marts__models.yml), which refreshes
    leave out: they check the SQL, not a city's data."""
    result = subprocess.run(
        [str(BIN / "cs360-dbt"), "test", "--select", "test_type:unit", *AS_OF,
         "--target-path", str(tmp_path / "target")],
        cwd=dbt_copy(demo, tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS=2 " in result.stdout and "ERROR=0" in result.stdout, result.stdout
    assert "provider_status_judges_each_dataset" in result.stdout
    assert "metric_catalog_takes_complete_shown_periods" in result.stdout


def test_dbt_docs_generate_offline_with_contracts_on_every_mart(
    demo: Deployment, tmp_path: Path
) -> None:
    """`dbt docs generate` works on the demo's build database with no network (usage tracking
    is off, so the docs page loads no tracker); every published mart has an enforced dbt
    contract (its shape) and a pandera contract (its rules), and no dbt test repeats a rule."""
    project = dbt_copy(demo, tmp_path)
    target = tmp_path / "docs"
    result = subprocess.run(
        [
            str(BIN / "cs360-dbt"), "docs", "generate", *AS_OF, "--target-path", str(target),
        ],
        cwd=project, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    assert manifest["metadata"]["send_anonymous_usage_stats"] is False
    assert (target / "index.html").stat().st_size > 100_000
    marts = ("metric_values", "metric_catalog", "provider_status", "geography")
    tested = {
        node["attached_node"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test" and node.get("attached_node")
    }
    for mart in marts:
        node = manifest["nodes"][f"model.cs360.{mart}"]
        assert node["config"]["contract"]["enforced"] is True, mart
        assert node["description"], mart
        assert f"model.cs360.{mart}" not in tested, mart  # its rules live in its contract
        documented = catalog["nodes"][f"model.cs360.{mart}"]["columns"]
        assert set(node["columns"]) == {c.lower() for c in documented}, mart
    assert set(CONTRACTS) == set(PUBLISHED_TABLES)
    status_columns = catalog["nodes"]["model.cs360.provider_status"]["columns"]
    assert {"freshness_status", "data_status", "missing_months", "severity"} <= set(status_columns)
    freshness = [
        n for n in manifest["sources"].values() if n["source_name"] == "deliveries_by_dataset"
    ]
    assert any(s["freshness"] and s["freshness"]["error_after"]["count"] for s in freshness)


# -- the PST's notes ---------------------------------------------------------------------------


def with_notes(tmp_path: Path, notes: list[dict[str, Any]]) -> Path:
    """The project's metric file plus a notes file holding ``notes``; returns the folder."""
    folder = broken(tmp_path, lambda data: None)
    (folder / "notes.yml").write_text(yaml.safe_dump({"notes": notes}, sort_keys=False))
    return folder


@pytest.mark.parametrize(
    ("note", "fragments"),
    [
        ({"metric": "nosuch", "from": "2025-01", "note": "x"}, ["notes[0].metric", "'nosuch'"]),
        (
            {"metric": "repeat_domestic_violence", "from": "2025-01", "note": "x",
             "audiences": ["public"]},
            ["notes[0].audiences", "not published for public"],
        ),
        ({"metric": "shots_fired_calls", "from": "2025-13", "note": "x"}, ["not a month"]),
        (
            {"metric": "shots_fired_calls", "from": "2025-05", "to": "2025-01", "note": "x"},
            ["'to' month is before its 'from' month"],
        ),
        ({"metric": "shots_fired_calls", "from": "2025-05", "note": "a\x07b"}, ["control"]),
        ({"metric": "shots_fired_calls", "from": "2025-05", "note": ""}, ["notes.0.note"]),
    ],
)  # fmt: skip
def test_a_note_is_checked_when_the_catalog_loads(
    tmp_path: Path, note: dict[str, Any], fragments: list[str]
) -> None:
    folder = with_notes(tmp_path, [note])
    pattern = "(?s)" + re.escape(str(folder / "notes.yml"))
    pattern += "".join(".*" + re.escape(f) for f in fragments)
    with pytest.raises(CatalogError, match=pattern):
        load_catalog(PROVIDERS, folder)


def test_notes_are_numbered_per_metric_and_audience(tmp_path: Path) -> None:
    import duckdb

    from cs360_pipeline.catalog.metrics import write_notes

    folder = with_notes(
        tmp_path,
        [
            {"metric": "shots_fired_calls", "from": "2025-02", "note": "  two\n lines "},
            {"metric": "shots_fired_calls", "from": "2025-03", "to": "2025-05", "note": "b",
             "audiences": ["pst"]},
            {"metric": "shots_fired_calls", "from": "2025-06", "note": "c"},
        ],
    )  # fmt: skip
    con = duckdb.connect()
    try:
        assert write_notes(con, load_catalog(PROVIDERS, folder)) == 5
        rows = con.execute(
            "SELECT audience, note_order, strftime(period_from, '%Y-%m-%d'), "
            "strftime(period_to, '%Y-%m-%d'), note FROM shared.metric_notes ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert rows == [
        ("pst", 1, "2025-02-01", "2025-02-28", "two lines"),
        ("pst", 2, "2025-03-01", "2025-05-31", "b"),
        ("pst", 3, "2025-06-01", "2025-06-30", "c"),
        ("public", 1, "2025-02-01", "2025-02-28", "two lines"),
        ("public", 2, "2025-06-01", "2025-06-30", "c"),
    ]
