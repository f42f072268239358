"""Trend charts as inline SVG, drawn in Python: the brief loads no script, font or library.

A chart shows one metric's city-wide series. Shown values are joined by a line (an unreliable
value is a hollow dot); a month whose value is withheld is a shaded band with a letter under it,
so a gap never looks like a zero: ``s`` hidden, ``m`` missing (nothing delivered for the
period, or no denominator), a dash for a period with no row at all. A partial period (not over,
or not delivered whole) is a ringed dot with ``p`` under it. A target and a baseline, when the
catalog has them, are horizontal lines at the level the chart plots. A chart whose sources are
late or behind says so in its top corner.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 104, 14, 36
HALO = 'stroke="#fff" stroke-width="3" paint-order="stroke"'  # legible over lines
SHOWN = ("published", "unreliable")
NA = "\N{EN DASH}"
BANDS = {
    "suppressed": (
        "#f4dca6",
        "s",
        "hidden: a count too small to show, or one hidden so that a small count cannot be "
        "worked out",
    ),
    "missing": ("#dedede", "m", "missing (nothing delivered, or no denominator)"),
    None: ("#ffffff", NA, "no data delivered"),
}
LINE, TARGET, BASELINE, WARN, NOTE = "#1f5fa8", "#237a3b", "#6b6b6b", "#8a5a00", "#6a3d9a"
PARTIAL = "partial period (not over, or not delivered whole): not compared or used for a trend"


@dataclass(frozen=True)
class Point:
    period: dt.date
    value: float | None
    status: str | None  # None: no row for the period (nothing delivered)


@dataclass(frozen=True)
class ChartNote:
    """A PST's note on some months of the series, marked on the chart by its number."""

    number: int
    start: dt.date
    end: dt.date
    text: str

    def span(self) -> str:
        first, last = period_label(self.start), period_label(self.end.replace(day=1))
        return first if first == last else f"{first} to {last}"


def period_end(start: dt.date, level: str) -> dt.date:
    """The last day of the period that starts on ``start``."""
    months = {"month": 1, "quarter": 3, "year": 12}[level]
    index = start.year * 12 + start.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1) - dt.timedelta(days=1)


def fmt_change(delta: float, unit: str) -> str:
    """A difference of two values: percents differ by percentage points, not by percent."""
    if unit == "percent":
        return f"{delta:.1f} points"
    return fmt_value(delta, unit)


