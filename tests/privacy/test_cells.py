"""Privacy cells: hand-made row-level tables in a real restricted DuckDB, cells built for real.

A tiny city (districts D1 = {B11, B12}, D2 = {B21, B22}) and a provider with four measures:

- ``all_events`` (count, by sex): every beat x month x sex cell is 0 or >= k, so nothing is
  suppressed and every margin must add up;
- ``rare_events`` (count): a handful of rows, so small cells must be suppressed;
- ``response`` (median of ``minutes``);
- ``flagged_people`` (entities with ``having``), placed on beats through a tract crosswalk.

The true cells (what ``CellBuilder`` computes, never stored) are checked against an independent
Python computation over the same rows; the protected cells (what ``Protector`` writes to the
shared zone for each audience) are checked for what they may and may not show.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.audit import Publication, audit
from cs360_pipeline.privacy.cells import CellBuilder
from cs360_pipeline.privacy.geography import city_geography
from cs360_pipeline.privacy.lattice import Lattice
from cs360_pipeline.privacy.policy import Policy, load_policy
from cs360_pipeline.privacy.protection import ProtectedMeasure, Protector
from cs360_pipeline.privacy.zones import raw_tables, restricted_to_shared
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import SHIPPED_POLICY, Paths
from cs360_pipeline.sql import connect
from tests.conftest import TEST_PROVIDER_HEADER

BEATS = {"B11": "D1", "B12": "D1", "B21": "D2", "B22": "D2"}
CITY = "RIV"
K = 10  # privacy/policy.yml: police min_cell_size
JAN, FEB, APR = dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 4, 1)
Q1, Q2, Y2025 = dt.date(2025, 1, 1), dt.date(2025, 4, 1), dt.date(2025, 1, 1)
MAR = dt.date(2025, 3, 1)

# (beat, month) -> {raw sex value: rows}; every resulting sex=F/M/U cell is 0 or >= K.
EVENT_COUNTS: dict[tuple[str, dt.date], dict[str | None, int]] = {
    ("B11", JAN): {"F": 10, "M": 12},
    ("B11", FEB): {"F": 11, "M": 10},
    ("B11", APR): {"F": 10, "M": 10, "X": 10},  # 'X' is not in the sex domain: counted as U
    ("B12", JAN): {"F": 10, "M": 10},
    # B12 has no rows at all in February: zero-filled.
    ("B12", APR): {"F": 13, "M": 10},
    ("B21", JAN): {"F": 10, "M": 10, None: 10},  # NULL sex is counted as U
    ("B21", FEB): {"F": 10, "M": 14},
    ("B21", APR): {"F": 10, "M": 10},
    ("B22", JAN): {"F": 12, "M": 10},
    ("B22", FEB): {"F": 10, "M": 10},
    ("B22", APR): {"F": 10, "M": 11},
}
# Rare rows (kind = 'rare'), also counted by all_events: 3 in B22 and 8 in B21 in February,
# so both beats are suppressed while district D2 (11) is shown.
RARE_COUNTS = {("B22", FEB): 3, ("B21", FEB): 8}
UNLOCATED_EVENTS = [("B99", 4), (None, 2)]  # unknown beat, missing beat; all in January

PROVIDER_CONFIG: dict[str, Any] = {
    **TEST_PROVIDER_HEADER,
    "datasets": {
        "events": {
            "title": "Events",
            "file_pattern": "events_*.csv",
            "cadence": "monthly",
            "period": "occurred_at",
            "geography": {"column": "beat"},
            "columns": {
                "event_id": {"type": "VARCHAR", "required": True},
                "occurred_at": {"type": "TIMESTAMP", "required": True},
                "beat": {"type": "VARCHAR"},
                "sex": {"type": "VARCHAR"},
                "kind": {"type": "VARCHAR"},
                "minutes": {"type": "DOUBLE"},
            },
        },
        "contacts": {
            "title": "Contacts",
            "file_pattern": "contacts_*.csv",
            "cadence": "monthly",
            "period": "contact_date",
            "geography": {
                "column": "tract",
                "crosswalk": {"dataset": "city.tracts", "key": "tract_geoid"},
            },
            "columns": {
                "person_id": {"type": "VARCHAR", "required": True},
                "contact_date": {"type": "DATE", "required": True},
                "tract": {"type": "VARCHAR"},
                "flagged": {"type": "INTEGER"},
            },
        },
    },
    "measures": {
        "all_events": {
            "title": "All events",
            "dataset": "events",
            "kind": "count",
            "breakdowns": {"sex": "sex"},
        },
        "rare_events": {
            "title": "Rare events",
            "dataset": "events",
            "kind": "count",
            "where": "kind = 'rare'",
        },
        "response": {
            "title": "Median minutes",
            "dataset": "events",
            "kind": "median",
            "value": "minutes",
        },
        "flagged_people": {
            "title": "People flagged at least once",
            "dataset": "contacts",
            "kind": "entities",
            "entity": "person_id",
            "having": "sum(flagged) >= 1",
        },
    },
}


@dataclass(frozen=True)
class Event:
    event_id: str
    occurred_at: dt.datetime
    beat: str | None
    sex: str | None
    kind: str
    minutes: float | None


def make_events() -> list[Event]:
    """The rows of police__events, deterministic, with some NULL minutes."""
    rows: list[Event] = []

    def add(beat: str | None, month: dt.date, sex: str | None, kind: str, count: int) -> None:
        for _ in range(count):
            i = len(rows)
            minutes = None if i % 5 == 4 else float((i * 37) % 23)
            at = dt.datetime(month.year, month.month, 1 + i % 28, i % 24, i % 60)
            rows.append(Event(f"E{i:04d}", at, beat, sex, kind, minutes))

    for (beat, month), by_sex in EVENT_COUNTS.items():
        for sex, count in by_sex.items():
            add(beat, month, sex, "normal", count)
    for (beat, month), count in RARE_COUNTS.items():
        add(beat, month, "F", "rare", count)
    for beat, count in UNLOCATED_EVENTS:
        add(beat, JAN, "M", "rare", count)
    # B12 in April: only four rows carry minutes, so its median is suppressed.
    b12_apr = [r for r in rows if r.beat == "B12" and r.occurred_at.month == 4]
    for r in b12_apr[4:]:
        rows[rows.index(r)] = Event(r.event_id, r.occurred_at, r.beat, r.sex, r.kind, None)
    for r in b12_apr[:4]:
        rows[rows.index(r)] = Event(r.event_id, r.occurred_at, r.beat, r.sex, r.kind, 5.0)
    return rows


EVENTS = make_events()

TRACTS = {"T1": "B11", "T2": "B22", "T9": "B99"}  # T9 points at a beat the city map lacks
# (person, date, tract, flagged)
CONTACTS: list[tuple[str, dt.date, str | None, int]] = [
    *[(f"P{i:02d}", dt.date(2025, 1, 5), "T1", 1) for i in range(1, 13)],
    ("P01", dt.date(2025, 1, 20), "T1", 1),  # a second row in January: still one person
    ("P13", dt.date(2025, 1, 9), "T1", 0),  # not flagged in January
    *[(f"P{i:02d}", dt.date(2025, 2, 5), "T1", 1) for i in range(1, 11)],
    ("P13", dt.date(2025, 2, 9), "T1", 1),  # flagged in February
    *[(f"R{i:02d}", dt.date(2025, 2, 7), "T2", 1) for i in range(1, 4)],  # 3 people in B22
    ("U1", dt.date(2025, 1, 3), "T9", 1),
    ("U2", dt.date(2025, 1, 3), "T9", 1),
    ("U3", dt.date(2025, 1, 3), "T404", 1),  # tract unknown to the crosswalk
    ("U4", dt.date(2025, 1, 3), None, 1),
]


def write_raw(path: Path) -> None:
    """The restricted database as ingest would leave it, with hand-made rows."""
    con = connect(path)
    try:
        con.execute(
            "CREATE TABLE city__beats (beat VARCHAR, beat_name VARCHAR, district VARCHAR, "
            "district_name VARCHAR)"
        )
        con.executemany(
            "INSERT INTO city__beats VALUES (?, ?, ?, ?)",
            [(b, f"Beat {b}", d, f"District {d}") for b, d in BEATS.items()],
        )
        con.execute("CREATE TABLE city__tracts (tract_geoid VARCHAR, beat VARCHAR)")
        con.executemany("INSERT INTO city__tracts VALUES (?, ?)", list(TRACTS.items()))
        con.execute(
            "CREATE TABLE police__events (event_id VARCHAR, occurred_at TIMESTAMP, beat VARCHAR, "
            "sex VARCHAR, kind VARCHAR, minutes DOUBLE)"
        )
        con.executemany(
            "INSERT INTO police__events VALUES (?, ?, ?, ?, ?, ?)",
            [(e.event_id, e.occurred_at, e.beat, e.sex, e.kind, e.minutes) for e in EVENTS],
        )
        con.execute(
            "CREATE TABLE police__contacts (person_id VARCHAR, contact_date DATE, tract VARCHAR, "
            "flagged INTEGER)"
        )
        con.executemany("INSERT INTO police__contacts VALUES (?, ?, ?, ?)", CONTACTS)
    finally:
        con.close()


CellKey = tuple[str, str, dt.date, str, str, str]  # measure, period level/start, geo, breakdown
TrueCell = tuple[int, float | None]  # n, value
Cell = tuple[int | None, float | None, bool, int]  # n, value, suppressed, min_cell_size


@dataclass(frozen=True)
class Built:
    true: dict[CellKey, TrueCell]
    shared: dict[str, dict[CellKey, Cell]]  # audience -> protected cells
    done: list[ProtectedMeasure]
    unlocated: dict[str, int]
    tables: set[str]
    parents: dict[str, str]


def paths_in(root: Path) -> Paths:
    return Paths(data_dir=root / "data", sources_dir=root / "sources").ensure()


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The shipped policy, with every level kept however sparse: this tiny city is all sparse."""
    shipped = load_policy(SHIPPED_POLICY)
    return shipped.model_copy(
        update={"defaults": shipped.defaults.model_copy(update={"max_small_share": 1.0})}
    )


