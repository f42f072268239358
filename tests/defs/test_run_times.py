"""Step timings of a real (tiny) in-process Dagster run, grouped into the refresh's stages."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg
import pytest

from cs360_pipeline.run_times import STAGES, RunTimes, run_times, stage_of, summary

METRIC_VALUES = dg.AssetKey(["marts", "metric_values"])
SLOW_SECONDS = 0.3


@dg.asset(key=["raw", "x", "y"])
def raw_x_y() -> None:
    pass


@dg.asset(key=["shared", "cells_x"], deps=[dg.AssetKey(["raw", "x", "y"])])
def cells_x() -> None:
    time.sleep(SLOW_SECONDS)  # the slowest step, so the summary names it first


@dg.asset(key=["shared", "geography"])
def geography() -> None:
    pass


@dg.multi_asset(
    name="cs360_dbt_models",
    specs=[dg.AssetSpec(METRIC_VALUES, deps=[["shared", "cells_x"], ["shared", "geography"]])],
)
def cs360_dbt_models() -> None:
    pass


@dg.asset_check(asset=METRIC_VALUES, name="privacy_audit", blocking=True)
def privacy_audit() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset=METRIC_VALUES, name="privacy_gate", blocking=True)
def privacy_gate() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset(key=["published", "warehouse"], deps=[METRIC_VALUES])
def warehouse() -> None:
    pass


@dg.asset(key=["published", "brief"], deps=[["published", "warehouse"]])
def brief() -> None:
    raise RuntimeError("the brief broke")


@dg.asset(key=["published", "after_brief"], deps=[["published", "brief"]])
def after_brief() -> None:
    pass


@dg.asset(key=["scratch", "thing"])
def scratch_thing() -> None:
    pass


EXPECTED_STAGES = {
    "raw__x__y": "ingest",
    "shared__cells_x": "privacy",
    "marts__metric_values_privacy_audit": "privacy",
    "shared__geography": "catalog & reference",
    "cs360_dbt_models": "dbt",
    "marts__metric_values_privacy_gate": "checks",
    "published__warehouse": "publish",
    "published__brief": "publish",
    "scratch__thing": "other",
}


@pytest.fixture(scope="module")
def times() -> Iterator[RunTimes]:
    defs = dg.Definitions(
        assets=[raw_x_y, cells_x, geography, cs360_dbt_models, warehouse, brief, after_brief,
                scratch_thing],
        asset_checks=[privacy_audit, privacy_gate],
        jobs=[dg.define_asset_job("refresh_all")],
        executor=dg.in_process_executor,
    )  # fmt: skip
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("refresh_all").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not result.success  # published/brief fails on purpose
        yield run_times(instance, result.run_id)


def test_each_step_lands_in_its_stage_with_its_duration(times: RunTimes) -> None:
    steps = {s.step_key: s for s in times.steps}
    assert {key: s.stage for key, s in steps.items()} == EXPECTED_STAGES
    assert all(s.seconds >= 0 for s in times.steps)
    assert steps["shared__cells_x"].seconds >= SLOW_SECONDS
    assert [key for key, s in steps.items() if s.failed] == ["published__brief"]
    assert "published__after_brief" not in steps  # skipped after the failure: no time


def test_stages_add_up_to_the_step_time(times: RunTimes) -> None:
    by_stage = times.by_stage()
    assert list(by_stage) == [s for s in STAGES if s in set(EXPECTED_STAGES.values())]
    assert sum(by_stage.values()) == pytest.approx(times.step_seconds)
    assert sum(times.share(s) for s in by_stage) == pytest.approx(1.0)
    assert times.share("privacy") >= SLOW_SECONDS / times.step_seconds
    assert times.run_seconds is not None and times.run_seconds >= times.step_seconds


def test_summary_names_the_stages_and_the_slowest_steps(times: RunTimes) -> None:
    head, slowest = summary(times).splitlines()
    assert head.startswith("Time: ")
    for stage in set(EXPECTED_STAGES.values()):
        assert f" {stage} " in head
    assert slowest.startswith("Slowest steps: shared__cells_x ")
    assert len(slowest.split(", ")) == 3


@pytest.mark.parametrize(
    ("step_key", "stage"),
    [
        ("raw__police__incidents", "ingest"),
        ("shared__cells_police", "privacy"),
        ("marts__metric_values_privacy_audit", "privacy"),
        ("shared__metric_definitions", "catalog & reference"),
        ("shared__release", "catalog & reference"),
        ("cs360_dbt_models", "dbt"),
        ("marts__metric_values_privacy_gate", "checks"),
        ("delivery_and_ownership_checks", "checks"),
        ("published__release_log", "publish"),
        ("something_new", "other"),
    ],
)
def test_stage_rules_on_the_refresh_step_keys(step_key: str, stage: str) -> None:
    assert stage_of(step_key) == stage
