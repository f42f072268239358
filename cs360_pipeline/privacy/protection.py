"""Decide which cells each audience sees: the privacy step between restricted and shared zones.

Per provider, per audience, per measure:

1. the provider's true cells go to a temporary table (never stored);
2. the audience's table design picks the cells it holds at all (``policy.yml`` audiences), and
   ``levels.py`` leaves out the levels too sparse to show;
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
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pyarrow as pa

from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.cells import CellBuilder
from cs360_pipeline.privacy.complementary import SuppressionResult, protect
from cs360_pipeline.privacy.lattice import KEY_COLUMNS, PIECE, Lattice
from cs360_pipeline.privacy.levels import Level, level_label, level_of, levels_left_out
from cs360_pipeline.privacy.policy import Policy, Rule
from cs360_pipeline.registry import Provider
from cs360_pipeline.sql import ident, literal

CELL_KEY_COLUMNS = """
    measure_id     VARCHAR NOT NULL,
    period_level   VARCHAR NOT NULL,
    period_start   DATE    NOT NULL,
    geo_level      VARCHAR NOT NULL,
    geo_code       VARCHAR NOT NULL,
    breakdown      VARCHAR NOT NULL,"""

TRUE_CELLS_COLUMNS = f"""{CELL_KEY_COLUMNS}
    n              BIGINT  NOT NULL,
    value          DOUBLE
"""

CELLS_COLUMNS = f"""
    audience       VARCHAR NOT NULL,{CELL_KEY_COLUMNS}
    n              BIGINT,          -- NULL when suppressed
    value          DOUBLE,          -- NULL when suppressed
    suppressed     BOOLEAN NOT NULL,
    min_cell_size  INTEGER NOT NULL
