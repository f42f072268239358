"""The delivery ledger outside the restricted zone: ``shared.deliveries`` (``write_deliveries``)
and a file readers open while a refresh runs, ``data/deliveries.parquet`` (``write_snapshot``).

The build database is written throughout a refresh, and DuckDB lets nobody open a file another
process writes, so ``cs360 status --files`` reads this copy instead. It is written beside and
renamed over the old one, so a reader sees the last complete ledger, never a half-written one.
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

from cs360_pipeline.privacy.zones import restricted_to_shared
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, literal

FILE_NAME = "deliveries.parquet"


def snapshot_path(paths: Paths) -> Path:
    return paths.data_dir / FILE_NAME


def write_snapshot(paths: Paths) -> Path:
    """Copy ``shared.deliveries`` (metadata about files, never rows) out of the build database."""
    target = snapshot_path(paths)
    scratch = target.with_name(f".{target.name}.next")
    with closing(connect(paths.build_db, read_only=True)) as con:
        con.execute(
            f"COPY (SELECT * FROM shared.deliveries ORDER BY processed_at, file_name) "
            f"TO {literal(scratch)} (FORMAT parquet)"
        )
    os.replace(scratch, target)
    return target


def write_deliveries(paths: Paths) -> int:
    """Copy the ingest ledger (delivery metadata, not row level) to the shared zone.

    A loaded file's ``_loaded_at`` is the stamp its rows carry in the restricted tables: the
    loader inserts the rows and records the file in one transaction, so the ledger's
    ``processed_at`` is that same instant. It is kept as a UTC timestamp for dbt's source
    freshness, which reads it as the time of each dataset's latest delivery. Where the bytes lie
    on the restricted server (``stored_as``, ``snapshot``) and the inbox file's identity stay
    in the restricted ledger.
    """
    with restricted_to_shared(paths) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS shared")
        con.execute(
            """
            CREATE OR REPLACE TABLE shared.deliveries AS
            SELECT * EXCLUDE (stored_as, snapshot, inbox_identity),
                   CASE WHEN status = 'loaded'
                        THEN CAST(timezone('UTC', processed_at) AS TIMESTAMP) END AS _loaded_at
            FROM raw._ingest_ledger ORDER BY processed_at, file_name
            """
        )
        return con.execute("SELECT count(*) FROM shared.deliveries").fetchall()[0][0]
