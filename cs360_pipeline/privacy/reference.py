"""Public reference data for the shared zone: the geography tree and population denominators.

Neither is row level about people, so they pass through without suppression; population is rolled
up with the same hierarchies and breakdown labels as the cells so rates join on equal keys.
Population is optional: a city that publishes only counts need not deliver it, and then
``shared.population`` is empty, so dbt still builds and every rate shows as missing.

The tree is ``raw.city__beats``: the delivered beats.csv, or, for a city that delivers its beat
boundaries (GeoJSON) instead, the table written from their properties after they are ingested
(:func:`cs360_pipeline.privacy.boundaries.derive_beat_tree`). Zones (``tables.zones`` in the
policy) are rows of their own, parent the city, and ``shared.zone_beats`` names their beats;
a zone's population is the sum of its beats'. The beat polygons, where the city delivers them,
are copied to ``shared.beat_boundaries``.
"""

from __future__ import annotations

import duckdb

from cs360_pipeline.ingest.readers import safe_text
from cs360_pipeline.privacy.boundaries import BOUNDARIES_TABLE, beat_polygons
from cs360_pipeline.privacy.geography import SHARED_BOUNDARIES, city_geography
from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.registry.models import GEOMETRY_COLUMN
from cs360_pipeline.sql import ident, literal, table_exists

POPULATION_COLUMNS = (
    "year INTEGER, geo_level VARCHAR, geo_code VARCHAR, breakdown VARCHAR, population BIGINT"
)


def delivered_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of ``raw.<table>``; 0 when the dataset has never been delivered (no table yet)."""
    if not table_exists(con, table, "raw"):
        return 0
    return con.execute(f"SELECT count(*) FROM raw.{table}").fetchall()[0][0]


def build_geography(con: duckdb.DuckDBPyConnection, policy: Policy) -> int:
    """The city, its districts, beats and zones as one parent-linked table (rows written), and
    ``shared.zone_beats``: which beats each zone takes (zones lie in the city, across
    districts)."""
    city = policy.tables.city
    zones = [(code, zone.name) for code, zone in sorted(policy.tables.zones.items())]
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    _beat_boundaries(con)
    _zone_beats(con, policy, "shared.zone_beats", temporary=False)
    _outlines(con, policy)
    zone_rows = " ".join(
        f"UNION ALL SELECT 'zone', {literal(code)}, {literal(name)}, 'city', {literal(city.code)}"
        for code, name in zones
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE shared.geography AS
        SELECT tree.*, o.boundary
        FROM (
            SELECT 'city' AS geo_level, {literal(city.code)} AS geo_code,
                   {literal(city.name)} AS name,
                   CAST(NULL AS VARCHAR) AS parent_level, CAST(NULL AS VARCHAR) AS parent_code
            UNION ALL
            SELECT DISTINCT 'district', district, district_name, 'city', {literal(city.code)}
            FROM raw.city__beats
            UNION ALL
            SELECT 'beat', beat, beat_name, 'district', district FROM raw.city__beats
            {zone_rows}
        ) AS tree
        LEFT JOIN _outlines AS o USING (geo_level, geo_code)
        ORDER BY geo_level, geo_code
        """
    )
    return con.execute("SELECT count(*) FROM shared.geography").fetchall()[0][0]


def _beat_boundaries(con: duckdb.DuckDBPyConnection) -> None:
    """``shared.beat_boundaries``: each beat's polygon (WKB), empty when the city delivered
    none. The beat map is public; a release's checks measure zones drawn as areas on it."""
    target = f"shared.{SHARED_BOUNDARIES}"
    column = ident(GEOMETRY_COLUMN)
    con.execute(f"CREATE OR REPLACE TABLE {target} (beat VARCHAR, {column} BLOB)")
    if table_exists(con, BOUNDARIES_TABLE, "raw"):
        con.execute(
            f"INSERT INTO {target} SELECT beat, {column} FROM raw.{BOUNDARIES_TABLE} ORDER BY beat"
        )


