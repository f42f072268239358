"""The ingest ledger: one row per delivered file, whatever became of it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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
    "revision_of": "VARCHAR",  # files whose rows this file replaced
    "superseded_by": "VARCHAR",  # name of the later file that replaced this one
    "delivery_id": "VARCHAR",  # this row's own id (one delivered file, one id)
    "superseded_by_id": "VARCHAR",  # delivery_id of the file that replaced this one
    "inbox_identity": "VARCHAR",  # dev:inode:size:mtime_ns of the inbox file when taken
    "snapshot": "VARCHAR",  # the copy in .work/ that was loaded and then moved to stored_as
    # months (YYYY-MM, comma separated) a still current file no longer provides: later files
    # delivered them again and their rows replaced this file's rows of those months
    "replaced_months": "VARCHAR",
    # the latest date (city local) of the period column among the file's loaded rows: how far
    # its last month is covered, so a month delivered through the 5th is known to be partial
    "data_through": "DATE",
    # digest of the dataset's contract the file's rows were read under (loader.contract_digest)
    "contract_sha256": "VARCHAR",
    # when cs360 reingest last read the file again through the contract (processed_at stays
    # the time it was delivered)
    "reingested_at": "TIMESTAMPTZ",
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
    _name_older_rows(con)
    _chain_same_name_files(con)


def _name_older_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Rows written before rows had ids get one derived from what they record."""
    con.execute(
        f"UPDATE {LEDGER_TABLE} SET delivery_id = left(md5(concat_ws('/', provider, dataset, "
        "file_name, sha256, status, CAST(processed_at AS VARCHAR))), 16) "
        "WHERE delivery_id IS NULL"
    )


def _chain_same_name_files(con: duckdb.DuckDBPyConnection) -> None:
    """Older ledgers left every version of a re-sent name current; the latest one wins."""
    con.execute(
        f"""
        UPDATE {LEDGER_TABLE} AS l SET superseded_by = n.next_name, superseded_by_id = n.next_id
        FROM (
            SELECT delivery_id,
                   lead(delivery_id) OVER w AS next_id, lead(file_name) OVER w AS next_name
            FROM {LEDGER_TABLE} WHERE status = 'loaded' AND superseded_by IS NULL
            WINDOW w AS (PARTITION BY provider, dataset, file_name
                         ORDER BY processed_at, delivery_id)
        ) AS n
        WHERE l.delivery_id = n.delivery_id AND n.next_id IS NOT NULL
        """
    )


CURRENT = "status = 'loaded' AND superseded_by IS NULL"


def current_files(
    con: duckdb.DuckDBPyConnection, provider: str, dataset: str
) -> list[tuple[str, str, str]]:
    """(delivery_id, file_name, sha256) of the dataset's current files: loaded, not replaced."""
    return con.execute(
        f"SELECT delivery_id, file_name, sha256 FROM {LEDGER_TABLE} "
        f"WHERE provider = ? AND dataset = ? AND {CURRENT} ORDER BY processed_at, file_name",
        [provider, dataset],
    ).fetchall()


def periods_overlap(con: duckdb.DuckDBPyConnection, provider: str, dataset: str) -> bool:
    """Whether two current files of a dataset span overlapping months (from the ledger alone).

    Only then can a month have rows from two files, so the raw table need not be read otherwise.
    """
    return bool(
        con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {LEDGER_TABLE} a JOIN {LEDGER_TABLE} b "
            "ON a.delivery_id < b.delivery_id AND a.first_period <= b.last_period "
            "AND b.first_period <= a.last_period "
            "WHERE a.provider = ? AND a.dataset = ? AND b.provider = a.provider "
            "AND b.dataset = a.dataset AND a.status = 'loaded' AND a.superseded_by IS NULL "
            "AND b.status = 'loaded' AND b.superseded_by IS NULL LIMIT 1)",
            [provider, dataset],
        ).fetchall()[0][0]
    )


def mark_superseded(
    con: duckdb.DuckDBPyConnection, delivery_ids: list[str], by_id: str, by_name: str
) -> None:
    """Close the earlier files' links in the chain: each now points at the file replacing it."""
    con.execute(
        f"UPDATE {LEDGER_TABLE} SET superseded_by = ?, superseded_by_id = ? "
        f"WHERE {CURRENT} AND list_contains(?, delivery_id)",
        [by_name, by_id, delivery_ids],
    )


