"""When the pipeline runs: a sensor per provider inbox and a nightly refresh of everything."""

import hashlib
import json

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import schedule_time_zone

NIGHTLY_CRON = "0 2 * * *"

refresh_all = dg.define_asset_job(
    "refresh_all",
    selection=dg.AssetSelection.all(),
    description="Ingest every inbox, rebuild cells and models, and publish a release.",
)


def provider_job(provider: str) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        f"refresh_{provider}",
        selection=dg.AssetSelection.groups(provider).downstream(),
        description=f"Ingest {provider}'s inbox and rebuild everything downstream of it.",
    )


def inbox_listing(folder: DropFolder, provider: Provider) -> dict[str, list[int]]:
    """name -> [size, mtime_ns] of every complete file in the inbox that a dataset expects."""
    listing = {}
    for dataset in provider.datasets.values():
        for path in folder.pending(dataset.file_pattern):
            stat = path.stat()
            listing[path.name] = [stat.st_size, stat.st_mtime_ns]
    return listing


def stable_files(previous: dict[str, list[int]], current: dict[str, list[int]]) -> list[str]:
    """Files unchanged since the last tick: a file still growing waits for the next one."""
    return sorted(name for name, stat in current.items() if previous.get(name) == stat)


def inbox_sensor(provider: Provider, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{provider.provider}_inbox",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Starts {job.name} when a complete file lands in sources/{provider.provider}/inbox."
        ),
    )
    def _sensor(
        context: dg.SensorEvaluationContext, deployment: DeploymentResource
    ) -> dg.SensorResult | dg.SkipReason:
        previous = json.loads(context.cursor) if context.cursor else {}
        folder = DropFolder(deployment.paths.provider_dir(provider.provider))
        current = inbox_listing(folder, provider)
        ready = stable_files(previous, current)
        context.update_cursor(json.dumps(current, sort_keys=True))
        if not ready:
            waiting = len(current)
            return dg.SkipReason(
                f"{waiting} file(s) waiting to settle" if waiting else "inbox is empty"
            )
        key = hashlib.sha256(json.dumps({n: current[n] for n in ready}).encode()).hexdigest()
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, tags={"cs360/files": ", ".join(ready)[:1000]})]
        )

    return _sensor


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    jobs = {name: provider_job(name) for name in providers}
    nightly = dg.ScheduleDefinition(
        name="nightly_refresh",
        job=refresh_all,
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=schedule_time_zone(),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Refreshes every provider each night, whether or not a sensor fired.",
    )
    return dg.Definitions(
        jobs=[refresh_all, *jobs.values()],
        schedules=[nightly],
        sensors=[inbox_sensor(providers[name], job) for name, job in jobs.items()],
    )
