"""Great Expectations over the published tables, with Data Docs beside the brief.

GX cannot read DuckDB through its SQL datasource (see the stack notes), so each audience's
published tables are pulled into small pandas frames (the published tables are aggregates: tens
of thousands of rows) and validated there. What is checked:

- keys are unique (metric_values per cell, metric_catalog per metric, provider_status per
  dataset);
- values are in range (no negative value or count, percents between 0 and 100, known statuses,
  levels and metrics, one release id);
- no value on a suppressed cell (and a value on every shown one);
- the period spine is complete: every geography and breakdown of a metric has every period the
  metric has, and (a warning) a metric has no month without data between its first and last.

``great_expectations`` takes about four seconds to import, so it is imported inside
:func:`validate` only, and ``cs360 refresh`` starts that import on a side thread as the run
begins (:func:`preload`): the run's first steps wait on DuckDB and dbt, not on Python, so the
import costs the expectations step nothing. Its Data Docs templates load Bootstrap, jQuery and
a logo from CDNs; the pages are rewritten to load nothing from the network and open offline.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import threading
from contextlib import closing
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from cs360_pipeline.publish.outputs import audience_dir, replace_dir, write_text
from cs360_pipeline.publish.warehouse import release_of
from cs360_pipeline.settings import Paths, expectations_enabled
from cs360_pipeline.sql import connect

DOCS_DIR = "data_docs"
SUMMARY_FILE = "expectations.json"
EXPECTATIONS_INDEX = "expectations/metric_values.html"
STATUSES = ["published", "unreliable", "suppressed", "missing"]
FRESHNESS = ["on_time", "late", "overdue", "never_delivered", "not_scheduled"]
CELL_KEY = ["metric_id", "period_level", "period_start", "geo_level", "geo_code", "breakdown"]
STEP = {"month": "INTERVAL 1 MONTH", "quarter": "INTERVAL 3 MONTH", "year": "INTERVAL 1 YEAR"}


def preload() -> None:
    """Import Great Expectations on a daemon thread, when expectations run at all."""
    if expectations_enabled():
        threading.Thread(
            target=importlib.import_module, args=("great_expectations.expectations",), daemon=True
        ).start()


@dataclass(frozen=True)
class Outcome:
    table: str
    expectation: str
    column: str
    description: str
    severity: str  # critical | warning
    success: bool
    unexpected: int | None
    checked: int | None


@dataclass
class Validation:
    release_id: str
    audience: str
    outcomes: list[Outcome] = field(default_factory=list)
    docs_index: str | None = None

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and not self.failures

    def summary(self) -> str:
        met = sum(o.success for o in self.outcomes)
        text = f"{met}/{len(self.outcomes)} expectations met"
        if self.failures:
            text += f", {len(self.failures)} failed"
        if self.warnings:
            text += f", {len(self.warnings)} warning(s)"
        return text

    def to_json(self) -> str:
        data = {
            "release_id": self.release_id,
            "audience": self.audience,
            "passed": self.passed,
            "summary": self.summary(),
            "docs_index": self.docs_index,
            "outcomes": [asdict(o) for o in self.outcomes],
        }
        return json.dumps(data, indent=1)

    @classmethod
    def load(cls, path: Path) -> Validation | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return cls(
            release_id=data["release_id"],
            audience=data["audience"],
            outcomes=[Outcome(**o) for o in data["outcomes"]],
            docs_index=data.get("docs_index"),
        )


def summary_path(paths: Paths, release_id: str, audience: str) -> Path:
    return audience_dir(paths, release_id, audience) / SUMMARY_FILE


# --- The frames ------------------------------------------------------------------------------


def frames(con: duckdb.DuckDBPyConnection, audience: str) -> dict[str, Any]:
    """The pandas frames to validate for one audience, by name."""
    a = [audience]
    steps = " ".join(f"WHEN '{level}' THEN {step}" for level, step in STEP.items())
    cells = """
        SELECT v.*, c.unit FROM metric_values AS v
        LEFT JOIN metric_catalog AS c USING (audience, metric_id)
        WHERE v.audience = ?
    """
    spine = """
        WITH v AS (SELECT * FROM metric_values WHERE audience = ?),
        periods AS (SELECT DISTINCT metric_id, period_level, period_start FROM v),
        series AS (
            SELECT DISTINCT metric_id, period_level, geo_level, geo_code, breakdown FROM v
        )
        SELECT s.*, p.period_start, v.metric_id IS NOT NULL AS present
        FROM series AS s
        JOIN periods AS p USING (metric_id, period_level)
        LEFT JOIN v USING (metric_id, period_level, geo_level, geo_code, breakdown, period_start)
    """
    calendar = f"""
        WITH v AS (SELECT DISTINCT metric_id, period_level, period_start
                   FROM metric_values WHERE audience = ?),
        bounds AS (
            SELECT metric_id, period_level, min(period_start) AS first, max(period_start) AS last
            FROM v GROUP BY ALL
        ),
        expected AS (
            SELECT metric_id, period_level,
                   CAST(unnest(generate_series(first, last,
                        CASE period_level {steps} END)) AS DATE) AS period_start
            FROM bounds
        )
        SELECT e.*, v.metric_id IS NOT NULL AS present
        FROM expected AS e LEFT JOIN v USING (metric_id, period_level, period_start)
    """
    return {
        "metric_values": con.execute(cells, a).df(),
        "period_spine": con.execute(spine, a).df(),
        "period_calendar": con.execute(calendar, a).df(),
        "metric_catalog": con.execute("SELECT * FROM metric_catalog WHERE audience = ?", a).df(),
        "provider_status": con.execute("SELECT * FROM provider_status").df(),
    }


def suites(metric_ids: list[str], release_id: str) -> dict[str, list[tuple[str, dict, str]]]:
    """Per frame: (expectation class, arguments, description); a frame name 'x/y' filters x."""
    shown = "status in ('published', 'unreliable')"
    return {
        "metric_values": [
            ("ExpectCompoundColumnsToBeUnique", {"column_list": CELL_KEY},
             "one row per metric, period, geography and breakdown"),
            ("ExpectColumnValuesToBeInSet", {"column": "status", "value_set": STATUSES},
             "every cell has a known status"),
            ("ExpectColumnValuesToBeInSet", {"column": "metric_id", "value_set": metric_ids},
             "every metric is in the catalog"),
            ("ExpectColumnValuesToBeInSet",
             {"column": "period_level", "value_set": ["month", "quarter", "year"]},
             "known period levels"),
            ("ExpectColumnValuesToBeInSet",
             {"column": "geo_level", "value_set": ["beat", "district", "zone", "city"]},
             "known geography levels"),
            ("ExpectColumnValuesToBeInSet", {"column": "release_id", "value_set": [release_id]},
             "the file holds one release"),
            ("ExpectColumnValuesToBeBetween", {"column": "value", "min_value": 0},
             "no negative value"),
            ("ExpectColumnValuesToBeBetween", {"column": "numerator", "min_value": 0},
             "no negative count"),
            ("ExpectColumnValuesToNotBeNull", {"column": "period_start"},
             "every cell has a period"),
            ("ExpectColumnValuesToNotBeNull", {"column": "period_complete"},
             "every cell says whether its period is complete or partial"),
            ("ExpectColumnValuesToNotBeNull", {"column": "geo_code"},
             "every cell has a geography"),
        ],
        "percent_values": [
            ("ExpectColumnValuesToBeBetween",
             {"column": "value", "min_value": 0, "max_value": 100},
             "a percent lies between 0 and 100"),
        ],
        "suppressed_cells": [
            ("ExpectColumnValuesToBeNull", {"column": column},
             f"no {column} on a suppressed cell")
            for column in ("value", "numerator", "denominator")
        ],
        "missing_cells": [
            ("ExpectColumnValuesToBeNull", {"column": "value"},
             "no value where the denominator is missing"),
        ],
        "shown_cells": [
            ("ExpectColumnValuesToNotBeNull", {"column": "value"},
             f"a value on every shown cell ({shown})"),
        ],
        "period_spine": [
            ("ExpectColumnValuesToBeInSet", {"column": "present", "value_set": [True]},
             "every geography and breakdown of a metric has every period the metric has"),
        ],
        "period_calendar": [
            ("ExpectColumnValuesToBeInSet", {"column": "present", "value_set": [True],
                                             "severity": "warning"},
             "no period without data between a metric's first and last (a warning: a "
             "partner may deliver no data for some months, such as school holidays)"),
        ],
        "metric_catalog": [
            ("ExpectColumnValuesToBeUnique", {"column": "metric_id"}, "one row per metric"),
            *(
                ("ExpectColumnValuesToNotBeNull", {"column": column},
                 f"every metric has a {column}")
                for column in ("title", "dimension", "definition", "unit", "owner")
            ),
            ("ExpectColumnValuesToBeBetween", {"column": "min_cell_size", "min_value": 2},
             "every metric has a minimum cell size of at least 2"),
            ("ExpectColumnValuesToBeInSet",
             {"column": "latest_status", "value_set": STATUSES},
             "the latest status is a known status"),
        ],
        "provider_status": [
            ("ExpectCompoundColumnsToBeUnique", {"column_list": ["provider", "dataset"]},
             "one row per provider and dataset"),
            ("ExpectColumnValuesToBeInSet",
             {"column": "freshness_status", "value_set": FRESHNESS},
             "a known freshness status"),
            ("ExpectColumnValuesToNotBeNull", {"column": "steward"}, "every dataset has a steward"),
        ],
    }  # fmt: skip


def subsets(data: dict[str, Any]) -> dict[str, Any]:
    """Frames derived from metric_values by status and unit."""
    mv = data["metric_values"]
    return {
        **data,
        "percent_values": mv[mv["unit"] == "percent"],
        "suppressed_cells": mv[mv["status"] == "suppressed"],
        "missing_cells": mv[mv["status"] == "missing"],
        "shown_cells": mv[mv["status"].isin(["published", "unreliable"])],
    }


# --- Validation -------------------------------------------------------------------------------


def validate(paths: Paths, release_id: str, audience: str) -> Validation:
    """Validate one audience's published tables; write Data Docs and a JSON summary."""
    with closing(connect(paths.warehouse_db, read_only=True)) as con:
        published = release_of(con)
        if published != release_id:
            raise RuntimeError(f"the warehouse holds {published}, not {release_id}")
        data = frames(con, audience)
    metric_ids = sorted(data["metric_catalog"]["metric_id"].dropna().unique().tolist())
    folder = audience_dir(paths, release_id, audience)
    result = Validation(release_id=release_id, audience=audience)

    def build(docs: Path) -> None:
        result.outcomes = run_suites(subsets(data), suites(metric_ids, release_id), docs)
        make_offline(docs)
        write_index(docs, result)

    replace_dir(folder / DOCS_DIR, build)
    result.docs_index = f"{DOCS_DIR}/index.html"
    write_text(folder / SUMMARY_FILE, result.to_json())
    return result


