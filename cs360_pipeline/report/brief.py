"""The brief: one static HTML page per release and audience, for the PST's monthly meeting.

It holds the metrics grouped by CS360 dimension, each with its trend; how current each partner's
data is; which Community Map areas have a data partner; what changed since the previous release;
and the checks the release passed. The page is self-contained: inline CSS and SVG, no script,
font or image from anywhere else, and a Content-Security-Policy that would block any.

Everything on the public brief comes from the public audience's rows; the PST brief adds the
partners' contacts and the names of the files delivered.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from cs360_pipeline.publish import release_log
from cs360_pipeline.publish.expectations import SUMMARY_FILE, Validation
from cs360_pipeline.publish.outputs import audience_dir, write_text
from cs360_pipeline.publish.warehouse import release_of
from cs360_pipeline.registry.models import COMMUNITY_MAP_AREAS
from cs360_pipeline.report.charts import (
    ChartNote,
    Point,
    fmt_change,
    fmt_value,
    legend,
    period_end,
    period_label,
    trend_svg,
)
from cs360_pipeline.report.maps import MapValue, Place, map_svg
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, literal

BRIEF_FILE = "brief.html"
NA = "\N{EN DASH}"  # shown where there is nothing to show
AUDIENCE_TITLE = {"pst": "Problem-Solving Team", "public": "Public"}
TARGET_COLUMNS = ("target", "target_value")
BASELINE_COLUMNS = ("baseline", "baseline_value")
FRESHNESS_LABEL = {
    "on_time": "on time",
    "late": "late",
    "overdue": "overdue",
    "never_delivered": "never delivered",
    "not_scheduled": "reference data",
}
CELL_KEY = "metric_id, period_level, period_start, geo_level, geo_code, breakdown"
NO_DIMENSION_DATA = "No data published for this dimension yet."
NO_METRIC_DATA = "No data published for this metric yet."
NO_METRICS = "No metric is published for this audience yet."


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
    audience: str
    entry: release_log.Entry | None
    log: list[release_log.Entry]
    metrics: list[Metric]
    places: dict[str, list[Place]]
    providers: list[dict[str, Any]]
    changes: Changes
    validation: Validation | None
    files: list[str]


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


def notes_list(metric: Metric) -> str:
    """The metric's notes under its chart (HTML), numbered as the chart marks them."""
    if not metric.notes:
        return ""
    items = "".join(
        f'<li value="{n.number}"><b>{escape(n.span())}</b>: {escape(n.text)}</li>'
        for n in metric.notes
    )
    return f'<ol class="notes">{items}</ol>'


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


def gather(paths: Paths, release_id: str, audience: str) -> BriefData:
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
        audience=audience,
        entry=entry,
        log=log,
        metrics=metrics,
        places=places,
        providers=providers,
        changes=changes,
        validation=Validation.load(folder / SUMMARY_FILE),
        files=files,
    )


def write_brief(paths: Paths, release_id: str, audience: str) -> Path:
    data = gather(paths, release_id, audience)
    target = audience_dir(paths, release_id, audience) / BRIEF_FILE
    return write_text(target, render(data))


# --- Rendering ------------------------------------------------------------------------------

