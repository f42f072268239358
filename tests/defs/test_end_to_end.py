"""The whole pipeline on the demo city: generate, drop, refresh, then read the published warehouse.

Expected values are computed here, independently, from the delivered CSV files with plain DuckDB
SQL; the published warehouse is read from a separate process, read-only, as an analyst would.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.privacy.release_audit import audit_release
from cs360_pipeline.settings import SHIPPED_POLICY, Paths
from tests.conftest import DELIVERED_FILES, Deployment

FIREARM = "('11', '12', '13', '14', '15')"
VIOLENT = "('09A', '11A', '120', '13A')"


def published(demo: Deployment, sql: str) -> list[tuple]:
    """Run a query against the warehouse in another process, read-only."""
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "print(json.dumps(con.execute(sys.argv[2]).fetchall(), default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(demo.warehouse), sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(row) for row in json.loads(out.stdout)]


def delivered(demo: Deployment, sql: str) -> list[tuple]:
    """Query the delivered files directly: `{provider}` placeholders become CSV globs."""
    globs = {
        name: f"read_csv('{demo.delivered}/{path}', all_varchar = true)"
        for name, path in DELIVERED_FILES.items()
    }
    con = duckdb.connect()
    try:
        return con.execute(sql.format(**globs)).fetchall()
    finally:
        con.close()


def metric_slice(
    demo: Deployment, metric: str, period: str, geo: str, breakdown: str, audience: str = "pst"
) -> dict:
    rows = published(
        demo,
        f"""
        SELECT period_start, geo_code, value, numerator, denominator, status
        FROM metric_values
        WHERE audience = '{audience}' AND metric_id = '{metric}' AND period_level = '{period}'
          AND geo_level = '{geo}' AND breakdown = '{breakdown}'
        """,
    )
    return {(str(r[0]), r[1]): r[2:] for r in rows}


def assert_counts_match(expected: dict, actual: dict, k: int) -> None:
    """Every cell of the slice is published exactly or suppressed without a value; every small
    count is suppressed; a cell with no records is a published zero (never a complement)."""
    assert expected, "the independent computation found no cells"
    assert set(expected) <= set(actual), "the slice lacks cells that have records"
    shown = 0
    for key, (value, numerator, _, status) in actual.items():
        n = expected.get(key, 0)
        if status == "suppressed":
            assert value is None and numerator is None and n > 0, (key, n)
        else:
            assert not 0 < n < k, (key, n)
            assert status == "published" and value == n and numerator == n, (key, n, actual[key])
            shown += n > 0
    assert shown, "nothing in the slice is published: the test would check nothing"


def test_published_tables_have_the_contract_columns(demo: Deployment) -> None:
    columns = published(
        demo,
        "SELECT table_name, list(column_name ORDER BY column_name) "
        "FROM information_schema.columns GROUP BY 1 ORDER BY 1",
    )
    tables = dict(columns)
    assert set(tables) == {
        "geography",
        "metric_catalog",
        "metric_notes",
        "metric_values",
        "privacy_report",
        "provider_status",
        "release_manifest",
    }
    assert {
        "build_id",
        "checks",
        "input_files",
        "pattern_sha256",
        "policy_sha256",
        "release_id",
    } <= set(tables["release_manifest"])
    manifest = published(demo, "SELECT release_id, len(input_files) FROM release_manifest")
    assert len(manifest) == 1 and manifest[0][1] > 0
    assert manifest[0][0] == published(demo, "SELECT DISTINCT release_id FROM metric_values")[0][0]
    assert {
        "audience",
        "metric_id",
        "period_level",
        "period_start",
        "geo_level",
        "geo_code",
        "breakdown",
        "value",
        "numerator",
        "denominator",
        "status",
        "release_id",
    } <= set(tables["metric_values"])
    assert {
        "metric_id",
        "title",
        "dimension",
        "definition",
        "unit",
        "direction",
        "providers",
        "owner",
        "cadence",
        "min_cell_size",
        "latest_period",
        "latest_value",
    } <= set(tables["metric_catalog"])
    assert set(tables["geography"]) == {
        "geo_level",
        "geo_code",
        "name",
        "parent_level",
        "parent_code",
        "boundary",
    }


def test_catalog_covers_every_provider(demo: Deployment) -> None:
    rows = published(demo, "SELECT metric_id, unit, providers, owner FROM metric_catalog")
    assert len(rows) >= 8
    per_provider: dict[str, int] = {}
    for _, _, providers, owner in rows:
        assert owner
        for provider in providers.split(", "):
            per_provider[provider] = per_provider.get(provider, 0) + 1
    assert set(per_provider) == {"police", "school", "hospital", "probation", "survey", "city"}
    assert min(per_provider.values()) >= 2
    assert any(unit == "rate_per_1000" for _, unit, _, _ in rows)
    # Every metric has published cells.
    counts = dict(published(demo, "SELECT metric_id, count(*) FROM metric_values GROUP BY 1"))
    assert set(counts) == {r[0] for r in rows}


def test_geography_tree(demo: Deployment) -> None:
    rows = published(demo, "SELECT geo_level, count(*) FROM geography GROUP BY 1")
    levels = dict(rows)
    assert levels["city"] == 1
    assert levels["district"] == 10
    assert 60 <= levels["beat"] <= 100
    expected = delivered(demo, "SELECT count(*) FROM {beats}")[0][0]
    assert levels["beat"] == expected


def test_violent_firearm_crimes_by_quarter(demo: Deployment) -> None:
    expected = {
        (str(q), "RIV"): n
        for q, n in delivered(
            demo,
            f"""
            SELECT CAST(date_trunc('quarter', CAST(i.occurred_at AS TIMESTAMP)) AS DATE),
                   count(*)
            FROM {{incidents}} AS i JOIN {{beats}} AS b USING (beat)
            WHERE i.offense_code IN {VIOLENT} AND i.weapon_force_code IN {FIREARM}
            GROUP BY ALL
            """,
        )
    }
    for audience in ("pst", "public"):
        actual = metric_slice(demo, "violent_firearm_crimes", "quarter", "city", "total", audience)
        assert_counts_match(expected, actual, k=10)


def test_violent_firearm_crimes_of_female_victims_by_year(demo: Deployment) -> None:
    expected = {
        (str(y), "RIV"): n
        for y, n in delivered(
            demo,
            f"""
            SELECT CAST(date_trunc('year', CAST(i.occurred_at AS TIMESTAMP)) AS DATE), count(*)
            FROM {{incidents}} AS i JOIN {{beats}} AS b USING (beat)
            WHERE i.offense_code IN {VIOLENT} AND i.weapon_force_code IN {FIREARM}
              AND i.victim_sex = 'F'
            GROUP BY ALL
            """,
        )
    }
    actual = metric_slice(demo, "violent_firearm_crimes", "year", "city", "sex=F")
    assert_counts_match(expected, actual, k=10)


def test_violent_firearm_crime_rate_per_1000_residents(demo: Deployment) -> None:
    expected = delivered(
        demo,
        f"""
        WITH crimes AS (
            SELECT year(CAST(occurred_at AS TIMESTAMP)) AS y, count(*) AS n
            FROM {{incidents}} AS i JOIN {{beats}} AS b USING (beat)
            WHERE offense_code IN {VIOLENT} AND weapon_force_code IN {FIREARM}
            GROUP BY 1
        ),
        residents AS (
            SELECT CAST(year AS INTEGER) AS y, sum(CAST(population AS INTEGER)) AS p
            FROM {{population}} GROUP BY 1
        )
        SELECT make_date(y, 1, 1), n, p, round(n * 1000.0 / p, 3)
        FROM crimes JOIN residents USING (y)
        """,
    )
    actual = metric_slice(demo, "violent_firearm_crime_rate", "year", "city", "total")
    for year, n, population, rate in expected:
        value, numerator, denominator, status = actual[(str(year), "RIV")]
        assert (numerator, denominator) == (n, population)
        assert value == pytest.approx(rate)
        assert status == ("published" if n >= 20 else "unreliable")


def test_shots_fired_calls_by_month(demo: Deployment) -> None:
    expected = {
        (str(m), "RIV"): n
        for m, n in delivered(
            demo,
            """
            SELECT CAST(date_trunc('month', CAST(received_at AS TIMESTAMP)) AS DATE), count(*)
            FROM {calls} AS c JOIN {beats} AS b USING (beat)
            WHERE call_type_code = 'SHOTS' GROUP BY ALL
            """,
        )
    }
    actual = metric_slice(demo, "shots_fired_calls", "month", "city", "total")
    assert_counts_match(expected, actual, k=10)


def test_priority1_median_response_time_by_year(demo: Deployment) -> None:
    expected = delivered(
        demo,
        """
        SELECT CAST(date_trunc('year', r) AS DATE), count(*), median(minutes)
        FROM (
            SELECT CAST(received_at AS TIMESTAMP) AS r,
                   date_diff('second', CAST(received_at AS TIMESTAMP),
                             CAST(first_arrived_at AS TIMESTAMP)) / 60.0 AS minutes
            FROM {calls} AS c JOIN {beats} AS b USING (beat)
            WHERE priority = '1' AND first_arrived_at IS NOT NULL
        )
        WHERE minutes >= 0
        GROUP BY ALL
        """,
    )
    actual = metric_slice(demo, "priority1_response_time", "year", "city", "total")
    assert len(expected) == 3
    for year, n, median in expected:
        value, numerator, _, status = actual[(str(year), "RIV")]
        assert status == "published" and numerator == n
        assert value == pytest.approx(median, abs=0.001)


def test_chronic_absenteeism_percent_by_district_and_month(demo: Deployment) -> None:
    """Students are counted per month (a student absent in two months is one student in the
    quarter, so there are no quarter or year cells): missed >= 10% of enrolled days."""
    expected = delivered(
        demo,
        """
        SELECT strptime(a.month, '%Y-%m')::DATE, b.district,
               count(*) FILTER (WHERE CAST(days_absent AS INTEGER)
                                      >= 0.1 * CAST(days_enrolled AS INTEGER)
                                AND CAST(days_enrolled AS INTEGER) > 0) AS chronic,
               count(*) AS students
        FROM {attendance} AS a
        JOIN {schools} AS s USING (school_id)
        JOIN {beats} AS b ON b.beat = s.beat
        GROUP BY ALL
        """,
    )
    actual = metric_slice(demo, "chronic_absenteeism_rate", "month", "district", "total")
    assert expected
    shown = 0
    for month, district, chronic, students in expected:
        value, numerator, denominator, status = actual[(str(month), district)]
        if status == "suppressed":
            assert value is None and numerator is None
            continue
        assert not 0 < chronic < 10 and not 0 < students < 10
        assert (numerator, denominator) == (chronic, students)
        assert value == pytest.approx(round(chronic * 100 / students, 3))
        assert status == ("published" if chronic >= 20 else "unreliable")
        shown += 1
    assert shown > len(expected) / 2
    periods = published(
        demo,
        "SELECT DISTINCT period_level FROM metric_values "
        "WHERE metric_id = 'chronic_absenteeism_rate'",
    )
    assert periods == [("month",)]


def test_firearm_ed_visits_by_year(demo: Deployment) -> None:
    """Initial-encounter firearm injuries of any intent; air, BB and pellet guns excluded."""
    expected = {
        (str(y), "RIV"): n
        for y, n in delivered(
            demo,
            """
            SELECT CAST(date_trunc('year', CAST(visit_at AS TIMESTAMP)) AS DATE), count(*)
            FROM {visits} AS v JOIN {tracts} AS t ON t.tract_geoid = v.residence_tract
            WHERE regexp_matches(replace(upper(diagnosis_code), '.', ''),
                                 '^(W3[234]|X7[234]|X9[345]|Y2[234]|Y350).*A$')
              AND NOT regexp_matches(replace(upper(diagnosis_code), '.', ''),
                                     '^(W3401|W3411|X7401|X9501|Y240)')
            GROUP BY ALL
            """,
        )
    }
    actual = metric_slice(demo, "firearm_injury_ed_visits", "year", "city", "total")
    assert_counts_match(expected, actual, k=11)


def test_probation_revocations_by_year(demo: Deployment) -> None:
    expected = {
        (str(q), "RIV"): n
        for q, n in delivered(
            demo,
            """
            SELECT CAST(date_trunc('year', CAST(event_date AS DATE)) AS DATE), count(*)
            FROM {events} AS e JOIN {tracts} AS t ON t.tract_geoid = e.residence_tract
            WHERE event_type = 'REVOCATION' GROUP BY ALL
            """,
        )
    }
    actual = metric_slice(demo, "probation_revocations", "year", "city", "total")
    assert_counts_match(expected, actual, k=10)


def test_no_published_count_is_small(demo: Deployment) -> None:
    """The primary rule, on every published cell: no count 0 < n < k, no value when suppressed."""
    rows = published(
        demo,
        """
        SELECT count(*) FILTER (WHERE v.numerator > 0 AND v.numerator < c.min_cell_size),
               count(*) FILTER (WHERE c.unit = 'percent'
                                AND v.denominator > 0 AND v.denominator < c.min_cell_size),
               count(*) FILTER (WHERE v.status = 'suppressed'
                                AND (v.value IS NOT NULL OR v.numerator IS NOT NULL)),
               count(*) FILTER (WHERE v.status = 'suppressed'),
               count(*)
        FROM metric_values AS v JOIN metric_catalog AS c USING (audience, metric_id)
        """,
    )
    small_numerators, small_denominators, leaked, suppressed, total = rows[0]
    assert (small_numerators, small_denominators, leaked) == (0, 0, 0)
    assert 0 < suppressed < total  # suppression really happened, and not everywhere


def test_no_row_level_data_is_published(demo: Deployment) -> None:
    """No identifier column, no record key, and none of the delivered names or ids as a value."""
    columns = {r[0] for r in published(demo, "SELECT column_name FROM information_schema.columns")}
    forbidden = {
        "victim_name",
        "victim_dob",
        "block_address",
        "caller_name",
        "caller_phone",
        "student_id",
        "student_name",
        "date_of_birth",
        "home_address",
        "mrn",
        "patient_name",
        "residence_address",
        "chief_complaint",
        "person_name",
        "case_number",
        "incident_number",
        "call_number",
        "visit_id",
    }
    assert not columns & forbidden
    samples = [
        r[0]
        for r in delivered(
            demo,
            """
            (SELECT victim_name FROM {incidents} WHERE victim_name IS NOT NULL
             ORDER BY 1 LIMIT 5)
            UNION ALL (SELECT student_id FROM {attendance} ORDER BY 1 DESC LIMIT 5)
            UNION ALL (SELECT case_number FROM {events} ORDER BY 1 LIMIT 5)
            UNION ALL (SELECT incident_number FROM {incidents} ORDER BY 1 LIMIT 5)
            """,
        )
    ]
    assert len(samples) == 20
    text_columns = published(
        demo,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE data_type = 'VARCHAR'",
    )
    union = " UNION ALL ".join(f'SELECT "{c}" AS v FROM "{t}"' for t, c in text_columns)
    quoted = ", ".join("'" + s.replace("'", "''") + "'" for s in samples)
    hits = published(demo, f"SELECT count(*) FROM ({union}) WHERE v IN ({quoted})")
    assert hits == [(0,)]
    # Cells, not records: metric_values is unique on its cell key.
    dupes = published(
        demo,
        "SELECT count(*) FROM (SELECT 1 FROM metric_values GROUP BY audience, metric_id, "
        "period_level, period_start, geo_level, geo_code, breakdown HAVING count(*) > 1)",
    )
    assert dupes == [(0,)]


def test_every_delivered_file_is_archived_byte_identical(demo: Deployment) -> None:
    for original in sorted(demo.delivered.rglob("*.csv")):
        provider = original.parent.name
        digest = hashlib.sha256(original.read_bytes()).hexdigest()
        archived = demo.sources / provider / "archive" / f"{digest[:16]}__{original.name}"
        assert archived.read_bytes() == original.read_bytes()
    leftovers = [p for p in demo.sources.glob("*/inbox/*") if p.is_file()]
    assert leftovers == []


def test_release_is_recorded(demo: Deployment) -> None:
    release_ids = published(demo, "SELECT DISTINCT release_id FROM metric_values")
    assert len(release_ids) == 1 and release_ids[0][0].startswith("r-")


def test_status_shows_every_dataset_on_time(demo: Deployment) -> None:
    result = demo.cs360("status")
    lines = result.stdout.splitlines()
    assert lines[0] == f"Delivery status as of {demo.as_of} (the last refresh):"
    table = lines[2 : lines.index("")] if "" in lines else lines[2:]
    rows = {tuple(line.split()[:2]): line for line in table}
    assert set(rows) == {
        ("city", "beat_boundaries"), ("city", "beats"), ("city", "population"),
        ("city", "tracts"),
        ("hospital", "ed_visits"), ("police", "calls"), ("police", "incidents"),
        ("probation", "caseload"), ("probation", "events"), ("school", "attendance"),
        ("school", "schools"), ("survey", "responses"),
    }  # fmt: skip
    assert "2025-12-31" in rows[("police", "incidents")]
    assert " on_time " in rows[("police", "incidents")]
    assert " not_scheduled " in rows[("city", "beats")]
    assert result.returncode == 0 and result.stderr == ""


def warehouse_digest(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT * FROM metric_values ORDER BY ALL").fetchall()
    finally:
        con.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_the_published_release_passes_the_auditor_for_every_audience(demo: Deployment) -> None:
    """The independent attacker, run again from outside the pipeline on what was published."""
    con = duckdb.connect(str(demo.data / "build" / "build.duckdb"), read_only=True)
    try:
        vault.attach(con, Paths(data_dir=demo.data, sources_dir=demo.sources), read_only=True)
        result = audit_release(
        con, releases_public=2, audiences=["pst", "public"], policy=load_policy(SHIPPED_POLICY)
    )
        # ... with school and probation cells attacked by insiders too, hospital cells not.
        insider = dict(
            con.execute(
                "SELECT split_part(measure_id, '__', 1), bool_and(insider) FROM vault.cells "
                "GROUP BY 1 HAVING bool_and(insider) = bool_or(insider)"
            ).fetchall()
        )
    finally:
        con.close()
    assert result.passed, result.text()
    assert [insider.get(p) for p in ("probation", "school", "hospital")] == [True, True, False]
    families = {(f.audience, f.measure_id) for f in result.families}
    assert {a for a, _ in families} == {"pst", "public"}
    assert len(families) >= 2 * 12
    assert sum(f.report.primaries for f in result.families) > 0
    report = published(
        demo,
        "SELECT audience, sum(suppressed), sum(cells) FROM privacy_report GROUP BY 1 ORDER BY 1",
    )
    assert [r[0] for r in report] == ["pst", "public"]
    assert all(0 < suppressed < cells for _, suppressed, cells in report)
    # Every measure found a safe pattern the usual way: none fell back, none was withheld.
    assert published(
        demo, "SELECT count(*) FROM privacy_report WHERE protection_fallback IS NOT NULL"
    ) == [(0,)]
