"""The deployment as one Dagster resource (``deployment.Deployment``, configured by its folders).

Built once from settings when the definitions load (``DeploymentResource.from_settings``) and
injected into every asset, check and sensor that reads or writes the deployment, so no step
looks up the environment or a default path itself. The policy is read and validated once per
version of its file, however many steps ask for it; the catalog is read by each step that asks
(it is checked against the providers that step is given).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import duckdb

from cs360_pipeline.catalog.metrics import Catalog
from cs360_pipeline.deployment import Deployment
from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import Paths


class DeploymentResource(dg.ConfigurableResource):
    """One deployment: where its data, sources, policy and metric files are."""

    data_dir: str
    sources_dir: str
    policy_file: str
    metrics_dir: str

    @classmethod
    def from_settings(cls) -> DeploymentResource:
        paths = Deployment.from_settings().paths
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

    @property
    def deployment(self) -> Deployment:
        return Deployment(self.paths)

    def policy(self) -> Policy:
        """The privacy policy, validated (read again only when its file changed)."""
        return self.deployment.policy()

    def catalog(self, providers: Mapping[str, Provider]) -> Catalog:
        """The metric catalog, checked against ``providers``."""
        return self.deployment.catalog(providers)

    def connect(self, zone: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to one zone's database (``deployment.ZONES``)."""
        return self.deployment.connect(zone, read_only=read_only)
