"""Exports of the demo's release: what each audience gets, and that a withheld cell never reads 0.

The files are read back with DuckDB, Python's csv module and openpyxl, and compared with the
published warehouse row by row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook

from cs360_pipeline.publish.exports import NOT_APPLICABLE, sheet_title
from cs360_pipeline.settings import PROJECT_DIR
from tests.conftest import AUDIENCES, Deployment

KEY = "metric_id, period_level, period_start, geo_level, geo_code, breakdown"


def folder(demo: Deployment, audience: str) -> Path:
    release_id = demo.query("SELECT max(release_id) FROM metric_values")[0][0]
    return demo.data / "exports" / release_id / audience


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("audience", AUDIENCES)
def test_parquet_holds_exactly_the_audience_rows(demo: Deployment, audience: str) -> None:
    out = folder(demo, audience)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{demo.warehouse}' AS wh (READ_ONLY)")
        for table in ("metric_values", "metric_catalog"):
            exported = f"read_parquet('{out / f'{table}.parquet'}')"
            published = f"(SELECT * FROM wh.{table} WHERE audience = '{audience}')"
            assert con.execute(f"SELECT DISTINCT audience FROM {exported}").fetchall() == [
                (audience,)
            ]
            for a, b in ((exported, published), (published, exported)):
                extra = con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})")
                assert extra.fetchall()[0][0] == 0, table
            count = con.execute(f"SELECT count(*) FROM {exported}").fetchall()[0][0]
            assert count == con.execute(f"SELECT count(*) FROM {published}").fetchall()[0][0] > 0
        # Typed: a withheld value is a NULL beside its status, never 0.
        withheld = con.execute(
            f"SELECT count(*), count(value) FROM read_parquet('{out / 'metric_values.parquet'}') "
            "WHERE status IN ('suppressed', 'missing')"
        ).fetchall()[0]
        assert withheld[0] > 0 and withheld[1] == 0
    finally:
        con.close()


@pytest.mark.parametrize("audience", AUDIENCES)
def test_csv_writes_the_status_where_a_number_is_withheld(demo: Deployment, audience: str) -> None:
    rows = read_csv(folder(demo, audience) / "metric_values.csv")
    published = {
        tuple(str(v) for v in r[:6]): r[6:]
        for r in demo.query(
            f"SELECT {KEY}, value, numerator, denominator, status FROM metric_values "
            f"WHERE audience = '{audience}'"
        )
    }
    assert len(rows) == len(published) > 0
    assert all(all(v != "" for v in row.values()) for row in rows)  # never a blank field
    assert {row["audience"] for row in rows} == {audience}
    seen = set()
    for row in rows:
        key = tuple(row[k] for k in KEY.split(", "))
        value, numerator, denominator, status = published[key]
        assert row["status"] == status
        seen.add(status)
        if status == "suppressed":
            assert row["value"] == row["numerator"] == row["denominator"] == "suppressed"
            continue
        if status == "missing":
            assert row["value"] == "missing"
        else:
            assert float(row["value"]) == pytest.approx(value)
        if numerator is None:  # nothing was delivered for the period
            assert status == "missing" and row["numerator"] == "missing"
        else:
            assert float(row["numerator"]) == pytest.approx(numerator)
        if denominator is not None:
            assert float(row["denominator"]) == pytest.approx(denominator)
        else:
            assert row["denominator"] == ("missing" if status == "missing" else NOT_APPLICABLE)
    assert {"published", "suppressed"} <= seen

    catalog = read_csv(folder(demo, audience) / "metric_catalog.csv")
    assert {r["audience"] for r in catalog} == {audience}
    for r in catalog:
        if r["latest_status"] in ("suppressed", "missing"):
            assert r["latest_value"] == r["latest_status"]
        elif r["latest_status"] == NOT_APPLICABLE:  # no city-wide monthly value at all
            assert r["latest_value"] == NOT_APPLICABLE
        else:
            assert float(r["latest_value"]) >= 0


def test_pst_workbook_has_notes_a_sheet_per_dimension_and_provider_status(
    demo: Deployment,
) -> None:
    out = folder(demo, "pst")
    release_id = out.parent.name
    assert not list(folder(demo, "public").glob("*.xlsx"))  # the workbook is for the PST
    wb = load_workbook(out / f"cs360_{release_id}_pst.xlsx", read_only=True)
    dimensions = list(
        dict.fromkeys(
            d
            for (d,) in demo.query(
                "SELECT dimension FROM metric_catalog WHERE audience = 'pst' ORDER BY display_order"
            )
        )
    )
    taken: set[str] = {"Notes"}
    expected_sheets = ["Notes", *(sheet_title(d, taken) for d in dimensions), "Provider status"]
    assert wb.sheetnames == expected_sheets

    notes = " ".join(str(r[0]) for r in wb["Notes"].iter_rows(values_only=True) if r[0])
    assert release_id in notes and "suppressed" in notes and "not zero" in notes

    for dimension, sheet in zip(dimensions, expected_sheets[1:-1], strict=True):
        rows = list(wb[sheet].iter_rows(values_only=True))
        header, body = rows[0], rows[1:]
        col = {name: i for i, name in enumerate(header)}
        expected = demo.query(
            "SELECT count(*), count(*) FILTER (WHERE v.status = 'suppressed') "
            "FROM metric_values v JOIN metric_catalog c USING (audience, metric_id) "
            f"WHERE v.audience = 'pst' AND c.dimension = '{dimension}'"
        )[0]
        assert len(body) == expected[0] > 0
        suppressed = [r for r in body if r[col["Status"]] == "suppressed"]
        assert len(suppressed) == expected[1]
        assert all(
            r[col["Value"]] == r[col["Numerator"]] == r[col["Denominator"]] == "suppressed"
            for r in suppressed
        )
        # No empty number anywhere: a value, a status word or n/a.
        assert all(r[col[c]] is not None for r in body for c in ("Value", "Denominator"))

    status_rows = list(wb["Provider status"].iter_rows(values_only=True))
    assert len(status_rows) - 1 == demo.query("SELECT count(*) FROM provider_status")[0][0]
    assert "freshness_status" in status_rows[0]


def test_sheet_titles_fit_excel() -> None:
    taken: set[str] = set()
    long = "Integrate and Elevate Community and Governmental Partners"
    first, second = sheet_title(long, taken), sheet_title(long, taken)
    assert first == "Integrate and Elevate Community"
    assert len(second) <= 31 and second.endswith("(2)") and second != first
    assert sheet_title("a/b: c?", taken) == "a b  c"


README = PROJECT_DIR / "README.md"


def readme_block(language: str, marker: str) -> str:
    """The README's fenced ``language`` block that contains ``marker``."""
    blocks = README.read_text(encoding="utf-8").split(f"```{language}\n")[1:]
    (block,) = [b.split("```", 1)[0] for b in blocks if marker in b.split("```", 1)[0]]
    return block


