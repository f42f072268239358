"""Swap a finished release into ``warehouse.duckdb`` atomically.

DuckDB lets no process read a file while another writes it, so the release is written to a new
file beside the warehouse, checkpointed, closed and renamed over the old one. Readers that had the
old file open keep their snapshot; new readers get the new release; nobody sees a mix.
"""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass

import duckdb

from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, ident, literal

PUBLISHED_TABLES = (
    "metric_values",
    "metric_catalog",
    "privacy_report",
    "geography",
    "provider_status",
)
MARTS_SCHEMA = "marts"


@dataclass(frozen=True)
class Published:
    release_id: str
    rows: dict[str, int]


def publish(paths: Paths) -> Published:
    paths.ensure()
    staging = paths.data_dir / ".warehouse.next.duckdb"
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)
    rows = {}
    with closing(connect(staging)) as con:
        con.execute(f"ATTACH {literal(paths.build_db)} AS build (READ_ONLY)")
        for table in PUBLISHED_TABLES:
            source = f"build.{MARTS_SCHEMA}.{ident(table)}"
            con.execute(f"CREATE TABLE {ident(table)} AS SELECT * FROM {source}")
            rows[table] = con.execute(f"SELECT count(*) FROM {ident(table)}").fetchall()[0][0]
            _copy_comments(con, table)
        release_id = con.execute("SELECT max(release_id) FROM metric_values").fetchall()[0][0]
        con.execute("DETACH build")
        con.execute("CHECKPOINT")
    _fsync(staging)
    os.replace(staging, paths.warehouse_db)
    _fsync(paths.warehouse_db.parent)
    return Published(release_id=release_id, rows=rows)


def _copy_comments(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Carry dbt's table and column descriptions along, so any DuckDB client shows them."""
    table_comment = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = 'build' "
        "AND schema_name = ? AND table_name = ?",
        [MARTS_SCHEMA, table],
    ).fetchall()
    if table_comment and table_comment[0][0]:
        con.execute(f"COMMENT ON TABLE {ident(table)} IS {literal(table_comment[0][0])}")
    for column, comment in con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = 'build' "
        "AND schema_name = ? AND table_name = ? AND comment IS NOT NULL AND comment <> ''",
        [MARTS_SCHEMA, table],
    ).fetchall():
        con.execute(f"COMMENT ON COLUMN {ident(table)}.{ident(column)} IS {literal(comment)}")


def _fsync(path: os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
