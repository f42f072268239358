"""Privacy assets: row-level tables in, protected cells and public reference data out."""

from contextlib import closing
from typing import Any

import dagster as dg

from cs360_pipeline.catalog.metrics import POPULATION, POPULATION_DATASET, measures_by_metric
from cs360_pipeline.defs import contracts
from cs360_pipeline.defs.ingest import raw_key
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.defs.run_options import RunOptions
from cs360_pipeline.faults import fault_point
from cs360_pipeline.privacy import cells_inputs, fallbacks, placement, vault
from cs360_pipeline.privacy.boundaries import BOUNDARIES, BOUNDARIES_TABLE, tree_differences
from cs360_pipeline.privacy.protection import Protector
from cs360_pipeline.privacy.reference import (
    build_geography,
    build_population,
    delivered_rows,
    zone_lines,
)
from cs360_pipeline.privacy.shared_cells import write_union
from cs360_pipeline.privacy.zones import raw_tables, restricted_to_shared
from cs360_pipeline.registry import Provider
from cs360_pipeline.release.identity import code_version

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


def cells_deps(provider: Provider, providers: dict[str, Provider]) -> list[dg.AssetKey]:
    """The ingest assets a provider's cells step reads: what its cells are built from."""
    keys = {*_upstream(provider), *_boundary_keys(providers)}
    return sorted(keys, key=lambda k: k.to_user_string())


def cells_datasets(provider: Provider, providers: dict[str, Provider]) -> list[tuple[str, str]]:
    """``cells_deps`` as (provider, dataset) pairs, as the ingest ledger names them."""
    return [(key.path[1], key.path[2]) for key in cells_deps(provider, providers)]


def _boundary_keys(providers: dict[str, Provider]) -> list[dg.AssetKey]:
    """The city's beat boundaries, if it declares them: they may write the beat tree."""
    city = providers.get(REFERENCE)
    return [raw_key(REFERENCE, BOUNDARIES)] if city and BOUNDARIES in city.datasets else []


def _points_datasets(provider: Provider) -> list[str]:
    return [
        name
        for name, dataset in provider.datasets.items()
        if dataset.geography is not None and dataset.geography.points is not None
    ]


def unplaceable(provider: Provider, available: set[str], read: set[str]) -> list[str]:
    """Why delivered datasets of ``provider`` cannot be placed on beats: their crosswalk (or, for
    coordinates, the city's beat boundaries) is absent.

    A dataset placed by a reference dataset (residence tract -> beat, school -> beat) needs that
    reference delivered; without it none of its records has a beat, and building no cells in
    silence would leave its metrics empty with nothing to say why. Only datasets that were
    delivered and that a metric reads are named.
    """
    out = []
    for name, dataset in provider.datasets.items():
        geo = dataset.geography
        placed_by_reference = geo is not None and (geo.crosswalk or geo.points)
        if not placed_by_reference or provider.table(name) not in available:
            continue
        if not any(
            m.dataset == name and provider.measure_id(key) in read
            for key, m in provider.measures.items()
        ):
            continue
        assert geo is not None
        if geo.points is not None:
            if BOUNDARIES_TABLE not in available:
                out.append(
                    f"{provider.provider}.{name} is placed by its coordinates "
                    f"({geo.points.longitude}, {geo.points.latitude}) on the beat boundaries "
                    f"(city.{BOUNDARIES}), which have not been delivered: drop beats.geojson "
                    "into sources/city/inbox"
                )
            continue
        assert geo.crosswalk is not None
        reference = geo.crosswalk.dataset
        if reference.replace(".", "__") not in available:
            ref_provider = reference.partition(".")[0]
            out.append(
                f"{provider.provider}.{name} is placed by {geo.column} through {reference}, "
                f"which has not been delivered: drop it into sources/{ref_provider}/inbox"
            )
    return out


def _cells_contract(
    deployment: DeploymentResource, key: dg.AssetKey, provider: str
) -> dg.AssetCheckResult:
    """The table just written (or kept) against the shared cells contract."""
    from cs360_pipeline.contracts.cells import cells_contract
    from cs360_pipeline.contracts.validate import check_table

    contract = cells_contract(deployment.policy(), provider)
    with closing(deployment.connect("shared", read_only=True)) as con:
        breaches = check_table(con, "shared", key.path[-1], contract)
    return contracts.result(key, breaches)


