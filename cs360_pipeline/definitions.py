"""The Dagster code location: every area's definitions merged into one.

Loaded by ``workspace.yaml`` (UI and daemon) and by ``cs360 refresh`` (headless). A provider
whose provider.yml fails validation gets no ingest, cells, sensor or job: none of its SQL runs
and its inbox waits. Its last valid copy (if any) still describes it to the catalog, the
scorecard and the privacy gate, so its cells from the last good refresh stay published and
every other provider refreshes. ``registry.problems`` says what failed, for the operator.
"""

from __future__ import annotations

import dagster as dg

from cs360_pipeline.defs import (
    automation,
    catalog,
    contracts,
    freshness,
    ingest,
    privacy,
    publish,
    transform,
)
from cs360_pipeline.defs.executor import locked_in_process_executor
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.defs.run_options import RESOURCE_KEY, RunOptions
from cs360_pipeline.registry import Registry, load_registry


def load(deployment: DeploymentResource) -> Registry:
    """The providers of the deployment, keeping each valid file as its last valid copy."""
    paths = deployment.paths
    return load_registry(paths.sources_dir, keep_dir=paths.build_dir / "registry")


def _privacy_defs(registry: Registry) -> dg.Definitions:
    """Cells only for providers that load now; the catalog the cells read knows them all."""
    failed = {privacy.shared_key(f"cells_{name}") for name in registry.last_valid}
    built = privacy.build_defs(registry.known)
    return dg.Definitions(assets=[a for a in built.assets or [] if a.key not in failed])


def build_definitions(registry: Registry, deployment: DeploymentResource) -> dg.Definitions:
    current, known = registry.providers, registry.known
    return dg.Definitions.merge(
        ingest.build_defs(current),
        _privacy_defs(registry),
        catalog.build_defs(known),
        transform.build_defs(deployment),
        contracts.defs,
        publish.build_defs(known),
        freshness.build_defs(current),
        automation.build_defs(current),
        # One process, one step at a time, under the deployment's writer lock; every step is
        # given the deployment, built once from settings.
        dg.Definitions(
            executor=locked_in_process_executor,
            resources={"deployment": deployment, RESOURCE_KEY: RunOptions()},
        ),
    )


deployment = DeploymentResource.from_settings()
registry = load(deployment)
defs = build_definitions(registry, deployment)
