"""Check a DuckDB table against a contract where it lies, and say what broke in words.

A breach names the table, the column and the rule, and how many rows break it: never a value
from a row, since the rows may be the very cells the contract keeps from being published.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    import ibis
    import pandera.ibis as pa

# A contract is built against the open database, since rules may read other tables of it.
Contract = Callable[["ibis.BaseBackend"], "pa.DataFrameSchema"]


def preload() -> None:
    """Import pandera's ibis backend on a daemon thread (~1-2 s): the run's first steps wait on
    DuckDB, not on Python, and the first contract is checked only after the cells are built."""
    threading.Thread(target=importlib.import_module, args=("pandera.ibis",), daemon=True).start()


@dataclass(frozen=True)
class Breach:
    table: str
    column: str | None
    rule: str
    rows: int | None  # None: a rule about the table's shape, not its rows

    def line(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        count = "" if self.rows is None else f" ({self.rows:,} row{'s' * (self.rows != 1)})"
        return f"{where}: {self.rule}{count}"


def check_table(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, contract: Contract
) -> list[Breach]:
    """Every rule of ``contract`` that ``schema.table`` breaks; empty when it keeps them all."""
    import ibis
    import pandera.ibis as pa
    from pandera.config import ValidationDepth, config_context

    backend = ibis.duckdb.from_connection(con)
    with warnings.catch_warnings():
        # ibis 12 on DuckDB 2 and pandas 3 warns of calls it makes itself: noise for a reader
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ibis")
        warnings.filterwarnings("ignore", message=".*infer_string.*")
        relation = backend.table(table, database=schema)
        # pandera 0.35's ibis backend fails every data rule of an empty table (an aggregate over
        # no rows is NULL): an empty table is held to its columns and their types only.
        empty = int(relation.count().execute()) == 0
        depth = ValidationDepth.SCHEMA_ONLY if empty else ValidationDepth.SCHEMA_AND_DATA
        try:
            with config_context(validation_depth=depth):
                contract(backend).validate(relation, lazy=True)
        except pa.errors.SchemaErrors as errors:
            return [_breach(table, error) for error in errors.schema_errors]
    return []


def _breach(table: str, error: Any) -> Breach:
    """One pandera error in words: its column (for a column's rule), its rule, its row count."""
    import pandera.ibis as pa

    reason = error.reason_code.name if error.reason_code is not None else ""
    check = error.check
    rule = str(getattr(check, "error", None) or getattr(check, "name", None) or check or "")
    cases = error.failure_cases
    column = error.schema.name if isinstance(error.schema, pa.Column) else None
    if reason in _SHAPE:
        # failure_cases names the column (one of ours, not a value from a row)
        return Breach(table, str(cases), _SHAPE[reason], None)
    if reason == "SERIES_CONTAINS_NULLS":
        rule = "may not be NULL"
    elif reason == "WRONG_DATATYPE":
        return Breach(table, column, f"is not of the type {error.schema.dtype}", None)
    elif reason == "CHECK_ERROR":
        return Breach(table, column, f"{rule}: the rule could not be evaluated", None)
    elif reason == "DUPLICATES":
        rule = "rows share a key that must be unique"
    return Breach(table, column, rule or reason.lower(), _rows(cases))


def _rows(cases: Any) -> int | None:
    """How many rows a rule's failure cases hold: a table (ibis or pandas), else unknown."""
    import ibis

    if isinstance(cases, ibis.Table):
        return int(cases.count().execute())
    return len(cases) if hasattr(cases, "__len__") and not isinstance(cases, str) else None


_SHAPE = {
    "COLUMN_NOT_IN_SCHEMA": "a column the contract does not allow",
    "COLUMN_NOT_IN_DATAFRAME": "a column the contract requires is missing",
}