@pytest.fixture(scope="module")
def provider() -> Provider:
    return Provider.model_validate(PROVIDER_CONFIG)


def _key(row: tuple[Any, ...]) -> CellKey:
    return (row[0].removeprefix("police__"), row[1], row[2], row[3], row[4], row[5])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, policy: Policy, provider: Provider) -> Built:
    """True cells and protected cells, through the same zone crossing the privacy asset uses."""
    paths = paths_in(tmp_path_factory.mktemp("cells"))
    write_raw(paths.raw_db)
    true: dict[CellKey, TrueCell] = {}
    with restricted_to_shared(paths) as con:
        tables = raw_tables(con)
        builder = CellBuilder(con, policy)
        for name in provider.measures:
            for r in con.execute(builder.true_cells(provider, name)).fetchall():
                assert _key(r) not in true, f"duplicate cell {_key(r)}"
                true[_key(r)] = (r[6], r[7])
        unlocated = {name: builder.unlocated_rows(provider, name) for name in provider.measures}
        vault.attach(con, paths)
        done = Protector(con, policy, {}, log=lambda _: None).build_provider(provider, tables)
        rows = con.execute(
            "SELECT audience, measure_id, period_level, period_start, geo_level, geo_code, "
            "breakdown, n, value, suppressed, min_cell_size FROM shared.cells_police"
        ).fetchall()
        parents = city_geography(con, policy)
    shared: dict[str, dict[CellKey, Cell]] = defaultdict(dict)
    for r in rows:
        key = _key(r[1:])
        assert key not in shared[r[0]], f"duplicate cell {key} for {r[0]}"
        shared[r[0]][key] = (r[7], r[8], r[9], r[10])
    return Built(true, dict(shared), done, unlocated, tables, parents)


