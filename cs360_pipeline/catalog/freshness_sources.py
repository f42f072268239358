"""dbt source freshness for every provider dataset, written from the provider registry.

``dbt source freshness`` needs one source table per dataset, each with the dataset's own limits,
over the delivery ledger in the shared zone (``shared.deliveries``) and its ``_loaded_at`` stamp.
The limits live in ``sources/<provider>/provider.yml``; this module renders them as dbt YAML so
the two cannot drift: a test compares the committed file with a fresh rendering.

    .venv/bin/python -m cs360_pipeline.catalog.freshness_sources   # rewrite the file
"""

from __future__ import annotations

import sys

import yaml

from cs360_pipeline.registry import Provider, load_providers
from cs360_pipeline.settings import DBT_PROJECT_DIR, PROJECT_DIR

FRESHNESS_SOURCES = DBT_PROJECT_DIR / "models" / "staging" / "_freshness__sources.yml"
SOURCE_NAME = "deliveries_by_dataset"
HEADER = (
    "# Written from sources/*/provider.yml by\n"
    "#   python -m cs360_pipeline.catalog.freshness_sources\n"
    "# Do not edit by hand: a test fails when it no longer matches the providers' limits.\n"
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


def main() -> int:
    providers = load_providers(PROJECT_DIR / "sources")
    FRESHNESS_SOURCES.write_text(render(providers), encoding="utf-8")
    print(f"wrote {FRESHNESS_SOURCES.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
