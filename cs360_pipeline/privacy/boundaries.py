"""Beat boundaries: the beat tree they give, and points placed on them by point-in-polygon.

The city may deliver its beats as polygons (``city/beat_boundaries``, a GeoJSON file) instead of,
or beside, the table of beats (``city/beats``, beats.csv):

* **The beat -> district tree.** Without a current beats.csv, the tree (``raw.city__beats``) is
  written from the boundaries after each ingest of them (:func:`derive_beat_tree`), names
  falling back to codes. With a beats.csv delivered, beats.csv is the tree, and the two must
  agree beat for beat, district for district: where they do not, the cells of datasets placed
  by coordinates are not built and the error names the beats that differ
  (:func:`tree_differences`).
* **Placing points.** A dataset whose geography is ``points`` is placed in the privacy step:
  only (rowid, longitude, latitude) are read from the restricted table, in Arrow batches, and
  each point is matched to the beat polygons through a shapely ``STRtree``; (rowid -> beat)
  goes to a TEMP table of the privacy connection that the cells join on. The rules:

  - a point belongs to a beat whose *closed* polygon contains it (inside or on its boundary);
    a hole is not part of its polygon, its boundary is;
  - a point on the edge shared by several beats goes to the one with the smallest code in
    plain text order (so '10' comes before '9');
  - a point with a NULL or non-finite coordinate, outside longitude -180..180 or latitude
    -90..90, or at exactly (0, 0) (a geocoder's "unknown") is placed nowhere, as is a point
    outside every beat: such rows are counted in no cell, and counted as unplaced.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb

from cs360_pipeline.ingest.readers import safe_text
from cs360_pipeline.registry import Provider
from cs360_pipeline.registry.models import GEOMETRY_COLUMN, Points
from cs360_pipeline.sql import ident, table_exists

REFERENCE = "city"
BEATS = "beats"
BOUNDARIES = "beat_boundaries"
BEATS_TABLE = f"{REFERENCE}__{BEATS}"
BOUNDARIES_TABLE = f"{REFERENCE}__{BOUNDARIES}"
BATCH_ROWS = 200_000
SHOWN_BEATS = 10


# -- the beat tree ------------------------------------------------------------------------------


def derive_beat_tree(con: duckdb.DuckDBPyConnection, provider: Provider) -> str | None:
    """Write ``city__beats`` from the boundaries when no beats.csv is current; a note, or None.

    Runs on the restricted database after the boundaries' ingest. Deterministic: the same
    boundaries give the same table (stamped with the boundary file's name, hash and load time).
    """
    from cs360_pipeline.ingest import ledger

    if provider.provider != REFERENCE or BOUNDARIES not in provider.datasets:
        return None
    if not table_exists(con, BOUNDARIES_TABLE):
        return None
    if BEATS in provider.datasets and ledger.current_files(con, REFERENCE, BEATS):
        differ = tree_differences(con, catalog="")
        if differ:
            return (
                f"beats.csv ({BEATS_TABLE}) stays the beat tree, but the boundaries disagree "
                f"with it: {differ}"
            )
        return None
    columns = provider.datasets[BOUNDARIES].columns

    def name(column: str, code: str) -> str:
        return f"coalesce({ident(column)}, {code})" if column in columns else code

    con.execute(
        f"""
        CREATE OR REPLACE TABLE {BEATS_TABLE} AS
        SELECT beat, {name("beat_name", "beat")} AS beat_name, district,
               {name("district_name", "district")} AS district_name,
               _source_file, _file_sha256, _loaded_at
        FROM {BOUNDARIES_TABLE} ORDER BY beat
        """
    )
    count = con.execute(f"SELECT count(*) FROM {BEATS_TABLE}").fetchall()[0][0]
    return f"beat tree ({BEATS_TABLE}) written from the boundaries: {count:,} beats"


def tree_differences(con: duckdb.DuckDBPyConnection, catalog: str = "raw") -> str | None:
    """Which beats the tree (beats.csv) and the boundaries disagree on, in words; None if none.

    Beat and district codes are public reference codes; they are shown made printable.
    """
    prefix = f"{catalog}." if catalog else ""
    found = {t for t in (BEATS_TABLE, BOUNDARIES_TABLE) if table_exists(con, t, catalog or None)}
    if len(found) < 2:
        return None
    rows = con.execute(
        f"""
        SELECT coalesce(t.beat, b.beat) AS beat, t.beat IS NOT NULL, b.beat IS NOT NULL
        FROM {prefix}{BEATS_TABLE} AS t
        FULL JOIN {prefix}{BOUNDARIES_TABLE} AS b ON t.beat = b.beat
        WHERE t.district IS DISTINCT FROM b.district
        ORDER BY 1
        """
    ).fetchall()
    if not rows:
        return None
    words = []
    for beat, in_tree, drawn in rows[:SHOWN_BEATS]:
        shown = safe_text(str(beat), 30)
        if in_tree and drawn:
            words.append(f"{shown} (a different district)")
        elif in_tree:
            words.append(f"{shown} (in beats.csv, no polygon)")
        else:
            words.append(f"{shown} (a polygon, not in beats.csv)")
    more = f" and {len(rows) - SHOWN_BEATS} more" if len(rows) > SHOWN_BEATS else ""
    return f"{len(rows)} beat(s) differ: {', '.join(words)}{more}"


# -- placing points -----------------------------------------------------------------------------


def placed_table(table: str) -> str:
    """The TEMP table holding (rowid -> beat) of a point dataset's table."""
    return f"_placed__{table}"


def _temp_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [name]
        ).fetchall()[0][0]
    )


