"""A corpus of bad (and awkward but good) deliveries: each kind has one exact outcome.

Every case drops real files into a real inbox, runs the loader against a real DuckDB file and
asserts the outcome of each file (loaded / partly loaded / quarantined / duplicate), fragments of
the reason a data owner reads, and that ``archive/`` plus ``quarantine/`` hold every delivered
byte, unchanged, with nothing left in the inbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.registry import Provider
from tests.conftest import TEST_PROVIDER_HEADER

COLUMNS = {
    "call_number": {"type": "VARCHAR", "required": True},
    "call_type_code": {"type": "VARCHAR", "required": True, "allowed": ["SHOTS", "THEFT", "NOISE"]},
    "priority": {"type": "INTEGER", "required": True, "min": 1, "max": 4},
    "received_at": {
        "type": "TIMESTAMP",
        "required": True,
        "format": ["%Y-%m-%d %H:%M:%S", "%m/%d/%Y %I:%M:%S %p"],
        "max": "today",
    },
    "beat": {"type": "VARCHAR", "required": True},
    "caller_name": {"type": "VARCHAR", "identifier": True},
}


def dataset(pattern: str, **extra: object) -> dict[str, object]:
    return {
        "title": "Calls",
        "file_pattern": pattern,
        "cadence": "monthly",
        "period": "received_at",
        "key": ["call_number"],
        "max_bad_row_share": 0.2,
        "columns": COLUMNS,
        **extra,
    }


PROVIDER = Provider.model_validate(
    {
        **TEST_PROVIDER_HEADER,
        "datasets": {
            "calls": dataset("calls_*.csv"),
            "latin": dataset("latin_*.csv", encoding="latin-1"),
            "ansi": dataset("ansi_*.csv", encoding="cp1252"),
            "tabs": dataset("tabs_*.tsv", format="tsv"),
            "sheet": dataset("calls_*.xlsx", format="xlsx", sheet="Calls"),
            "columnar": dataset("calls_*.parquet", format="parquet"),
            "small": dataset("small_*.csv", max_file_mb=0.001),
        },
    }
)
DATASET_OF = {
    ".csv": "calls",
    ".xlsx": "sheet",
    ".parquet": "columnar",
    ".tsv": "tabs",
}

HEADER = "call_number,call_type_code,priority,received_at,beat,caller_name\n"


def row(n: int, code: str = "THEFT", priority: str = "2", at: str = "2025-01-05 10:00:00") -> str:
    return f"C{n:03d},{code},{priority},{at},B{n % 3 + 1},Name {n}\n"


def csv_file(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(rows)).encode()


TEN = [row(n) for n in range(1, 11)]  # ten good rows: one bad row in eleven is 9 %


def xlsx(sheet: str, rows: list[list[object]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = sheet
    for values in rows:
        book.active.append(values)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def zipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("calls.csv", data)
    return out.getvalue()


def parquet(tmp: Path, select: str) -> bytes:
    path = tmp / "gen.parquet"
    con = duckdb.connect()
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    con.close()
    data = path.read_bytes()
    path.unlink()
    return data


@dataclass(frozen=True)
class Case:
    files: list[tuple[str, bytes | Callable[[Path], bytes]]]
    outcomes: list[tuple[str, int]]  # (status, rows loaded) per file, in name order
    fragments: list[str]  # in the last file's outcome message
    dataset: str | None = None


XLSX_HEADER = ["call_number", "call_type_code", "priority", "received_at", "beat", "caller_name"]

CASES: dict[str, Case] = {
    "good_file": Case([("calls_01.csv", csv_file(*TEN))], [("loaded", 10)], ["loaded 10 rows"]),
    "bom_crlf_quoted_commas_newlines_html": Case(
        [("calls_01.csv", b"\xef\xbb\xbf" + (
            HEADER + 'C001,SHOTS,1,2025-01-05 10:00:00,"B1","Roe, <b>Ann</b>\r\nJr."\n'
        ).replace("\n", "\r\n").encode())],
        [("loaded", 1)], ["loaded 1 rows"],
    ),
    "mixed_date_formats": Case(
        [("calls_01.csv", csv_file(row(1), row(2, at="1/25/2025 12:00:00 AM")))],
        [("loaded", 2)], ["loaded 2 rows"],
    ),
    "extra_column_warns": Case(
        [("calls_01.csv", csv_file(*(r.rstrip("\n") + ",x\n" for r in TEN),
                                   header=HEADER.rstrip("\n") + ",officer_notes\n"))],
        [("loaded", 10)],
        ["loaded 10 rows; warning: column(s) officer_notes (column 7) not in the contract were "
         "ignored"],
    ),
    "duplicate_file_same_bytes": Case(
        [("calls_01.csv", csv_file(*TEN)), ("calls_01_again.csv", csv_file(*TEN))],
        [("loaded", 10), ("duplicate", 0)],
        ["duplicate of calls_01.csv (same sha256), nothing loaded"],
    ),
    "one_duplicate_key_partly_loads": Case(
        [("calls_01.csv", csv_file(*TEN, row(3, code="NOISE")))],
        [("loaded", 9)],
        ["rejected 2 of 11 rows", "rule '(call_number) must be unique in the file': 2 row(s), "
         "e.g. line(s) 4, 12"],
    ),
    "future_date_partly_loads": Case(
        [("calls_01.csv", csv_file(*TEN, row(11, at="2999-01-01 00:00:00")))],
        [("loaded", 10)],
        ["rule 'received_at must not be after today (no future dates)': 1 row(s), "
         "e.g. line(s) 12"],
    ),
    "out_of_range_partly_loads": Case(
        [("calls_01.csv", csv_file(*TEN, row(11, priority="-1")))],
        [("loaded", 10)], ["rule 'priority must be at least 1': 1 row(s), e.g. line(s) 12"],
    ),
    "unknown_code_partly_loads": Case(
        [("calls_01.csv", csv_file(*TEN, row(11, code="FIRE")))],
        [("loaded", 10)],
        ["rule 'call_type_code must be one of SHOTS, THEFT, NOISE': 1 row(s), e.g. line(s) 12"],
    ),
    "unparseable_value_partly_loads": Case(
        [("calls_01.csv", csv_file(row(1), row(2, priority="high"), *TEN[2:]))],
        [("loaded", 9)],
        [
            "1 line(s) do not match the contract's types",
            "line 3 column priority (CAST): 4 characters: letters",
        ],
    ),
    "too_many_bad_rows_quarantine": Case(
        [("calls_01.csv", csv_file(*TEN[:5], row(6, code="X"), row(7, code="Y")))],
        [("quarantined", 0)],
        ["2 of 7 rows (28.6%) break the contract; this dataset accepts at most 20.0%"],
    ),
    "missing_required_column": Case(
        [("calls_01.csv", b"call_number,call_type_code,received_at,beat\nC1,SHOTS,2025-01-05 "
                          b"10:00:00,B1\n")],
        [("quarantined", 0)], ["required column(s) priority missing from the header"],
    ),
    "wrong_delimiter": Case(
        [("calls_01.csv", csv_file(*(r.replace(",", ";") for r in TEN),
                                   header=HEADER.replace(",", ";")))],
        [("quarantined", 0)], ["the file looks ';'-delimited, the contract says ','"],
    ),
    "undecodable_bytes": Case(
        [("calls_01.csv", csv_file(*TEN).replace(b"Name 4", b"Jos\xe9"))],
        [("quarantined", 0)],
        ["the file is not valid utf-8 text", "line 5 column caller_name (INVALID ENCODING)"],
    ),
    "empty_file": Case([("calls_01.csv", b"")], [("quarantined", 0)], ["the file is empty"]),
    "header_only": Case(
        [("calls_01.csv", HEADER.encode())], [("quarantined", 0)],
        ["the file has a header row but no data rows"],
    ),
    "zip_renamed_csv": Case(
        [("calls_01.csv", zipped(csv_file(*TEN)))], [("quarantined", 0)],
        ["this is a ZIP archive", "not a CSV text table"],
    ),
    "nul_byte": Case(
        [("calls_01.csv", csv_file(*TEN).replace(b"Name 2", b"Na\x00e 2"))],
        [("quarantined", 0)], ["contains a NUL byte (at byte offset"],
    ),
    "huge_line": Case(
        [("calls_01.csv", csv_file(row(1), "C002,THEFT,2,2025-01-05 10:00:00,B1," + "x" * 3_000_000
                                   + "\n"))],
        [("quarantined", 0)],
        ["line 3 is 3,000,036 bytes long, over the limit of 2,000,000 bytes per line"],
    ),
    "unterminated_quote": Case(
        [("calls_01.csv", csv_file(*TEN[:9], 'C010,THEFT,2,2025-01-05 10:00:00,B1,"Roe\n'))],
        [("loaded", 9)], ["1 line(s) do not match", "line 11 column caller_name (UNQUOTED VALUE)"],
    ),
    "utf16_export": Case(
        [("calls_01.csv", csv_file(*TEN).decode().encode("utf-16"))],
        [("quarantined", 0)], ["this is UTF-16 text (export it as UTF-8)"],
    ),
    "over_size_cap": Case(
        [("small_01.csv", csv_file(*(TEN * 3)))], [("quarantined", 0)],
        ["over this dataset's size cap of 0.001 MB (max_file_mb)"], dataset="small",
    ),
    "latin1_declared_loads": Case(
        [("latin_01.csv", csv_file(*TEN).replace(b"Name 4", b"Jos\xe9"))],
        [("loaded", 10)], ["loaded 10 rows"], dataset="latin",
    ),
    "cp1252_undefined_byte": Case(
        [("ansi_01.csv", csv_file(*TEN).replace(b"Name 4", b"N\x81me"))],
        [("quarantined", 0)], ["byte 0x81 at offset", "is not cp1252 text"], dataset="ansi",
    ),
    "tsv_loads": Case(
        [("tabs_01.tsv", csv_file(*(r.replace(",", "\t") for r in TEN),
                                  header=HEADER.replace(",", "\t")))],
        [("loaded", 10)], ["loaded 10 rows"],
    ),
    "xlsx_without_expected_sheet": Case(
        [("calls_01.xlsx", lambda _: xlsx(
            "Sheet1", [XLSX_HEADER, ["C1", "SHOTS", 1, dt.datetime(2025, 1, 5), "B1"]]))],
        [("quarantined", 0)], ["the workbook has no sheet 'Calls' (it has: 'Sheet1')"],
    ),
    "csv_renamed_xlsx": Case(
        [("calls_01.xlsx", csv_file(*TEN))], [("quarantined", 0)],
        ["not a readable .xlsx workbook"],
    ),
    "xlsx_good": Case(
        [("calls_01.xlsx", lambda _: xlsx("Calls", [XLSX_HEADER] + [
            [f"C{n}", "THEFT", 2, dt.datetime(2025, 1, n), "B1", "N"] for n in range(1, 11)]))],
        [("loaded", 10)], ["loaded 10 rows"],
    ),
    "parquet_good": Case(
        [("calls_01.parquet", lambda tmp: parquet(tmp, "SELECT 'C' || i AS call_number, "
          "'THEFT' AS call_type_code, 2 AS priority, TIMESTAMP '2025-01-05' AS received_at, "
          "'B1' AS beat FROM range(10) t(i)"))],
        [("loaded", 10)], ["loaded 10 rows"],
    ),
    "parquet_missing_column": Case(
        [("calls_01.parquet", lambda tmp: parquet(tmp, "SELECT 'C1' AS call_number"))],
        [("quarantined", 0)], ["required column(s) call_type_code, priority, received_at, beat"],
    ),
    "csv_renamed_parquet": Case(
        [("calls_01.parquet", csv_file(*TEN))], [("quarantined", 0)],
        ["not a readable Parquet file"],
    ),
}  # fmt: skip


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 15
    kinds = {status for case in CASES.values() for status, _ in case.outcomes}
    assert kinds == {"loaded", "quarantined", "duplicate"}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_corpus(tmp_path: Path, con: duckdb.DuckDBPyConnection, case: Case) -> None:
    folder = DropFolder(tmp_path / "sources" / "police", settle_seconds=0)
    folder.inbox.mkdir(parents=True)
    sent = []
    for name, content in case.files:
        data = content(tmp_path) if callable(content) else content
        (folder.inbox / name).write_bytes(data)
        sent.append((name, data))
    name = case.files[0][0]
    dataset = case.dataset or DATASET_OF[Path(name).suffix]

    outcomes = ingest_dataset(con, PROVIDER, dataset, folder, log=lambda _: None)

    assert [(o.status, o.rows_loaded) for o in outcomes] == case.outcomes
    for fragment in case.fragments:
        assert fragment in outcomes[-1].message
    ledger = con.execute(
        "SELECT file_name, status, rows_loaded, sha256 FROM _ingest_ledger ORDER BY processed_at"
    ).fetchall()
    expected = [(n, o[0]) for (n, _), o in zip(sent, case.outcomes, strict=True)]
    assert [(r[0], r[1]) for r in ledger] == expected
    # Nothing lost: every delivered byte is kept exactly once, under its content hash.
    for (file_name, data), (status, _) in zip(sent, case.outcomes, strict=True):
        digest = hashlib.sha256(data).hexdigest()
        stored = f"{digest[:16]}__{file_name}"
        places = [p for p in (folder.archive / stored, folder.quarantine / stored) if p.exists()]
        assert len(places) == 1
        assert places[0].read_bytes() == data
        assert places[0].parent.name == ("quarantine" if status == "quarantined" else "archive")
        if status == "quarantined":
            reason = places[0].with_name(places[0].name + ".reason.txt").read_text("utf-8")
            assert reason.startswith(f"{file_name}: ")
    assert sorted(p.name for p in folder.inbox.iterdir()) == []
