"""An empty or broken release is never published; a release with gaps still exports and briefs.

The completeness gate runs on copies of the demo's real build database, with marts emptied or
thinned by DuckDB as a lost delivery would leave them, and compares them with the demo's live
warehouse. The exports, the PST workbook and the brief are written by the real code from a copy
of the demo's warehouse in which one CS360 dimension and one more metric have no rows left; the
files are read back with openpyxl, DuckDB and as text.
"""

from __future__ import annotations

import csv
import re
import shutil
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook

from cs360_pipeline.publish.exports import NO_DIMENSION_DATA, NO_METRIC_DATA, export_audience
from cs360_pipeline.publish.gate import Completeness, completeness
from cs360_pipeline.report.brief import write_brief
from cs360_pipeline.settings import Paths
from tests.conftest import AUDIENCES, READERS, Deployment

POLICE_METRICS = "SELECT metric_id FROM shared.metric_definitions WHERE providers LIKE '%police%'"


def demo_build(demo: Deployment) -> Path:
    return Paths(data_dir=demo.data, sources_dir=demo.sources).build_db


def gate_on_copy(
    demo: Deployment, tmp_path: Path, *changes: str, live: Path | None = None
) -> Completeness:
    """Copy the demo's build database, apply ``changes``, and run the gate on it read-only."""
    build = tmp_path / "build.duckdb"
    shutil.copy(demo_build(demo), build)
    with closing(duckdb.connect(str(build))) as con:
        for sql in changes:
            con.execute(sql)
        con.execute("CHECKPOINT")
    with closing(duckdb.connect(str(build), read_only=True)) as con:
        return completeness(con, live)


def live_copy(demo: Deployment, tmp_path: Path) -> Path:
    target = tmp_path / "warehouse.duckdb"
    shutil.copy(demo.warehouse, target)
    return target


def live_release(demo: Deployment) -> str:
    return demo.query("SELECT max(release_id) FROM metric_values")[0][0]


# --- The completeness gate -----------------------------------------------------------------


def test_gate_passes_the_demo_build(demo: Deployment, tmp_path: Path) -> None:
    result = gate_on_copy(demo, tmp_path, live=live_copy(demo, tmp_path))
    assert result.passed, result.text()
    assert result.shown_values > 0 and result.live_release == live_release(demo)
    assert result.problems() == []
    assert "published values; every metric whose sources delivered has rows" in result.text()


def test_gate_fails_a_build_with_empty_metric_values(demo: Deployment, tmp_path: Path) -> None:
    result = gate_on_copy(
        demo, tmp_path, "DELETE FROM marts.metric_values", live=live_copy(demo, tmp_path)
    )
    assert not result.passed
    assert result.shown_values == 0
    assert result.text().startswith("metric_values holds no published value at all; ")
    assert re.search(r"; and \d+ more$", result.text())  # the description is cut short
    problems = result.problems()
    assert (
        "metric violent_firearm_crimes has no row in metric_values, although "
        "police.incidents delivered loaded files"
    ) in problems
    assert (
        "metric violent_firearm_crime_rate has no row in metric_values, although "
        "city.population, police.incidents delivered loaded files"
    ) in problems
    assert {s.provider for s in result.shrunken} == {
        "hospital", "police", "probation", "school", "survey",
    }  # fmt: skip
    police = next(s for s in result.shrunken if s.provider == "police")
    assert police.rows == 0 and police.live_rows > 0
    assert f"in the live release {live_release(demo)} (under 50%)" in police.text(
        live_release(demo)
    )


def test_gate_fails_an_empty_first_release_too(demo: Deployment, tmp_path: Path) -> None:
    """Before any release is live there is nothing to compare with; empty is still refused."""
    result = gate_on_copy(demo, tmp_path, "DELETE FROM marts.metric_values")
    assert not result.passed and result.live_release is None and result.shrunken == []
    assert "metric_values holds no published value at all" in result.problems()


def test_gate_names_a_delivered_metric_without_rows(demo: Deployment, tmp_path: Path) -> None:
    result = gate_on_copy(
        demo,
        tmp_path,
        "DELETE FROM marts.metric_values WHERE metric_id = 'trust_in_police'",
        live=live_copy(demo, tmp_path),
    )
    assert not result.passed and result.shown_values > 0
    assert result.metrics_without_rows == {"trust_in_police": ["survey.responses"]}
    assert result.shrunken == []  # the survey's three other metrics still hold their cells
    assert result.text() == (
        "metric trust_in_police has no row in metric_values, although "
        "survey.responses delivered loaded files"
    )


