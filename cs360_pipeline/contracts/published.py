"""The published tables' contracts: what every release shows its readers must hold.

Each rule here was a dbt test before and has this one home now, checked on the build database
before the release is swapped in. The tables' shape (their columns and types) is dbt's enforced
model contract (``marts/_marts__models.yml``), which refuses to build a table that differs. The
privacy gate and the audit (publish/gate.py, privacy/release_audit.py) keep the rules that need
the vault or the policy's cell sizes.
"""

from __future__ import annotations

from typing import get_args

import ibis
import pandera.ibis as pa

from cs360_pipeline.catalog.metrics import Metric
from cs360_pipeline.contracts.cells import geo_levels
from cs360_pipeline.contracts.rules import (
    at_least,
    column,
    contained_in,
    one_of,
    period_end,
    required,
    rule,
)
from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.registry.models import CADENCES

MARTS = "marts"
STATUSES = ("published", "unreliable", "suppressed", "missing")
VALUE_KEY = ["audience", "metric_id", "period_level", "period_start", "geo_level", "geo_code",
             "breakdown"]  # fmt: skip


def _choices(field: str) -> tuple[str, ...]:
    """The values the metric catalog's YAML allows for ``field`` (named once, in its model)."""
    return get_args(Metric.model_fields[field].annotation)


def metric_values(policy: Policy, db: ibis.BaseBackend) -> pa.DataFrameSchema:
    catalog, geography = (
        db.table("metric_catalog", database=MARTS),
        db.table("geography", database=MARTS),
    )
    return pa.DataFrameSchema(
        name="metric_values",
        columns={
            "audience": required(one_of(policy.audiences)),
            "metric_id": required(),
            "period_level": required(one_of(policy.tables.period_levels)),
            "period_start": required(),
            "geo_level": required(one_of(geo_levels(policy))),
            "geo_code": required(),
            "breakdown": required(),
            "value": column(),
            "numerator": column(at_least(0)),
            "denominator": column(at_least(0)),
            "status": required(one_of(STATUSES)),
            "period_complete": required(),
            "data_through": column(),
            "release_id": required(),
        },
        checks=[
            contained_in("metric_id", catalog, "a metric of metric_catalog"),
            contained_in("geo_code", geography, "a place of geography"),
            rule(
                "a suppressed row shows no value, numerator or denominator",
                lambda t: (
                    (t.status != "suppressed")
                    | (t.value.isnull() & t.numerator.isnull() & t.denominator.isnull())
                ),
            ),
            rule(
                "a published or unreliable row has a value",
                lambda t: ~t.status.isin(["published", "unreliable"]) | t.value.notnull(),
            ),
            rule(
                "a complete period's data runs to its last day",
                lambda t: ~t.period_complete | (t.data_through == period_end(t)),
            ),
            rule(
                "no period's data runs past its last day",
                lambda t: t.data_through.isnull() | (t.data_through <= period_end(t)),
            ),
            rule("one release in the table", lambda t: t.release_id.nunique() <= 1),
        ],
        unique=VALUE_KEY,
    )


def metric_catalog(policy: Policy, _: ibis.BaseBackend) -> pa.DataFrameSchema:
    levels, statuses = one_of(policy.tables.period_levels), one_of(STATUSES)
    return pa.DataFrameSchema(
        name="metric_catalog",
        columns={
            "audience": required(one_of(policy.audiences)),
            **{c: required() for c in ("metric_id", "title", "dimension", "goal")},
            **{c: required() for c in ("indicator", "definition")},
            "unit": required(one_of(_choices("unit"))),
            "numerator": required(),
            "denominator": column(),
            "direction": required(one_of(_choices("direction"))),
            "cadence": required(one_of(_choices("cadence"))),
            "providers": required(),
            "sources": column(),
            "owner": required(),
            "owner_organisation": column(),
            "owner_role": column(),
            "owner_status": required(one_of(["owned", "unowned"])),
            "privacy_key": column(),
            "min_cell_size": column(at_least(2)),
            "latest_period_level": column(levels),
            "latest_period": column(),
            "latest_value": column(),
            "latest_status": column(statuses),
            "previous_period": column(),
            "previous_value": column(),
            "previous_status": column(statuses),
            "change": column(),
            "change_pct": column(),
            "baseline_start": required(),
            "baseline_end": required(),
            "baseline_value": column(),
            "baseline_periods": column(at_least(0)),
            "change_vs_baseline_pct": column(),
            "trend": required(
                one_of(["improving", "worsening", "steady", "no_baseline", "no_value"])
            ),
            "target_value": column(),
            "target_by": column(),
            "target_status": required(one_of(["met", "not_met", "no_target", "no_value"])),
            "data_through": column(),
            "sources_freshness": column(),
            "freshness_status": required(one_of(["fresh", "stale"])),
            "stale_sources": column(),
            "display_order": column(),
        },
        checks=[
            rule(
                "the previous period comes before the latest",
                lambda t: (
                    t.latest_period.isnull()
                    | t.previous_period.isnull()
                    | (t.previous_period < t.latest_period)
                ),
            ),
            rule(
                "a change exactly when both values are shown",
                lambda t: (
                    (t.latest_value.isnull() | t.previous_value.isnull()) == t.change.isnull()
                ),
            ),
            rule(
                "a stale metric names its stale sources",
                lambda t: (
                    (t.freshness_status == "fresh")
                    | t.stale_sources.notnull()
                    | (t.sources_freshness == "never_delivered")
                ),
            ),
        ],
        unique=["audience", "metric_id"],
    )


