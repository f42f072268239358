"""A new city by configuration alone: `cs360 init`, two real-shaped police exports, no demo.

Lakeport (fictional, generated here with the shapes real exports have) writes only files in its
own deployment folder: its policy (a smaller minimum cell size), two metrics, its city beat map
and a police provider.yml for two exports:

- a large city's CAD calls: one annual file whose header starts with a byte-order mark encoded
  twice (the first field reads ``ï»¿OBJECTID`` even to a BOM-aware reader), its own ten-codes
  (10-71 is shots fired), a received time only, zones as beats and a "sector" column that does not
  nest; then a corrected August file, which replaces August wherever it came from;
- a small city's incident export: HTML inside quoted, multi-line narrative fields, state statute
  codes, the same incident on several rows (identical copies, and one row per offense, one of them
  spanning midnight at the end of a month).

Every published cell is then compared with an independent count over the raw files (Python's csv
module, the documented rules applied by hand): latest delivery of a month wins; exact copies load
once; an incident counts once, in the month and beat of its earliest row. Then a provider copied
from the police under a new name publishes its metric, with nothing outside the folder edited.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
import yaml

from cs360_pipeline.catalog.freshness_sources import RELATIVE_PATH
from cs360_pipeline.settings import PROJECT_DIR, Paths
from tests import launcher

pytestmark = pytest.mark.refreshes(minutes=1.1)  # of real refreshes: scheduled first

BIN = Path(sys.executable).parent
BEATS = {"Z1": "NORTH", "Z2": "NORTH", "Z3": "SOUTH", "Z4": "SOUTH"}
HARBOUR = {"HARBOUR": ["Z2", "Z3"]}  # a zone across both districts: a beat of each
CITY = "LKP"
K = 3  # Lakeport's minimum cell size

CALL_CODES = {"10-71": "SHOTS", "10-10": "FIGHT", "10-16": "DOMESTIC", "10-50": "TRAFFIC"}
CALLS_HEADER = ["OBJECTID", "INCIDENT_NUMBER", "CALL_TYPE", "RECEIVED_DATE", "ZONE", "SECTOR"]
VIOLENT = ("750.316", "750.84", "750.529")  # murder, assault (great bodily harm), armed robbery
INCIDENTS_HEADER = ["Incident Number", "Statute", "Narrative", "Occurred", "Beat"]

POLICE = {
    "provider": "police",
    "organisation": "Lakeport Police Department",
    "community_map_area": "justice & crime",
    "data_owner": {"role": "Records Manager", "name": "Dana Ortiz"},
    "steward": {"role": "Crime Analyst", "name": "Sam Reyes"},
    "datasets": {
        "calls": {
            "title": "Dispatched calls for service (CAD)",
            "file_pattern": "calls_*.csv",
            "cadence": "monthly",
            "period": "received_at",
            "geography": {"column": "zone"},
            "key": ["object_id"],
            "columns": {
                "object_id": {"type": "VARCHAR", "required": True, "source": "OBJECTID"},
                "call_number": {"type": "VARCHAR", "required": True, "source": "INCIDENT_NUMBER"},
                "call_type": {
                    "type": "VARCHAR",
                    "required": True,
                    "source": "CALL_TYPE",
                    "values": CALL_CODES,
                    "allowed": sorted(CALL_CODES.values()),
                },
                "received_at": {
                    "type": "TIMESTAMP",
                    "required": True,
                    "source": "RECEIVED_DATE",
                    "format": "%m/%d/%Y %I:%M:%S %p",
                },
                "zone": {"type": "VARCHAR", "required": True, "source": "ZONE"},
            },
        },
        "incidents": {
            "title": "Incident reports, one row per offense",
            "file_pattern": "incidents_*.csv",
            "cadence": "monthly",
            "period": "occurred_at",
            "geography": {"column": "beat"},
            "key": ["incident_number", "statute"],
            "duplicates": "drop_exact",
            "columns": {
                "incident_number": {
                    "type": "VARCHAR",
                    "required": True,
                    "source": "Incident Number",
                },
                "statute": {"type": "VARCHAR", "required": True, "source": "Statute"},
                "narrative": {"type": "VARCHAR", "identifier": True, "source": "Narrative"},
                "occurred_at": {
                    "type": "TIMESTAMP",
                    "required": True,
                    "source": "Occurred",
                    "format": "%Y-%m-%d %H:%M",
                },
                "beat": {"type": "VARCHAR", "required": True, "source": "Beat"},
            },
        },
    },
    "measures": {
        "shots_fired_calls": {
            "title": "Calls for service reporting shots fired",
            "dataset": "calls",
            "kind": "count",
            "where": "call_type = 'SHOTS'",
        },
        "violent_incidents": {
            "title": "Incidents with a violent offense, each incident once",
            "dataset": "incidents",
            "kind": "distinct",
            "entity": "incident_number",
            "where": "statute IN ('750.316', '750.84', '750.529')",
        },
    },
}


def metric(title: str, numerator: str, provider: str) -> dict[str, object]:
    return {
        "title": title,
        "dimension": "crime",
        "goal": "interrupt",
        "indicator": "Active Crime Reports",
        "definition": f"{title}, by the month and beat where it happened.",
        "unit": "count",
        "numerator": numerator,
        "direction": "down_is_good",
        "baseline": {"start": "2025-01", "end": "2025-06"},
        "cadence": "monthly",
        "providers": [provider],
        "owner": {"organisation": "Lakeport Police Department", "role": "Crime Analyst"},
        "audiences": ["pst", "public"],
    }


METRICS = {
    "shots_fired_calls": metric("Shots-fired calls", "police.shots_fired_calls", "police"),
    "violent_incidents": metric("Violent incidents", "police.violent_incidents", "police"),
}


# -- the exports ------------------------------------------------------------------------------
def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def calls_file(rows: list[list[str]]) -> bytes:
    """A CAD export whose byte-order mark went through two tools (one real, one as text)."""
    bom_as_text = "\ufeff".encode().decode("latin-1")
    return b"\xef\xbb\xbf" + (bom_as_text + _csv(CALLS_HEADER, rows)).encode()


def call_rows(seed: int, months: range, first_id: int) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for month in months:
        for zone in BEATS:
            for code in CALL_CODES:
                for _ in range(rng.randint(0, 9 if code == "10-71" else 4)):
                    when = dt.datetime(2025, month, rng.randint(1, 28), rng.randint(0, 23), 5)
                    sector = rng.choice(["S1", "S2", "S3"])  # does not nest in zones
                    rows.append([str(first_id + len(rows)), f"C25-{first_id + len(rows)}", code,
                                 when.strftime("%m/%d/%Y %I:%M:%S %p"), zone, sector])  # fmt: skip
    return rows


def incident_rows(seed: int) -> list[list[str]]:
    """Incidents of 2025, several rows each; some rows sent twice; one spanning a month end."""
    rng = random.Random(seed)
    statutes = [*VIOLENT, "750.227b", "750.356"]
    rows = []
    for number in range(1, 1201):
        month = rng.randint(1, 12)
        when = dt.datetime(2025, month, rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59))
        beat = rng.choice(list(BEATS))
        narrative = (
            f"<p>Officers responded to <b>{rng.choice(['a disturbance', 'shots'])}</b>."
            "</p>\n<br/>Victim transported;\n\"refused\" further comment, &amp; left."
        )
        for offense, statute in enumerate(rng.sample(statutes, rng.randint(1, 3))):
            later = when + dt.timedelta(minutes=20 * offense)
            rows.append([f"25-{number:05d}", statute, narrative,
                         later.strftime("%Y-%m-%d %H:%M"), beat])  # fmt: skip
    # An incident that starts at 23:50 on 31 March and has a second violent offense in April.
    rows += [["25-99001", "750.84", "<p>bar fight</p>", "2025-03-31 23:50", "Z2"],
             ["25-99001", "750.529", "<p>bar fight</p>", "2025-04-01 00:10", "Z3"]]  # fmt: skip
    rows += [list(row) for row in rng.sample(rows, 25)]  # identical copies
    rng.shuffle(rows)
    return rows


# -- the independent count ---------------------------------------------------------------------
def read(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8-sig").removeprefix("\ufeff".encode().decode("latin-1"))
    return list(csv.DictReader(io.StringIO(text)))


def rollup(
    events: list[tuple[dt.date, str]], zones: dict[str, list[str]] | None = None
) -> Counter[tuple[str, str, str, str]]:
    """(period_level, period_start, geo_level, geo_code) -> count, from (month, beat) events;
    an event counts in every zone its beat is in."""
    cells: Counter[tuple[str, str, str, str]] = Counter()
    for month, beat in events:
        periods = {
            "month": month,
            "quarter": month.replace(month=(month.month - 1) // 3 * 3 + 1),
            "year": month.replace(month=1),
        }
        for level, start in periods.items():
            geos = [("beat", beat), ("district", BEATS[beat]), ("city", CITY)]
            geos += [("zone", zone) for zone, beats in (zones or {}).items() if beat in beats]
            for geo_level, code in geos:
                cells[(level, start.isoformat(), geo_level, code)] += 1
    return cells


def expected_shots(
    files: list[bytes], codes: tuple[str, ...] = ("10-71",), zones: dict | None = None
) -> Counter[tuple[str, str, str, str]]:
    """Shots-fired calls (these ten-codes): each month taken from the latest file delivering it."""
    owner: dict[tuple[int, int], int] = {}
    parsed = [read(data) for data in files]
    for index, rows in enumerate(parsed):
        for row in rows:
            when = dt.datetime.strptime(row["RECEIVED_DATE"], "%m/%d/%Y %I:%M:%S %p")
            owner[(when.year, when.month)] = index
    events = []
    for index, rows in enumerate(parsed):
        for row in rows:
            when = dt.datetime.strptime(row["RECEIVED_DATE"], "%m/%d/%Y %I:%M:%S %p")
            if owner[(when.year, when.month)] == index and row["CALL_TYPE"] in codes:
                events.append((when.date().replace(day=1), row["ZONE"]))
    return rollup(events, zones)


def expected_incidents(data: bytes) -> Counter[tuple[str, str, str, str]]:
    """Violent incidents: exact copies once; each incident at its earliest violent row."""
    first: dict[str, tuple[dt.datetime, str]] = {}
    for row in {tuple(r.values()): r for r in read(data)}.values():
        if row["Statute"] not in VIOLENT:
            continue
        when = dt.datetime.strptime(row["Occurred"], "%Y-%m-%d %H:%M")
        number = row["Incident Number"]
        if number not in first or when < first[number][0]:
            first[number] = (when, row["Beat"])
    return rollup([(when.date().replace(day=1), beat) for when, beat in first.values()])


# -- the deployment ------------------------------------------------------------------------------
class City:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "lakeport"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CS360_")},
            "DAGSTER_HOME": str(root / "dagster_home"),
            "CS360_AS_OF": "2026-01-20",
            "CS360_SETTLE_SECONDS": "0",
            "CS360_EXPECTATIONS": "off",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``cs360`` with these arguments, whatever its exit code."""
        return launcher.run([str(BIN / "cs360"), *args], env=self.env, timeout=900)

    def cs360(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args)
        assert result.returncode == 0, f"cs360 {args}: {result.stdout}\n{result.stderr}"
        return result

    def refresh(self) -> str:
        return self.cs360("--deployment", str(self.folder), "refresh").stdout

    def edit_yaml(self, relative: str, change: Callable[[dict], object]) -> None:
        path = self.folder / relative
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(document)
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    def drop(self, provider: str, name: str, data: bytes) -> None:
        inbox = self.folder / "sources" / provider / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / name).write_bytes(data)

    def published(self, metric_id: str) -> dict[tuple[str, ...], tuple[int | None, str]]:
        con = duckdb.connect(str(self.folder / "data" / "warehouse.duckdb"), read_only=True)
        try:
            rows = con.execute(
                "SELECT period_level, CAST(period_start AS VARCHAR), geo_level, geo_code, "
                "numerator, status FROM metric_values WHERE metric_id = ? AND audience = 'pst' "
                "AND breakdown = 'total'",
                [metric_id],
            ).fetchall()
        finally:
            con.close()
        return {tuple(r[:4]): (r[4], r[5]) for r in rows}


