"""Geography from coordinates: beat boundaries delivered as GeoJSON, points placed on them.

Unit level: a map of four beats in two districts (one beat with a hole, one a MultiPolygon) is
ingested from a real drop folder into a real restricted database, and points inside, outside,
in the hole, on shared edges and corners, without coordinates and at (0, 0) are placed by the
privacy step's code; the expected beat of each comes from a ray-casting test written here
(closed polygons, holes excluded, smallest code on a shared edge), not from shapely.

One real refresh: the demo city whose police incidents carry only longitude and latitude and
whose city delivers beats.geojson and no beats.csv. Its published beat, district and city cells
(where not suppressed) equal a count made here from the delivered files with the ray-casting
test, and the rows placed in no beat are named in the refresh output and ``cs360 status``.
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from pydantic import ValidationError

from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.privacy.boundaries import derive_beat_tree, place, tree_differences
from cs360_pipeline.registry import Provider
from cs360_pipeline.registry.models import Dataset, Points
from cs360_pipeline.settings import SHIPPED_POLICY
from cs360_pipeline.sql import connect
from tests.conftest import TEST_PROVIDER_HEADER, Deployment, edit_provider, new_deployment

pytestmark = pytest.mark.refreshes(minutes=0.6)  # of real refreshes: scheduled first

S = 0.0625  # one grid step in degrees: a binary fraction, so edges are exact in floating point
LON0, LAT0 = -90.0, 40.0
SECRET = "Kept-Out-Of-Messages-7731"  # a property value no message may repeat


def lonlat(gx: float, gy: float) -> list[float]:
    return [LON0 + gx * S, LAT0 + gy * S]


def square(x0: float, y0: float, x1: float, y1: float, clockwise: bool = False) -> list:
    ring = [lonlat(x0, y0), lonlat(x1, y0), lonlat(x1, y1), lonlat(x0, y1), lonlat(x0, y0)]
    return ring[::-1] if clockwise else ring


def feature(props: dict[str, Any], kind: str, coordinates: list) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": kind, "coordinates": coordinates},
    }


# A1 | A2     district D1 (bottom row), D2 (top row); A1 has a hole (a park in no beat),
# ---+---     B1 also owns an island at (6..7, 0..1).
# B1 | B2
SMALL_MAP = {
    "type": "FeatureCollection",
    "features": [
        feature({"BEAT_NO": "A1", "DIST": "D1", "NAME": SECRET}, "Polygon",
                [square(0, 0, 2, 2), square(0.5, 0.5, 1.5, 1.5, clockwise=True)]),
        feature({"BEAT_NO": "A2", "DIST": "D1"}, "Polygon", [square(2, 0, 4, 2)]),
        feature({"BEAT_NO": "B1", "DIST": "D2"}, "MultiPolygon",
                [[square(0, 2, 2, 4)], [square(6, 0, 7, 1)]]),
        feature({"BEAT_NO": "B2", "DIST": "D2"}, "Polygon", [square(2, 2, 4, 4)]),
    ],
}  # fmt: skip

BOUNDARIES: dict[str, Any] = {
    "title": "Police beat boundaries",
    "file_pattern": "beats*.geojson",
    "format": "geojson",
    "load": "replace",
    "cadence": "as_needed",
    "key": ["beat"],
    "max_file_mb": 8,
    "columns": {
        "beat": {"type": "VARCHAR", "required": True, "source": "BEAT_NO"},
        "beat_name": {"type": "VARCHAR", "source": "NAME"},
        "district": {"type": "VARCHAR", "required": True, "source": "DIST"},
        "district_name": {"type": "VARCHAR", "source": "DIST_NAME"},
    },
}
BEATS_CSV: dict[str, Any] = {
    "title": "Beats",
    "file_pattern": "beats*.csv",
    "load": "replace",
    "cadence": "as_needed",
    "key": ["beat"],
    "columns": {
        "beat": {"type": "VARCHAR", "required": True},
        "beat_name": {"type": "VARCHAR", "required": True},
        "district": {"type": "VARCHAR", "required": True},
        "district_name": {"type": "VARCHAR", "required": True},
    },
}
CITY = Provider.model_validate(
    {
        **TEST_PROVIDER_HEADER,
        "provider": "city",
        "community_map_area": "public works & traffic",
        "datasets": {"beats": BEATS_CSV, "beat_boundaries": BOUNDARIES},
    }
)


# -- the rule by hand: ray casting over closed polygons -----------------------------------------


def _on_segment(x: float, y: float, a: list[float], b: list[float]) -> bool:
    cross = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0])
    return (
        cross == 0
        and min(a[0], b[0]) <= x <= max(a[0], b[0])
        and min(a[1], b[1]) <= y <= max(a[1], b[1])
    )


def _inside_ring(x: float, y: float, ring: list[list[float]]) -> bool:
    inside = False
    for a, b in itertools.pairwise(ring):
        if (a[1] > y) != (b[1] > y):
            at = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x < at:
                inside = not inside
    return inside


def covers(geometry: dict[str, Any], x: float, y: float) -> bool:
    """The closed polygon holds the point: on any ring, or inside the shell and no hole."""
    polygons = (
        [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    )
    for rings in polygons:
        if any(_on_segment(x, y, a, b) for ring in rings for a, b in itertools.pairwise(ring)):
            return True
        if _inside_ring(x, y, rings[0]) and not any(_inside_ring(x, y, h) for h in rings[1:]):
            return True
    return False


def expected_beat(collection: dict[str, Any], x: float | None, y: float | None) -> str | None:
    if x is None or y is None or (x == 0 and y == 0):
        return None
    codes = [
        f["properties"]["BEAT_NO"] for f in collection["features"] if covers(f["geometry"], x, y)
    ]
    return min(codes) if codes else None


# -- unit level ---------------------------------------------------------------------------------


def deliver_map(root: Path, data: bytes, name: str = "beats.geojson") -> tuple[Any, DropFolder]:
    """Ingest one boundary file into ``root``'s restricted database; (outcome, drop folder)."""
    folder = DropFolder(root / "sources" / "city", settle_seconds=0)
    folder.inbox.mkdir(parents=True, exist_ok=True)
    (folder.inbox / name).write_bytes(data)
    con = connect(root / "raw.duckdb")
    try:
        (outcome,) = ingest_dataset(con, CITY, "beat_boundaries", folder, log=lambda _: None)
        note = derive_beat_tree(con, CITY)
    finally:
        con.close()
    return (outcome, note), folder