# -- independent expectations -----------------------------------------------------------------


def periods_of(day: dt.date) -> list[tuple[str, dt.date]]:
    month = day.replace(day=1)
    quarter = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return [("month", month), ("quarter", quarter), ("year", dt.date(day.year, 1, 1))]


def geos_of(beat: str) -> list[tuple[str, str]]:
    return [("beat", beat), ("district", BEATS[beat]), ("city", CITY)]


def sex_label(sex: str | None) -> str:
    return f"sex={sex}" if sex in ("F", "M") else "sex=U"


def expected_counts(rows: Iterable[Event], breakdown: bool) -> dict[tuple[Any, ...], int]:
    counts: dict[tuple[Any, ...], int] = defaultdict(int)
    for e in rows:
        if e.beat not in BEATS:
            continue
        labels = ["total", sex_label(e.sex)] if breakdown else ["total"]
        for plevel, pstart in periods_of(e.occurred_at.date()):
            for glevel, gcode in geos_of(e.beat):
                for label in labels:
                    counts[(plevel, pstart, glevel, gcode, label)] += 1
    return counts


def cells_of(built: Built, measure: str) -> dict[tuple[Any, ...], TrueCell]:
    """The true cells of one measure, keyed without the measure."""
    return {k[1:]: v for k, v in built.true.items() if k[0] == measure}