"""


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
    fallback: str = ""  # why the usual pattern was not used (see ``choose_pattern``)
    pieces: int = 0  # zone pieces: hidden cells of the table that are never shown
    small_pieces: int = 0

    @property
    def rate(self) -> float:
        return self.suppressed / self.cells if self.cells else 0.0

    def line(self) -> str:
        return (
            f"{self.measure_id} [{self.audience}]: {self.cells:,} cells, {self.suppressed:,} "
            f"suppressed ({self.rate:.1%}: {self.primary:,} small, {self.secondary:,} "
            f"complementary, {self.forced:,} forced by the previous release or a wider audience), "
            f"k={self.min_cell_size}, {self.seconds:.1f} s"
            + (f"; {self.fallback}" if self.fallback else "")
            + (
                f"; zones cut districts into {self.pieces:,} pieces, never shown "
                f"({self.small_pieces:,} small, protected like small cells)"
                if self.pieces
                else ""
            )
            + (
                f"; left out (mostly small counts or denominators): "
                f"{', '.join(self.levels_left_out)}"
                if self.levels_left_out
                else ""
            )
        )


def _kinds(result: SuppressionResult) -> list[str]:
    kinds = np.full(result.lattice.size, "published", dtype=object)
    kinds[result.secondary] = "secondary"
    kinds[result.suppressed & result.forced] = "forced"
    kinds[result.primary] = "primary"
    return kinds.tolist()


NEW_PATTERN = "a new pattern: none keeping the previous release's hidden cells was safe"
WITHHELD = (
    "withheld from this release: no pattern showing any of it was safe together with the "
    "releases still public"
)


def choose_pattern(
    lattice: Lattice,
    rule: Rule,
    sticky: list,
    hidden_wider: list,
    history: list,
    unshown: list | None = None,
) -> tuple[SuppressionResult, str]:
    """The pattern to publish and, when it is not the usual one, why: there is no dead end.

    Usually the previous release's hidden cells stay hidden (sticky) and complements are added.
    Where no safe pattern keeps them, one that need not is sought (audited against the same
    releases still public, so the guarantee is the same). Where none is found either, every
    cell is hidden for this release: it publishes nothing, so there is nothing to set against
    the releases before (its audit is of the release alone). ``unshown``: cells that are never
    shown (a zone's pieces).
    """

    def attempt(forced: list | np.ndarray, past: list) -> SuppressionResult:
        return protect(
            lattice,
            rule.min_cell_size,
            forced=forced,
            unshown=unshown or (),
            history=past,
            name=vault.CANDIDATE,
            insider=rule.insider,
        )

    result = attempt(sticky + hidden_wider, history)
    if result.audit.passed:
        return result, ""
    if sticky:
        result = attempt(hidden_wider, history)
        if result.audit.passed:
            return result, NEW_PATTERN
    return attempt(np.ones(lattice.size, dtype=bool), []), WITHHELD


class Protector:
    """Protects one provider's measures for every audience; see the module docstring."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        policy: Policy,
        metric_measures: Mapping[str, tuple[str, ...]],
        log: Callable[[str], None] = print,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        """``metric_measures``: metric id -> the measures it reads (numerator, then the
        denominator of a percent); their rules and levels apply to those measures' cells."""
        self.con = con
        self.policy = policy
        self.metric_measures = metric_measures
        using: dict[str, list[str]] = {}
        for metric_id, measures in metric_measures.items():
            for measure_id in measures:
                using.setdefault(measure_id, []).append(metric_id)
        self.metrics_using = {m: tuple(ids) for m, ids in using.items()}
        self.log = log
        self.warn = warn or log  # a measure not protected the usual way
        self.builder = CellBuilder(con, policy)
        self.parents = self.builder.geography

    def _rows(self, audience: str) -> dict[str, list[tuple]]:
        """Each measure's true cells in the audience's table design."""
        shows = self.policy.audiences[audience].shows_sql()
        rows: dict[str, list[tuple]] = {}
        for measure_id, *row in self.con.execute(
            f"SELECT measure_id, {', '.join(KEY_COLUMNS)}, n FROM _true_cells WHERE {shows}"
        ).fetchall():
            rows.setdefault(measure_id, []).append(tuple(row))
        return rows

    def _levels(
        self, provider: Provider, audience: str, rows: dict[str, list[tuple]]
    ) -> dict[str, set[Level]]:
        def rule(metric_ids: tuple[str, ...]) -> Rule:
            return self.policy.rule(provider.provider, audience, metric_ids)

        metrics = {
            metric_id: (measures, rule((metric_id,)))
            for metric_id, measures in self.metric_measures.items()
            if all(m in rows for m in measures)
        }
        measure_rules = {m: rule(self.metrics_using.get(m, ())) for m in rows}
        return levels_left_out(rows, measure_rules, metrics)

    def _protect(
        self,
        provider: Provider,
        measure_id: str,
        audience: str,
        rows: list[tuple],
        left_out: set[Level],
        hidden_wider: list,
    ) -> tuple[ProtectedMeasure, list]:
        start = time.perf_counter()
        rule = self.policy.rule(provider.provider, audience, self.metrics_using.get(measure_id, ()))
        rows = [r for r in rows if level_of(r) not in left_out]
        lattice = Lattice.build((r[:5] for r in rows), (r[5] for r in rows), self.parents)
        past = vault.past_releases(
            self.con, audience, measure_id, self.parents, self.policy.history.releases_public
        )
        history = [p.publication(p.release_id, -age) for age, p in enumerate(past, start=1)]
        sticky = (
            [past[0].lattice.keys[i] for i in np.flatnonzero(past[0].suppressed)] if past else []
        )
        piece = np.array([key.geo_level == PIECE for key in lattice.keys], dtype=bool)
        pieces = [lattice.keys[i] for i in np.flatnonzero(piece)]  # never shown
        result, fallback = choose_pattern(lattice, rule, sticky, hidden_wider, history, pieces)
        if fallback:
            self.warn(f"{measure_id} [{audience}]: {fallback}")
        keys = vault.key_arrays(lattice)
        self._write(measure_id, audience, result, keys)
        if result.suppressed.all():
            # It shows nothing, so no later release can be set against it; kept as the sticky
            # pattern it would withhold the measure for good (a wider audience's too).
            vault.drop_candidates(self.con, [measure_id], audience)
        else:
            vault.save_candidate(
                self.con,
                audience,
                measure_id,
                keys,
                result.lattice.n,
                result.suppressed,
                _kinds(result),
                rule.min_cell_size,
                rule.insider,
            )
        hidden = [lattice.keys[i] for i in np.flatnonzero(result.suppressed & ~piece)]
        shown = ~piece
        return ProtectedMeasure(
            measure_id=measure_id,
            audience=audience,
            cells=int(shown.sum()),
            primary=int((result.primary & shown).sum()),
            secondary=int((result.secondary & shown).sum()),
            forced=int((result.forced & result.suppressed & shown).sum()),
            suppressed=len(hidden),
            min_cell_size=rule.min_cell_size,
            seconds=time.perf_counter() - start,
            levels_left_out=tuple(sorted(level_label(lv) for lv in left_out)),
            fallback=fallback,
            pieces=int(piece.sum()),
            small_pieces=int((result.primary & piece).sum()),
        ), hidden

    def _write(
        self, measure_id: str, audience: str, result: SuppressionResult, keys: dict[str, pa.Array]
    ) -> None:
        pattern = pa.table({**keys, "suppressed": pa.array(result.suppressed, pa.bool_())})
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
                WHERE t.measure_id = {literal(measure_id)} AND t.geo_level <> {literal(PIECE)}
                """
            )
        finally:
            self.con.unregister("_pattern")

    def build_provider(
        self, provider: Provider, available: set[str], read: set[str] | None = None
    ) -> list[ProtectedMeasure]:
        """Replace ``shared.cells_<provider>`` with every delivered measure's protected cells.

        Measures whose dataset has never been delivered get no cells; downstream they show as
        missing rather than as zeros. ``read``: the measures some metric reads; the others are
        not aggregated at all (nothing would publish them).
        """
        for name in provider.measures:
            if read is not None and provider.measure_id(name) not in read:
                self.log(f"{provider.measure_id(name)}: no metric reads it, so it is not built")
        delivered = [
            name
            for name, m in provider.measures.items()
            if provider.table(m.dataset) in available
            and self.builder.crosswalk_ready(provider, m, available)
            and (read is None or provider.measure_id(name) in read)
        ]
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _true_cells ({TRUE_CELLS_COLUMNS})")
        unlocated = {}
        for name in delivered:
            sql = self.builder.true_cells(provider, name)
            self.con.execute(f"INSERT INTO _true_cells SELECT * FROM ({sql})")
            unlocated[provider.measure_id(name)] = self.builder.unlocated_rows(provider, name)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _protected ({CELLS_COLUMNS})")
        measure_ids = [provider.measure_id(n) for n in delivered]
        out = []
        hidden: dict[str, list] = {}
        for audience in self.policy.audiences:
            rows = self._rows(audience)
            levels = self._levels(provider, audience, rows)
            for measure_id in measure_ids:
                done, shown_hidden = self._protect(
                    provider,
                    measure_id,
                    audience,
                    rows.get(measure_id, []),
                    levels.get(measure_id, set()),
                    hidden.get(measure_id, []),
                )
                hidden[measure_id] = hidden.get(measure_id, []) + shown_hidden
                done = replace(done, unlocated_rows=unlocated[measure_id])
                self.log(done.line())
                out.append(done)
        out.sort(key=lambda d: measure_ids.index(d.measure_id))  # stable: audiences keep order
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
