"""Hostile deliveries: nothing is truncated silently, and no value from a row reaches a message.

Every case writes real files (a 33 MB line, a workbook whose stored dimension lies, a small zip
bomb, rows shifted by a stray comma, formula-like labels) into a real inbox and runs the loader
against a real DuckDB file.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile

import duckdb
import openpyxl

from cs360_pipeline.ingest import FileOutcome, ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.readers import SHAPE_MACRO, shape, shape_sql
from cs360_pipeline.registry import Provider
from tests.conftest import TEST_PROVIDER_HEADER

CALLS = {
    "title": "Calls",
    "file_pattern": "calls_*",
    "cadence": "monthly",
    "columns": {
        "call_number": {"type": "VARCHAR", "required": True},
        "note": {"type": "VARCHAR"},
    },
}
VISITS = {
    "title": "Visits",
    "file_pattern": "visits_*.csv",
    "cadence": "monthly",
    "columns": {
        "case_id": {"type": "VARCHAR", "required": True},
        "client_name": {"type": "VARCHAR", "identifier": True},
        "street": {"type": "VARCHAR", "identifier": True},
        "units": {"type": "INTEGER"},
        "visit_date": {"type": "DATE", "required": True, "format": "%m/%d/%Y"},
        "kind": {"type": "VARCHAR", "allowed": ["A", "B"]},
        "dob": {"type": "DATE", "identifier": True},
    },
}
BEATS = {
    "title": "Police beats and districts",
    "file_pattern": "beats*.csv",
    "load": "replace",
    "cadence": "as_needed",
    "key": ["beat"],
    "columns": {
        "beat": {"type": "VARCHAR", "required": True},
        "beat_name": {"type": "VARCHAR", "required": True},
        "district": {"type": "VARCHAR", "required": True},
    },
}
ADDRESS = "2216 Main St"
DOB = "1990-05-01"
# Values of the shifted rows that must never be repeated by any message or reject sample.
SECRETS = [ADDRESS, "2216", "Main", DOB, "1990", "Lee", "Roe"]


def make_provider(**datasets: dict) -> Provider:
    return Provider.model_validate({**TEST_PROVIDER_HEADER, "datasets": datasets})


def run(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, provider: Provider, dataset: str
) -> list[FileOutcome]:
    return ingest_dataset(con, provider, dataset, folder, log=lambda _: None)


def reason_file(folder: DropFolder, name: str, data: bytes) -> str:
    stored = folder.quarantine / f"{hashlib.sha256(data).hexdigest()[:16]}__{name}"
    return stored.with_name(stored.name + ".reason.txt").read_text(encoding="utf-8")


def ledger_reason(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT reason FROM _ingest_ledger").fetchall()[0][0]


# -- nothing truncated silently ---------------------------------------------------------------


def test_a_33_mb_line_quarantines_with_its_line_its_length_and_the_limit(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """DuckDB drops a line beyond its read buffer unsaid: it is refused before DuckDB reads."""
    rows = [f"C{i:03d},note {i}\n" for i in range(12)]
    rows[5] = "C005," + "x" * (33 * 1024 * 1024) + "\n"
    data = ("call_number,note\n" + "".join(rows)).encode()
    (folder.inbox / "calls_big.csv").write_bytes(data)

    outcomes = run(con, folder, make_provider(calls=CALLS), "calls")

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("quarantined", 0)]
    expected = "line 7 is 34,603,013 bytes long, over the limit of 2,000,000 bytes per line"
    assert expected in outcomes[0].message
    assert expected in reason_file(folder, "calls_big.csv", data)
    assert con.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name = 'police__calls'").fetchall() == [(0,)]  # fmt: skip


def test_an_over_long_first_line_is_named_as_such(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A one-line file is refused for its line length, not as 'header but no data rows'."""
    data = b"call_number," + b"y" * 5_000_000
    (folder.inbox / "calls_oneline.csv").write_bytes(data)

    outcomes = run(con, folder, make_provider(calls=CALLS), "calls")

    assert outcomes[0].status == "quarantined"
    assert "line 1 is 5,000,012 bytes long, over the limit of 2,000,000" in outcomes[0].message
    assert "no data rows" not in outcomes[0].message


