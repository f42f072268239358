"""The demo generator writes the files the provider contracts are written against.

Everything here reads the real CSVs a small run writes (generated once per module), with the
csv module or DuckDB, the way ingest will.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from cs360_pipeline.demo import DemoSummary, generate, leave_out_delivered
from cs360_pipeline.ingest.dropfolder import DropFolder

SEED, SCALE, END_MONTH = 7, 0.05, "2025-06"
MONTHS = [str(m) for m in np.datetime64(END_MONTH, "M") - np.arange(35, -1, -1)]
SCHOOL_MONTHS = [m for m in MONTHS if not m.endswith("-07")]

HEADERS = {
    "city/beats": "beat,beat_name,district,district_name",
    "city/tracts": "tract_geoid,beat",
    "city/population": "year,beat,age_group,sex,population",
    "school/schools": "school_id,school_name,school_level,beat",
    "police/incidents": (
        "incident_number,offense_code,offense_description,weapon_force_code,occurred_at,"
        "reported_at,beat,block_address,victim_name,victim_dob,victim_sex,clearance_code,"
        "domestic_violence,offender_id"
    ),
    "police/calls": (
        "call_number,call_type_code,call_type,priority,received_at,dispatched_at,"
        "first_arrived_at,beat,block_address,caller_name,caller_phone,disposition"
    ),
    "school/attendance": (
        "student_id,student_name,date_of_birth,sex,grade,school_id,month,days_enrolled,"
        "days_absent,oss_suspensions,iss_suspensions,school_arrests,law_enforcement_referrals,"
        "home_address"
    ),
    "hospital/ed_visits": (
        "visit_id,mrn,patient_name,date_of_birth,sex,visit_at,facility,residence_tract,"
        "residence_address,diagnosis_code,chief_complaint,disposition"
    ),
    "probation/events": (
        "case_number,person_name,date_of_birth,sex,population,supervision_start_date,"
        "residence_tract,event_type,event_date,offense_code,gun_involved"
    ),
    "probation/caseload": (
        "case_number,person_name,date_of_birth,sex,population,supervision_start_date,risk_level,"
        "residence_tract,roster_date"
    ),
    "survey/responses": (
        "response_id,submitted_at,collection_mode,home_tract,home_address,age,gender,"
        "satisfied_with_police,trust_police,feel_safe,would_report,comments,contact_email"
    ),
}
MONTHLY = {
    "police/incidents": ("incidents", MONTHS),
    "police/calls": ("calls", MONTHS),
    "school/attendance": ("attendance", SCHOOL_MONTHS),
    "hospital/ed_visits": ("ed_visits", MONTHS),
    "probation/events": ("events", MONTHS),
    "probation/caseload": ("caseload", MONTHS),
    "survey/responses": ("responses", MONTHS),
}
FIREARM_WEAPONS = ("11", "12", "13", "14", "15")
HOT_SPOTS = ("0203", "0401", "0404", "0902")
OFFENSES = {
    "09A": "Murder and Nonnegligent Manslaughter", "11A": "Rape", "120": "Robbery",
    "13A": "Aggravated Assault", "13B": "Simple Assault", "13C": "Intimidation",
    "220": "Burglary/Breaking & Entering", "23H": "All Other Larceny",
    "240": "Motor Vehicle Theft", "290": "Destruction/Damage/Vandalism of Property",
    "35A": "Drug/Narcotic Violations", "520": "Weapon Law Violations",
}  # fmt: skip
FIREARM_ED = (
    "X93.XXX", "X94.0XX", "X94.9XX", "X95.9XX", "W32.0XX", "W33.00X", "W34.00X", "X72.XXX",
    "X73.0XX", "X74.9XX", "Y22.XXX", "Y23.0XX", "Y24.9XX", "Y35.001",
)  # fmt: skip
OTHER_ED = ("W34.010A", "W19.XXXA", "Y04.0XXA", "V43.52XA", "W25.XXXA", "X58.XXXA", "W01.XXXA")


def expected_files() -> set[str]:
    files = {
        "city/inbox/beats.csv",
        "city/inbox/beats.geojson",
        "city/inbox/tracts.csv",
        "city/inbox/population.csv",
        "school/inbox/schools.csv",
    }
    for key, (stem, months) in MONTHLY.items():
        provider = key.split("/")[0]
        files |= {f"{provider}/inbox/{stem}_{m}.csv" for m in months}
    return files


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary, list[str]]:
    root = tmp_path_factory.mktemp("demo_a")
    lines: list[str] = []
    summary = generate(root, seed=SEED, scale=SCALE, end_month=END_MONTH, progress=lines.append)
    return root, summary, lines


@pytest.fixture(scope="module")
def root(run: tuple[Path, DemoSummary, list[str]]) -> Path:
    return run[0]


@pytest.fixture(scope="module")
def con(root: Path) -> duckdb.DuckDBPyConnection:
    """One table per dataset loaded from its CSVs, every column read as text."""
    db = duckdb.connect()
    for key in HEADERS:
        provider, dataset = key.split("/")
        stem = MONTHLY[key][0] + "_*" if key in MONTHLY else dataset
        pattern = (root / provider / "inbox" / f"{stem}.csv").as_posix()
        db.execute(
            f"CREATE TABLE {dataset} AS SELECT * FROM read_csv('{pattern}', all_varchar = true, "
            "header = true, filename = true)"
        )
    return db


def one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def rows_where(con: duckdb.DuckDBPyConnection, view: str, condition: str) -> int:
    """How many rows of ``view`` satisfy ``condition`` (0 is what most checks expect)."""
    return int(one(con, f"SELECT count(*) FROM {view} WHERE {condition}"))


def test_same_arguments_give_identical_bytes_and_seed_changes_events(root: Path, tmp_path: Path):
    again = generate(tmp_path / "again", seed=SEED, scale=SCALE, end_month=END_MONTH)
    first, second = snapshot(root), snapshot(tmp_path / "again")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    assert again.rows["police/calls"] > 0

    generate(tmp_path / "other", seed=SEED + 1, scale=SCALE, end_month=END_MONTH)
    other = snapshot(tmp_path / "other")
    assert other.keys() == first.keys()
    for name in ("police/inbox/incidents_2025-06.csv", "school/inbox/attendance_2025-06.csv"):
        assert other[name] != first[name]
    # Riverton itself is the same city whatever the seed; only the events change.
    assert other["city/inbox/tracts.csv"] == first["city/inbox/tracts.csv"]


def test_file_set_summary_and_progress(run: tuple[Path, DemoSummary, list[str]]):
    root, summary, lines = run
    written = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert written == expected_files()
    assert (summary.first_month, summary.last_month) == ("2022-07", "2025-06")
    assert summary.files == {
        **{key: len(MONTHLY[key][1]) if key in MONTHLY else 1 for key in HEADERS},
        "city/beat_boundaries": 1,
    }
    beat_map = json.loads((root / "city" / "inbox" / "beats.geojson").read_text(encoding="utf-8"))
    assert summary.rows["city/beat_boundaries"] == len(beat_map["features"]) == 76
    assert summary.files["school/attendance"] == 33
    for key in HEADERS:
        provider, dataset = key.split("/")
        stem = MONTHLY[key][0] + "_*" if key in MONTHLY else dataset
        data_lines = sum(
            p.read_bytes().count(b"\n") - 1 for p in (root / provider / "inbox").glob(f"{stem}.csv")
        )
        assert summary.rows[key] == data_lines > 0, key
    assert f"police/calls: 36 files, {summary.rows['police/calls']:,} rows" in lines


def test_headers_and_csv_dialect(root: Path):
    for key, header in HEADERS.items():
        provider, dataset = key.split("/")
        stem = MONTHLY[key][0] + "_*" if key in MONTHLY else dataset
        paths = sorted((root / provider / "inbox").glob(f"{stem}.csv"))
        for path in paths:
            raw = path.read_bytes()
            assert raw.split(b"\n", 1)[0].decode() == header, path.name
            assert b"\r" not in raw
        # Re-quoting with "quote only when needed" reproduces the file byte for byte: no field
        # is quoted unnecessarily and NULLs are empty fields. One file per dataset is enough.
        text = paths[-1].read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
        assert out.getvalue() == text, path.name
        assert all(len(row) == header.count(",") + 1 for row in rows)


def test_timestamps_and_dates_parse_and_fall_in_their_file_month(con: duckdb.DuckDBPyConnection):
    columns = {
        "incidents": {"occurred_at": "ts", "reported_at": "ts", "victim_dob": "d"},
        "calls": {
            "received_at": "ts",
            "dispatched_at": "ts",
            "first_arrived_at": "ts",
        },
        "attendance": {"date_of_birth": "d"},
        "ed_visits": {"visit_at": "ts", "date_of_birth": "d"},
        "events": {"date_of_birth": "d", "supervision_start_date": "d", "event_date": "d"},
    }
    pattern = {
        "ts": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
        "d": r"^\d{4}-\d{2}-\d{2}$",
    }
    fmt = {"ts": "%Y-%m-%d %H:%M:%S", "d": "%Y-%m-%d"}
    for view, cols in columns.items():
        for col, kind in cols.items():
            bad = one(
                con,
                f"SELECT count(*) FROM {view} WHERE {col} IS NOT NULL AND ("
                f"NOT regexp_matches({col}, '{pattern[kind]}') "
                f"OR try_strptime({col}, '{fmt[kind]}') IS NULL)",
            )
            assert bad == 0, f"{view}.{col}"
    period = {
        "incidents": "occurred_at",
        "calls": "received_at",
        "ed_visits": "visit_at",
        "events": "event_date",
    }
    for view, col in period.items():
        misplaced = one(
            con,
            f"SELECT count(*) FROM {view} "
            f"WHERE regexp_extract(filename, '_(\\d{{4}}-\\d{{2}})\\.csv$', 1) <> left({col}, 7)",
        )
        assert misplaced == 0, view
    assert rows_where(con, "attendance", "NOT ends_with(filename, '_' || month || '.csv')") == 0
    assert rows_where(con, "calls", "dispatched_at < received_at") == 0
    assert rows_where(con, "calls", "first_arrived_at < dispatched_at") == 0
    assert rows_where(con, "incidents", "reported_at < occurred_at") == 0


def test_police_codes(con: duckdb.DuckDBPyConnection):
    pairs = con.execute(
        "SELECT DISTINCT offense_code, offense_description FROM incidents"
    ).fetchall()
    assert dict(pairs) == OFFENSES  # every code appears, named right
    weapons = dict(
        con.execute(
            "SELECT offense_code, list(DISTINCT weapon_force_code) FROM incidents "
            "WHERE weapon_force_code IS NOT NULL GROUP BY 1"
        ).fetchall()
    )
    assert set(weapons) <= {"09A", "11A", "120", "13A", "13B", "13C", "520"}
    allowed = {"11", "12", "13", "14", "15", "20", "30", "35", "40", "90", "95", "99"}
    assert set().union(*weapons.values()) <= allowed
    assert set(weapons["13B"]) <= {"40", "99"}
    assert (
        one(
            con,
            "SELECT count(*) FROM incidents "
            "WHERE (offense_code IN ('09A','11A','120','13A','13B','13C')) "
            "<> (victim_name IS NOT NULL AND victim_sex IS NOT NULL)",
        )
        == 0
    )
    assert rows_where(con, "incidents", "victim_dob IS NOT NULL AND victim_name IS NULL") == 0
    assert (
        rows_where(
            con,
            "incidents",
            "weapon_force_code IS NULL AND offense_code IN ('09A','120','13A','13B','520')",
        )
        == 0
    )
    assert set(one(con, "SELECT list(DISTINCT clearance_code) FROM incidents")) == {"A", "E", "N"}
    assert (
        one(
            con,
            "SELECT count(*) FROM incidents WHERE domestic_violence NOT IN ('Y', 'N') OR "
            "(domestic_violence = 'Y' AND offense_code NOT IN ('13A', '13B', '13C'))",
        )
        == 0
    )
    assert one(con, "SELECT count(*) - count(DISTINCT incident_number) FROM incidents") == 0
    assert (
        rows_where(con, "incidents", "NOT regexp_matches(incident_number, '^RPD-\\d{4}-\\d{6}$')")
        == 0
    )

    call_types = {
        "SHOTS": "Shots fired", "ASSLT": "Assault in progress", "DV": "Domestic disturbance",
        "WEAPON": "Person with a weapon", "DISTRB": "Disturbance", "WELFR": "Welfare check",
        "SUSP": "Suspicious person", "THEFT": "Theft report", "ALARM": "Alarm",
        "TRAFF": "Traffic complaint", "NOISE": "Noise complaint",
    }  # fmt: skip
    pairs = con.execute("SELECT DISTINCT call_type_code, call_type FROM calls").fetchall()
    assert dict(pairs) == call_types
    assert set(one(con, "SELECT list(DISTINCT priority) FROM calls")) <= {"1", "2", "3", "4"}
    dispositions = set(one(con, "SELECT list(DISTINCT disposition) FROM calls"))
    assert dispositions <= {
        "REPORT TAKEN",
        "ADVISED",
        "GONE ON ARRIVAL",
        "ARREST",
        "CANCELLED",
        "UNFOUNDED",
    }
    assert rows_where(con, "calls", "first_arrived_at IS NULL AND disposition <> 'CANCELLED'") == 0
    assert rows_where(con, "calls", "first_arrived_at IS NULL") > 0
    assert one(con, "SELECT count(*) - count(DISTINCT call_number) FROM calls") == 0
    assert rows_where(con, "calls", "caller_phone NOT SIMILAR TO '555-01[0-9]{2}'") == 0
    beats = "SELECT beat FROM beats"
    assert rows_where(con, "incidents", f"beat NOT IN ({beats})") == 0
    assert rows_where(con, "calls", f"beat NOT IN ({beats})") == 0


def test_gun_violence_occurs_and_concentrates_in_hot_spots(con: duckdb.DuckDBPyConnection):
    hot = ", ".join(f"'{b}'" for b in HOT_SPOTS)
    firearm = f"weapon_force_code IN ({', '.join(repr(w) for w in FIREARM_WEAPONS)})"
    gun_incidents, gun_hot = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE beat IN ({hot})) FROM incidents WHERE {firearm}"
    ).fetchone()
    assert gun_incidents > 0 and gun_hot / gun_incidents > 0.4
    shots, shots_hot = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE beat IN ({hot})) FROM calls "
        "WHERE call_type_code = 'SHOTS'"
    ).fetchone()
    assert shots > 0 and shots_hot / shots > 0.4
    firearm_codes = " OR ".join(f"diagnosis_code LIKE '{c}_'" for c in FIREARM_ED)
    assert rows_where(con, "ed_visits", f"({firearm_codes}) AND diagnosis_code LIKE '%A'") > 0
    assert rows_where(con, "events", "event_type = 'NEW_CHARGE' AND gun_involved = 'Y'") > 0


def test_hospital_codes(con: duckdb.DuckDBPyConnection):
    codes = set(one(con, "SELECT list(DISTINCT diagnosis_code) FROM ed_visits"))
    firearm = {c + s for c in FIREARM_ED for s in "AD"}
    assert codes <= firearm | set(OTHER_ED)
    assert set(OTHER_ED) - {"W34.010A"} <= codes
    tracts = "SELECT tract_geoid FROM tracts"
    assert rows_where(con, "ed_visits", f"residence_tract NOT IN ({tracts})") == 0
    assert set(one(con, "SELECT list(DISTINCT sex) FROM ed_visits")) <= {"M", "F", "U"}
    dispositions = set(one(con, "SELECT list(DISTINCT disposition) FROM ed_visits"))
    assert dispositions <= {"ADMITTED", "DISCHARGED", "TRANSFERRED", "DIED"}
    assert one(con, "SELECT count(*) - count(DISTINCT visit_id) FROM ed_visits") == 0
    # A subsequent encounter (7th character D) is a patient already seen for that injury.
    returning = one(
        con,
        "SELECT count(*) FROM ed_visits d WHERE d.diagnosis_code LIKE '%D' AND EXISTS ("
        "SELECT 1 FROM ed_visits a WHERE a.mrn = d.mrn AND a.visit_at < d.visit_at "
        "AND a.diagnosis_code = left(d.diagnosis_code, 7) || 'A')",
    )
    assert returning > 0


def test_school_attendance(con: duckdb.DuckDBPyConnection):
    grades = {"K", *(f"{g:02d}" for g in range(1, 13))}
    assert set(one(con, "SELECT list(DISTINCT grade) FROM attendance")) == grades
    assert rows_where(con, "attendance", "school_id NOT IN (SELECT school_id FROM schools)") == 0
    levels = dict(con.execute("SELECT school_level, count(*) FROM schools GROUP BY 1").fetchall())
    assert set(levels) == {"elementary", "middle", "high"} and sum(levels.values()) == 30
    mismatched = one(
        con,
        "SELECT count(*) FROM attendance a JOIN schools s USING (school_id) "
        "WHERE s.school_level <> "
        "CASE WHEN a.grade IN ('K','01','02','03','04','05') THEN 'elementary' "
        "WHEN a.grade IN ('06','07','08') THEN 'middle' ELSE 'high' END",
    )
    assert mismatched == 0
    counts = "oss_suspensions, iss_suspensions, school_arrests, law_enforcement_referrals"
    bad = one(
        con,
        "SELECT count(*) FROM (SELECT days_enrolled::INT e, days_absent::INT a, "
        f"least({counts})::INT low FROM attendance) "
        "WHERE a > e OR a < 0 OR e < 1 OR e > 22 OR low < 0",
    )
    assert bad == 0
    assert one(con, "SELECT count(*) - count(DISTINCT (student_id, month)) FROM attendance") == 0
    share = one(
        con,
        "SELECT avg((days_absent::INT >= 0.1 * days_enrolled::INT)::INT) FROM attendance",
    )
    assert 0.08 < share < 0.2
    # Kindergartners turn five by 1 September (a few were held back a year) and everyone
    # advances one grade a year, so age minus (grade + 5) stays within 0-3 years (August
    # starts a month before the 1 September cut-off).
    low, high = con.execute(
        "SELECT min(gap), max(gap) FROM (SELECT date_diff('day', date_of_birth::DATE, "
        "(month || '-01')::DATE) / 365.25 - (CASE grade WHEN 'K' THEN 0 ELSE grade::INT END + 5)"
        " AS gap FROM attendance)"
    ).fetchone()
    assert low > -0.1 and high < 3


def test_probation_events(con: duckdb.DuckDBPyConnection):
    types = {
        "START",
        "TECHNICAL_VIOLATION",
        "NEW_OFFENSE_VIOLATION",
        "NEW_CHARGE",
        "REVOCATION",
        "DISCHARGE",
    }
    assert set(one(con, "SELECT list(DISTINCT event_type) FROM events")) == types
    assert set(one(con, "SELECT list(DISTINCT population) FROM events")) == {"JUV", "ADULT"}
    assert (
        one(
            con,
            "SELECT count(*) FROM events WHERE (event_type = 'NEW_CHARGE') <> "
            "(offense_code IS NOT NULL AND gun_involved IN ('Y', 'N'))",
        )
        == 0
    )
    assert (
        one(
            con,
            "SELECT count(*) FROM events WHERE offense_code NOT IN "
            f"({', '.join(repr(c) for c in OFFENSES)})",
        )
        == 0
    )
    assert (
        rows_where(
            con, "events", "gun_involved = 'Y' AND offense_code NOT IN ('520', '13A', '120', '09A')"
        )
        == 0
    )
    assert rows_where(con, "events", "offense_code = '520' AND gun_involved <> 'Y'") == 0
    assert (
        rows_where(con, "events", "event_type = 'START' AND event_date <> supervision_start_date")
        == 0
    )
    assert rows_where(con, "events", "event_date < supervision_start_date") == 0
    # Case attributes are repeated identically on every row of a case.
    assert (
        one(
            con,
            "SELECT count(*) FROM (SELECT case_number FROM events GROUP BY 1 "
            "HAVING count(DISTINCT ("
            "person_name, date_of_birth, sex, population, supervision_start_date, residence_tract"
            ")) > 1)",
        )
        == 0
    )
    age = "date_diff('year', date_of_birth::DATE, supervision_start_date::DATE)"
    ages = con.execute(
        f"SELECT population, min({age}), max({age}) FROM events GROUP BY 1"
    ).fetchall()
    limits = {"JUV": (11, 18), "ADULT": (17, 61)}
    for population, low, high in ages:
        assert limits[population][0] <= low and high <= limits[population][1]
    # Cases that began before the window are already under way in its first month.
    assert rows_where(con, "events", "supervision_start_date < '2022-07-01'") > 0


def test_geography(con: duckdb.DuckDBPyConnection):
    n_beats, n_districts = con.execute(
        "SELECT count(DISTINCT beat), count(DISTINCT district) FROM beats"
    ).fetchone()
    assert 60 <= n_beats <= 100 and n_districts == 10
    assert (
        rows_where(
            con, "beats", "NOT regexp_matches(beat, '^\\d{4}$') OR 'D' || left(beat, 2) <> district"
        )
        == 0
    )
    assert rows_where(con, "beats", "beat NOT IN (SELECT beat FROM tracts)") == 0
    assert rows_where(con, "tracts", "beat NOT IN (SELECT beat FROM beats)") == 0
    assert one(con, "SELECT count(*) - count(DISTINCT tract_geoid) FROM tracts") == 0
    assert rows_where(con, "tracts", "NOT regexp_matches(tract_geoid, '^99001\\d{6}$')") == 0
    assert one(con, "SELECT max(n) FROM (SELECT count(*) n FROM tracts GROUP BY beat)") <= 3

    years = one(con, "SELECT list(DISTINCT year::INT ORDER BY year::INT) FROM population")
    assert years == [2022, 2023, 2024, 2025]
    assert one(con, "SELECT count(*) FROM population") == len(years) * n_beats * 6 * 2
    totals = con.execute(
        "SELECT year, sum(population::INT) FROM population GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert all(270_000 < total < 330_000 for _, total in totals)
    assert [t for _, t in totals] == sorted(t for _, t in totals)  # slowly growing
    residents = [
        r
        for (r,) in con.execute(
            "SELECT sum(population::INT) FROM population WHERE year = '2025' GROUP BY beat"
        ).fetchall()
    ]
    assert min(residents) < 800 and max(residents) <= 8_500
    assert sum(r < 800 for r in residents) >= 3


@pytest.mark.parametrize("end_month", ["2025-13", "2025-6", "June 2025"])
def test_malformed_end_month_is_rejected_before_writing(tmp_path: Path, end_month: str):
    with pytest.raises(ValueError, match="YYYY-MM"):
        generate(tmp_path, end_month=end_month, scale=0.01)
    assert list(tmp_path.iterdir()) == []


def test_repeat_domestic_violence_offenders(con: duckdb.DuckDBPyConnection):
    """Offender numbers are pseudonyms, mostly present for domestic incidents, and a share of
    domestic incidents comes from an offender with another one in the year before."""
    assert rows_where(con, "incidents", "NOT regexp_matches(offender_id, '^MN\\d{7}$')") == 0
    known = one(
        con,
        "SELECT avg((offender_id IS NOT NULL)::INT) FROM incidents WHERE domestic_violence = 'Y'",
    )
    assert known > 0.9
    repeat_share = one(
        con,
        """
        SELECT avg((EXISTS (
            SELECT 1 FROM incidents AS e
            WHERE e.offender_id = i.offender_id AND e.domestic_violence = 'Y'
              AND e.occurred_at::TIMESTAMP < i.occurred_at::TIMESTAMP
              AND e.occurred_at::TIMESTAMP >= i.occurred_at::TIMESTAMP - INTERVAL 12 MONTH
        ))::INT)
        FROM incidents AS i WHERE domestic_violence = 'Y' AND offender_id IS NOT NULL
        """,
    )
    assert 0.1 < repeat_share < 0.4
    # An offender number never crosses from domestic to other incidents' first offenders.
    mixed = one(
        con,
        "SELECT count(*) FROM (SELECT offender_id FROM incidents WHERE offender_id IS NOT NULL "
        "GROUP BY 1 HAVING count(DISTINCT domestic_violence) > 1)",
    )
    assert mixed == 0


def test_caseload_roster_lists_the_cases_under_supervision(con: duckdb.DuckDBPyConnection):
    """Each month-end roster holds the cases that started before and had not ended, with the
    same case attributes as the events extract."""
    assert rows_where(con, "caseload", "roster_date::DATE <> last_day(roster_date::DATE)") == 0
    assert rows_where(con, "caseload", "supervision_start_date::DATE > roster_date::DATE") == 0
    assert (
        one(con, "SELECT count(*) - count(DISTINCT (case_number, roster_date)) FROM caseload") == 0
    )
    assert set(one(con, "SELECT list(DISTINCT risk_level) FROM caseload")) == {
        "LOW",
        "MODERATE",
        "HIGH",
    }
    mismatched = one(
        con,
        """
        SELECT count(*) FROM (SELECT DISTINCT case_number, person_name, sex, population,
                                       supervision_start_date, residence_tract FROM caseload) AS c
        JOIN (SELECT DISTINCT case_number, person_name, sex, population, supervision_start_date,
                              residence_tract FROM events) AS e USING (case_number)
        WHERE (c.person_name, c.sex, c.population, c.supervision_start_date, c.residence_tract)
           <> (e.person_name, e.sex, e.population, e.supervision_start_date, e.residence_tract)
        """,
    )
    assert mismatched == 0
    # A case that ended (revocation or discharge) is on no roster after its last day.
    after_end = one(
        con,
        """
        SELECT count(*) FROM caseload AS c JOIN events AS e USING (case_number)
        WHERE e.event_type IN ('REVOCATION', 'DISCHARGE')
          AND c.roster_date::DATE >= e.event_date::DATE
        """,
    )
    assert after_end == 0
    juveniles = one(
        con,
        "SELECT avg(n) FROM (SELECT count(*) n FROM caseload WHERE population = 'JUV' GROUP BY "
        "roster_date)",
    )
    assert juveniles > 5


def test_survey_responses(con: duckdb.DuckDBPyConnection):
    answers = "satisfied_with_police, trust_police, feel_safe, would_report"
    assert (
        rows_where(con, "responses", f"least({answers})::INT < 1 OR greatest({answers})::INT > 5")
        == 0
    )
    assert rows_where(con, "responses", "age::INT < 18 OR age::INT > 90") == 0
    assert rows_where(con, "responses", "home_tract NOT IN (SELECT tract_geoid FROM tracts)") == 0
    assert one(con, "SELECT count(*) - count(DISTINCT response_id) FROM responses") == 0
    assert set(one(con, "SELECT list(DISTINCT gender) FROM responses")) <= {"F", "M", "X", "U"}
    # Residents of hot-spot beats are less satisfied and feel less safe.
    hot = ", ".join(f"'{b}'" for b in HOT_SPOTS)
    shares = dict(
        con.execute(
            f"""
            SELECT t.beat IN ({hot}), avg((satisfied_with_police::INT >= 4)::INT)
                                        + avg((feel_safe::INT >= 4)::INT)
            FROM responses AS r JOIN tracts AS t ON t.tract_geoid = r.home_tract GROUP BY 1
            """
        ).fetchall()
    )
    assert shares[True] < shares[False]
    assert rows_where(con, "responses", "comments IS NOT NULL") > 0


def test_hold_back_stops_a_provider_early_and_leaves_the_rest_unchanged(root: Path, tmp_path: Path):
    summary = generate(
        tmp_path, seed=SEED, scale=SCALE, end_month=END_MONTH, hold_back={"hospital": 3}
    )
    held = {f"hospital/inbox/ed_visits_{m}.csv" for m in MONTHS[-3:]}
    written = snapshot(tmp_path)
    full = snapshot(root)
    assert set(full) - set(written) == held
    assert all(written[name] == full[name] for name in written)
    assert summary.files["hospital/ed_visits"] == 33
    with pytest.raises(ValueError, match="non-negative"):
        generate(tmp_path / "x", scale=SCALE, end_month=END_MONTH, hold_back={"police": -1})


def test_a_second_demo_leaves_out_what_was_delivered(tmp_path: Path) -> None:
    """Files whose bytes the archive holds are taken back out of the inbox; others stay."""
    folder = DropFolder(tmp_path / "police")
    folder.inbox.mkdir(parents=True)
    folder.archive.mkdir()
    same = folder.inbox / "calls_2025-01.csv"
    same.write_bytes(b"call_number\nC1\n")
    kept = folder.archive_path(same.name, hashlib.sha256(same.read_bytes()).hexdigest())
    kept.write_bytes(same.read_bytes())
    revised = folder.inbox / "calls_2025-02.csv"
    revised.write_bytes(b"call_number\nC2\n")
    folder.archive_path(revised.name, "0" * 64).write_bytes(b"call_number\nC0\n")

    assert leave_out_delivered(tmp_path) == 1
    assert not same.exists() and revised.exists() and kept.exists()
