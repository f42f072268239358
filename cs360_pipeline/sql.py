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


def connect(path: Path | None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a project database (or an in-memory one) with the settings every step shares."""
    if path is None:
        return duckdb.connect(":memory:", config={"threads": 2})
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config={"threads": 2})
    return con
