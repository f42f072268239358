"""The deployment as one Dagster resource: its folders, policy and metric catalog.

Built once from settings when the definitions load (``DeploymentResource.from_settings``) and
injected into every asset, check and sensor that reads or writes the deployment, so no step
looks up the environment or a default path itself. The policy is read and validated once per
version of its file, however many steps ask for it; the catalog is read by each step that asks
(it is checked against the providers that step is given).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import duckdb

from cs360_pipeline.catalog.metrics import Catalog, load_catalog
from cs360_pipeline.privacy.policy import Policy, load_policy
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import Paths, current_paths
from cs360_pipeline.sql import connect


def _stamp(path: Path) -> tuple[int, int]:
    """What changes when a file is edited: its modification time and size."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=8)
def _policy(path: Path, stamp: tuple[int, int]) -> Policy:
    return load_policy(path)


class DeploymentResource(dg.ConfigurableResource):
    """One deployment: where its data, sources, policy and metric files are."""

    data_dir: str
    sources_dir: str
    policy_file: str
    metrics_dir: str

    @classmethod
    def from_settings(cls) -> DeploymentResource:
        paths = current_paths()
        return cls(
            data_dir=str(paths.data_dir),
            sources_dir=str(paths.sources_dir),
            policy_file=str(paths.policy_file),
            metrics_dir=str(paths.metrics_dir),
        )

    @property
    def paths(self) -> Paths:
        return Paths(
            data_dir=Path(self.data_dir),
            sources_dir=Path(self.sources_dir),
            policy_file=Path(self.policy_file),
            metrics_dir=Path(self.metrics_dir),
        )

    def policy(self) -> Policy:
        """The privacy policy, validated (read again only when its file changed)."""
        path = Path(self.policy_file)
        try:
            stamp = _stamp(path)
        except OSError:
            return load_policy(path)  # says which file cannot be read
        return _policy(path, stamp)

    def catalog(self, providers: Mapping[str, Provider]) -> Catalog:
        """The metric catalog, checked against ``providers``."""
        return load_catalog(dict(providers), Path(self.metrics_dir))

    def connect(self, zone: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to one zone's database: ``restricted`` (row-level extracts and the
        ledger), ``shared`` (cells and dbt's models) or ``published`` (the live warehouse)."""
        paths = self.paths
        databases = {
            "restricted": paths.raw_db,
            "shared": paths.build_db,
            "published": paths.warehouse_db,
        }
        if zone not in databases:
            raise ValueError(f"unknown zone {zone!r}; the zones are {', '.join(databases)}")
        if not read_only:
            paths.ensure()
        return connect(databases[zone], read_only=read_only)
