"""The blocking privacy gate and the atomic publication of the warehouse."""

from contextlib import closing

import dagster as dg

from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.privacy.release_audit import audit_release
from cs360_pipeline.publish.gate import check
from cs360_pipeline.publish.warehouse import MARTS_SCHEMA, PUBLISHED_TABLES, publish
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import current_paths
from cs360_pipeline.sql import connect

MART_KEYS = [dg.AssetKey([MARTS_SCHEMA, t]) for t in PUBLISHED_TABLES]


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    @dg.asset_check(
        asset=dg.AssetKey([MARTS_SCHEMA, "metric_values"]),
        name="privacy_gate",
        blocking=True,
        description=(
            "No published count 0 < n < k, no value on a suppressed cell, no identifier or "
            "record-key column in a published table. A failure stops publication; the previous "
            "release stays published."
        ),
    )
    def privacy_gate() -> dg.AssetCheckResult:
        with closing(connect(current_paths().build_db, read_only=True)) as con:
            result = check(con, providers)
        return dg.AssetCheckResult(
            passed=result.passed,
            metadata={
                "small_counts_shown": result.small_counts,
                "values_on_suppressed_cells": result.values_on_suppressed,
                "identifier_columns": ", ".join(result.identifier_columns) or "none",
            },
        )

    @dg.asset_check(
        asset=dg.AssetKey([MARTS_SCHEMA, "metric_values"]),
        name="privacy_audit",
        blocking=True,
        description=(
            "The independent attacker: for every suppressed small count of every audience, the "
            "minimum and maximum any reader can prove from everything published (this release, "
            "the releases still public, rates with their denominators) by linear programming. "
            "Fails when one can be pinned below k or shown to be non-zero; the report names "
            "each such cell with its bounds, and the previous release stays published."
        ),
    )
    def privacy_audit(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        paths = current_paths()
        policy = load_policy()
        with closing(connect(paths.build_db, read_only=True)) as con:
            vault.attach(con, paths, read_only=True)
            result = audit_release(con, policy.history.releases_public)
        report = result.text()
        (context.log.info if result.passed else context.log.error)(report)
        return dg.AssetCheckResult(
            passed=result.passed,
            metadata={
                "tables_audited": len(result.families),
                "failing_cells": result.failures,
                "report": dg.MetadataValue.md(f"```\n{report}\n```"),
            },
        )

    @dg.asset(
        key=dg.AssetKey(["published", "warehouse"]),
        deps=MART_KEYS,
        group_name="publish",
        kinds={"duckdb"},
        description=(
            "data/warehouse.duckdb: the marts copied into a new file and swapped in atomically. "
            "Analysts open it read-only."
        ),
    )
    def warehouse(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        paths = current_paths()
        published = publish(paths)
        vault.record_published(paths, published.release_id, load_policy().history.releases_public)
        context.log.info(f"published release {published.release_id} to {paths.warehouse_db}")
        return dg.MaterializeResult(
            metadata={
                "release_id": published.release_id,
                "path": str(paths.warehouse_db),
                **{f"rows_{t}": n for t, n in published.rows.items()},
            }
        )

    return dg.Definitions(assets=[warehouse], asset_checks=[privacy_gate, privacy_audit])
