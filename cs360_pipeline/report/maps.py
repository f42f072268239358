"""Maps as inline SVG, drawn in Python from the city's beat map: no script, no tiles, no request.

A map shows one metric's values by beat (or by district where beats are not published) for one
period. Shown values are shaded in five classes of equal counts of places (quantiles), darker
for more; a hidden place is hatched and a missing one grey, so neither reads as a low value; a
place without a row at that level is left white with a dashed edge. Each place carries its
name and value as a tooltip. Outlines come from ``geography.boundary`` (GeoJSON), simplified to
what the drawing can show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from cs360_pipeline.report.charts import fmt_value

WIDTH = 300  # the drawing's width in SVG units; the height follows the city's shape
MAX_HEIGHT = 320
PAD = 4
SHADES = ("#deebf7", "#9ecae1", "#6baed6", "#3182bd", "#08519c")
HIDDEN, MISSING, NO_ROW = "#f4dca6", "#dedede", "#ffffff"
SHOWN = ("published", "unreliable")
STATUS_WORDS = {
    "suppressed": "hidden (a small count, or hidden to protect one)",
    "missing": "missing (nothing delivered, or no denominator)",
    None: "not published at this level",
}


@dataclass(frozen=True)
class Place:
    code: str
    name: str
    boundary: str  # a GeoJSON Polygon or MultiPolygon in longitude, latitude


@dataclass(frozen=True)
class MapValue:
    value: float | None
    status: str | None


def classes(values: Sequence[float]) -> list[float]:
    """Upper bounds of up to five classes holding about equal numbers of the values."""
    ordered = sorted(values)
    if not ordered:
        return []
    bounds = [ordered[min(len(ordered) - 1, math.ceil(len(ordered) * q / 5) - 1)] for q in
              range(1, 6)]  # fmt: skip
    return sorted(set(bounds))


def _shade(value: float, bounds: list[float]) -> str:
    for i, bound in enumerate(bounds):
        if value <= bound:
            return SHADES[i + len(SHADES) - len(bounds)]
    return SHADES[-1]


class _Projection:
    """Longitude and latitude to SVG units: equirectangular, shrunk by the cosine of the
    city's latitude so that a square block stays square, fitted into the drawing."""

    def __init__(self, shapes: Sequence[object]) -> None:
        import shapely

        west, south, east, north = shapely.total_bounds(shapes)
        self.kx = math.cos(math.radians((south + north) / 2))
        width, height = max((east - west) * self.kx, 1e-9), max(north - south, 1e-9)
        self.scale = min((WIDTH - 2 * PAD) / width, (MAX_HEIGHT - 2 * PAD) / height)
        self.west, self.north = west, north
        self.height = height * self.scale + 2 * PAD
        self.tolerance = 0.6 / self.scale  # degrees under ~half an SVG unit are not drawn

    def path(self, shape: object) -> str:
        import shapely

        simple = shapely.simplify(shape, self.tolerance, preserve_topology=True)
        parts = []
        for polygon in shapely.get_parts(simple):
            for ring in [polygon.exterior, *polygon.interiors]:
                points = " L".join(
                    f"{PAD + (x - self.west) * self.kx * self.scale:.1f} "
                    f"{PAD + (self.north - y) * self.scale:.1f}"
                    for x, y in ring.coords[:-1]
                )
                parts.append(f"M{points} Z")
        return " ".join(parts)


def map_svg(
    places: Sequence[Place],
    values: Mapping[str, MapValue],
    *,
    unit: str,
    title: str,
    map_id: str,
) -> str:
    """One metric's values for one period as a self-contained ``<svg>`` map, with its legend
    as HTML after it. Empty when no place has an outline."""
    import shapely

    drawn = [(p, shapely.from_geojson(p.boundary)) for p in places if p.boundary]
    if not drawn:
        return ""
    projection = _Projection([shape for _, shape in drawn])
    shown = [v.value for v in values.values() if v.status in SHOWN and v.value is not None]
    bounds = classes(shown)
    hatch = f"{map_id}-hidden"
    parts = [
        f'<svg class="map" id="{escape(map_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {projection.height:.0f}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<defs><pattern id="{escape(hatch)}" width="5" height="5" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="5" height="5" fill="{HIDDEN}"/>'
        '<line x1="0" y1="0" x2="0" y2="5" stroke="#b07d12" stroke-width="1.6"/></pattern></defs>',
    ]
    for place, shape in drawn:
        cell = values.get(place.code, MapValue(None, None))
        if cell.status in SHOWN and cell.value is not None:
            fill, kind = _shade(cell.value, bounds), cell.status
            words = f"{fmt_value(cell.value, unit)}" + (
                " (unreliable)" if cell.status == "unreliable" else ""
            )
        else:
            kind = cell.status or "none"
            fill = {"suppressed": f"url(#{hatch})", "missing": MISSING}.get(kind, NO_ROW)
            words = STATUS_WORDS.get(cell.status, STATUS_WORDS[None])
        dash = ' stroke-dasharray="2 2"' if kind == "none" else ""
        parts.append(
            f'<path class="place {escape(kind)}" data-code="{escape(place.code)}" '
            f'd="{projection.path(shape)}" fill="{fill}" fill-rule="evenodd" stroke="#5b6673" '
            f'stroke-width="0.6"{dash}><title>{escape(place.name)} ({escape(place.code)}): '
            f"{escape(words)}</title></path>"
        )
    parts.append("</svg>")
    return "".join(parts) + _legend(bounds, unit, hatch, values)


def _legend(bounds: list[float], unit: str, hatch: str, values: Mapping[str, MapValue]) -> str:
    items = []
    low = None
    for i, bound in enumerate(bounds):
        shade = SHADES[i + len(SHADES) - len(bounds)]
        text = (
            f"up to {fmt_value(bound, unit)}"
            if low is None
            else f"{fmt_value(low, unit)} to {fmt_value(bound, unit)}"
        )
        items.append(_key(f"background-color:{shade}", text))
        low = bound
    statuses = {v.status for v in values.values()}
    if "suppressed" in statuses:
        items.append(_key(f"background-color:{HIDDEN}", STATUS_WORDS["suppressed"], "hatched"))
    if "missing" in statuses:
        items.append(_key(f"background-color:{MISSING}", STATUS_WORDS["missing"]))
    return f'<div class="legend map-legend" data-for="{escape(hatch)}">{"".join(items)}</div>'


def _key(style: str, text: str, kind: str = "") -> str:
    return f'<span class="key"><i class="swatch {kind}" style="{style}"></i>{escape(text)}</span>'
