"""The metric catalog and the release record: configuration and metadata into the shared zone."""

from contextlib import closing

import dagster as dg

from cs360_pipeline.catalog.datasets import write_datasets
from cs360_pipeline.catalog.deliveries_snapshot import write_deliveries, write_snapshot
from cs360_pipeline.catalog.metrics import (
    check_against_policy,
    uncovered_goals,
    write_definitions,
    write_notes,
    write_privacy_rules,
)
from cs360_pipeline.defs.ingest import raw_key
from cs360_pipeline.defs.privacy import shared_key
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.registry import Provider
from cs360_pipeline.release.identity import write_release

GROUP = "catalog"
# The release itself: its id (here), its publication and its log (defs/publish.py).
RELEASE_GROUP = "release"


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    @dg.asset(
        key=shared_key("metric_definitions"),
        group_name=GROUP,
        kinds={"yaml", "duckdb"},
        description=(
            "The CS360 metric catalog from the deployment's metrics/*.yml, checked against the "
            "providers' measures and the privacy policy: an unknown dimension, goal, indicator, "
            "provider, measure or audience, or a metric without an owner, stops the build."
        ),
    )
    def metric_definitions(deployment: DeploymentResource) -> dg.MaterializeResult:
        catalog = deployment.catalog(providers)
        policy = deployment.policy()
        check_against_policy(catalog, policy)
        with closing(deployment.connect("shared")) as con:
            count = write_definitions(con, catalog, providers, policy)
        per_provider: dict[str, int] = {}
        for metric in catalog.metrics.values():
            for provider in metric.providers:
                per_provider[provider] = per_provider.get(provider, 0) + 1
        return dg.MaterializeResult(
            metadata={
                "metrics": count,
                "dimensions": len({m.dimension for m in catalog.metrics.values()}),
                "metrics_per_provider": ", ".join(
                    f"{p} {n}" for p, n in sorted(per_provider.items())
                ),
                # CS360 asks for at least one measure per goal.
                "goals_without_a_metric": ", ".join(uncovered_goals(catalog)) or "none",
            }
        )

    @dg.asset(
        key=shared_key("privacy_rules"),
        group_name=GROUP,
        kinds={"yaml", "duckdb"},
        description=(
            "The privacy rule each metric resolves to for each audience (privacy/policy.yml: "
            "metric > provider > audience > defaults, strictest of its providers)."
        ),
    )
    def privacy_rules(deployment: DeploymentResource) -> dg.MaterializeResult:
        catalog = deployment.catalog(providers)
        policy = deployment.policy()
        policy.check_names(set(providers), set(catalog.metrics))
        with closing(deployment.connect("shared")) as con:
            count = write_privacy_rules(con, catalog, policy)
        return dg.MaterializeResult(metadata={"rules": count, "policy_sha256": policy.sha256})

    @dg.asset(
        key=shared_key("metric_notes"),
        group_name=GROUP,
        kinds={"yaml", "duckdb"},
        description=(
            "The PST's notes on its metrics (notes: in the deployment's metrics/*.yml): what a "
            "reader should know about a metric over some months, shown on the charts and pages "
            "and carried in the exports and the release log."
        ),
    )
    def metric_notes(deployment: DeploymentResource) -> dg.MaterializeResult:
        catalog = deployment.catalog(providers)
        with closing(deployment.connect("shared")) as con:
            count = write_notes(con, catalog)
        return dg.MaterializeResult(metadata={"notes": len(catalog.notes), "rows": count})

    every_dataset = [raw_key(p.provider, d) for p in providers.values() for d in p.datasets]

    @dg.asset(
        key=shared_key("release"),
        deps=every_dataset,
        group_name=RELEASE_GROUP,
        kinds={"duckdb"},
        description=(
            "The release being built: an id hashed from the delivered files, the privacy policy "
            "and the code, so the same inputs always give the same release."
        ),
    )
    def release(deployment: DeploymentResource) -> dg.MaterializeResult:
        built = write_release(deployment.paths.ensure(), deployment.policy().sha256)
        return dg.MaterializeResult(
            metadata={
                "release_id": built.release_id,
                "input_files": len(built.input_files),
                "policy_sha256": built.policy_sha256,
                "code_version": built.code_version,
            }
        )

    @dg.asset(
        key=shared_key("deliveries"),
        deps=every_dataset,
        group_name=GROUP,
        kinds={"duckdb"},
        description=(
            "The ingest ledger: every delivered file, its hash, rows and status; also written "
            "to data/deliveries.parquet, which `cs360 status --files` reads during a refresh."
        ),
    )
    def deliveries(deployment: DeploymentResource) -> dg.MaterializeResult:
        paths = deployment.paths
        files = write_deliveries(paths)
        return dg.MaterializeResult(
            metadata={"files": files, "snapshot": str(write_snapshot(paths))}
        )

    @dg.asset(
        key=shared_key("datasets"),
        group_name=GROUP,
        kinds={"yaml", "duckdb"},
        description=(
            "Every provider dataset with its owner, steward, cadence and freshness limits, from "
            "sources/*/provider.yml: the expectations the delivery scorecard is measured against."
        ),
    )
    def datasets(deployment: DeploymentResource) -> dg.MaterializeResult:
        with closing(deployment.connect("shared")) as con:
            count = write_datasets(con, providers)
        return dg.MaterializeResult(metadata={"datasets": count})

    return dg.Definitions(
        assets=[metric_definitions, metric_notes, privacy_rules, datasets, release, deliveries]
    )
