"""The steps a refresh needs: what changed, and everything that reads it.

A dataset's ingest step runs when its inbox holds a file for it (settled or not: a file still
being written is reported as waiting) or its provider's ``.work/`` holds what a stopped run
left. A provider's cells step runs when a dataset it reads is ingested now, or when its cells
were not built from the files, policy and code in place now (``privacy.cells_inputs``). The
rest (the union of cells, the catalog, dbt, the checks, publication) always runs: it is where a
release is put together and attacked as a whole. Before the first release, and whenever the
policy or the code differs from the live release's, every step runs.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

import dagster as dg

from cs360_pipeline.defs.ingest import raw_key
from cs360_pipeline.defs.privacy import cells_datasets, shared_key
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.privacy import cells_inputs
from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.publish import warehouse
from cs360_pipeline.registry import Registry
from cs360_pipeline.release.identity import code_version
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, literal


@dataclass(frozen=True)
class Selection:
    """A run's steps, and in words what was left out."""

    assets: frozenset[dg.AssetKey]
    checks: frozenset[dg.AssetCheckKey]
    ingested: tuple[str, ...]  # provider/dataset with something in the inbox
    rebuilt: tuple[str, ...]  # providers whose cells are built again
    kept: tuple[str, ...]  # providers whose cells stay as the last build left them

    def line(self) -> str:
        waiting = ", ".join(self.ingested) or "none"
        rebuilt = ", ".join(self.rebuilt) or "none"
        kept = f"; cells kept (inputs unchanged): {', '.join(self.kept)}" if self.kept else ""
        return f"Files waiting: {waiting}; cells to build: {rebuilt}{kept}"


def refresh_selection(
    job: dg.JobDefinition, registry: Registry, paths: Paths, policy: Policy
) -> Selection | None:
    """The steps of ``job`` this refresh needs; None when it needs them all."""
    manifest = warehouse.manifest(paths.warehouse_db)
    code = code_version(paths)
    if (
        manifest is None
        or not paths.raw_db.exists()
        or not paths.build_db.exists()
        or not paths.vault_db.exists()
        or manifest["code_version"] != code
        or manifest["policy_sha256"] != policy.sha256
    ):
        return None
    in_job = job.asset_layer.selected_asset_keys
    providers = registry.providers
    waiting = set()
    for provider in providers.values():
        folder = DropFolder(paths.provider_dir(provider.provider))
        leftovers = folder.work.is_dir() and any(folder.work.iterdir())
        for name, dataset in provider.datasets.items():
            if raw_key(provider.provider, name) not in in_job:
                continue  # another provider's inbox: not this job's to take
            if leftovers or folder.matching(dataset.file_pattern):
                waiting.add((provider.provider, name))
    rebuilt, kept = [], []
    with closing(connect(paths.build_db, read_only=True)) as con:
        con.execute(f"ATTACH {literal(paths.raw_db)} AS raw (READ_ONLY)")
        con.execute(f"ATTACH {literal(paths.vault_db)} AS vault (READ_ONLY)")
        for name, provider in providers.items():
            if shared_key(f"cells_{name}") not in in_job:
                continue
            reads = cells_datasets(provider, providers)
            unchanged = not waiting.intersection(reads) and cells_inputs.built_from(
                con, name, cells_inputs.digest(con, reads, policy.sha256, code)
            )
            (kept if unchanged else rebuilt).append(name)
    skipped = {raw_key(p, d) for p in providers for d in providers[p].datasets} - {
        raw_key(p, d) for p, d in waiting
    }
    skipped |= {shared_key(f"cells_{name}") for name in kept}
    graph = job.asset_layer.asset_graph
    # A check the skipped step itself evaluates (the cells contract) is skipped with it; the
    # others (delivery checks, the release's checks) run whatever was skipped.
    own = {
        key
        for asset in skipped
        if graph.has(asset)
        for key in graph.assets_def_for_key(asset).check_keys
    }
    checks = graph.asset_check_keys - own
    return Selection(
        assets=frozenset(in_job - skipped),
        checks=frozenset(checks),
        ingested=tuple(sorted(f"{p}/{d}" for p, d in waiting)),
        rebuilt=tuple(rebuilt),
        kept=tuple(kept),
    )
