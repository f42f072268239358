"""The ``duplicates`` option: repeated rows of one file are rejected, collapsed or chosen.

An incident export repeats an incident on several rows: exact copies, and one row per offense.
Each mode loads a real CSV file from a real drop folder into a real DuckDB file; the raw table
is compared with a count made independently over the same bytes with Python's csv module, and
the load message and ledger row are asserted to the number.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cs360_pipeline.ingest import FileOutcome, ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.registry import Provider, RegistryError, load_providers
from tests.conftest import TEST_PROVIDER_HEADER, copy_provider_configs, edit_provider

ALLOWED = ["ASSAULT", "BURGLARY", "THEFT", "VANDALISM"]
ORDER = ["reported_at", "offense_code"]
NAME = "incidents_2025_01.csv"

# Lines 2-16. I001 and I005: exact copies. I002: two offenses at one time. I004: an offense, a
# later offense (the only February row) and a copy of the first. I006: a broken row and its
# copy. I007: a broken first offense, then a good one. I003: one row.
EXPORT = (
    b"incident_id,offense_code,reported_at,beat,victim_name\n"
    b"I001,THEFT,2025-01-03 10:00:00,B11,Ann Lee\n"
    b"I001,THEFT,2025-01-03 10:00:00,B11,Ann Lee\n"
    b"I002,VANDALISM,2025-01-05 09:00:00,B12,\n"
    b"I002,ASSAULT,2025-01-05 09:00:00,B12,\n"
    b"I003,BURGLARY,2025-01-07 12:00:00,B21,Bob Roe\n"
    b"I004,THEFT,2025-01-31 23:00:00,B22,\n"
    b"I004,ASSAULT,2025-02-01 01:00:00,B22,\n"
    b"I004,THEFT,2025-01-31 23:00:00,B22,\n"
    b"I005,ASSAULT,2025-01-09 08:00:00,B11,Cy Doe\n"
    b"I005,ASSAULT,2025-01-09 08:00:00,B11,Cy Doe\n"
    b"I005,ASSAULT,2025-01-09 08:00:00,B11,Cy Doe\n"
    b"I006,ARSON,2025-01-10 08:00:00,B12,\n"
    b"I006,ARSON,2025-01-10 08:00:00,B12,\n"
    b"I007,ARSON,2025-01-11 08:00:00,B11,\n"
    b"I007,THEFT,2025-01-11 09:00:00,B11,\n"
)

UNIQUE = "(incident_id) must be unique in the file"
OFFENSE = f"offense_code must be one of {', '.join(ALLOWED)}"

# What each mode makes of EXPORT: (rows loaded, rows rejected, the load message, months).
EXPECTED: dict[str, tuple[int, int, str, tuple[dt.date, dt.date]]] = {
    "reject": (
        1,
        14,
        "loaded 1 rows; rejected 14 of 15 rows (93.3%, within max_bad_row_share 95.0%) into "
        f"_rejects: rule '{OFFENSE}': 3 row(s), e.g. line(s) 13, 14, 15; rule '{UNIQUE}': "
        "14 row(s), e.g. line(s) 2, 3, 4, 5, 7",
        (dt.date(2025, 1, 1), dt.date(2025, 1, 1)),
    ),
    "drop_exact": (
        3,
        9,
        "loaded 3 rows; dropped 3 exact duplicate row(s) (identical in every contract column) "
        "(duplicates: drop_exact); rejected 9 of 15 rows (60.0%, within max_bad_row_share "
        f"95.0%) into _rejects: rule '{OFFENSE}': 3 row(s), e.g. line(s) 13, 14, 15; rule "
        f"'{UNIQUE} (rows identical in every column count once: duplicates drop_exact)': "
        "7 row(s), e.g. line(s) 4, 5, 7, 8, 9",
        (dt.date(2025, 1, 1), dt.date(2025, 1, 1)),
    ),
    "keep_first": (
        6,
        3,
        "loaded 6 rows; dropped 4 exact duplicate row(s) (identical in every contract column); "
        "kept one row per incident_id for 2 key(s) (first by reported_at, offense_code), "
        "dropping 2 other row(s) (duplicates: keep_first); rejected 3 of 15 rows (20.0%, "
        f"within max_bad_row_share 95.0%) into _rejects: rule '{OFFENSE}': 3 row(s), e.g. "
        "line(s) 13, 14, 15",
        # I004's February offense is not its first: no loaded row is of February.
        (dt.date(2025, 1, 1), dt.date(2025, 1, 1)),
    ),
}


def provider(duplicates: str | None, key: bool = True) -> Provider:
    """A police provider whose incident export may repeat an incident on several rows."""
    dataset: dict[str, Any] = {
        "title": "Incidents",
        "file_pattern": "incidents_*.csv",
        "cadence": "monthly",
        "period": "reported_at",
        "geography": {"column": "beat"},
        "max_bad_row_share": 0.95,
        "columns": {
            "incident_id": {"type": "VARCHAR", "required": True},
            "offense_code": {"type": "VARCHAR", "required": True, "allowed": ALLOWED},
            "reported_at": {"type": "TIMESTAMP", "required": True},
            "beat": {"type": "VARCHAR", "required": True},
            "victim_name": {"type": "VARCHAR", "identifier": True},
        },
    }
    if key:
        dataset["key"] = ["incident_id"]
    if duplicates is not None:
        dataset["duplicates"] = duplicates
    if duplicates == "keep_first":
        dataset["duplicate_order"] = ORDER
    return Provider.model_validate({**TEST_PROVIDER_HEADER, "datasets": {"incidents": dataset}})


# -- the independent count --------------------------------------------------------------------


def records(data: bytes) -> list[dict[str, str]]:
    """The file's data records as Python's csv module reads them, each with its line."""
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    return [{**row, "_line": str(n)} for n, row in enumerate(rows, start=2)]


def contents(row: dict[str, str]) -> tuple[str, ...]:
    """Every contract column of a row: what makes two rows exact copies."""
    return (row["incident_id"], row["offense_code"], row["reported_at"], row["beat"],
            row["victim_name"])  # fmt: skip


def expected_rows(data: bytes, mode: str, key: bool = True) -> list[dict[str, str]]:
    """The rows the documented rule loads, computed without DuckDB."""
    rows = records(data)
    if key and mode == "reject":
        per_key = Counter(r["incident_id"] for r in rows)
        rows = [r for r in rows if per_key[r["incident_id"]] == 1]
    elif key and mode == "drop_exact":
        variants: dict[str, set[tuple[str, ...]]] = {}
        for r in rows:
            variants.setdefault(r["incident_id"], set()).add(contents(r))
        rows = [r for r in rows if len(variants[r["incident_id"]]) == 1]
    good = [r for r in rows if r["offense_code"] in ALLOWED]
    if mode == "drop_exact":
        first: dict[tuple[str, ...], dict[str, str]] = {}
        for r in good:
            first.setdefault(contents(r), r)
        return list(first.values())
    if mode == "keep_first":
        chosen: dict[str, dict[str, str]] = {}
        for r in good:  # file order breaks a tie, so a later equal row never replaces one
            best = chosen.get(r["incident_id"])
            if best is None or [r[c] for c in ORDER] < [best[c] for c in ORDER]:
                chosen[r["incident_id"]] = r
        return list(chosen.values())
    return good


def loaded(con: duckdb.DuckDBPyConnection) -> Counter:
    return Counter(
        con.execute(
            "SELECT incident_id, offense_code, strftime(reported_at, '%Y-%m-%d %H:%M:%S'), beat "
            "FROM police__incidents"
        ).fetchall()
    )


def as_loaded(rows: list[dict[str, str]]) -> Counter:
    return Counter((r["incident_id"], r["offense_code"], r["reported_at"], r["beat"]) for r in rows)


def ledger_row(con: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    return con.execute(
        "SELECT status, rows_read, rows_loaded, rows_rejected, reason, first_period, last_period "
        "FROM _ingest_ledger"
    ).fetchall()[0]


def run(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, registry: Provider, data: bytes
) -> list[FileOutcome]:
    (folder.inbox / NAME).write_bytes(data)
    return ingest_dataset(con, registry, "incidents", folder)


# -- each mode --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_each_mode_loads_what_the_rule_says(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, mode: str
) -> None:
    """Loaded rows equal the independent count; dropped rows are neither loaded nor rejected."""
    rows, rejected, message, (first, last) = EXPECTED[mode]

    outcomes = run(con, folder, provider(mode), EXPORT)

    assert outcomes == [FileOutcome(NAME, "loaded", rows, message)]
    expected = expected_rows(EXPORT, mode)
    assert len(expected) == rows
    assert loaded(con) == as_loaded(expected)
    assert ledger_row(con) == ("loaded", 15, rows, rejected, message, first, last)
    # Only rule breakers reach _rejects; a dropped duplicate is not a rejected row.
    rejected_lines = con.execute("SELECT count(DISTINCT line) FROM _rejects").fetchall()[0][0]
    assert rejected_lines == rejected
    # The message names columns, rules and lines: no value of a row (ids, names, codes seen).
    for value in ("I00", "Ann", "Cy Doe", "ARSON", "B11", "2025-"):
        assert value not in message


def test_default_is_reject(con: duckdb.DuckDBPyConnection, folder: DropFolder) -> None:
    """A contract without ``duplicates`` behaves as before: every row of a repeated key rejected."""
    assert provider(None).datasets["incidents"].duplicates == "reject"

    outcomes = run(con, folder, provider(None), EXPORT)

    assert outcomes == [FileOutcome(NAME, "loaded", 1, EXPECTED["reject"][2])]
    assert loaded(con) == as_loaded(expected_rows(EXPORT, "reject"))


def test_keep_first_keeps_a_good_row_when_the_first_breaks_a_rule(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """I007's first offense is rejected; its later good row is the one that loads."""
    run(con, folder, provider("keep_first"), EXPORT)

    assert con.execute(
        "SELECT offense_code, reported_at FROM police__incidents WHERE incident_id = 'I007'"
    ).fetchall() == [("THEFT", dt.datetime(2025, 1, 11, 9))]
    assert con.execute("SELECT line, rule FROM _rejects WHERE line = 15").fetchall() == [
        (15, OFFENSE)
    ]


