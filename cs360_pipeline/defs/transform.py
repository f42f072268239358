"""dbt models (staging -> intermediate -> marts) as Dagster assets; dbt tests become checks.

dbt runs in this process (``catalog/dbt_in_process.py``). Two helpers of dagster-dbt 0.29.27,
outside its public API, do what its command-line resource does around a dbt process: the run's
selection as dbt arguments (``get_updated_cli_invocation_params_for_context``) and a node's
result as Dagster events (``DbtCoreCliEventMessage``), so assets and checks stay as they were.
"""

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from cs360_pipeline.catalog import dbt_in_process, dbt_parses
from cs360_pipeline.catalog.dbt_workdir import prepare, project_files
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.release.unchanged import scorecard_date

DBT_EXECUTABLE = str(Path(sys.executable).with_name("cs360-dbt"))
# A run tagged with this ("log") keeps dbt's messages out of its standard output: `cs360
# refresh` prints one line for the dbt stage instead. Every run writes them to Paths.dbt_log.
DBT_OUTPUT_TAG = "cs360/dbt_output"
# dbt colours its messages for a terminal; they go to files here (the log, Dagster's captured
# output), where colour codes are noise.
NO_COLOURS = ["--no-use-colors", "--no-use-colors-file"]


def dbt_vars(deployment: DeploymentResource) -> list[str]:
    """``--vars`` for dbt: "today" is the city's local date (its policy's time zone), or
    ``CS360_AS_OF``. The parse passes the same as the build, so the build's first run reuses the
    parse (dbt parses everything again when the vars differ: about 3 s)."""
    return ["--vars", json.dumps({"as_of": scorecard_date(deployment.policy()).isoformat()})]


def ensure_manifest(dbt_project: DbtProject, deployment: DeploymentResource) -> Path:
    """Parse the dbt project when its manifest is missing or older than its files, or take the
    parse another deployment made of the same files (``catalog/dbt_parses.py``).

    dagster-dbt only re-parses under ``dagster dev``; the headless refresh, the tests and the
    UI all load the definitions the same way, so they share this check (a parse takes ~6 s).
    A file the copy took from the installation is newer than the manifest it invalidates.
    """
    manifest = dbt_project.manifest_path
    newest = max(p.stat().st_mtime for p in project_files(dbt_project.project_dir).values())
    if manifest.exists() and manifest.stat().st_mtime >= newest:
        return manifest
    key = dbt_parses.digest(dbt_project.project_dir)
    if dbt_parses.restore(key, manifest.parent):
        return manifest
    result = subprocess.run(
        [DBT_EXECUTABLE, "parse", "--quiet", *dbt_vars(deployment)],
        cwd=dbt_project.project_dir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not manifest.exists():
        raise RuntimeError(f"dbt parse failed:\n{result.stdout}\n{result.stderr}")
    dbt_parses.keep(key, manifest.parent)
    return manifest


class Translator(DagsterDbtTranslator):
    """Group models by layer (staging, intermediate, marts) so the graph reads left to right."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if dbt_resource_props.get("resource_type") == "model" and len(fqn) > 2:
            return f"dbt_{fqn[1]}"
        return super().get_group_name(dbt_resource_props)


class _Tee:
    """A file, and another stream too if given: all dbt's logger needs (write and flush)."""

    def __init__(self, file: TextIO, echo: TextIO | None) -> None:
        self.streams = [file] if echo is None else [file, echo]

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextmanager
def dbt_output(log: Path, echo: bool) -> Iterator[Path]:
    """dbt prints its messages on standard output: send them to ``log`` as well, or only there.
    A person reads that file after a quiet refresh; the UI keeps its own copy."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as file, redirect_stdout(
        _Tee(file, sys.stdout if echo else None)  # type: ignore[arg-type]
    ):
        yield log


def build_defs(deployment: DeploymentResource) -> dg.Definitions:
    """dbt's models as assets, from the deployment's own copy of the project (brought up to date
    and parsed as the definitions load)."""
    dbt_dir = prepare(deployment.paths)
    dbt_project = DbtProject(project_dir=dbt_dir, profiles_dir=dbt_dir)

    translator = Translator()

    @dbt_assets(
        manifest=ensure_manifest(dbt_project, deployment),
        project=dbt_project,
        dagster_dbt_translator=translator,
    )
    def cs360_dbt_models(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> Iterator[Any]:
        paths = deployment.paths.ensure()
        # The profile's database is ../build.duckdb from the project's copy: the deployment's
        # build database. dbt's run artefacts go beside it (one folder, overwritten by each run).
        target = paths.build_dir / "dbt_target"
        # The run's selection of models and tests as dbt arguments, the way dagster-dbt's
        # command line resource makes them (it reads the manifest from the asset definition).
        params = get_updated_cli_invocation_params_for_context(
            context=context, manifest={}, dagster_dbt_translator=translator
        )
        # Unit tests check the SQL on rows written by hand, not the data: the suite runs them.
        argv = [*NO_COLOURS, "build", "--exclude-resource-type", "unit_test",
                *dbt_vars(deployment), *params.selection_args]  # fmt: skip
        if params.indirect_selection:
            argv += ["--indirect-selection", params.indirect_selection]
        echo = context.run.tags.get(DBT_OUTPUT_TAG) != "log"
        with dbt_output(paths.dbt_log, echo):
            outcome = dbt_in_process.run(dbt_dir, argv, target)
        for raw in outcome.results:
            event = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
            yield from event.to_default_asset_events(
                manifest=params.manifest,
                dagster_dbt_translator=params.dagster_dbt_translator,
                context=context,
                target_path=target,
                project=dbt_project,
            )
        if outcome.exception is not None and not isinstance(outcome.exception, Exception):
            raise outcome.exception  # interrupted: Dagster ends the run as it asked
        if not outcome.success:
            errors = outcome.errors or [f"dbt stopped: {outcome.exception!r}"]
            raise dg.Failure(
                description="dbt build failed (dbt's output: {}):\n{}".format(
                    paths.dbt_log, "\n".join(errors)
                )
            )

    return dg.Definitions(assets=[cs360_dbt_models])
