"""The delivery scorecard on a deliberately troubled deployment, with a frozen clock.

One small demo city is delivered with a problem per dataset, then refreshed for real:

- hospital holds back its last three months (data far behind, an error);
- police calls miss December (data behind, a warning);
- police incidents miss June, inside the series (a coverage gap, an error);
- probation events deliver a December file with a fifth of the usual rows (shrunken, a warning);
- probation's caseload roster never arrives (never delivered, an error);
- the survey partner names no data owner and no steward (an error);
- the city names no steward (a warning);
- school has no July file, which its calendar expects (no gap, no flag).

The first refresh runs as of 2026-01-15 (CS360_AS_OF). The second runs 72 days after the
files were loaded, where the delivery limits bite: police, probation and survey are overdue
(70 days), hospital and school late (75 and 100 days), and dbt source freshness must agree.
Every expected status is written out below; none is computed with the pipeline's own logic.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
import yaml

from cs360_pipeline.demo import generate
from tests.conftest import BIN, Deployment, check_result, new_deployment

pytestmark = pytest.mark.refreshes(minutes=1)  # of real refreshes: scheduled first

AS_OF = "2026-01-15"
LATER_DAYS = 72


def edit_provider(sources: Path, provider: str, *keys: str) -> None:
    path = sources / provider / "provider.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in keys:
        del data[key]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def truncate(path: Path, keep_share: float) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = max(1, int((len(lines) - 1) * keep_share))
    path.write_text("".join(lines[: 1 + keep]), encoding="utf-8")


@pytest.fixture(scope="module")
def troubled(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = replace(new_deployment(tmp_path_factory.mktemp("troubled")), as_of=AS_OF)
    sources = deployment.sources
    edit_provider(sources, "survey", "data_owner", "steward")
    edit_provider(sources, "city", "steward")
    generate(sources, seed=3, scale=0.05, end_month="2025-12", months=14, hold_back={"hospital": 3})
    (sources / "police" / "inbox" / "calls_2025-12.csv").unlink()
    (sources / "police" / "inbox" / "incidents_2025-06.csv").unlink()
    for roster in (sources / "probation" / "inbox").glob("caseload_*.csv"):
        roster.unlink()
    truncate(sources / "probation" / "inbox" / "events_2025-12.csv", 0.2)
    for inbox in sources.glob("*/inbox"):
        shutil.copytree(inbox, deployment.delivered / inbox.parent.name)
    deployment.cs360("refresh", "--log-level", "WARNING")
    return deployment


def scorecard(deployment: Deployment, build: bool = False) -> dict[tuple[str, str], dict]:
    path = deployment.data / "build" / "build.duckdb" if build else deployment.warehouse
    con = duckdb.connect(str(path), read_only=True)
    try:
        table = "marts.provider_status" if build else "provider_status"
        cursor = con.execute(f"SELECT * FROM {table}")
        names = [c[0] for c in cursor.description]
        return {(r[0], r[3]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
    finally:
        con.close()


EXPECTED = {
    # (provider, dataset): (data_status, missing_months, size, ownership, severity)
    ("city", "beats"): ("not_scheduled", 0, "not_enough_history", "no_steward", "warn"),
    ("city", "beat_boundaries"): ("not_scheduled", 0, "not_enough_history", "no_steward", "warn"),
    ("city", "tracts"): ("not_scheduled", 0, "not_enough_history", "no_steward", "warn"),
    ("hospital", "ed_visits"): ("far_behind", 0, "usual", "named", "error"),
    ("police", "calls"): ("behind", 0, "usual", "named", "warn"),
    ("police", "incidents"): ("current", 1, "usual", "named", "error"),
    ("probation", "caseload"): ("no_data", 0, "never_delivered", "named", "error"),
    ("probation", "events"): ("current", 0, "shrunken", "named", "warn"),
    ("school", "attendance"): ("current", 0, "usual", "named", "ok"),
    ("school", "schools"): ("not_scheduled", 0, "not_enough_history", "named", "ok"),
    ("survey", "responses"): ("current", 0, "usual", "no_owner_or_steward", "error"),
}


def test_each_problem_gets_its_exact_status(troubled: Deployment) -> None:
    rows = scorecard(troubled)
    for key, (data, missing, size, ownership, severity) in EXPECTED.items():
        row = rows[key]
        assert (
            row["data_status"],
            row["missing_months"],
            row["delivery_size_status"],
            row["ownership_status"],
            row["severity"],
        ) == (data, missing, size, ownership, severity), key
        assert str(row["as_of"]) == AS_OF
    # Loaded after the frozen date: every delivered dataset is on time, the roster never came.
    assert rows[("probation", "caseload")]["freshness_status"] == "never_delivered"
    assert rows[("police", "calls")]["freshness_status"] == "on_time"
    assert rows[("city", "beats")]["freshness_status"] == "not_scheduled"
    assert str(rows[("hospital", "ed_visits")]["data_through"]) == "2025-09-30"
    assert str(rows[("police", "calls")]["data_through"]) == "2025-11-30"
    assert rows[("police", "incidents")]["missing_month_list"] == "2025-06"
    assert rows[("school", "attendance")]["missing_month_list"] is None  # July is expected
    assert rows[("probation", "events")]["delivery_size_ratio"] < 0.3
    assert rows[("survey", "responses")]["data_owner"] is None
    assert rows[("survey", "responses")]["issues"] == "no data owner or steward named"
    assert rows[("police", "incidents")]["issues"] == "1 month(s) missing: 2025-06"


def test_status_prints_the_scorecard_and_fails_on_errors(troubled: Deployment) -> None:
    result = troubled.cs360("status", check=False)
    assert result.returncode == 3  # errors (1 is for warnings only)
    lines = result.stdout.splitlines()
    assert lines[0] == f"Delivery status as of {AS_OF} (the last refresh):"
    table = lines[2 : lines.index("")]
    rows = {tuple(line.split()[:2]): line for line in table}
    assert set(rows) == {*EXPECTED, ("city", "population")}
    assert " far_behind " in rows[("hospital", "ed_visits")]
    assert " never_delivered " in rows[("probation", "caseload")]
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("ERROR"))
    assert errors == [
        "ERROR: hospital/ed_visits: data far behind: through 2025-09-30; "
        "contact Luis Ferreira (Surveillance Epidemiologist).",
        "ERROR: police/incidents: 1 month(s) missing: 2025-06; contact Sam Ortiz (Crime Analyst).",
        "ERROR: probation/caseload: never delivered; contact Grace Kim (Research Analyst).",
        "ERROR: survey/responses: no data owner or steward named; contact nobody named.",
    ]
    warnings = sorted(line for line in result.stderr.splitlines() if line.startswith("WARNING"))
    assert warnings == [
        "WARNING: city/beat_boundaries: no steward named; contact Priya Raman (GIS Manager).",
        "WARNING: city/beats: no steward named; contact Priya Raman (GIS Manager).",
        "WARNING: city/population: no steward named; contact Priya Raman (GIS Manager).",
        "WARNING: city/tracts: no steward named; contact Priya Raman (GIS Manager).",
        "WARNING: police/calls: data behind: through 2025-11-30; contact Sam Ortiz (Crime "
        "Analyst).",
        "WARNING: probation/events: shrunken delivery: 16.0% of the usual rows per month; "
        "contact Grace Kim (Research Analyst).",
    ]
    care = lines[lines.index("Metrics to read with care:") + 1 :]
    stale = {line.split(":")[0].strip() for line in care}
    assert stale == {
        "shots_fired_calls", "priority1_response_time", "priority1_within_10_minutes",
        "firearm_injury_ed_visits", "firearm_injury_ed_visit_rate",
        "youth_assault_firearm_injuries", "juvenile_probation_caseload",
    }  # fmt: skip
    assert max(len(line) for line in lines) <= 100

    # One provider: its datasets, the metrics it makes stale, its problems and its exit code.
    only_police = troubled.cs360("status", "--provider", "police", check=False)
    assert only_police.returncode == 3
    tables = only_police.stdout.split("\n\n")
    assert {tuple(line.split()[:2]) for line in tables[0].splitlines()[2:]} == {
        ("police", "calls"), ("police", "incidents"),
    }  # fmt: skip
    assert tables[1].splitlines() == [
        "Metrics to read with care:",
        "  shots_fired_calls: stale (police/calls on_time, data behind)",
        "  priority1_response_time: stale (police/calls on_time, data behind)",
        "  priority1_within_10_minutes: stale (police/calls on_time, data behind)",
    ]
    assert [line.split(":")[:2] for line in only_police.stderr.splitlines()] == [
        ["ERROR", " police/incidents"], ["WARNING", " police/calls"],
    ]  # fmt: skip
    only_school = troubled.cs360("status", "--provider", "school")
    assert (only_school.returncode, only_school.stderr) == (0, "")
    assert "Metrics to read with care" not in only_school.stdout


def test_catalog_marks_metrics_with_late_sources_stale(troubled: Deployment) -> None:
    rows = {
        r[0]: r[1:]
        for r in troubled.query(
            "SELECT metric_id, freshness_status, stale_sources, data_through, latest_period, "
            "owner_status FROM metric_catalog WHERE audience = 'pst'"
        )
    }
    assert rows["firearm_injury_ed_visits"][0] == "stale"
    assert rows["firearm_injury_ed_visits"][1] == ("hospital/ed_visits on_time, data far_behind")
    assert str(rows["firearm_injury_ed_visits"][2]) == "2025-09-30"
    # Its latest complete period, if the privacy rules show one at all at this scale (only
    # its years here, neither of them whole), ends before the data stops.
    latest = rows["firearm_injury_ed_visits"][3]
    assert latest is None or latest < dt.date(2025, 10, 1)
    assert rows["juvenile_probation_caseload"][:2] == (
        "stale",
        "probation/caseload never_delivered, data no_data",
    )
    assert rows["juvenile_probation_caseload"][3] is None
    assert rows["shots_fired_calls"][:2] == ("stale", "police/calls on_time, data behind")
    # A coverage gap or a missing owner of the data is not lateness.
    for metric in (
        "violent_firearm_crimes",
        "satisfaction_with_police",
        "chronic_absenteeism_rate",
    ):
        assert rows[metric][:2] == ("fresh", None), metric
    assert {r[4] for r in rows.values()} == {"owned"}


def test_undelivered_months_are_missing_never_zero(troubled: Deployment) -> None:
    def status(metric: str, level: str, start: str) -> tuple:
        return troubled.query(
            f"""
            SELECT status, value, numerator, denominator FROM metric_values
            WHERE audience = 'pst' AND metric_id = '{metric}' AND geo_level = 'city'
              AND breakdown = 'total' AND period_level = '{level}'
              AND period_start = DATE '{start}'
            """
        )[0]

    missing = ("missing", None, None, None)
    # School: no July file; July is missing, the summer quarter is complete without it.
    assert status("out_of_school_suspensions", "month", "2025-07-01") == missing
    assert status("out_of_school_suspensions", "month", "2025-08-01")[0] == "published"
    assert status("out_of_school_suspensions", "quarter", "2025-07-01")[0] == "published"
    # Police incidents: June was never delivered, so June's quarter and year are incomplete.
    assert status("violent_firearm_crimes", "quarter", "2025-04-01") == missing
    assert status("violent_firearm_crimes", "year", "2025-01-01") == missing
    assert status("violent_firearm_crimes", "quarter", "2025-01-01")[0] != "missing"
    # Hospital held back October to December: 2025 is incomplete (this small city's ED visits
    # are published by year only), and nothing after September shows a number.
    assert status("firearm_injury_ed_visits", "year", "2025-01-01") == missing
    assert status("firearm_injury_ed_visit_rate", "year", "2025-01-01") == missing
    shown = troubled.query(
        "SELECT count(*) FROM metric_values WHERE metric_id LIKE 'firearm_injury%' "
        "AND period_start >= DATE '2025-10-01' AND status <> 'missing'"
    )
    assert shown == [(0,)]
    # No missing row ever carries a number.
    leaks = troubled.query(
        "SELECT count(*) FROM metric_values WHERE status = 'missing' AND value IS NOT NULL"
    )
    assert leaks == [(0,)]


def test_dagster_checks_report_each_problem(troubled: Deployment) -> None:
    def raw(dataset: str, check: str) -> tuple[bool, str, str]:
        return check_result(troubled, ["raw", *dataset.split("/")], check)

    assert raw("hospital/ed_visits", "data_current") == (False, "ERROR", "far_behind")
    assert raw("police/calls", "data_current") == (False, "WARN", "behind")
    assert raw("police/calls", "delivered_on_time") == (True, "WARN", "on_time")
    assert raw("police/incidents", "no_missing_months") == (False, "ERROR", "1")
    assert raw("probation/caseload", "delivered_on_time") == (False, "ERROR", "never_delivered")
    assert raw("probation/events", "delivery_size_usual") == (False, "WARN", "shrunken")
    assert raw("survey/responses", "owner_and_steward_named") == (
        False,
        "ERROR",
        "no_owner_or_steward",
    )
    assert raw("city/beats", "owner_and_steward_named") == (False, "WARN", "no_steward")
    assert raw("school/attendance", "no_missing_months") == (True, "WARN", "0")
    owned = check_result(troubled, ["marts", "metric_catalog"], "metrics_owned")
    assert owned[0] is True
    fresh = check_result(troubled, ["marts", "metric_catalog"], "metric_sources_fresh")
    assert fresh[:2] == (False, "WARN") and "juvenile_probation_caseload" in fresh[2]


@pytest.fixture(scope="module")
def later(troubled: Deployment) -> tuple[Deployment, str]:
    """The same deployment refreshed again, LATER_DAYS after the files were loaded."""
    loaded = max(r["last_delivered_on"] for r in scorecard(troubled).values() if r["files_loaded"])
    as_of = (loaded + dt.timedelta(days=LATER_DAYS)).isoformat()
    later = replace(troubled, as_of=as_of)
    later.cs360("refresh", "--log-level", "WARNING")
    return later, as_of


LATER = {
    ("police", "calls"): "overdue",  # 72 > 70
    ("police", "incidents"): "overdue",
    ("hospital", "ed_visits"): "late",  # 45 < 72 <= 75
    ("school", "attendance"): "late",  # 65 < 72 <= 100
    ("probation", "events"): "overdue",
    ("probation", "caseload"): "never_delivered",
    ("survey", "responses"): "overdue",
    ("city", "beats"): "not_scheduled",
    ("school", "schools"): "not_scheduled",
}


def test_late_and_overdue_deliveries(later: tuple[Deployment, str]) -> None:
    deployment, as_of = later
    rows = scorecard(deployment)
    assert {key: rows[key]["freshness_status"] for key in LATER} == LATER
    assert rows[("police", "calls")]["days_since_delivery"] >= LATER_DAYS
    assert "overdue: last delivery" in rows[("police", "calls")]["issues"]
    assert str(rows[("police", "calls")]["as_of"]) == as_of
    for key in LATER:
        check = check_result(deployment, ["raw", *key], "delivered_on_time")
        assert check[2] == LATER[key], key


def test_dbt_source_freshness_agrees_with_the_scorecard(
    later: tuple[Deployment, str], tmp_path: Path
) -> None:
    deployment, as_of = later
    result = subprocess.run(
        [
            str(BIN / "cs360-dbt"), "source", "freshness", "--vars", json.dumps({"as_of": as_of}),
            "--target-path", str(tmp_path / "target"),
        ],
        cwd=deployment.dbt_dir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    sources = json.loads((tmp_path / "target" / "sources.json").read_text())
    verdicts = {
        tuple(r["unique_id"].rsplit(".", 1)[-1].split("__")): r["status"]
        for r in sources["results"]
    }
    dbt_word = {"on_time": "pass", "late": "warn", "overdue": "error", "never_delivered": "error"}
    rows = scorecard(deployment)
    expected = {
        key: dbt_word[row["freshness_status"]]
        for key, row in rows.items()
        if row["freshness_status"] != "not_scheduled"
    }
    assert verdicts == expected, result.stdout
    assert result.returncode == 1  # dbt exits non-zero when a source is past error_after