def privacy_report(policy: Policy, db: ibis.BaseBackend) -> pa.DataFrameSchema:
    counts = ("cells", "published", "unreliable", "suppressed", "missing")
    return pa.DataFrameSchema(
        name="privacy_report",
        columns={
            "audience": required(one_of(policy.audiences)),
            "metric_id": required(),
            **{c: required(at_least(0)) for c in counts},
            "suppressed_share": column(),
            "levels_shown": column(),
            "rows_unplaced": column(at_least(0)),
            "rows_unplaced_withheld": column(),
            "protection_fallback": column(),
        },
        checks=[
            contained_in(
                "metric_id", db.table("metric_catalog", database=MARTS), "a metric of the catalog"
            ),
            rule(
                "every cell counted once by status",
                lambda t: t.cells == t.published + t.unreliable + t.suppressed + t.missing,
            ),
        ],
        unique=["audience", "metric_id"],
    )


def metric_notes(policy: Policy, db: ibis.BaseBackend) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        name="metric_notes",
        columns={
            "audience": required(one_of(policy.audiences)),
            "metric_id": required(),
            "note_order": required(at_least(1)),
            "period_from": required(),
            "period_to": required(),
            "note": required(),
        },
        checks=[
            contained_in(
                "metric_id", db.table("metric_catalog", database=MARTS), "a metric of the catalog"
            ),
            rule("a note's months are in order", lambda t: t.period_from <= t.period_to),
        ],
        unique=["audience", "metric_id", "note_order"],
    )


def geography(policy: Policy, _: ibis.BaseBackend) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        name="geography",
        columns={
            "geo_level": required(one_of([*geo_levels(policy), "city"])),
            "geo_code": required(),
            "name": column(),
            "parent_level": column(),
            "parent_code": column(),
            "boundary": column(),
        },
        unique=["geo_level", "geo_code"],
    )


def provider_status(policy: Policy, _: ibis.BaseBackend) -> pa.DataFrameSchema:
    counts = ("files_loaded", "files_quarantined", "files_duplicate")
    days = ("days_since_delivery", "warn_after_days", "error_after_days", "days_since_data")
    freshness = ["on_time", "late", "overdue", "never_delivered", "not_scheduled"]
    data = ["current", "behind", "far_behind", "no_data", "not_scheduled"]
    size = ["usual", "shrunken", "not_enough_history", "never_delivered"]
    ownership = ["named", "no_steward", "no_owner", "no_owner_or_steward"]
    return pa.DataFrameSchema(
        name="provider_status",
        columns={
            "provider": required(),
            "organisation": column(),
            "community_map_area": column(),
            "dataset": required(),
            "title": column(),
            "cadence": column(one_of(CADENCES)),
            "data_owner": column(),
            "steward": column(),
            "steward_email": column(),
            "ownership_status": column(one_of(ownership)),
            **{c: column(at_least(0)) for c in counts},
            "files_quarantined_open": required(at_least(0)),
            "last_delivered_at": column(),
            "last_delivered_on": column(),
            "next_expected_by": column(),
            **{c: column() for c in days},
            "freshness_status": required(one_of(freshness)),
            "first_period": column(),
            "data_through": column(),
            "data_status": required(one_of(data)),
            "missing_months": required(at_least(0)),
            "missing_month_list": column(),
            "delivery_size_ratio": column(),
            "delivery_size_status": column(one_of(size)),
            "severity": required(one_of(["ok", "warn", "error"])),
            "issues": column(),
            "as_of": column(),
        },
        checks=[
            rule(
                "issues named exactly when not ok",
                lambda t: (t.severity == "ok") == t.issues.isnull(),
            ),
            rule(
                "missing months listed exactly when there are some",
                lambda t: (t.missing_months == 0) == t.missing_month_list.isnull(),
            ),
        ],
        unique=["provider", "dataset"],
    )


# Every published table's contract, by table (publish/warehouse.py PUBLISHED_TABLES).
CONTRACTS = {
    "metric_values": metric_values,
    "metric_catalog": metric_catalog,
    "metric_notes": metric_notes,
    "privacy_report": privacy_report,
    "geography": geography,
    "provider_status": provider_status,
}
