"""The ingest ledger: one row per delivered file, whatever became of it."""

from __future__ import annotations

import duckdb

LEDGER_TABLE = "_ingest_ledger"

LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    file_name     VARCHAR NOT NULL,
    provider      VARCHAR NOT NULL,
    dataset       VARCHAR NOT NULL,
    sha256        VARCHAR NOT NULL,
    size_bytes    BIGINT  NOT NULL,
    rows_read     BIGINT,
    rows_loaded   BIGINT,
    status        VARCHAR NOT NULL,   -- loaded | quarantined | duplicate
    reason        VARCHAR,
    stored_as     VARCHAR,
    first_period  DATE,
    last_period   DATE,
    processed_at  TIMESTAMPTZ NOT NULL
)
"""


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(LEDGER_DDL)


def already_loaded(con: duckdb.DuckDBPyConnection, sha256: str) -> str | None:
    """The name under which these exact bytes were loaded before, if they were."""
    row = con.execute(
        f"SELECT file_name FROM {LEDGER_TABLE} WHERE sha256 = ? AND status = 'loaded' LIMIT 1",
        [sha256],
    ).fetchall()
    return row[0][0] if row else None


def record(con: duckdb.DuckDBPyConnection, **entry: object) -> None:
    columns = list(entry)
    placeholders = ", ".join("?" for _ in columns)
    con.execute(
        f"INSERT INTO {LEDGER_TABLE} ({', '.join(columns)}, processed_at) "
        f"VALUES ({placeholders}, now())",
        list(entry.values()),
    )
