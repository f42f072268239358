"""Every provider's protected cells as one relation, for the registry's providers only.

Each provider's cells step writes ``shared.cells_<provider>``; dbt reads one table,
``shared.cells``, so adding or removing ``sources/<provider>/provider.yml`` is all it takes to
bring a provider's cells into the metrics or take them out. No dbt file names a provider.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from cs360_pipeline.privacy.protection import CELLS_COLUMNS
from cs360_pipeline.sql import ident, literal

UNION = "shared.cells"


def _cells_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'shared' AND table_name LIKE 'cells\\_%' ESCAPE '\\'"
    ).fetchall()
    return {name for (name,) in rows}


def write_union(con: duckdb.DuckDBPyConnection, providers: Iterable[str]) -> dict[str, int]:
    """Replace ``shared.cells`` with the cells of ``providers``; returns cells per provider.

    A provider whose cells were never built (nothing delivered yet) contributes none. Tables
    of providers no longer in the registry are dropped, so a removed provider's cells cannot
    linger in a later release.
    """
    wanted = sorted(set(providers))
    existing = _cells_tables(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute("BEGIN")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {UNION} (provider VARCHAR NOT NULL, {CELLS_COLUMNS})")
        for provider in wanted:
            table = f"cells_{provider}"
            if table in existing:
                con.execute(
                    f"INSERT INTO {UNION} BY NAME SELECT {literal(provider)} AS provider, * "
                    f"FROM shared.{ident(table)}"
                )
        for table in sorted(existing - {f"cells_{p}" for p in wanted}):
            con.execute(f"DROP TABLE shared.{ident(table)}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    rows = con.execute(f"SELECT provider, count(*) FROM {UNION} GROUP BY provider").fetchall()
    counts = dict.fromkeys(wanted, 0)
    counts.update({provider: n for provider, n in rows})
    return counts
