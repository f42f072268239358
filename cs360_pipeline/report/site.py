"""The site: one release for one audience as pages a reader can browse from the file system.

``data/exports/<release>/<audience>/site/`` holds an index of the metrics by CS360 dimension and
a page per metric: what it is and who owns it, its city-wide trend, its map, its trend by
district, the city-wide values period by period, and a download of all its rows. Like the
brief, every page is self-contained (inline CSS and SVG, no script, nothing fetched) and links
only to files beside it, so the public audience's site is what a PST can post as it is.
Pages are rendered from the Jinja templates in ``templates/``, with autoescaping: every name and
text from the catalog is escaped, and only the charts and maps (built escaped in Python) are
placed as markup.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cs360_pipeline.publish.exports import write_metric_csv
from cs360_pipeline.publish.outputs import audience_dir, write_text
from cs360_pipeline.report.brief import (
    AUDIENCE_TITLE,
    CSS,
    NA,
    BriefData,
    Metric,
    doubt,
    gather,
    headline,
    notes_list,
)
from cs360_pipeline.report.charts import Point, fmt_value, legend, period_label, trend_svg
from cs360_pipeline.report.maps import map_svg
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, literal

SITE_DIR = "site"
SITE_CSS = """
nav.crumbs{max-width:1440px;margin:.6rem auto 0;padding:0 2rem;font-size:.9rem}
a{color:var(--blue)}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.8rem}
.tile{display:flex;flex-direction:column;gap:.2rem;background:#fff;border:1px solid var(--line);
border-radius:8px;padding:.7rem .9rem;color:var(--ink);text-decoration:none}
.tile:hover,.tile:focus{border-color:var(--blue)}
.tile .muted{font-size:.8rem}
dl.facts{display:grid;grid-template-columns:8rem 1fr;gap:.3rem .8rem;background:#fff;
border:1px solid var(--line);border-radius:8px;padding:.7rem 1rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
.small-multiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:.6rem}
.small-multiples figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;
padding:.4rem .6rem}
.small-multiples figcaption{font-weight:600;font-size:.9rem}
svg.map{width:420px;max-width:100%}
"""


@dataclass(frozen=True)
class Site:
    folder: Path
    pages: list[Path]


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("cs360_pipeline.report", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def write_site(paths: Paths, release_id: str, audience: str) -> Site:
    """Write the audience's site for the release in the warehouse; returns its pages."""
    from markupsafe import Markup

    data = gather(paths, release_id, audience)
    folder = audience_dir(paths, release_id, audience) / SITE_DIR
    env = _environment()
    common = _common(data)
    pages = []
    with closing(connect(None)) as con:
        con.execute(f"ATTACH {literal(paths.warehouse_db)} AS wh (READ_ONLY)")
        con.execute("USE wh")
        districts = con.execute(
            "SELECT geo_code, coalesce(name, geo_code) FROM geography "
            "WHERE geo_level = 'district' ORDER BY geo_code"
        ).fetchall()
        for metric in data.metrics:
            rows = write_metric_csv(
                con, audience, metric.metric_id, folder / "data" / f"{metric.metric_id}.csv"
            )
            page = env.get_template("metric.html").render(
                **common,
                root="../",
                m=_metric_page(con, data, metric, districts, rows, Markup),
            )
            pages.append(write_text(folder / "metrics" / f"{metric.metric_id}.html", page))
    index = env.get_template("index.html").render(
        **common, root="", dimensions=_dimensions(data, Markup)
    )
    pages.insert(0, write_text(folder / "index.html", index))
    return Site(folder=folder, pages=pages)


def _common(data: BriefData) -> dict[str, Any]:
    from markupsafe import Markup

    entry = data.entry
    through = max((p.period for m in data.metrics for p in m.points), default=None)
    return {
        "css": Markup(CSS + SITE_CSS),
        "release_id": data.release_id,
        "audience_title": AUDIENCE_TITLE.get(data.audience, data.audience),
        "published": entry.published_at.strftime("%Y-%m-%d %H:%M UTC") if entry else NA,
        "data_through": period_label(through) if through else NA,
        "about": (
            "A count from 1 up to the metric's minimum cell size k is never shown, nor any "
            "rate, percent or median resting on one, and further cells are hidden where a "
            "hidden count could otherwise be worked out from published ones. A hidden or "
            "missing period is shaded in the charts and hatched or grey on the maps; it is "
            "not a zero."
        ),
    }


def _dimensions(data: BriefData, markup: Any) -> list[dict[str, Any]]:
    by_dimension: dict[str, list[dict[str, Any]]] = {}
    for metric in data.metrics:
        row = metric.row
        by_dimension.setdefault(row.get("dimension") or "Other", []).append(
            {
                "metric_id": metric.metric_id,
                "title": row.get("title") or metric.metric_id,
                "goal": row.get("goal") or "",
                "headline": markup(headline(metric)),
                "stale": metric.stale is not None,
            }
        )
    return [{"name": name, "tiles": tiles} for name, tiles in by_dimension.items()]


