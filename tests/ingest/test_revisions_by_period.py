"""Corrected files revise by period: the latest delivery of a month wins, whatever file it was.

Real CSV files in a real drop folder, loaded by ``ingest_dataset`` into a real DuckDB file.
After every delivery the raw table is compared month by month with an independent count over
the delivered files (Python's csv module, the rule applied by hand), and the release inputs with
the files whose rows are in the table.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from typing import Any

import duckdb
import pytest

from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.registry import Provider
from cs360_pipeline.release.identity import describe_release
from tests.conftest import CALLS_DATASET, TEST_PROVIDER_HEADER

CONFIG: dict[str, Any] = {
    **TEST_PROVIDER_HEADER,
    "datasets": {
        "calls": CALLS_DATASET,
    },
}
PROVIDER = Provider.model_validate(CONFIG)
HEADER = "call_number,kind,received_at\n"

# The city's 2025 as its annual file tells it: August 11 calls, the third quarter 63, the year 439.
YEAR = {1: 40, 2: 38, 3: 42, 4: 41, 5: 44, 6: 43, 7: 26, 8: 11, 9: 26, 10: 45, 11: 42, 12: 41}


def calls(tag: str, counts: dict[int, int], kind: str = "A") -> bytes:
    """A CSV file of ``counts[month]`` calls in each month of 2025, call numbers marked by tag."""
    lines = [
        f"{tag}-{month:02d}-{i:03d},{kind if i % 3 else 'B'},2025-{month:02d}-{1 + i % 28:02d} "
        f"{i % 24:02d}:15:00\n"
        for month, count in counts.items()
        for i in range(count)
    ]
    return (HEADER + "".join(lines)).encode()


def months_in(data: bytes) -> Counter[str]:
    """Rows per month (YYYY-MM) of a delivered file, read by Python's csv module."""
    reader = csv.DictReader(io.StringIO(data.decode()))
    return Counter(row["received_at"][:7] for row in reader)


class LatestWins:
    """The rule by hand: each month comes from the latest delivery of it.

    A file sent again under its name first takes back every month its earlier version gave;
    bytes equal to a file that still gives all its months are a duplicate and change nothing.
    """

    def __init__(self) -> None:
        self.loaded: list[tuple[str, bytes]] = []
        self.owner: dict[str, int] = {}  # month -> index in loaded

    def deliver(self, name: str, data: bytes) -> str:
        for k, (_, earlier) in enumerate(self.loaded):
            if earlier == data and all(self.owner.get(m) == k for m in months_in(earlier)):
                return "duplicate"
        self.owner = {m: k for m, k in self.owner.items() if self.loaded[k][0] != name}
        self.loaded.append((name, data))
        for month in months_in(data):
            self.owner[month] = len(self.loaded) - 1
        return "loaded"

    def per_month(self) -> dict[str, tuple[list[str], int]]:
        return {
            m: ([self.loaded[k][0]], months_in(self.loaded[k][1])[m]) for m, k in self.owner.items()
        }

    def inputs(self) -> list[str]:
        return sorted({f"police/{self.loaded[k][0]}" for k in self.owner.values()})


@pytest.fixture
def rule() -> LatestWins:
    return LatestWins()


def deliver(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins, name: str, data: bytes
) -> None:
    """One file into the inbox and one run; the raw table must then agree with the rule."""
    (folder.inbox / name).write_bytes(data)
    outcomes = ingest_dataset(con, PROVIDER, "calls", folder, log=lambda _: None)
    assert [(o.file_name, o.status) for o in outcomes] == [(name, rule.deliver(name, data))]
    assert raw_per_month(con) == rule.per_month()
    assert inputs(con) == rule.inputs() == files_with_rows(con)


def raw_per_month(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[list[str], int]]:
    """Month -> (the files its rows came from, rows): one file a month, or the month is wrong."""
    rows = con.execute(
        "SELECT strftime(received_at, '%Y-%m') AS m, list(DISTINCT _source_file ORDER BY "
        "_source_file), count(*) FROM police__calls GROUP BY m"
    ).fetchall()
    return {month: (sources, count) for month, sources, count in rows}


def total(con: duckdb.DuckDBPyConnection, first: str, last: str) -> int:
    return con.execute(
        "SELECT count(*) FROM police__calls WHERE strftime(received_at, '%Y-%m') BETWEEN ? AND ?",
        [first, last],
    ).fetchall()[0][0]


