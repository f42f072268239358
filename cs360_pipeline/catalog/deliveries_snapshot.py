"""The delivery ledger as a file readers open while a refresh runs: ``data/deliveries.parquet``.

The build database is written throughout a refresh, and DuckDB lets nobody open a file another
process writes, so ``cs360 status --files`` reads this copy instead. It is written beside and
renamed over the old one, so a reader sees the last complete ledger, never a half-written one.
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

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