def shown_of(built: Built, audience: str, measure: str) -> dict[tuple[Any, ...], Cell]:
    """The protected cells one audience gets for one measure."""
    return {k[1:]: v for k, v in built.shared[audience].items() if k[0] == measure}


COVERED = {
    ("month", JAN), ("month", FEB), ("month", APR), ("quarter", Q1), ("quarter", Q2),
    ("year", Y2025),
}  # fmt: skip
GEOS = {("beat", b) for b in BEATS} | {("district", "D1"), ("district", "D2"), ("city", CITY)}
LABELS = ("total", "sex=F", "sex=M", "sex=U")


# -- the true cells ---------------------------------------------------------------------------


def test_spine(built: Built) -> None:
    """One cell per covered period x geography x breakdown label; entities by month only."""
    sizes = {m: len(cells_of(built, m)) for m in ("all_events", "rare_events", "response")}
    # 6 periods x 7 geographies; all_events adds sex=F, sex=M, sex=U to total.
    assert sizes == {"all_events": 6 * 7 * 4, "rare_events": 6 * 7, "response": 6 * 7}
    assert len(cells_of(built, "flagged_people")) == 2 * 7  # January and February
    assert {"city__beats", "city__tracts", "police__events", "police__contacts"} <= built.tables
    for measure in ("all_events", "rare_events", "response"):
        keys = {(k[0], k[1]) for k in cells_of(built, measure)}
        assert keys == COVERED
        assert {(k[2], k[3]) for k in cells_of(built, measure)} == GEOS


def test_count_cells_match_rows(built: Built) -> None:
    """Every all_events cell equals an independent count of the located rows (0 where none)."""
    expected = expected_counts(EVENTS, breakdown=True)
    cells = cells_of(built, "all_events")
    for key, (n, value) in cells.items():
        assert (n, value) == (expected.get(key, 0), float(expected.get(key, 0)))
    assert all(k in cells for k in expected)


