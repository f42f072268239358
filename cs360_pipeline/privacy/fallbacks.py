"""Measures not protected the usual way in this build: ``shared.protection_fallbacks``.

When no safe pattern keeps the previous release's hidden cells, or none shows any of a measure
at all (``protection.choose_pattern``), the cells step records which measure and audience, and
why. The privacy report publishes it beside the share hidden, and the refresh ends with it, so
a reader who finds a measure all hidden learns that it was withheld on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import duckdb

from cs360_pipeline.sql import connect, table_exists

TABLE = "shared.protection_fallbacks"
COLUMNS = (
    "provider VARCHAR NOT NULL, audience VARCHAR NOT NULL, measure_id VARCHAR NOT NULL, "
    "fallback VARCHAR NOT NULL"
)


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """The table exists (empty) before any provider's cells are built: dbt reads it."""
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({COLUMNS})")


def write(
    con: duckdb.DuckDBPyConnection, provider: str, found: Iterable[tuple[str, str, str]]
) -> None:
    """Replace the provider's rows with ``(audience, measure id, fallback)`` triples."""
    rows = [(provider, *row) for row in found]
    ensure_table(con)
    con.execute("BEGIN")
    try:
        con.execute(f"DELETE FROM {TABLE} WHERE provider = ?", [provider])
        if rows:
            con.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?)", rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def summary(build_db: Path) -> str | None:
    """One warning line for the end of a refresh, or None when every measure was protected the
    usual way."""
    if not build_db.exists():
        return None
    with closing(connect(build_db, read_only=True)) as con:
        if not table_exists(con, "protection_fallbacks"):
            return None
        rows = con.execute(
            f"SELECT measure_id, audience, fallback FROM {TABLE} ORDER BY ALL"
        ).fetchall()
    if not rows:
        return None
    return "WARNING: not protected the usual way: " + "; ".join(
        f"{measure} [{audience}]: {fallback}" for measure, audience, fallback in rows
    )