CSS = """
:root{--ink:#1d2733;--muted:#5b6673;--line:#dde3ea;--blue:#1f5fa8;--good:#237a3b;--bad:#b3261e;
--warn:#8a5a00}
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--ink);background:#f6f8fa;line-height:1.4}
header{background:#14324f;color:#fff;padding:1.2rem 2rem}
header h1{margin:0 0 .2rem;font-size:1.5rem}
header p{margin:0;color:#c9d6e3}
main{max-width:1440px;margin:0 auto;padding:1rem 2rem 3rem}
section{margin:1.6rem 0}
h2{font-size:1.2rem;border-bottom:2px solid var(--line);padding-bottom:.3rem}
h3{font-size:1.05rem;margin:.2rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem}
.headline{display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap;margin:.2rem 0 .4rem}
.big{font-size:1.6rem;font-weight:650}
.muted,.def{color:var(--muted);font-size:.85rem}
.def{margin:.4rem 0 0}
.badge{display:inline-block;border-radius:10px;padding:.05rem .55rem;font-size:.8rem;
background:#eef2f6;color:var(--ink)}
.b-published,.b-on_time{background:#e3f3e7;color:var(--good)}
.b-unreliable,.b-late{background:#fff1d6;color:var(--warn)}
.b-suppressed,.b-missing,.b-partial{background:#f4dca6;color:#6b4500}
.doubt{margin:.2rem 0 .4rem;padding:.3rem .5rem;border-left:4px solid var(--warn);
background:#fff6e0;color:#5a3b00;font-size:.85rem}
.dot.partial{background:#fff;border:1.2px dashed var(--warn)}
ol.notes{margin:.3rem 0;padding-left:1.4rem;font-size:.85rem;color:#3d2a5c}
ol.notes li::marker{color:#6a3d9a;font-weight:700}
.b-overdue,.b-never_delivered,.b-failed{background:#fde2e1;color:var(--bad)}
.good{color:var(--good)}.bad{color:var(--bad)}
.empty{color:var(--warn);font-style:italic}
.legend{display:flex;flex-wrap:wrap;gap:.8rem;font-size:.78rem;color:var(--muted)}
.key{display:inline-flex;align-items:center;gap:.3rem}
.key i{display:inline-block}
.dot{width:9px;height:9px;border-radius:50%;background:var(--blue);border:1.2px solid var(--blue)}
.dot.hollow{background:#fff}
.band{width:12px;height:12px;border:1px dashed #b9b9b9}
.rule{width:18px;border-top:2px dashed #237a3b}.rule.baseline{border-top:2px dotted #6b6b6b}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{border-bottom:1px solid var(--line);padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f6}
td.nowrap,th.nowrap{white-space:nowrap}
.areas{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:.7rem}
.area{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem}
.area.none{background:repeating-linear-gradient(45deg,#fafafa,#fafafa 6px,#f1f1f1 6px,#f1f1f1 12px);
color:var(--muted)}
.area b{display:block;text-transform:capitalize}
ul.tight{margin:.3rem 0;padding-left:1.2rem}
footer{color:var(--muted);font-size:.8rem;margin-top:2rem}
svg.trend{width:100%;height:auto;display:block;max-width:760px}
.place-map{margin:.4rem 0 0;display:flex;gap:.8rem;align-items:flex-start;flex-wrap:wrap}
.place-map figcaption{width:100%}
svg.map{width:260px;height:auto;display:block}
.map-legend{flex-direction:column;gap:.2rem;max-width:220px}
.swatch{width:12px;height:12px;border:1px solid #8a8a8a}
.swatch.hatched{background-image:
repeating-linear-gradient(45deg,#b07d12 0 1.5px,transparent 1.5px 5px)}
.print-only{display:none}
@media print{
@page{size:letter;margin:9mm 8mm}
html{font-size:8.5pt}body{background:#fff;line-height:1.25}
header{background:none;color:var(--ink);padding:0 0 .2rem;border-bottom:2px solid #14324f}
header h1{font-size:1.5rem}header p{color:var(--muted)}
main{max-width:none;padding:0}
section{margin:.45rem 0}
h2{font-size:1.2rem;margin:.2rem 0;padding-bottom:.1rem;break-after:avoid}
.print-only{display:block}
.grid{grid-template-columns:repeat(3,minmax(0,1fr));gap:.25rem}
.card{padding:.25rem .35rem;border-radius:0;break-inside:avoid}
.card h3{font-size:1rem}
.card>.muted,.card .def,.card .legend,.place-map{display:none}
.headline{gap:.3rem;margin:0}.big{font-size:1.3rem}
.badge{padding:0 .3rem}
.doubt{padding:.1rem .3rem;margin:.1rem 0}
th,td{padding:.1rem .25rem}
.areas{grid-template-columns:repeat(4,minmax(0,1fr));gap:.25rem}
.area{padding:.2rem .35rem;border-radius:0}
#history,#downloads,footer{display:none}
a{color:inherit;text-decoration:none}
}
"""
PRINT_LEGEND = (
    "In the charts: the line joins the values shown; a hollow dot is unreliable (fewer than 20 "
    "events); a shaded period is withheld: s = hidden (a count too small to show, or one "
    "hidden so that a small count cannot be worked out), m = missing (nothing delivered, or "
    "no denominator); p = a partial period; the dashed green line is the target and the dotted "
    "grey one the baseline."
)


def _badge(status: str | None, label: str | None = None) -> str:
    status = status or "none"
    return (
        f'<span class="badge b-{escape(status)}">{escape(label or status.replace("_", " "))}</span>'
    )


