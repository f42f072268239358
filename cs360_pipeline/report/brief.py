"""The brief: one static HTML page per release and audience, for the PST's monthly meeting.

It holds the metrics grouped by CS360 dimension, each with its trend and map; how current each
partner's data is; which Community Map areas have a data partner; what changed since the
previous release; and the checks the release passed. The page is self-contained: inline CSS and
SVG, no script, font or image from anywhere else, and a Content-Security-Policy that would block
any. It is rendered from ``templates/brief.html``.

Everything on the public brief comes from the public audience's rows; the PST brief adds the
partners' contacts and the names of the files delivered.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cs360_pipeline.publish.audiences import Reader
from cs360_pipeline.publish.exports import NO_DIMENSION_DATA
from cs360_pipeline.publish.outputs import audience_dir, write_text
from cs360_pipeline.registry.models import COMMUNITY_MAP_AREAS
from cs360_pipeline.report.charts import period_label
from cs360_pipeline.report.data import NA, BriefData, Metric, gather
from cs360_pipeline.report.views import card, render
from cs360_pipeline.settings import Paths

BRIEF_FILE = "brief.html"
FRESHNESS_LABEL = {
    "on_time": "on time",
    "late": "late",
    "overdue": "overdue",
    "never_delivered": "never delivered",
    "not_scheduled": "reference data",
}
FILES_NAMED = 6  # delivered files named per provider in the PST's "what changed"
PRINT_LEGEND = (
    "In the charts: the line joins the values shown; a hollow dot is unreliable (fewer than 20 "
    "events); a shaded period is withheld: s = hidden (a count too small to show, or one "
    "hidden so that a small count cannot be worked out), m = missing (nothing delivered, or "
    "no denominator); p = a partial period; a numbered purple mark is a note of the PST's; the "
    "dashed green line is the target and the dotted grey one the baseline."
)
ABOUT = (
    "A count from 1 up to the metric's minimum cell size k is never shown, nor any rate, "
    "percent or median resting on one, and further cells are hidden where a hidden count "
    "could otherwise be worked out from published ones. A hidden or missing period is shaded "
    "in the charts and hatched or grey on the maps; it is not a zero."
)


def write_brief(paths: Paths, release_id: str, reader: Reader) -> Path:
    data = gather(paths, release_id, reader)
    target = audience_dir(paths, release_id, reader.name) / BRIEF_FILE
    return write_text(target, render(BRIEF_FILE, **page_context(data), **_brief_context(data)))


def page_context(data: BriefData) -> dict[str, Any]:
    """What every page of a release names: the release, audience, dates."""
    through = max((p.period for m in data.metrics for p in m.points), default=None)
    return {
        "release_id": data.release_id,
        "audience_title": data.reader.title,
        "published": when(data.entry.published_at) if data.entry else NA,
        "data_through": period_label(through) if through else NA,
        "about": ABOUT,
    }


def by_dimension(data: BriefData) -> list[dict[str, Any]]:
    """The metrics' cards grouped by CS360 dimension, in catalog order."""
    groups: dict[str, list[Metric]] = {}
    for metric in data.metrics:
        groups.setdefault(metric.row.get("dimension") or "Other", []).append(metric)
    return [
        {
            "name": name,
            "has_data": any(m.points for m in metrics),
            "cards": [card(m, data.changes.metrics.get(m.metric_id), data.places) for m in metrics],
        }
        for name, metrics in groups.items()
    ]


