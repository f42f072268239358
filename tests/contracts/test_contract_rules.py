"""Each rule of the zone contracts breaks once, on a real build database, and is named.

The demo's build database is copied once; every case breaks one rule inside a transaction that
is rolled back, so the next case starts from the valid tables again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import duckdb
import pytest

from cs360_pipeline.contracts.cells import cells_contract
from cs360_pipeline.contracts.published import CONTRACTS, MARTS
from cs360_pipeline.contracts.validate import Breach, check_table
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.settings import SHIPPED_POLICY
from tests.conftest import Deployment

HOSTILE = '=HYPERLINK("x")<b>SECRET-4711'  # a value no message may repeat
HOSTILE_SQL = "'" + HOSTILE.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def build(
    demo: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[duckdb.DuckDBPyConnection]:
    copy = tmp_path_factory.mktemp("contracts") / "build.duckdb"
    shutil.copy(demo.data / "build" / "build.duckdb", copy)
    con = duckdb.connect(str(copy))
    yield con
    con.close()


def published(con: duckdb.DuckDBPyConnection, table: str) -> list[Breach]:
    policy = load_policy(SHIPPED_POLICY)
    return check_table(con, MARTS, table, lambda db: CONTRACTS[table](policy, db))


def cells(con: duckdb.DuckDBPyConnection, provider: str = "police") -> list[Breach]:
    contract = cells_contract(load_policy(SHIPPED_POLICY), provider)
    return check_table(con, "shared", f"cells_{provider}", contract)


def broken(con: duckdb.DuckDBPyConnection, statements: list[str], check) -> list[Breach]:
    """What ``check`` finds after ``statements``, which are then undone."""
    con.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            con.execute(statement)
        return check(con)
    finally:
        con.execute("ROLLBACK")


def first(table: str, where: str) -> str:
    """The rowid of one row of ``table`` matching ``where`` (the break touches that row)."""
    return f"rowid = (SELECT min(rowid) FROM {table} WHERE {where})"


def test_the_demo_keeps_every_contract(build: duckdb.DuckDBPyConnection) -> None:
    for table in CONTRACTS:
        assert published(build, table) == [], table
    for provider in ("police", "school", "hospital", "probation", "survey"):
        assert cells(build, provider) == [], provider


MV = "marts.metric_values"
CELLS = "shared.cells_police"
ONE_ROW = f"INSERT INTO {MV} SELECT * FROM {MV} LIMIT 1"

# table, statements that break one rule, (column or None, words of the rule), rows breaking it
PUBLISHED_BREAKS = [
    (
        "metric_values",
        [f"UPDATE {MV} SET value = 3 WHERE " + first(MV, "status = 'suppressed'")],
        (None, "a suppressed row shows no value, numerator or denominator"),
        1,
    ),
    (
        "metric_values",
        [f"UPDATE {MV} SET value = NULL WHERE " + first(MV, "status = 'published'")],
        (None, "a published or unreliable row has a value"),
        1,
    ),
    (
        "metric_values",
        [
            f"UPDATE {MV} SET data_through = period_start "
            f"WHERE " + first(MV, "period_complete AND period_level = 'quarter'")
        ],
        (None, "a complete period's data runs to its last day"),
        1,
    ),
    (
        "metric_values",
        [
            f"UPDATE {MV} SET data_through = period_start + INTERVAL 40 DAY, "
            "period_complete = false "
            f"WHERE " + first(MV, "period_level = 'month'")
        ],
        (None, "no period's data runs past its last day"),
        1,
    ),
    ("metric_values", [ONE_ROW], (None, "rows share a key that must be unique"), 2),
    (
        "metric_values",
        [f"UPDATE {MV} SET metric_id = {HOSTILE_SQL} WHERE " + first(MV, "true")],
        (None, "a metric of metric_catalog"),
        1,
    ),
    (
        "metric_values",
        [f"UPDATE {MV} SET geo_code = 'nowhere' WHERE " + first(MV, "true")],
        (None, "a place of geography"),
        1,
    ),
    (
        "metric_values",
        [f"UPDATE {MV} SET release_id = 'r-000000000000' WHERE " + first(MV, "true")],
        (None, "one release in the table"),
        None,
    ),
    (
        "metric_values",
        [f"UPDATE {MV} SET status = 'rounded' WHERE " + first(MV, "true")],
        ("status", "one of missing, published, suppressed, unreliable"),
        1,
    ),
    (
        "metric_values",
        [f"UPDATE {MV} SET audience = NULL WHERE " + first(MV, "true")],
        ("audience", "may not be NULL"),
        1,
    ),
    (
        "metric_values",
        [f"UPDATE {MV} SET numerator = -1 WHERE " + first(MV, "numerator > 0")],
        ("numerator", "at least 0"),
        1,
    ),
    (
        "metric_catalog",
        [
            "UPDATE marts.metric_catalog SET previous_period = latest_period "
            "WHERE rowid = (SELECT min(rowid) FROM marts.metric_catalog "
            "WHERE latest_period IS NOT NULL)"
        ],
        (None, "the previous period comes before the latest"),
        1,
    ),
    (
        "metric_catalog",
        ["UPDATE marts.metric_catalog SET change = NULL WHERE change IS NOT NULL"],
        (None, "a change exactly when both values are shown"),
        None,
    ),
    (
        "metric_catalog",
        [
            "UPDATE marts.metric_catalog SET freshness_status = 'stale', "
            "stale_sources = NULL, sources_freshness = 'late'"
        ],
        (None, "a stale metric names its stale sources"),
        None,
    ),
    (
        "metric_catalog",
        ["UPDATE marts.metric_catalog SET unit = 'furlongs'"],
        ("unit", "one of count, minutes, percent, rate_per_1000"),
        None,
    ),
    (
        "privacy_report",
        [
            "UPDATE marts.privacy_report SET cells = cells + 1 "
            "WHERE rowid = (SELECT min(rowid) FROM marts.privacy_report)"
        ],
        (None, "every cell counted once by status"),
        1,
    ),
    (
        "metric_notes",
        ["UPDATE marts.metric_notes SET period_from = period_to + INTERVAL 1 DAY"],
        (None, "a note's months are in order"),
        None,
    ),
    (
        "geography",
        ["INSERT INTO marts.geography SELECT * FROM marts.geography LIMIT 1"],
        (None, "rows share a key that must be unique"),
        2,
    ),
    (
        "provider_status",
        [
            "UPDATE marts.provider_status SET issues = CASE WHEN issues IS NULL THEN 'late' END "
            "WHERE rowid = (SELECT min(rowid) FROM marts.provider_status)"
        ],
        (None, "issues named exactly when not ok"),
        1,
    ),
    (
        "provider_status",
        [
            "UPDATE marts.provider_status SET missing_month_list = '2025-03' "
            "WHERE rowid = (SELECT min(rowid) FROM marts.provider_status "
            "WHERE missing_months = 0)"
        ],
        (None, "missing months listed exactly when there are some"),
        1,
    ),
]


@pytest.mark.parametrize(("table", "statements", "rule", "rows"), PUBLISHED_BREAKS)
def test_each_published_rule_breaks_and_is_named(
    build: duckdb.DuckDBPyConnection,
    table: str,
    statements: list[str],
    rule: tuple[str | None, str],
    rows: int | None,
) -> None:
    breaches = broken(build, statements, lambda con: published(con, table))
    assert [(b.column, b.rule) for b in breaches] == [rule], breaches
    if rows is not None:
        assert breaches[0].rows == rows
    assert all(HOSTILE not in b.line() and "SECRET" not in b.line() for b in breaches)


CELL = "shared.cells_police"
SHOWN = "NOT suppressed AND n >= min_cell_size"
CELLS_BREAKS = [
    (
        [f"UPDATE {CELL} SET n = 2, value = 2 WHERE {first(CELL, SHOWN)}"],
        (None, "no count shown is below the cell's minimum (0 < n < k)"),
        1,
    ),
    (
        [f"UPDATE {CELL} SET suppressed = true WHERE {first(CELL, SHOWN)}"],
        (None, "a hidden cell carries no count and no value"),
        1,
    ),
    (  # a negative count is also a count shown below the minimum
        [f"UPDATE {CELL} SET n = -4 WHERE " + first(CELL, "n = 0")],
        [("n", "at least 0"), (None, "no count shown is below the cell's minimum (0 < n < k)")],
        1,
    ),
    (
        [f"INSERT INTO {CELL} SELECT * FROM {CELL} LIMIT 1"],
        (None, "rows share a key that must be unique"),
        2,
    ),
    (
        [f"UPDATE {CELL} SET measure_id = 'school__attendance' WHERE " + first(CELL, "true")],
        ("measure_id", "a measure of police (police__<measure>)"),
        1,
    ),
    (
        [f"UPDATE {CELL} SET geo_level = 'county' WHERE " + first(CELL, "true")],
        ("geo_level", "one of beat, city, district, zone"),
        1,
    ),
    (
        [f"UPDATE {CELL} SET audience = 'press' WHERE " + first(CELL, "true")],
        ("audience", "one of pst, public"),
        1,
    ),
    (
        [f"ALTER TABLE {CELL} ADD COLUMN incident_number VARCHAR DEFAULT {HOSTILE_SQL}"],
        ("incident_number", "a column the contract does not allow"),
        None,
    ),
    (
        [f"ALTER TABLE {CELL} DROP COLUMN min_cell_size"],
        [
            ("min_cell_size", "a column the contract requires is missing"),
            (
                None,
                "no count shown is below the cell's minimum (0 < n < k): "
                "the rule could not be evaluated",
            ),
        ],
        None,
    ),
    ([f"ALTER TABLE {CELL} ALTER COLUMN n TYPE DOUBLE"], ("n", "is not of the type int64"), None),
]


@pytest.mark.parametrize(("statements", "rule", "rows"), CELLS_BREAKS)
def test_each_cells_rule_breaks_and_is_named(
    build: duckdb.DuckDBPyConnection,
    statements: list[str],
    rule: tuple[str | None, str] | list[tuple[str | None, str]],
    rows: int | None,
) -> None:
    breaches = broken(build, statements, cells)
    assert [(b.column, b.rule) for b in breaches] == (rule if isinstance(rule, list) else [rule])
    if rows is not None:
        assert breaches[0].rows == rows
    assert all(HOSTILE not in b.line() and "SECRET" not in b.line() for b in breaches)


def test_an_empty_table_is_held_to_its_columns(build: duckdb.DuckDBPyConnection) -> None:
    """A provider with nothing delivered yet writes no cells; a city may have no notes."""
    assert broken(build, [f"DELETE FROM {CELL}"], cells) == []
    notes = broken(
        build, ["DELETE FROM marts.metric_notes"], lambda con: published(con, "metric_notes")
    )
    assert notes == []
    breaches = broken(
        build, [f"DELETE FROM {CELL}", f"ALTER TABLE {CELL} ADD COLUMN ssn VARCHAR"], cells
    )
    assert [(b.column, b.rule) for b in breaches] == [
        ("ssn", "a column the contract does not allow")
    ]
