"""Partner exports mapped by configuration alone, row-level rules and revisions.

Real files in real drop folders, loaded into a real DuckDB file: two differently shaped police
CSV exports (the project's own Riverton contract and the Metro PD fixture in
``tests/fixtures/exports/``), an Excel workbook written with openpyxl and a Parquet file written by
DuckDB all land in the same canonical table shape with the same rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cs360_pipeline.ingest import FileOutcome, ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.registry import Provider
from cs360_pipeline.registry.loader import load_provider
from cs360_pipeline.settings import PROJECT_DIR
from tests.conftest import TEST_PROVIDER_HEADER

FIXTURES = PROJECT_DIR / "tests" / "fixtures" / "exports"
METRO = load_provider(FIXTURES / "metro_pd" / "provider.yml")
RIVERTON = load_provider(PROJECT_DIR / "sources" / "police" / "provider.yml")
METRO_CSV = FIXTURES / "metro_pd" / "cad_calls_2025-01.csv"
RIVERTON_CSV = FIXTURES / "riverton_pd" / "calls_2025-01.csv"
PROVENANCE = "_source_file, _file_sha256, _loaded_at"

# The four calls both fixture files hold, as the canonical table must show them.
CANONICAL_ROWS = [
    ("MPD25-000101", "SHOTS", "Shots fired, <b>multiple</b> rounds", 1,
     dt.datetime(2025, 1, 3, 22, 0), dt.datetime(2025, 1, 3, 22, 1),
     dt.datetime(2025, 1, 3, 22, 7, 30), "B11", "REPORT TAKEN", 7.5),
    ("MPD25-000102", "THEFT", "Theft report", 3, dt.datetime(2025, 1, 25, 0, 0), None, None,
     "B12", "ADVISED", None),
    ("MPD25-000103", "NOISE", 'Noise complaint "loud party"', 4,
     dt.datetime(2025, 1, 31, 23, 59), None, dt.datetime(2025, 2, 1, 0, 29), "B21",
     "GONE ON ARRIVAL", 30.0),
    ("MPD25-000104", "ASSLT", "Assault in progress", 1, dt.datetime(2025, 1, 15, 12, 30),
     dt.datetime(2025, 1, 15, 12, 31), dt.datetime(2025, 1, 15, 12, 36), "B22", "ARREST", 6.0),
]  # fmt: skip
CANONICAL_COLUMNS = [
    ("call_number", "VARCHAR"),
    ("call_type_code", "VARCHAR"),
    ("call_type", "VARCHAR"),
    ("priority", "INTEGER"),
    ("received_at", "TIMESTAMP"),
    ("dispatched_at", "TIMESTAMP"),
    ("first_arrived_at", "TIMESTAMP"),
    ("beat", "VARCHAR"),
    ("disposition", "VARCHAR"),
    ("response_minutes", "DOUBLE"),
    ("_source_file", "VARCHAR"),
    ("_file_sha256", "VARCHAR"),
    ("_loaded_at", "TIMESTAMP WITH TIME ZONE"),
]
SELECT_CANONICAL = (
    "SELECT call_number, call_type_code, call_type, priority, received_at, dispatched_at, "
    "first_arrived_at, beat, disposition, response_minutes FROM {} ORDER BY call_number"
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def drop_folder(tmp_path: Path, provider: str) -> DropFolder:
    folder = DropFolder(tmp_path / "sources" / provider, settle_seconds=0)
    folder.inbox.mkdir(parents=True, exist_ok=True)
    return folder


def kept(folder: DropFolder, name: str, data: bytes) -> Path:
    """The one place these bytes are kept (archive or quarantine), byte-identical."""
    stored = f"{sha(data)[:16]}__{name}"
    places = [p for p in (folder.archive / stored, folder.quarantine / stored) if p.exists()]
    assert len(places) == 1, places
    assert places[0].read_bytes() == data
    return places[0]


def describe(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]


# -- two CSV shapes, one canonical table ------------------------------------------------------


def test_fixture_files_have_the_awkward_bytes() -> None:
    """The Metro fixture really carries a BOM, CRLF ends, quoted commas/line breaks and HTML."""
    data = METRO_CSV.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") > 5 and b"\n" not in data.replace(b"\r\n", b"")
    assert b'"200 BLOCK OAK AVE\r\nREAR LOT"' in data
    assert b'"Shots fired, <b>multiple</b> rounds"' in data
    assert b"<script>" in data


def test_two_police_export_shapes_load_to_the_same_canonical_table(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Riverton's contract-shaped CSV and Metro's CAD export (YAML mapping only) give equal rows."""
    riverton = drop_folder(tmp_path, "police")
    shutil.copy(RIVERTON_CSV, riverton.inbox / RIVERTON_CSV.name)
    metro = drop_folder(tmp_path, "metro_pd")
    shutil.copy(METRO_CSV, metro.inbox / METRO_CSV.name)

    riverton_out = ingest_dataset(con, RIVERTON, "calls", riverton, log=lambda _: None)
    metro_out = ingest_dataset(con, METRO, "calls", metro, log=lambda _: None)

    assert riverton_out == [FileOutcome("calls_2025-01.csv", "loaded", 4, "loaded 4 rows")]
    assert metro_out == [
        FileOutcome(
            "cad_calls_2025-01.csv",
            "loaded",
            4,
            "loaded 4 rows; warning: column(s) Narrative (column 13) not in the contract "
            "were ignored",
        )
    ]
    assert describe(con, "police__calls") == CANONICAL_COLUMNS
    assert describe(con, "metro_pd__calls") == CANONICAL_COLUMNS
    assert con.execute(SELECT_CANONICAL.format("police__calls")).fetchall() == CANONICAL_ROWS
    assert con.execute(SELECT_CANONICAL.format("metro_pd__calls")).fetchall() == CANONICAL_ROWS
    # Identifiers (Location, Caller, Phone) never land, whatever the export called them.
    assert "caller_name" not in dict(describe(con, "metro_pd__calls"))
    kept(metro, METRO_CSV.name, METRO_CSV.read_bytes())
    kept(riverton, RIVERTON_CSV.name, RIVERTON_CSV.read_bytes())