def _date(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat() if isinstance(value, dt.date) else escape(str(value))


def _change_text(metric: Metric) -> str:
    """The latest shown value against the one before it, coloured by the metric's direction.

    A partial period (a month delivered through the 5th, a year not over) is never compared
    with a whole one: its value covers only part of the period.
    """
    shown = [p for p in metric.points if p.status in ("published", "unreliable")]
    if shown and shown[-1].period in metric.partial:
        return f'<span class="muted">partial {escape(metric.level)}: not compared</span>'
    shown = [p for p in shown if p.period not in metric.partial]
    if len(shown) < 2 or shown[-1].value is None or shown[-2].value is None:
        return ""
    last, before = shown[-1], shown[-2]
    delta = last.value - before.value
    if delta == 0:
        return (
            f'<span class="muted">unchanged from {period_label(before.period, metric.level)}</span>'
        )
    direction = metric.row.get("direction") or ""
    good = (delta < 0) == direction.startswith("down")
    arrow = "▲" if delta > 0 else "▼"
    tone = "good" if good else "bad"
    if direction not in ("down_is_good", "up_is_good"):
        tone = "muted"
    return (
        f'<span class="{tone}">{arrow} {escape(fmt_change(abs(delta), metric.unit))} from '
        f"{escape(period_label(before.period, metric.level))}</span>"
    )


def _no_data_card(metric: Metric) -> str:
    """A metric the release has no city-wide figure for: said in words, with no empty chart.

    An empty chart would read as "every value withheld", which is a different thing.
    """
    row = metric.row
    return f"""
<article class="card no-data" id="m-{escape(metric.metric_id)}">
  <h3>{escape(row.get("title") or metric.metric_id)}</h3>
  <p class="empty">{NO_METRIC_DATA}</p>
  <p class="def">{escape(row.get("definition") or "")} Owner: {escape(row.get("owner") or NA)}.
   Data: {escape(str(row.get("providers") or NA))}.</p>
</article>"""


def _map_figure(metric: Metric, places: dict[str, list[Place]]) -> str:
    """The metric's map for its latest period, where the city has a beat map."""
    found = metric.place_map
    if found is None:
        return ""
    when = period_label(found.period, found.period_level)
    title = f"{metric.row.get('title') or metric.metric_id} by {found.geo_level}, {when}"
    drawing = map_svg(
        places.get(found.geo_level, []),
        found.values,
        unit=metric.unit,
        title=title,
        map_id=f"map-{metric.metric_id}",
    )
    if not drawing:
        return ""
    if found.period_level == metric.level:
        when = metric.period_text(found.period)  # says whether the period is partial
    return (
        f'<figure class="place-map"><figcaption class="muted">By {escape(found.geo_level)}, '
        f"{escape(when)}</figcaption>{drawing}</figure>"
    )


def headline(metric: Metric) -> str:
    """The latest value with its period, status and change, or why there is none (HTML)."""
    latest = metric.points[-1] if metric.points else None
    shown_latest = next(
        (p for p in reversed(metric.points) if p.status in ("published", "unreliable")), None
    )
    if latest is None:
        text = '<span class="muted">no data yet</span>'
    elif latest.status in ("published", "unreliable"):
        text = (
            f'<span class="big">{escape(fmt_value(latest.value, metric.unit))}</span> '
            f"<span>{escape(metric.period_text(latest.period))}</span> "
            f"{_badge(latest.status)}"
            f"{_badge('partial') if latest.period in metric.partial else ''} "
            f"{_change_text(metric)}"
        )
    else:
        earlier = (
            f" · last shown {escape(fmt_value(shown_latest.value, metric.unit))} in "
            f"{escape(metric.period_text(shown_latest.period))}"
            if shown_latest
            else ""
        )
        text = (
            f"<span>{escape(metric.period_text(latest.period))}</span> "
            f"{_badge(latest.status or 'none', latest.status or 'no data')}"
            f'<span class="muted">{earlier}</span>'
        )
    return text


def _metric_card(
    metric: Metric, change: MetricChange | None, places: dict[str, list[Place]]
) -> str:
    if not metric.points:
        return _no_data_card(metric)
    row = metric.row
    refs = []
    if metric.target is not None:
        refs.append(f"target {escape(fmt_value(metric.target, metric.unit))}")
    if metric.baseline is not None:
        refs.append(f"baseline {escape(fmt_value(metric.baseline, metric.unit))}")
    notes = []
    if change is not None:
        if change.new_periods:
            notes.append(
                "new: "
                + ", ".join(period_label(p, change.level) for p in change.new_periods[-6:])
                + (f" (+{len(change.new_periods) - 6} more)" if len(change.new_periods) > 6 else "")
            )
        if change.revised:
            notes.append(f"{change.revised:,} earlier cells revised")
        if change.newly_withheld:
            notes.append(f"{change.newly_withheld:,} cells newly withheld")
        if change.newly_shown:
            notes.append(f"{change.newly_shown:,} cells newly shown")
    chart = trend_svg(
        metric.points,
        unit=metric.unit,
        title=row.get("title") or metric.metric_id,
        level=metric.level,
        target=metric.target,
        baseline=metric.baseline,
        chart_id=f"trend-{metric.metric_id}",
        partial=metric.partial,
        stale=metric.stale,
        notes=metric.notes,
    )
    direction = (row.get("direction") or "").replace("_", " ")
    since = (
        f'<div class="muted">Since the previous release: {escape("; ".join(notes))}</div>'
        if notes
        else ""
    )
    partial = _partial_note(metric)
    keys = legend(
        metric.points,
        target=metric.target is not None,
        baseline=metric.baseline is not None,
        partial=metric.partial,
    )
    return f"""
<article class="card" id="m-{escape(metric.metric_id)}">
  <h3>{escape(row.get("title") or metric.metric_id)}</h3>
  <div class="muted">{escape(row.get("goal") or "")} · {escape(row.get("indicator") or "")}
   · {escape(direction)}{" · " + " · ".join(refs) if refs else ""}</div>
  <div class="headline">{headline(metric)}</div>
  {doubt(metric)}
  {chart}
  {keys}
  {notes_list(metric)}
  {since}
  {_map_figure(metric, places)}
  <p class="def">{escape(row.get("definition") or "")} City-wide, by {metric.level}{partial}.
   Owner: {escape(row.get("owner") or NA)}. Data: {escape(str(row.get("providers") or NA))}.
   Counts below {escape(str(row.get("min_cell_size") or "k"))} are not shown.</p>
</article>"""


def doubt(metric: Metric) -> str:
    """What makes the card's figures uncertain, said above its chart."""
    if metric.stale is None:
        return ""
    return (
        f'<p class="doubt stale">\N{WARNING SIGN} Read with care: {escape(metric.stale)}. '
        "The latest figures may lack what has not arrived.</p>"
    )


def _partial_note(metric: Metric) -> str:
    """Which of the chart's periods are partial: they are not compared or used for trends."""
    partial = [p for p in metric.partial if any(q.period == p for q in metric.points)]
    if not partial:
        return ""
    shown = ", ".join(metric.period_text(p) for p in sorted(partial)[-3:])
    return f"; partial: {escape(shown)} (not used for the trend or compared with whole periods)"


def _metrics_section(data: BriefData) -> str:
    by_dimension: dict[str, list[Metric]] = {}
    for metric in data.metrics:
        by_dimension.setdefault(metric.row.get("dimension") or "Other", []).append(metric)
    blocks = [f'<p class="print-only muted">{escape(PRINT_LEGEND)}</p>']
    for dimension, metrics in by_dimension.items():
        cards = "".join(
            _metric_card(m, data.changes.metrics.get(m.metric_id), data.places) for m in metrics
        )
        empty = (
            "" if any(m.points for m in metrics) else f'<p class="empty">{NO_DIMENSION_DATA}</p>'
        )
        blocks.append(
            f'<section class="dimension"><h2>{escape(dimension)}</h2>{empty}'
            f'<div class="grid">{cards}</div></section>'
        )
    if len(blocks) == 1:
        return f'<section id="metrics"><h2>Metrics</h2><p class="empty">{NO_METRICS}</p></section>'
    return "".join(blocks)


def _changes_section(data: BriefData) -> str:
    ch = data.changes
    if ch.previous is None:
        return (
            '<section id="changes"><h2>What changed since the previous release</h2>'
            "<p>This is the first release in the release log.</p></section>"
        )
    items = []
    if ch.added_files or ch.removed_files:
        per_provider: dict[str, list[str]] = {}
        for f in ch.added_files:
            per_provider.setdefault(f.provider, []).append(f.file_name)
        text = "; ".join(
            f"{escape(p)}: {len(names)} file{'s' if len(names) != 1 else ''}"
            + (f" ({escape(', '.join(names[:6]))}{', …' if len(names) > 6 else ''})"
               if data.audience == "pst" else "")
            for p, names in sorted(per_provider.items())
        )  # fmt: skip
        if text:
            items.append(f"<li>New deliveries: {text}.</li>")
        if ch.removed_files:
            items.append(
                f"<li>{len(ch.removed_files)} earlier file(s) replaced by a correction or "
                "no longer used.</li>"
            )
    else:
        items.append("<li>No new deliveries.</li>")
    if ch.policy_changed:
        items.append("<li>The privacy policy changed (privacy/policy.yml).</li>")
    if ch.code_changed:
        items.append("<li>The pipeline's code or metric definitions changed.</li>")
    if not ch.comparable:
        items.append(
            "<li>The previous release's export is no longer kept, so values cannot be compared."
            "</li>"
        )
    rows = []
    titles = {m.metric_id: m.row.get("title") or m.metric_id for m in data.metrics}
    for metric_id, mc in sorted(ch.metrics.items(), key=lambda kv: titles.get(kv[0], kv[0])):
        if not (mc.new_periods or mc.revised or mc.newly_withheld or mc.newly_shown or mc.dropped):
            continue
        new = ", ".join(period_label(p, mc.level) for p in mc.new_periods[-4:])
        if len(mc.new_periods) > 4:
            new = f"… {new}"
        rows.append(
            f"<tr><td>{escape(titles.get(metric_id, metric_id))}</td><td>{escape(new) or NA}</td>"
            f"<td>{mc.revised:,}</td><td>{mc.newly_withheld:,}</td><td>{mc.newly_shown:,}</td>"
            f"<td>{mc.dropped:,}</td></tr>"
        )
    if ch.comparable and not rows:
        items.append("<li>No published value changed.</li>")
    table = (
        "<table><thead><tr><th>metric</th><th>new periods</th><th>cells revised</th>"
        "<th>newly withheld</th><th>newly shown</th><th>cells no longer published</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else ""
    )
    return f"""
<section id="changes"><h2>What changed since the previous release</h2>
<p>Compared with release <b>{escape(ch.previous.release_id)}</b>, published
{_date(ch.previous.published_at)}.</p>
<ul class="tight">{"".join(items)}</ul>{table}</section>"""


def _freshness_section(data: BriefData) -> str:
    pst = data.audience == "pst"
    head = (
        "<th>partner</th><th>dataset</th><th>cadence</th><th>data through</th>"
        "<th>days since</th><th>next expected by</th><th>status</th>"
        + ("<th>steward</th>" if pst else "")
    )
    rows = []
    for p in data.providers:
        status = p.get("freshness_status")
        steward = ""
        if pst:
            contact = " ".join(
                str(v) for v in (p.get("steward"), p.get("steward_email")) if v is not None
            )
            steward = f"<td>{escape(contact) or NA}</td>"
        days = p.get("days_since_data")
        rows.append(
            f"<tr><td>{escape(str(p.get('organisation') or p.get('provider')))}</td>"
            f"<td>{escape(str(p.get('title') or p.get('dataset')))}</td>"
            f"<td>{escape(str(p.get('cadence') or ''))}</td>"
            f"<td class='nowrap'>{_date(p.get('data_through'))}</td>"
            f"<td>{NA if days is None else days}</td>"
            f"<td class='nowrap'>{_date(p.get('next_expected_by'))}</td>"
            f"<td>{_badge(status, FRESHNESS_LABEL.get(status or '', status))}</td>{steward}</tr>"
        )
    as_of = next((p.get("as_of") for p in data.providers if p.get("as_of")), None)
    return f"""
<section id="freshness"><h2>Data freshness by partner</h2>
<p class="muted">As of {_date(as_of)}. "Late" and "overdue" follow each dataset's agreed delivery
limits.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>"""


def _areas_section(data: BriefData) -> str:
    partners: dict[str, set[str]] = {}
    for p in data.providers:
        area = p.get("community_map_area")
        if area:
            partners.setdefault(area, set()).add(str(p.get("organisation") or p.get("provider")))
    areas = list(COMMUNITY_MAP_AREAS) + sorted(set(partners) - set(COMMUNITY_MAP_AREAS))
    tiles = []
    for area in areas:
        names = sorted(partners.get(area, ()))
        body = (
            "<ul class='tight'>" + "".join(f"<li>{escape(n)}</li>" for n in names) + "</ul>"
            if names
            else "no data partner yet"
        )
        tiles.append(
            f'<div class="area{"" if names else " none"}" data-area="{escape(area)}">'
            f"<b>{escape(area)}</b>{body}</div>"
        )
    covered = sum(1 for a in areas if partners.get(a))
    return f"""
<section id="community-map"><h2>Community Map: areas with data partners</h2>
<p class="muted">{covered} of {len(areas)} areas of the CS360 Community Map share data with the
PST.</p>
<div class="areas">{"".join(tiles)}</div></section>"""


def _checks_section(data: BriefData) -> str:
    items = []
    if data.entry is not None:
        items.append(f"<li>{escape(data.entry.checks_summary)}.</li>")
    if data.validation is not None:
        v = data.validation
        verdict = "passed" if v.passed else "FAILED"
        link = f' (<a href="{escape(v.docs_index)}">Data Docs</a>)' if v.docs_index else ""
        items.append(
            f"<li>Expectations on the published tables: <b>{verdict}</b>, "
            f"{escape(v.summary())}{link}.</li>"
        )
        for o in v.warnings + v.failures:
            items.append(
                f"<li>{'Warning' if o.severity != 'critical' else 'Failed'}: "
                f"{escape(o.table)}: {escape(o.description)} ({o.unexpected or 0:,} rows).</li>"
            )
    else:
        items.append("<li>Expectations were not run for this release.</li>")
    return f'<section id="checks"><h2>Checks</h2><ul class="tight">{"".join(items)}</ul></section>'


def _history_section(data: BriefData) -> str:
    rows = []
    for e in data.log:
        current = ' style="font-weight:600"' if e.release_id == data.release_id else ""
        rows.append(
            f"<tr{current}><td class='nowrap'>{escape(e.release_id)}</td>"
            f"<td class='nowrap'>{_date(e.first_published_at)}</td>"
            f"<td class='nowrap'>{_date(e.published_at)}</td><td>{len(e.input_files):,}</td>"
            f"<td>{escape(e.code_version)}</td><td>{escape(e.checks_summary)}</td></tr>"
        )
    return f"""
<section id="history"><h2>Release history</h2>
<table><thead><tr><th>release</th><th>first published</th><th>last published</th>
<th>input files</th><th>code</th><th>checks</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></section>"""


def _downloads_section(data: BriefData) -> str:
    links = " · ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in data.files)
    return f"""
<section id="downloads"><h2>Downloads</h2><p>{links or NA}</p>
<p class="muted">In the CSV and Excel files a withheld number reads "suppressed" or "missing",
never a blank: do not read it as zero.</p></section>"""


def render(data: BriefData) -> str:
    audience = AUDIENCE_TITLE.get(data.audience, data.audience)
    entry = data.entry
    published = _date(entry.published_at) if entry else NA
    through = max((p.period for m in data.metrics for p in m.points), default=None)
    suppression = (
        "A count from 1 up to the metric's minimum cell size k is never shown, nor any rate, "
        "percent or median resting on one, and further cells are withheld where a hidden count "
        "could otherwise be worked out from published ones. A withheld month is shaded in the "
        "charts; it is not a zero."
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>CS360 brief: {escape(audience)}, release {escape(data.release_id)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>CompStat360 brief: {escape(audience)}</h1>
<p>Release {escape(data.release_id)} · published {published} · data through
{escape(period_label(through)) if through else NA}</p>
</header>
<main>
{_changes_section(data)}
{_metrics_section(data)}
{_freshness_section(data)}
{_areas_section(data)}
{_checks_section(data)}
{_history_section(data)}
{_downloads_section(data)}
<section id="notes"><h2>About these figures</h2><p>{escape(suppression)}</p>
<p class="muted">Figures for the {escape(audience)} audience only. Privacy rules:
privacy/policy.yml. Release {escape(data.release_id)};
code {escape(entry.code_version if entry else NA)};
policy sha256 {escape(entry.policy_sha256[:12] if entry else NA)}.</p></section>
<footer>Generated from the published warehouse; this page loads nothing from the network.</footer>
</main>
</body>
</html>
"""
