"""The privacy policy file: rule resolution, audiences' table design, sparse levels, errors."""

from __future__ import annotations

import datetime as dt
from itertools import product
from pathlib import Path

import duckdb
import pytest
import yaml

from cs360_pipeline.privacy.lattice import GEO_LEVELS, PERIOD_LEVELS
from cs360_pipeline.privacy.levels import level_of, levels_left_out, sparse_levels
from cs360_pipeline.privacy.policy import PolicyError, load_policy
from cs360_pipeline.publish.audiences import readers
from cs360_pipeline.settings import SHIPPED_POLICY

SHIPPED = SHIPPED_POLICY


def write_policy(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text())
    raw.update(changes)
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_rules_resolve_metric_over_provider_over_audience_over_defaults(tmp_path: Path) -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    raw["audiences"]["public"]["rules"] = {"min_cell_size": 12, "flag_unreliable_below": 30}
    raw["providers"]["hospital"] = {"min_cell_size": 11}
    raw["metrics"] = {"youth_injuries": {"min_cell_size": 20}, "other": {"insider": True}}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(raw))
    policy = load_policy(path)

    police_pst = policy.rule("police", "pst")
    assert (police_pst.min_cell_size, police_pst.flag_unreliable_below) == (10, 20)
    # probation names no k of its own: the audience's k applies; police names 10: it wins.
    probation_public = policy.rule("probation", "public")
    assert (probation_public.min_cell_size, probation_public.flag_unreliable_below) == (12, 30)
    assert policy.rule("police", "public").min_cell_size == 10
    assert policy.rule("hospital", "public").min_cell_size == 11
    assert policy.rule("hospital", "pst", ("youth_injuries",)).min_cell_size == 20
    # A measure used by two metrics takes the strictest of each field.
    both = policy.rule("hospital", "pst", ("youth_injuries", "other"))
    assert (both.min_cell_size, both.insider) == (20, True)
    # The shipped file protects probation and school data against insiders, not hospital data.
    assert [policy.rule(p, "pst").insider for p in ("probation", "school", "hospital")] == [
        True,
        True,
        False,
    ]