def _metric_page(
    con: Any,
    data: BriefData,
    metric: Metric,
    districts: list[tuple[str, str]],
    rows: int,
    markup: Any,
) -> dict[str, Any]:
    row = metric.row
    title = row.get("title") or metric.metric_id
    chart = trend_svg(
        metric.points,
        unit=metric.unit,
        title=title,
        level=metric.level,
        target=metric.target,
        baseline=metric.baseline,
        chart_id=f"trend-{metric.metric_id}",
        partial=metric.partial,
        stale=metric.stale,
        notes=metric.notes,
    )
    found = metric.place_map
    drawing = ""
    if found is not None:
        when = period_label(found.period, found.period_level)
        drawing = map_svg(
            data.places.get(found.geo_level, []),
            found.values,
            unit=metric.unit,
            title=f"{title} by {found.geo_level}, {when}",
            map_id=f"map-{metric.metric_id}",
        )
    district_level, district_charts = _district_charts(
        con, data.audience, metric, districts, markup
    )
    return {
        "metric_id": metric.metric_id,
        "title": title,
        "dimension": row.get("dimension") or "Other",
        "goal": row.get("goal") or "",
        "indicator": row.get("indicator") or "",
        "direction": (row.get("direction") or "").replace("_", " "),
        "definition": row.get("definition") or NA,
        "owner": row.get("owner") or NA,
        "providers": str(row.get("providers") or NA),
        "cadence": row.get("cadence") or NA,
        "data_through": row.get("data_through"),
        "target": NA if metric.target is None else fmt_value(metric.target, metric.unit),
        "baseline": NA if metric.baseline is None else fmt_value(metric.baseline, metric.unit),
        "k": row.get("min_cell_size") or "k",
        "level": metric.level,
        "headline": markup(headline(metric)),
        "doubt": markup(doubt(metric)),
        "notes": markup(notes_list(metric)),
        "chart": markup(chart),
        "legend": markup(
            legend(
                metric.points,
                target=metric.target is not None,
                baseline=metric.baseline is not None,
                partial=metric.partial,
            )
        ),
        "map": markup(drawing) if drawing else "",
        "map_level": found.geo_level if found else "",
        "map_period": period_label(found.period, found.period_level) if found else "",
        "district_level": district_level,
        "districts": district_charts,
        "periods": _period_rows(con, data.audience, metric),
        "rows": f"{rows:,}",
    }


def _district_charts(
    con: Any, audience: str, metric: Metric, districts: list[tuple[str, str]], markup: Any
) -> tuple[str, list[dict[str, Any]]]:
    """(period level, one small chart per district): at the city chart's level where the
    metric has district rows there, else the finest level it has them at."""
    rows = con.execute(
        "SELECT period_level, geo_code, period_start, value, status, period_complete "
        "FROM metric_values WHERE audience = ? AND metric_id = ? AND geo_level = 'district' "
        "AND breakdown = 'total' ORDER BY period_start",
        [audience, metric.metric_id],
    ).fetchall()
    levels = {r[0] for r in rows}
    level = next((lv for lv in (metric.level, "month", "quarter", "year") if lv in levels), None)
    if level is None:
        return metric.level, []
    cells: dict[str, dict[Any, tuple[float | None, str]]] = {}
    partial = set()
    for row_level, code, start, value, status, complete in rows:
        if row_level == level:
            cells.setdefault(code, {})[start] = (value, status)
            if not complete:
                partial.add(start)
    periods = sorted({start for by_period in cells.values() for start in by_period})
    out = []
    for code, name in districts:
        if code not in cells:
            continue
        points = [Point(p, *cells[code].get(p, (None, None))) for p in periods]
        chart = trend_svg(
            points,
            unit=metric.unit,
            title=f"{name}: {metric.row.get('title') or metric.metric_id}",
            level=level,
            chart_id=f"trend-{metric.metric_id}-{code}",
            partial=partial,
        )
        out.append({"code": code, "name": name, "chart": markup(chart)})
    return level, out


def _period_rows(con: Any, audience: str, metric: Metric) -> list[dict[str, str]]:
    """The city-wide values of the chart's level, newest first, withheld ones in words."""
    rows = con.execute(
        "SELECT period_start, value, numerator, denominator, status, period_complete "
        "FROM metric_values WHERE audience = ? AND metric_id = ? AND geo_level = 'city' "
        "AND breakdown = 'total' AND period_level = ? ORDER BY period_start DESC",
        [audience, metric.metric_id, metric.level],
    ).fetchall()
    out = []
    for start, value, numerator, denominator, status, complete in rows:
        withheld = status in ("suppressed", "missing")
        out.append(
            {
                "period": metric.period_text(start),
                "value": status if withheld else fmt_value(value, metric.unit),
                "numerator": (status if status == "suppressed" else NA)
                if numerator is None
                else f"{numerator:,}",
                "denominator": (status if status == "suppressed" else NA)
                if denominator is None
                else f"{denominator:,}",
                "status": status,
                "complete": "yes" if complete else "partial",
            }
        )
    return out