def test_geography_adds_up(built: Built) -> None:
    """Beats sum to their district and districts to the city, for every period and label."""
    cells = cells_of(built, "all_events")
    for (plevel, pstart), label in product(COVERED, LABELS):
        for district in ("D1", "D2"):
            beats = [b for b, d in BEATS.items() if d == district]
            assert (
                sum(cells[(plevel, pstart, "beat", b, label)][0] for b in beats)
                == (cells[(plevel, pstart, "district", district, label)][0])
            )
        assert (
            sum(cells[(plevel, pstart, "district", d, label)][0] for d in ("D1", "D2"))
            == (cells[(plevel, pstart, "city", CITY, label)][0])
        )
    assert cells[("year", Y2025, "city", CITY, "total")][0] == 264


def test_periods_add_up(built: Built) -> None:
    """Months sum to their quarter and quarters (hence months) to the year, everywhere."""
    cells = cells_of(built, "all_events")
    for (glevel, gcode), label in product(GEOS, LABELS):

        def n(plevel: str, start: dt.date, g: str = glevel, c: str = gcode, bd: str = label) -> int:
            return cells[(plevel, start, g, c, bd)][0]

        assert n("month", JAN) + n("month", FEB) == n("quarter", Q1)
        assert n("month", APR) == n("quarter", Q2)
        assert n("quarter", Q1) + n("quarter", Q2) == n("year", Y2025)


def test_breakdowns_add_up_to_total(built: Built) -> None:
    """F + M + U (NULL and out-of-domain values land in U) equals the total in every cell."""
    cells = cells_of(built, "all_events")
    for plevel, pstart in COVERED:
        for glevel, gcode in GEOS:
            parts = [cells[(plevel, pstart, glevel, gcode, f"sex={s}")][0] for s in "FMU"]
            assert sum(parts) == cells[(plevel, pstart, glevel, gcode, "total")][0]
    assert cells[("month", JAN, "beat", "B21", "sex=U")] == (10, 10.0)
    assert cells[("month", APR, "beat", "B11", "sex=U")] == (10, 10.0)


def test_zero_fill_for_covered_months(built: Built) -> None:
    """B12 has no row in February, yet has zero cells; uncovered March has no cell at all."""
    cells = cells_of(built, "all_events")
    for label in LABELS:
        assert cells[("month", FEB, "beat", "B12", label)] == (0, 0.0)
    assert cells_of(built, "rare_events")[("month", JAN, "beat", "B11", "total")] == (0, 0.0)
    assert not [k for k in built.true if k[1] == "month" and k[2] == MAR]


def test_median_cells(built: Built) -> None:
    """value = median of the rows' minutes, n = rows contributing (NULL value without rows)."""
    samples: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for e in EVENTS:
        if e.beat in BEATS and e.minutes is not None:
            for plevel, pstart in periods_of(e.occurred_at.date()):
                for glevel, gcode in geos_of(e.beat):
                    samples[(plevel, pstart, glevel, gcode, "total")].append(e.minutes)
    for key, (n, value) in cells_of(built, "response").items():
        values = samples.get(key, [])
        assert n == len(values), key
        if values:
            assert value == pytest.approx(statistics.median(values)), key
        else:
            assert value is None, key


def test_entities_count_each_person_once_per_month(built: Built) -> None:
    """P01's two January rows count once; P13 counts only where sum(flagged) >= 1 holds."""
    cells = cells_of(built, "flagged_people")
    assert cells[("month", JAN, "beat", "B11", "total")] == (12, 12.0)
    assert cells[("month", FEB, "beat", "B11", "total")] == (11, 11.0)
    assert cells[("month", FEB, "beat", "B22", "total")] == (3, 3.0)
    assert cells[("month", FEB, "city", CITY, "total")] == (14, 14.0)
    assert cells[("month", JAN, "beat", "B22", "total")] == (0, 0.0)
    # Not additive over time (13 distinct people in Q1, not 12 + 11): no quarter or year cells.
    assert {k[0] for k in cells} == {"month"}


