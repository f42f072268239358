"""Reading a GeoJSON FeatureCollection of polygons (the city's beat boundaries) into staging.

A boundary file is small (a city has tens to hundreds of beats), so it is read whole with the
standard ``json`` module, under a byte cap, and checked feature by feature before anything is
staged: the top level is a FeatureCollection, every feature a Polygon or MultiPolygon in WGS 84
longitude/latitude whose rings are closed, and whose shape is valid (no self-intersection, holes
inside their shell); the property that names each polygon (the dataset's key) is present and
unique. A broken file is refused with the feature's number (1 = the first feature) and the rule,
and quarantined like any other delivery. Property values are never repeated in a message.

What passes becomes an ordinary staged table: the mapped properties go through the same contract
rules as a CSV (their ``_line`` is the feature number), and each feature's polygon joins them as
``geometry`` (WKB), which the load keeps in the restricted table.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.readers import Rejected, Scan, safe_text
from cs360_pipeline.registry import Dataset
from cs360_pipeline.registry.models import GEOMETRY_COLUMN
from cs360_pipeline.sql import ident

if TYPE_CHECKING:
    from cs360_pipeline.ingest.staging import Staged

# Far above any city's beat map (a detailed one is a few MB), far below what json.loads could
# not hold: a boundary file over it is not a boundary file.
MAX_BYTES = 64 * 1024 * 1024
MAX_FEATURES = 20_000
MAX_POSITIONS = 5_000_000
POLYGONAL = ("Polygon", "MultiPolygon")
GEOJSON_TYPES = (
    "FeatureCollection", "Feature", "Point", "MultiPoint", "LineString", "MultiLineString",
    "Polygon", "MultiPolygon", "GeometryCollection",
)  # fmt: skip
WGS84_NAMES = ("urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326",
               "urn:ogc:def:crs:EPSG::4326")  # fmt: skip
GEOMETRY_TABLE = "_geometry"


def _kind(value: object) -> str:
    """What a JSON value is, in words, never what it holds."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a true/false value"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text" if value.strip() else "empty text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _type_word(value: object) -> str:
    """A GeoJSON ``type`` member by name if it is one of GeoJSON's, else described."""
    if isinstance(value, str) and value in GEOJSON_TYPES:
        return f"a {value}"
    return f"{_kind(value)} that is no GeoJSON type" if value is not None else "no type"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse(data: bytes, name: str) -> list[dict[str, Any]]:
    """The features of a FeatureCollection, or :class:`Rejected` saying what is wrong."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected(
            f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start}). GeoJSON is UTF-8 "
            "(RFC 7946): export it again as GeoJSON."
        ) from None
    if not text.strip():
        raise Rejected(f"{name}: the file is empty. Export the beat boundaries again as GeoJSON.")
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise Rejected(
            f"{name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}). "
            "Export the beat boundaries again as GeoJSON."
        ) from None
    except (ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else "NaN or Infinity"
        raise Rejected(f"{name}: not valid JSON ({why}). Export it again as GeoJSON.") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        found = _type_word(doc.get("type")) if isinstance(doc, dict) else _kind(doc)
        raise Rejected(
            f"{name}: the top level is {found}, not a FeatureCollection. Rule: beat boundaries "
            "are one GeoJSON FeatureCollection with a feature per beat."
        )
    _check_crs(name, doc.get("crs"))
    features = doc.get("features")
    if not isinstance(features, list):
        raise Rejected(f"{name}: 'features' is {_kind(features)}, not a list of features.")
    if not features:
        raise Rejected(f"{name}: the FeatureCollection has no features. Export it again.")
    if len(features) > MAX_FEATURES:
        raise Rejected(
            f"{name}: {len(features):,} features, over the limit of {MAX_FEATURES:,} for a beat "
            "map. Rule: one feature per beat."
        )
    return features


def _check_crs(name: str, crs: object) -> None:
    """RFC 7946 GeoJSON is WGS 84; an old-style ``crs`` naming anything else is refused."""
    if crs is None:
        return
    props = crs.get("properties") if isinstance(crs, dict) else None
    crs_name = props.get("name") if isinstance(props, dict) else None
    if crs_name not in WGS84_NAMES:
        raise Rejected(
            f"{name}: its 'crs' member names a coordinate system other than WGS 84 "
            "longitude/latitude. Rule: boundaries are in WGS 84 (EPSG:4326), as RFC 7946 "
            "requires. Export them again in EPSG:4326."
        )


class _Feature:
    """Checks of one feature; ``where`` is '<file>: feature <n>' for every message."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.positions = 0

    def refuse(self, rule: str) -> Rejected:
        return Rejected(f"{self.where}: {rule}. Correct the feature and re-send the file.")

    def ring(self, value: object, what: str) -> list[tuple[float, float]]:
        if not isinstance(value, list):
            raise self.refuse(f"{what} is {_kind(value)}, not a list of positions")
        if len(value) < 4:
            raise self.refuse(f"{what} has {len(value)} position(s); a closed ring needs 4 or more")
        ring = [self.position(p, what, i) for i, p in enumerate(value, 1)]
        if ring[0] != ring[-1]:
            raise self.refuse(f"{what} is not closed (its last position is not its first)")
        self.positions += len(ring)
        if self.positions > MAX_POSITIONS:
            raise self.refuse(f"the file holds over {MAX_POSITIONS:,} positions; simplify it")
        return ring

    def position(self, value: object, what: str, i: int) -> tuple[float, float]:
        if not isinstance(value, list) or not 2 <= len(value) <= 3:
            raise self.refuse(f"{what} position {i} is not [longitude, latitude]")
        for part in value:
            if isinstance(part, bool) or not isinstance(part, int | float):
                raise self.refuse(f"{what} position {i} holds {_kind(part)}, not a number")
        x, y = float(value[0]), float(value[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise self.refuse(f"{what} position {i} is not a finite number")
        if not (-180 <= x <= 180 and -90 <= y <= 90):
            raise self.refuse(
                f"{what} position {i} is outside longitude -180..180 / latitude -90..90: the "
                "file is probably in a projected coordinate system (state plane, UTM). Export "
                "it as WGS 84 (EPSG:4326)"
            )
        return x, y

    def polygon(self, value: object, what: str) -> tuple[list, list[list]]:
        if not isinstance(value, list) or not value:
            raise self.refuse(f"{what} is {_kind(value)}, not a list of rings")
        rings = [self.ring(r, f"{what} ring {i}") for i, r in enumerate(value, 1)]
        return rings[0], rings[1:]


def geometry_wkb(feature: object, where: str) -> bytes:
    """One feature's Polygon/MultiPolygon as WKB, after every check; :class:`Rejected` if not."""
    import shapely  # only when a boundary file arrives

    check = _Feature(where)
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        found = _type_word(feature.get("type")) if isinstance(feature, dict) else _kind(feature)
        raise check.refuse(f"is {found}, not a Feature")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        raise check.refuse(f"its geometry is {_kind(geometry)}, not a Polygon or MultiPolygon")
    kind = geometry.get("type")
    if kind not in POLYGONAL:
        raise check.refuse(f"its geometry is {_type_word(kind)}, not a Polygon or MultiPolygon")
    coordinates = geometry.get("coordinates")
    if kind == "Polygon":
        shell, holes = check.polygon(coordinates, "polygon")
        shape = shapely.Polygon(shell, holes)
    else:
        if not isinstance(coordinates, list) or not coordinates:
            raise check.refuse(
                f"its MultiPolygon coordinates are {_kind(coordinates)}, not a list of polygons"
            )
        parts = [check.polygon(p, f"polygon {i}") for i, p in enumerate(coordinates, 1)]
        shape = shapely.MultiPolygon([shapely.Polygon(s, h) for s, h in parts])
    if not shapely.is_valid(shape):
        # GEOS appends the offending location in brackets: the rule is enough to find it.
        reason = shapely.is_valid_reason(shape).split("[", 1)[0].strip() or "invalid"
        raise check.refuse(
            f"its {kind} is not a valid shape ({safe_text(reason)}): rings may not cross "
            "themselves or each other, holes must lie inside their polygon"
        )
    if shape.area <= 0:
        raise check.refuse(f"its {kind} has no area")
    return shapely.to_wkb(shape)


def _property_text(value: object) -> str | None:
    """A property as the text the contract reads; None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text.strip() else None


def rows(features: list[Any], name: str, dataset: Dataset) -> tuple[list[str], list[list]]:
    """(header, rows) of the mapped properties, each row led by its feature number.

    The key property (the beat code) must be present and unique; other properties are left to
    the contract's rules. A property holding a list or an object is refused.
    """
    sources = [(n, col.source or n) for n, col in dataset.columns.items()]
    key = dataset.key[0]
    key_source = dataset.columns[key].source or key
    seen: dict[str, int] = {}
    table = []
    for number, feature in enumerate(features, 1):
        where = f"{name}: feature {number}"
        props = feature.get("properties") if isinstance(feature, dict) else None
        if props is not None and not isinstance(props, dict):
            raise Rejected(f"{where}: its properties are {_kind(props)}, not an object.")
        props = props or {}
        row: list[object] = [number]
        for column, source in sources:
            value = props.get(source)
            if isinstance(value, list | dict):
                raise Rejected(
                    f"{where}: property {safe_text(source)!r} (column {column}) is "
                    f"{_kind(value)}, not a text or a number."
                )
            row.append(_property_text(value))
        code = row[1 + [c for c, _ in sources].index(key)]
        if code is None:
            raise Rejected(
                f"{where}: property {safe_text(key_source)!r} ({key}) is missing or "
                f"{_kind(props.get(key_source))}. Rule: every feature names its {key} there."
            )
        if code in seen:
            raise Rejected(
                f"{where}: property {safe_text(key_source)!r} ({key}) repeats the value of "
                f"feature {seen[code]}. Rule: one feature per {key}; join the parts of one "
                f"{key} into a MultiPolygon."
            )
        seen[str(code)] = number
        table.append(row)
    return [source for _, source in sources], table


def stage_geojson(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, path: Path, found: Scan, dataset: Dataset
) -> Staged:
    """Stage a boundary file as ``_stage`` (properties by the contract, plus ``geometry``)."""
    from cs360_pipeline.ingest import staging  # staging dispatches here: imported late

    name = path.name
    cap = min(MAX_BYTES, int(dataset.max_file_mb * 1024 * 1024))
    if found.size > cap:
        raise Rejected(
            f"{name}: the file is {found.size / 1048576:,.2f} MB, over the cap of "
            f"{cap / 1048576:g} MB for a GeoJSON boundary file. A beat map is a few MB: "
            "simplify the polygons or check that the right file was sent."
        )
    features = parse(path.read_bytes(), name)
    shapes = [(n, geometry_wkb(f, f"{name}: feature {n}")) for n, f in enumerate(features, 1)]
    header, table = rows(features, name, dataset)
    with folder.work_file(found.sha256, ".features.csv") as flat:
        with flat.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["_line", *header])
            writer.writerows(table)
        staged = staging._stage_csv(con, flat, name, dataset, header, len(table), sheet=True)
    geometry = ident(GEOMETRY_COLUMN)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {GEOMETRY_TABLE} (_line BIGINT, {geometry} BLOB)")
    con.executemany(f"INSERT INTO {GEOMETRY_TABLE} VALUES (?, ?)", shapes)
    con.execute(
        f"DROP VIEW IF EXISTS {staging.ROWS}; "
        f"CREATE TEMP TABLE _stage_shapes AS SELECT s.*, g.{geometry} FROM {staging.STAGE} AS s "
        f"JOIN {GEOMETRY_TABLE} AS g USING (_line) ORDER BY _line; "
        f"DROP TABLE {staging.STAGE}; DROP TABLE {GEOMETRY_TABLE}; "
        f"ALTER TABLE _stage_shapes RENAME TO {staging.STAGE}"
    )
    staging.row_view(con, dataset, staged.line_expr)
    return staged
