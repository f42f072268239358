"""Decide which cells each audience sees: the privacy step between restricted and shared zones.

Per provider, per measure, per audience:

1. the measure's true cells go to a temporary table (never stored);
2. the audience's table design picks the cells it holds at all (``policy.yml`` audiences);
3. ``complementary.protect`` suppresses the small cells and enough complements that none can be
   derived, keeping the cells the previous release hid (sticky) and the cells a wider audience
   hid (audiences are listed widest first: the PST also reads what the public reads, so the
   public tables may show no cell the PST tables hide), audited together with the releases
   still public;
4. ``shared.cells_<provider>`` gets the cells with suppressed counts and values set to NULL and
   a ``suppressed`` flag only (which cells are primary is itself a hint, so it stays behind);
5. the true counts and the pattern go to the restricted vault for the next release and for the
   independent audit before publication.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.audit import Publication
from cs360_pipeline.privacy.cells import CellBuilder
from cs360_pipeline.privacy.complementary import SuppressionResult, protect
from cs360_pipeline.privacy.lattice import (
    GEO_LEVELS,
    KEY_COLUMNS,
    PERIOD_LEVELS,
    Lattice,
    breakdown_parts,
)
from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.registry import Provider
from cs360_pipeline.sql import ident, literal

CELLS_COLUMNS = """
    audience       VARCHAR NOT NULL,
    measure_id     VARCHAR NOT NULL,
    period_level   VARCHAR NOT NULL,
    period_start   DATE    NOT NULL,
    geo_level      VARCHAR NOT NULL,
    geo_code       VARCHAR NOT NULL,
    breakdown      VARCHAR NOT NULL,
    n              BIGINT,          -- NULL when suppressed
    value          DOUBLE,          -- NULL when suppressed
    suppressed     BOOLEAN NOT NULL,
    min_cell_size  INTEGER NOT NULL