def code_tree_digest() -> str:
    """Everything of the installation a city could be tempted to edit."""
    digest = hashlib.sha256()
    for folder in ("dbt_project/models", "dbt_project/macros", "sources", "privacy", "metrics"):
        for path in sorted((PROJECT_DIR / folder).rglob("*")):
            if path.is_file() and "inbox" not in path.parts:
                digest.update(str(path.relative_to(PROJECT_DIR)).encode() + path.read_bytes())
    return digest.hexdigest()


def assert_matches(published: dict, expected: Counter, at_least: float = 0.4) -> None:
    """Every cell of the independent count is published with that count, or suppressed; at
    least the share ``at_least`` of them is shown."""
    shown = 0
    for key, count in expected.items():
        assert key in published, f"cell {key} (count {count}) is not published"
        n, status = published[key]
        if status == "suppressed":
            continue
        assert n == count, f"cell {key}: published {n}, independent count {count}"
        shown += 1
    extra = {k: v for k, v in published.items() if k not in expected and v[0]}
    assert not extra, f"published cells with counts the raw files do not have: {extra}"
    # Not vacuous: the year for the city is shown, and a good part of the rest.
    assert published[("year", "2025-01-01", "city", CITY)][1] != "suppressed"
    assert shown >= len(expected) * at_least, f"only {shown} of {len(expected)} cells shown"


