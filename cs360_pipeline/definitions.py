"""The Dagster code location: every area's definitions merged into one.

Loaded by ``workspace.yaml`` (UI and daemon) and by ``cs360 refresh`` (headless).
"""

from __future__ import annotations

import dagster as dg

from cs360_pipeline.defs import (
    automation,
    catalog,
    freshness,
    ingest,
    privacy,
    publish,
    transform,
)
from cs360_pipeline.registry import load_providers
from cs360_pipeline.settings import current_paths


def build_definitions() -> dg.Definitions:
    providers = load_providers(current_paths().sources_dir)
    return dg.Definitions.merge(
        ingest.build_defs(providers),
        privacy.build_defs(providers),
        catalog.build_defs(providers),
        transform.defs,
        publish.build_defs(providers),
        freshness.build_defs(providers),
        automation.build_defs(providers),
        # One process, one step at a time: DuckDB files take a single writer.
        dg.Definitions(executor=dg.in_process_executor),
    )


defs = build_definitions()
