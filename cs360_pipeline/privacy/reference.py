"""Public reference data for the shared zone: the geography tree and population denominators.

Neither is row level about people, so they pass through without suppression; population is rolled
up with the same hierarchies and breakdown labels as the cells so rates join on equal keys.
Population is optional: a city that publishes only counts need not deliver it, and then
``shared.population`` is empty, so dbt still builds and every rate shows as missing.

The tree is ``raw.city__beats``: the delivered beats.csv, or, for a city that delivers its beat
boundaries (GeoJSON) instead, the table written from their properties after they are ingested
(:func:`cs360_pipeline.privacy.boundaries.derive_beat_tree`).
"""

from __future__ import annotations

import duckdb

from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.sql import literal

POPULATION_COLUMNS = (
    "year INTEGER, geo_level VARCHAR, geo_code VARCHAR, breakdown VARCHAR, population BIGINT"
)


def delivered_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of ``raw.<table>``; 0 when the dataset has never been delivered (no table yet)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_catalog = 'raw' AND table_name = ?",
        [table],
    ).fetchall()[0][0]
    if not exists:
        return 0
    return con.execute(f"SELECT count(*) FROM raw.{table}").fetchall()[0][0]


def build_geography(con: duckdb.DuckDBPyConnection, policy: Policy) -> int:
    """The city, its districts and beats as one parent-linked table (rows written)."""
    city = policy.tables.city
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE shared.geography AS
        SELECT 'city' AS geo_level, {literal(city.code)} AS geo_code, {literal(city.name)} AS name,
               CAST(NULL AS VARCHAR) AS parent_level, CAST(NULL AS VARCHAR) AS parent_code
        UNION ALL
        SELECT DISTINCT 'district', district, district_name, 'city', {literal(city.code)}
        FROM raw.city__beats
        UNION ALL
        SELECT 'beat', beat, beat_name, 'district', district FROM raw.city__beats
        ORDER BY ALL
        """
    )
    return con.execute("SELECT count(*) FROM shared.geography").fetchall()[0][0]


def build_population(con: duckdb.DuckDBPyConnection, policy: Policy) -> int:
    """Residents per year, geography and breakdown ('total', 'sex=F', 'age_group=10-17').

    Without delivered population rows the table is created empty with the same columns, so the
    models that join it still build and rates fall to missing instead of the refresh failing.
    """
    city = policy.tables.city
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    if not delivered_rows(con, "city__population"):
        con.execute(f"CREATE OR REPLACE TABLE shared.population ({POPULATION_COLUMNS})")
        return 0
    con.execute(
        f"""
        CREATE OR REPLACE TABLE shared.population AS
        SELECT year,
               CASE WHEN GROUPING(p.beat) = 0 THEN 'beat'
                    WHEN GROUPING(b.district) = 0 THEN 'district' ELSE 'city' END AS geo_level,
               CASE WHEN GROUPING(p.beat) = 0 THEN p.beat
                    WHEN GROUPING(b.district) = 0 THEN b.district
                    ELSE {literal(city.code)} END AS geo_code,
               CASE WHEN GROUPING(sex) = 0 THEN 'sex=' || sex
                    WHEN GROUPING(age_group) = 0 THEN 'age_group=' || age_group
                    ELSE 'total' END AS breakdown,
               CAST(sum(population) AS BIGINT) AS population
        FROM raw.city__population AS p JOIN raw.city__beats AS b USING (beat)
        GROUP BY GROUPING SETS (
            (year, p.beat), (year, b.district), (year),
            (year, p.beat, sex), (year, b.district, sex), (year, sex),
            (year, p.beat, age_group), (year, b.district, age_group), (year, age_group)
        )
        ORDER BY ALL
        """
    )
    return con.execute("SELECT count(*) FROM shared.population").fetchall()[0][0]