def run_suites(data: dict[str, Any], plan: dict[str, list[tuple]], docs: Path) -> list[Outcome]:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(context.get_site_names()):
        context.delete_data_docs_site(site)  # the default site writes into a temp folder
    context.add_data_docs_site(
        site_name="cs360",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas("published")
    outcomes = []
    for table, expectations in plan.items():
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = gx.ExpectationSuite(name=table)
        for name, kwargs, description in expectations:
            suite.add_expectation(getattr(gxe, name)(**kwargs, description=description))
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=table, data=batch, suite=suite)
        )
        res = definition.run(
            batch_parameters={"dataframe": data[table]},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 10},
        )
        for r in res.results:
            config = r.expectation_config
            kwargs = config.kwargs
            column = kwargs.get("column") or ", ".join(kwargs.get("column_list") or [])
            outcomes.append(
                Outcome(
                    table=table,
                    expectation=config.type,
                    column=column,
                    description=config.description or "",
                    severity=str(getattr(config.severity, "value", config.severity)),
                    success=bool(r.success),
                    unexpected=r.result.get("unexpected_count"),
                    checked=r.result.get("element_count"),
                )
            )
    context.build_data_docs(site_names=["cs360"])
    return outcomes


EXTERNAL = [
    re.compile(r"<script\b[^>]*>.*?</script>", re.S | re.I),
    re.compile(r"<link\b[^>]*href=\"https?://[^>]*>", re.I),
    re.compile(r"<img\b[^>]*src=\"https?://[^>]*>", re.I),
]
OFFLINE_STYLE = """<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:">
<style>body{font-family:system-ui,sans-serif;margin:1rem 2rem}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}
.collapse:not(.show){display:block}</style>
"""


