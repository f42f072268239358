"""What a release shows one audience: the data the brief and the site are drawn from.

Everything is read from the published warehouse (one release, one audience): each metric's
city-wide series at the level the catalog judges it at, its partial periods, its map's period,
the PST's notes on it, the places with outlines, the partners' delivery status, and what changed
since the previous release (compared with that release's exports).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import duckdb

from cs360_pipeline.publish.audiences import Reader
from cs360_pipeline.publish.expectations import SUMMARY_FILE, Validation
from cs360_pipeline.publish.outputs import audience_dir
from cs360_pipeline.publish.warehouse import release_of
from cs360_pipeline.release import log as release_log
from cs360_pipeline.report.charts import ChartNote, Point, period_end, period_label
from cs360_pipeline.report.maps import MapValue, Place
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, literal

NA = "\N{EN DASH}"  # shown where there is nothing to show
TARGET_COLUMNS = ("target", "target_value")
BASELINE_COLUMNS = ("baseline", "baseline_value")
CELL_KEY = "metric_id, period_level, period_start, geo_level, geo_code, breakdown"
SHOWN = ("published", "unreliable")


@dataclass
class Metric:
    row: dict[str, Any]
    level: str
    points: list[Point]
    target: float | None = None
    baseline: float | None = None
    # periods that are partial (not over, or not delivered whole) -> the last date of their data
    partial: dict[dt.date, dt.date | None] = field(default_factory=dict)
    place_map: PlaceMap | None = None
    notes: list[ChartNote] = field(default_factory=list)

    @property
    def metric_id(self) -> str:
        return self.row["metric_id"]

    def period_text(self, period: dt.date) -> str:
        """The period's label, saying when it is partial: "Aug 2026 (through 5 Aug)"."""
        label = period_label(period, self.level)
        if period not in self.partial:
            return label
        through = self.partial[period]
        if through is not None and through < period_end(period, self.level):
            return f"{label} (through {through.day} {through:%b})"
        return f"{label} (partial)"

    @property
    def unit(self) -> str:
        return self.row.get("unit") or ""

    @property
    def stale(self) -> str | None:
        """The sources that are late or behind, in words; None when all are current."""
        if self.row.get("freshness_status") != "stale":
            return None
        return str(self.row.get("stale_sources") or "a source was never delivered").replace(
            "_", " "
        )


@dataclass(frozen=True)
class PlaceMap:
    """One period of a metric by beat (or district), for its map."""

    geo_level: str
    period_level: str
    period: dt.date
    values: dict[str, MapValue]


@dataclass
class MetricChange:
    metric_id: str
    level: str = "month"  # the level the metric's chart shows; new periods are at this level
    new_periods: list[dt.date] = field(default_factory=list)
    revised: int = 0
    newly_withheld: int = 0
    newly_shown: int = 0
    dropped: int = 0


@dataclass
class Changes:
    previous: release_log.Entry | None
    comparable: bool  # the previous release's export is still there to compare against
    added_files: list[release_log.InputFile] = field(default_factory=list)
    removed_files: list[release_log.InputFile] = field(default_factory=list)
    policy_changed: bool = False
    code_changed: bool = False
    metrics: dict[str, MetricChange] = field(default_factory=dict)


@dataclass
class BriefData:
    release_id: str
    reader: Reader
    entry: release_log.Entry | None
    log: list[release_log.Entry]
    metrics: list[Metric]
    places: dict[str, list[Place]]
    providers: list[dict[str, Any]]
    changes: Changes
    validation: Validation | None
    files: list[str]

    @property
    def audience(self) -> str:
        return self.reader.name


