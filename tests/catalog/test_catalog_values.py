"""Every metric of the demo against an independent computation from the delivered records.

The expected numbers are computed here from the CSV files the demo dropped, with plain SQL that
shares nothing with the pipeline (no provider.yml, no cells, no dbt): each metric's definition
is written out again below, the records are placed on beats through the city's beat map and
tract crosswalk, and counted by month, quarter and year for the city and its districts (and by
sex for the city). Every such cell the warehouse publishes (status published or unreliable, for
the PST) must carry exactly these numbers; suppressed and missing cells show none.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from tests.conftest import DELIVERED_FILES, Deployment

FIREARM = "regexp_matches(code, '^(X9[345]|X7[234]|W3[234]|Y2[234]|Y350)')"
AIRGUN = "regexp_matches(code, '^(W3401|W3411|X7401|X9501|Y240)')"
VIOLENT = "offense_code IN ('09A', '11A', '120', '13A')"
GUN = "weapon_force_code IN ('11', '12', '13', '14', '15')"

# Record-level definitions: one row per counted record with its date (at), beat, sex, and the
# numerator (num) / denominator (den) flags, or a value (val) for sums and medians.
RECORDS = {
    "incidents": """
        SELECT CAST(occurred_at AS TIMESTAMP) AS at, beat, victim_sex AS sex, *
        FROM incidents
    """,
    "calls": """
        SELECT CAST(received_at AS TIMESTAMP) AS at, beat, NULL AS sex,
               date_diff('second', CAST(received_at AS TIMESTAMP),
                         CAST(first_arrived_at AS TIMESTAMP)) / 60.0 AS minutes, *
        FROM calls
    """,
    "attendance": """
        SELECT CAST(strptime(a.month, '%Y-%m') AS TIMESTAMP) AS at, s.beat, a.sex,
               CAST(days_absent AS INTEGER) AS absent, CAST(days_enrolled AS INTEGER) AS enrolled,
               coalesce(CAST(oss_suspensions AS INTEGER), 0) AS oss,
               coalesce(CAST(school_arrests AS INTEGER), 0)
                 + coalesce(CAST(law_enforcement_referrals AS INTEGER), 0) AS arrests
        FROM attendance AS a JOIN schools AS s USING (school_id)
    """,
    "visits": """
        SELECT CAST(visit_at AS TIMESTAMP) AS at, t.beat, v.sex,
               replace(upper(diagnosis_code), '.', '') AS code,
               right(upper(diagnosis_code), 1) = 'A' AS initial,
               date_sub('year', CAST(date_of_birth AS DATE), CAST(visit_at AS DATE)) AS age
        FROM visits AS v JOIN tracts AS t ON t.tract_geoid = v.residence_tract
    """,
    "events": """
        SELECT CAST(event_date AS TIMESTAMP) AS at, t.beat, e.sex, e.*
        FROM events AS e JOIN tracts AS t ON t.tract_geoid = e.residence_tract
    """,
    "caseload": """
        SELECT CAST(roster_date AS TIMESTAMP) AS at, t.beat, c.sex, c.population
        FROM caseload AS c JOIN tracts AS t ON t.tract_geoid = c.residence_tract
    """,
    "responses": """
        SELECT CAST(submitted_at AS TIMESTAMP) AS at, t.beat, r.gender AS sex,
               CAST(satisfied_with_police AS INTEGER) AS satisfied,
               CAST(trust_police AS INTEGER) AS trust, CAST(feel_safe AS INTEGER) AS safe,
               CAST(would_report AS INTEGER) AS report
        FROM responses AS r JOIN tracts AS t ON t.tract_geoid = r.home_tract
    """,
}

# metric -> (records, kind, numerator condition or value, denominator condition or None)
# kind: count | sum | median | percent | rate (per 1,000 residents); month_only for stocks and
# people counted once per month.
METRICS = {
    "violent_firearm_crimes": ("incidents", "count", f"{VIOLENT} AND {GUN}", None),
    "violent_firearm_crime_rate": ("incidents", "rate", f"{VIOLENT} AND {GUN}", None),
    "shots_fired_calls": ("calls", "count", "call_type_code = 'SHOTS'", None),
    "violent_crime_clearance_rate": (
        "incidents", "percent", f"{VIOLENT} AND clearance_code IN ('A', 'E')", VIOLENT,
    ),
    "repeat_domestic_violence": (
        "incidents",
        "percent",
        """domestic_violence = 'Y' AND offender_id IS NOT NULL AND EXISTS (
               SELECT 1 FROM incidents AS e
               WHERE e.offender_id = r.offender_id AND e.domestic_violence = 'Y'
                 AND CAST(e.occurred_at AS TIMESTAMP) < r.at
                 AND CAST(e.occurred_at AS TIMESTAMP) >= r.at - INTERVAL 12 MONTH)""",
        "domestic_violence = 'Y' AND offender_id IS NOT NULL",
    ),
    "priority1_response_time": ("calls", "median", "priority = '1' AND minutes >= 0", None),
    "priority1_within_10_minutes": (
        "calls", "percent", "priority = '1' AND minutes BETWEEN 0 AND 10",
        "priority = '1' AND minutes >= 0",
    ),
    "chronic_absenteeism_rate": (
        "attendance", "percent_month_only", "enrolled > 0 AND absent >= 0.1 * enrolled", "true",
    ),
    "out_of_school_suspensions": ("attendance", "sum", "oss", None),
    "school_arrests_and_referrals": ("attendance", "sum", "arrests", None),
    "firearm_injury_ed_visits": (
        "visits", "count", f"{FIREARM} AND NOT {AIRGUN} AND initial", None,
    ),
    "firearm_injury_ed_visit_rate": (
        "visits", "rate", f"{FIREARM} AND NOT {AIRGUN} AND initial", None,
    ),
    "youth_assault_firearm_injuries": (
        "visits", "count",
        f"regexp_matches(code, '^X9[345]') AND NOT {AIRGUN} AND initial AND age BETWEEN 10 AND 24",
        None,
    ),
    "probation_new_gun_charges": (
        "events", "count",
        "event_type = 'NEW_CHARGE' AND gun_involved = 'Y' "
        "AND CAST(event_date AS DATE) < CAST(supervision_start_date AS DATE) + INTERVAL 12 MONTH",
        None,
    ),
    "probation_revocations": ("events", "count", "event_type = 'REVOCATION'", None),
    "probation_technical_violations": (
        "events", "count", "event_type = 'TECHNICAL_VIOLATION'", None,
    ),
    "probation_new_offense_violations": (
        "events", "count", "event_type = 'NEW_OFFENSE_VIOLATION'", None,
    ),
    "technical_violation_share": (
        "events", "percent", "event_type = 'TECHNICAL_VIOLATION'",
        "event_type IN ('TECHNICAL_VIOLATION', 'NEW_OFFENSE_VIOLATION')",
    ),
    "juvenile_probation_caseload": ("caseload", "count_month_only", "population = 'JUV'", None),
    "satisfaction_with_police": ("responses", "percent", "satisfied >= 4", "true"),
    "trust_in_police": ("responses", "percent", "trust >= 4", "true"),
    "feel_safe_in_neighbourhood": ("responses", "percent", "safe >= 4", "true"),
    "willingness_to_report_crime": ("responses", "percent", "report >= 4", "true"),
}  # fmt: skip


@pytest.fixture(scope="module")
def records(demo: Deployment) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    for name, pattern in DELIVERED_FILES.items():
        path = (demo.delivered / pattern).as_posix()
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', all_varchar = true)")
    yield con
    con.close()


def expected_cells(con: duckdb.DuckDBPyConnection, metric: str) -> dict[tuple, tuple]:
    """(period_level, period_start, geo_level, geo_code, breakdown) -> (value, num, den)."""
    source, kind, numerator, denominator = METRICS[metric]
    levels = ["month"] if kind.endswith("month_only") else ["month", "quarter", "year"]
    kind = kind.removesuffix("_month_only")
    if kind == "sum":
        stat = f"sum({numerator}) AS num, NULL AS den"
    elif kind == "median":
        stat = f"count(*) FILTER (WHERE {numerator}) AS num, NULL AS den"
    else:
        stat = f"count(*) FILTER (WHERE {numerator}) AS num, " + (
            f"count(*) FILTER (WHERE {denominator}) AS den" if denominator else "NULL AS den"
        )
    median = f"median(minutes) FILTER (WHERE {numerator})" if kind == "median" else "NULL"
    groupings = []
    for level in levels:
        period = f"CAST(date_trunc('{level}', r.at) AS DATE)"
        for geo_level, geo in (("city", "'RIV'"), ("district", "b.district")):
            groupings.append(
                f"SELECT '{level}' AS period_level, {period} AS period_start, "
                f"'{geo_level}' AS geo_level, {geo} AS geo_code, 'total' AS breakdown, "
                f"{stat}, {median} AS med FROM r JOIN beats AS b USING (beat) GROUP BY ALL"
            )
        groupings.append(
            f"SELECT '{level}', {period}, 'city', 'RIV', 'sex=F', {stat}, {median} "
            "FROM r JOIN beats AS b USING (beat) WHERE r.sex = 'F' GROUP BY ALL"
        )
    rows = con.execute(f"WITH r AS ({RECORDS[source]}) " + " UNION ALL ".join(groupings)).fetchall()
    out = {}
    for level, start, geo_level, geo_code, breakdown, num, den, med in rows:
        key = (level, str(start), geo_level, geo_code, breakdown)
        if kind == "median":
            out[key] = (med, num, None)
        elif kind == "percent":
            out[key] = (round(num * 100 / den, 3) if den else None, num, den)
        elif kind == "rate":
            population = residents(con, int(str(start)[:4]), geo_level, geo_code, breakdown)
            out[key] = (round(num * 1000 / population, 3), num, population)
        else:
            out[key] = (num, num, None)
    return out


def residents(con: duckdb.DuckDBPyConnection, year: int, geo_level: str, code: str, bd: str) -> int:
    where = f"CAST(p.year AS INTEGER) = {year}"
    if geo_level == "district":
        where += f" AND b.district = '{code}'"
    if bd == "sex=F":
        where += " AND p.sex = 'F'"
    return con.execute(
        "SELECT sum(CAST(population AS INTEGER)) FROM population AS p JOIN beats AS b "
        f"USING (beat) WHERE {where}"
    ).fetchall()[0][0]


def published_cells(demo: Deployment, metric: str) -> dict[tuple, tuple]:
    rows = demo.query(
        f"""
        SELECT period_level, period_start, geo_level, geo_code, breakdown, value, numerator,
               denominator, status
        FROM metric_values
        WHERE audience = 'pst' AND metric_id = '{metric}'
          AND (breakdown = 'total' AND geo_level IN ('city', 'district')
               OR breakdown = 'sex=F' AND geo_level = 'city')
        """
    )
    return {(r[0], str(r[1]), r[2], r[3], r[4]): r[5:] for r in rows}


def test_every_metric_is_defined_here(demo: Deployment) -> None:
    catalog = {r[0] for r in demo.query("SELECT DISTINCT metric_id FROM metric_catalog")}
    assert catalog == set(METRICS)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_published_values_match_the_records(
    demo: Deployment, records: duckdb.DuckDBPyConnection, metric: str
) -> None:
    expected = expected_cells(records, metric)
    actual = published_cells(demo, metric)
    shown = {k: v for k, v in actual.items() if v[3] in ("published", "unreliable")}
    for key, (value, numerator, denominator, _) in shown.items():
        assert key in expected, (key, "published but no delivered record falls in it")
        want_value, want_num, want_den = expected[key]
        assert numerator == want_num, (key, numerator, want_num)
        if want_den is not None:
            assert denominator == want_den, (key, denominator, want_den)
        assert value == pytest.approx(want_value, abs=0.0015), (key, value, want_value)
    for key, (value, _, _, status) in actual.items():
        if status in ("suppressed", "missing"):
            assert value is None, key
    # Cells with records that the warehouse leaves out or zeroes would show up here.
    for key in expected.keys() & actual.keys():
        if actual[key][3] == "missing":
            assert key[0] != "month" or expected[key][1] == 0, key
    if not shown:
        # Too rare to publish at this scale: then some cell really is small (1..10).
        assert any(0 < num < 11 for _, num, _ in expected.values()), metric