def write_index(docs: Path, result: Validation) -> None:
    """GX's index page lists its pages with JavaScript from a CDN; this one is plain HTML."""
    pages = {
        p.parent.parent.parent.name: p.relative_to(docs).as_posix()
        for p in sorted(docs.glob("validations/*/*/*/*.html"))
    }
    verdict = "passed" if result.passed else "FAILED"
    rows = []
    for o in result.outcomes:
        state = "met" if o.success else ("failed" if o.severity == "critical" else "warning")
        counted = "" if o.checked is None else f"{o.unexpected or 0:,} of {o.checked:,}"
        link = pages.get(o.table)
        table = f'<a href="{escape(link)}">{escape(o.table)}</a>' if link else escape(o.table)
        rows.append(
            f'<tr class="{state}"><td>{table}</td><td>{escape(o.description)}</td>'
            f"<td><code>{escape(o.expectation)}</code> {escape(o.column)}</td>"
            f"<td>{state}</td><td>{counted}</td></tr>"
        )
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:">
<title>Expectations: {escape(result.release_id)} ({escape(result.audience)})</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem 2rem;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
tr.failed td{{background:#fde2e1}}tr.warning td{{background:#fff4d6}}</style></head>
<body><h1>Expectations on the published tables</h1>
<p>Release <b>{escape(result.release_id)}</b>, audience <b>{escape(result.audience)}</b>:
<b>{verdict}</b>, {escape(result.summary())}. Validated with Great Expectations on the tables
as published. Each table links to its full validation result.</p>
<table><thead><tr><th>table</th><th>expectation</th><th>check</th><th>result</th>
<th>unexpected rows</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<p><a href="{escape(EXPECTATIONS_INDEX)}">The expectation suites</a></p>
</body></html>
"""
    (docs / "index.html").write_text(html, encoding="utf-8")


def make_offline(docs: Path) -> None:
    """Strip the CDN scripts, styles and images from GX's pages; drop the bundled fonts."""
    for page in docs.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for pattern in EXTERNAL:
            html = pattern.sub("", html)
        html = re.sub(r"<head>", "<head>\n" + OFFLINE_STYLE, html, count=1, flags=re.I)
        page.write_text(html, encoding="utf-8")
    shutil.rmtree(docs / "static" / "fonts", ignore_errors=True)
    for image in (docs / "static" / "images").glob("*"):
        if image.suffix in {".gif", ".png"}:
            image.unlink()
