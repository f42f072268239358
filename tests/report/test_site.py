"""The site: a page per metric beside an index, for each audience, walked in a real browser.

The demo deployment's refresh writes the sites. Every page must exist for every metric of the
audience's catalog, link only to files that are there, load nothing from anywhere, and render
in headless chromium with no console message and with charts and maps that have geometry.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from cs360_pipeline.report.site import SITE_DIR, write_site
from tests.conftest import AUDIENCES, READERS, Deployment, warehouse_copy
from tests.report.test_brief import (
    CHROMIUM,
    ERROR_CATCHER,
    PROBE,
    chromium,
    console_lines,
    release_of,
)


def site(demo: Deployment, audience: str) -> Path:
    return demo.data / "exports" / release_of(demo) / audience / SITE_DIR


def pages(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.html"))


def catalog(demo: Deployment, audience: str) -> list[str]:
    rows = demo.query(f"SELECT metric_id FROM metric_catalog WHERE audience = '{audience}'")
    return sorted(r[0] for r in rows)


@pytest.mark.parametrize("audience", AUDIENCES)
def test_a_page_per_metric_and_every_link_resolves(demo: Deployment, audience: str) -> None:
    folder = site(demo, audience)
    metrics = catalog(demo, audience)
    assert sorted(p.stem for p in (folder / "metrics").glob("*.html")) == metrics
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert sorted(re.findall(r'href="metrics/([^"]+)\.html"', index)) == metrics
    for page in pages(folder):
        text = page.read_text(encoding="utf-8")
        assert text.startswith("<!doctype html>") and "default-src 'none'" in text, page
        assert "<script" not in text.lower(), page
        assert set(re.findall(r"https?://[^\s\"'<>]+", text)) <= {"http://www.w3.org/2000/svg"}
        assert not re.search(r"url\(\s*['\"]?(?!data:|#)", text), page
        for href in re.findall(r'href="([^"]+)"', text):
            assert not re.match(r"[a-z]+:", href), (page, href)  # relative links only
            assert (page.parent / unquote(href)).resolve().is_file(), (page, href)


def test_public_site_holds_only_public_metrics(demo: Deployment) -> None:
    only_pst = set(catalog(demo, "pst")) - set(catalog(demo, "public"))
    assert only_pst  # the demo keeps some metrics for the PST
    public = site(demo, "public")
    names = {p.stem for p in pages(public)} | {p.stem for p in public.rglob("*.csv")}
    assert not names & only_pst


@pytest.mark.parametrize("audience", AUDIENCES)
def test_each_metrics_download_holds_its_rows(demo: Deployment, audience: str) -> None:
    folder = site(demo, audience) / "data"
    for metric_id in catalog(demo, audience):
        with (folder / f"{metric_id}.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        published = demo.query(
            f"SELECT status, count(*) FROM metric_values WHERE audience = '{audience}' "
            f"AND metric_id = '{metric_id}' GROUP BY status"
        )
        assert sum(n for _, n in published) == len(rows), metric_id
        for row in rows:
            assert row["metric_id"] == metric_id and row["audience"] == audience
            if row["status"] in ("suppressed", "missing"):
                assert row["value"] == row["status"]  # the word, never a blank or a zero


def test_catalog_text_is_escaped(demo: Deployment, tmp_path: Path) -> None:
    """A title or definition holding markup is shown as text, never run as markup."""
    paths = warehouse_copy(
        demo,
        tmp_path,
        "UPDATE metric_catalog SET title = '<script>alert(1)</script>', "
        "definition = '<img src=x onerror=alert(2)>' WHERE metric_id = 'shots_fired_calls'",
    )
    written = write_site(paths, release_of(demo), READERS["pst"])
    for page in written.pages:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "<img" not in text, page
    metric = (written.folder / "metrics" / "shots_fired_calls.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in metric
    assert "&lt;img src=x onerror=alert(2)&gt;" in metric


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("audience", AUDIENCES)
def test_every_page_renders_in_a_browser(demo: Deployment, audience: str, tmp_path: Path) -> None:
    """Each page, with a probe added to a copy: no console message, and every chart and map
    has a size and every mark in it geometry."""
    folder = site(demo, audience)
    copy = tmp_path / "site"
    shutil.copytree(folder, copy)
    maps = 0
    for page in pages(copy):
        text = page.read_text(encoding="utf-8")
        text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text, flags=re.S)
        text = text.replace("<head>", "<head>" + ERROR_CATCHER, 1)
        page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        probed = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
        assert probed.returncode == 0, probed.stderr
        assert console_lines(probed.stderr) == [], page
        found = re.search(r'<pre id="probe">(.*?)</pre>', probed.stdout, re.S)
        assert found, page
        report = json.loads(html.unescape(found.group(1)))
        assert report["errors"] == [], page
        for chart in report["charts"]:
            assert chart["width"] > 100 and chart["height"] > 30, (page, chart["id"])
            assert chart["marks"], (page, chart["id"])
        for drawn in report["maps"]:
            assert drawn["width"] > 100 and drawn["places"], (page, drawn["id"])
            for kind, width, height, fill in drawn["places"]:
                assert width > 0 and height > 0, (page, drawn["id"], kind)
                assert fill.startswith("url(") == (kind == "place suppressed"), (page, fill)
            maps += 1
        if page.parent.name == "metrics":
            assert report["charts"], page  # a metric page always has its city chart
    assert maps > 5
