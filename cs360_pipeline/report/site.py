"""The site: one release for one audience as pages a reader can browse from the file system.

``data/exports/<release>/<audience>/site/`` holds an index of the metrics by CS360 dimension and
a page per metric: what it is and who owns it, its city-wide trend, its map, its trend by
district, the city-wide values period by period, and a download of all its rows. Like the
brief, every page is self-contained (inline CSS and SVG, no script, nothing fetched) and links
only to files beside it, so the public audience's site is what a PST can post as it is. Pages
are rendered from ``templates/index.html`` and ``templates/metric.html``.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from cs360_pipeline.publish.audiences import Reader
from cs360_pipeline.publish.exports import write_metric_csv
from cs360_pipeline.publish.outputs import audience_dir, write_text
from cs360_pipeline.report.brief import by_dimension, page_context
from cs360_pipeline.report.charts import Point, fmt_value, trend_svg
from cs360_pipeline.report.data import NA, BriefData, Metric, gather
from cs360_pipeline.report.views import card, markup, render
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, literal

SITE_DIR = "site"
WITHHELD = ("suppressed", "missing")


@dataclass(frozen=True)
class Site:
    folder: Path
    pages: list[Path]


def write_site(paths: Paths, release_id: str, reader: Reader) -> Site:
    """Write the audience's site for the release in the warehouse; returns its pages."""
    audience = reader.name
    data = gather(paths, release_id, reader)
    folder = audience_dir(paths, release_id, audience) / SITE_DIR
    common = page_context(data)
    pages = [
        write_text(
            folder / "index.html",
            render("index.html", **common, root="", dimensions=by_dimension(data)),
        )
    ]
    with closing(connect(None)) as con:
        con.execute(f"ATTACH {literal(paths.warehouse_db)} AS wh (READ_ONLY)")
        con.execute("USE wh")
        districts = con.execute(
            "SELECT geo_code, coalesce(name, geo_code) FROM geography "
            "WHERE geo_level = 'district' ORDER BY geo_code"
        ).fetchall()
        for metric in data.metrics:
            target = folder / "data" / f"{metric.metric_id}.csv"
            rows = write_metric_csv(con, audience, metric.metric_id, target)
            page = _metric_page(con, data, metric, districts, rows)
            html = render("metric.html", **common, root="../", page=page)
            pages.append(write_text(folder / "metrics" / f"{metric.metric_id}.html", html))
    return Site(folder=folder, pages=pages)


def _metric_page(
    con: duckdb.DuckDBPyConnection,
    data: BriefData,
    metric: Metric,
    districts: list[tuple[str, str]],
    rows: int,
) -> dict[str, Any]:
    row = metric.row
    level, charts = _district_charts(con, data.audience, metric, districts)
    return {
        "card": card(metric, places=data.places),
        "cadence": row.get("cadence") or NA,
        "data_through": row.get("data_through"),
        "target": NA if metric.target is None else fmt_value(metric.target, metric.unit),
        "baseline": NA if metric.baseline is None else fmt_value(metric.baseline, metric.unit),
        "district_level": level,
        "districts": charts,
        "periods": _period_rows(con, data.audience, metric),
        "rows": f"{rows:,}",
    }


def _district_charts(
    con: duckdb.DuckDBPyConnection,
    audience: str,
    metric: Metric,
    districts: list[tuple[str, str]],
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
        chart = trend_svg(
            [Point(p, *cells[code].get(p, (None, None))) for p in periods],
            unit=metric.unit,
            title=f"{name}: {metric.row.get('title') or metric.metric_id}",
            level=level,
            chart_id=f"trend-{metric.metric_id}-{code}",
            partial=partial,
        )
        out.append({"code": code, "name": name, "chart": markup(chart)})
    return level, out


def _period_rows(
    con: duckdb.DuckDBPyConnection, audience: str, metric: Metric
) -> list[dict[str, str]]:
    """The city-wide values of the chart's level, newest first, withheld ones in words."""
    rows = con.execute(
        "SELECT period_start, value, numerator, denominator, status, period_complete "
        "FROM metric_values WHERE audience = ? AND metric_id = ? AND geo_level = 'city' "
        "AND breakdown = 'total' AND period_level = ? ORDER BY period_start DESC",
        [audience, metric.metric_id, metric.level],
    ).fetchall()

    def count(n: int | None, status: str) -> str:
        if n is not None:
            return f"{n:,}"
        return status if status == "suppressed" else NA

    return [
        {
            "period": metric.period_text(start),
            "value": status if status in WITHHELD else fmt_value(value, metric.unit),
            "numerator": count(numerator, status),
            "denominator": count(denominator, status),
            "status": status,
            "complete": "yes" if complete else "partial",
        }
        for start, value, numerator, denominator, status, complete in rows
    ]