def inputs(con: duckdb.DuckDBPyConnection) -> list[str]:
    return describe_release(con, "policy", "code", ledger="_ingest_ledger").input_files


def files_with_rows(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT DISTINCT 'police/' || _source_file FROM police__calls").fetchall()
    return sorted(r[0] for r in rows)


def ledger(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(file, status, revision_of, superseded_by, replaced_months) in delivery order."""
    return con.execute(
        "SELECT file_name, status, revision_of, superseded_by, replaced_months "
        "FROM _ingest_ledger ORDER BY processed_at"
    ).fetchall()


def chain_ids(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None]]:
    return con.execute(
        "SELECT delivery_id, superseded_by_id FROM _ingest_ledger ORDER BY processed_at"
    ).fetchall()


ANNUAL = calls("Y", YEAR)
AUGUST_FIX = calls("F", {8: 11}, kind="B")


def test_a_corrected_month_replaces_that_month_of_an_annual_file(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins
) -> None:
    """The city's case: all of 2025, then August corrected. August 11, the quarter 63, 439."""
    deliver(con, folder, rule, "calls_2025.csv", ANNUAL)
    deliver(con, folder, rule, "calls_2025-08.csv", AUGUST_FIX)

    assert (total(con, "2025-08", "2025-08"), total(con, "2025-07", "2025-09")) == (11, 63)
    assert total(con, "2025-01", "2025-12") == 439
    assert raw_per_month(con)["2025-08"] == (["calls_2025-08.csv"], 11)
    assert ledger(con) == [
        ("calls_2025.csv", "loaded", None, None, "2025-08"),
        ("calls_2025-08.csv", "loaded", "calls_2025.csv", None, None),
    ]
    assert inputs(con) == ["police/calls_2025-08.csv", "police/calls_2025.csv"]
    reason = con.execute(
        "SELECT reason FROM _ingest_ledger WHERE file_name = 'calls_2025-08.csv'"
    ).fetchall()
    assert reason == [("loaded 11 rows; revision of calls_2025.csv: replaced month(s) 2025-08",)]


def test_resending_the_annual_file_restores_its_august_and_the_fix_can_return(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins
) -> None:
    """A partly replaced file is no duplicate: re-sent, it is again the latest for all months."""
    deliver(con, folder, rule, "calls_2025.csv", ANNUAL)
    deliver(con, folder, rule, "calls_2025-08.csv", AUGUST_FIX)
    deliver(con, folder, rule, "calls_2025.csv", ANNUAL)  # undo the correction
    deliver(con, folder, rule, "calls_2025-08.csv", AUGUST_FIX)  # and correct again
    deliver(con, folder, rule, "calls_2025-08_copy.csv", AUGUST_FIX)  # current bytes: duplicate

    assert raw_per_month(con)["2025-08"] == (["calls_2025-08.csv"], 11)
    assert total(con, "2025-01", "2025-12") == 439
    assert ledger(con) == [
        ("calls_2025.csv", "loaded", None, "calls_2025.csv", "2025-08"),
        ("calls_2025-08.csv", "loaded", "calls_2025.csv", "calls_2025.csv", None),
        ("calls_2025.csv", "loaded", "calls_2025-08.csv, calls_2025.csv", None, "2025-08"),
        ("calls_2025-08.csv", "loaded", "calls_2025.csv", None, None),
        ("calls_2025-08_copy.csv", "duplicate", None, None, None),
    ]
    (v1, _), (fix, fix_next), (v2, _), (fix_again, fix_again_next), _ = chain_ids(con)
    assert chain_ids(con)[0][1] == v2 and fix_next == v2 and fix_again_next is None
    assert len({v1, fix, v2, fix_again}) == 4


def test_an_annual_resend_supersedes_the_monthly_files_it_covers(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins
) -> None:
    """Monthly files first, then the whole year at once: every month from the annual file."""
    for month in (6, 7, 8):
        deliver(con, folder, rule, f"calls_2025-{month:02d}.csv", calls("M", {month: 20 + month}))
    deliver(con, folder, rule, "calls_2025.csv", ANNUAL)

    assert total(con, "2025-01", "2025-12") == 439
    assert ledger(con) == [
        ("calls_2025-06.csv", "loaded", None, "calls_2025.csv", None),
        ("calls_2025-07.csv", "loaded", None, "calls_2025.csv", None),
        ("calls_2025-08.csv", "loaded", None, "calls_2025.csv", None),
        (
            "calls_2025.csv",
            "loaded",
            "calls_2025-06.csv, calls_2025-07.csv, calls_2025-08.csv",
            None,
            None,
        ),
    ]
    assert inputs(con) == ["police/calls_2025.csv"]


def test_a_corrected_annual_file_supersedes_the_first(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins
) -> None:
    corrected = calls("Z", {**YEAR, 3: 39, 8: 12})
    deliver(con, folder, rule, "calls_2025.csv", ANNUAL)
    deliver(con, folder, rule, "calls_2025_corrected.csv", corrected)

    assert total(con, "2025-01", "2025-12") == 439 - 3 + 1
    assert ledger(con) == [
        ("calls_2025.csv", "loaded", None, "calls_2025_corrected.csv", None),
        ("calls_2025_corrected.csv", "loaded", "calls_2025.csv", None, None),
    ]
    assert inputs(con) == ["police/calls_2025_corrected.csv"]


def test_overlapping_files_give_up_months_one_by_one(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins
) -> None:
    """A quarter, then August to October, then September, then July: replaced months add up."""
    deliver(con, folder, rule, "calls_q3.csv", calls("Q", {7: 5, 8: 6, 9: 7}))
    deliver(con, folder, rule, "calls_aug-oct.csv", calls("R", {8: 3, 9: 4, 10: 5}))
    assert ledger(con)[0] == ("calls_q3.csv", "loaded", None, None, "2025-08, 2025-09")
    deliver(con, folder, rule, "calls_sep.csv", calls("S", {9: 2}))
    deliver(con, folder, rule, "calls_jul.csv", calls("J", {7: 1}))

    assert ledger(con) == [
        ("calls_q3.csv", "loaded", None, "calls_jul.csv", "2025-08, 2025-09"),
        ("calls_aug-oct.csv", "loaded", "calls_q3.csv", None, "2025-09"),
        ("calls_sep.csv", "loaded", "calls_aug-oct.csv", None, None),
        ("calls_jul.csv", "loaded", "calls_q3.csv", None, None),
    ]
    assert inputs(con) == [
        "police/calls_aug-oct.csv",
        "police/calls_jul.csv",
        "police/calls_sep.csv",
    ]


def test_a_month_loaded_twice_before_is_settled_by_the_next_run(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins
) -> None:
    """A table and ledger as earlier loads left them: August from both files, both untouched.

    The next run, with nothing in the inbox, keeps the later file's August only.
    """
    deliver(con, folder, rule, "calls_2025.csv", ANNUAL)
    con.execute(
        "CREATE TABLE annual_august AS SELECT * FROM police__calls "
        "WHERE strftime(received_at, '%Y-%m') = '2025-08'"
    )
    deliver(con, folder, rule, "calls_2025-08.csv", AUGUST_FIX)
    con.execute("INSERT INTO police__calls SELECT * FROM annual_august")
    con.execute("UPDATE _ingest_ledger SET revision_of = NULL, replaced_months = NULL")
    assert total(con, "2025-08", "2025-08") == 22

    assert ingest_dataset(con, PROVIDER, "calls", folder, log=lambda _: None) == []

    assert raw_per_month(con) == rule.per_month()
    assert (total(con, "2025-08", "2025-08"), total(con, "2025-07", "2025-09")) == (11, 63)
    assert ledger(con) == [
        ("calls_2025.csv", "loaded", None, None, "2025-08"),
        ("calls_2025-08.csv", "loaded", None, None, None),
    ]
    assert inputs(con) == files_with_rows(con) == rule.inputs()


def rows_of(data: bytes) -> list[str]:
    return [r["call_number"] for r in csv.DictReader(io.StringIO(data.decode()))]


def test_every_row_of_the_winning_files_is_loaded_once(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, rule: LatestWins
) -> None:
    """Not only counts: the call numbers in the table are exactly the winners' rows, once each."""
    deliver(con, folder, rule, "calls_2025.csv", ANNUAL)
    deliver(con, folder, rule, "calls_2025-08.csv", AUGUST_FIX)

    loaded = [r[0] for r in con.execute("SELECT call_number FROM police__calls").fetchall()]
    expected = [n for n in rows_of(ANNUAL) if "-08-" not in n] + rows_of(AUGUST_FIX)
    assert sorted(loaded) == sorted(expected) and len(set(loaded)) == len(loaded)
    assert hashlib.sha256(ANNUAL).hexdigest() in {
        r[0] for r in con.execute("SELECT DISTINCT _file_sha256 FROM police__calls").fetchall()
    }
