"""Ingest: real CSV files in a real drop folder, loaded into a real DuckDB file, or quarantined.

Every test ends by checking that each delivered file is kept byte-identical in exactly one of
``archive/`` or ``quarantine/`` (nothing is ever lost) under ``<sha256[:16]>__<name>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cs360_pipeline.ingest import FileOutcome, ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.registry import Provider
from tests.conftest import TEST_PROVIDER_HEADER


def provider_config(**extra_calls_columns: dict[str, Any]) -> dict[str, Any]:
    """A small police-like provider: calls (append), visits (derived period), beats (replace)."""
    return {
        **TEST_PROVIDER_HEADER,
        "datasets": {
            "calls": {
                "title": "Calls for service",
                "file_pattern": "calls_*.csv",
                "cadence": "monthly",
                "period": "received_at",
                "geography": {"column": "beat"},
                "key": ["call_number"],
                "columns": {
                    "call_number": {"type": "VARCHAR", "required": True},
                    "call_type_code": {
                        "type": "VARCHAR",
                        "required": True,
                        "allowed": ["SHOTS", "THEFT", "NOISE"],
                    },
                    "priority": {"type": "INTEGER", "required": True, "min": 1, "max": 4},
                    "received_at": {"type": "TIMESTAMP", "required": True},
                    "first_arrived_at": {"type": "TIMESTAMP"},
                    "beat": {"type": "VARCHAR", "required": True},
                    "caller_name": {"type": "VARCHAR", "identifier": True},
                    "caller_dob": {"type": "DATE", "identifier": True},
                    **extra_calls_columns,
                },
                "derived": {
                    "response_minutes": "date_diff('second', received_at, first_arrived_at) / 60.0",
                    "caller_age": "age_years(caller_dob, received_at)",
                },
            },
            "visits": {
                "title": "Monthly visits",
                "file_pattern": "visits_*.csv",
                "cadence": "monthly",
                "period": "month_start",
                "geography": {"column": "beat"},
                "columns": {
                    "visit_id": {"type": "VARCHAR", "required": True},
                    "month": {"type": "VARCHAR", "required": True},
                    "beat": {"type": "VARCHAR", "required": True},
                },
                "derived": {"month_start": "strptime(month, '%Y-%m')::DATE"},
            },
            "beats": {
                "title": "Beats",
                "file_pattern": "beats*.csv",
                "load": "replace",
                "cadence": "as_needed",
                "key": ["beat"],
                "columns": {
                    "beat": {"type": "VARCHAR", "required": True},
                    "district": {"type": "VARCHAR", "required": True},
                },
            },
        },
    }


PROVIDER = Provider.model_validate(provider_config())

HEADER = (
    "call_number,call_type_code,priority,received_at,first_arrived_at,beat,"
    "caller_name,caller_dob,officer_notes\n"
)
GOOD_ROWS = (
    "C001,SHOTS,1,2025-01-03 10:00:00,2025-01-03 10:07:30,B11,Ann Lee,1990-05-01,ok\n"
    "C002,THEFT,2,2025-01-31 23:59:00,,B12,Bob Roe,,\n"
    "C003,NOISE,3,2025-02-01 00:10:00,2025-02-01 00:40:00,B21,,2000-02-01,late\n"
)
GOOD = (HEADER + GOOD_ROWS).encode()
IGNORED = (
    "loaded 3 rows; warning: column(s) officer_notes (column 9) not in the contract were ignored"
)
TABLE_COLUMNS = [
    "call_number",
    "call_type_code",
    "priority",
    "received_at",
    "first_arrived_at",
    "beat",
    "response_minutes",
    "caller_age",
    "_source_file",
    "_file_sha256",
    "_loaded_at",
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Delivery:
    """A drop folder plus a record of every file delivered into it, for the nothing-lost check."""

    def __init__(self, root: Path) -> None:
        self.folder = DropFolder(root, settle_seconds=0)
        self.folder.inbox.mkdir(parents=True)
        self.sent: list[tuple[str, bytes]] = []
        self.log: list[str] = []

    def drop(self, name: str, data: bytes) -> Path:
        path = self.folder.inbox / name
        path.write_bytes(data)
        self.sent.append((name, data))
        return path

    def run(self, con: duckdb.DuckDBPyConnection, dataset: str = "calls") -> list[FileOutcome]:
        return ingest_dataset(con, PROVIDER, dataset, self.folder, log=self.log.append)

    def kept_as(self, name: str, data: bytes) -> Path:
        """Where these bytes are kept: exactly one of archive/ or quarantine/."""
        stored = f"{sha(data)[:16]}__{name}"
        places = [
            p for p in (self.folder.archive / stored, self.folder.quarantine / stored) if p.exists()
        ]
        assert len(places) == 1, f"{name}: kept in {places}"
        return places[0]

    def assert_nothing_lost(self) -> None:
        """Every delivered file is kept byte-identical, and the inbox holds no pending file."""
        for name, data in self.sent:
            kept = self.kept_as(name, data)
            assert kept.read_bytes() == data
            assert hashlib.sha256(kept.read_bytes()).hexdigest() == sha(data)
        assert self.folder.pending("*") == []


@pytest.fixture
def box(tmp_path: Path) -> Delivery:
    return Delivery(tmp_path / "sources" / "police")


def ledger(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT file_name, status, rows_read, rows_loaded, reason, stored_as, sha256, size_bytes "
        "FROM _ingest_ledger ORDER BY processed_at, file_name"
    ).fetchall()


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchall()[0][0]
    )


# -- a good file ------------------------------------------------------------------------------


def test_good_file_loads_and_is_archived(box: Delivery, con: duckdb.DuckDBPyConnection) -> None:
    """Rows land in police__calls without identifiers, with derived columns and provenance."""
    box.drop("calls_2025_01.csv", GOOD)

    outcomes = box.run(con)

    # An extra column (officer_notes) is a warning, never a reason to refuse the file.
    message = IGNORED
    assert outcomes == [FileOutcome("calls_2025_01.csv", "loaded", 3, message)]
    assert box.log == [f"police/calls: calls_2025_01.csv: {message}"]
    columns = [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'police__calls' ORDER BY ordinal_position"
        ).fetchall()
    ]
    # Identifiers (caller_name, caller_dob) and unknown columns (officer_notes) never land.
    assert columns == TABLE_COLUMNS
    rows = con.execute(
        "SELECT call_number, call_type_code, priority, received_at, first_arrived_at, beat, "
        "response_minutes, caller_age, _source_file, _file_sha256, _loaded_at IS NOT NULL "
        "FROM police__calls ORDER BY call_number"
    ).fetchall()
    stamp = ("calls_2025_01.csv", sha(GOOD), True)
    assert rows == [
        ("C001", "SHOTS", 1, dt.datetime(2025, 1, 3, 10), dt.datetime(2025, 1, 3, 10, 7, 30),
         "B11", 7.5, 34, *stamp),
        ("C002", "THEFT", 2, dt.datetime(2025, 1, 31, 23, 59), None, "B12", None, None, *stamp),
        ("C003", "NOISE", 3, dt.datetime(2025, 2, 1, 0, 10), dt.datetime(2025, 2, 1, 0, 40),
         "B21", 30.0, 25, *stamp),
    ]  # fmt: skip
    archived = box.folder.archive / f"{sha(GOOD)[:16]}__calls_2025_01.csv"
    assert con.execute(
        "SELECT file_name, provider, dataset, sha256, size_bytes, rows_read, rows_loaded, status, "
        "reason, first_period, last_period, stored_as FROM _ingest_ledger"
    ).fetchall() == [
        ("calls_2025_01.csv", "police", "calls", sha(GOOD), len(GOOD), 3, 3, "loaded", message,
         dt.date(2025, 1, 1), dt.date(2025, 2, 1), str(archived)),
    ]  # fmt: skip
    assert archived.read_bytes() == GOOD
    assert hashlib.sha256(archived.read_bytes()).hexdigest() == sha(GOOD)
    assert not (box.folder.inbox / "calls_2025_01.csv").exists()
    assert not box.folder.quarantine.exists()
    box.assert_nothing_lost()


def test_absent_optional_column_is_null(box: Delivery, con: duckdb.DuckDBPyConnection) -> None:
    """A file without an optional column loads; the column is NULL, derived from it too."""
    box.drop(
        "calls_short.csv",
        b"call_number,call_type_code,priority,received_at,beat\n"
        b"C010,THEFT,4,2025-03-05 08:00:00,B22\n",
    )

    assert [o.status for o in box.run(con)] == ["loaded"]
    assert con.execute(
        "SELECT call_number, first_arrived_at, response_minutes, caller_age FROM police__calls"
    ).fetchall() == [("C010", None, None, None)]
    box.assert_nothing_lost()


def test_utf8_bom_file_loads(box: Delivery, con: duckdb.DuckDBPyConnection) -> None:
    """A byte-order mark (Excel's 'CSV UTF-8') is not part of the first column's name or value."""
    data = b"\xef\xbb\xbf" + GOOD
    box.drop("calls_bom.csv", data)

    assert [(o.status, o.rows_loaded) for o in box.run(con)] == [("loaded", 3)]
    assert con.execute("SELECT call_number FROM police__calls ORDER BY 1").fetchall() == [
        ("C001",),
        ("C002",),
        ("C003",),
    ]
    assert con.execute("SELECT DISTINCT _file_sha256 FROM police__calls").fetchall() == [
        (sha(data),)
    ]
    box.assert_nothing_lost()


# -- duplicates -------------------------------------------------------------------------------


@pytest.mark.parametrize("second_name", ["calls_2025_01.csv", "calls_resent.csv"])
def test_same_bytes_again_is_duplicate(
    box: Delivery, con: duckdb.DuckDBPyConnection, second_name: str
) -> None:
    """Re-sent bytes (same or new name) load nothing, leave the inbox and are ledgered."""
    box.drop("calls_2025_01.csv", GOOD)
    assert [o.status for o in box.run(con)] == ["loaded"]

    box.drop(second_name, GOOD)
    outcomes = box.run(con)

    message = "duplicate of calls_2025_01.csv (same sha256), nothing loaded"
    assert outcomes == [FileOutcome(second_name, "duplicate", 0, message)]
    assert con.execute("SELECT count(*) FROM police__calls").fetchall() == [(3,)]
    assert not (box.folder.inbox / second_name).exists()
    stored = str(box.folder.archive / f"{sha(GOOD)[:16]}__{second_name}")
    stored_first = str(box.folder.archive / f"{sha(GOOD)[:16]}__calls_2025_01.csv")
    assert ledger(con) == [
        ("calls_2025_01.csv", "loaded", 3, 3, IGNORED, stored_first, sha(GOOD), len(GOOD)),
        (second_name, "duplicate", None, None, message, stored, sha(GOOD), len(GOOD)),
    ]
    expected_archive = sorted(
        {f"{sha(GOOD)[:16]}__{n}" for n in ("calls_2025_01.csv", second_name)}
    )
    assert sorted(p.name for p in box.folder.archive.iterdir()) == expected_archive
    box.assert_nothing_lost()


def test_identical_files_in_one_batch(box: Delivery, con: duckdb.DuckDBPyConnection) -> None:
    """Two copies in the same inbox: the first (by name) loads, the second is a duplicate."""
    box.drop("calls_a.csv", GOOD)
    box.drop("calls_b.csv", GOOD)

    assert [(o.file_name, o.status) for o in box.run(con)] == [
        ("calls_a.csv", "loaded"),
        ("calls_b.csv", "duplicate"),
    ]
    assert con.execute(
        "SELECT count(*), count(DISTINCT _source_file) FROM police__calls"
    ).fetchall() == [(3, 1)]
    box.assert_nothing_lost()


# -- quarantine -------------------------------------------------------------------------------

QUARANTINE_CASES = {
    "missing_required_column": (
        b"call_number,call_type_code,received_at,beat\nC001,SHOTS,2025-01-03 10:00:00,B11\n",
        [
            "required column(s) priority missing from the header",
            "(found: call_number, call_type_code, received_at, beat)",
        ],
    ),
    "value_does_not_parse": (
        (HEADER + "C001,SHOTS,1,2025-01-03 10:00:00,,B11,,,\nC002,SHOTS,high,2025-01-03 11:00:00"
         ",,B11,,,\n").encode(),
        [
            "1 line(s) do not match the contract's types",
            "line 3 column priority (CAST)",
            "Rule: every value must parse as its declared type",
        ],
    ),
    "timestamp_in_wrong_format": (
        (HEADER + "C001,SHOTS,1,03/01/2025 10:00,,B11,,,\n").encode(),
        ["rule 'received_at must be a TIMESTAMP as %Y-%m-%d %H:%M:%S", "line(s) 2"],
    ),
    "too_many_fields": (
        (HEADER + "C001,SHOTS,1,2025-01-03 10:00:00,,B11,,,,extra\n").encode(),
        ["line 2 column ? (TOO MANY COLUMNS)"],
    ),
    "disallowed_code": (
        (HEADER + "C001,SHOTS,1,2025-01-03 10:00:00,,B11,,,\n"
         "C002,FIRE,1,2025-01-03 10:00:00,,B11,,,\n"
         "C003,THEFT,1,2025-01-03 10:00:00,,B11,,,\n"
         "C004,shots,1,2025-01-03 10:00:00,,B11,,,\n").encode(),
        [
            "rule 'call_type_code must be one of SHOTS, THEFT, NOISE': 2 row(s), "
            "e.g. line(s) 3, 5",
            "Correct the rows and re-send.",
        ],
    ),
    "out_of_range_and_missing_value": (
        (HEADER + "C001,SHOTS,9,2025-01-03 10:00:00,,B11,,,\n"
         "C002,SHOTS,1,2025-01-03 10:00:00,,,,,\n").encode(),
        [
            "rule 'priority must be at most 4': 1 row(s), e.g. line(s) 2",
            "rule 'beat is required': 1 row(s), e.g. line(s) 3",
        ],
    ),
    "duplicate_key": (
        (HEADER + "C001,SHOTS,1,2025-01-03 10:00:00,,B11,,,\n"
         "C002,SHOTS,1,2025-01-03 10:00:00,,B11,,,\n"
         "C001,THEFT,2,2025-01-04 10:00:00,,B12,,,\n").encode(),
        ["rule '(call_number) must be unique in the file': 2 row(s), e.g. line(s) 2, 4"],
    ),
    "repeated_header_column": (
        b"call_number,call_type_code,priority,received_at,beat,beat\n"
        b"C001,SHOTS,1,2025-01-03 10:00:00,B11,B11\n",
        ["the header repeats a column name"],
    ),
    "empty_file": (b"", ["the file is empty. Export it again with its header row."]),
    "blank_lines_only": (b"\n\r\n  \n", ["the file is empty"]),
    "header_not_utf8": (
        b"call_number,call_type_code,priorit\xe9,received_at,beat\nC001,SHOTS,1,x,B11\n",
        ["line 1 is not UTF-8 text", "Save the export as UTF-8 CSV."],
    ),
    "row_not_utf8": (
        HEADER.encode() + b"C001,SHOTS,1,2025-01-03 10:00:00,,B11,Jos\xe9,,\n",
        ["line 2 column caller_name (INVALID ENCODING)"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "fragments"), QUARANTINE_CASES.values(), ids=list(QUARANTINE_CASES)
)
def test_bad_file_is_quarantined_whole(
    box: Delivery, con: duckdb.DuckDBPyConnection, data: bytes, fragments: list[str]
) -> None:
    """A file breaking its contract loads no row and is kept aside with an actionable reason."""
    name = "calls_2025_01.csv"
    box.drop(name, data)

    outcomes = box.run(con)

    assert [(o.file_name, o.status, o.rows_loaded) for o in outcomes] == [(name, "quarantined", 0)]
    reason = outcomes[0].message.removeprefix("quarantined: ")
    assert reason.startswith(f"{name}: ")
    for fragment in fragments:
        assert fragment in reason
    kept = box.folder.quarantine / f"{sha(data)[:16]}__{name}"
    assert kept.read_bytes() == data
    reason_file = kept.with_name(kept.name + ".reason.txt")
    assert reason_file.read_text(encoding="utf-8") == reason + "\n"
    assert ledger(con) == [
        (name, "quarantined", None, None, reason, str(kept), sha(data), len(data))
    ]
    assert not table_exists(con, "police__calls")
    assert not box.folder.archive.exists()
    box.assert_nothing_lost()


def test_bad_file_does_not_block_good_ones(box: Delivery, con: duckdb.DuckDBPyConnection) -> None:
    """In one batch, files are taken in name order and each is judged on its own."""
    feb = (HEADER + "F001,THEFT,2,2025-02-10 09:00:00,,B22,,,\n").encode()
    box.drop("calls_2025_03.csv", (HEADER + "M001,SHOTS,0,2025-03-01 00:00:00,,B11,,,\n").encode())
    box.drop("calls_2025_01.csv", GOOD)
    box.drop("calls_2025_02.csv", feb)
    box.drop("calls_2025_01_copy.csv", GOOD)

    outcomes = box.run(con)

    assert [(o.file_name, o.status, o.rows_loaded) for o in outcomes] == [
        ("calls_2025_01.csv", "loaded", 3),
        ("calls_2025_01_copy.csv", "duplicate", 0),
        ("calls_2025_02.csv", "loaded", 1),
        ("calls_2025_03.csv", "quarantined", 0),
    ]
    assert "rule 'priority must be at least 1': 1 row(s), e.g. line(s) 2" in outcomes[3].message
    assert con.execute(
        "SELECT _source_file, count(*) FROM police__calls GROUP BY ALL ORDER BY 1"
    ).fetchall() == [("calls_2025_01.csv", 2), ("calls_2025_02.csv", 1)]
    # C003 (received 1 February) gave way to the later file of February: the latest delivery of
    # a month wins, and January's file no longer provides February.
    assert con.execute(
        "SELECT file_name, superseded_by, replaced_months FROM _ingest_ledger "
        "WHERE status = 'loaded' ORDER BY file_name"
    ).fetchall() == [("calls_2025_01.csv", None, "2025-02"), ("calls_2025_02.csv", None, None)]
    box.assert_nothing_lost()


# -- what the inbox scan leaves alone ---------------------------------------------------------


def test_in_progress_and_hidden_files_are_untouched(
    box: Delivery, con: duckdb.DuckDBPyConnection
) -> None:
    """Partial uploads and hidden files stay exactly where they are, with no ledger row.

    Symlinks and folders are refused into quarantine instead (test_ingest_lifecycle.py).
    """
    inbox = box.folder.inbox
    untouched = {
        "calls_2025_02.csv.part": GOOD,
        "calls_2025_03.csv.tmp": GOOD,
        "calls_2025_04.CSV.PARTIAL": GOOD,
        "calls_2025_05.csv.crdownload": GOOD,
        ".calls_2025_06.csv": GOOD,
    }
    for name, data in untouched.items():
        (inbox / name).write_bytes(data)

    assert box.run(con) == []

    for name, data in untouched.items():
        assert (inbox / name).read_bytes() == data
    assert sorted(p.name for p in inbox.iterdir()) == sorted(untouched)
    assert ledger(con) == []
    assert not table_exists(con, "police__calls")
    assert not box.folder.archive.exists()
    assert not box.folder.quarantine.exists()


def test_other_datasets_files_are_not_taken(box: Delivery, con: duckdb.DuckDBPyConnection) -> None:
    """Only names matching the dataset's file_pattern are processed."""
    beats = b"beat,district\nB11,D1\n"
    box.drop("beats.csv", beats)
    box.drop("calls_2025_01.csv", GOOD)

    assert [o.file_name for o in box.run(con, "calls")] == ["calls_2025_01.csv"]
    assert (box.folder.inbox / "beats.csv").read_bytes() == beats
    assert [o.file_name for o in box.run(con, "beats")] == ["beats.csv"]
    box.assert_nothing_lost()


def test_replace_dataset_keeps_only_latest_file(
    box: Delivery, con: duckdb.DuckDBPyConnection
) -> None:
    """A load: replace dataset holds exactly the rows of the last file loaded."""
    box.drop("beats_v1.csv", b"beat,district\nB11,D1\nB12,D1\n")
    assert [o.rows_loaded for o in box.run(con, "beats")] == [2]
    box.drop("beats_v2.csv", b"beat,district\nB21,D2\n")
    assert [o.rows_loaded for o in box.run(con, "beats")] == [1]

    assert con.execute("SELECT beat, district, _source_file FROM police__beats").fetchall() == [
        ("B21", "D2", "beats_v2.csv")
    ]
    box.assert_nothing_lost()


# -- hostile file names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["calls_o'brien.csv", "calls_x'); DROP TABLE _ingest_ledger; --.csv", 'calls_"q".csv'],
)
def test_quotes_in_file_name_are_safe(
    box: Delivery, con: duckdb.DuckDBPyConnection, name: str
) -> None:
    """Quote characters in a name reach SQL only as quoted literals, for loads and rejects."""
    bad = (HEADER + "C009,FIRE,1,2025-01-03 10:00:00,,B11,,,\n").encode()
    bad_name = name.replace("calls_", "calls_bad_")
    box.drop(name, GOOD)
    box.drop(bad_name, bad)

    outcomes = {o.file_name: o.status for o in box.run(con)}

    assert outcomes == {name: "loaded", bad_name: "quarantined"}
    assert con.execute("SELECT DISTINCT _source_file FROM police__calls").fetchall() == [(name,)]
    assert sorted(r[:2] for r in ledger(con)) == sorted(
        [(name, "loaded"), (bad_name, "quarantined")]
    )
    kept = box.kept_as(bad_name, bad)
    assert (
        kept.with_name(kept.name + ".reason.txt")
        .read_text(encoding="utf-8")
        .startswith(f"{bad_name}: rule 'call_type_code must be one of")
    )
    box.assert_nothing_lost()