def _first_number(row: dict[str, Any], names: Sequence[str]) -> float | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            return float(value)
    return None


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _partial_periods(
    con: duckdb.DuckDBPyConnection, audience: str, metric_id: str, level: str
) -> dict[dt.date, dt.date | None]:
    """The city-wide series' partial periods and the last date of their data."""
    rows = con.execute(
        "SELECT period_start, data_through FROM metric_values WHERE audience = ? "
        "AND metric_id = ? AND geo_level = 'city' AND breakdown = 'total' AND period_level = ? "
        "AND NOT period_complete",
        [audience, metric_id, level],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _series(
    con: duckdb.DuckDBPyConnection, audience: str, metric_id: str, level: str | None
) -> tuple[str, list]:
    """The city-wide total at ``level`` (the level the catalog judges the metric at, where its
    latest value, baseline and target are), else the finest level the metric has; gaps
    included."""
    levels = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT period_level FROM metric_values WHERE audience = ? AND metric_id = ? "
            "AND geo_level = 'city' AND breakdown = 'total'",
            [audience, metric_id],
        ).fetchall()
    }
    if level not in levels:
        level = next((lv for lv in ("month", "quarter", "year") if lv in levels), "month")
    step = {"month": "1 MONTH", "quarter": "3 MONTH", "year": "1 YEAR"}[level]
    rows = con.execute(
        f"""
        WITH v AS (
            SELECT period_start, value, status FROM metric_values
            WHERE audience = ? AND metric_id = ? AND geo_level = 'city'
              AND breakdown = 'total' AND period_level = ?
        ),
        spine AS (
            SELECT CAST(unnest(generate_series(min(period_start), max(period_start),
                   INTERVAL {step})) AS DATE) AS period_start FROM v
        )
        SELECT s.period_start, v.value, v.status
        FROM spine AS s LEFT JOIN v USING (period_start) ORDER BY s.period_start
        """,
        [audience, metric_id, level],
    ).fetchall()
    return level, [Point(period=r[0], value=r[1], status=r[2]) for r in rows]


def _notes(con: duckdb.DuckDBPyConnection, audience: str) -> dict[str, list[ChartNote]]:
    """Metric -> the PST's notes the audience sees, in their numbers' order."""
    out: dict[str, list[ChartNote]] = {}
    for metric_id, number, start, end, text in con.execute(
        "SELECT metric_id, note_order, period_from, period_to, note FROM metric_notes "
        "WHERE audience = ? ORDER BY metric_id, note_order",
        [audience],
    ).fetchall():
        out.setdefault(metric_id, []).append(ChartNote(number, start, end, text))
    return out


def _places(con: duckdb.DuckDBPyConnection) -> dict[str, list[Place]]:
    """Geography level -> its places with outlines (none without a beat map)."""
    out: dict[str, list[Place]] = {}
    for level, code, name, boundary in con.execute(
        "SELECT geo_level, geo_code, coalesce(name, geo_code), boundary FROM geography "
        "WHERE boundary IS NOT NULL AND geo_level IN ('beat', 'district') ORDER BY ALL"
    ).fetchall():
        out.setdefault(level, []).append(Place(code, name, boundary))
    return out


def _place_map(
    con: duckdb.DuckDBPyConnection, audience: str, metric_id: str, level: str, drawable: set[str]
) -> PlaceMap | None:
    """The metric by beat, else by district, at the chart's period level where the table has
    it (else the finest it has), for the latest whole period (else the latest)."""
    rows = con.execute(
        "SELECT geo_level, period_level, max(period_start) FILTER (WHERE period_complete), "
        "max(period_start) FROM metric_values WHERE audience = ? AND metric_id = ? "
        "AND breakdown = 'total' AND geo_level IN ('beat', 'district') GROUP BY ALL",
        [audience, metric_id],
    ).fetchall()
    found = {(g, p): whole or latest for g, p, whole, latest in rows}
    for geo in ("beat", "district"):
        if geo not in drawable:
            continue
        for period_level in (level, "month", "quarter", "year"):
            period = found.get((geo, period_level))
            if period is None:
                continue
            cells = con.execute(
                "SELECT geo_code, value, status FROM metric_values WHERE audience = ? "
                "AND metric_id = ? AND breakdown = 'total' AND geo_level = ? "
                "AND period_level = ? AND period_start = ?",
                [audience, metric_id, geo, period_level, period],
            ).fetchall()
            values = {code: MapValue(value, status) for code, value, status in cells}
            return PlaceMap(geo, period_level, period, values)
    return None