@pytest.mark.parametrize("audience", AUDIENCES)
def test_the_readmes_csv_recipe_keeps_the_status_words(demo: Deployment, audience: str) -> None:
    """The README's pandas call, run as written on this release's CSV file."""
    path = folder(demo, audience) / "metric_values.csv"
    recipe = readme_block("python", "keep_default_na").replace(
        '"data/exports/<release>/public/metric_values.csv"', repr(str(path))
    )
    scope: dict = {}
    exec(recipe, scope)  # the README's own snippet
    values = scope["values"]
    published = demo.query(
        f"SELECT status, count(*), count(value) FROM metric_values WHERE audience = '{audience}' "
        "GROUP BY status"
    )
    read = values.groupby("status").agg(rows=("status", "size"), shown=("value", "count"))
    assert {s: (int(r.rows), int(r.shown)) for s, r in read.iterrows()} == {
        s: (n, shown) for s, n, shown in published
    }
    assert values["value"].dtype == "float64" and values["numerator"].dtype == "float64"


def test_the_duckdb_command_line_opens_the_warehouse(demo: Deployment) -> None:
    """The command line the README names, from the venv, runs the README's analyst queries on
    the published file and gets what the Python package gets."""
    import subprocess
    import sys

    cli = Path(sys.executable).parent / "duckdb"
    queries = [q.strip() for q in readme_block("sql", "metric_catalog").split(";") if q.strip()]
    assert len(queries) == 3
    for query in queries:
        done = subprocess.run(
            [str(cli), "-readonly", "-csv", "-noheader", str(demo.warehouse), "-c", query],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if line]
        assert len(lines) == len(demo.query(query)) > 0, query
    log = demo.data / "releases.duckdb"
    done = subprocess.run(
        [str(cli), "-readonly", "-csv", str(log), "-c", "SELECT count(*) FROM release_log"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.split()[-1] == "1", done.stderr
