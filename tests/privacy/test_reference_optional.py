"""Reference data is needed only where a metric reads it: real refreshes of a demo city.

A city without population estimates still publishes its counts (rates are missing and the run
log says why); a city without the tract crosswalk cannot place the datasets that arrive by
residence tract, and the step that would place them says so in words instead of failing
inside DuckDB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from cs360_pipeline.demo import generate
from tests.conftest import DELIVERED_FILES, Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=0.5)  # of real refreshes: scheduled first

SEED = 23
K = 10  # the policy's smallest publishable count for the police counts checked here


def deliver_without(root: Path, missing: str) -> Deployment:
    """A demo deployment of six months whose city inbox lacks one reference file."""
    deployment = new_deployment(root)
    generate(deployment.sources, seed=SEED, scale=0.05, end_month="2025-06", months=6)
    (deployment.sources / "city" / "inbox" / missing).unlink()
    for inbox in deployment.sources.glob("*/inbox"):
        shutil.copytree(inbox, deployment.delivered / inbox.parent.name)
    return deployment


def run_messages(deployment: Deployment) -> list[str]:
    """Every message of the latest Dagster run of the deployment, as its run log shows them."""
    instance = dg.DagsterInstance.from_config(str(deployment.root / "dagster_home"))
    try:
        run = instance.get_runs(limit=1)[0]
        return [e.user_message for e in instance.all_logs(run.run_id) if e.user_message]
    finally:
        instance.dispose()


def delivered_count(deployment: Deployment, sql: str) -> list[tuple]:
    """Query the delivered CSV files directly: ``{calls}``-style placeholders become globs."""
    globs = {
        name: f"read_csv('{deployment.delivered}/{path}', all_varchar = true)"
        for name, path in DELIVERED_FILES.items()
        if name != "population"
    }
    con = duckdb.connect()
    try:
        return con.execute(sql.format(**globs)).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def without_population(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = deliver_without(tmp_path_factory.mktemp("no_population"), "population.csv")
    result = deployment.cs360("refresh", check=False)
    assert result.returncode == 0, f"the refresh failed:\n{result.stdout}\n{result.stderr}"
    return deployment


def test_shared_population_is_empty_with_its_columns(without_population: Deployment) -> None:
    con = duckdb.connect(str(without_population.data / "build" / "build.duckdb"), read_only=True)
    try:
        columns = con.execute("DESCRIBE shared.population").fetchall()
        rows = con.execute("SELECT count(*) FROM shared.population").fetchall()[0][0]
    finally:
        con.close()
    assert [c[0] for c in columns] == ["year", "geo_level", "geo_code", "breakdown", "population"]
    assert rows == 0


def test_rate_metrics_are_missing_and_the_log_says_why(without_population: Deployment) -> None:
    rates = {
        m: (statuses, values)
        for m, statuses, values in without_population.query(
            "SELECT metric_id, list_distinct(list(status)), count(value) FROM metric_values "
            "WHERE metric_id IN (SELECT metric_id FROM metric_catalog "
            "                    WHERE unit = 'rate_per_1000') GROUP BY ALL"
        )
    }
    assert rates, "the demo catalog has rate metrics: each should have missing rows"
    for metric, (statuses, values) in rates.items():
        assert statuses == ["missing"] and values == 0, (metric, statuses, values)
    lines = [m for m in run_messages(without_population) if "population (city/population)" in m]
    assert len(lines) == 1, lines
    assert "not delivered" in lines[0]
    for metric in rates:
        assert metric in lines[0]


def test_count_metrics_publish_as_delivered(without_population: Deployment) -> None:
    published = without_population.query(
        "SELECT count(*) FROM metric_values AS v JOIN metric_catalog AS c "
        "USING (audience, metric_id) WHERE c.unit = 'count' AND v.status = 'published'"
    )[0][0]
    assert published > 0
    expected = {
        str(month): n
        for month, n in delivered_count(
            without_population,
            """
            SELECT CAST(date_trunc('month', CAST(received_at AS TIMESTAMP)) AS DATE), count(*)
            FROM {calls} AS c JOIN {beats} AS b USING (beat)
            WHERE call_type_code = 'SHOTS' GROUP BY ALL
            """,
        )
    }
    actual = {
        str(month): (value, numerator, status)
        for month, value, numerator, status in without_population.query(
            "SELECT period_start, value, numerator, status FROM metric_values "
            "WHERE audience = 'pst' AND metric_id = 'shots_fired_calls' "
            "AND period_level = 'month' AND geo_level = 'city' AND breakdown = 'total'"
        )
    }
    assert expected and set(expected) <= set(actual), (expected, actual)
    shown = 0
    for month, (value, numerator, status) in actual.items():
        n = expected.get(month, 0)
        if status == "suppressed":
            assert value is None and numerator is None and n > 0, (month, n)
        else:
            assert status == "published" and value == n == numerator, (month, n, value)
            assert not 0 < n < K, (month, n)
            shown += n > 0
    assert shown, "no month published: the comparison would check nothing"


def test_without_tracts_the_tract_placed_cells_say_what_is_missing(tmp_path: Path) -> None:
    deployment = deliver_without(tmp_path, "tracts.csv")
    result = deployment.cs360("refresh", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CatalogException" not in out
    for dataset in ("hospital.ed_visits", "probation.events", "survey.responses"):
        assert f"{dataset} is placed by" in out, dataset
        assert "through city.tracts, which has not been delivered" in out
    failed = out.split("Steps failed: [", 1)[1].split("]", 1)[0]
    assert set(failed.replace("'", "").split(", ")) == {
        "shared__cells_hospital",
        "shared__cells_probation",
        "shared__cells_survey",
    }
    # The providers placed by beat (police) or by their own school list still get their cells.
    con = duckdb.connect(str(deployment.data / "build" / "build.duckdb"), read_only=True)
    try:
        for provider in ("police", "school"):
            cells = con.execute(f"SELECT count(*) FROM shared.cells_{provider}").fetchall()[0][0]
            assert cells > 0, provider
    finally:
        con.close()