def test_gate_passes_a_metric_whose_rows_all_say_missing(demo: Deployment, tmp_path: Path) -> None:
    """Its cells reached the marts; its periods are not fully delivered yet, as when another
    partner is a month ahead. Data that lags is a freshness matter, not a broken release."""
    result = gate_on_copy(
        demo,
        tmp_path,
        "UPDATE marts.metric_values SET status = 'missing', value = NULL, numerator = NULL, "
        "denominator = NULL WHERE metric_id = 'shots_fired_calls'",
        live=live_copy(demo, tmp_path),
    )
    assert result.passed, result.text()


def test_gate_passes_metrics_whose_sources_never_delivered(
    demo: Deployment, tmp_path: Path
) -> None:
    """A partner not delivering yet is a freshness problem, not a broken release."""
    result = gate_on_copy(
        demo,
        tmp_path,
        "DELETE FROM marts.metric_values WHERE metric_id LIKE 'probation%' "
        "OR metric_id IN ('technical_violation_share', 'juvenile_probation_caseload')",
        "DELETE FROM shared.deliveries WHERE provider = 'probation'",
        live=live_copy(demo, tmp_path),
    )
    assert result.passed, result.text()


def test_gate_fails_a_delivering_provider_that_lost_most_cells(
    demo: Deployment, tmp_path: Path
) -> None:
    """As when a delivery's beat codes stop matching the geography: every police metric keeps
    its city-wide cells, but the districts and beats are gone."""
    result = gate_on_copy(
        demo,
        tmp_path,
        f"DELETE FROM marts.metric_values WHERE metric_id IN ({POLICE_METRICS}) "
        "AND geo_level <> 'city'",
        live=live_copy(demo, tmp_path),
    )
    assert not result.passed and result.metrics_without_rows == {}
    [police] = result.shrunken
    assert police.provider == "police" and 0 < police.rows < police.live_rows / 2
    text = result.text()
    assert text.startswith("provider police still delivers, but this build has ")
    assert (
        f"rows in metric_values for its metrics against {police.live_rows:,} in the live " in text
    )
    assert re.search(r"priority1_response_time [\d,]+ -> [\d,]+", text)


def test_gate_allows_a_modest_loss(demo: Deployment, tmp_path: Path) -> None:
    """A correction that withdraws some months is not a broken release."""
    result = gate_on_copy(
        demo,
        tmp_path,
        f"DELETE FROM marts.metric_values WHERE metric_id IN ({POLICE_METRICS}) "
        "AND period_start >= DATE '2025-07-01'",
        live=live_copy(demo, tmp_path),
    )
    assert result.passed, result.text()


# --- Exports and briefs of a release with an empty dimension and an empty metric ---------------


@dataclass(frozen=True)
class Gaps:
    paths: Paths
    release_id: str
    dimension: str  # every metric of it has no row left
    dimension_metrics: list[str]
    metric: str  # of another dimension, which keeps its other metrics

    def folder(self, audience: str) -> Path:
        return self.paths.exports_dir / self.release_id / audience

    @property
    def workbook(self) -> Path:
        return self.folder("pst") / f"cs360_{self.release_id}_pst.xlsx"


