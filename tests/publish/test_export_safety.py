"""Exports and briefs of a release whose names are hostile: nothing opens as a formula or markup.
And the analyst's connection: a new one sees the release swapped in, whatever else is open.

The demo's published warehouse is copied and its names (beats, districts, a dimension, metric
titles, partners, even column names) are set to strings a spreadsheet would run or a browser
would parse. The real export and brief code then writes that release, and the files are read
back: the workbook with openpyxl (formulas not evaluated) and as raw XML, the CSVs with Python's
csv module, the Parquet with DuckDB, the brief as text.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from cs360_pipeline.publish.cell_safety import (
    CSV_GUARD,
    FORMULA_START,
    PLAIN_NUMBER,
    could_run,
    csv_text,
    csv_text_macro,
)
from cs360_pipeline.publish.exports import export_audience, sheet_title
from cs360_pipeline.publish.reader import open_warehouse
from cs360_pipeline.report.brief import write_brief
from cs360_pipeline.settings import Paths
from tests.conftest import AUDIENCES, READERS, Deployment

# What a spreadsheet runs: the classics, a hidden formula behind a tab or carriage return, one
# that needs CSV quoting (newline, comma, quotes), an error literal and a control character.
HOSTILE = (
    "=cmd|' /C calc'!A0",
    '+HYPERLINK("http://x","y")',
    "@SUM(1+1)",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    '=1+1\n,"quoted", too',
    "#N/A",
)
BELL = "bell\x07=1"  # XML cannot hold \x07: the workbook shows U+FFFD in its place
MARKUP = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
HOSTILE_DIMENSION = "=cmd|' /C calc'!A0 " + MARKUP
HOSTILE_TITLE = '+HYPERLINK("http://x","y") ' + MARKUP
HOSTILE_ORGANISATION = "@SUM(1+1) " + MARKUP
HOSTILE_BREAKDOWN = "-2+3"
HOSTILE_COLUMN = "=issues"  # a column name, for the header cells
NEGATIVE = -1.5


@dataclass(frozen=True)
class HostileRelease:
    paths: Paths
    release_id: str
    beat_names: dict[str, str]  # geo_code -> the true (hostile) name

    def folder(self, audience: str) -> Path:
        return self.paths.exports_dir / self.release_id / audience

    def query(self, sql: str) -> list[tuple]:
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH '{self.paths.warehouse_db}' AS wh (READ_ONLY)")
            con.execute("USE wh")
            return con.execute(sql).fetchall()
        finally:
            con.close()


def make_hostile(warehouse: Path) -> dict[str, str]:
    """Rewrite the names of a copied warehouse in place; returns the beats' new names."""
    con = duckdb.connect(str(warehouse))
    try:
        codes = [
            c
            for (c,) in con.execute(
                "SELECT geo_code FROM geography WHERE geo_level IN ('beat', 'district') "
                "ORDER BY geo_level, geo_code"
            ).fetchall()
        ]
        names = {code: (*HOSTILE, BELL)[i % (len(HOSTILE) + 1)] for i, code in enumerate(codes)}
        con.executemany(
            "UPDATE geography SET name = ? WHERE geo_code = ? AND geo_level <> 'city'",
            [[name, code] for code, name in names.items()],
        )
        first = con.execute(
            "SELECT dimension FROM metric_catalog ORDER BY display_order LIMIT 1"
        ).fetchall()[0][0]
        con.execute(
            "UPDATE metric_catalog SET dimension = ? WHERE dimension = ?",
            [HOSTILE_DIMENSION, first],
        )
        con.execute(
            "UPDATE metric_catalog SET title = ?, owner = ? WHERE metric_id = "
            "(SELECT min(metric_id) FROM metric_catalog)",
            [HOSTILE_TITLE, "=owner()"],
        )
        con.execute(
            "UPDATE provider_status SET organisation = ?, steward = ?",
            [HOSTILE_ORGANISATION, "\t=steward()"],
        )
        con.execute(f'ALTER TABLE provider_status RENAME COLUMN issues TO "{HOSTILE_COLUMN}"')
        con.execute('ALTER TABLE geography RENAME COLUMN parent_code TO "@parent_code"')
        con.execute(
            "UPDATE metric_values SET breakdown = ? WHERE breakdown = 'sex=F'", [HOSTILE_BREAKDOWN]
        )
        # Negative numbers must stay numbers: a few shown values below zero in each audience.
        con.execute(
            "UPDATE metric_values SET value = ? WHERE rowid IN (SELECT rowid FROM metric_values "
            "WHERE status = 'published' AND value IS NOT NULL "
            "QUALIFY row_number() OVER (PARTITION BY audience ORDER BY rowid) <= 20)",
            [NEGATIVE],
        )
        beats = {
            code
            for (code,) in con.execute(
                "SELECT geo_code FROM geography WHERE geo_level = 'beat'"
            ).fetchall()
        }
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {code: name for code, name in names.items() if code in beats}


