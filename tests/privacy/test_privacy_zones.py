"""Zones that cut across districts: the slivers a reader can difference out stay protected.

The city has districts D1 (beats B1, B2, B3) and D2 (beats B4, B5); a zone Z takes beats of
both. The tables hold districts, the zone and the city, not beats (as the public's monthly tables
do), so a sliver is never a published cell. Every verdict is re-checked by an LP over the beats
themselves, written here from the zone's definition and not from the engine's equations.
"""

from __future__ import annotations

import datetime as dt
import statistics

import numpy as np
import pytest
import scipy.optimize

from cs360_pipeline.privacy.audit import Publication, audit
from cs360_pipeline.privacy.complementary import protect
from cs360_pipeline.privacy.geography import Geography
from cs360_pipeline.privacy.lattice import PIECE, Lattice
from cs360_pipeline.settings import SHIPPED_POLICY

K = 10
MONTH = "2025-01-01"
BEATS = {"B1": "D1", "B2": "D1", "B3": "D1", "B4": "D2", "B5": "D2"}


def areas(zone: list[str]) -> dict[str, list[str]]:
    """Each published area's beats."""
    return {
        "D1": ["B1", "B2", "B3"],
        "D2": ["B4", "B5"],
        "RIV": list(BEATS),
        "Z": zone,
    }


def zone_table(counts: dict[str, int], zone: list[str]) -> tuple[Lattice, Geography]:
    """Districts, the zone, the city and the zone's pieces for one month."""
    geography = Geography.build(BEATS.items(), "RIV", {"Z": zone})
    covers = {code: beats for code, beats in areas(zone).items()}
    for beat, piece in geography.piece_of().items():
        covers.setdefault(piece, []).append(beat)
    level = {"D1": "district", "D2": "district", "RIV": "city", "Z": "zone"}
    keys = [("month", MONTH, level.get(code, PIECE), code, "total") for code in covers]
    values = [sum(counts[b] for b in beats) for beats in covers.values()]
    return Lattice.build(keys, values, geography), geography


def shown(lattice: Lattice, suppressed: np.ndarray) -> dict[str, int]:
    return {
        key.geo_code: int(lattice.n[i]) for i, key in enumerate(lattice.keys) if not suppressed[i]
    }


def sliver_range(published: dict[str, int], zone: list[str], sliver: list[str]) -> tuple:
    """What a reader can learn of the beats in ``sliver`` from the published areas: an LP whose
    unknowns are the beats (>= 0), one equation per published area."""
    beats = list(BEATS)
    rows = [[1.0 if b in areas(zone)[code] else 0.0 for b in beats] for code in published]
    target = [1.0 if b in sliver else 0.0 for b in beats]
    bounds = []
    for sign in (1, -1):
        res = scipy.optimize.linprog(
            np.multiply(sign, target),
            A_eq=np.array(rows),
            b_eq=np.array(list(published.values()), dtype=float),
            bounds=[(0, None)] * len(beats),
            method="highs",
        )
        assert res.status == 0
        bounds.append(sign * res.fun)
    return bounds[0], bounds[1]


CUT = {"B1": 20, "B2": 17, "B3": 3, "B4": 25, "B5": 25}  # D1 40, D2 50, the zone's D1 part 37


def test_geography_cuts_only_the_districts_a_zone_touches():
    geography = Geography.build([*BEATS.items(), ("B6", "D3")], "RIV", {"Z": ["B1", "B4", "B5"]})
    assert geography.pieces == {"piece:Z@D1": ("Z",), "piece:@D1": (), "piece:Z@D2": ("Z",)}
    assert geography["B2"] == "piece:@D1" and geography["piece:@D1"] == "D1"
    assert geography["B6"] == "D3" and geography["D3"] == "RIV"
    assert geography.zone_beats() == {"Z": ["B1", "B4", "B5"]}


