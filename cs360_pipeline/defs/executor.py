"""The executor of every run the daemon or the UI launches: in one process, under the writer lock.

``cs360 refresh`` takes the deployment's lock itself; runs from sensors, the schedule or the UI
take it here, so a second writer waits for the first instead of failing on DuckDB's file lock.
The instance's run queue (``dagster.yaml``: one run at a time) keeps such waits rare. Holding
the lock, a run first reconciles whatever a refresh that died left half-published.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.executor_definition import _core_in_process_executor_creation
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.executor.in_process import InProcessExecutor

from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.instance import fail_interrupted_run
from cs360_pipeline.refresh_lock import Holder, held_by_this_process, refresh_lock
from cs360_pipeline.release.publication import reconcile

# A queued run waits this long for a refresh started outside the queue (the CLI, cron).
WAIT_SECONDS = 6 * 3600


def started_by(tags: dict[str, str]) -> str:
    """How a run started, in words an operator recognises."""
    if "dagster/sensor_name" in tags:
        return f"sensor {tags['dagster/sensor_name']}"
    if "dagster/schedule_name" in tags:
        return f"schedule {tags['dagster/schedule_name']}"
    return "a launch from Dagster (its UI or command line)"


class LockedInProcessExecutor(InProcessExecutor):
    """Runs the steps in process while holding the deployment's writer lock."""

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        # An executor is given no resources: it builds the deployment from settings as the
        # definitions did.
        deployment = DeploymentResource.from_settings()
        paths = deployment.paths
        if held_by_this_process(paths):
            yield from super().execute(plan_context, execution_plan)
            return
        run = plan_context.dagster_run
        waiting: list[Holder | None] = []

        def note(holder: Holder | None) -> None:
            waiting.append(holder)
            who = holder.describe() if holder else "another refresh"
            plan_context.log.info(f"waiting for the running refresh to finish ({who})")

        with refresh_lock(
            paths,
            started_by(dict(run.tags)),
            run_id=run.run_id,
            wait_seconds=WAIT_SECONDS,
            on_wait=note,
        ) as died:
            if died is not None:
                message = fail_interrupted_run(plan_context.instance, died)
                yield DagsterEvent.engine_event(plan_context, message)
            for line in reconcile(paths, deployment.policy().history.releases_public):
                yield DagsterEvent.engine_event(plan_context, f"publication recovered: {line}")
            yield from super().execute(plan_context, execution_plan)


@dg.executor(name="cs360_locked_in_process", config_schema=dg.in_process_executor.config_schema)
def locked_in_process_executor(init_context: dg.InitExecutorContext) -> LockedInProcessExecutor:
    """One process, one step at a time (DuckDB files take a single writer), under the lock."""
    plain = _core_in_process_executor_creation(init_context.executor_config)
    return LockedInProcessExecutor(
        retries=plain.retries,
        marker_to_close=plain.marker_to_close,
        step_dependency_config=plain.step_dependency_config,
    )