@pytest.fixture(scope="module")
def gaps(demo: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Gaps:
    """The demo's warehouse without one dimension's rows and one more metric's, written out."""
    data = tmp_path_factory.mktemp("gaps") / "data"
    data.mkdir()
    warehouse = data / "warehouse.duckdb"
    shutil.copy(demo.warehouse, warehouse)
    with closing(duckdb.connect(str(warehouse))) as con:
        [(dimension,)] = con.execute(
            "SELECT dimension FROM metric_catalog WHERE audience = 'public' "
            "GROUP BY dimension ORDER BY count(*), dimension LIMIT 1"
        ).fetchall()
        ids = [
            m
            for (m,) in con.execute(
                "SELECT DISTINCT metric_id FROM metric_catalog WHERE dimension = ? ORDER BY 1",
                [dimension],
            ).fetchall()
        ]
        [(metric,)] = con.execute(
            "SELECT metric_id FROM metric_catalog WHERE audience = 'public' AND dimension <> ? "
            "ORDER BY display_order LIMIT 1",
            [dimension],
        ).fetchall()
        con.execute("DELETE FROM metric_values WHERE list_contains(?, metric_id)", [[*ids, metric]])
        [(release_id,)] = con.execute("SELECT max(release_id) FROM metric_values").fetchall()
        con.execute("CHECKPOINT")
    gaps = Gaps(Paths(data_dir=data, sources_dir=demo.sources), release_id, dimension, ids, metric)
    for audience in AUDIENCES:
        export_audience(gaps.paths, release_id, READERS[audience])
        write_brief(gaps.paths, release_id, READERS[audience])
    return gaps


def test_workbook_opens_and_says_the_dimension_has_no_data(gaps: Gaps) -> None:
    wb = load_workbook(gaps.workbook)
    dimension_sheets = wb.worksheets[1:-1]  # between the notes and the provider status
    [ws] = [w for w in dimension_sheets if w.cell(2, 1).value == NO_DIMENSION_DATA]
    assert gaps.dimension.startswith(ws.title)  # a long title is clipped to 31 characters
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:2] == ("Metric", "metric_id")
    assert sorted(r[1] for r in rows[2:]) == gaps.dimension_metrics
    assert ws.auto_filter.ref is None  # no filter over a table without rows
    # The other dimensions keep their rows, the emptied metric aside.
    others = [w for w in dimension_sheets if w is not ws]
    assert others and all(w.max_row > 2 for w in others)
    ids = {r[1] for w in others for r in w.iter_rows(min_row=2, values_only=True)}
    assert gaps.metric not in ids
    notes = [str(r[0]) for r in wb["Notes"].iter_rows(values_only=True) if r[0]]
    assert "Metrics with no data published yet:" in notes
    assert any(f"({gaps.metric}): {NO_METRIC_DATA}" in line for line in notes)
    for metric_id in gaps.dimension_metrics:
        assert any(f"({metric_id}): {NO_METRIC_DATA}" in line for line in notes), metric_id


@pytest.mark.parametrize("audience", AUDIENCES)
def test_csv_and_parquet_are_written_without_the_empty_metrics(gaps: Gaps, audience: str) -> None:
    folder = gaps.folder(audience)
    empty = {*gaps.dimension_metrics, gaps.metric}
    with (folder / "metric_values.csv").open(newline="", encoding="utf-8") as f:
        ids = {r["metric_id"] for r in csv.DictReader(f)}
    assert ids and not ids & empty
    with closing(duckdb.connect()) as con:
        parquet = folder / "metric_values.parquet"
        [(n,)] = con.execute(
            f"SELECT count(*) FROM read_parquet('{parquet}') WHERE list_contains(?, metric_id)",
            [sorted(empty)],
        ).fetchall()
        catalog = folder / "metric_catalog.parquet"
        query = f"SELECT metric_id FROM read_parquet('{catalog}')"
        listed = {m for (m,) in con.execute(query).fetchall()}
    assert n == 0 and gaps.metric in listed  # still described, with no value
    readme = (folder / "README.txt").read_text(encoding="utf-8")
    assert "no row in metric_values has no data published yet" in " ".join(readme.split())


def audience_metrics(gaps: Gaps, audience: str) -> list[str]:
    """The emptied metrics the audience's catalog lists (some metrics are for the PST only)."""
    with closing(duckdb.connect(str(gaps.paths.warehouse_db), read_only=True)) as con:
        rows = con.execute(
            "SELECT metric_id FROM metric_catalog "
            "WHERE audience = ? AND list_contains(?, metric_id)",
            [audience, [*gaps.dimension_metrics, gaps.metric]],
        ).fetchall()
    assert rows
    return [m for (m,) in rows]


@pytest.mark.parametrize("audience", AUDIENCES)
def test_brief_says_the_dimension_and_the_metric_have_no_data(gaps: Gaps, audience: str) -> None:
    page = (gaps.folder(audience) / "brief.html").read_text(encoding="utf-8")
    sections = re.findall(r'<section class="dimension">(.*?)</section>', page, re.S)
    empty = [s for s in sections if NO_DIMENSION_DATA in s]
    assert len(empty) == 1 and len(sections) > 1
    for metric_id in audience_metrics(gaps, audience):
        card = re.search(
            rf'<article class="card no-data" id="m-{metric_id}">(.*?)</article>', page, re.S
        )
        assert card, metric_id
        assert NO_METRIC_DATA in card.group(1) and "<svg" not in card.group(1)
    # The metrics that kept their data still have their charts.
    assert page.count('<svg class="trend"') > 0
    assert page.count('<article class="card" id="m-') == page.count('<svg class="trend"')