def mark_months_replaced(
    con: duckdb.DuckDBPyConnection, delivery_id: str, months: list[str]
) -> None:
    """Note months a current file no longer provides; it stays current for the rest of them.

    The months add to those replaced before, so the row always tells which of the file's months
    still come from it: a partly replaced file is still an input of every release.
    """
    con.execute(
        f"UPDATE {LEDGER_TABLE} SET replaced_months = array_to_string(list_sort(list_distinct("
        "list_concat(coalesce(string_split(replaced_months, ', '), []), ?))), ', ') "
        f"WHERE {CURRENT} AND delivery_id = ?",
        [months, delivery_id],
    )


def current_copy(
    con: duckdb.DuckDBPyConnection, provider: str, dataset: str, sha256: str
) -> str | None:
    """The name of the dataset's current file with exactly these bytes, if there is one.

    Bytes loaded once but replaced since, whole or some of their months, are no duplicate:
    sending them again restores them, as the latest delivery of each of their months.
    """
    row = con.execute(
        f"SELECT file_name FROM {LEDGER_TABLE} WHERE provider = ? AND dataset = ? "
        f"AND sha256 = ? AND {CURRENT} AND replaced_months IS NULL "
        "ORDER BY processed_at LIMIT 1",
        [provider, dataset, sha256],
    ).fetchall()
    return row[0][0] if row else None


@dataclass(frozen=True)
class Committed:
    """What a committed ledger row says about where a delivered file's bytes belong."""

    delivery_id: str
    file_name: str
    status: str
    reason: str | None
    stored_as: str
    snapshot: str | None


def _committed(rows: list[tuple]) -> Committed | None:
    return Committed(*rows[0]) if rows else None


COMMITTED_COLUMNS = "delivery_id, file_name, status, reason, stored_as, snapshot"


def committed_delivery(
    con: duckdb.DuckDBPyConnection, provider: str, delivery_id: str
) -> Committed | None:
    """The ledger row of a snapshot found in ``.work/``, if its run got as far as the commit."""
    return _committed(
        con.execute(
            f"SELECT {COMMITTED_COLUMNS} FROM {LEDGER_TABLE} "
            "WHERE provider = ? AND delivery_id = ? AND stored_as IS NOT NULL",
            [provider, delivery_id],
        ).fetchall()
    )


def committed_inbox_file(
    con: duckdb.DuckDBPyConnection, provider: str, file_name: str, identity: str
) -> Committed | None:
    """The ledger row of an inbox file that was taken already (same name, same identity)."""
    return _committed(
        con.execute(
            f"SELECT {COMMITTED_COLUMNS} FROM {LEDGER_TABLE} WHERE provider = ? "
            "AND file_name = ? AND inbox_identity = ? AND stored_as IS NOT NULL "
            "ORDER BY processed_at DESC LIMIT 1",
            [provider, file_name, identity],
        ).fetchall()
    )


def record(con: duckdb.DuckDBPyConnection, **entry: object) -> None:
    """One ledger row; ``processed_at`` is now unless the entry carries it (a replayed file)."""
    entry = {"processed_at": None, **entry}
    columns = list(entry)
    placeholders = ", ".join("coalesce(?, now())" if c == "processed_at" else "?" for c in columns)
    con.execute(
        f"INSERT INTO {LEDGER_TABLE} ({', '.join(columns)}) VALUES ({placeholders})",
        list(entry.values()),
    )


# Rows whose bytes are in the archive: loaded (current or replaced since), duplicates, and files
# a re-ingest refused (their bytes never left the archive).
ARCHIVED = (
    "(status IN ('loaded', 'duplicate') OR (status = 'quarantined' AND reingested_at IS NOT NULL))"
)


@dataclass(frozen=True)
class Archived:
    """One archived delivery, as its ledger row records it."""

    dataset: str
    file_name: str
    sha256: str
    delivered_at: dt.datetime


def archived_files(
    con: duckdb.DuckDBPyConnection, provider: str, datasets: list[str]
) -> list[Archived]:
    """The provider's archived deliveries of these datasets, in the order they were delivered."""
    rows = con.execute(
        f"SELECT dataset, file_name, sha256, processed_at FROM {LEDGER_TABLE} "
        f"WHERE provider = ? AND list_contains(?, dataset) AND {ARCHIVED} "
        "ORDER BY processed_at, file_name, delivery_id",
        [provider, datasets],
    ).fetchall()
    return [Archived(*row) for row in rows]


def forget_archived(con: duckdb.DuckDBPyConnection, provider: str, datasets: list[str]) -> None:
    """Delete the rows of archived deliveries and their rejects, for a replay to write anew."""
    for table, where in ((LEDGER_TABLE, f" AND {ARCHIVED}"), (REJECTS_TABLE, "")):
        con.execute(
            f"DELETE FROM {table} WHERE provider = ? AND list_contains(?, dataset){where}",
            [provider, datasets],
        )