def test_unknown_names_and_bad_values_fail_with_the_file_and_key(tmp_path: Path) -> None:
    policy = load_policy(SHIPPED_POLICY)
    with pytest.raises(PolicyError, match=r"metrics: unknown no_such_metric"):
        policy.model_copy(
            update={"metrics": {"no_such_metric": policy.defaults.model_copy()}}
        ).check_names(set(policy.providers), {"a_metric"})
    path = write_policy(tmp_path, defaults={"min_cell_size": 1})
    with pytest.raises(PolicyError, match=r"(?s)policy\.yml: invalid.*defaults\.min_cell_size"):
        load_policy(path)
    path = write_policy(tmp_path, audiences={"pst": {"description": "x"}})
    with pytest.raises(PolicyError, match=r"(?s)audiences\.pst\.breakdowns_min_geo_level"):
        load_policy(path)
    raw = yaml.safe_load(SHIPPED.read_text())
    raw["audiences"]["public"]["beat_min_period_level"] = "week"
    (tmp_path / "week.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError, match=r"beat_min_period_level"):
        load_policy(tmp_path / "week.yml")


def test_an_earlier_policy_keeps_what_its_audiences_were_given(tmp_path: Path) -> None:
    """Written before audiences had a title and under_agreement: the PST is still under the
    agreement and titled as before, the public not; a key the file gives wins."""
    raw = yaml.safe_load(SHIPPED.read_text())
    for audience in raw["audiences"].values():
        audience.pop("title"), audience.pop("under_agreement", None)
    raw["audiences"]["public"]["title"] = "Residents"
    (tmp_path / "earlier.yml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "earlier.yml")
    shown = {r.name: (r.title, r.under_agreement) for r in readers(policy)}
    assert shown == {"pst": ("Problem-Solving Team", True), "public": ("Residents", False)}


def test_audience_tests_agree_in_python_and_sql() -> None:
    policy = load_policy(SHIPPED_POLICY)
    con = duckdb.connect()
    con.execute("CREATE TABLE c (geo_level VARCHAR, period_level VARCHAR, breakdown VARCHAR)")
    combos = list(product([*GEO_LEVELS, "zone", "piece"], PERIOD_LEVELS, ["total", "sex=F"]))
    con.executemany("INSERT INTO c VALUES (?, ?, ?)", combos)
    for name, audience in policy.audiences.items():
        in_sql = set(con.execute(f"SELECT * FROM c WHERE {audience.shows_sql()}").fetchall())
        assert in_sql == {c for c in combos if audience.shows(*c)}, name
    pst, public = policy.audiences["pst"], policy.audiences["public"]
    assert pst.shows("beat", "month", "total") and not pst.shows("beat", "month", "sex=F")
    assert not public.shows("beat", "month", "total") and public.shows("beat", "quarter", "total")
    assert not public.shows("district", "year", "sex=F") and public.shows("city", "month", "sex=F")
    assert pst.shows("zone", "month", "sex=F") and not public.shows("zone", "year", "sex=F")


def cell(period: str, geo: str, code: str, breakdown: str, n: int) -> tuple:
    return (period, dt.date(2025, 1, 1), geo, code, breakdown, n)


def test_sparse_levels_leave_out_mostly_small_levels_and_everything_finer() -> None:
    rows = [
        # beats by month: 3 of 4 non-zero cells are small -> left out
        *(cell("month", "beat", f"B{i}", "total", n) for i, n in enumerate([2, 3, 0, 4, 25])),
        # districts by month: 1 of 2 non-zero small (not more than half) -> kept
        cell("month", "district", "D1", "total", 9),
        cell("month", "district", "D2", "total", 25),
        # districts by month and sex: 3 of 4 small -> left out
        *(cell("month", "district", d, f"sex={s}", n) for d, s, n in
          [("D1", "F", 4), ("D1", "M", 5), ("D2", "F", 20), ("D2", "M", 5)]),
        # beats by month and sex: no small cell, but finer than a level left out -> left out
        *(cell("month", "beat", f"B{i}", "sex=F", 30) for i in range(3)),
        # beats by quarter: coarser in time than beats by month -> kept
        *(cell("quarter", "beat", f"B{i}", "total", 40) for i in range(3)),
        cell("month", "city", "RIV", "total", 34),
    ]  # fmt: skip
    dropped = sparse_levels(rows, 10, 0.5)
    assert dropped == {
        ("beat", "month", frozenset()),
        ("district", "month", frozenset({"sex"})),
        ("beat", "month", frozenset({"sex"})),
    }
    assert {level_of(r) for r in rows} - dropped == {
        ("district", "month", frozenset()),
        ("beat", "quarter", frozenset()),
        ("city", "month", frozenset()),
    }
    assert sparse_levels(rows, 10, 1.0) == set()  # no share is ever more than all
    rare = [cell("year", "city", "RIV", "total", 3), cell("year", "district", "D1", "total", 3)]
    assert sparse_levels(rare, 10, 0.5) == {("district", "year", frozenset())}  # the top stays


def test_levels_follow_the_metrics_that_read_a_measure() -> None:
    """A percent leaves out the levels whose denominators are mostly below the minimum, for
    both its counts; a count metric reading the numerator keeps them for that count, and then
    the denominator keeps them too, so the percent's rows always carry both counts."""
    rule = load_policy(SHIPPED).rule("police", "pst", ())  # k 10, minimum denominator 100

    def table(n_beats: int, district: int) -> list[tuple]:
        beats = [cell("month", "beat", f"B{i}", "total", n_beats) for i in range(4)]
        return [*beats, cell("month", "district", "D1", "total", district)]

    rows = {"cleared": table(12, 48), "crimes": table(40, 160)}  # beats: 40 crimes < 100
    beat_month = {("beat", "month", frozenset())}
    percent = {"clearance_rate": (("cleared", "crimes"), rule)}
    rules = {"cleared": rule, "crimes": rule}
    assert levels_left_out(rows, rules, percent) == {"cleared": beat_month, "crimes": beat_month}
    with_count = {**percent, "cleared_count": (("cleared",), rule)}
    assert levels_left_out(rows, rules, with_count) == {"cleared": set(), "crimes": set()}
    # a measure no metric reads keeps to its own sparse levels
    assert levels_left_out(rows, rules, {}) == {"cleared": set(), "crimes": set()}