def test_keep_first_ties_keep_file_order(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """Rows of a key equal in every order column: the earliest in the file is kept."""
    data = (
        b"incident_id,offense_code,reported_at,beat,victim_name\n"
        b"I010,THEFT,2025-01-03 10:00:00,B12,\n"
        b"I010,THEFT,2025-01-03 10:00:00,B11,\n"
        b"I010,THEFT,2025-01-03 10:00:00,B21,\n"
    )

    outcomes = run(con, folder, provider("keep_first"), data)

    message = (
        "loaded 1 rows; kept one row per incident_id for 1 key(s) (first by reported_at, "
        "offense_code), dropping 2 other row(s) (duplicates: keep_first)"
    )
    assert outcomes == [FileOutcome(NAME, "loaded", 1, message)]
    assert con.execute("SELECT beat FROM police__incidents").fetchall() == [("B12",)]
    assert loaded(con) == as_loaded(expected_rows(data, "keep_first"))
    assert ledger_row(con)[1:5] == (3, 1, 0, message)


def test_drop_exact_without_a_key(con: duckdb.DuckDBPyConnection, folder: DropFolder) -> None:
    """Without a key, drop_exact still makes exact copies one row; rows that differ all load."""
    outcomes = run(con, folder, provider("drop_exact", key=False), EXPORT)

    expected = expected_rows(EXPORT, "drop_exact", key=False)
    message = (
        "loaded 8 rows; dropped 4 exact duplicate row(s) (identical in every contract column) "
        "(duplicates: drop_exact); rejected 3 of 15 rows (20.0%, within max_bad_row_share "
        f"95.0%) into _rejects: rule '{OFFENSE}': 3 row(s), e.g. line(s) 13, 14, 15"
    )
    assert len(expected) == 8
    assert outcomes == [FileOutcome(NAME, "loaded", 8, message)]
    assert loaded(con) == as_loaded(expected)
    assert ledger_row(con)[1:5] == (15, 8, 3, message)


def test_without_duplicates_drop_exact_says_nothing(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A file with no repeated row loads whole, its message unchanged."""
    data = b"incident_id,offense_code,reported_at,beat\nI020,THEFT,2025-01-03 10:00:00,B11\n"

    assert run(con, folder, provider("drop_exact"), data) == [
        FileOutcome(NAME, "loaded", 1, "loaded 1 rows")
    ]


# -- the contract option ----------------------------------------------------------------------


def named(path: Path, *fragments: str) -> str:
    """A regex that requires the file path first and then every fragment, in order."""
    return "(?s)" + re.escape(str(path)) + "".join(".*" + re.escape(f) for f in fragments)


BAD_OPTIONS: dict[str, tuple[dict[str, Any], list[str], list[str]]] = {
    "unknown_mode": (
        {"duplicates": "drop"},
        [],
        ["datasets.incidents.duplicates", "duplicates 'drop' is not one of reject, drop_exact, "
         "keep_first"],
    ),
    "keep_first_without_order": (
        {"duplicates": "keep_first"},
        [],
        ["datasets.incidents", "keep_first needs 'duplicate_order'"],
    ),
    "keep_first_without_key": (
        {"duplicates": "keep_first", "duplicate_order": ["reported_at"]},
        ["key"],
        ["datasets.incidents", "keep_first needs a 'key'"],
    ),
    "order_names_unknown_column": (
        {"duplicates": "keep_first", "duplicate_order": ["reported"]},
        [],
        ["datasets.incidents", "duplicate_order 'reported' is not a column of this dataset"],
    ),
    "order_without_keep_first": (
        {"duplicates": "drop_exact", "duplicate_order": ["reported_at"]},
        [],
        ["datasets.incidents", "duplicate_order only applies to duplicates: keep_first, not "
         "drop_exact"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "removed", "fragments"), BAD_OPTIONS.values(), ids=list(BAD_OPTIONS)
)
def test_bad_option_names_file_and_key(
    tmp_path: Path, change: dict[str, Any], removed: list[str], fragments: list[str]
) -> None:
    sources = copy_provider_configs(tmp_path)

    def edit(d: dict[str, Any]) -> None:
        d["datasets"]["incidents"].update(change)
        for key in removed:
            del d["datasets"]["incidents"][key]

    path = edit_provider(sources, "police", edit)

    with pytest.raises(RegistryError, match=named(path, "invalid provider file", *fragments)):
        load_providers(sources)


def test_good_option_loads(tmp_path: Path) -> None:
    """The project's police incidents accept keep_first with an order of their own columns."""
    sources = copy_provider_configs(tmp_path)
    edit_provider(
        sources,
        "police",
        lambda d: d["datasets"]["incidents"].update(
            duplicates="keep_first", duplicate_order=[d["datasets"]["incidents"]["period"]]
        ),
    )
    incidents = load_providers(sources)["police"].datasets["incidents"]
    assert incidents.duplicates == "keep_first"
    assert incidents.duplicate_order == [incidents.period]