def test_a_zone_naming_an_unknown_beat_or_an_existing_code_is_refused():
    with pytest.raises(ValueError, match="zone 'Z' lists beats the city does not have: B9"):
        Geography.build(BEATS.items(), "RIV", {"Z": ["B1", "B9"]})
    with pytest.raises(ValueError, match="zone 'D2': the code is also a beat"):
        Geography.build(BEATS.items(), "RIV", {"D2": ["B1"]})


def test_the_zone_equations_hold_and_link_pieces_to_both_trees():
    zone = ["B1", "B2", "B4", "B5"]
    lattice, _ = zone_table(CUT, zone)
    assert not lattice.residuals().any()
    sums = {
        (lattice.keys[lattice.eq_parent[e]].geo_code, lattice.eq_dim[e]): sorted(
            lattice.keys[c].geo_code for c in lattice.children(e)
        )
        for e in range(lattice.n_equations)
    }
    assert sums == {
        ("D1", "geo"): ["piece:@D1", "piece:Z@D1"],
        ("D2", "geo"): ["piece:Z@D2"],
        ("RIV", "geo"): ["D1", "D2"],
        ("Z", "zone"): ["piece:Z@D1", "piece:Z@D2"],
    }


def test_a_sliver_of_three_between_a_district_and_the_zone_stays_hidden():
    """The zone holds all of D2 and 37 of D1's 40: publishing D1, D2, the zone and the city
    shows D1 - (Z - D2) = 3 although no published cell is small."""
    zone = ["B1", "B2", "B4", "B5"]
    lattice, _ = zone_table(CUT, zone)
    pieces = np.array([k.geo_level == PIECE for k in lattice.keys])
    everything = shown(lattice, pieces)
    assert sliver_range(everything, zone, ["B3"]) == (3, 3)  # the leak, seen independently
    naive = audit([Publication(lattice, pieces, K)], exact=True)
    assert not naive.passed
    assert {f.key.geo_code for f in naive.failures} == {"piece:@D1"}

    result = protect(lattice, K, unshown=pieces)
    assert result.audit.passed
    published = shown(lattice, result.suppressed)
    assert set(published) < {"D1", "D2", "RIV", "Z"}
    low, high = sliver_range(published, zone, ["B3"])
    assert low == 0 and high >= K


def test_a_zone_whose_slivers_cannot_be_differenced_costs_nothing():
    """Z takes B1, B2 of D1 and B4 of D2: each district's sliver is traded against the other's
    (D1's ranges over 0..28), so everything but the pieces is published."""
    zone = ["B1", "B2", "B4"]
    lattice, _ = zone_table(CUT, zone)
    pieces = np.array([k.geo_level == PIECE for k in lattice.keys])
    result = protect(lattice, K, unshown=pieces)
    assert result.audit.passed
    published = shown(lattice, result.suppressed)
    assert set(published) == {"D1", "D2", "RIV", "Z"}
    assert sliver_range(published, zone, ["B3"]) == (0, 28)


def test_overlap_follows_zone_membership():
    zone = ["B1", "B2", "B4", "B5"]
    lattice, _ = zone_table(CUT, zone)
    key = {k.geo_code: k for k in lattice.keys}
    assert lattice.overlap(key["Z"], key["D1"]) and lattice.overlap(key["Z"], key["D2"])
    assert lattice.overlap(key["Z"], key["piece:Z@D1"])
    assert not lattice.overlap(key["Z"], key["piece:@D1"])
    assert not lattice.overlap(key["piece:@D1"], key["D2"])


# -- zones through the cell builder and the protector ---------------------------------------

ZONES = {"CORR": ["B12", "B21"], "EAST": ["B11", "B22"]}  # each takes a beat of D1 and of D2


