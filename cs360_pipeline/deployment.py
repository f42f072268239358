"""One deployment as every entry point sees it: its folders, its privacy policy, its metric
catalog and a connection to each of its zones.

An entry point (the ``cs360`` command, the Dagster definitions, the analysts' reader) builds it
from settings once, with ``Deployment.from_settings()``, and hands it to what needs it; nothing
below an entry point looks up the environment or a default folder itself. Plain Python, so the
command line uses it without importing Dagster; ``defs/resources.py`` gives it to Dagster's
assets, checks and sensors as a resource.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cs360_pipeline.settings import Paths, current_paths

if TYPE_CHECKING:  # imported where used: `cs360 status` reads neither policy nor catalog
    import duckdb

    from cs360_pipeline.catalog.metrics import Catalog
    from cs360_pipeline.privacy.policy import Policy
    from cs360_pipeline.registry import Provider

ZONES = ("restricted", "shared", "published")


def _stamp(path: Path) -> tuple[int, int]:
    """What changes when a file is edited: its modification time and size."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=8)
def _policy(path: Path, stamp: tuple[int, int]) -> Policy:
    from cs360_pipeline.privacy.policy import load_policy

    return load_policy(path)


@dataclass(frozen=True)
class Deployment:
    """One deployment: where its data, sources, policy and metric files are."""

    paths: Paths

    @classmethod
    def from_settings(cls) -> Deployment:
        """The deployment settings name (``CS360_DEPLOYMENT_DIR`` and the folders under it)."""
        return cls(current_paths())

    def policy(self) -> Policy:
        """The privacy policy, validated (read again only when its file changed)."""
        path = self.paths.policy_file
        try:
            stamp = _stamp(path)
        except OSError:
            stamp = (-1, -1)  # load_policy says which file cannot be read (errors are not kept)
        return _policy(path, stamp)

    def catalog(self, providers: Mapping[str, Provider]) -> Catalog:
        """The metric catalog, checked against ``providers``."""
        from cs360_pipeline.catalog.metrics import load_catalog

        return load_catalog(dict(providers), self.paths.metrics_dir)

    def connect(self, zone: str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """A connection to one zone's database: ``restricted`` (row-level extracts and the
        ledger), ``shared`` (cells and dbt's models) or ``published`` (the live warehouse)."""
        from cs360_pipeline.sql import connect

        files = (self.paths.raw_db, self.paths.build_db, self.paths.warehouse_db)
        databases = dict(zip(ZONES, files, strict=True))
        if zone not in databases:
            raise ValueError(f"unknown zone {zone!r}; the zones are {', '.join(ZONES)}")
        if not read_only:
            self.paths.ensure()
        return connect(databases[zone], read_only=read_only)