def test_glob_characters_in_file_name_read_only_that_file(
    box: Delivery, con: duckdb.DuckDBPyConnection
) -> None:
    """A '?' in a delivered name must not make DuckDB read a neighbouring file as well."""
    box.drop("calls_a?.csv", (HEADER + "Q001,SHOTS,1,2025-01-03 10:00:00,,B11,,,\n").encode())
    box.drop("calls_ab.csv", (HEADER + "AB01,SHOTS,1,2025-02-03 10:00:00,,B11,,,\n").encode())

    outcomes = box.run(con)

    box.assert_nothing_lost()
    assert con.execute(
        "SELECT _source_file, list(call_number ORDER BY call_number) FROM police__calls "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall() == [("calls_a?.csv", ["Q001"]), ("calls_ab.csv", ["AB01"])]
    assert [(o.file_name, o.rows_loaded) for o in outcomes] == [
        ("calls_a?.csv", 1),
        ("calls_ab.csv", 1),
    ]


# -- failures while loading -------------------------------------------------------------------


def test_derived_column_failure_quarantines_the_file(
    box: Delivery, con: duckdb.DuckDBPyConnection
) -> None:
    """A row whose derived column cannot be computed rejects the file like any contract breach."""
    data = b"visit_id,month,beat\nV1,2025-01,B11\nV2,2025-13,B12\n"
    box.drop("visits_2025.csv", data)

    outcomes = box.run(con, "visits")

    assert [(o.file_name, o.status) for o in outcomes] == [("visits_2025.csv", "quarantined")]
    assert not table_exists(con, "police__visits")
    box.assert_nothing_lost()


def test_contract_gaining_a_column_extends_the_table(
    box: Delivery, con: duckdb.DuckDBPyConnection
) -> None:
    """A column added to the contract later is added to the table; older rows hold NULL."""
    box.drop("calls_2025_01.csv", GOOD)
    assert [o.status for o in box.run(con)] == ["loaded"]
    evolved = Provider.model_validate(provider_config(disposition={"type": "VARCHAR"}))
    feb = (HEADER + "F001,THEFT,2,2025-02-10 09:00:00,,B22,,,\n").encode()
    box.drop("calls_2025_02.csv", feb)

    outcomes = ingest_dataset(con, evolved, "calls", box.folder, log=box.log.append)

    assert [o.status for o in outcomes] == ["loaded"]
    # January's three rows but C003 (1 February, now February's file's month), and F001.
    assert con.execute("SELECT count(*), count(disposition) FROM police__calls").fetchall() == [
        (3, 0)
    ]
    box.assert_nothing_lost()


def test_failed_load_rolls_back_and_reports_the_cause(
    box: Delivery, con: duckdb.DuckDBPyConnection
) -> None:
    """A load that fails inside its transaction surfaces DuckDB's error and rolls back cleanly.

    The table was created by hand with a type the contract's values cannot fill: an operator
    problem, not the partner's, so the file stays in the inbox for the next run.
    """
    con.execute("CREATE TABLE police__calls (call_number INTEGER)")
    box.drop("calls_2025_01.csv", GOOD)

    with pytest.raises(duckdb.Error) as raised:
        box.run(con)

    assert "C001" in str(raised.value) or "INTEGER" in str(raised.value)
    assert ledger(con) == []
    assert con.execute("SELECT count(*) FROM police__calls").fetchall() == [(0,)]
    assert (box.folder.inbox / "calls_2025_01.csv").read_bytes() == GOOD
    # The connection is still usable afterwards.
    assert con.execute("SELECT 1").fetchall() == [(1,)]
