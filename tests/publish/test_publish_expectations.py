"""Great Expectations over the published tables, run for real (GX is off in the other tests).

The demo's warehouse must pass; a copy broken in four ways must fail exactly those expectations.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.publish import expectations
from cs360_pipeline.settings import Paths
from tests.conftest import Deployment


def copy_of(demo: Deployment, root: Path) -> Paths:
    data = root / "data"
    data.mkdir(parents=True)
    shutil.copy(demo.warehouse, data / "warehouse.duckdb")
    return Paths(data_dir=data, sources_dir=demo.sources)


@pytest.fixture(scope="module")
def release_id(demo: Deployment) -> str:
    return demo.query("SELECT max(release_id) FROM metric_values")[0][0]


def test_published_tables_meet_expectations_and_data_docs_open_offline(
    demo: Deployment, release_id: str, tmp_path: Path
) -> None:
    paths = copy_of(demo, tmp_path)
    result = expectations.validate(paths, release_id, "public")

    assert result.passed, [o for o in result.failures]
    tables = {o.table for o in result.outcomes}
    assert {"metric_values", "suppressed_cells", "period_spine", "metric_catalog"} <= tables
    assert len(result.outcomes) >= 25
    assert all(o.checked is None or o.checked >= 0 for o in result.outcomes)

    folder = paths.exports_dir / release_id / "public"
    docs = folder / "data_docs"
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "passed" in index and release_id in index
    pages = list(docs.rglob("*.html"))
    assert len(pages) > len(tables)  # the index, a suite page and a result page per table
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"<script\b", text, re.I), page
        assert not re.search(r"""(src|href)="https?://[^"]*\.(js|css|png)""", text), page
    # Every table's validation result is linked from the index.
    for table in tables:
        assert f"validations/{table}/" in index
    saved = expectations.Validation.load(folder / expectations.SUMMARY_FILE)
    assert saved is not None and saved.summary() == result.summary()


def test_expectations_catch_a_broken_release(
    demo: Deployment, release_id: str, tmp_path: Path
) -> None:
    paths = copy_of(demo, tmp_path)
    con = duckdb.connect(str(paths.warehouse_db))
    try:
        # 1. A value on a suppressed cell.
        con.execute(
            """
            UPDATE metric_values SET value = 3 WHERE rowid = (
                SELECT min(rowid) FROM metric_values
                WHERE audience = 'pst' AND status = 'suppressed')
            """
        )
        # 2. A duplicated cell.
        con.execute(
            """
            INSERT INTO metric_values SELECT * FROM metric_values WHERE rowid = (
                SELECT min(rowid) FROM metric_values WHERE audience = 'pst'
                AND status = 'published')
            """
        )
        # 3. A hole in the spine: one district's month disappears.
        con.execute(
            """
            DELETE FROM metric_values WHERE rowid = (
                SELECT min(rowid) FROM metric_values WHERE audience = 'pst'
                AND geo_level = 'district' AND period_level = 'month')
            """
        )
        # 4. A percent out of range.
        con.execute(
            """
            UPDATE metric_values SET value = 140 WHERE rowid = (
                SELECT min(v.rowid) FROM metric_values v
                JOIN metric_catalog c USING (audience, metric_id)
                WHERE v.audience = 'pst' AND c.unit = 'percent' AND v.status = 'published')
            """
        )
    finally:
        con.close()

    result = expectations.validate(paths, release_id, "pst")

    assert not result.passed
    failed = {(o.table, o.expectation, o.column) for o in result.failures}
    assert failed == {
        ("suppressed_cells", "expect_column_values_to_be_null", "value"),
        (
            "metric_values",
            "expect_compound_columns_to_be_unique",
            "metric_id, period_level, period_start, geo_level, geo_code, breakdown",
        ),
        ("period_spine", "expect_column_values_to_be_in_set", "present"),
        ("percent_values", "expect_column_values_to_be_between", "value"),
    }
    by_table = {o.table: o for o in result.failures}
    assert by_table["suppressed_cells"].unexpected == 1
    assert by_table["metric_values"].unexpected == 2  # both copies of the duplicated cell
    assert by_table["period_spine"].unexpected == 1
    index = (paths.exports_dir / release_id / "pst" / "data_docs" / "index.html").read_text()
    assert "FAILED" in index and index.count('class="failed"') == 4
