"""Delivery, coverage and ownership checks per provider dataset, and checks on the metric catalog.

Every check reads the published scorecards (the ``provider_status`` and ``metric_catalog`` marts)
so the Dagster UI, ``cs360 status`` and the published tables always agree. They run as one step
after dbt, and each result lands on the asset it is about: the dataset's ingest asset, or the
catalog. None of them blocks publication: late or missing data is published as such and flagged.

Per dataset (on ``raw/<provider>/<dataset>``):

- ``delivered_on_time``: days since the latest delivery against the dataset's limits; the same
  verdict ``dbt source freshness`` gives. Warns when late, fails when overdue or never delivered.
- ``data_current``: the latest month delivered against the same limits (a partner can deliver
  on time and still send old months). Warns when behind, fails when far behind.
- ``no_missing_months``: fails when a month inside the series was not delivered.
- ``delivery_size_usual``: warns when the latest file is under half the usual rows per month.
- ``owner_and_steward_named``: fails without a data owner, warns without a steward.
- ``quarantine_cleared``: warns while a quarantined file waits for a corrected delivery (no
  file of the dataset has loaded since it was quarantined), so a rejected file is never green.

On ``marts/metric_catalog``: ``metrics_owned`` (fails when a metric has no owner) and
``metric_sources_fresh`` (warns when a metric's sources are late: its catalog row says stale).
"""

from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import dagster as dg

from cs360_pipeline.defs.ingest import raw_key
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.publish.warehouse import MARTS_SCHEMA
from cs360_pipeline.registry import Provider

SCORECARD = dg.AssetKey([MARTS_SCHEMA, "provider_status"])
CATALOG = dg.AssetKey([MARTS_SCHEMA, "metric_catalog"])
WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR

# check name -> (description, how to judge a provider_status row: severity or None when it passes)
Row = dict[str, Any]
DATASET_CHECKS: dict[str, tuple[str, Callable[[Row], dg.AssetCheckSeverity | None]]] = {
    "delivered_on_time": (
        "Is the latest delivery within the dataset's freshness limits (provider.yml)? Warns "
        "when late, fails when overdue or never delivered. dbt source freshness agrees.",
        lambda r: {"late": WARN, "overdue": ERROR, "never_delivered": ERROR}.get(
            r["freshness_status"]
        ),
    ),
    "data_current": (
        "Does the data reach a recent enough month (the latest month delivered, against the "
        "same limits)? Warns when behind, fails when far behind or nothing was delivered.",
        lambda r: {"behind": WARN, "far_behind": ERROR, "no_data": ERROR}.get(r["data_status"]),
    ),
    "no_missing_months": (
        "Was every month inside the series delivered (except the dataset's no-delivery "
        "months)? Fails when one is missing.",
        lambda r: ERROR if r["missing_months"] else None,
    ),
    "delivery_size_usual": (
        "Is the latest delivery of the usual size (at least half the median rows per month of "
        "the twelve files before it)? Warns when it is far smaller.",
        lambda r: WARN if r["delivery_size_status"] == "shrunken" else None,
    ),
    "owner_and_steward_named": (
        "Does the dataset (or its provider) name a data owner and a steward? Fails without an "
        "owner, warns without a steward.",
        lambda r: {"no_owner": ERROR, "no_owner_or_steward": ERROR, "no_steward": WARN}.get(
            r["ownership_status"]
        ),
    ),
    "quarantine_cleared": (
        "Has a file of the dataset loaded since its last quarantined one (the partner's corrected "
        "delivery)? Warns while a quarantined file waits for it; `cs360 status --files` shows "
        "the file and the reason.",
        lambda r: WARN if r["files_quarantined_open"] else None,
    ),
}
# The scorecard column each check reports as its "status".
STATUS_FIELD = {
    "delivered_on_time": "freshness_status",
    "data_current": "data_status",
    "no_missing_months": "missing_months",
    "delivery_size_usual": "delivery_size_status",
    "owner_and_steward_named": "ownership_status",
    "quarantine_cleared": "files_quarantined_open",
}
CATALOG_CHECKS = {
    "metrics_owned": "Does every metric name the organisation and role that answer for it?",
    "metric_sources_fresh": (
        "Are every metric's source datasets on time and current? Warns with the stale metrics."
    ),
}
STATUS_COLUMNS = (
    "provider", "dataset", "freshness_status", "data_status", "missing_months",
    "missing_month_list", "delivery_size_status", "delivery_size_ratio", "ownership_status",
    "data_owner", "steward", "files_quarantined_open", "last_delivered_on", "next_expected_by",
    "data_through", "days_since_delivery", "issues", "as_of",
)  # fmt: skip