def _cells_asset(provider: Provider, providers: dict[str, Provider]) -> dg.AssetsDefinition:
    key = shared_key(f"cells_{provider.provider}")

    @dg.asset(
        key=key,
        deps=cells_deps(provider, providers),
        group_name=provider.provider,
        kinds={"duckdb"},
        description=(
            f"{provider.organisation}: every measure aggregated to additive cells (beat, district, "
            "city x month, quarter, year x breakdowns) for each audience, with small counts and "
            "enough complementary cells suppressed that none can be derived. The only row-level "
            "input; the output holds no small count."
        ),
        tags={"zone": "shared"},
        check_specs=[
            dg.AssetCheckSpec(
                contracts.CHECK,
                asset=key,
                blocking=True,
                description=(
                    "The shared cells contract (contracts/cells.py): the cell key unique, counts "
                    "whole and non-negative, a hidden cell without count or value, no count "
                    "shown below the cell's minimum, no column beyond the contract's. A breach "
                    "stops the run before dbt reads the cells."
                ),
            )
        ],
    )
    def _cells(
        context: dg.AssetExecutionContext, deployment: DeploymentResource, run_options: RunOptions
    ) -> dg.MaterializeResult:
        metadata = _keep_or_build(context, deployment, provider, providers, run_options.full)
        contract = _cells_contract(deployment, key, provider.provider)
        if not contract.passed:
            context.log.error(f"contract broken: {contract.description}")
        return dg.MaterializeResult(metadata=metadata, check_results=[contract])

    return _cells


def _keep_or_build(
    context: dg.AssetExecutionContext,
    deployment: DeploymentResource,
    provider: Provider,
    providers: dict[str, Provider],
    full: bool,
) -> dict[str, Any]:
    """Keep the provider's cells when their inputs are unchanged (unless ``full``), else build
    them; what was done, for the asset's metadata."""
    paths = deployment.paths.ensure()
    policy = deployment.policy()
    catalog = deployment.catalog(providers)
    policy.check_names(set(providers), set(catalog.metrics))
    with restricted_to_shared(paths) as con:
        inputs = cells_inputs.digest(
            con, cells_datasets(provider, providers), policy.sha256, code_version(paths)
        )
        vault.attach(con, paths)
        kept = cells_inputs.built_from(con, provider.provider, inputs)
        if kept and not full:
            context.log.info(
                f"{provider.provider}: cells kept from the last build (the same files, "
                "policy and code)"
            )
            return {"kept": True, "cells_kept": cells_inputs.cells(con, provider.provider)}
        cells_inputs.forget(con, provider.provider)
        available = raw_tables(con)
        if "city__beats" not in available:
            raise RuntimeError(
                "the beat map (city/beats) has not been delivered: cells cannot be placed. "
                "Drop beats.csv (or the beat boundaries, beats.geojson, where the city "
                "declares them) into sources/city/inbox."
            )
        metric_measures = measures_by_metric(catalog)
        read = {m for measures in metric_measures.values() for m in measures}
        missing = unplaceable(provider, available, read)
        differ = tree_differences(con) if _points_datasets(provider) else None
        if differ:
            missing.append(
                f"the beat boundaries (city.{BOUNDARIES}) and beats.csv (city.beats) must "
                f"agree on every beat and its district, and {differ}"
            )
        if missing:
            raise dg.Failure(
                description=f"{provider.provider}: cells cannot be placed on beats. "
                + "; ".join(missing)
                + ".",
                allow_retries=False,
            )
        protector = Protector(
            con, policy, metric_measures, log=context.log.info, warn=context.log.warning
        )
        done = protector.build_provider(provider, available, read)
        unplaced: dict[str, int] = {}
        for d in done:
            unplaced.setdefault(d.measure_id, d.unlocated_rows)
        placed = placement.write(con, provider, unplaced)
        fallbacks.write(
            con,
            provider.provider,
            [(d.audience, d.measure_id, d.fallback) for d in done if d.fallback],
        )
        fault_point("cells:built")  # every output written, the inputs not yet recorded
        cells_inputs.record(con, provider.provider, inputs)
    for p in placed:
        if p.rows_unplaced:
            context.log.warning(f"{p.line()}: they are counted in no cell")
    built = {d.measure_id for d in done}
    ids = [provider.measure_id(n) for n in provider.measures]
    return {
        "kept": False,
        "cells": sum(d.cells for d in done),
        "suppressed_cells": sum(d.suppressed for d in done),
        "complementary_cells": sum(d.secondary for d in done),
        "suppression_rate": _markdown_table(
            ("measure", "audience", "cells", "suppressed"),
            [(d.measure_id, d.audience, f"{d.cells:,}", f"{d.rate:.1%}") for d in done],
        ),
        "rows_without_beat": sum(p.rows_unplaced for p in placed),
        "placement": _markdown_table(
            ("measure", "placed by", "rows", "placed in no beat"),
            [(p.measure_id, p.placed_by, f"{p.rows:,}", f"{p.rows_unplaced:,}") for p in placed],
        ),
        "measures_without_data": ", ".join(m for m in ids if m in read and m not in built)
        or "none",
        "measures_no_metric_reads": ", ".join(m for m in ids if m not in read) or "none",
        "policy_sha256": policy.sha256,
    }


