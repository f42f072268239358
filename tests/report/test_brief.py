"""The brief: self-contained HTML per release and audience, checked in the file and in a browser.

The demo deployment's refresh writes the briefs; the browser test opens them in Debian's chromium,
headless, and fails on any console message, a chart without geometry, or a page that loads
something from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.registry import load_providers
from cs360_pipeline.registry.models import COMMUNITY_MAP_AREAS
from cs360_pipeline.report.brief import write_brief
from cs360_pipeline.report.charts import Point, fmt_change, legend, period_label, trend_svg
from cs360_pipeline.report.maps import MapValue, Place, classes, map_svg
from cs360_pipeline.settings import Paths
from tests.conftest import AUDIENCES, READERS, Deployment, warehouse_copy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROBE = """
<script>
(function () {
  var out = {charts: [], errors: window.__errors || []};
  document.querySelectorAll("svg.trend").forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var marks = [];
    svg.querySelectorAll("polyline.series, circle.point, rect.gap").forEach(function (el) {
      var b = el.getBBox();
      marks.push([el.tagName, el.getAttribute("class"), b.width, b.height]);
    });
    out.charts.push({id: svg.id, width: box.width, height: box.height, marks: marks});
  });
  out.maps = [];
  document.querySelectorAll("svg.map").forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var places = [];
    svg.querySelectorAll("path.place").forEach(function (el) {
      var b = el.getBBox();
      places.push([el.getAttribute("class"), b.width, b.height,
                   window.getComputedStyle(el).fill]);
    });
    out.maps.push({id: svg.id, width: box.width, height: box.height, places: places});
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""
ERROR_CATCHER = (
    "<script>window.__errors = [];"
    "window.addEventListener('error', function (e) { window.__errors.push(String(e.message)); });"
    "</script>"
)


def release_of(demo: Deployment) -> str:
    return demo.query("SELECT max(release_id) FROM metric_values")[0][0]


def brief_path(demo: Deployment, audience: str) -> Path:
    return demo.data / "exports" / release_of(demo) / audience / "brief.html"


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    return subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


# --- Charts ----------------------------------------------------------------------------------


