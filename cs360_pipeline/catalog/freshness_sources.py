"""dbt source freshness for every provider dataset, written from the provider registry.

``dbt source freshness`` needs one source table per dataset, each with the dataset's own limits,
over the delivery ledger in the shared zone (``shared.deliveries``) and its ``_loaded_at`` stamp.
The limits live in ``sources/<provider>/provider.yml``; this module renders them as dbt YAML
for the deployment's own providers whenever the definitions load (before dbt parses), so the
dbt project names no provider of its own and the file never drifts from the registry. The file
is not committed.

    .venv/bin/python -m cs360_pipeline.catalog.freshness_sources   # write it now
"""

from __future__ import annotations

import sys

import yaml

from cs360_pipeline.registry import Provider, load_registry
from cs360_pipeline.settings import DBT_PROJECT_DIR, PROJECT_DIR, current_paths

FRESHNESS_SOURCES = DBT_PROJECT_DIR / "models" / "staging" / "_freshness__sources.yml"
SOURCE_NAME = "deliveries_by_dataset"
HEADER = (
    "# Written from the deployment's sources/*/provider.yml each time the definitions load\n"
    "# (or by `python -m cs360_pipeline.catalog.freshness_sources`). Not committed; do not edit.\n"
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


def sync(providers: dict[str, Provider]) -> bool:
    """Write the file for ``providers`` unless it already says exactly that; True if written.

    Leaving an unchanged file untouched keeps its mtime, so dbt is not parsed again for nothing.
    """
    text = render(providers)
    if FRESHNESS_SOURCES.exists() and FRESHNESS_SOURCES.read_text(encoding="utf-8") == text:
        return False
    FRESHNESS_SOURCES.write_text(text, encoding="utf-8")
    return True


def main() -> int:
    providers = load_registry(current_paths().sources_dir).providers
    sync(providers)
    print(f"wrote {FRESHNESS_SOURCES.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