def test_a_blank_line_above_the_header_quarantines(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """DuckDB takes line 1 as the header whatever it holds, so the header row would load as data."""
    (folder.inbox / "calls_blank.csv").write_bytes(b"\ncall_number,note\nC1,a\nC2,b\n")

    outcomes = run(con, folder, make_provider(calls=CALLS), "calls")

    assert outcomes[0].status == "quarantined"
    assert "line 1 is blank. Rule: the header row must be the file's first line" in (
        outcomes[0].message
    )


def workbook(rows: list[list[object]], sheet: str = "Calls") -> bytes:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def edit_sheet(data: bytes, edit) -> bytes:
    """The workbook with its sheet XML rewritten by ``edit`` (every other part unchanged)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            part = zin.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                part = edit(part)
            zout.writestr(item, part, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


XLSX_CALLS = {**CALLS, "format": "xlsx", "sheet": "Calls", "file_pattern": "calls_*.xlsx"}


def test_a_workbook_whose_dimension_lies_loads_every_row(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """openpyxl's read-only mode trusts <dimension>; A1:B2 must not cut 500 rows to 1."""
    rows = [["call_number", "note"]] + [[f"C{i:03d}", f"n{i}"] for i in range(500)]
    lying = edit_sheet(
        workbook(rows), lambda x: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:B2"', x)
    )
    assert b'ref="A1:B2"' in zipfile.ZipFile(io.BytesIO(lying)).read("xl/worksheets/sheet1.xml")
    (folder.inbox / "calls_01.xlsx").write_bytes(lying)

    outcomes = run(con, folder, make_provider(calls=XLSX_CALLS), "calls")

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 500)]
    assert con.execute("SELECT count(*), max(call_number) FROM police__calls").fetchall() == [
        (500, "C499")
    ]


