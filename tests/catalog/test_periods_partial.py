"""Honest periods in the city's time zone.

- A timestamp with an offset or ``Z`` is taken to the city's wall-clock time at ingest, so a
  row at 2025-08-01T03:00Z counts in July in America/Chicago; a naive one is wall-clock already.
- A final month delivered through the 5th, its quarter and its year are partial in
  metric_values (period_complete false, data_through the 5th), in the exports and in the brief,
  and the catalog's latest value, trend and baseline ignore them (one real refresh of a small
  demo city whose police files stop on 5 August).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import statistics
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.privacy.policy import PolicyError, load_policy
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import SHIPPED_POLICY
from cs360_pipeline.sql import literal
from tests.conftest import CALLS_DATASET, TEST_PROVIDER_HEADER, Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=0.5)  # of real refreshes: scheduled first

CHICAGO = "America/Chicago"


def calls_provider(**dataset: object) -> Provider:
    return Provider.model_validate(
        {**TEST_PROVIDER_HEADER, "datasets": {"calls": {**CALLS_DATASET, **dataset}}}
    )


# -- the city's time zone at ingest ----------------------------------------------------------


def test_the_demo_city_keeps_chicago_time() -> None:
    assert load_policy(SHIPPED_POLICY).tables.city.time_zone == CHICAGO


def test_an_unknown_time_zone_names_the_file_and_key(tmp_path: Path) -> None:
    text = SHIPPED_POLICY.read_text(encoding="utf-8")
    bad = tmp_path / "policy.yml"
    bad.write_text(text.replace(f"time_zone: {CHICAGO}", "time_zone: Mars/Olympus"), "utf-8")
    with pytest.raises(PolicyError) as error:
        load_policy(bad)
    assert str(bad) in str(error.value)
    assert "tables.city.time_zone" in str(error.value)
    assert "IANA" in str(error.value)


def test_offset_timestamps_count_in_the_citys_month(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """Around the July/August boundary: UTC and offsets converted, naive kept as it is."""
    rows = [
        ("C1", "2025-08-01T03:00:00Z"),  # 22:00 on 31 July in Chicago (CDT, UTC-5)
        ("C2", "2025-08-01 03:00:00+00:00"),  # the same instant written another way
        ("C3", "2025-08-01T07:30:00+02:00"),  # 00:30 on 1 August in Chicago
        ("C4", "2025-08-01 03:00:00"),  # naive: Chicago wall-clock already, August
        ("C5", "2025-07-31T23:30:00-05:00"),  # written in Chicago's own offset
    ]
    body = "".join(f"{n},A,{t}\n" for n, t in rows)
    (folder.inbox / "calls_2025_08.csv").write_text("call_number,kind,received_at\n" + body)

    outcomes = ingest_dataset(
        con, calls_provider(), "calls", folder, log=lambda _: None, time_zone=CHICAGO
    )

    assert [o.status for o in outcomes] == ["loaded"]
    got = dict(con.execute("SELECT call_number, received_at FROM police__calls").fetchall())
    assert got == {
        "C1": dt.datetime(2025, 7, 31, 22, 0),
        "C2": dt.datetime(2025, 7, 31, 22, 0),
        "C3": dt.datetime(2025, 8, 1, 0, 30),
        "C4": dt.datetime(2025, 8, 1, 3, 0),
        "C5": dt.datetime(2025, 7, 31, 23, 30),
    }
    months = con.execute(
        "SELECT strftime(received_at, '%Y-%m') AS m, count(*) FROM police__calls "
        "GROUP BY m ORDER BY m"
    ).fetchall()
    assert months == [("2025-07", 3), ("2025-08", 2)]
    ledger = con.execute(
        "SELECT first_period, last_period, data_through FROM _ingest_ledger"
    ).fetchall()
    assert ledger == [(dt.date(2025, 7, 1), dt.date(2025, 8, 1), dt.date(2025, 8, 1))]


def test_a_zoned_parquet_timestamp_is_read_in_the_city_zone(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    target = folder.inbox / "calls_2025_08.parquet"
    with duckdb.connect() as scratch:
        scratch.execute("SET TimeZone = 'Asia/Tokyo'")  # the writer's clock must not matter
        scratch.execute(
            "COPY (SELECT 'C1' AS call_number, 'A' AS kind, "
            "TIMESTAMPTZ '2025-08-01 03:00:00+00' AS received_at) "
            f"TO {literal(target)} (FORMAT parquet)"
        )

    provider = calls_provider(format="parquet", file_pattern="calls_*.parquet")
    outcomes = ingest_dataset(con, provider, "calls", folder, log=lambda _: None, time_zone=CHICAGO)

    assert [o.status for o in outcomes] == ["loaded"]
    assert con.execute("SELECT received_at FROM police__calls").fetchall() == [
        (dt.datetime(2025, 7, 31, 22, 0),)
    ]


def test_a_timestamp_that_is_not_one_is_still_rejected(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """The offset rule reads ISO 8601 with an offset only; anything else breaks the contract."""
    body = "C1,A,2025-08-01T03:00:00Z\nC2,A,2025-08-01 25:00:00+00\nC3,A,yesterday+01\n"
    (folder.inbox / "calls_2025_08.csv").write_text("call_number,kind,received_at\n" + body)
    provider = calls_provider(max_bad_row_share=0.9)

    outcomes = ingest_dataset(con, provider, "calls", folder, log=lambda _: None)

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 1)]
    assert "received_at must be a TIMESTAMP" in outcomes[0].message
    assert "yesterday" not in outcomes[0].message


# -- a final month delivered through the 5th: one real refresh -------------------------------

THROUGH = "2025-08-05"
POLICE_PERIOD = {"incidents": "occurred_at", "calls": "received_at"}
UNUSED = ("school", "hospital", "survey")


def cut_after(path: Path, column: str, last_day: str) -> int:
    """Keep the rows of a delivered CSV dated up to ``last_day``; returns the rows kept."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        kept = [r for r in reader if r[column][:10] <= last_day]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept)
    path.write_text(out.getvalue(), encoding="utf-8")
    return len(kept)


