"""The ingest ledger: one row per delivered file, whatever became of it."""

from __future__ import annotations

import duckdb

LEDGER_TABLE = "_ingest_ledger"
REJECTS_TABLE = "_rejects"

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

# Columns added after the first release: added in place to an existing ledger.
LEDGER_ADDED = {
    "rows_rejected": "BIGINT",  # rows of a loaded file kept in _rejects
    "revision_of": "VARCHAR",  # files whose months this file replaced
    "superseded_by": "VARCHAR",  # the later file that replaced this one's months
}

# Rows of loaded files that broke a rule: restricted zone, like the tables themselves.
REJECTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {REJECTS_TABLE} (
    file_name    VARCHAR NOT NULL,
    provider     VARCHAR NOT NULL,
    dataset      VARCHAR NOT NULL,
    sha256       VARCHAR NOT NULL,
    line         BIGINT,            -- CSV line (header = 1), sheet row, or Parquet row
    rule         VARCHAR NOT NULL,
    column_name  VARCHAR,
    value        VARCHAR,           -- sample of the offending value; identifiers withheld
    rejected_at  TIMESTAMPTZ NOT NULL
)
"""


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(LEDGER_DDL)
    for name, kind in LEDGER_ADDED.items():
        con.execute(f"ALTER TABLE {LEDGER_TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}")
    con.execute(REJECTS_DDL)


def contained_files(
    con: duckdb.DuckDBPyConnection, provider: str, dataset: str, first: object, last: object
) -> list[str]:
    """Loaded, not yet superseded files of a dataset whose months all lie in [first, last]."""
    rows = con.execute(
        f"SELECT file_name FROM {LEDGER_TABLE} WHERE provider = ? AND dataset = ? "
        "AND status = 'loaded' AND superseded_by IS NULL AND first_period >= ? "
        "AND last_period <= ? ORDER BY processed_at, file_name",
        [provider, dataset, first, last],
    ).fetchall()
    return [r[0] for r in rows]


def mark_superseded(
    con: duckdb.DuckDBPyConnection, provider: str, dataset: str, files: list[str], by: str
) -> None:
    con.execute(
        f"UPDATE {LEDGER_TABLE} SET superseded_by = ? WHERE provider = ? AND dataset = ? "
        "AND status = 'loaded' AND superseded_by IS NULL AND list_contains(?, file_name) "
        "AND file_name <> ?",
        [by, provider, dataset, files, by],
    )


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
