"""Aggregate row-level measures into additive cells with their true counts.

Every measure becomes cells over three hierarchies at once: geography (beat, district, city),
period (month, quarter, year) and its breakdowns (each on its own, plus the total). All levels come
from one ``GROUPING SETS`` pass over the same located rows, so every margin adds up exactly. Where
the policy defines zones, the pass also cuts the zones' pieces, and a second pass over the same
rows, joined to each zone's beats, gives the zones (a row counts once in every zone it lies in). A
spine of every (period, geography, breakdown) combination fills in zeros for cells with no rows,
for the months the dataset covers.

People counted once per period (``entities`` measures, e.g. students) are placed at one beat and
one breakdown value per period (their latest row), so geography and breakdowns stay additive;
they are cut at one period level only (``tables.entity_period_level``), since a student counted in
two months is one student in the quarter.

Things counted once in all (``distinct`` measures, e.g. incidents exported one row per offense)
count in the period, beat and breakdowns of their earliest row, so they add up at every level.

The true cells only ever live in a temporary table of the privacy step's connection;
``protection.py`` decides what of them is published.
"""

from __future__ import annotations

from itertools import product

import duckdb
import pyarrow as pa

from cs360_pipeline.privacy.geography import Geography, city_geography
from cs360_pipeline.privacy.lattice import PIECE, ZONE
from cs360_pipeline.privacy.policy import Breakdown, Policy
from cs360_pipeline.registry import Measure, Provider
from cs360_pipeline.sql import ident, literal

PERIOD_COLUMNS = {"month": "_month", "quarter": "_quarter", "year": "_year"}
GEO_COLUMNS = {"beat": "_beat", "district": "_district", "city": "_city"}
PIECES_TABLE = "_geo_pieces"  # (_beat, _piece): the beats of the districts a zone cuts
ZONES_TABLE = "_geo_zones"  # (_beat, _zone): every zone a beat lies in


def first_rows(located: str) -> str:
    """One row per entity of a ``distinct`` measure: its earliest (then first delivered) row.

    The entity counts once, in the period, beat and breakdowns of that row, so months add up
    to quarters and years. Rows without an entity cannot be matched to others: each counts.
    """
    return f"""
        SELECT * FROM ({located}) AS l
        QUALIFY _entity IS NULL
             OR row_number() OVER (PARTITION BY _entity ORDER BY _period, _loaded_at, _rowid) = 1
    """


def _breakdown_sql(expression: str, breakdown: Breakdown) -> str:
    if breakdown.bands:
        cases = " ".join(
            f"WHEN ({expression}) >= {low}"
            + (f" AND ({expression}) <= {high}" if high is not None else "")
            + f" THEN {literal(label)}"
            for label, low, high in breakdown.bounds()
        )
        return f"CASE {cases} ELSE {literal(breakdown.other)} END"
    values = ", ".join(literal(v) for v in breakdown.values or [])
    text = f"CAST(({expression}) AS VARCHAR)"
    return f"CASE WHEN {text} IN ({values}) THEN {text} ELSE {literal(breakdown.other)} END"


