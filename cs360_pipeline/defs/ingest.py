"""One asset per provider dataset: its inbox into the restricted database."""

from contextlib import closing

import dagster as dg

from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.ingest import ingest_dataset
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.privacy.boundaries import derive_beat_tree
from cs360_pipeline.registry import Provider
from cs360_pipeline.sql import confine_file_access, table_rows


def raw_key(provider: str, dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", provider, dataset])


def _ingest_asset(provider: Provider, dataset_name: str) -> dg.AssetsDefinition:
    dataset = provider.datasets[dataset_name]
    dropped = [n for n, c in dataset.columns.items() if c.identifier]

    @dg.asset(
        key=raw_key(provider.provider, dataset_name),
        group_name=provider.provider,
        kinds={"duckdb"},
        description=(
            f"{dataset.title}, from {provider.organisation}. Files matching "
            f"'{dataset.file_pattern}' in sources/{provider.provider}/inbox are validated against "
            "the contract and loaded into the restricted database, or quarantined."
        ),
        metadata={
            "file_pattern": dataset.file_pattern,
            "cadence": dataset.cadence,
            "data_owner": str(provider.dataset_owner(dataset_name) or "none named"),
            "identifiers_dropped": ", ".join(dropped) or "none",
        },
        tags={"zone": "restricted"},
    )
    def _ingest(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> dg.MaterializeResult:
        paths = deployment.paths
        folder = DropFolder(paths.provider_dir(provider.provider))
        folder.work.mkdir(parents=True, exist_ok=True)
        # One line per file, logged as one message: each message is a row in Dagster's event
        # log, and a first load of two years of monthly files is hundreds of them.
        lines: list[str] = []
        with closing(deployment.connect("restricted")) as con:
            # provider.yml's expressions run here: no file outside these two folders is reachable.
            confine_file_access(con, [paths.raw_db.parent, folder.work])
            outcomes = ingest_dataset(
                con,
                provider,
                dataset_name,
                folder,
                log=lines.append,
                notice=context.log.warning,  # a quiet `cs360 refresh` prints these too
                time_zone=deployment.policy().tables.city.time_zone,
            )
            if lines:
                context.log.info("\n".join(lines))
            if dataset.format == "geojson":  # beat boundaries may give the beat tree
                note = derive_beat_tree(con, provider)
                if note:
                    context.log.info(f"{provider.provider}/{dataset_name}: {note}")
            total = table_rows(con, provider.table(dataset_name))
        for outcome in outcomes:
            if outcome.status == "quarantined":
                context.log.warning(outcome.message)
        return dg.MaterializeResult(
            metadata={
                "files_loaded": sum(o.status == "loaded" for o in outcomes),
                "files_quarantined": sum(o.status == "quarantined" for o in outcomes),
                "files_duplicate": sum(o.status == "duplicate" for o in outcomes),
                "rows_loaded": sum(o.rows_loaded for o in outcomes),
                "rows_in_table": total,
            }
        )

    return _ingest


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    assets = [
        _ingest_asset(provider, name)
        for provider in providers.values()
        for name in provider.datasets
    ]
    return dg.Definitions(assets=assets)