def _changes(
    con: duckdb.DuckDBPyConnection,
    paths: Paths,
    audience: str,
    entry: release_log.Entry | None,
    previous: release_log.Entry | None,
    levels: dict[str, str],
) -> Changes:
    if previous is None:
        return Changes(previous=None, comparable=False)
    changes = Changes(previous=previous, comparable=False)
    if entry is not None:
        before = {(f.provider, f.file_name, f.sha256) for f in previous.input_files}
        now = {(f.provider, f.file_name, f.sha256) for f in entry.input_files}
        changes.added_files = [release_log.InputFile(*f) for f in sorted(now - before)]
        changes.removed_files = [release_log.InputFile(*f) for f in sorted(before - now)]
        changes.policy_changed = entry.policy_sha256 != previous.policy_sha256
        changes.code_changed = entry.code_version != previous.code_version
    exported = audience_dir(paths, previous.release_id, audience) / "metric_values.parquet"
    if not exported.exists():
        return changes
    changes.comparable = True
    rows = con.execute(
        f"""
        WITH cur AS (
            SELECT {CELL_KEY}, value, status FROM metric_values WHERE audience = ?
        ),
        prev AS (
            SELECT {CELL_KEY}, value, status FROM read_parquet({literal(exported)})
            WHERE audience = ?
        ),
        joined AS (
            SELECT coalesce(c.metric_id, p.metric_id) AS metric_id,
                   coalesce(c.period_level, p.period_level) AS period_level,
                   coalesce(c.period_start, p.period_start) AS period_start,
                   c.status AS now_status, p.status AS was_status,
                   c.value AS now_value, p.value AS was_value
            FROM cur AS c FULL OUTER JOIN prev AS p
              ON c.metric_id = p.metric_id AND c.period_level = p.period_level
             AND c.period_start = p.period_start AND c.geo_level = p.geo_level
             AND c.geo_code = p.geo_code AND c.breakdown = p.breakdown
        ),
        periods_before AS (
            SELECT DISTINCT metric_id, period_level, period_start FROM prev
        )
        SELECT
            metric_id,
            period_level,
            list(DISTINCT period_start ORDER BY period_start) FILTER (
                WHERE was_status IS NULL AND NOT EXISTS (
                    SELECT 1 FROM periods_before AS b
                    WHERE b.metric_id = joined.metric_id
                      AND b.period_level = joined.period_level
                      AND b.period_start = joined.period_start)
            ) AS new_periods,
            count(*) FILTER (WHERE now_status = was_status
                             AND now_value IS DISTINCT FROM was_value) AS revised,
            count(*) FILTER (WHERE was_status IN ('published', 'unreliable')
                             AND now_status IN ('suppressed', 'missing')) AS newly_withheld,
            count(*) FILTER (WHERE was_status IN ('suppressed', 'missing')
                             AND now_status IN ('published', 'unreliable')) AS newly_shown,
            count(*) FILTER (WHERE now_status IS NULL) AS dropped
        FROM joined GROUP BY metric_id, period_level
        """,
        [audience, audience],
    ).fetchall()
    for metric_id, level, periods, revised, withheld, shown, dropped in rows:
        change = changes.metrics.setdefault(
            metric_id, MetricChange(metric_id=metric_id, level=levels.get(metric_id, "month"))
        )
        if level == change.level:
            change.new_periods = [p for p in (periods or []) if p is not None]
        change.revised += revised
        change.newly_withheld += withheld
        change.newly_shown += shown
        change.dropped += dropped
    return changes


def gather(paths: Paths, release_id: str, reader: Reader) -> BriefData:
    audience = reader.name
    log = release_log.read(paths)
    entry = next((e for e in log if e.release_id == release_id), None)
    previous = release_log.previous(log, release_id)
    folder = audience_dir(paths, release_id, audience)
    with closing(connect(None)) as con:
        con.execute(f"ATTACH {literal(paths.warehouse_db)} AS wh (READ_ONLY)")
        con.execute("USE wh")
        published = release_of(con)
        if published != release_id:
            raise RuntimeError(f"the warehouse holds {published}, not {release_id}")
        catalog = _dicts(con, "SELECT * FROM metric_catalog WHERE audience = ?", [audience])
        catalog.sort(key=lambda r: (r.get("display_order") or 0, r["metric_id"]))
        places = _places(con)
        notes = _notes(con, audience)
        metrics = []
        for row in catalog:
            level, points = _series(con, audience, row["metric_id"], row.get("latest_period_level"))
            metrics.append(
                Metric(
                    row=row,
                    level=level,
                    points=points,
                    target=_first_number(row, TARGET_COLUMNS),
                    baseline=_first_number(row, BASELINE_COLUMNS),
                    partial=_partial_periods(con, audience, row["metric_id"], level),
                    place_map=_place_map(con, audience, row["metric_id"], level, set(places)),
                    notes=notes.get(row["metric_id"], []),
                )
            )
        providers = _dicts(con, "SELECT * FROM provider_status ORDER BY provider, dataset")
        levels = {m.metric_id: m.level for m in metrics}
        changes = _changes(con, paths, audience, entry, previous, levels)
    files = sorted(
        p.name
        for p in folder.glob("*")
        if p.is_file() and p.suffix in {".csv", ".parquet", ".xlsx", ".txt"}
    )
    return BriefData(
        release_id=release_id,
        reader=reader,
        entry=entry,
        log=log,
        metrics=metrics,
        places=places,
        providers=providers,
        changes=changes,
        validation=Validation.load(folder / SUMMARY_FILE),
        files=files,
    )
