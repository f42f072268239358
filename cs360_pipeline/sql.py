"""Quoting helpers: names and values from partner files never reach SQL unquoted."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb


def ident(name: str) -> str:
    """Quote an identifier (table or column name)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str | Path) -> str:
    """Quote a string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def literal_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]"


# The storage format of the files analysts open with other tools (the warehouse, the release
# log): DuckDB 1.0 and every later release reads it, the 1.5 command line among them, which
# refuses files in the 2.x default format.
ANALYST_STORAGE = "v1.0.0"


def connect(
    path: Path | None, *, read_only: bool = False, for_analysts: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open a project database (or an in-memory one) with the settings every step shares.

    ``for_analysts``: a new file is written in ``ANALYST_STORAGE`` format."""
    if path is None:
        return duckdb.connect(":memory:", config={"threads": 2})
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | int] = {"threads": 2}
    if for_analysts:
        config["storage_compatibility_version"] = ANALYST_STORAGE
    return duckdb.connect(str(path), read_only=read_only, config=config)


def table_exists(con: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None) -> bool:
    """Whether the connection's own database (or the attached ``catalog``) has this table."""
    where = "table_catalog = current_database()" if catalog is None else "table_catalog = ?"
    args = [table] if catalog is None else [table, catalog]
    return bool(
        con.execute(
            f"SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND {where}",
            args,
        ).fetchall()[0][0]
    )


def table_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows in one of the database's own tables; 0 where there is no such table yet."""
    if not table_exists(con, table):
        return 0
    return con.execute(f"SELECT count(*) FROM {ident(table)}").fetchall()[0][0]


def confine_file_access(con: duckdb.DuckDBPyConnection, folders: Iterable[Path]) -> None:
    """Let the database touch files only under ``folders``, for as long as it stays open.

    Defence in depth around the SQL expressions from provider files (which are also parsed and
    allow-listed when loaded): with external access off, DuckDB refuses every file, ``COPY`` and
    ``ATTACH`` outside these folders, and the setting cannot be switched back on. It holds for
    the database instance, so every connection to the same file shares it until all are closed.
    """
    wanted = sorted({str(Path(f).resolve()).rstrip("/") + "/" for f in folders})
    enabled = con.execute("SELECT current_setting('enable_external_access')").fetchall()[0][0]
    if enabled:
        con.execute(f"SET allowed_directories = {literal_list(wanted)}")
        con.execute("SET enable_external_access = false")
        return
    allowed = con.execute("SELECT current_setting('allowed_directories')").fetchall()[0][0]
    missing = [f for f in wanted if not any(f.startswith(a) for a in allowed or [])]
    if missing:
        raise RuntimeError(f"file access is already confined and excludes {', '.join(missing)}")