"""


class PrivacyError(RuntimeError):
    """No safe pattern was found: nothing of this provider may be published."""


@dataclass(frozen=True)
class ProtectedMeasure:
    """What protection did to one measure for one audience (counts only, safe to log)."""

    measure_id: str
    audience: str
    cells: int
    primary: int
    secondary: int
    forced: int
    suppressed: int
    min_cell_size: int
    seconds: float
    levels_left_out: tuple[str, ...] = ()
    unlocated_rows: int = 0

    @property
    def rate(self) -> float:
        return self.suppressed / self.cells if self.cells else 0.0

    def line(self) -> str:
        return (
            f"{self.measure_id} [{self.audience}]: {self.cells:,} cells, {self.suppressed:,} "
            f"suppressed ({self.rate:.1%}: {self.primary:,} small, {self.secondary:,} "
            f"complementary, {self.forced:,} forced by the previous release or a wider audience), "
            f"k={self.min_cell_size}, {self.seconds:.1f} s"
            + (
                f"; left out as too sparse: {', '.join(self.levels_left_out)}"
                if self.levels_left_out
                else ""
            )
        )


def geo_parents(con: duckdb.DuckDBPyConnection, city_code: str) -> dict[str, str]:
    """Beat -> district -> city from the beat map (codes are unique across levels)."""
    rows = con.execute("SELECT beat, district FROM raw.city__beats").fetchall()
    parents = {beat: district for beat, district in rows}
    parents.update({district: city_code for _, district in rows})
    return parents


Level = tuple[str, str, frozenset[str]]


def level_of(row: tuple) -> Level:
    """(geo level, period level, breakdown dimensions) of a cell row keyed like the lattice."""
    return row[2], row[0], frozenset(dim for dim, _ in breakdown_parts(row[4]))


def level_label(level: Level) -> tuple[str, ...]:
    geo, period, dims = level
    return (f"{geo}/{period}", *(f"by {d}" for d in sorted(dims)))


def _finer_or_equal(a: Level, b: Level) -> bool:
    return (
        GEO_LEVELS.index(a[0]) <= GEO_LEVELS.index(b[0])
        and PERIOD_LEVELS.index(a[1]) <= PERIOD_LEVELS.index(b[1])
        and a[2] >= b[2]
    )


def sparse_levels(rows: list[tuple], k: int, max_small_share: float) -> set[Level]:
    """Levels left out of a table: those whose non-zero cells are mostly below k, and every
    level finer than one of them.

    Leaving out whole levels, closed downwards, keeps every remaining cell's parents in the
    table, so no sum runs through a missing cell and the lattice's equations stay complete. The
    coarsest total (the city by year) always stays, suppressed if it must be, so every measure
    says at least that much about itself.
    """
    small: dict[Level, int] = {}
    nonzero: dict[Level, int] = {}
    for row in rows:
        level, n = level_of(row), row[5]
        small[level] = small.get(level, 0) + int(0 < n < k)
        nonzero[level] = nonzero.get(level, 0) + int(n > 0)
    top = max(
        (lv for lv in small if not lv[2]),
        key=lambda lv: (GEO_LEVELS.index(lv[0]), PERIOD_LEVELS.index(lv[1])),
        default=None,
    )
    sparse = {
        lv
        for lv in small
        if lv != top and nonzero[lv] and small[lv] / nonzero[lv] > max_small_share
    }
    return {lv for lv in small if any(_finer_or_equal(lv, s) for s in sparse)}


def _kinds(result: SuppressionResult) -> list[str]:
    kinds = np.full(result.lattice.size, "published", dtype=object)
    kinds[result.secondary] = "secondary"
    kinds[result.suppressed & result.forced] = "forced"
    kinds[result.primary] = "primary"
    return kinds.tolist()


class Protector:
    """Protects one provider's measures for every audience; see the module docstring."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        policy: Policy,
        metrics_using: Mapping[str, tuple[str, ...]],
        log: Callable[[str], None] = print,
    ) -> None:
        self.con = con
        self.policy = policy
        self.metrics_using = metrics_using
        self.log = log
        self.builder = CellBuilder(con, policy)
        self.parents = geo_parents(con, policy.tables.city.code)

    def _protect(
        self, provider: Provider, measure_id: str, audience: str, hidden_wider: list
    ) -> tuple[ProtectedMeasure, list]:
        start = time.perf_counter()
        shows = self.policy.audiences[audience].shows_sql()
        rule = self.policy.rule(provider.provider, audience, self.metrics_using.get(measure_id, ()))
        rows = self.con.execute(
            f"SELECT {', '.join(KEY_COLUMNS)}, n FROM _true_cells WHERE {shows}"
        ).fetchall()
        dropped = sparse_levels(rows, rule.min_cell_size, rule.max_small_share)
        rows = [r for r in rows if level_of(r) not in dropped]
        lattice = Lattice.build((r[:5] for r in rows), (r[5] for r in rows), self.parents)
        past = vault.past_releases(
            self.con, audience, measure_id, self.parents, self.policy.history.releases_public
        )
        history = [
            Publication(p.lattice, p.suppressed, p.min_cell_size, p.release_id, insider=p.insider)
            for p in past
        ]
        sticky = (
            [past[0].lattice.keys[i] for i in np.flatnonzero(past[0].suppressed)] if past else []
        )
        forced = sticky + hidden_wider
        result = protect(
            lattice,
            rule.min_cell_size,
            forced=forced,
            history=history,
            name=vault.CANDIDATE,
            insider=rule.insider,
        )
        if not result.audit.passed:
            raise PrivacyError(
                f"{measure_id} [{audience}]: no safe suppression pattern was found, so nothing "
                f"of it is published.\n{result.audit.text()}"
            )
        self._write(measure_id, audience, result)
        vault.save_candidate(
            self.con,
            audience,
            measure_id,
            lattice,
            result.suppressed,
            _kinds(result),
            rule.min_cell_size,
            rule.insider,
        )
        hidden = [lattice.keys[i] for i in np.flatnonzero(result.suppressed)]
        return ProtectedMeasure(
            measure_id=measure_id,
            audience=audience,
            cells=lattice.size,
            primary=int(result.primary.sum()),
            secondary=int(result.secondary.sum()),
            forced=int((result.forced & result.suppressed).sum()),
            suppressed=int(result.suppressed.sum()),
            min_cell_size=rule.min_cell_size,
            seconds=time.perf_counter() - start,
            levels_left_out=tuple(sorted(" ".join(level_label(lv)) for lv in dropped)),
        ), hidden

    def _write(self, measure_id: str, audience: str, result: SuppressionResult) -> None:
        pattern = pa.table(
            {
                **vault.key_arrays(result.lattice),
                "suppressed": pa.array(result.suppressed, pa.bool_()),
            }
        )
        self.con.register("_pattern", pattern)
        try:
            self.con.execute(
                f"""
                INSERT INTO _protected
                SELECT {literal(audience)}, t.measure_id, t.period_level, t.period_start,
                       t.geo_level, t.geo_code, t.breakdown,
                       CASE WHEN p.suppressed THEN NULL ELSE t.n END,
                       CASE WHEN p.suppressed THEN NULL ELSE t.value END,
                       p.suppressed, {result.k}
                FROM _true_cells AS t
                JOIN _pattern AS p
                  ON p.period_level = t.period_level
                 AND p.period_start = CAST(t.period_start AS VARCHAR)
                 AND p.geo_level = t.geo_level AND p.geo_code = t.geo_code
                 AND p.breakdown = t.breakdown
                """
            )
        finally:
            self.con.unregister("_pattern")

    def build_provider(self, provider: Provider, available: set[str]) -> list[ProtectedMeasure]:
        """Replace ``shared.cells_<provider>`` with every delivered measure's protected cells.

        Measures whose dataset has never been delivered get no cells; downstream they show as
        missing rather than as zeros.
        """
        delivered = [
            name
            for name, m in provider.measures.items()
            if provider.table(m.dataset) in available
            and self.builder.crosswalk_ready(provider, m, available)
        ]
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _protected ({CELLS_COLUMNS})")
        out = []
        for name in delivered:
            measure_id = provider.measure_id(name)
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE _true_cells AS "
                + self.builder.true_cells(provider, name)
            )
            unlocated = self.builder.unlocated_rows(provider, name)
            hidden: list = []
            for audience in self.policy.audiences:
                done, shown_hidden = self._protect(provider, measure_id, audience, hidden)
                hidden += shown_hidden
                done = ProtectedMeasure(**{**done.__dict__, "unlocated_rows": unlocated})
                self.log(done.line())
                out.append(done)
        self.con.execute("DROP TABLE IF EXISTS _true_cells")
        vault.drop_candidates(
            self.con,
            [provider.measure_id(n) for n in provider.measures if n not in delivered],
        )
        target = f"shared.{ident('cells_' + provider.provider)}"
        self.con.execute("CREATE SCHEMA IF NOT EXISTS shared")
        self.con.execute(f"CREATE OR REPLACE TABLE {target} ({CELLS_COLUMNS})")
        self.con.execute(f"INSERT INTO {target} SELECT * FROM _protected ORDER BY ALL")
        self.con.execute("DROP TABLE _protected")
        return out
