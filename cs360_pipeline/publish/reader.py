"""Open the published warehouse as it is now, for analysts and for the steps that read it.

A refresh swaps a new ``warehouse.duckdb`` in by renaming it over the old file. DuckDB's Python
client keeps one database instance per path for as long as any connection to that path is open
in the process, so ``duckdb.connect(path, read_only=True)`` hands back the instance on the old,
already replaced file: a notebook or a long-running process that still holds one connection
keeps reading the previous release through every new ``connect`` as well.

``open_warehouse`` sidesteps that cache: it opens a private in-memory database and ATTACHes the
file read-only, which opens the file afresh every time. The connection sees the release that is
in place at the moment of the call; connections opened earlier keep their own release, unharmed.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cs360_pipeline.deployment import Deployment
from cs360_pipeline.sql import connect, literal

CATALOG = "warehouse"


def open_warehouse(path: Path | str | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the release published at the time of the call.

    ``path`` defaults to the deployment's ``warehouse.duckdb`` (``CS360_DATA_DIR``). The file is
    attached as ``warehouse`` and made the default catalog, so ``SELECT * FROM metric_values``
    works as with a direct connection. ``CREATE TEMP TABLE`` and ``CREATE TEMP VIEW`` work for
    an analysis; the release itself cannot be changed. Close the connection when done: it keeps
    the file it opened (and so its release) until then.
    """
    target = Path(path) if path is not None else Deployment.from_settings().paths.warehouse_db
    if not target.is_file():
        raise FileNotFoundError(f"no published warehouse at {target}")
    con = connect(None)  # a new in-memory database of its own, never a cached one
    try:
        con.execute(f"ATTACH {literal(target)} AS {CATALOG} (READ_ONLY)")
        con.execute(f"USE {CATALOG}")
    except BaseException:
        con.close()
        raise
    return con
