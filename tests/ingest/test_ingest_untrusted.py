"""Untrusted input: headers, values, names and sizes from partners never steer the loader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder, _inside
from cs360_pipeline.registry import Provider
from tests.conftest import TEST_PROVIDER_HEADER

EVIL = "x'); DROP TABLE _ingest_ledger; --\""


def provider(source: str | None = None, **dataset: object) -> Provider:
    return Provider.model_validate(
        {
            **TEST_PROVIDER_HEADER,
            "datasets": {
                "calls": {
                    "title": "Calls",
                    "file_pattern": "calls_*",
                    "cadence": "monthly",
                    "columns": {
                        "call_number": {"type": "VARCHAR", "required": True, "source": source},
                        "note": {"type": "VARCHAR"},
                    },
                    **dataset,
                }
            },
        }
    )


def ledger_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute("SELECT file_name, status FROM _ingest_ledger").fetchall()


def test_hostile_headers_and_values_are_data(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A header and a value built to break out of SQL quoting are read as plain text."""
    header = f'"{EVIL.replace(chr(34), chr(34) * 2)}",call_number,note'
    data = f'1,C1,"{EVIL.replace(chr(34), chr(34) * 2)}"\n'
    (folder.inbox / "calls_1.csv").write_bytes(f"{header}\n{data}".encode())

    outcomes = ingest_dataset(con, provider(), "calls", folder, log=lambda _: None)

    assert [o.status for o in outcomes] == ["loaded"]
    # A header that does not look like a name is described by position and shape, never echoed.
    assert outcomes[0].message.endswith(
        "warning: column(s) column 1 (header not shown: 35 characters: letters, spaces and "
        "other characters) not in the contract were ignored"
    )
    assert EVIL not in outcomes[0].message
    assert con.execute("SELECT call_number, note FROM police__calls").fetchall() == [("C1", EVIL)]
    assert ledger_rows(con) == [("calls_1.csv", "loaded")]


def test_hostile_source_name_in_provider_file(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A ``source`` header with quotes (reviewed YAML, but still a name) is matched, not run."""
    header = EVIL.replace('"', '""')
    (folder.inbox / "calls_1.csv").write_bytes(f'"{header}",note\nC1,n\n'.encode())

    outcomes = ingest_dataset(con, provider(source=EVIL), "calls", folder, log=lambda _: None)

    assert [o.status for o in outcomes] == ["loaded"]
    assert con.execute("SELECT call_number FROM police__calls").fetchall() == [("C1",)]


def test_hostile_parquet_column_names(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """Parquet column names reach SQL only as quoted identifiers."""
    path = folder.inbox / "calls_1.parquet"
    quoted = EVIL.replace('"', '""')
    con.execute(f"""COPY (SELECT 'C1' AS call_number, 'n' AS "{quoted}") TO '{path}'""")

    outcomes = ingest_dataset(con, provider(format="parquet"), "calls", folder, log=lambda _: None)

    assert [o.status for o in outcomes] == ["loaded"]
    assert ledger_rows(con) == [("calls_1.parquet", "loaded")]


@pytest.mark.parametrize(
    "name", ["calls_..", "calls_..%2F..%2Fetc", "calls_a\\..\\..\\b", "calls_\nline", "calls_ä😀"]
)
def test_odd_file_names_stay_inside_their_folders(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, name: str
) -> None:
    """Names with dots, encoded slashes, backslashes, newlines or emoji load; a control
    character is kept as a printable escape (``\\x0a``), in the ledger and the archive name."""
    data = b"call_number\nC1\n"
    (folder.inbox / name).write_bytes(data)
    shown = name.replace("\n", "\\x0a")

    outcomes = ingest_dataset(con, provider(), "calls", folder, log=lambda _: None)

    assert [(o.file_name, o.status) for o in outcomes] == [(shown, "loaded")]
    assert ledger_rows(con) == [(shown, "loaded")]
    kept = folder.archive / f"{hashlib.sha256(data).hexdigest()[:16]}__{shown}"
    assert kept.read_bytes() == data
    assert sorted(p.name for p in folder.root.rglob("*") if p.is_file()) == [kept.name]


@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "x\x00y"])
def test_unsafe_names_are_refused_by_the_drop_folder(folder: DropFolder, name: str) -> None:
    """The archive/quarantine path is always a direct child of its folder."""
    with pytest.raises(ValueError, match="unsafe file name"):
        _inside(folder.archive, name)


def test_size_cap_refuses_before_reading(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """A file over max_file_mb is quarantined with the cap in the reason, nothing staged."""
    data = b"call_number\n" + b"C1\n" * 2000
    (folder.inbox / "calls_big.csv").write_bytes(data)

    outcomes = ingest_dataset(con, provider(max_file_mb=0.001), "calls", folder, log=lambda _: None)

    assert outcomes[0].status == "quarantined"
    assert "the file is 0.01 MB, over this dataset's size cap of 0.001 MB (max_file_mb)" in (
        outcomes[0].message
    )
    stored = f"{hashlib.sha256(data).hexdigest()[:16]}__calls_big.csv"
    assert (folder.quarantine / stored).read_bytes() == data


def test_a_file_still_being_written_waits(
    con: duckdb.DuckDBPyConnection, folder: DropFolder
) -> None:
    """With settle_seconds, a just-modified file is left in the inbox until it is quiet."""
    import os
    import time

    path = folder.inbox / "calls_1.csv"
    path.write_bytes(b"call_number\nC1\n")
    settling = DropFolder(folder.root, settle_seconds=60)

    assert ingest_dataset(con, provider(), "calls", settling, log=lambda _: None) == []
    assert path.exists()

    old = time.time() - 120
    os.utime(path, (old, old))
    outcomes = ingest_dataset(con, provider(), "calls", settling, log=lambda _: None)
    assert [o.status for o in outcomes] == ["loaded"]