def test_excel_delivery_loads_dates_serials_and_text(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """An .xlsx (real date cells, Excel serial numbers and US text dates) maps to the same rows."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.title = "Notes"
    book.active.append(["This sheet is not the data"])
    sheet = book.create_sheet("Calls")
    sheet.append(["Exported from Metro CAD"])  # a title row above the table is not data...
    sheet.delete_rows(1)  # ...so remove it again: the header must be the first non-empty row
    sheet.append(
        ["Incident #", "Call Type", "Description", "Pri", "Time Received", "Time Dispatched",
         "Time On Scene", "Beat", "Location", "Caller", "Phone", "Disposition"]
    )  # fmt: skip
    sheet.append(
        ["MPD25-000101", "10-71", "Shots fired, <b>multiple</b> rounds", "P1",
         dt.datetime(2025, 1, 3, 22, 0), dt.datetime(2025, 1, 3, 22, 1),
         dt.datetime(2025, 1, 3, 22, 7, 30), "B11", "100 BLOCK MAIN ST, APT 4", "J. DOE",
         "555-0101", "RPT"]
    )  # fmt: skip
    # 45682 is 2025-01-25 in Excel's 1900 date system.
    sheet.append(["MPD25-000102", 484, "Theft report", "P3", 45682, None, None, "B12",
                  "200 BLOCK OAK AVE\nREAR LOT", None, None, "ADV"])  # fmt: skip
    sheet.append([])  # an empty row in the middle is skipped
    sheet.append(
        ["MPD25-000103", "415N", 'Noise complaint "loud party"', "P4", "1/31/2025 11:59:00 PM",
         None, 45689.0201388889, "B21", "300 BLOCK ELM ST", "SMITH, ANN", "555-0103", "GOA"]
    )  # fmt: skip
    sheet.append(
        ["MPD25-000104", 245, "Assault in progress", "P1", dt.datetime(2025, 1, 15, 12, 30),
         "1/15/2025 12:31:00 PM", dt.datetime(2025, 1, 15, 12, 36), "B22", "400 BLOCK PINE ST",
         None, None, "ARR"]
    )  # fmt: skip
    folder = drop_folder(tmp_path, "metro_pd")
    path = folder.inbox / "cad_calls_2025-01.xlsx"
    book.save(path)
    data = path.read_bytes()

    outcomes = ingest_dataset(con, METRO, "calls_xlsx", folder, log=lambda _: None)

    assert outcomes == [FileOutcome("cad_calls_2025-01.xlsx", "loaded", 4, "loaded 4 rows")]
    assert describe(con, "metro_pd__calls_xlsx") == CANONICAL_COLUMNS
    assert con.execute(SELECT_CANONICAL.format("metro_pd__calls_xlsx")).fetchall() == (
        CANONICAL_ROWS
    )
    kept(folder, path.name, data)


def test_excel_rejects_name_the_sheet_row(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    """A bad cell in a workbook is reported by the row number the data owner sees in Excel."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Calls"
    sheet.append(["Incident #", "Call Type", "Pri", "Time Received", "Beat"])
    sheet.append(["A1", "10-71", "P1", dt.datetime(2025, 1, 3), "B11"])
    sheet.append([])
    sheet.append([])
    sheet.append(["A2", "10-71", "P9", dt.datetime(2025, 1, 3), "B11"])  # sheet row 5
    folder = drop_folder(tmp_path, "metro_pd")
    book.save(folder.inbox / "cad_calls_bad.xlsx")

    outcomes = ingest_dataset(con, METRO, "calls_xlsx", folder, log=lambda _: None)

    assert outcomes[0].status == "quarantined"
    assert "rule 'priority must be one of P1, P2, P3, P4 (values map) or a INTEGER'" in (
        outcomes[0].message
    )
    assert "1 row(s), e.g. line(s) 5" in outcomes[0].message


def test_parquet_delivery_casts_to_the_contract(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """A Parquet file (BIGINT priority, renamed key column, an extra column) maps by YAML."""
    folder = drop_folder(tmp_path, "metro_pd")
    path = folder.inbox / "cad_calls_2025-01.parquet"
    values = ", ".join(
        "(" + ", ".join(
            "NULL" if v is None else (f"TIMESTAMP '{v}'" if isinstance(v, dt.datetime)
                                      else (repr(v) if not isinstance(v, str)
                                            else "'" + v.replace("'", "''") + "'"))
            for v in row[:9]
        ) + ")"
        for row in CANONICAL_ROWS
    )  # fmt: skip
    con.execute(
        f"""
        COPY (
            SELECT incident_no, call_type_code, call_type, CAST(priority AS BIGINT) AS priority,
                   received_at, dispatched_at, first_arrived_at, beat, disposition,
                   'secret' AS caller_name, 'x' AS source_system
            FROM (VALUES {values}) AS t(incident_no, call_type_code, call_type, priority,
                 received_at, dispatched_at, first_arrived_at, beat, disposition)
        ) TO '{path}' (FORMAT parquet)
        """
    )
    data = path.read_bytes()

    outcomes = ingest_dataset(con, METRO, "calls_parquet", folder, log=lambda _: None)

    assert outcomes == [
        FileOutcome(
            path.name,
            "loaded",
            4,
            "loaded 4 rows; warning: column(s) source_system (column 11) not in the contract were "
            "ignored",
        )
    ]
    assert describe(con, "metro_pd__calls_parquet") == CANONICAL_COLUMNS
    assert con.execute(SELECT_CANONICAL.format("metro_pd__calls_parquet")).fetchall() == (
        CANONICAL_ROWS
    )
    kept(folder, path.name, data)


# -- row-level rules: some bad rows load the rest; too many quarantine ------------------------

HEADER = (
    "\ufeffIncident #,Call Type,Description,Pri,Time Received,Time Dispatched,Time On Scene,"
    "Beat,Location,Caller,Phone,Disposition\r\n"
)


def metro_rows(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\r\n" for r in rows)).encode()


GOOD_ROW = "M{n:03d},484,Theft,P3,1/{d}/2025 9:00:00 AM,,,B12,,,,RPT"


def test_a_few_bad_rows_load_the_rest_and_go_to_rejects(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Within max_bad_row_share (25 %) the good rows load; each bad row is kept with its rule."""
    good = [GOOD_ROW.format(n=n, d=n % 28 + 1) for n in range(1, 21)]
    bad = [
        "X001,999,Unknown local code,P2,1/3/2025 9:00:00 AM,,,B11,,JOHN ROE,,RPT",  # line 22
        "X002,484,Theft,P3,13/45/2025 9:00:00 AM,,,B11,,,,RPT",  # line 23: not a date
        "X003,484,Theft,P3,1/3/2099 9:00:00 AM,,,B11,,,,RPT",  # line 24: in the future
        "M001,484,Duplicate key,P3,1/4/2025 9:00:00 AM,,,B11,,,,RPT",  # line 25: dup of line 2
    ]
    data = metro_rows(*good, *bad)
    folder = drop_folder(tmp_path, "metro_pd")
    (folder.inbox / "cad_calls_2025-01.csv").write_bytes(data)

    outcomes = ingest_dataset(con, METRO, "calls", folder, log=lambda _: None)

    # M001 appears twice (lines 2 and 25): both are held back, so 19 of 24 rows load.
    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 19)]
    message = outcomes[0].message
    assert message == (
        "loaded 19 rows; rejected 5 of 24 rows (20.8%, within max_bad_row_share 25.0%) into "
        "_rejects: rule 'call_type_code must be one of SHOTS, ASSLT, DV, WEAPON, DISTRB, WELFR, "
        "SUSP, THEFT, ALARM, TRAFF, NOISE': 1 row(s), e.g. line(s) 22; rule 'received_at must "
        "be a TIMESTAMP as %m/%d/%Y %I:%M:%S %p': 1 row(s), e.g. line(s) 23; rule 'received_at "
        "must not be after today (no future dates)': 1 row(s), e.g. line(s) 24; rule "
        "'(call_number) must be unique in the file': 2 row(s), e.g. line(s) 2, 25"
    )
    assert con.execute("SELECT count(*) FROM metro_pd__calls").fetchall() == [(19,)]
    rejects = con.execute(
        "SELECT file_name, dataset, line, rule, column_name, value FROM _rejects "
        "ORDER BY line, rule"
    ).fetchall()
    name = "cad_calls_2025-01.csv"
    assert rejects == [
        (name, "calls", 2, "(call_number) must be unique in the file", "call_number", None),
        (name, "calls", 22, "call_type_code must be one of SHOTS, ASSLT, DV, WEAPON, DISTRB, "
         "WELFR, SUSP, THEFT, ALARM, TRAFF, NOISE", "call_type_code", "3 characters: digits"),
        (name, "calls", 23, "received_at must be a TIMESTAMP as %m/%d/%Y %I:%M:%S %p",
         "received_at", "21 characters: letters, digits, spaces and other characters"),
        (name, "calls", 24, "received_at must not be after today (no future dates)",
         "received_at", "19 characters: digits, spaces and other characters"),
        (name, "calls", 25, "(call_number) must be unique in the file", "call_number", None),
    ]  # fmt: skip
    ledger = con.execute(
        "SELECT status, rows_read, rows_loaded, rows_rejected, reason FROM _ingest_ledger"
    ).fetchall()
    assert ledger == [("loaded", 24, 19, 5, message)]
    kept(folder, name, data)


def test_too_many_bad_rows_quarantine_the_whole_file(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Over max_bad_row_share nothing loads; the reason counts the share and names the lines."""
    rows = [GOOD_ROW.format(n=n, d=n) for n in range(1, 4)]
    rows += ["B001,484,Theft,P7,1/3/2025 9:00:00 AM,,,B11,,,,RPT"]  # line 5
    rows += ["B002,484,Theft,P3,1/3/2025 9:00:00 AM,,1/3/2025 8:00:00 AM,B11,,,,RPT"]  # line 6
    data = metro_rows(*rows)
    folder = drop_folder(tmp_path, "metro_pd")
    (folder.inbox / "cad_calls_2025-01.csv").write_bytes(data)

    outcomes = ingest_dataset(con, METRO, "calls", folder, log=lambda _: None)

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("quarantined", 0)]
    assert outcomes[0].message == (
        "quarantined: cad_calls_2025-01.csv: rule 'priority must be one of P1, P2, P3, P4 "
        "(values map) or a INTEGER': 1 row(s), e.g. line(s) 5; rule 'check "
        "arrival_not_before_receipt: first_arrived_at IS NULL OR first_arrived_at >= "
        "received_at': 1 row(s), e.g. line(s) 6. 2 of 5 rows (40.0%) break the contract; "
        "this dataset accepts at most 25.0% (max_bad_row_share). Correct the rows and re-send."
    )
    assert con.execute("SELECT count(*) FROM _rejects").fetchall() == [(0,)]
    kept(folder, "cad_calls_2025-01.csv", data)


def provider_with(**dataset: Any) -> Provider:
    """A one-dataset provider (police/events) with a person's birth date and derived age."""
    base = {
        "title": "Events",
        "file_pattern": "events_*.csv",
        "cadence": "monthly",
        "period": "event_date",
        "key": ["event_id"],
        "columns": {
            "event_id": {"type": "VARCHAR", "required": True},
            "event_date": {"type": "DATE", "required": True, "format": ["%d.%m.%Y", "%Y-%m-%d"]},
            "dob": {"type": "DATE", "identifier": True, "format": "excel_serial"},
            "gun": {"type": "BOOLEAN", "values": {"Y": True, "N": False}},
            "kind": {"type": "VARCHAR", "allowed": ["A", "B"]},
        },
        "derived": {"age": "age_years(dob, event_date)"},
        "checks": {"age_not_negative": "age IS NULL OR age >= 0"},
        **dataset,
    }
    return Provider.model_validate({**TEST_PROVIDER_HEADER, "datasets": {"events": base}})


def test_rules_negative_age_mixed_dates_yn_and_unknown_codes(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Mixed date formats and Y/N parse; a negative age and an unknown code are row rejects."""
    provider = provider_with(max_bad_row_share=0.6)
    data = (
        b"event_id,event_date,dob,gun,kind\n"
        b"E1,03.01.2025,36526,Y,A\n"  # dob 2000-01-01 as an Excel serial
        b"E2,2025-01-04,,N,B\n"
        b"E3,05.01.2025,46000,,A\n"  # dob 2025-12-07: after the event -> negative age
        b"E4,06.01.2025,,Y,Z\n"  # unknown code
        b"E5,07.01.2025,,maybe,A\n"  # not a Y/N value
    )
    folder = drop_folder(tmp_path, "police")
    (folder.inbox / "events_2025-01.csv").write_bytes(data)

    outcomes = ingest_dataset(con, provider, "events", folder, log=lambda _: None)

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 2)]
    assert con.execute(
        "SELECT event_id, event_date, gun, kind, age FROM police__events ORDER BY 1"
    ).fetchall() == [
        ("E1", dt.date(2025, 1, 3), True, "A", 25),
        ("E2", dt.date(2025, 1, 4), False, "B", None),
    ]
    rejects = "SELECT line, rule, column_name, value FROM _rejects ORDER BY line"
    assert con.execute(rejects).fetchall() == [
        (4, "check age_not_negative: age IS NULL OR age >= 0", None, None),
        (5, "kind must be one of A, B", "kind", "1 character: letters"),
        (6, "gun must be one of Y, N (values map) or a BOOLEAN", "gun", "5 characters: letters"),
    ]  # fmt: skip


def test_identifier_values_are_withheld_in_rejects(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """A reject on an identifier column records the rule, never the identifying value."""
    provider = provider_with(max_bad_row_share=0.5)
    data = b"event_id,event_date,dob\nE1,03.01.2025,36526\nE2,03.01.2025,1/2/1990\n"
    folder = drop_folder(tmp_path, "police")
    (folder.inbox / "events_2025-01.csv").write_bytes(data)

    assert [o.rows_loaded for o in ingest_dataset(con, provider, "events", folder, log=print)] == [
        1
    ]
    assert con.execute("SELECT line, column_name, value FROM _rejects").fetchall() == [
        (3, "dob", "(identifier withheld)")
    ]


def test_reader_rejects_keep_their_line_numbers(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Rows DuckDB's reader refuses and rows a rule refuses both report their own lines."""
    provider = Provider.model_validate(
        {
            **TEST_PROVIDER_HEADER,
            "datasets": {
                "counts": {
                    "title": "Counts",
                    "file_pattern": "counts_*.csv",
                    "cadence": "monthly",
                    "max_bad_row_share": 0.5,
                    "columns": {
                        "id": {"type": "VARCHAR", "required": True},
                        "n": {"type": "INTEGER", "min": 0},
                    },
                }
            },
        }
    )
    data = b"id,n\na,1\nb,x\nc,2\nd,3,extra\ne,-1\nf,4\ng,5\nh,6\n"
    folder = drop_folder(tmp_path, "police")
    (folder.inbox / "counts_1.csv").write_bytes(data)

    outcomes = ingest_dataset(con, provider, "counts", folder, log=lambda _: None)

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 5)]
    assert con.execute("SELECT line, rule, column_name FROM _rejects ORDER BY line").fetchall() == [
        (3, "does not parse (CAST)", "n"),
        (5, "does not parse (TOO MANY COLUMNS)", None),
        (6, "n must be at least 0", "n"),
    ]
    assert con.execute("SELECT list(id ORDER BY id) FROM police__counts").fetchall() == [
        (["a", "c", "f", "g", "h"],)
    ]


# -- revisions --------------------------------------------------------------------------------


def test_corrected_redelivery_replaces_its_months(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """A corrected January replaces January (never duplicates it); February is untouched."""
    folder = drop_folder(tmp_path, "metro_pd")
    jan = metro_rows(*(GOOD_ROW.format(n=n, d=n) for n in range(1, 5)))
    feb = metro_rows("F001,484,Theft,P3,2/2/2025 9:00:00 AM,,,B12,,,,RPT")
    (folder.inbox / "cad_calls_2025-01.csv").write_bytes(jan)
    (folder.inbox / "cad_calls_2025-02.csv").write_bytes(feb)
    assert [o.status for o in ingest_dataset(con, METRO, "calls", folder, log=print)] == [
        "loaded",
        "loaded",
    ]
    # The correction drops M004, fixes M002's beat and adds M005.
    fixed = metro_rows(
        GOOD_ROW.format(n=1, d=1),
        GOOD_ROW.format(n=2, d=2).replace("B12", "B99"),
        GOOD_ROW.format(n=3, d=3),
        GOOD_ROW.format(n=5, d=5),
    )
    (folder.inbox / "cad_calls_2025-01_v2.csv").write_bytes(fixed)

    outcomes = ingest_dataset(con, METRO, "calls", folder, log=print)

    assert outcomes == [
        FileOutcome(
            "cad_calls_2025-01_v2.csv",
            "loaded",
            4,
            "loaded 4 rows; revision of cad_calls_2025-01.csv: replaced month(s) 2025-01",
        )
    ]
    assert con.execute(
        "SELECT _source_file, list(call_number || ':' || beat ORDER BY call_number) "
        "FROM metro_pd__calls GROUP BY ALL ORDER BY 1"
    ).fetchall() == [
        ("cad_calls_2025-01_v2.csv", ["M001:B12", "M002:B99", "M003:B12", "M005:B12"]),
        ("cad_calls_2025-02.csv", ["F001:B12"]),
    ]
    assert con.execute(
        "SELECT file_name, status, revision_of, superseded_by FROM _ingest_ledger "
        "ORDER BY processed_at"
    ).fetchall() == [
        ("cad_calls_2025-01.csv", "loaded", None, "cad_calls_2025-01_v2.csv"),
        ("cad_calls_2025-02.csv", "loaded", None, None),
        ("cad_calls_2025-01_v2.csv", "loaded", "cad_calls_2025-01.csv", None),
    ]
    # The same corrected bytes again: a duplicate, nothing changes.
    (folder.inbox / "cad_calls_2025-01_v2_again.csv").write_bytes(fixed)
    again = ingest_dataset(con, METRO, "calls", folder, log=print)
    assert [(o.status, o.rows_loaded) for o in again] == [("duplicate", 0)]
    assert con.execute("SELECT count(*) FROM metro_pd__calls").fetchall() == [(5,)]
    for name, data in [
        ("cad_calls_2025-01.csv", jan),
        ("cad_calls_2025-02.csv", feb),
        ("cad_calls_2025-01_v2.csv", fixed),
        ("cad_calls_2025-01_v2_again.csv", fixed),
    ]:
        kept(folder, name, data)


def test_a_file_reaching_into_the_next_month_gives_it_up_to_that_months_file(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """January (with one call received on 1 Feb) then February: February's file wins February.

    The latest delivery of a month wins, so February is never counted from two files; January's
    file stays current for January and the ledger says it no longer provides February.
    """
    folder = drop_folder(tmp_path, "metro_pd")
    jan = metro_rows(GOOD_ROW.format(n=1, d=1), "M002,484,Late,P3,2/1/2025 12:10:00 AM,,,B1,,,,RPT")
    feb = metro_rows("F001,484,Theft,P3,2/2/2025 9:00:00 AM,,,B12,,,,RPT")
    (folder.inbox / "cad_calls_2025-01.csv").write_bytes(jan)
    (folder.inbox / "cad_calls_2025-02.csv").write_bytes(feb)

    outcomes = ingest_dataset(con, METRO, "calls", folder, log=print)

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 2), ("loaded", 1)]
    assert con.execute(
        "SELECT _source_file, list(call_number ORDER BY call_number) FROM metro_pd__calls "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall() == [("cad_calls_2025-01.csv", ["M001"]), ("cad_calls_2025-02.csv", ["F001"])]
    assert con.execute(
        "SELECT file_name, revision_of, superseded_by, replaced_months FROM _ingest_ledger "
        "ORDER BY processed_at"
    ).fetchall() == [
        ("cad_calls_2025-01.csv", None, None, "2025-02"),
        ("cad_calls_2025-02.csv", "cad_calls_2025-01.csv", None, None),
    ]


def test_daily_cadence_files_in_one_month_append(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """Daily files share a month without replacing each other (revisions default to none)."""
    provider = provider_with(cadence="daily")
    assert not provider.datasets["events"].revises_months
    folder = drop_folder(tmp_path, "police")
    (folder.inbox / "events_2025-01-03.csv").write_bytes(b"event_id,event_date\nE1,03.01.2025\n")
    (folder.inbox / "events_2025-01-04.csv").write_bytes(b"event_id,event_date\nE2,04.01.2025\n")

    assert [o.rows_loaded for o in ingest_dataset(con, provider, "events", folder, log=print)] == [
        1,
        1,
    ]
    assert con.execute("SELECT count(*) FROM police__events").fetchall() == [(2,)]