def test_a_zip_bomb_workbook_is_refused_by_its_unpacked_size(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """The size cap applies to the unpacked sheets, checked before openpyxl reads any."""
    filler = b"".join(
        b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>%s</t></is></c></row>' % (i, i, b"A" * 200)
        for i in range(3, 30_000)
    )
    bomb = edit_sheet(
        workbook([["call_number", "note"], ["C1", "n"]]),
        lambda x: x.replace(b"</sheetData>", filler + b"</sheetData>"),
    )
    assert len(bomb) < 1024 * 1024
    (folder.inbox / "calls_bomb.xlsx").write_bytes(bomb)
    provider = make_provider(calls={**XLSX_CALLS, "max_file_mb": 1})

    outcomes = run(con, folder, provider, "calls")

    assert outcomes[0].status == "quarantined"
    assert "the workbook unpacks to" in outcomes[0].message
    assert "xl/worksheets/sheet1.xml" in outcomes[0].message
    assert "over this dataset's size cap of 1 MB (max_file_mb)" in outcomes[0].message


def test_cells_beyond_the_header_reject_the_row_not_cut_it(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A sheet row with more filled cells than the header is refused with its sheet row."""
    rows = [["call_number", "note"], ["C1", "a"], ["C2", "b", "shifted"], ["C3", "c"]]
    (folder.inbox / "calls_01.xlsx").write_bytes(workbook(rows))
    provider = make_provider(calls={**XLSX_CALLS, "max_bad_row_share": 0.5})

    outcomes = run(con, folder, provider, "calls")

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 2)]
    assert "line 3 column ? (TOO MANY COLUMNS)" in outcomes[0].message
    assert con.execute("SELECT line, rule, value FROM _rejects").fetchall() == [
        (3, "does not parse (TOO MANY COLUMNS)", None)
    ]


# -- no value from a row in any message -------------------------------------------------------

VISITS_HEADER = "case_id,client_name,street,units,visit_date,kind,dob\n"
GOOD_VISITS = "".join(f"K1{i},Ann Oak,1 Oak Rd,2,01/0{i}/2025,A,1980-02-02\n" for i in range(1, 7))
# An unquoted comma in a name shifts the row: the address lands in units (INTEGER), and on
# line 3 a date of birth in units; on line 4 a date of birth lands in visit_date (a format).
SHIFTED = (
    f"K2,Lee, Ann,{ADDRESS},3,01/04/2025,B\n"
    f"K3,Roe, Bo,{DOB},4,02/01/2025,A\n"
    f"K4,Bo Roe,3 Elm St,2,{DOB},A,\n"
)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_shifted_rows_quarantine_without_a_value_in_any_message(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """The reason file, the ledger and the outcome name column, rule and line: never a value."""
    data = (VISITS_HEADER + GOOD_VISITS.splitlines(keepends=True)[0] + SHIFTED).encode()
    (folder.inbox / "visits_1.csv").write_bytes(data)

    outcomes = run(con, folder, make_provider(visits=VISITS), "visits")

    assert outcomes[0].status == "quarantined"
    for text in (
        outcomes[0].message,
        reason_file(folder, "visits_1.csv", data),
        ledger_reason(con),
    ):
        assert_no_secret(text)
        assert "line 3 column units (CAST): 12 characters: letters, digits and spaces" in text
        assert "line 4 column units (CAST): 10 characters: digits and other characters" in text
        assert "rule 'visit_date must be a DATE as %m/%d/%Y': 1 row(s), e.g. line(s) 5" in text


def test_shifted_rows_in_a_loaded_file_keep_only_shapes_in_rejects(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """Within max_bad_row_share the rest loads; _rejects holds shapes, the message lines."""
    data = (VISITS_HEADER + GOOD_VISITS + SHIFTED).encode()
    (folder.inbox / "visits_1.csv").write_bytes(data)
    provider = make_provider(visits={**VISITS, "max_bad_row_share": 0.5})

    outcomes = run(con, folder, provider, "visits")

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 6)]
    assert_no_secret(outcomes[0].message)
    assert_no_secret(ledger_reason(con))
    assert "line 8 column units (CAST)" in outcomes[0].message
    rejects = con.execute(
        "SELECT line, rule, column_name, value FROM _rejects ORDER BY line, rule, column_name"
    ).fetchall()
    assert rejects == [
        (8, "does not parse (CAST)", "dob", "(identifier withheld)"),
        (8, "does not parse (CAST)", "units", "12 characters: letters, digits and spaces"),
        (9, "does not parse (CAST)", "dob", "(identifier withheld)"),
        (9, "does not parse (CAST)", "units", "10 characters: digits and other characters"),
        (10, "visit_date must be a DATE as %m/%d/%Y", "visit_date",
         "10 characters: digits and other characters"),
    ]  # fmt: skip
    assert_no_secret(repr(con.execute("SELECT * FROM _rejects").fetchall()))


def test_a_headerless_export_does_not_echo_its_first_row(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A first line holding none of the contract's headers is data: its fields are not shown."""
    data = f"K1,Ann Lee,{ADDRESS},2,01/03/2025,A,{DOB}\n".encode()
    (folder.inbox / "visits_1.csv").write_bytes(data)

    outcomes = run(con, folder, make_provider(visits=VISITS), "visits")

    assert outcomes[0].status == "quarantined"
    assert_no_secret(outcomes[0].message)
    assert "required column(s) case_id, visit_date missing from the header" in outcomes[0].message
    assert "7 field(s), none of them a header of the contract" in outcomes[0].message


def test_unexpected_headers_are_named_safely_with_their_position(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A name-like extra header is shown by name; a value-like or control-laden one by shape."""
    header = f'call_number,officer_notes,{ADDRESS},"bad\x1bname"\n'
    (folder.inbox / "calls_1.csv").write_bytes((header + "C1,a,b,c\n").encode())

    outcomes = run(con, folder, make_provider(calls=CALLS), "calls")

    assert outcomes[0].message == (
        "loaded 1 rows; warning: column(s) officer_notes (column 2), column 3 (header not "
        "shown: 12 characters: letters, digits and spaces), column 4 (header not shown: "
        "8 characters: letters and control characters) not in the contract were ignored"
    )


def test_shape_is_the_same_in_python_and_in_sql(con: duckdb.DuckDBPyConnection) -> None:
    """Reader rejects are described in Python, rule rejects in SQL: the words must agree."""
    con.execute(SHAPE_MACRO)
    for value in [ADDRESS, DOB, "x", "", "Zoë\u202e", "a\tb", "=cmd|' /C calc'!A0"]:
        assert con.execute(f"SELECT {shape_sql('?')}", [value]).fetchall() == [(shape(value),)]


# -- labels of reference data -----------------------------------------------------------------


def test_formula_like_labels_in_reference_data_are_rejected(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """Beat names become labels in published tables: a formula or control character is refused."""
    data = (
        "beat,beat_name,district\n"
        "B11,North Park,D1\n"
        "B12,=cmd|' /C calc'!A0,D1\n"
        'B13,"+HYPERLINK(""x"")",D1\n'
        "B14,@SUM(A1),D2\n"
        "B15,South\u202eside,D2\n"
        "B16,-2+3,D2\n"
    ).encode()
    (folder.inbox / "beats.csv").write_bytes(data)

    outcomes = run(con, folder, make_provider(beats=BEATS), "beats")

    assert outcomes[0].status == "quarantined"
    reason = reason_file(folder, "beats.csv", data)
    assert reason.startswith("beats.csv: ")
    assert (
        "rule 'beat_name must not start with a spreadsheet formula character (=, +, -, @, tab "
        "or carriage return)': 4 row(s), e.g. line(s) 3, 4, 5, 7"
    ) in reason
    assert "rule 'beat_name must not contain control characters" in reason
    assert "1 row(s), e.g. line(s) 6" in reason
    for value in ("cmd", "HYPERLINK", "SUM", "South"):
        assert value not in reason


def test_plain_reference_labels_load(con: duckdb.DuckDBPyConnection, folder: DropFolder) -> None:
    """Ordinary names (with spaces, apostrophes, hyphens inside) pass the label rules."""
    data = b"beat,beat_name,district\nB11,O'Hara Park - East,D1\nB12,St. Mary's,D-2\n"
    (folder.inbox / "beats.csv").write_bytes(data)

    outcomes = run(con, folder, make_provider(beats=BEATS), "beats")

    assert [(o.status, o.rows_loaded) for o in outcomes] == [("loaded", 2)]
