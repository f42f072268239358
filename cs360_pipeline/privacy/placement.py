"""How many rows of each measure found a beat: ``shared.placement``, written by the cells step.

A row placed in no beat (a beat code the map does not know, a tract the crosswalk lacks, a point
outside every beat polygon or without usable coordinates) is counted in no cell, so the city
total of a measure is short by exactly that many rows. That number is an aggregate over the
whole city and every period; it goes to the shared zone so the refresh, ``cs360 status`` and
the published privacy report can say it. Only ``rows_unplaced`` is published (and only when it
is 0 or not small): ``rows`` and ``rows_placed`` would, together with published cells, let a
reader work out the sum of suppressed city cells.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cs360_pipeline.registry import Provider
from cs360_pipeline.sql import connect, ident

TABLE = "shared.placement"
COLUMNS = (
    "provider VARCHAR NOT NULL, dataset VARCHAR NOT NULL, measure_id VARCHAR NOT NULL, "
    "placed_by VARCHAR NOT NULL, rows BIGINT NOT NULL, rows_placed BIGINT NOT NULL, "
    "rows_unplaced BIGINT NOT NULL"
)


@dataclass(frozen=True)
class Placement:
    provider: str
    dataset: str
    measure_id: str
    placed_by: str  # beat | crosswalk | points
    rows: int
    rows_unplaced: int

    @property
    def rows_placed(self) -> int:
        return self.rows - self.rows_unplaced

    def line(self) -> str:
        return (
            f"{self.measure_id} ({self.provider}/{self.dataset}, by {self.placed_by}): "
            f"{self.rows_unplaced:,} of {self.rows:,} rows placed in no beat"
        )


def placed_by(provider: Provider, dataset: str) -> str:
    geo = provider.datasets[dataset].geography
    if geo is None:
        return "none"
    if geo.points is not None:
        return "points"
    return "crosswalk" if geo.crosswalk is not None else "beat"


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """The table exists (empty) even before any provider's cells are built: dbt reads it."""
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({COLUMNS})")


def measure_rows(con: duckdb.DuckDBPyConnection, provider: Provider, name: str) -> int:
    """Rows of the restricted table a measure counts from (its ``where``), placed or not."""
    measure = provider.measures[name]
    where = f"WHERE ({measure.where})" if measure.where else ""
    table = ident(provider.table(measure.dataset))
    return con.execute(f"SELECT count(*) FROM raw.{table} {where}").fetchall()[0][0]


def write(
    con: duckdb.DuckDBPyConnection, provider: Provider, unplaced: dict[str, int]
) -> list[Placement]:
    """Replace the provider's rows: one per measure built (``unplaced``: measure id -> rows)."""
    names = {provider.measure_id(n): n for n in provider.measures}
    found = []
    for measure_id in sorted(unplaced):
        name = names[measure_id]
        dataset = provider.measures[name].dataset
        found.append(
            Placement(
                provider.provider,
                dataset,
                measure_id,
                placed_by(provider, dataset),
                measure_rows(con, provider, name),
                unplaced[measure_id],
            )
        )
    ensure_table(con)
    con.execute("BEGIN")
    try:
        con.execute(f"DELETE FROM {TABLE} WHERE provider = ?", [provider.provider])
        if found:
            con.executemany(
                f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (p.provider, p.dataset, p.measure_id, p.placed_by, p.rows, p.rows_placed,
                     p.rows_unplaced)
                    for p in found
                ],
            )  # fmt: skip
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return found


def summary(build_db: Path) -> str | None:
    """One line for the end of a refresh: the measures with rows placed in no beat."""
    if not build_db.exists():
        return None
    with closing(connect(build_db, read_only=True)) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'shared' AND table_name = 'placement'"
        ).fetchall()[0][0]
        if not exists:
            return None
        rows = con.execute(
            f"SELECT provider, dataset, measure_id, placed_by, rows, rows_unplaced FROM {TABLE} "
            "ORDER BY provider, measure_id"
        ).fetchall()
    if not rows:
        return None
    short = [Placement(*r) for r in rows if r[5]]
    if not short:
        return f"Placed in no beat: no row ({len(rows)} measures, every row has a beat)."
    total = sum(p.rows_unplaced for p in short)
    return (
        f"Placed in no beat (counted in no cell): {total:,} rows over {len(short)} measure(s): "
        + "; ".join(p.line() for p in short)
        + "."
    )