class CellBuilder:
    """Builds the cells of one provider's measures from ``raw`` into ``build.shared``.

    The connection must have the restricted database attached as ``raw`` (read only) and the
    build database as the default catalog.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, policy: Policy) -> None:
        self.con = con
        self.policy = policy
        self.city = policy.tables.city
        self.geography: Geography = city_geography(con, policy)
        self._write_zone_tables()

    def _write_zone_tables(self) -> None:
        """The (beat -> piece) and (beat -> zone) tables the grouping passes join."""
        piece_of = self.geography.piece_of()
        zone_beats = [(b, z) for z, beats in self.geography.zone_beats().items() for b in beats]
        for table, rows, column in (
            (PIECES_TABLE, list(piece_of.items()), "_piece"),
            (ZONES_TABLE, zone_beats, "_zone"),
        ):
            data = pa.table(
                {"_beat": [r[0] for r in rows], column: [r[1] for r in rows]},
                schema=pa.schema([("_beat", pa.string()), (column, pa.string())]),
            )
            self.con.register("_geo_rows", data)
            try:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS FROM _geo_rows")
            finally:
                self.con.unregister("_geo_rows")

    @property
    def geo_columns(self) -> dict[str, str]:
        """The geography levels of the main grouping pass: pieces too where zones cut."""
        if not self.geography.pieces:
            return GEO_COLUMNS
        return {"beat": "_beat", PIECE: "_piece", "district": "_district", "city": "_city"}

    # -- geography -------------------------------------------------------------------------
    def _beat_source(self, provider: Provider, dataset_name: str) -> str:
        """SQL that yields (_geo_key -> _beat) for a dataset's geography column.

        Points are placed on the beat boundaries first (once per connection): their key is the
        row's rowid, their beat the polygon's (:mod:`cs360_pipeline.privacy.boundaries`).
        """
        geo = provider.datasets[dataset_name].geography
        assert geo is not None
        if geo.points is not None:
            from cs360_pipeline.privacy.boundaries import place

            placed = place(self.con, provider.table(dataset_name), geo.points)
            return f"SELECT _geo_key, _beat FROM {ident(placed)}"
        if geo.crosswalk is None:
            return "SELECT beat AS _geo_key, beat AS _beat FROM raw.city__beats"
        ref_provider, _, ref_dataset = geo.crosswalk.dataset.partition(".")
        table = ident(f"{ref_provider}__{ref_dataset}")
        return f"SELECT {ident(geo.crosswalk.key)} AS _geo_key, beat AS _beat FROM raw.{table}"

    @staticmethod
    def _geo_key(provider: Provider, dataset_name: str) -> str:
        """SQL over the raw table giving the key ``_beat_source`` maps: a column, or the rowid."""
        geo = provider.datasets[dataset_name].geography
        assert geo is not None
        return "rowid" if geo.points is not None else ident(geo.column or "")

    def _located(self, provider: Provider, measure: Measure) -> str:
        dataset = provider.datasets[measure.dataset]
        period = measure.period or dataset.period
        assert dataset.geography is not None and period is not None
        extras = []
        for name, expression in measure.breakdowns.items():
            mapped = _breakdown_sql(expression, self._breakdown(name))
            extras.append(f"{mapped} AS {ident('_bd_' + name)}")
        if measure.value:
            extras.append(f"({measure.value}) AS _value")
        if measure.entity:
            extras.append(f"({measure.entity}) AS _entity")
        if measure.kind == "distinct":
            extras.append("rowid AS _rowid")
        where = f"WHERE ({measure.where})" if measure.where else ""
        table = ident(provider.table(measure.dataset))
        return f"""
            SELECT r.*,
                   CAST(date_trunc('month', r._period) AS DATE) AS _month,
                   CAST(date_trunc('quarter', r._period) AS DATE) AS _quarter,
                   CAST(date_trunc('year', r._period) AS DATE) AS _year,
                   g.beat AS _beat, g.district AS _district, {literal(self.city.code)} AS _city
            FROM (
                SELECT *, {ident(period)} AS _period,
                       {self._geo_key(provider, measure.dataset)} AS _geo_key
                       {"".join(", " + e for e in extras)}
                FROM raw.{table} {where}
            ) AS r
            JOIN ({self._beat_source(provider, measure.dataset)}) AS x USING (_geo_key)
            JOIN raw.city__beats AS g ON g.beat = x._beat
        """

    def _breakdown(self, name: str) -> Breakdown:
        try:
            return self.policy.tables.breakdowns[name]
        except KeyError:
            raise ValueError(
                f"breakdown {name!r} is not defined in privacy/policy.yml tables.breakdowns "
                f"(known: {', '.join(self.policy.tables.breakdowns)})"
            ) from None

    # -- the grouping sets -------------------------------------------------------------------
    def period_columns(self, measure: Measure) -> dict[str, str]:
        """The period levels a measure is cut by (one only for ``entities``)."""
        if measure.kind == "entities":
            level = self.policy.tables.entity_period_level
            return {level: PERIOD_COLUMNS[level]}
        return PERIOD_COLUMNS

    @staticmethod
    def _key_columns(breakdowns: list[str], periods: dict[str, str], geos: dict[str, str]) -> str:
        def level(columns: dict[str, str], what: str) -> str:
            names = list(columns)

            def pick(n: str) -> str:
                return literal(n) if what == "level" else columns[n]

            if len(names) == 1:
                return pick(names[0])
            cases = " ".join(f"WHEN GROUPING({columns[n]}) = 0 THEN {pick(n)}" for n in names[:-1])
            return f"CASE {cases} ELSE {pick(names[-1])} END"

        bd_cases = " ".join(
            f"WHEN GROUPING({ident('_bd_' + b)}) = 0 THEN {literal(b + '=')} || {ident('_bd_' + b)}"
            for b in breakdowns
        )
        breakdown = f"CASE {bd_cases} ELSE 'total' END" if breakdowns else "'total'"
        return (
            f"{level(periods, 'level')} AS period_level, "
            f"{level(periods, 'code')} AS period_start, "
            f"{level(geos, 'level')} AS geo_level, "
            f"{level(geos, 'code')} AS geo_code, "
            f"{breakdown} AS breakdown"
        )

    @staticmethod
    def _grouping_sets(breakdowns: list[str], periods: dict[str, str], geos: dict[str, str]) -> str:
        sets = []
        for period, geo, bd in product(periods.values(), geos.values(), [None, *breakdowns]):
            columns = [period, geo]
            columns += [ident("_bd_" + bd)] if bd else []
            sets.append("(" + ", ".join(columns) + ")")
        return "GROUPING SETS (" + ", ".join(sets) + ")"

    def _aggregate(self, measure: Measure, located: str) -> str:
        names = list(measure.breakdowns)
        periods = self.period_columns(measure)
        if measure.kind == "entities":
            (period,) = periods.values()
            hit = f"({measure.having})" if measure.having else "true"
            latest = ", ".join(
                f"arg_max({c}, _period) AS {c}"
                for c in ["_beat", "_district", *(ident("_bd_" + b) for b in names)]
            )
            units = f"""
                SELECT {period}, {latest}, any_value(_city) AS _city, {hit} AS hit
                FROM ({located}) AS l
                GROUP BY _entity, {period}
            """
            stat = "count(*) FILTER (WHERE hit) AS n, CAST(n AS DOUBLE) AS value"
            return self._grouped(units, stat, names, periods)
        if measure.kind == "distinct":
            located = first_rows(located)
        if measure.kind == "median":
            stat = "count(_value) AS n, median(_value) AS value"
        elif measure.kind == "sum":
            stat = "CAST(sum(_value) AS BIGINT) AS n, CAST(n AS DOUBLE) AS value"
        else:
            stat = "count(*) AS n, CAST(n AS DOUBLE) AS value"
        return self._grouped(located, stat, names, periods)

    def _grouped(
        self, units: str, stat: str, breakdowns: list[str], periods: dict[str, str]
    ) -> str:
        """``stat`` over the units (one row per thing counted, with its beat) at every level;
        with zones, the units are read once for both passes."""
        geos = self.geo_columns

        def grouped(source: str, geos: dict[str, str]) -> str:
            return f"""
                SELECT {self._key_columns(breakdowns, periods, geos)}, {stat}
                FROM {source} AS l
                GROUP BY {self._grouping_sets(breakdowns, periods, geos)}
            """

        if not self.geography.pieces:
            return grouped(f"({units})", geos)
        return f"""
            WITH units AS MATERIALIZED (
                SELECT * FROM ({units}) AS u LEFT JOIN {PIECES_TABLE} USING (_beat)
            )
            {grouped("units", geos)}
            UNION ALL
            {grouped(f"(SELECT * FROM units JOIN {ZONES_TABLE} USING (_beat))", {ZONE: "_zone"})}
        """

    # -- the spine -------------------------------------------------------------------------
    def _spine(self, provider: Provider, measure: Measure) -> str:
        dataset = provider.datasets[measure.dataset]
        period = ident(measure.period or dataset.period or "")
        table = ident(provider.table(measure.dataset))
        breakdowns = ["SELECT 'total' AS breakdown"] + [
            f"SELECT {literal(f'{name}={value}')}"
            for name in measure.breakdowns
            for value in self._breakdown(name).domain
        ]
        return f"""
            WITH months AS (
                SELECT DISTINCT CAST(date_trunc('month', {period}) AS DATE) AS m
                FROM raw.{table} WHERE {period} IS NOT NULL
            ),
            periods AS (
                SELECT * FROM (
                    SELECT DISTINCT 'month' AS period_level, m AS period_start FROM months
                    UNION SELECT DISTINCT 'quarter', CAST(date_trunc('quarter', m) AS DATE)
                    FROM months
                    UNION SELECT DISTINCT 'year', CAST(date_trunc('year', m) AS DATE) FROM months
                ) WHERE period_level IN ({", ".join(map(literal, self.period_columns(measure)))})
            ),
            geos AS (
                SELECT 'beat' AS geo_level, beat AS geo_code FROM raw.city__beats
                UNION SELECT DISTINCT 'district', district FROM raw.city__beats
                UNION SELECT 'city', {literal(self.city.code)}
                UNION SELECT {literal(PIECE)}, _piece FROM {PIECES_TABLE}
                UNION SELECT {literal(ZONE)}, _zone FROM {ZONES_TABLE}
            ),
            breakdowns AS ({" UNION ALL ".join(breakdowns)})
            SELECT * FROM periods, geos, breakdowns
        """

    # -- one measure -------------------------------------------------------------------------
    def true_cells(self, provider: Provider, name: str) -> str:
        """SQL for one measure's cells with their true counts: restricted, never stored."""
        measure = provider.measures[name]
        located = self._located(provider, measure)
        zero = "NULL" if measure.kind == "median" else "0"
        return f"""
            WITH agg AS ({self._aggregate(measure, located)})
            SELECT {literal(provider.measure_id(name))} AS measure_id,
                   s.period_level, s.period_start, s.geo_level, s.geo_code, s.breakdown,
                   coalesce(a.n, 0) AS n, coalesce(a.value, {zero}) AS value
            FROM ({self._spine(provider, measure)}) AS s
            LEFT JOIN agg AS a
                USING (period_level, period_start, geo_level, geo_code, breakdown)
        """

    @staticmethod
    def crosswalk_ready(provider: Provider, measure: Measure, available: set[str]) -> bool:
        geo = provider.datasets[measure.dataset].geography
        if geo is None or geo.crosswalk is None:
            return True
        return geo.crosswalk.dataset.replace(".", "__") in available

    def unlocated_rows(self, provider: Provider, name: str) -> int:
        """Rows of a measure that no beat could be found for (counted in no cell)."""
        measure = provider.measures[name]
        dataset = provider.datasets[measure.dataset]
        assert dataset.geography is not None
        where = f"WHERE ({measure.where})" if measure.where else ""
        table = ident(provider.table(measure.dataset))
        column = self._geo_key(provider, measure.dataset)
        return self.con.execute(
            f"""
            SELECT count(*) FROM (SELECT {column} AS _geo_key FROM raw.{table} {where}) AS r
            WHERE NOT EXISTS (
                SELECT 1 FROM ({self._beat_source(provider, measure.dataset)}) AS x
                JOIN raw.city__beats AS g ON g.beat = x._beat
                WHERE x._geo_key = r._geo_key
            )
            """
        ).fetchall()[0][0]