def _outlines(con: duckdb.DuckDBPyConnection, policy: Policy) -> None:
    """TEMP ``_outlines``: (geo_level, geo_code, boundary) with each place's outline as a
    GeoJSON geometry, from the beat map: a beat's polygon, a district's, a zone's or the
    city's the union of its beats'. Empty without a beat map (no place is drawn then)."""
    import shapely

    con.execute(
        "CREATE OR REPLACE TEMP TABLE _outlines "
        "(geo_level VARCHAR, geo_code VARCHAR, boundary VARCHAR)"
    )
    codes, wkb = beat_polygons(con, f"raw.{BOUNDARIES_TABLE}")
    if not codes:
        return
    shapes = dict(zip(codes, shapely.from_wkb(wkb), strict=True))
    district = dict(con.execute("SELECT beat, district FROM raw.city__beats").fetchall())
    groups: dict[tuple[str, str], list[str]] = {("city", policy.tables.city.code): list(shapes)}
    for beat in shapes:
        if beat in district:
            groups.setdefault(("district", district[beat]), []).append(beat)
    for zone, beats in city_geography(con, policy).zone_beats().items():
        groups[("zone", zone)] = [b for b in beats if b in shapes]
    rows = [("beat", code, shapely.to_geojson(shape)) for code, shape in shapes.items()]
    rows += [
        (level, code, shapely.to_geojson(shapely.union_all([shapes[b] for b in beats])))
        for (level, code), beats in sorted(groups.items())
        if beats
    ]
    con.executemany("INSERT INTO _outlines VALUES (?, ?, ?)", rows)


def _zone_beats(
    con: duckdb.DuckDBPyConnection, policy: Policy, table: str, temporary: bool = True
) -> None:
    """(zone_code, beat_code) of the policy's zones, checked against the beat tree."""
    geography = city_geography(con, policy)
    members = [(z, b) for z, beats in geography.zone_beats().items() for b in beats]
    kind = "TEMP TABLE" if temporary else "TABLE"
    con.execute(f"CREATE OR REPLACE {kind} {table} (zone_code VARCHAR, beat_code VARCHAR)")
    if members:
        con.executemany(f"INSERT INTO {table} VALUES (?, ?)", members)


def zone_lines(con: duckdb.DuckDBPyConnection, policy: Policy) -> list[str]:
    """One line per zone for the refresh log: its beats, and for an area how they were chosen
    (beat codes are the city's reference codes, shown made printable)."""
    members: dict[str, list[str]] = {}
    for zone, beat in con.execute(
        "SELECT zone_code, beat_code FROM shared.zone_beats ORDER BY ALL"
    ).fetchall():
        members.setdefault(zone, []).append(safe_text(str(beat), 30))
    lines = []
    for code, zone in sorted(policy.tables.zones.items()):
        beats = members.get(code, [])
        how = (
            f"the beats at least {zone.min_beat_share:.0%} inside its area"
            if zone.area is not None
            else "the beats the policy lists"
        )
        lines.append(f"zone {code}: {len(beats)} beats ({how}): {', '.join(beats)}")
    return lines


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
    _zone_beats(con, policy, "_zone_beats")
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
        UNION ALL
        SELECT year, 'zone', z.zone_code,
               CASE WHEN GROUPING(sex) = 0 THEN 'sex=' || sex
                    WHEN GROUPING(age_group) = 0 THEN 'age_group=' || age_group
                    ELSE 'total' END,
               CAST(sum(population) AS BIGINT)
        FROM raw.city__population AS p JOIN _zone_beats AS z ON z.beat_code = p.beat
        GROUP BY GROUPING SETS ((year, z.zone_code), (year, z.zone_code, sex),
                               (year, z.zone_code, age_group))
        ORDER BY ALL
        """
    )
    return con.execute("SELECT count(*) FROM shared.population").fetchall()[0][0]
