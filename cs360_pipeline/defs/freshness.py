"""Freshness checks per provider dataset, visible on each ingest asset in the Dagster UI.

They read the delivery scorecard (the ``provider_status`` mart) so the UI, ``cs360 status`` and
the published table always agree.
"""

from contextlib import closing

import dagster as dg

from cs360_pipeline.defs.ingest import raw_key
from cs360_pipeline.publish.warehouse import MARTS_SCHEMA
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import current_paths
from cs360_pipeline.sql import connect

SCORECARD = dg.AssetKey([MARTS_SCHEMA, "provider_status"])
SEVERITY = {
    "on_time": None,
    "not_scheduled": None,
    "late": dg.AssetCheckSeverity.WARN,
    "overdue": dg.AssetCheckSeverity.ERROR,
    "never_delivered": dg.AssetCheckSeverity.ERROR,
}


def _freshness_check(provider: Provider, dataset: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(provider.provider, dataset),
        name="delivered_on_time",
        additional_deps=[SCORECARD],
        description=(
            "Is the latest delivery within the dataset's freshness limits (provider.yml)? "
            "Warns when late, fails when overdue or never delivered."
        ),
    )
    def _check() -> dg.AssetCheckResult:
        with closing(connect(current_paths().build_db, read_only=True)) as con:
            rows = con.execute(
                f"""
                SELECT freshness_status, data_through, days_since_data, next_expected_by,
                       steward, as_of
                FROM {MARTS_SCHEMA}.provider_status WHERE provider = ? AND dataset = ?
                """,
                [provider.provider, dataset],
            ).fetchall()
        status, through, days, expected, steward, as_of = rows[0]
        severity = SEVERITY[status]
        return dg.AssetCheckResult(
            passed=severity is None,
            severity=severity or dg.AssetCheckSeverity.WARN,
            description=f"{status.replace('_', ' ')} as of {as_of}",
            metadata={
                "status": status,
                "data_through": str(through),
                "days_since_data": days,
                "next_expected_by": str(expected),
                "steward": steward,
            },
        )

    return _check


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    checks = [_freshness_check(p, name) for p in providers.values() for name in p.datasets]
    return dg.Definitions(asset_checks=checks)