def test_unlocated_rows_are_reported_and_excluded(built: Built) -> None:
    """Unknown or missing beats/tracts, or tracts mapping to an unknown beat, reach no cell."""
    assert built.unlocated == {
        "all_events": 6,
        "rare_events": 6,
        "response": 6,
        "flagged_people": 4,
    }
    located = sum(1 for e in EVENTS if e.beat in BEATS)
    assert located == len(EVENTS) - 6
    assert cells_of(built, "all_events")[("year", Y2025, "city", CITY, "total")][0] == located
    rare = cells_of(built, "rare_events")
    assert {rare[("month", JAN, g, c, "total")][0] for g, c in GEOS} == {0}
    assert {k[4] for k in built.true} == {c for _, c in GEOS}  # no B99, no NULL geography


# -- the protected cells ----------------------------------------------------------------------


def test_no_small_count_is_shown(built: Built) -> None:
    """For every audience and measure: no shown n strictly between 0 and k, suppressed cells
    carry neither n nor value, and shown cells carry the true count."""
    for audience, cells in built.shared.items():
        for key, (n, value, suppressed, k) in cells.items():
            assert k == K
            if suppressed:
                assert (n, value) == (None, None), (audience, key)
            else:
                assert n == built.true[key][0] and not 0 < n < k, (audience, key)


def test_small_cells_get_complements(built: Built) -> None:
    """B22 (3) and B21 (8) in February are small; D2 (11) may show only if neither beat can be
    worked out from it, which needs both hidden together with enough of their period lines."""
    rare = shown_of(built, "pst", "rare_events")
    for beat in ("B21", "B22"):
        assert rare[("month", FEB, "beat", beat, "total")] == (None, None, True, K)
    assert rare[("month", JAN, "beat", "B11", "total")] == (0, 0.0, False, K)  # zeros show
    # Every suppressed cell is either small or a complement with a non-zero count.
    for key, (_, _, suppressed, _) in rare.items():
        if suppressed:
            assert cells_of(built, "rare_events")[key][0] > 0, key


def test_every_pattern_passes_the_auditor(built: Built) -> None:
    """The independent attacker, given exactly what each audience gets, pins no small count:
    the PST is attacked with the public tables as well, since it reads those too."""
    publications = {}
    for audience in ("pst", "public"):
        for measure in ("all_events", "rare_events", "response", "flagged_people"):
            cells = shown_of(built, audience, measure)
            keys = list(cells)
            lattice = Lattice.build(
                keys, [built.true[(measure, *k)][0] for k in keys], built.parents
            )
            hidden = lattice.mask(k for k, c in cells.items() if c[2])
            publications[(audience, measure)] = Publication(lattice, hidden, K, audience)
    for measure in ("all_events", "rare_events", "response", "flagged_people"):
        report = audit([publications[("pst", measure)], publications[("public", measure)]])
        assert report.passed, report.text()
        assert audit([publications[("public", measure)]]).passed
    assert publications[("pst", "rare_events")].suppressed.sum() >= 2


def test_a_lone_small_cell_would_be_caught(built: Built) -> None:
    """The same auditor rejects a pattern that hides B22's February alone: it is D2 minus B21."""
    cells = shown_of(built, "pst", "rare_events")
    keys = list(cells)
    lattice = Lattice.build(keys, [built.true[("rare_events", *k)][0] for k in keys], built.parents)
    alone = lattice.mask([("month", FEB, "beat", "B22", "total")])
    report = audit([Publication(lattice, alone, K, "one cell hidden")], exact=True)
    assert not report.passed
    b22 = [f for f in report.failures if f.key.geo_code == "B22" and f.key.period_level == "month"]
    assert [(f.n, f.lower, f.upper) for f in b22] == [(3, 3.0, 3.0)]