@pytest.fixture(scope="module")
def hostile(demo: Deployment, tmp_path_factory: pytest.TempPathFactory) -> HostileRelease:
    """A copy of the demo's release with hostile names, exported and briefed by the real code."""
    data = tmp_path_factory.mktemp("hostile") / "data"
    data.mkdir()
    shutil.copy(demo.warehouse, data / "warehouse.duckdb")
    beat_names = make_hostile(data / "warehouse.duckdb")
    paths = Paths(data_dir=data, sources_dir=demo.sources)
    release_id = demo.query("SELECT max(release_id) FROM metric_values")[0][0]
    release = HostileRelease(paths, release_id, beat_names)
    for audience in AUDIENCES:
        export_audience(paths, release.release_id, READERS[audience])
        write_brief(paths, release.release_id, READERS[audience])
    return release


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def read_dicts(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def workbook_path(release: HostileRelease) -> Path:
    return release.folder("pst") / f"cs360_{release.release_id}_pst.xlsx"


# --- CSV -------------------------------------------------------------------------------------


@pytest.mark.parametrize("audience", AUDIENCES)
def test_no_csv_field_starts_a_formula(hostile: HostileRelease, audience: str) -> None:
    guarded = 0
    for path in sorted(hostile.folder(audience).glob("*.csv")):
        for row in read_rows(path):  # the header row included
            for field in row:
                if field.startswith(FORMULA_START):
                    assert PLAIN_NUMBER.fullmatch(field), (path.name, field)
                if field.startswith(CSV_GUARD) and could_run(field[1:]):
                    guarded += 1
    assert guarded > 0


@pytest.mark.parametrize("audience", AUDIENCES)
def test_csv_names_are_prefixed_and_otherwise_exact(hostile: HostileRelease, audience: str) -> None:
    rows = read_dicts(hostile.folder(audience) / "geography.csv")
    assert "'@parent_code" in rows[0]  # a header cell guarded like any other
    beats = {r["geo_code"]: r["name"] for r in rows if r["geo_level"] == "beat"}
    assert beats.keys() == hostile.beat_names.keys()
    for code, true_name in hostile.beat_names.items():
        expected = CSV_GUARD + true_name if could_run(true_name) else true_name
        assert beats[code] == expected, code
    assert set(HOSTILE) <= set(hostile.beat_names.values())


@pytest.mark.parametrize("audience", AUDIENCES)
def test_csv_numbers_stay_numbers(hostile: HostileRelease, audience: str) -> None:
    rows = read_dicts(hostile.folder(audience) / "metric_values.csv")
    published = {
        tuple(str(v) for v in r[:6]): r[6:]
        for r in hostile.query(
            "SELECT metric_id, period_level, period_start, geo_level, geo_code, breakdown, "
            f"value, numerator, status FROM metric_values WHERE audience = '{audience}'"
        )
    }
    key = ("metric_id", "period_level", "period_start", "geo_level", "geo_code", "breakdown")
    negative = 0
    assert len(rows) == len(published)
    for row in rows:
        breakdown = row["breakdown"]
        true_breakdown = breakdown[1:] if breakdown == csv_text(HOSTILE_BREAKDOWN) else breakdown
        value, numerator, status = published[(*(row[k] for k in key[:-1]), true_breakdown)]
        if status in ("suppressed", "missing"):
            assert row["value"] == status
            continue
        if value is not None:
            assert float(row["value"]) == pytest.approx(value)
            negative += value < 0
        if numerator is not None:
            assert int(row["numerator"]) == numerator
    assert negative > 0
    assert any(r["breakdown"] == "'" + HOSTILE_BREAKDOWN for r in rows)
    assert all(r["value"] == str(NEGATIVE) for r in rows if r["value"].startswith("-"))


@pytest.mark.parametrize("audience", AUDIENCES)
def test_parquet_keeps_the_true_names(hostile: HostileRelease, audience: str) -> None:
    parquet = hostile.folder(audience) / "geography.parquet"
    exported = hostile.query(
        f"SELECT geo_code, name FROM read_parquet('{parquet}') WHERE geo_level = 'beat'"
    )
    assert dict(exported) == hostile.beat_names
    readme = (hostile.folder(audience) / "README.txt").read_text(encoding="utf-8")
    assert "Parquet files keep the true values" in readme


@pytest.fixture(scope="module")
def guard() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the exports' CSV guard as the macro ``guard``."""
    con = duckdb.connect()
    con.execute(csv_text_macro("guard"))
    return con


# No deadline: the property is the rule, not the speed of a shared machine.
@settings(deadline=None)
@given(st.lists(st.text(alphabet="=+-@\t\r0123456789.eE ab'\u0663", max_size=8), max_size=40))
def test_the_csv_guard_in_sql_is_the_python_rule(
    guard: duckdb.DuckDBPyConnection, texts: list[str]
) -> None:
    """The CSV exports guard text with a DuckDB macro; it agrees with ``csv_text`` everywhere."""
    sql = "SELECT list_transform(CAST(? AS VARCHAR[]), lambda x: guard(x))"
    got = guard.execute(sql, [texts]).fetchall()[0][0]
    assert got == [csv_text(t) for t in texts]


# --- Excel -----------------------------------------------------------------------------------


def test_workbook_has_no_formula_and_every_string_is_text(hostile: HostileRelease) -> None:
    wb = load_workbook(workbook_path(hostile), data_only=False)
    seen: set[str] = set()
    numbers = negative = 0
    for ws in wb.worksheets:
        assert not ws.title.startswith((*FORMULA_START, "'")), ws.title
        for row in ws.iter_rows():
            for cell in row:
                if cell.value is None:
                    continue
                assert cell.data_type in ("s", "n", "d", "b"), (ws.title, cell.coordinate)
                if isinstance(cell.value, str):
                    assert cell.data_type == "s"
                    assert cell.quotePrefix or not could_run(cell.value), (ws.title, cell.value)
                    seen.add(cell.value)
                elif type(cell.value) in (int, float):
                    assert cell.data_type == "n"
                    numbers += 1
                    negative += cell.value < 0
    assert numbers > 0 and negative > 0
    hostile_strings = {
        *(n for n in hostile.beat_names.values() if n != BELL),
        HOSTILE_TITLE,
        HOSTILE_ORGANISATION,
        HOSTILE_BREAKDOWN,
        HOSTILE_COLUMN,
        "\t=steward()",
    }
    # A carriage return is written as &#13; (XML would read a bare one as a line feed): every
    # name comes back exactly as published.
    assert hostile_strings <= seen, hostile_strings - seen
    assert BELL.replace("\x07", "\N{REPLACEMENT CHARACTER}") in seen
    notes = " ".join(str(v) for v in seen)
    assert f"{HOSTILE_TITLE} (" in notes  # the notes sheet lists the metric by its title


def test_workbook_xml_holds_no_formula_element(hostile: HostileRelease) -> None:
    """Independent of openpyxl's reading: no sheet part of the file contains an <f> element."""
    with zipfile.ZipFile(workbook_path(hostile)) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        assert sheets
        for name in sheets:
            xml = z.read(name).decode("utf-8")
            assert not re.search(r"<(\w+:)?f[\s>/]", xml), name
            assert 't="e"' not in xml, name


def test_sheet_named_after_a_hostile_dimension_is_plain(hostile: HostileRelease) -> None:
    wb = load_workbook(workbook_path(hostile), read_only=True)
    title = sheet_title(HOSTILE_DIMENSION, {"Notes"})
    assert title in wb.sheetnames
    assert title.startswith("cmd|' ")
    assert sheet_title("'=+@-'quoted'  ", set()) == "quoted"


# --- The brief ---------------------------------------------------------------------------


@pytest.mark.parametrize("audience", AUDIENCES)
def test_brief_escapes_names_in_html_and_svg(hostile: HostileRelease, audience: str) -> None:
    page = (hostile.folder(audience) / "brief.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "onerror=alert(2)>" not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"
    assert page.count(escaped) >= 3  # the dimension heading, the card title and the chart
    svg_titles = re.findall(r"<svg[^>]*aria-label=\"([^\"]*)\"[^>]*><title>([^<]*)</title>", page)
    assert any(escaped in label and escaped in title for label, title in svg_titles)
    if audience == "pst":
        assert page.count(escaped) >= 4  # and the partner in the freshness table


# --- A fresh connection after the warehouse is swapped -----------------------------------


def release_of(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT max(release_id) FROM metric_values").fetchall()[0][0]


def test_open_warehouse_sees_the_release_swapped_in(demo: Deployment, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo.warehouse, warehouse)
    first = release_of_file(warehouse)
    staged = tmp_path / ".warehouse.next.duckdb"
    shutil.copy(demo.warehouse, staged)
    con = duckdb.connect(str(staged))
    try:
        con.execute("UPDATE metric_values SET release_id = 'r-000000000002'")
        con.execute("CHECKPOINT")
    finally:
        con.close()

    held = duckdb.connect(str(warehouse), read_only=True)  # e.g. an analyst's notebook
    before = open_warehouse(warehouse)
    try:
        assert release_of(held) == release_of(before) == first
        os.replace(staged, warehouse)  # as a refresh swaps a finished release in

        fresh = open_warehouse(warehouse)
        plain = duckdb.connect(str(warehouse), read_only=True)
        try:
            assert release_of(fresh) == "r-000000000002"
            # DuckDB hands a new plain connection the instance still open on the old file.
            assert release_of(plain) == first
            count = "SELECT count(*) FROM geography"
            assert fresh.execute(count).fetchall() == held.execute(count).fetchall()
            fresh.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")  # room for an analysis
            with pytest.raises(duckdb.Error):
                fresh.execute("DELETE FROM metric_values")
        finally:
            fresh.close()
            plain.close()
        # Connections opened before the swap keep their release and keep working.
        assert release_of(held) == release_of(before) == first
    finally:
        before.close()
        held.close()
    # With nothing left open on the old file, even a plain connection sees the new release.
    plain = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert release_of(plain) == "r-000000000002"
    finally:
        plain.close()


def release_of_file(path: Path) -> str:
    con = open_warehouse(path)
    try:
        return release_of(con)
    finally:
        con.close()


def test_open_warehouse_defaults_to_the_deployment(
    demo: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CS360_DATA_DIR", str(demo.data))
    con = open_warehouse()
    try:
        assert release_of(con) == demo.query("SELECT max(release_id) FROM metric_values")[0][0]
    finally:
        con.close()
    with pytest.raises(FileNotFoundError):
        open_warehouse(tmp_path / "none.duckdb")
