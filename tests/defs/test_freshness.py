"""How each delivery check judges a row of the delivery scorecard (``provider_status``).

The checks only read the scorecard, so each judgement is tested on the row itself; the
refresh tests (test_status.py) show the same verdicts on a real deployment's rows.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from cs360_pipeline.defs.freshness import STATUS_COLUMNS, _catalog_results, _dataset_result

KEY = dg.AssetKey(["raw", "police", "calls"])
WARN, ERROR = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR
ON_TIME: dict[str, Any] = {
    **{name: None for name in STATUS_COLUMNS},
    "provider": "police",
    "dataset": "calls",
    "freshness_status": "on_time",
    "data_status": "current",
    "missing_months": 0,
    "delivery_size_status": "usual",
    "ownership_status": "owned",
    "files_quarantined_open": 0,
    "issues": None,
    "as_of": "2026-01-15",
}


@pytest.mark.parametrize(
    ("check", "change", "severity"),
    [
        ("delivered_on_time", {"freshness_status": "late"}, WARN),
        ("delivered_on_time", {"freshness_status": "overdue"}, ERROR),
        ("delivered_on_time", {"freshness_status": "never_delivered"}, ERROR),
        ("data_current", {"data_status": "behind"}, WARN),
        ("data_current", {"data_status": "far_behind"}, ERROR),
        ("no_missing_months", {"missing_months": 2}, ERROR),
        ("delivery_size_usual", {"delivery_size_status": "shrunken"}, WARN),
        ("owner_and_steward_named", {"ownership_status": "no_steward"}, WARN),
        ("owner_and_steward_named", {"ownership_status": "no_owner"}, ERROR),
        ("quarantine_cleared", {"files_quarantined_open": 1}, WARN),
    ],
)
def test_each_check_fails_on_its_own_column(
    check: str, change: dict[str, Any], severity: dg.AssetCheckSeverity
) -> None:
    assert _dataset_result(check, KEY, ON_TIME).passed
    result = _dataset_result(check, KEY, {**ON_TIME, **change, "issues": "something"})
    assert not result.passed and result.severity == severity
    assert result.description == "something (as of 2026-01-15)"
    column = next(iter(change))
    assert result.metadata["status"].value == str(change[column])


def test_a_dataset_missing_from_the_scorecard_fails() -> None:
    result = _dataset_result("delivered_on_time", KEY, None)
    assert not result.passed and result.severity == ERROR
    assert "not in the delivery scorecard" in (result.description or "")


def test_the_catalog_checks_name_the_metrics() -> None:
    rows = [
        {"metric_id": "a", "owner_status": "owned", "freshness_status": "fresh",
         "stale_sources": None},
        {"metric_id": "b", "owner_status": "no_owner", "freshness_status": "stale",
         "stale_sources": "police/calls late"},
    ]  # fmt: skip
    owned, fresh = _catalog_results(rows, {"metrics_owned", "metric_sources_fresh"})
    assert not owned.passed and owned.description == "without an owner: b"
    assert not fresh.passed and fresh.severity == WARN
    assert fresh.description == "stale: b (police/calls late)"
