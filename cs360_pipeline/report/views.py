"""What a metric's card says, worked out once for the brief and the site, and the templates.

The pages are Jinja templates (``templates/``) rendered with autoescaping: every name and text
from the catalog or a partner reaches the page escaped. Only the charts and maps, which are
built (and escaped) in Python as inline SVG, are handed to the templates as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from cs360_pipeline.publish.exports import NO_METRIC_DATA
from cs360_pipeline.report.charts import fmt_change, fmt_value, legend, period_label, trend_svg
from cs360_pipeline.report.data import NA, SHOWN, Metric, MetricChange
from cs360_pipeline.report.maps import Place, map_svg

NEW_PERIODS_SHOWN = 6


@cache
def environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("cs360_pipeline.report", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def markup(html: str) -> Any:
    """HTML built and escaped in Python (a chart, a map), placed as it is."""
    from markupsafe import Markup

    return Markup(html)


@dataclass(frozen=True)
class Change:
    """The latest shown value against the one before: ``tone`` good, bad or muted."""

    tone: str
    text: str


def change(metric: Metric) -> Change | None:
    """Coloured by the metric's direction. A partial period (a month delivered through the
    5th, a year not over) is never compared with a whole one: its value covers only part of
    the period."""
    shown = [p for p in metric.points if p.status in SHOWN]
    if shown and shown[-1].period in metric.partial:
        return Change("muted", f"partial {metric.level}: not compared")
    shown = [p for p in shown if p.period not in metric.partial]
    if len(shown) < 2 or shown[-1].value is None or shown[-2].value is None:
        return None
    last, before = shown[-1], shown[-2]
    delta = last.value - before.value
    when = period_label(before.period, metric.level)
    if delta == 0:
        return Change("muted", f"unchanged from {when}")
    direction = metric.row.get("direction") or ""
    tone = "good" if (delta < 0) == direction.startswith("down") else "bad"
    if direction not in ("down_is_good", "up_is_good"):
        tone = "muted"
    arrow = "\N{BLACK UP-POINTING TRIANGLE}" if delta > 0 else "\N{BLACK DOWN-POINTING TRIANGLE}"
    return Change(tone, f"{arrow} {fmt_change(abs(delta), metric.unit)} from {when}")


def card(
    metric: Metric, since: MetricChange | None = None, places: dict | None = None
) -> dict[str, Any]:
    """Everything a metric's card shows: headline, doubts, chart, notes, map, definition."""
    row = metric.row
    title = row.get("title") or metric.metric_id
    latest = metric.points[-1] if metric.points else None
    last_shown = next((p for p in reversed(metric.points) if p.status in SHOWN), None)
    refs = [
        f"{name} {fmt_value(value, metric.unit)}"
        for name, value in (("target", metric.target), ("baseline", metric.baseline))
        if value is not None
    ]
    return {
        "id": metric.metric_id,
        "title": title,
        "goal": row.get("goal") or "",
        "indicator": row.get("indicator") or "",
        "dimension": row.get("dimension") or "Other",
        "direction": (row.get("direction") or "").replace("_", " "),
        "refs": refs,
        "has_data": bool(metric.points),
        "no_data": NO_METRIC_DATA,
        "latest": latest
        and {
            "value": fmt_value(latest.value, metric.unit),
            "period": metric.period_text(latest.period),
            "status": latest.status,
            "shown": latest.status in SHOWN,
            "partial": latest.period in metric.partial,
        },
        "last_shown": last_shown
        and {
            "value": fmt_value(last_shown.value, metric.unit),
            "period": metric.period_text(last_shown.period),
        },
        "change": change(metric),
        "stale": metric.stale,
        "chart": markup(_chart(metric, title)),
        "legend": markup(
            legend(
                metric.points,
                target=metric.target is not None,
                baseline=metric.baseline is not None,
                partial=metric.partial,
            )
        ),
        "notes": [{"number": n.number, "span": n.span(), "text": n.text} for n in metric.notes],
        "since": _since(since),
        "map": _map(metric, title, places or {}),
        "definition": row.get("definition") or "",
        "owner": row.get("owner") or NA,
        "providers": str(row.get("providers") or NA),
        "k": row.get("min_cell_size") or "k",
        "level": metric.level,
        "partial_periods": [
            metric.period_text(p)
            for p in sorted(p for p in metric.partial if any(q.period == p for q in metric.points))
        ][-3:],
    }


def _chart(metric: Metric, title: str) -> str:
    return trend_svg(
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


def _since(change: MetricChange | None) -> list[str]:
    """What the previous release did not have, in words."""
    if change is None:
        return []
    out = []
    if change.new_periods:
        shown = ", ".join(
            period_label(p, change.level) for p in change.new_periods[-NEW_PERIODS_SHOWN:]
        )
        more = len(change.new_periods) - NEW_PERIODS_SHOWN
        out.append(f"new: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    for count, words in (
        (change.revised, "earlier cells revised"),
        (change.newly_withheld, "cells newly withheld"),
        (change.newly_shown, "cells newly shown"),
    ):
        if count:
            out.append(f"{count:,} {words}")
    return out


def _map(metric: Metric, title: str, places: dict[str, list[Place]]) -> dict[str, Any] | None:
    """The metric's map for its latest period, where the city has a beat map."""
    found = metric.place_map
    if found is None:
        return None
    when = period_label(found.period, found.period_level)
    drawing = map_svg(
        places.get(found.geo_level, []),
        found.values,
        unit=metric.unit,
        title=f"{title} by {found.geo_level}, {when}",
        map_id=f"map-{metric.metric_id}",
    )
    if not drawing:
        return None
    if found.period_level == metric.level:
        when = metric.period_text(found.period)  # says whether the period is partial
    return {"level": found.geo_level, "when": when, "drawing": markup(drawing)}