def when(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _brief_context(data: BriefData) -> dict[str, Any]:
    entry = data.entry
    return {
        "dimensions": by_dimension(data),
        "no_dimension_data": NO_DIMENSION_DATA,
        "print_legend": PRINT_LEGEND,
        "changes": _changes(data),
        "under_agreement": data.reader.under_agreement,
        "as_of": when(next((p.get("as_of") for p in data.providers if p.get("as_of")), None)),
        "providers": [_provider(p, data.reader.under_agreement) for p in data.providers],
        "areas": _areas(data),
        "checks": _checks(data),
        "history": [
            {
                "release_id": e.release_id,
                "current": e.release_id == data.release_id,
                "first": when(e.first_published_at),
                "last": when(e.published_at),
                "files": len(e.input_files),
                "code": e.code_version,
                "checks": e.checks_summary,
            }
            for e in data.log
        ],
        "files": data.files,
        "code_version": entry.code_version if entry else NA,
        "policy_sha256": entry.policy_sha256[:12] if entry else NA,
    }


def _changes(data: BriefData) -> dict[str, Any]:
    ch = data.changes
    if ch.previous is None:
        return {"previous": None}
    items = []
    if ch.added_files or ch.removed_files:
        per_provider: dict[str, list[str]] = {}
        for f in ch.added_files:
            per_provider.setdefault(f.provider, []).append(f.file_name)
        words = []
        for provider, names in sorted(per_provider.items()):
            text = f"{provider}: {len(names)} file{'s' if len(names) != 1 else ''}"
            if data.reader.under_agreement:  # file names are for readers under the agreement
                more = ", …" if len(names) > FILES_NAMED else ""
                text += f" ({', '.join(names[:FILES_NAMED])}{more})"
            words.append(text)
        if words:
            items.append(f"New deliveries: {'; '.join(words)}.")
        if ch.removed_files:
            items.append(
                f"{len(ch.removed_files)} earlier file(s) replaced by a correction or no longer "
                "used."
            )
    else:
        items.append("No new deliveries.")
    if ch.policy_changed:
        items.append("The privacy policy changed (privacy/policy.yml).")
    if ch.code_changed:
        items.append("The pipeline's code or metric definitions changed.")
    if not ch.comparable:
        items.append(
            "The previous release's export is no longer kept, so values cannot be compared."
        )
    titles = {m.metric_id: m.row.get("title") or m.metric_id for m in data.metrics}
    rows = []
    for metric_id, mc in sorted(ch.metrics.items(), key=lambda kv: titles.get(kv[0], kv[0])):
        if not (mc.new_periods or mc.revised or mc.newly_withheld or mc.newly_shown or mc.dropped):
            continue
        new = ", ".join(period_label(p, mc.level) for p in mc.new_periods[-4:])
        rows.append(
            {
                "title": titles.get(metric_id, metric_id),
                "new": (f"… {new}" if len(mc.new_periods) > 4 else new) or NA,
                "revised": mc.revised,
                "withheld": mc.newly_withheld,
                "shown": mc.newly_shown,
                "dropped": mc.dropped,
            }
        )
    if ch.comparable and not rows:
        items.append("No published value changed.")
    return {
        "previous": ch.previous.release_id,
        "previous_at": when(ch.previous.published_at),
        "lines": items,
        "rows": rows,
    }


def _provider(p: dict[str, Any], under_agreement: bool) -> dict[str, Any]:
    status = p.get("freshness_status")
    contact = " ".join(str(v) for v in (p.get("steward"), p.get("steward_email")) if v is not None)
    days = p.get("days_since_data")
    return {
        "partner": str(p.get("organisation") or p.get("provider")),
        "title": str(p.get("title") or p.get("dataset")),
        "cadence": str(p.get("cadence") or ""),
        "data_through": when(p.get("data_through")),
        "days": NA if days is None else days,
        "next": when(p.get("next_expected_by")),
        "status": status,
        "status_label": FRESHNESS_LABEL.get(status or "", status),
        "steward": (contact or NA) if under_agreement else "",
    }


def _areas(data: BriefData) -> list[dict[str, Any]]:
    partners: dict[str, set[str]] = {}
    for p in data.providers:
        area = p.get("community_map_area")
        if area:
            partners.setdefault(area, set()).add(str(p.get("organisation") or p.get("provider")))
    names = list(COMMUNITY_MAP_AREAS) + sorted(set(partners) - set(COMMUNITY_MAP_AREAS))
    return [{"name": area, "partners": sorted(partners.get(area, ()))} for area in names]


def _checks(data: BriefData) -> list[dict[str, Any]]:
    def item(text: str, verdict: str = "", after: str = "", link: str = "") -> dict[str, str]:
        return {"text": text, "verdict": verdict, "after": after, "link": link}

    items = [item(data.entry.checks_summary)] if data.entry is not None else []
    v = data.validation
    if v is None:
        return [*items, item("Expectations were not run for this release")]
    verdict = "passed" if v.passed else "FAILED"
    items.append(
        item("Expectations on the published tables:", verdict, v.summary(), v.docs_index or "")
    )
    for o in v.warnings + v.failures:
        kind = "Warning" if o.severity != "critical" else "Failed"
        items.append(item(f"{kind}: {o.table}: {o.description} ({o.unexpected or 0:,} rows)"))
    return items