POINTS = {  # (grid x, grid y) -> the beat worked out by hand
    "inside A1": ((0.25, 0.25), "A1"),
    "in A1's hole": ((1.0, 1.0), None),
    "on A1's hole edge": ((0.5, 1.0), "A1"),
    "edge A1|A2": ((2.0, 1.0), "A1"),
    "edge B1|B2": ((2.0, 3.0), "B1"),
    "edge A2|B2": ((3.0, 2.0), "A2"),
    "corner of all four": ((2.0, 2.0), "A1"),
    "inside A2": ((3.5, 0.5), "A2"),
    "B1's island": ((6.5, 0.5), "B1"),
    "outside": ((10.0, 10.0), None),
    "outer corner of B2": ((4.0, 4.0), "B2"),
}


def test_points_are_placed_by_the_rule(tmp_path: Path) -> None:
    (outcome, note), _ = deliver_map(tmp_path, json.dumps(SMALL_MAP).encode())
    assert outcome.status == "loaded" and outcome.rows_loaded == 4, outcome.message
    assert note and "4 beats" in note
    rows = [(*lonlat(*xy), name) for name, (xy, _) in POINTS.items()]
    rows += [(None, LAT0, "no longitude"), (LON0, None, "no latitude"), (0.0, 0.0, "(0, 0)")]
    raw = connect(tmp_path / "raw.duckdb")
    try:
        raw.execute("CREATE TABLE police__incidents (lon DOUBLE, lat DOUBLE, label VARCHAR)")
        raw.executemany("INSERT INTO police__incidents VALUES (?, ?, ?)", rows)
        tree = raw.execute("SELECT beat, district, beat_name FROM city__beats ORDER BY 1")
        assert tree.fetchall() == [
            ("A1", "D1", SECRET), ("A2", "D1", "A2"), ("B1", "D2", "B1"), ("B2", "D2", "B2")
        ]  # fmt: skip
    finally:
        raw.close()
    con = connect(tmp_path / "build.duckdb")
    try:
        con.execute(f"ATTACH '{tmp_path / 'raw.duckdb'}' AS raw (READ_ONLY)")
        target = place(con, "police__incidents", Points(longitude="lon", latitude="lat"))
        placed = dict(
            con.execute(
                f"SELECT r.label, p._beat FROM raw.police__incidents AS r "
                f"LEFT JOIN {target} AS p ON p._geo_key = r.rowid"
            ).fetchall()
        )
        assert place(con, "police__incidents", Points(longitude="lon", latitude="lat")) == target
    finally:
        con.close()
    by_hand = {name: beat for name, (_, beat) in POINTS.items()}
    by_hand.update({"no longitude": None, "no latitude": None, "(0, 0)": None})
    assert placed == by_hand
    for name, (xy, beat) in POINTS.items():  # the ray-casting test agrees with the hand
        assert expected_beat(SMALL_MAP, *lonlat(*xy)) == beat, name