def _dataset_result(check: str, key: dg.AssetKey, row: Row | None) -> dg.AssetCheckResult:
    if row is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=check,
            passed=False,
            severity=ERROR,
            description="not in the delivery scorecard (provider_status)",
        )
    severity = DATASET_CHECKS[check][1](row)
    metadata = {
        name: ("" if row[name] is None else str(row[name]))
        for name in STATUS_COLUMNS
        if name not in ("provider", "dataset")
    }
    metadata["status"] = metadata[STATUS_FIELD[check]]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check,
        passed=severity is None,
        severity=severity or WARN,
        description=f"{row['issues'] or 'no issues'} (as of {row['as_of']})",
        metadata=metadata,
    )


def _catalog_results(rows: list[Row], selected: set[str]) -> Iterator[dg.AssetCheckResult]:
    if "metrics_owned" in selected:
        unowned = sorted({r["metric_id"] for r in rows if r["owner_status"] != "owned"})
        yield dg.AssetCheckResult(
            asset_key=CATALOG,
            check_name="metrics_owned",
            passed=not unowned,
            severity=ERROR,
            description=f"without an owner: {', '.join(unowned)}" if unowned else "all owned",
            metadata={"metrics": len({r["metric_id"] for r in rows}), "unowned": len(unowned)},
        )
    if "metric_sources_fresh" in selected:
        stale = {
            r["metric_id"]: r["stale_sources"] for r in rows if r["freshness_status"] != "fresh"
        }
        yield dg.AssetCheckResult(
            asset_key=CATALOG,
            check_name="metric_sources_fresh",
            passed=not stale,
            severity=WARN,
            description=(
                "stale: " + "; ".join(f"{m} ({why})" for m, why in sorted(stale.items()))
                if stale
                else "every metric's sources are on time"
            ),
            metadata={"stale_metrics": len(stale)},
        )


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    datasets = [(p.provider, name) for p in providers.values() for name in p.datasets]
    specs = [
        dg.AssetCheckSpec(
            check,
            asset=raw_key(provider, dataset),
            description=description,
            additional_deps=[SCORECARD],
        )
        for provider, dataset in datasets
        for check, (description, _) in DATASET_CHECKS.items()
    ] + [
        dg.AssetCheckSpec(check, asset=CATALOG, description=description)
        for check, description in CATALOG_CHECKS.items()
    ]

    @dg.multi_asset_check(
        name="delivery_and_ownership_checks",
        specs=specs,
        can_subset=True,
        description="Delivery, coverage and ownership checks read from the published scorecards.",
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, deployment: DeploymentResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected = context.selected_asset_check_keys
        with closing(deployment.connect("shared", read_only=True)) as con:
            cursor = con.execute(
                f"SELECT {', '.join(STATUS_COLUMNS)} FROM {MARTS_SCHEMA}.provider_status"
            )
            names = [c[0] for c in cursor.description]
            status = {(r[0], r[1]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
            catalog_rows: list[Row] = []
            if any(k.asset_key == CATALOG for k in selected):
                cursor = con.execute(
                    f"SELECT metric_id, owner_status, freshness_status, stale_sources "
                    f"FROM {MARTS_SCHEMA}.metric_catalog"
                )
                names = [c[0] for c in cursor.description]
                catalog_rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        for provider, dataset in datasets:
            key = raw_key(provider, dataset)
            for check in DATASET_CHECKS:
                if dg.AssetCheckKey(key, check) in selected:
                    yield _dataset_result(check, key, status.get((provider, dataset)))
        yield from _catalog_results(
            catalog_rows, {k.name for k in selected if k.asset_key == CATALOG}
        )

    return dg.Definitions(asset_checks=[_checks])