@pytest.fixture(scope="module")
def zoned(tmp_path_factory: pytest.TempPathFactory):
    """test_cells' restricted rows, protected under a policy with two cross-district zones."""
    from cs360_pipeline.privacy import vault
    from cs360_pipeline.privacy.cells import CellBuilder
    from cs360_pipeline.privacy.policy import Zone, load_policy
    from cs360_pipeline.privacy.protection import Protector
    from cs360_pipeline.privacy.zones import raw_tables, restricted_to_shared
    from cs360_pipeline.registry import Provider
    from tests.privacy.test_cells import PROVIDER_CONFIG, paths_in, write_raw

    shipped = load_policy(SHIPPED_POLICY)
    tables = shipped.tables.model_copy(
        update={"zones": {z: Zone(name=f"Zone {z}", beats=b) for z, b in ZONES.items()}}
    )
    policy = shipped.model_copy(
        update={
            "tables": tables,
            "defaults": shipped.defaults.model_copy(update={"max_small_share": 1.0}),
        }
    )
    provider = Provider.model_validate(PROVIDER_CONFIG)
    paths = paths_in(tmp_path_factory.mktemp("zones"))
    write_raw(paths.raw_db)
    with restricted_to_shared(paths) as con:
        builder = CellBuilder(con, policy)
        true = {
            (name, *r[1:6]): r[6:8]
            for name in provider.measures
            for r in con.execute(builder.true_cells(provider, name)).fetchall()
        }
        vault.attach(con, paths)
        done = Protector(con, policy, {}, log=lambda _: None).build_provider(
            provider, raw_tables(con)
        )
        shared = con.execute(
            "SELECT audience, measure_id, period_level, period_start, geo_level, geo_code, "
            "breakdown, n, suppressed FROM shared.cells_police"
        ).fetchall()
    return true, shared, done


def test_zone_cells_count_each_row_once_in_every_zone_it_lies_in(zoned):
    from tests.privacy.test_cells import EVENTS, sex_label

    true, _, _ = zoned
    expected: dict[tuple, int] = {}
    minutes: dict[str, list[float]] = {}
    for e in EVENTS:
        for zone, beats in ZONES.items():
            if e.beat in beats:
                for label in ("total", sex_label(e.sex)):
                    key = ("year", zone, label)
                    expected[key] = expected.get(key, 0) + 1
                if e.minutes is not None:
                    minutes.setdefault(zone, []).append(e.minutes)
    for zone in ZONES:
        for label in ("total", "sex=F", "sex=M", "sex=U"):
            cell = true[("all_events", "year", dt.date(2025, 1, 1), "zone", zone, label)]
            assert cell[0] == expected.get(("year", zone, label), 0)
        n, median = true[("response", "year", dt.date(2025, 1, 1), "zone", zone, "total")]
        assert n == len(minutes[zone]) and median == statistics.median(minutes[zone])
    # 12 people flagged in January lived in T1 (beat B11), which is in EAST only.
    flagged = {
        k[4]: v[0]
        for k, v in true.items()
        if k[0] == "flagged_people"
        and k[3] == "zone"
        and k[1] == "month"
        and k[2] == dt.date(2025, 1, 1)
        and k[5] == "total"
    }
    assert flagged == {"EAST": 12, "CORR": 0}


def test_zone_pieces_add_up_and_are_never_shared(zoned):
    true, shared, done = zoned
    cells = {k[1:]: v[0] for k, v in true.items() if k[0] == "all_events"}
    for (pl, ps, gl, gc, bd), n in cells.items():
        if gl == "district":
            pieces = [
                v
                for (a, b, g, c, d), v in cells.items()
                if (a, b, g, d) == (pl, ps, PIECE, bd) and c.endswith("@" + gc)
            ]
            assert len(pieces) == 2 and sum(pieces) == n
    assert not [r for r in shared if r[4] == PIECE]
    assert {r[5] for r in shared if r[4] == "zone"} == set(ZONES)
    public_zone = [r for r in shared if r[0] == "public" and r[4] == "zone"]
    assert public_zone and {r[6] for r in public_zone} == {"total"}  # breakdowns: city only
    lines = [d.line() for d in done if d.measure_id == "police__all_events"]
    assert all("zones cut districts into" in line for line in lines)
    for r in shared:
        if not r[8]:
            assert r[7] == true[(r[1].removeprefix("police__"), *r[2:7])][0]