def months(n: int) -> list[dt.date]:
    return [dt.date(2024 + (m // 12), m % 12 + 1, 1) for m in range(n)]


def test_chart_marks_withheld_and_empty_months_and_breaks_the_line() -> None:
    periods = months(8)
    points = [
        Point(periods[0], 12.0, "published"),
        Point(periods[1], 15.0, "published"),
        Point(periods[2], None, "suppressed"),
        Point(periods[3], 11.0, "unreliable"),
        Point(periods[4], 14.0, "published"),
        Point(periods[5], None, "missing"),
        Point(periods[6], None, None),  # nothing delivered
        Point(periods[7], 9.0, "published"),
    ]
    svg = trend_svg(points, unit="count", title="Test", target=10.0, baseline=20.0)

    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert re.findall(r'<rect class="gap (\S+)"', svg) == ["suppressed", "missing", "no-data"]
    # Three runs of shown values: [0, 1], [3, 4], [7]; a single point draws no line.
    assert svg.count('<polyline class="series"') == 2
    assert re.findall(r'<circle class="point (\w+)"', svg) == [
        "published", "published", "unreliable", "published", "published",
    ]  # fmt: skip
    assert 'fill="#fff"' in re.search(r'<circle class="point unreliable"[^>]*>', svg).group(0)
    assert '<line class="target"' in svg and '<line class="baseline"' in svg
    assert "Mar 2024: hidden: a count too small" in svg and "Jul 2024: no data delivered" in svg
    # A withheld month is never drawn at zero: no point sits on a withheld period.
    assert "Mar 2024: 0" not in svg


def test_chart_marks_partial_periods_and_late_sources() -> None:
    periods = months(4)
    points = [Point(p, 40.0 + i, "published") for i, p in enumerate(periods)]
    points[2] = Point(periods[2], None, "suppressed")
    partial = {periods[0], periods[2], periods[3]}  # a withheld partial month keeps its band
    svg = trend_svg(points, unit="percent", title="T", partial=partial, stale="a/b overdue")
    assert svg.count('class="partial-ring"') == 2 and svg.count('class="partial-mark"') == 2
    assert "Jan 2024: partial period" in svg and "Apr 2024: partial period" in svg
    assert re.search(r'<text class="stale-note"[^>]*>[^<]*late or behind<title>a/b overdue', svg)
    plain = trend_svg(points, unit="percent", title="T")
    assert "partial" not in plain and "stale-note" not in plain
    keys = legend(points, target=False, baseline=False, partial=partial)
    assert "p = partial period" in keys and "s = hidden: a count too small" in keys


def test_a_change_of_percents_is_in_points() -> None:
    assert fmt_change(4.4, "percent") == "4.4 points"
    assert fmt_change(25.0, "count") == "25"


def test_chart_without_target_or_values_says_so() -> None:
    periods = months(3)
    svg = trend_svg([Point(p, None, "suppressed") for p in periods], unit="count", title="T")
    assert "<circle" not in svg and "<polyline" not in svg
    assert "target" not in svg and "baseline" not in svg
    assert "no value can be shown for any period" in svg


# --- The demo's briefs -------------------------------------------------------------------------


@pytest.mark.parametrize("audience", AUDIENCES)
def test_brief_is_self_contained(demo: Deployment, audience: str) -> None:
    page = brief_path(demo, audience).read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page.lower()
    assert "@import" not in page and "@font-face" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    # A url() may name a data: URI or a fragment of this page (a map's hatching), nothing else.
    assert not re.search(r"url\(\s*['\"]?(?!data:|#)", page)
    # Only the SVG namespace URI may look like an address.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_briefs_show_every_metric_by_dimension_with_a_chart(demo: Deployment) -> None:
    for audience in AUDIENCES:
        page = brief_path(demo, audience).read_text(encoding="utf-8")
        catalog = demo.query(
            f"SELECT dimension, metric_id FROM metric_catalog WHERE audience = '{audience}' "
            "ORDER BY display_order"
        )
        dimensions = list(dict.fromkeys(d for d, _ in catalog))
        headings = re.findall(r'<section class="dimension"><h2>([^<]*)</h2>', page)
        assert [html.unescape(h) for h in headings] == dimensions
        for _, metric_id in catalog:
            article = rf'<article class="card" id="m-{metric_id}">(.*?)</article>'
            card = re.search(article, page, re.S)
            assert card, metric_id
            assert f'<svg class="trend" id="trend-{metric_id}"' in card.group(1)


def test_brief_marks_each_month_as_the_audience_published_it(demo: Deployment) -> None:
    """Every dot and every shaded month of every chart matches that audience's city series."""
    for audience in AUDIENCES:
        page = brief_path(demo, audience).read_text(encoding="utf-8")
        rows = demo.query(
            f"""
            SELECT metric_id, period_level, strftime(period_start, '%Y-%m'), status
            FROM metric_values
            WHERE audience = '{audience}' AND geo_level = 'city' AND breakdown = 'total'
            """
        )
        judged = dict(
            demo.query(
                "SELECT metric_id, latest_period_level FROM metric_catalog "
                f"WHERE audience = '{audience}'"
            )
        )
        for metric_id in {r[0] for r in rows}:
            card = re.search(rf'id="m-{metric_id}">(.*?)</article>', page, re.S).group(1)
            levels = {r[1] for r in rows if r[0] == metric_id}
            # The level the catalog judges the metric at, else the finest it has.
            level = judged.get(metric_id)
            if level not in levels:
                level = next(lv for lv in ("month", "quarter", "year") if lv in levels)
            assert f"City-wide, by {level}" in card, (audience, metric_id)
            expected = sorted(r[3] for r in rows if r[0] == metric_id and r[1] == level)
            drawn = re.findall(r'<circle class="point (\w+)"', card) + re.findall(
                r'<rect class="gap (suppressed|missing)"', card
            )
            assert sorted(drawn) == expected, (audience, metric_id)


def test_public_brief_holds_only_public_figures(demo: Deployment, tmp_path: Path) -> None:
    """Give the two audiences different numbers for one month; each brief shows only its own."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(demo.warehouse, data / "warehouse.duckdb")
    con = duckdb.connect(str(data / "warehouse.duckdb"))
    try:
        metric, level, period = con.execute(
            """
            SELECT metric_id, period_level, max(period_start) FROM metric_values
            WHERE metric_id = 'shots_fired_calls' AND geo_level = 'city'
              AND breakdown = 'total' AND period_level = 'month'
            GROUP BY ALL
            """
        ).fetchall()[0]
        for audience, value in (("pst", 8888), ("public", 7777)):
            con.execute(
                "UPDATE metric_values SET value = ?, numerator = ?, status = 'published' "
                "WHERE audience = ? AND metric_id = ? AND period_level = ? AND period_start = ? "
                "AND geo_level = 'city' AND breakdown = 'total'",
                [value, value, audience, metric, level, period],
            )
    finally:
        con.close()
    paths = Paths(data_dir=data, sources_dir=demo.sources)
    release_id = release_of(demo)
    public = write_brief(paths, release_id, READERS["public"]).read_text(encoding="utf-8")
    pst = write_brief(paths, release_id, READERS["pst"]).read_text(encoding="utf-8")

    assert "7,777" in public and "8,888" not in public
    assert "8,888" in pst and "7,777" not in pst
    # Partners' contacts are for the PST only.
    stewards = {p.steward.name for p in load_providers(demo.sources).values()}
    assert stewards and all(name in pst for name in stewards)
    assert not any(name in public for name in stewards)


def test_cards_of_late_sources_say_so(demo: Deployment, tmp_path: Path) -> None:
    """A metric whose sources are late is marked on its card and in its chart; the others
    are not."""
    paths = warehouse_copy(
        demo,
        tmp_path,
        "UPDATE metric_catalog SET freshness_status = 'stale', "
        "stale_sources = 'police/calls overdue, data far_behind' "
        "WHERE metric_id = 'shots_fired_calls'",
    )
    page = write_brief(paths, release_of(demo), READERS["pst"]).read_text(encoding="utf-8")
    cards = dict(re.findall(r'<article class="card" id="m-([^"]+)">(.*?)</article>', page, re.S))
    late = cards.pop("shots_fired_calls")
    assert '<p class="doubt stale">' in late and "police/calls overdue, data far behind" in late
    assert 'class="stale-note"' in late
    assert not any("doubt" in card or "stale-note" in card for card in cards.values())


def test_brief_shows_freshness_and_community_map_areas(demo: Deployment) -> None:
    providers = load_providers(demo.sources)
    status = demo.query("SELECT title, freshness_status FROM provider_status")
    for audience in AUDIENCES:
        page = html.unescape(brief_path(demo, audience).read_text(encoding="utf-8"))
        freshness = page.split('<section id="freshness">')[1].split("</section>")[0]
        for title, state in status:
            row = re.search(rf"<td>{re.escape(title)}</td>.*?</tr>", freshness, re.S)
            assert row, title
            assert f"b-{state}" in row.group(0)
        areas = page.split('<section id="community-map">')[1].split("</section>")[0]
        for area in COMMUNITY_MAP_AREAS:
            tile = re.search(rf'data-area="{re.escape(area)}">(.*?)</div>', areas, re.S).group(1)
            partners = {p.organisation for p in providers.values() if p.community_map_area == area}
            if partners:
                assert all(name in tile for name in partners), area
            else:
                assert "no data partner yet" in tile, area


# --- In a real browser -------------------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The check below can fail: a page with a script error shows up in the console log."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><p>x</p><script>throw new Error('probe')</script>")
    result = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert any("probe" in line for line in console_lines(result.stderr)), result.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("audience", AUDIENCES)
def test_brief_renders_in_a_browser(demo: Deployment, audience: str, tmp_path: Path) -> None:
    brief = brief_path(demo, audience)

    # 1. The page as published: no console message at all (a blocked load would log one).
    loaded = chromium("--dump-dom", brief.as_uri(), profile=tmp_path / "p1")
    assert loaded.returncode == 0, loaded.stderr
    assert console_lines(loaded.stderr) == []
    assert "<h1>CompStat360 brief" in loaded.stdout

    # 2. A copy with a probe script (the page's own policy forbids scripts): every chart has
    #    a size, and every line, dot and shaded month in it has geometry.
    page = brief.read_text(encoding="utf-8")
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page, flags=re.S)
    page = page.replace("<head>", "<head>" + ERROR_CATCHER, 1).replace("</body>", PROBE + "</body>")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(page, encoding="utf-8")
    probed = chromium("--dump-dom", probe_page.as_uri(), profile=tmp_path / "p2")
    assert console_lines(probed.stderr) == []
    found = re.search(r'<pre id="probe">(.*?)</pre>', probed.stdout, re.S)
    assert found, probed.stdout[-2000:]
    report = json.loads(html.unescape(found.group(1)))
    assert report["errors"] == []
    metrics = demo.query(f"SELECT count(*) FROM metric_catalog WHERE audience = '{audience}'")[0][0]
    assert len(report["charts"]) == metrics > 0
    for chart in report["charts"]:
        assert chart["width"] > 200 and chart["height"] > 50, chart["id"]
        assert chart["marks"], chart["id"]
        for tag, kind, width, height in chart["marks"]:
            assert width > 0, (chart["id"], tag, kind)
            if tag != "polyline":  # a flat line has no height
                assert height > 0, (chart["id"], tag, kind)

    #    Every map has a size, every place an outline, a hidden place its hatching.
    assert report["maps"], "no map drawn"
    for drawn in report["maps"]:
        assert drawn["width"] > 100 and drawn["height"] > 50, drawn["id"]
        for kind, width, height, fill in drawn["places"]:
            assert width > 0 and height > 0, (drawn["id"], kind)
            assert fill.startswith("url(") == (kind == "place suppressed"), (drawn["id"], fill)

    # 3. A screenshot, kept with the test's files.
    shot = tmp_path / f"brief-{audience}.png"
    taken = chromium(
        f"--screenshot={shot}",
        "--window-size=1400,2600",
        "--hide-scrollbars",
        brief.as_uri(),
        profile=tmp_path / "p3",
    )
    assert taken.returncode == 0, taken.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("audience", AUDIENCES)
def test_brief_prints_on_three_pages(demo: Deployment, audience: str, tmp_path: Path) -> None:
    """Printed (US letter), the brief is a few pages: metrics three to a row, no history."""
    pdf = tmp_path / "brief.pdf"
    printed = chromium(
        f"--print-to-pdf={pdf}", "--no-pdf-header-footer", brief_path(demo, audience).as_uri(),
        profile=tmp_path / "p",
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert 1 <= pages <= 3, pages


# --- Maps --------------------------------------------------------------------------------------


def square_outline(x0: float, y0: float) -> str:
    ring = [[x0, y0], [x0 + 0.01, y0], [x0 + 0.01, y0 + 0.01], [x0, y0 + 0.01], [x0, y0]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def test_map_shades_shown_places_and_marks_hidden_missing_and_absent_ones() -> None:
    places = [
        Place(code, f"Beat {code}", square_outline(-90 + 0.01 * i, 38.5))
        for i, code in enumerate(["A", "B", "C", "D", "E", "F"])
    ]
    values = {
        "A": MapValue(5.0, "published"),
        "B": MapValue(50.0, "published"),
        "C": MapValue(None, "suppressed"),
        "D": MapValue(None, "missing"),
        "E": MapValue(20.0, "unreliable"),
    }  # F has no row at this level
    svg = map_svg(places, values, unit="count", title="T <by beat>", map_id="m1")
    drawn = sorted(re.findall(r'<path class="place (\w+)" data-code="(\w)"', svg))
    assert drawn == sorted([
        ("published", "A"), ("published", "B"), ("suppressed", "C"), ("missing", "D"),
        ("unreliable", "E"), ("none", "F"),
    ])  # fmt: skip
    fills = dict(re.findall(r'data-code="(\w)" d="[^"]*" fill="([^"]+)"', svg))
    assert fills["C"] == "url(#m1-hidden)" and fills["D"] == "#dedede" and fills["F"] == "#ffffff"
    assert fills["A"] != fills["B"]  # 5 and 50 fall in different classes
    assert "Beat C (C): hidden (a small count" in svg and "Beat F (F): not published" in svg
    assert "Beat E (E): 20 (unreliable)" in svg
    assert "T &lt;by beat&gt;" in svg and "<by beat>" not in svg  # names are escaped
    legend_html = svg.split("</svg>", 1)[1]
    assert "hidden (a small count" in legend_html and "missing (nothing delivered" in legend_html
    assert map_svg([], values, unit="count", title="T", map_id="m2") == ""


def test_map_classes_hold_about_equal_numbers_of_places() -> None:
    assert classes(list(range(1, 11))) == [2, 4, 6, 8, 10]
    assert classes([3.0, 3.0, 3.0]) == [3.0]
    assert classes([]) == []


def test_brief_maps_show_each_place_as_the_audience_published_it(demo: Deployment) -> None:
    """Every drawn beat or district has the status metric_values gives it for the period the
    map says, and a place with no row is drawn as such."""
    geography = {
        code: level
        for level, code in demo.query(
            "SELECT geo_level, geo_code FROM geography WHERE boundary IS NOT NULL"
        )
    }
    assert sum(level == "beat" for level in geography.values()) > 50  # the demo's beat map
    drawn = 0
    for audience in AUDIENCES:
        page = brief_path(demo, audience).read_text(encoding="utf-8")
        for metric_id, card in re.findall(r'<article class="card" id="m-([^"]+)">(.*?)</article>',
                                          page, re.S):  # fmt: skip
            figure = re.search(r'<figure class="place-map">(.*?)</figure>', card, re.S)
            if not figure:
                continue
            paths = re.findall(r'<path class="place (\w+)" data-code="([^"]+)"', figure.group(1))
            level = {geography[code] for _, code in paths}
            assert len(level) == 1, metric_id
            map_id = f"map-{metric_id}"
            title = re.search(rf'<svg class="map" id="{map_id}"[^>]*><title>([^<]*)</title>',
                              figure.group(1)).group(1)  # fmt: skip
            period = html.unescape(title).rsplit(", ", 1)[1]
            rows = demo.query(
                f"SELECT geo_code, status, period_level, period_start FROM metric_values "
                f"WHERE audience = '{audience}' AND metric_id = '{metric_id}' "
                f"AND geo_level = '{level.pop()}' AND breakdown = 'total'"
            )
            statuses = {
                code: status for code, status, pl, ps in rows
                if period_label(ps, pl) == period
            }  # fmt: skip
            assert statuses, (audience, metric_id, period)
            for kind, code in paths:
                assert kind == statuses.get(code, "none"), (audience, metric_id, code)
                drawn += 1
    assert drawn > 100


# --- The PST's notes ---------------------------------------------------------------------------


def test_notes_reach_the_charts_pages_exports_and_release_log(demo: Deployment) -> None:
    """The shipped notes (metrics/notes.yml), each where its audiences read: marked on the
    metric's chart and listed under it, on its page of the site, in the exports and in the log."""
    import yaml

    from cs360_pipeline.release.log import read as read_log
    from cs360_pipeline.settings import PROJECT_DIR

    notes = yaml.safe_load((PROJECT_DIR / "metrics" / "notes.yml").read_text())["notes"]
    published = demo.query("SELECT audience, metric_id, note FROM metric_notes ORDER BY ALL")
    expected = sorted(
        (audience, n["metric"], " ".join(n["note"].split()))
        for n in notes
        for audience in n.get("audiences") or ["pst", "public"]
    )
    assert published == expected and len(published) >= 2
    release = release_of(demo)
    for audience, metric_id, note in published:
        page = brief_path(demo, audience).read_text(encoding="utf-8")
        card = re.search(rf'id="m-{metric_id}">(.*?)</article>', page, re.S).group(1)
        assert re.search(r'<g class="note-mark"><title>Note 1: [^<]*</title>', card), metric_id
        assert note in html.unescape(card), metric_id
        site_page = demo.data / "exports" / release / audience / "site" / "metrics"
        assert note in html.unescape((site_page / f"{metric_id}.html").read_text("utf-8"))
        exported = (demo.data / "exports" / release / audience / "metric_notes.csv").read_text()
        assert metric_id in exported
    public = brief_path(demo, "public").read_text(encoding="utf-8")
    for audience, metric_id, note in published:
        if audience == "pst" and ("public", metric_id, note) not in published:
            assert note not in html.unescape(public)  # a PST-only note stays with the PST
    entry = read_log(Paths(data_dir=demo.data, sources_dir=demo.sources))[0]
    assert sorted((n.audience, n.metric_id, n.note) for n in entry.notes) == published


def test_a_note_marks_the_periods_it_is_about() -> None:
    from cs360_pipeline.report.charts import ChartNote

    periods = months(12)
    points = [Point(p, 10.0, "published") for p in periods]
    inside = ChartNote(1, dt.date(2024, 3, 1), dt.date(2024, 5, 31), "a <b> note")
    outside = ChartNote(2, dt.date(2030, 1, 1), dt.date(2030, 1, 31), "later")
    svg = trend_svg(points, unit="count", title="T", notes=[inside, outside])
    assert svg.count('<g class="note-mark">') == 1
    assert "Note 1: Mar 2024 to May 2024: a &lt;b&gt; note" in svg
    bar = re.search(r'<g class="note-mark">.*?<line x1="([\d.]+)" x2="([\d.]+)"', svg).groups()
    slot = (640 - 56 - 104) / 12
    assert [round(float(v), 1) for v in bar] == [round(56 + 2 * slot, 1), round(56 + 5 * slot, 1)]


VISIBLE = """
<script>
(function () {
  function box(el) { var b = el.getBoundingClientRect(); return [b.width, b.height]; }
  var card = document.getElementById("m-shots_fired_calls");
  var out = {
    doubt: Array.from(card.querySelectorAll("p.doubt.stale")).map(box),
    note: Array.from(card.querySelectorAll("text.stale-note")).map(box),
    ring: Array.from(card.querySelectorAll("circle.partial-ring")).map(box),
    badge: Array.from(card.querySelectorAll(".headline .b-partial")).map(box),
    others: document.querySelectorAll("p.doubt.stale, circle.partial-ring").length,
    headline: card.querySelector(".headline").textContent,
  };
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_a_late_source_and_a_partial_month_are_visible_on_the_card(
    demo: Deployment, tmp_path: Path
) -> None:
    """In a browser: the card of a metric whose source is late and whose last month is partial
    shows the warning, the chart's corner note, the partial badge and the ringed point."""
    paths = warehouse_copy(
        demo,
        tmp_path,
        "UPDATE metric_catalog SET freshness_status = 'stale', "
        "stale_sources = 'police/calls late, data behind' WHERE metric_id = 'shots_fired_calls'",
        """
        UPDATE metric_values SET period_complete = false,
               data_through = period_start + INTERVAL 14 DAY
        WHERE metric_id = 'shots_fired_calls' AND period_level = 'month'
          AND period_start = (SELECT max(period_start) FROM metric_values
                              WHERE metric_id = 'shots_fired_calls' AND period_level = 'month')
        """,
    )
    page = write_brief(paths, release_of(demo), READERS["pst"])
    text = page.read_text(encoding="utf-8")
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text, flags=re.S)
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", VISIBLE + "</body>"), encoding="utf-8")
    probed = chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "p")
    assert console_lines(probed.stderr) == []
    found = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', probed.stdout,
                                                re.S).group(1)))  # fmt: skip
    for mark in ("doubt", "note", "ring", "badge"):
        assert len(found[mark]) == 1, mark
        width, height = found[mark][0]
        assert width > 3 and height > 3, (mark, found[mark])
    assert found["others"] == 2  # the other cards carry no such mark
    assert "(through 15 " in found["headline"] and "partial" in found["headline"]