def assert_the_council_has_its_outputs(city: City) -> None:
    """The audience added to the policy has its rows, exports, brief and site; it is not under
    the data-sharing agreement, so no workbook and no steward."""
    con = duckdb.connect(str(city.folder / "data" / "warehouse.duckdb"), read_only=True)
    try:
        release = con.execute("SELECT release_id FROM release_manifest").fetchall()[0][0]
        shown = con.execute(
            "SELECT audience, count(*) FROM metric_values "
            "WHERE metric_id = 'sheriff_shots_fired_calls' GROUP BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert dict(shown).keys() == {"pst", "public", "council"}
    folder = city.folder / "data" / "exports" / release / "council"
    for name in ("metric_values.parquet", "metric_values.csv", "README.txt", "brief.html",
                 "site/index.html"):  # fmt: skip
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.xlsx"))
    brief = (folder / "brief.html").read_text(encoding="utf-8")
    assert "CompStat360 brief: City Council" in brief and "<th>steward</th>" not in brief
    assert "council members: city-wide figures by year" in (folder / "README.txt").read_text()


def new_lakeport(root: Path) -> City:
    """Lakeport's deployment with its beat map, police contract and metrics, nothing loaded."""
    city = City(root)
    city.cs360("init", str(city.folder), "--name", "Lakeport", "--code", CITY,
               "--time-zone", "America/Chicago")  # fmt: skip
    city.edit_yaml("privacy/policy.yml", lambda p: p["defaults"].update(min_cell_size=K))
    city.edit_yaml("metrics/cs360_metrics.yml", lambda m: m.update(metrics=dict(METRICS)))
    (city.folder / "sources" / "police").mkdir()
    (city.folder / "sources" / "police" / "provider.yml").write_text(yaml.safe_dump(POLICE))
    beats = "beat,district\n" + "".join(f"{b},{d}\n" for b, d in BEATS.items())
    city.drop("city", "beats.csv", beats.encode())
    return city


@pytest.fixture(scope="module")
def lakeport(tmp_path_factory: pytest.TempPathFactory) -> City:
    return new_lakeport(tmp_path_factory.mktemp("real_city"))


def test_a_new_city_publishes_what_its_raw_files_count(lakeport: City) -> None:
    before = code_tree_digest()
    annual = calls_file(call_rows(seed=1, months=range(1, 13), first_id=1))
    incidents = _csv(INCIDENTS_HEADER, incident_rows(seed=2)).encode()
    lakeport.drop("police", "calls_2025.csv", annual)
    lakeport.drop("police", "incidents_2025.csv", incidents)
    out = lakeport.refresh()
    assert "Published release r-" in out
    assert_matches(lakeport.published("shots_fired_calls"), expected_shots([annual]))
    assert_matches(lakeport.published("violent_incidents"), expected_incidents(incidents))

    # A corrected August: its rows replace August, whichever file delivered it before.
    august = calls_file(call_rows(seed=3, months=range(8, 9), first_id=90_001))
    lakeport.drop("police", "calls_2025-08.csv", august)
    # And a second agency onboarded by copying the police provider under a new name.
    sheriff = {**POLICE, "provider": "sheriff", "organisation": "Lake County Sheriff"}
    sheriff["datasets"] = {"calls": POLICE["datasets"]["calls"]}
    sheriff["measures"] = {"shots_fired_calls": POLICE["measures"]["shots_fired_calls"]}
    (lakeport.folder / "sources" / "sheriff").mkdir()
    (lakeport.folder / "sources" / "sheriff" / "provider.yml").write_text(yaml.safe_dump(sheriff))
    lakeport.edit_yaml("metrics/cs360_metrics.yml", lambda m: m["metrics"].update(
        sheriff_shots_fired_calls={**metric("Sheriff's shots-fired calls",
                                            "sheriff.shots_fired_calls", "sheriff"),
                                   "audiences": ["pst", "public", "council"]}))  # fmt: skip
    # And a third audience, named in the policy alone: the city council, city-wide by year.
    lakeport.edit_yaml("privacy/policy.yml", lambda p: p["audiences"].update(council={
        "title": "City Council", "description": "council members: city-wide figures by year",
        "breakdowns_min_geo_level": "city", "beat_min_period_level": "year"}))  # fmt: skip
    county = calls_file(call_rows(seed=4, months=range(1, 13), first_id=50_001))
    lakeport.drop("sheriff", "calls_2025.csv", county)
    lakeport.refresh()
    assert_the_council_has_its_outputs(lakeport)

    assert_matches(lakeport.published("shots_fired_calls"), expected_shots([annual, august]))
    assert_matches(lakeport.published("violent_incidents"), expected_incidents(incidents))
    assert_matches(lakeport.published("sheriff_shots_fired_calls"), expected_shots([county]))
    assert code_tree_digest() == before, "a file outside the deployment folder changed"
    # dbt's freshness sources, for this city's datasets, in the city's own copy of the project.
    city = Paths(data_dir=lakeport.folder / "data", sources_dir=lakeport.folder / "sources")
    freshness = (city.dbt_dir / RELATIVE_PATH).read_text(encoding="utf-8")
    assert "sheriff__calls" in freshness and "school__" not in freshness

    # The sheriff's ten-codes are not the city's: its 10-16 is a shots-fired call too. The
    # contract is corrected and the archived file read again through it; nothing is re-sent.
    lakeport.edit_yaml("sources/sheriff/provider.yml", lambda p: p["datasets"]["calls"]["columns"]
                       ["call_type"]["values"].update({"10-16": "SHOTS"}))  # fmt: skip
    status = lakeport.run("--deployment", str(lakeport.folder), "status").stdout
    assert "sheriff/calls: 1 current file(s); `cs360 reingest --provider sheriff`" in status
    assert "police/calls" not in status.split("earlier contract")[-1]
    out = lakeport.cs360("--deployment", str(lakeport.folder), "reingest", "--provider", "sheriff")
    assert "sheriff/calls: 1 archived files read again (1 loaded, 0 duplicate)" in out.stdout
    assert "stays published" in out.stdout and "police" not in out.stdout
    lakeport.refresh()
    assert_matches(lakeport.published("sheriff_shots_fired_calls"),
                   expected_shots([county], codes=("10-71", "10-16")))  # fmt: skip
    assert_matches(lakeport.published("shots_fired_calls"), expected_shots([annual, august]))
    status = lakeport.run("--deployment", str(lakeport.folder), "status").stdout
    assert "earlier contract" not in status


def test_a_zone_across_districts_publishes_what_its_beats_count(tmp_path: Path) -> None:
    """The city names a zone of a beat from each district: it is published beside them as
    geography level ``zone``, and each of its cells is the count over its beats' rows."""
    city = new_lakeport(tmp_path)
    zones = {code: {"name": "Harbour front", "beats": beats} for code, beats in HARBOUR.items()}
    city.edit_yaml("privacy/policy.yml", lambda p: p["tables"].update(zones=zones))
    annual = calls_file(call_rows(seed=1, months=range(1, 13), first_id=1))
    city.drop("police", "calls_2025.csv", annual)
    assert "Published release r-" in city.refresh()
    published = city.published("shots_fired_calls")
    # A third: the zone links the two districts, so in a city of four beats with a k of 3 a
    # beat hidden in one district takes a complement in the other most months.
    assert_matches(published, expected_shots([annual], zones=HARBOUR), at_least=1 / 3)
    zone = {k: v for k, v in published.items() if k[2] == "zone"}
    assert len(zone) == 12 + 4 + 1 and zone[("year", "2025-01-01", "zone", "HARBOUR")][0]
    con = duckdb.connect(str(city.folder / "data" / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT geo_code, name, parent_code FROM geography WHERE geo_level = 'zone'"
        ).fetchall()
        pieces = con.execute("SELECT count(*) FROM metric_values WHERE geo_level = 'piece'")
        assert pieces.fetchall() == [(0,)]
    finally:
        con.close()
    assert rows == [("HARBOUR", "Harbour front", CITY)]