# -- the policy's zones and the table design ---------------------------------------------------


def test_zone_codes_are_checked_when_the_policy_loads(tmp_path):
    import yaml

    from cs360_pipeline.privacy.policy import PolicyError, load_policy
    from tests.privacy.test_privacy_policy import SHIPPED

    raw = yaml.safe_load(SHIPPED.read_text())
    raw["tables"]["zones"] = {"=HYPERLINK(1)": {"name": "Campus", "beats": ["0101"]}}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError, match=r"tables\.zones: .*letters, digits"):
        load_policy(path)
    raw["tables"]["zones"] = {"CAMPUS": {"name": "Campus", "beats": []}}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError, match=r"tables\.zones\.CAMPUS\.beats"):
        load_policy(path)


def test_a_sparse_zone_level_takes_its_pieces_but_not_the_beats():
    from cs360_pipeline.privacy.levels import sparse_levels

    def cell(geo: str, code: str, n: int) -> tuple:
        return ("month", MONTH, geo, code, "total", n)

    rows = [
        cell("beat", "B1", 20), cell("beat", "B2", 30),
        cell(PIECE, "piece:Z@D1", 3), cell(PIECE, "piece:@D1", 4),  # small, never judged
        cell("zone", "Z", 4), cell("zone", "Y", 5), cell("zone", "X", 50),
        cell("district", "D1", 50), cell("city", "RIV", 50),
    ]  # fmt: skip
    month = frozenset()
    assert sparse_levels(rows, K, 0.5) == {("zone", "month", month), (PIECE, "month", month)}
    rows[-2] = cell("district", "D1", 5)
    rows.append(cell("district", "D2", 6))
    assert sparse_levels(rows, K, 0.5) == {
        ("district", "month", month), ("zone", "month", month), (PIECE, "month", month),
        ("beat", "month", month),
    }  # fmt: skip


def test_beats_sum_to_their_district_when_the_pieces_are_left_out():
    geography = Geography.build(BEATS.items(), "RIV", {"Z": ["B1", "B4"]})
    keys = [("month", MONTH, "beat", b, "total") for b in BEATS]
    keys += [("month", MONTH, "district", d, "total") for d in ("D1", "D2")]
    values = [CUT[b] for b in BEATS] + [40, 50]
    lattice = Lattice.build(keys, values, geography)
    sums = {
        lattice.keys[lattice.eq_parent[e]].geo_code: len(lattice.children(e))
        for e in range(lattice.n_equations)
    }
    assert sums == {"D1": 3, "D2": 2}


# -- zones drawn as areas on the city's beat map ------------------------------------------------
# The beat map of test_geography_points (grid units of 1/16 degree): A1 (0..2 x 0..2, a hole
# 0.5..1.5 in both, so area 3) and A2 (2..4 x 0..2, area 4) in D1; B1 (0..2 x 2..4 plus an
# island 6..7 x 0..1, area 5) and B2 (2..4 x 2..4, area 4) in D2. The area below, x 0.9..3.2 by
# y 0..4, holds 1.6 of A1 (2.2 less 0.6 of hole: 53%), 2.4 of A2 (60%), 2.2 of B1 (44%) and
# 2.4 of B2 (60%), worked out by hand.


def area_policy(share: float | None = None, box: tuple[float, ...] = (0.9, 0.0, 3.2, 4.0)):
    from cs360_pipeline.privacy.policy import Zone, load_policy
    from tests.privacy.test_geography_points import square

    zone: dict = {"name": "Harbour", "area": {"type": "Polygon", "coordinates": [square(*box)]}}
    if share is not None:
        zone["min_beat_share"] = share
    shipped = load_policy(SHIPPED_POLICY)
    tables = shipped.tables.model_copy(update={"zones": {"HARBOUR": Zone(**zone)}})
    return shipped.model_copy(update={"tables": tables})