def test_beats_csv_and_boundaries_must_agree(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path / "sources" / "city", settle_seconds=0)
    folder.inbox.mkdir(parents=True)
    (folder.inbox / "beats.csv").write_text(
        "beat,beat_name,district,district_name\nA1,a,D1,d\nA2,b,D2,e\nB1,c,D2,e\nC9,x,D2,e\n"
    )
    con = connect(tmp_path / "raw.duckdb")
    try:
        ingest_dataset(con, CITY, "beats", folder, log=lambda _: None)
    finally:
        con.close()
    (_, note), _ = deliver_map(tmp_path, json.dumps(SMALL_MAP).encode())
    assert note and "beats.csv (city__beats) stays the beat tree" in note
    con = connect(tmp_path / "raw.duckdb")
    try:
        differ = tree_differences(con, catalog="")
        assert con.execute("SELECT count(*) FROM city__beats").fetchall()[0][0] == 4
    finally:
        con.close()
    assert differ == (
        "3 beat(s) differ: A2 (a different district), B2 (a polygon, not in beats.csv), "
        "C9 (in beats.csv, no polygon)"
    )


def _broken(change: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(SMALL_MAP))
    second = doc["features"][1]
    second["properties"]["NAME"] = SECRET
    if change == "bowtie":
        second["geometry"]["coordinates"] = [
            [lonlat(2, 0), lonlat(4, 2), lonlat(4, 0), lonlat(2, 2), lonlat(2, 0)]
        ]
    elif change == "open ring":
        second["geometry"]["coordinates"][0][-1] = lonlat(2.5, 0)
    elif change == "no beat":
        del second["properties"]["BEAT_NO"]
    elif change == "same beat":
        second["properties"]["BEAT_NO"] = "A1"
    elif change == "point":
        second["geometry"] = {"type": "Point", "coordinates": lonlat(3, 1)}
    elif change == "projected":
        second["geometry"]["coordinates"] = [[[x * 1e5, y * 1e5] for x, y in square(2, 0, 4, 2)]]
    elif change == "hole outside":
        second["geometry"]["coordinates"].append(square(8, 8, 9, 9, clockwise=True))
    return doc


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ("bowtie", "feature 2: its Polygon is not a valid shape (Self-intersection)"),
        ("open ring", "feature 2: polygon ring 1 is not closed"),
        ("no beat", "feature 2: property 'BEAT_NO' (beat) is missing"),
        ("same beat", "feature 2: property 'BEAT_NO' (beat) repeats the value of feature 1"),
        ("point", "feature 2: its geometry is a Point, not a Polygon or MultiPolygon"),
        ("projected", "feature 2: polygon ring 1 position 1 is outside longitude -180..180"),
        ("hole outside", "feature 2: its Polygon is not a valid shape (Hole lies outside shell)"),
        ("collection", "the top level is a Feature, not a FeatureCollection"),
        ("size", "over this dataset's size cap of 0.0001 MB (max_file_mb)"),
        ("json", "not valid JSON (Expecting"),
    ],
)
def test_a_broken_boundary_file_is_quarantined_with_its_feature(
    tmp_path: Path, change: str, rule: str
) -> None:
    global CITY
    doc: Any = _broken(change)
    if change == "collection":
        doc = doc["features"][1]
    data = json.dumps(doc).encode()
    if change == "json":
        data = data[:-5]
    saved = CITY
    if change == "size":
        tight = {**BOUNDARIES, "max_file_mb": 0.0001}
        CITY = Provider.model_validate(
            {**saved.model_dump(exclude_none=True), "datasets": {"beat_boundaries": tight}}
        )
    try:
        (outcome, _), folder = deliver_map(tmp_path, data, "beats_2026.geojson")
    finally:
        CITY = saved
    assert outcome.status == "quarantined"
    assert outcome.message.startswith("quarantined: beats_2026.geojson: "), outcome.message
    assert rule in outcome.message, outcome.message
    assert SECRET not in outcome.message and "A1" not in outcome.message.replace(rule, "")
    kept = list(folder.quarantine.glob("*__beats_2026.geojson"))
    assert len(kept) == 1 and kept[0].read_bytes() == data
    reason = kept[0].with_name(kept[0].name + ".reason.txt").read_text()
    assert rule in reason and SECRET not in reason
    assert not list(folder.inbox.iterdir())
    con = duckdb.connect(str(tmp_path / "raw.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    finally:
        con.close()
    assert "city__beat_boundaries" not in tables and "city__beats" not in tables


POLICE_POINTS: dict[str, Any] = {
    "title": "Incidents",
    "file_pattern": "incidents_*.csv",
    "cadence": "monthly",
    "period": "occurred_at",
    "columns": {
        "incident_number": {"type": "VARCHAR", "required": True},
        "occurred_at": {"type": "TIMESTAMP", "required": True},
        "lon": {"type": "DOUBLE"},
        "lat": {"type": "DOUBLE"},
        "label": {"type": "VARCHAR"},
    },
}


@pytest.mark.parametrize(
    ("geography", "message"),
    [
        ({"column": "lon", "points": {"longitude": "lon", "latitude": "lat"}}, "exactly one of"),
        ({}, "exactly one of"),
        ({"points": {"longitude": "lon", "latitude": "label"}}, "is VARCHAR; coordinates"),
        ({"points": {"longitude": "x", "latitude": "lat"}}, "'x' is not a delivered column"),
        ({"points": {"longitude": "lon"}}, "latitude"),
        (
            {
                "points": {"longitude": "lon", "latitude": "lat"},
                "crosswalk": {"dataset": "a.b", "key": "lon"},
            },
            "'crosswalk' applies to 'column'",
        ),
    ],
)
def test_points_geography_is_validated(geography: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Dataset.model_validate({**POLICE_POINTS, "geography": geography})
    ok = Dataset.model_validate(
        {**POLICE_POINTS, "geography": {"points": {"longitude": "lon", "latitude": "lat"}}}
    )
    assert ok.geography is not None and ok.geography.points == Points(
        longitude="lon", latitude="lat"
    )


def test_points_without_boundaries_say_what_is_missing() -> None:
    from cs360_pipeline.defs.privacy import unplaceable

    police = Provider.model_validate(
        {
            **TEST_PROVIDER_HEADER,
            "datasets": {
                "incidents": {
                    **POLICE_POINTS,
                    "geography": {"points": {"longitude": "lon", "latitude": "lat"}},
                }
            },
            "measures": {"all": {"title": "All", "dataset": "incidents", "kind": "count"}},
        }
    )
    delivered = {"police__incidents", "city__beats"}
    assert unplaceable(police, delivered, {"police__all"}) == [
        "police.incidents is placed by its coordinates (lon, lat) on the beat boundaries "
        "(city.beat_boundaries), which have not been delivered: drop beats.geojson into "
        "sources/city/inbox"
    ]
    assert unplaceable(police, {*delivered, "city__beat_boundaries"}, {"police__all"}) == []
    assert unplaceable(police, delivered, set()) == []  # no metric reads it: no failure


def test_a_geojson_dataset_is_validated() -> None:
    with pytest.raises(ValidationError, match="do not declare it"):
        Dataset.model_validate(
            {**BOUNDARIES, "columns": {**BOUNDARIES["columns"], "geometry": {"type": "VARCHAR"}}}
        )
    with pytest.raises(ValidationError, match="needs 'key'"):
        Dataset.model_validate({**BOUNDARIES, "key": []})
    assert Dataset.model_validate(BOUNDARIES).kept_columns[-1] == "geometry"


# -- one real refresh ---------------------------------------------------------------------------

VIOLENT = {"09A", "11A", "120", "13A"}
FIREARM = {"11", "12", "13", "14", "15"}


def city_map(beats: list[dict[str, str]]) -> dict[str, Any]:
    """A grid of square beats, one with a hole, one with an island: the demo city's beats."""
    cols = 4
    features = []
    for k, b in enumerate(beats):
        c, r = k % cols, k // cols
        rings = [square(c, r, c + 1, r + 1)]
        if k == 0:
            rings.append(square(c + 0.25, r + 0.25, c + 0.75, r + 0.75, clockwise=True))
        geometry = ("Polygon", rings)
        if k == 1:
            geometry = ("MultiPolygon", [rings, [square(c, -3, c + 1, -2)]])
        props = {"BEAT_NO": b["beat"], "NAME": b["beat_name"], "DIST": b["district"],
                 "DIST_NAME": b["district_name"]}  # fmt: skip
        features.append(feature(props, *geometry))
    return {"type": "FeatureCollection", "features": features}


def point_for(i: int, k: int, n_beats: int) -> tuple[str, str]:
    """Where incident ``i`` of beat ``k`` lies: mostly inside, some on edges, some nowhere."""
    c, r = k % 4, k // 4
    if i % 31 == 0:
        return "", ""
    if i % 37 == 1:
        return "0", "0"
    if i % 41 == 2:
        return repr(LON0 + 40 * S), repr(LAT0 + 40 * S)
    if i % 43 == 3:  # the right edge: shared with the next beat, if there is one
        gx, gy = c + 1.0, r + 0.5
    else:
        gx, gy = c + ((i * 37) % 80 + 10) / 100, r + ((i * 53) % 80 + 10) / 100
    x, y = lonlat(gx, gy)
    return repr(x), repr(y)


def to_points(deployment: Deployment, beats: list[dict[str, str]]) -> None:
    """Rewrite the police incident files with longitude/latitude instead of a beat."""
    index = {b["beat"]: k for k, b in enumerate(beats)}
    for path in sorted((deployment.sources / "police" / "inbox").glob("incidents_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [h for h in reader.fieldnames or [] if h != "beat"] + ["lon", "lat"]
            rows = list(reader)
        for i, row in enumerate(rows):
            row["lon"], row["lat"] = point_for(i, index[row.pop("beat")], len(beats))
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, header)
            writer.writeheader()
            writer.writerows(rows)

    def change(data: dict[str, Any]) -> None:
        incidents = data["datasets"]["incidents"]
        del incidents["columns"]["beat"]
        incidents["columns"]["lon"] = {"type": "DOUBLE"}
        incidents["columns"]["lat"] = {"type": "DOUBLE"}
        incidents["geography"] = {"points": {"longitude": "lon", "latitude": "lat"}}

    edit_provider(deployment.sources, "police", change)


@pytest.fixture(scope="module")
def points_city(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, Any]:
    from cs360_pipeline.demo import generate

    root = tmp_path_factory.mktemp("points_city")
    deployment = new_deployment(root)
    generate(deployment.sources, seed=5, scale=0.05, end_month="2025-06", months=6)
    inbox = deployment.sources / "city" / "inbox"
    with (inbox / "beats.csv").open(newline="", encoding="utf-8") as handle:
        beats = list(csv.DictReader(handle))
    (inbox / "beats.csv").unlink()
    collection = city_map(beats)
    (inbox / "beats.geojson").write_text(json.dumps(collection), encoding="utf-8")

    def boundaries_only(data: dict[str, Any]) -> None:
        """The city delivers polygons and no beats.csv: its beats dataset is not declared."""
        del data["datasets"]["beats"]
        data["datasets"]["beat_boundaries"] = BOUNDARIES

    edit_provider(deployment.sources, "city", boundaries_only)
    to_points(deployment, beats)
    for folder in deployment.sources.glob("*/inbox"):
        shutil.copytree(folder, deployment.delivered / folder.parent.name)
    policy = yaml.safe_load(SHIPPED_POLICY.read_text())
    # Small cells visible, and no level left out for being mostly small: every level compared.
    policy["providers"]["police"] = {"min_cell_size": 2, "max_small_share": 1.0}
    policy["tables"]["zones"] = {"HARBOUR": HARBOUR}
    policy_file = root / "policy.yml"
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
    deployment = Deployment(
        root=deployment.root,
        sources=deployment.sources,
        data=deployment.data,
        delivered=deployment.delivered,
    )
    import os

    os.environ["CS360_POLICY_FILE"] = str(policy_file)
    try:
        refresh = deployment.cs360("refresh", check=False)
        status = deployment.cs360("status", check=False)
    finally:
        del os.environ["CS360_POLICY_FILE"]
    assert refresh.returncode == 0, f"{refresh.stdout}\n{refresh.stderr}"
    return deployment, (collection, beats, refresh, status)


# A zone drawn as an area: an L over the grid's first row up to x 3.6 and its second row up to
# x 1.55. It holds all of beat 0 (its square less its hole), 50% of beat 1 (its square, not its
# island), all of beat 2, 60% of beat 3, all of beat 4 and 55% of beat 5, nothing of the others
# (worked out by hand): with a 45% share, the demo's district D01, so it costs no cell.
L_SHAPE = [(0, 0), (3.6, 0), (3.6, 1), (1.55, 1), (1.55, 2), (0, 2), (0, 0)]
HARBOUR = {
    "name": "Harbour",
    "area": {"type": "Polygon", "coordinates": [[lonlat(x, y) for x, y in L_SHAPE]]},
    "min_beat_share": 0.45,
}
HARBOUR_BEATS = (0, 1, 2, 3, 4, 5)  # grid positions of the beats at least 45% inside


def independent_counts(
    deployment: Deployment, collection: dict[str, Any], beats: list[dict[str, str]]
) -> tuple[Counter, int, int]:
    """Violent firearm crimes per (level, code, period level, YYYY-MM) by the rule by hand,
    the zone HARBOUR counting the rows of its beats.

    Returns (cells, rows the measure counts, rows placed in no beat).
    """
    district = {b["beat"]: b["district"] for b in beats}
    harbour = {beats[k]["beat"] for k in HARBOUR_BEATS}
    cells: Counter = Counter()
    rows = unplaced = 0
    for path in sorted((deployment.delivered / "police").glob("incidents_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["offense_code"] not in VIOLENT or row["weapon_force_code"] not in FIREARM:
                    continue
                rows += 1
                x = float(row["lon"]) if row["lon"] else None
                y = float(row["lat"]) if row["lat"] else None
                beat = expected_beat(collection, x, y)
                if beat is None:
                    unplaced += 1
                    continue
                year, month = row["occurred_at"][:4], int(row["occurred_at"][5:7])
                periods = (
                    ("month", f"{year}-{month:02d}"),
                    ("quarter", f"{year}-{(month - 1) // 3 * 3 + 1:02d}"),
                    ("year", f"{year}-01"),
                )
                places = [("beat", beat), ("district", district[beat]), ("city", None)]
                places += [("zone", "HARBOUR")] if beat in harbour else []
                for key in places:
                    for period in periods:
                        cells[(*key, *period)] += 1
    return cells, rows, unplaced


def test_published_cells_equal_the_count_by_hand(points_city: tuple[Deployment, Any]) -> None:
    deployment, (collection, beats, refresh, _status) = points_city
    expected, rows, unplaced = independent_counts(deployment, collection, beats)
    assert unplaced > 0 and rows > unplaced
    published = deployment.query(
        "SELECT geo_level, geo_code, period_level, strftime(period_start, '%Y-%m'), numerator, "
        "status FROM metric_values WHERE audience = 'pst' "
        "AND metric_id = 'violent_firearm_crimes' AND breakdown = 'total'"
    )
    compared: Counter = Counter()
    for level, code, period_level, start, n, state in published:
        key = (level, None if level == "city" else code, period_level, start)
        if state == "suppressed":
            assert n is None
            continue
        assert n == expected.get(key, 0), (key, n, expected.get(key, 0))
        compared[level] += 1
    assert compared["beat"] >= 10 and compared["district"] >= 3 and compared["city"] >= 3, compared
    assert compared["zone"] >= 3, compared  # the zone drawn as an area, counted by its beats
    # Every row the rule places is in the city total: nothing counted twice on shared edges.
    city = sum(n for (level, _, p, _), n in expected.items() if level == "city" and p == "year")
    assert city == rows - unplaced
    line = f"{unplaced:,} of {rows:,} rows placed in no beat"
    build = duckdb.connect(str(deployment.data / "build" / "build.duckdb"), read_only=True)
    try:
        zone = build.execute("SELECT beat_code FROM shared.zone_beats ORDER BY 1").fetchall()
    finally:
        build.close()
    assert [b for (b,) in zone] == sorted(beats[k]["beat"] for k in HARBOUR_BEATS)
    assert f"police__violent_firearm_crimes (police/incidents, by points): {line}" in refresh.stdout


def test_unplaced_rows_are_in_the_privacy_report_and_status(
    points_city: tuple[Deployment, Any],
) -> None:
    deployment, (collection, beats, _refresh, status) = points_city
    _, _, unplaced = independent_counts(deployment, collection, beats)
    report = dict(
        deployment.query(
            "SELECT metric_id, rows_unplaced FROM privacy_report WHERE audience = 'pst'"
        )
    )
    assert report["violent_firearm_crimes"] == unplaced
    assert report["shots_fired_calls"] == 0  # calls still come with a beat code
    assert "Rows placed in no beat (counted in no cell)" in status.stdout, status.stdout
    assert f"  violent_firearm_crimes: {unplaced:,}" in status.stdout
    assert "city/beats" not in status.stdout + status.stderr  # nothing waits for a beats.csv
    geography = deployment.query("SELECT count(*) FROM geography WHERE geo_level = 'beat'")
    assert geography[0][0] == len(beats)