@pytest.fixture(scope="module")
def partial_city(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Jan 2024 to Aug 2025, police's August files stopping on the 5th; refreshed once."""
    from cs360_pipeline.demo import generate

    root = tmp_path_factory.mktemp("partial")
    deployment = new_deployment(root)
    deployment = Deployment(
        root=deployment.root,
        sources=deployment.sources,
        data=deployment.data,
        delivered=deployment.delivered,
        as_of="2025-09-10",
    )
    generate(deployment.sources, seed=7, scale=0.05, end_month="2025-08", months=20)
    for provider in UNUSED:  # fewer files to load: their metrics are simply never delivered
        for delivered in (deployment.sources / provider / "inbox").iterdir():
            delivered.unlink()
    for name, column in POLICE_PERIOD.items():
        august = deployment.sources / "police" / "inbox" / f"{name}_2025-08.csv"
        assert cut_after(august, column, THROUGH) > 0
    for inbox in deployment.sources.glob("*/inbox"):
        shutil.copytree(inbox, deployment.delivered / inbox.parent.name)
    deployment.cs360("refresh")
    return deployment


def city_total(deployment: Deployment, metric: str, level: str) -> dict[dt.date, tuple]:
    rows = deployment.query(
        "SELECT period_start, period_complete, data_through, value, status FROM metric_values "
        f"WHERE audience = 'pst' AND metric_id = {literal(metric)} AND geo_level = 'city' "
        f"AND breakdown = 'total' AND period_level = {literal(level)}"
    )
    return {r[0]: r[1:] for r in rows}


def test_the_month_its_quarter_and_year_are_partial(partial_city: Deployment) -> None:
    through = dt.date.fromisoformat(THROUGH)
    months = city_total(partial_city, "priority1_response_time", "month")
    assert months[dt.date(2025, 8, 1)][:2] == (False, through)
    assert months[dt.date(2025, 7, 1)][:2] == (True, dt.date(2025, 7, 31))
    # (violent firearm crimes are too sparse at this scale to be shown by month)
    for metric in ("violent_firearm_crimes", "priority1_response_time"):
        quarters = city_total(partial_city, metric, "quarter")
        assert quarters[dt.date(2025, 7, 1)][:2] == (False, through), metric
        assert quarters[dt.date(2025, 4, 1)][:2] == (True, dt.date(2025, 6, 30)), metric
        years = city_total(partial_city, metric, "year")
        assert years[dt.date(2025, 1, 1)][:2] == (False, through), metric
        assert years[dt.date(2024, 1, 1)][:2] == (True, dt.date(2024, 12, 31)), metric
    # Every cell of the period says so, not only the city total.
    cells = partial_city.query(
        "SELECT DISTINCT period_complete, data_through FROM metric_values "
        "WHERE metric_id = 'priority1_response_time' AND period_start = DATE '2025-08-01'"
    )
    assert cells == [(False, through)]
    # A partner that delivered August whole (the probation caseload, a month-end roster) is not
    # made partial by police.
    caseload = city_total(partial_city, "juvenile_probation_caseload", "month")
    assert caseload[dt.date(2025, 8, 1)][:2] == (True, dt.date(2025, 8, 31))


def test_the_catalog_trend_ignores_the_partial_month(partial_city: Deployment) -> None:
    metric = "priority1_response_time"
    months = city_total(partial_city, metric, "month")
    (level, latest, latest_value, previous, baseline, periods, trend, direction) = (
        partial_city.query(
            "SELECT latest_period_level, latest_period, latest_value, previous_period, "
            "baseline_value, baseline_periods, trend, direction FROM metric_catalog "
            f"WHERE audience = 'pst' AND metric_id = {literal(metric)}"
        )[0]
    )
    assert (level, latest, previous) == ("month", dt.date(2025, 7, 1), dt.date(2025, 6, 1))
    # The catalog says how far its data runs: the 5th, though July is its latest whole month.
    assert partial_city.query(
        f"SELECT DISTINCT data_through FROM metric_catalog WHERE metric_id = {literal(metric)}"
    ) == [(dt.date.fromisoformat(THROUGH),)]
    assert latest_value == months[dt.date(2025, 7, 1)][2]
    # The baseline is 2024's twelve complete months, computed here from metric_values.
    values = [months[dt.date(2024, m, 1)][2] for m in range(1, 13)]
    assert None not in values and periods == 12
    expected_baseline = statistics.fmean(values)
    assert baseline == pytest.approx(expected_baseline, abs=1e-3)
    if abs(latest_value - expected_baseline) <= 0.05 * abs(expected_baseline):
        expected = "steady"
    elif (latest_value < expected_baseline) == (direction == "down_is_good"):
        expected = "improving"
    else:
        expected = "worsening"
    assert trend == expected
    # No catalog row takes a partial period for its latest or previous value.
    partial_used = partial_city.query(
        "SELECT count(*) FROM metric_catalog AS c JOIN metric_values AS v "
        "ON v.audience = c.audience AND v.metric_id = c.metric_id AND v.geo_level = 'city' "
        "AND v.breakdown = 'total' AND v.period_level = c.latest_period_level "
        "AND v.period_start IN (c.latest_period, c.previous_period) WHERE NOT v.period_complete"
    )
    assert partial_used == [(0,)]


def test_a_look_back_measure_is_missing_until_it_has_its_history(
    partial_city: Deployment,
) -> None:
    """Repeat domestic violence looks back 12 months: 2024 (the data's first year) has none."""
    rows = partial_city.query(
        "SELECT period_level, period_start, value, status FROM metric_values "
        "WHERE metric_id = 'repeat_domestic_violence' AND period_start < DATE '2025-01-01'"
    )
    assert rows, "the metric has rows in 2024"
    assert {(value, status) for _, _, value, status in rows} == {(None, "missing")}
    # 2024 has no history and 2025 is partial: no latest value, so no trend at all.
    assert partial_city.query(
        "SELECT latest_period, trend FROM metric_catalog "
        "WHERE metric_id = 'repeat_domestic_violence'"
    ) == [(None, "no_value")]


def test_the_exports_and_the_brief_say_partial(partial_city: Deployment) -> None:
    from openpyxl import load_workbook

    release = partial_city.query("SELECT release_id FROM release_manifest")[0][0]
    folder = partial_city.data / "exports" / release / "pst"
    with (folder / "metric_values.csv").open(newline="", encoding="utf-8") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["metric_id"] == "priority1_response_time"
            and r["geo_level"] == "city"
            and r["breakdown"] == "total"
        ]
    by_period = {(r["period_level"], r["period_start"]): r for r in rows}
    assert by_period[("month", "2025-08-01")]["period_complete"] == "false"
    assert by_period[("month", "2025-08-01")]["data_through"] == THROUGH
    assert by_period[("year", "2025-01-01")]["period_complete"] == "false"
    assert by_period[("month", "2025-07-01")]["period_complete"] == "true"

    book = load_workbook(folder / f"cs360_{release}_pst.xlsx", read_only=True)
    sheet = next(ws for ws in book.worksheets if ws.title.startswith("Organizational"))
    header, *body = [list(r) for r in sheet.iter_rows(values_only=True)]
    col = {name: i for i, name in enumerate(header)}
    august = [
        r for r in body
        if r[col["metric_id"]] == "priority1_response_time" and r[col["Period"]] == "month"
        and str(r[col["Period start"]])[:10] == "2025-08-01"
    ]  # fmt: skip
    assert august
    assert {r[col["Period complete"]] for r in august} == {"partial"}
    assert {str(r[col["Data through"]])[:10] for r in august} == {THROUGH}
    book.close()

    brief = (folder / "brief.html").read_text(encoding="utf-8")
    assert "Aug 2025 (through 5 Aug)" in brief
    assert "partial month: not compared" in brief