@pytest.fixture
def mapped_city(tmp_path):
    """A build database with the restricted database of the small beat map attached."""
    import json

    from cs360_pipeline.sql import connect
    from tests.privacy.test_geography_points import SMALL_MAP, deliver_map

    (outcome, _), _ = deliver_map(tmp_path, json.dumps(SMALL_MAP).encode())
    assert outcome.status == "loaded", outcome.message
    con = connect(tmp_path / "build.duckdb")
    con.execute(f"ATTACH '{tmp_path / 'raw.duckdb'}' AS raw (READ_ONLY)")
    yield con
    con.close()


@pytest.mark.parametrize(
    ("share", "beats"),
    [(None, ["A1", "A2", "B2"]), (0.55, ["A2", "B2"]), (0.45, ["A1", "A2", "B2"])],
)
def test_an_area_takes_the_beats_lying_mostly_inside_it(mapped_city, share, beats):
    from cs360_pipeline.privacy.geography import city_geography

    geography = city_geography(mapped_city, area_policy(share))
    assert geography.zone_beats() == {"HARBOUR": beats}
    # The zone cuts both districts: D2's B2 is in it and B1 is not; D1's A1 lies in it or not.
    assert geography["A1"] == ("piece:HARBOUR@D1" if "A1" in beats else "piece:@D1")
    assert geography["B1"] == "piece:@D2" and geography["B2"] == "piece:HARBOUR@D2"


def test_the_release_check_measures_the_area_on_the_published_beat_map(mapped_city):
    from cs360_pipeline.privacy.geography import city_geography, published_geography
    from cs360_pipeline.privacy.reference import build_geography, zone_lines

    policy = area_policy()
    build_geography(mapped_city, policy)
    assert published_geography(mapped_city, policy) == city_geography(mapped_city, policy)
    assert mapped_city.execute("SELECT count(*) FROM shared.beat_boundaries").fetchone() == (4,)
    assert zone_lines(mapped_city, policy) == [
        "zone HARBOUR: 3 beats (the beats at least 50% inside its area): A1, A2, B2"
    ]


def test_an_area_without_a_beat_map_or_without_beats_is_refused(mapped_city, tmp_path):
    from cs360_pipeline.privacy.geography import city_geography
    from cs360_pipeline.privacy.policy import PolicyError
    from cs360_pipeline.sql import connect

    with pytest.raises(PolicyError, match="zone 'HARBOUR': no beat lies at least 50% inside"):
        city_geography(mapped_city, area_policy(box=(10, 10, 11, 11)))
    con = connect(tmp_path / "bare.duckdb")  # a city that delivered beats.csv only
    try:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.city__beats AS SELECT 'A1' AS beat, 'D1' AS district")
        with pytest.raises(PolicyError, match="zone 'HARBOUR' is an area: it needs the city's"):
            city_geography(con, area_policy())
    finally:
        con.close()


@pytest.mark.parametrize(
    ("zone", "words"),
    [
        ({"name": "Z"}, "either beats"),
        ({"name": "Z", "beats": ["0101"], "area": {"type": "Polygon"}}, "either beats"),
        ({"name": "Z", "area": {"type": "Point", "coordinates": [0, 0]}}, "Polygon or Multi"),
        ({"name": "Z", "area": {"type": "Polygon", "coordinates": 7}}, "rings"),
        (  # a bow tie crosses itself
            {
                "name": "Z",
                "area": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                },
            },
            r"not a valid polygon \(Self-intersection\)",
        ),
        (
            {
                "name": "Z",
                "area": {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [200, 1], [0, 0]]]},
            },
            "longitude -180..180",
        ),
    ],
)
def test_an_area_is_checked_when_the_policy_loads(tmp_path, zone, words):
    import yaml

    from cs360_pipeline.privacy.policy import PolicyError, load_policy
    from tests.privacy.test_privacy_policy import SHIPPED

    raw = yaml.safe_load(SHIPPED.read_text())
    raw["tables"]["zones"] = {"CAMPUS": zone}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError, match=rf"tables\.zones\.CAMPUS.*{words}"):
        load_policy(path)