def fmt_value(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "minutes":
        return f"{value:.1f} min"
    if unit.startswith("rate"):
        return f"{value:.2f}"
    return f"{value:,.2f}"


def period_label(period: dt.date, level: str = "month") -> str:
    if level == "quarter":
        return f"Q{(period.month - 1) // 3 + 1} {period.year}"
    if level == "year":
        return str(period.year)
    return period.strftime("%b %Y")


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value - 1e-12:
            return step * power
    return 10 * power


def trend_svg(
    points: Sequence[Point],
    *,
    unit: str,
    title: str,
    level: str = "month",
    target: float | None = None,
    baseline: float | None = None,
    chart_id: str = "chart",
    partial: Collection[dt.date] = (),
    stale: str | None = None,
    notes: Sequence[ChartNote] = (),
) -> str:
    """One metric's trend as a self-contained ``<svg>`` element. ``partial``: the periods that
    are not whole; ``stale``: the sources that are late or behind, in words; ``notes``: the
    PST's notes, each a numbered mark over the periods it is about."""
    shown = [p.value for p in points if p.status in SHOWN and p.value is not None]
    refs = [v for v in (target, baseline) if v is not None]
    top = nice_ceiling(max([*shown, *refs, 0.0]) * 1.08)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(points), 1)
    slot = plot_w / n

    def x(i: int) -> float:
        return LEFT + (i + 0.5) * slot

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [
        f'<svg class="trend" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}: trend by {level}">',
        f"<title>{escape(title)}</title>",
    ]
    # Grid and y axis (only the zero line when nothing is shown).
    for tick in (0, top / 2, top) if shown or refs else (0,):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#e6e6e6"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#555">{escape(fmt_tick(tick, unit))}</text>'
        )
    # Withheld and empty periods: a band over the slot and a letter under the axis.
    for i, p in enumerate(points):
        if p.status in SHOWN and p.value is not None:
            continue
        fill, letter, meaning = BANDS.get(p.status, BANDS[None])
        kind = p.status or "no-data"
        parts.append(
            f'<rect class="gap {kind}" x="{LEFT + i * slot:.1f}" y="{TOP}" '
            f'width="{max(slot, 1):.1f}" height="{plot_h}" fill="{fill}" '
            f'stroke="{"#b9b9b9" if p.status is None else "none"}" stroke-dasharray="2 2">'
            f"<title>{escape(period_label(p.period, level))}: {meaning}</title></rect>"
        )
        parts.append(
            f'<text x="{x(i):.1f}" y="{TOP + plot_h + 12}" text-anchor="middle" '
            f'font-size="10" fill="#8a5a00">{letter}</text>'
        )
    # x labels: every January (or every year for coarser levels), and the first period.
    january_soon = any(p.period.month == 1 for p in points[1:5])
    for i, p in enumerate(points):
        first = i == 0 and not january_soon
        if level == "year" or first or (i > 0 and p.period.month == 1):
            label = period_label(p.period, level) if first else str(p.period.year)
            parts.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11" '
                f'fill="#555">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        'stroke="#999"/>'
    )
    # Target and baseline: a line across, labelled in the right margin (labels kept apart).
    labels = []
    for value, colour, label, dash in (
        (baseline, BASELINE, "baseline", "2 3"),
        (target, TARGET, "target", "6 4"),
    ):
        if value is None:
            continue
        parts.append(
            f'<line class="{label}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" stroke="{colour}" stroke-width="1.5" '
            f'stroke-dasharray="{dash}"><title>{label}: {escape(fmt_value(value, unit))}</title>'
            "</line>"
        )
        labels.append([y(value) + 4, colour, f"{label} {fmt_value(value, unit)}"])
    labels.sort()
    if len(labels) == 2 and labels[1][0] - labels[0][0] < 12:
        middle = (labels[0][0] + labels[1][0]) / 2
        labels[0][0], labels[1][0] = middle - 6, middle + 6
    for at, colour, text in labels:
        parts.append(
            f'<text x="{WIDTH - RIGHT + 6}" y="{at:.1f}" font-size="11" fill="{colour}">'
            f"{escape(text)}</text>"
        )
    # The line, broken wherever a value is not shown.
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, p in enumerate(points):
        if p.status in SHOWN and p.value is not None:
            segment.append(f"{x(i):.1f},{y(p.value):.1f}")
        elif segment:
            segments.append(segment)
            segment = []
    if segment:
        segments.append(segment)
    for seg in segments:
        if len(seg) > 1:
            parts.append(
                f'<polyline class="series" points="{" ".join(seg)}" fill="none" '
                f'stroke="{LINE}" stroke-width="2"/>'
            )
    last_shown = max((i for i, p in enumerate(points) if p.status in SHOWN), default=None)
    for i, p in enumerate(points):
        if p.status not in SHOWN or p.value is None:
            continue
        hollow = p.status == "unreliable"
        parts.append(
            f'<circle class="point {p.status}" cx="{x(i):.1f}" cy="{y(p.value):.1f}" '
            f'r="{3.2 if i == last_shown else 2.2}" fill="{"#fff" if hollow else LINE}" '
            f'stroke="{LINE}" stroke-width="1.2"><title>{escape(period_label(p.period, level))}: '
            f"{escape(fmt_value(p.value, unit))} ({p.status})</title></circle>"
        )
    for i, p in enumerate(points):
        if p.period not in partial:
            continue
        if p.status not in SHOWN or p.value is None:
            continue  # a withheld period has its band and letter already
        parts.append(
            f'<circle class="partial-ring" cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="5.5" '
            f'fill="none" stroke="{WARN}" stroke-width="1.2" stroke-dasharray="2 1.5">'
            f"<title>{escape(period_label(p.period, level))}: {PARTIAL}</title></circle>"
            f'<text class="partial-mark" x="{x(i):.1f}" y="{TOP + plot_h + 12}" '
            f'text-anchor="middle" font-size="10" fill="{WARN}">p</text>'
        )
    for note in notes:
        covered = [
            i
            for i, p in enumerate(points)
            if p.period <= note.end and period_end(p.period, level) >= note.start
        ]
        if not covered:
            continue
        x0, x1 = LEFT + covered[0] * slot, LEFT + (covered[-1] + 1) * slot
        parts.append(
            f'<g class="note-mark"><title>Note {note.number}: {escape(note.span())}: '
            f"{escape(note.text)}</title>"
            f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{TOP + 2}" y2="{TOP + 2}" '
            f'stroke="{NOTE}" stroke-width="3"/>'
            f'<circle cx="{x0 + 6:.1f}" cy="{TOP + 2}" r="6" fill="{NOTE}"/>'
            f'<text x="{x0 + 6:.1f}" y="{TOP + 5.5}" text-anchor="middle" font-size="9" '
            f'fill="#fff" font-weight="700">{note.number}</text></g>'
        )
    if stale:
        parts.append(
            f'<text class="stale-note" x="{LEFT + 6}" y="{TOP + 12}" font-size="11" '
            f'font-weight="600" fill="{WARN}" {HALO}>⚠ sources late or behind'
            f"<title>{escape(stale)}</title></text>"
        )
    if last_shown is not None:
        p = points[last_shown]
        parts.append(
            f'<text x="{x(last_shown):.1f}" y="{y(p.value or 0) - 8:.1f}" font-size="11" '
            f'text-anchor="end" font-weight="600" fill="{LINE}" {HALO}>'
            f"{escape(fmt_value(p.value, unit))}</text>"
        )
    if not shown:
        # No period at all is a metric without data, not one whose every value is withheld.
        note = "no value can be shown for any period" if points else "no data published yet"
        parts.append(
            f'<text class="note" x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" '
            f'text-anchor="middle" font-size="13" fill="#6b4500">{note}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def fmt_tick(value: float, unit: str) -> str:
    """An axis label: like a value, but a fractional count keeps its decimal."""
    if unit == "count" and value != int(value):
        return f"{value:,.1f}"
    return fmt_value(value, unit)


def legend(
    points: Sequence[Point],
    *,
    target: bool,
    baseline: bool,
    partial: Collection[dt.date] = (),
) -> str:
    """The keys a chart needs, as HTML (only those that appear in it)."""
    items = ['<span class="key"><i class="dot"></i>shown</span>']
    if any(p.status == "unreliable" for p in points):
        items.append(
            '<span class="key"><i class="dot hollow"></i>unreliable (&lt;20 events)</span>'
        )
    present = {p.status for p in points if p.status not in SHOWN or p.value is None}
    for status, (fill, letter, meaning) in BANDS.items():
        if status in present:
            items.append(
                f'<span class="key"><i class="band" style="background:{fill}"></i>'
                f"{letter} = {escape(meaning)}</span>"
            )
    if any(p.period in partial for p in points):
        items.append(f'<span class="key"><i class="dot partial"></i>p = {PARTIAL}</span>')
    if target:
        items.append('<span class="key"><i class="rule target"></i>target</span>')
    if baseline:
        items.append('<span class="key"><i class="rule baseline"></i>baseline</span>')
    return '<div class="legend">' + "".join(items) + "</div>"