def _markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> dg.MetadataValue:
    """A small table for the asset's page in the UI."""
    lines = [header, tuple("---" for _ in header), *rows]
    return dg.MetadataValue.md("\n".join(f"| {' | '.join(line)} |" for line in lines))


def _geography_asset(providers: dict[str, Provider]) -> dg.AssetsDefinition:
    @dg.asset(
        key=shared_key("geography"),
        deps=[raw_key(REFERENCE, "beats"), *_boundary_keys(providers)],
        group_name=REFERENCE,
        kinds={"duckdb"},
        description="The beat -> district -> city tree (public reference data).",
    )
    def geography(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> dg.MaterializeResult:
        policy = deployment.policy()
        with restricted_to_shared(deployment.paths.ensure()) as con:
            rows = build_geography(con, policy)
            placement.ensure_table(con)  # dbt's privacy report reads them, cells or not
            fallbacks.ensure_table(con)
            zones = zone_lines(con, policy)
        for line in zones:
            context.log.info(line)
        return dg.MaterializeResult(metadata={"rows": rows, "zones": "; ".join(zones) or "none"})

    return geography


def rate_metrics(deployment: DeploymentResource, providers: dict[str, Provider]) -> list[str]:
    """The catalog's metrics per 1,000 residents: the ones that need population."""
    catalog = deployment.catalog(providers)
    return sorted(m for m, metric in catalog.metrics.items() if metric.denominator == POPULATION)


def _population_asset(providers: dict[str, Provider]) -> dg.AssetsDefinition:
    @dg.asset(
        key=shared_key("population"),
        deps=[
            raw_key(REFERENCE, "beats"),
            raw_key(REFERENCE, "population"),
            *_boundary_keys(providers),
        ],
        group_name=REFERENCE,
        kinds={"duckdb"},
        description=(
            "Residents by year, geography, sex and age group: the denominators of rates. Empty "
            "when the city has not delivered population: counts still publish, rates are missing."
        ),
    )
    def population(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> dg.MaterializeResult:
        with restricted_to_shared(deployment.paths.ensure()) as con:
            delivered = delivered_rows(con, "city__population")
            rows = build_population(con, deployment.policy())
        rates = rate_metrics(deployment, providers)
        if not delivered:
            context.log.warning(
                f"population ({POPULATION_DATASET.replace('.', '/')}) not delivered: rate "
                f"metrics {', '.join(rates) or '(none)'} are missing, as a rate per 1,000 "
                "residents needs residents; count metrics publish as usual. Drop population.csv "
                "into sources/city/inbox to publish them."
            )
        return dg.MaterializeResult(
            metadata={
                "rows": rows,
                "delivered": bool(delivered),
                "rate_metrics_missing": ", ".join(rates) if not delivered else "none",
            }
        )

    return population


def _union_asset(providers: dict[str, Provider]) -> dg.AssetsDefinition:
    with_measures = sorted(name for name, p in providers.items() if p.measures)

    @dg.asset(
        key=shared_key("cells"),
        deps=[shared_key(f"cells_{name}") for name in with_measures],
        group_name="privacy",
        kinds={"duckdb"},
        description=(
            "Every registered provider's protected cells in one table, the one relation dbt "
            "reads: a provider's metrics follow from its provider.yml, no dbt file names it."
        ),
        tags={"zone": "shared"},
    )
    def cells(deployment: DeploymentResource) -> dg.MaterializeResult:
        with closing(deployment.connect("shared")) as con:
            counts = write_union(con, with_measures)
        return dg.MaterializeResult(
            metadata={"cells": sum(counts.values()), **{f"cells_{p}": n for p, n in counts.items()}}
        )

    return cells


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    cells = [_cells_asset(p, providers) for p in providers.values() if p.measures]
    assets = [
        *cells,
        _union_asset(providers),
        _geography_asset(providers),
        _population_asset(providers),
    ]
    return dg.Definitions(assets=assets)
