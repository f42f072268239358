"""dbt source freshness for every provider dataset, written from the provider registry.

``dbt source freshness`` needs one source table per dataset, each with the dataset's own limits,
over the delivery ledger in the shared zone (``shared.deliveries``) and its ``_loaded_at`` stamp.
The limits live in ``sources/<provider>/provider.yml``; this module renders them as dbt YAML
for the deployment's own providers whenever the definitions load (before dbt parses), into the
deployment's copy of the dbt project (``data/build/dbt_project/``, see ``dbt_workdir``), so the
shipped project names no provider and the file never drifts from the registry.

    .venv/bin/python -m cs360_pipeline.catalog.freshness_sources   # write it now
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from cs360_pipeline.registry import Provider

RELATIVE_PATH = Path("models/staging/_freshness__sources.yml")  # within a dbt project folder
SOURCE_NAME = "deliveries_by_dataset"
HEADER = (
    "# Written from the deployment's sources/*/provider.yml each time the definitions load\n"
    "# (or by `python -m cs360_pipeline.catalog.freshness_sources`). Do not edit.\n"
    "# `dbt source freshness --vars '{as_of: YYYY-MM-DD}'` reports each dataset's latest delivery\n"
    "# (_loaded_at) against its limits, on the same clock as the provider_status mart.\n"
)


def render(providers: dict[str, Provider]) -> str:
    tables = []
    for provider in sorted(providers.values(), key=lambda p: p.provider):
        for name, dataset in sorted(provider.datasets.items()):
            config: dict[str, object] = {"loaded_at_field": "_loaded_at"}
            if dataset.freshness:
                config["freshness"] = {
                    "warn_after": {"count": dataset.freshness.warn_after_days, "period": "day"},
                    "error_after": {"count": dataset.freshness.error_after_days, "period": "day"},
                    "filter": (
                        f"provider = '{provider.provider}' and dataset = '{name}' "
                        "and status = 'loaded'"
                    ),
                }
            else:
                config["freshness"] = None
            tables.append(
                {
                    "name": provider.table(name),
                    "identifier": "deliveries",
                    "description": f"Deliveries of {provider.provider}/{name}: {dataset.title}.",
                    "config": config,
                }
            )
    document = {
        "version": 2,
        "sources": [
            {
                "name": SOURCE_NAME,
                "schema": "shared",
                "description": (
                    "The delivery ledger once per provider dataset, for dbt source freshness."
                ),
                "tables": tables,
            }
        ],
    }
    return HEADER + "\n" + yaml.safe_dump(document, sort_keys=False, width=100)


def sync(providers: dict[str, Provider], project_dir: Path) -> bool:
    """Write the file for ``providers`` into the dbt project at ``project_dir`` unless it already
    says exactly that; True if written.

    Leaving an unchanged file untouched keeps its mtime, so dbt is not parsed again for nothing.
    """
    path = project_dir / RELATIVE_PATH
    text = render(providers)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def main() -> int:
    from cs360_pipeline.catalog.dbt_workdir import prepare
    from cs360_pipeline.deployment import Deployment

    print(f"wrote {prepare(Deployment.from_settings().paths) / RELATIVE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