def _batches(
    con: duckdb.DuckDBPyConnection, table: str, points: Points
) -> Iterator[tuple[object, object, object]]:
    """(rowid, lon, lat) numpy arrays of the rows with usable coordinates, batch by batch.

    Read on a cursor of its own, so that the TEMP table can be written meanwhile.
    """
    x, y = ident(points.longitude), ident(points.latitude)
    query = f"""
        SELECT rowid AS _rowid, CAST({x} AS DOUBLE) AS x, CAST({y} AS DOUBLE) AS y
        FROM raw.{ident(table)}
        WHERE {x} IS NOT NULL AND {y} IS NOT NULL
          AND isfinite(CAST({x} AS DOUBLE)) AND isfinite(CAST({y} AS DOUBLE))
          AND {x} BETWEEN -180 AND 180 AND {y} BETWEEN -90 AND 90
          AND NOT ({x} = 0 AND {y} = 0)
    """
    cursor = con.cursor()
    try:
        for batch in cursor.sql(query).to_arrow_reader(BATCH_ROWS):
            yield (
                batch.column(0).to_numpy(),
                batch.column(1).to_numpy(),
                batch.column(2).to_numpy(),
            )
    finally:
        cursor.close()


def beat_polygons(
    con: duckdb.DuckDBPyConnection, table: str = f"raw.{BOUNDARIES_TABLE}"
) -> tuple[list[str], list[bytes]]:
    """(beat codes in plain text order, their WKB polygons) from the restricted boundaries, or
    from their copy in the shared zone (``shared.beat_boundaries``); none when the city has
    delivered no beat map."""
    try:
        rows = con.execute(f"SELECT beat, {ident(GEOMETRY_COLUMN)} FROM {table}").fetchall()
    except duckdb.CatalogException:
        return [], []
    rows.sort(key=lambda r: r[0])
    return [r[0] for r in rows], [bytes(r[1]) for r in rows]


def place(con: duckdb.DuckDBPyConnection, table: str, points: Points) -> str:
    """Place a point dataset's rows once per connection; returns the TEMP table's name."""
    target = placed_table(table)
    if _temp_exists(con, target):
        return target
    import numpy as np
    import pyarrow as pa
    import shapely

    codes, wkb = beat_polygons(con)
    con.execute(f"CREATE TEMP TABLE {ident(target)} (_geo_key BIGINT, _beat VARCHAR)")
    if not codes:
        return target
    tree = shapely.STRtree(shapely.from_wkb(wkb))
    beats = np.array(codes, dtype=object)
    none = len(codes)
    for rowids, x, y in _batches(con, table, points):
        found, polygon = tree.query(shapely.points(x, y), predicate="intersects")
        # Tree index order is beat code order: the smallest index is the smallest code.
        best = np.full(len(rowids), none, dtype=np.int64)
        np.minimum.at(best, found, polygon)
        hit = best < none
        placed = pa.table({"_geo_key": rowids[hit], "_beat": beats[best[hit]].tolist()})
        con.register("_placed_batch", placed)
        try:
            con.execute(f"INSERT INTO {ident(target)} SELECT * FROM _placed_batch")
        finally:
            con.unregister("_placed_batch")
    return target
