"""Connections that cross from the restricted zone into the shared zone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import confine_file_access, connect, literal


@contextmanager
def restricted_to_shared(paths: Paths) -> Iterator[duckdb.DuckDBPyConnection]:
    """The build database, writable, with the restricted database attached read-only as ``raw``.

    Only the privacy step uses this: everything it writes to the build database is aggregated.
    Files outside the build and restricted folders are out of reach while it is open.
    """
    if not paths.raw_db.exists():
        raise FileNotFoundError(
            f"{paths.raw_db} does not exist yet: no file has been ingested. "
            "Drop provider files into sources/<provider>/inbox (or run `cs360 demo`) first."
        )
    con = connect(paths.build_db)
    try:
        con.execute(f"ATTACH {literal(paths.raw_db)} AS raw (READ_ONLY)")
        confine_file_access(con, [paths.build_dir, paths.raw_db.parent])
        yield con
    finally:
        con.close()


def raw_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'raw'"
    ).fetchall()
    return {r[0] for r in rows}
