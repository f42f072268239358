"""Privacy assets: row-level tables in, protected cells and public reference data out."""


import dagster as dg

from cs360_pipeline.defs.ingest import raw_key
from cs360_pipeline.privacy.cells import CellBuilder
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.privacy.reference import build_geography, build_population
from cs360_pipeline.privacy.zones import raw_tables, restricted_to_shared
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import current_paths

REFERENCE = "city"


def shared_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["shared", name])


def _upstream(provider: Provider) -> list[dg.AssetKey]:
    """The provider's own datasets, the beat map, and any crosswalk its datasets go through."""
    keys = {raw_key(provider.provider, name) for name in provider.datasets}
    keys.add(raw_key(REFERENCE, "beats"))
    for dataset in provider.datasets.values():
        if dataset.geography and dataset.geography.crosswalk:
            ref_provider, _, ref_dataset = dataset.geography.crosswalk.dataset.partition(".")
            keys.add(raw_key(ref_provider, ref_dataset))
    return sorted(keys, key=lambda k: k.to_user_string())


def _cells_asset(provider: Provider) -> dg.AssetsDefinition:
    @dg.asset(
        key=shared_key(f"cells_{provider.provider}"),
        deps=_upstream(provider),
        group_name=provider.provider,
        kinds={"duckdb"},
        description=(
            f"{provider.organisation}: every measure aggregated to additive cells (beat, district, "
            "city x month, quarter, year x breakdowns) with counts below the provider's minimum "
            "cell size suppressed. The only row-level input; the output holds no small count."
        ),
        tags={"zone": "shared"},
    )
    def _cells(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        paths = current_paths().ensure()
        policy = load_policy()
        with restricted_to_shared(paths) as con:
            available = raw_tables(con)
            if "city__beats" not in available:
                raise RuntimeError(
                    "the beat map (city/beats) has not been delivered: cells cannot be placed. "
                    "Drop beats.csv into sources/city/inbox."
                )
            summaries = CellBuilder(con, policy).build_provider(provider, available)
        for s in summaries:
            context.log.info(
                f"{s.measure_id}: {s.cells:,} cells, {s.suppressed:,} suppressed"
                + (f", {s.unlocated_rows:,} rows with no known beat" if s.unlocated_rows else "")
            )
        return dg.MaterializeResult(
            metadata={
                "cells": sum(s.cells for s in summaries),
                "suppressed_cells": sum(s.suppressed for s in summaries),
                "rows_without_beat": sum(s.unlocated_rows for s in summaries),
                "measures_without_data": ", ".join(s.measure_id for s in summaries if s.cells == 0)
                or "none",
                "policy_sha256": policy.sha256,
            }
        )

    return _cells


@dg.asset(
    key=shared_key("geography"),
    deps=[raw_key(REFERENCE, "beats")],
    group_name=REFERENCE,
    kinds={"duckdb"},
    description="The beat -> district -> city tree (public reference data).",
)
def geography() -> dg.MaterializeResult:
    paths = current_paths().ensure()
    with restricted_to_shared(paths) as con:
        rows = build_geography(con, load_policy())
    return dg.MaterializeResult(metadata={"rows": rows})


@dg.asset(
    key=shared_key("population"),
    deps=[raw_key(REFERENCE, "beats"), raw_key(REFERENCE, "population")],
    group_name=REFERENCE,
    kinds={"duckdb"},
    description="Residents by year, geography, sex and age group: the denominators of rates.",
)
def population() -> dg.MaterializeResult:
    paths = current_paths().ensure()
    with restricted_to_shared(paths) as con:
        rows = build_population(con, load_policy())
    return dg.MaterializeResult(metadata={"rows": rows})


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    cells = [_cells_asset(p) for p in providers.values() if p.measures]
    return dg.Definitions(assets=[*cells, geography, population])