def test_audiences_see_their_own_tables(built: Built) -> None:
    """PST: breakdowns from districts up, beats by month; public: breakdowns for the city only,
    beats by quarter and year. The public tables hide every cell the PST tables hide."""
    pst, public = built.shared["pst"], built.shared["public"]
    assert {(k[3], k[5] == "total") for k in pst} == {
        ("beat", True), ("district", True), ("district", False), ("city", True), ("city", False)
    }  # fmt: skip
    assert not [k for k in public if k[5] != "total" and k[3] != "city"]
    assert not [k for k in public if k[3] == "beat" and k[1] == "month"]
    assert [k for k in pst if k[3] == "beat" and k[1] == "month"]
    for key, (_, _, suppressed, _) in pst.items():
        if suppressed and key in public:
            assert public[key][2], key


def test_median_needs_k_records(built: Built) -> None:
    """A median shows only where its count of records shows and is at least k."""
    true = cells_of(built, "response")
    for audience in ("pst", "public"):
        for key, (n, value, suppressed, _) in shown_of(built, audience, "response").items():
            if value is not None:
                assert not suppressed and n is not None and n >= K, key
                assert value == pytest.approx(true[key][1])
    # Four contributing rows: hidden although the beat has 23 rows.
    assert shown_of(built, "pst", "response")[("month", APR, "beat", "B12", "total")][1] is None


def test_suppression_report(built: Built) -> None:
    """One line per measure and audience, counting small, complementary and forced cells."""
    assert [(d.measure_id, d.audience) for d in built.done] == [
        (f"police__{m}", a)
        for m in ("all_events", "rare_events", "response", "flagged_people")
        for a in ("pst", "public")
    ]
    for d in built.done:
        assert d.suppressed == d.primary + d.secondary + d.forced
        cells = shown_of(built, d.audience, d.measure_id.removeprefix("police__"))
        assert (d.cells, d.suppressed) == (len(cells), sum(c[2] for c in cells.values()))
        assert "suppressed" in d.line() and d.audience in d.line()
    by = {(d.measure_id, d.audience): d for d in built.done}
    assert by[("police__all_events", "pst")].suppressed == 0
    assert by[("police__rare_events", "pst")].primary > 0


# -- configuration errors -----------------------------------------------------------------


def test_unknown_breakdown_names_the_policy_file(
    tmp_path: Path, policy: Policy, provider: Provider
) -> None:
    """A measure breakdown the policy does not define fails loudly and keeps the old cells."""
    paths = paths_in(tmp_path)
    write_raw(paths.raw_db)
    config = {**PROVIDER_CONFIG, "measures": {**PROVIDER_CONFIG["measures"]}}
    config["measures"]["by_colour"] = {
        "title": "Events by colour",
        "dataset": "events",
        "kind": "count",
        "breakdowns": {"colour": "sex"},
    }
    broken = Provider.model_validate(config)

    with restricted_to_shared(paths) as con:
        vault.attach(con, paths)
        builder = Protector(con, policy, {}, log=lambda _: None)
        builder.build_provider(provider, raw_tables(con))
        before = con.execute("SELECT count(*) FROM shared.cells_police").fetchall()
        with pytest.raises(
            ValueError,
            match=r"breakdown 'colour' is not defined in privacy/policy\.yml tables\.breakdowns "
            r"\(known: sex, age_group, intent, population\)",
        ):
            builder.build_provider(broken, raw_tables(con))
        after = con.execute("SELECT count(*) FROM shared.cells_police").fetchall()
    assert before == after and before[0][0] > 0


def test_restricted_database_is_read_only(tmp_path: Path) -> None:
    """The privacy connection cannot write row-level data back into the restricted zone."""
    paths = paths_in(tmp_path)
    write_raw(paths.raw_db)
    with restricted_to_shared(paths) as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute("DELETE FROM raw.police__events")
    with (
        pytest.raises(FileNotFoundError, match="no file has been ingested"),
        restricted_to_shared(paths_in(tmp_path / "empty")),
    ):
        pass
