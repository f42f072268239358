"""Privacy across releases, through the real pipeline: sticky patterns after a revision, the
joint audit over the releases still public, and the audit catching what the gate cannot."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from cs360_pipeline.demo import generate
from cs360_pipeline.privacy import vault
from cs360_pipeline.privacy.audit import audit
from cs360_pipeline.privacy.policy import load_policy
from cs360_pipeline.privacy.release_audit import audit_release
from cs360_pipeline.publish.gate import check
from cs360_pipeline.registry import load_providers
from cs360_pipeline.settings import SHIPPED_POLICY, Paths
from tests.conftest import Deployment, new_deployment

pytestmark = pytest.mark.refreshes(minutes=0.7)  # of real refreshes: scheduled first

SCALE, END, MONTHS = 0.3, "2025-06", 6


def paths(deployment: Deployment) -> Paths:
    return Paths(data_dir=deployment.data, sources_dir=deployment.sources)


def hidden_keys(deployment: Deployment, release_id: str) -> dict[tuple, set[tuple]]:
    """(audience, measure) -> keys the release hid, read from the restricted vault."""
    con = duckdb.connect(str(paths(deployment).vault_db), read_only=True)
    try:
        rows = con.execute(
            "SELECT audience, measure_id, period_level, period_start, geo_level, geo_code, "
            "breakdown FROM cells WHERE release_id = ? AND suppressed",
            [release_id],
        ).fetchall()
    finally:
        con.close()
    out: dict[tuple, set[tuple]] = {}
    for audience, measure, *key in rows:
        out.setdefault((audience, measure), set()).add(tuple(key))
    return out


def all_keys(deployment: Deployment, release_id: str) -> set[tuple]:
    con = duckdb.connect(str(paths(deployment).vault_db), read_only=True)
    try:
        return set(
            con.execute(
                "SELECT audience, measure_id, period_level, period_start, geo_level, geo_code, "
                "breakdown FROM cells WHERE release_id = ?",
                [release_id],
            ).fetchall()
        )
    finally:
        con.close()


def release_of(deployment: Deployment) -> str:
    return deployment.query("SELECT DISTINCT release_id FROM metric_values")[0][0]


@pytest.fixture(scope="module")
def revised(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, str, str]:
    """Release 1, then a corrected probation file for May, then release 2."""
    deployment = replace(new_deployment(tmp_path_factory.mktemp("releases")), as_of="2025-07-10")
    generate(deployment.sources, seed=7, scale=SCALE, end_month=END, months=MONTHS)
    deployment.cs360("refresh")
    first = release_of(deployment)

    may = sorted((deployment.sources / "probation" / "archive").glob("*events_2025-05.csv"))[0]
    with may.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    kept = [rows[0], *(r for i, r in enumerate(rows[1:]) if i % 3)]  # a third of May withdrawn
    correction = deployment.sources / "probation" / "inbox" / "events_2025-05_v2.csv"
    with correction.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(kept)
    deployment.cs360("refresh")
    return deployment, first, release_of(deployment)


def test_both_releases_are_kept_in_the_vault(revised: tuple[Deployment, str, str]) -> None:
    deployment, first, second = revised
    assert first != second
    con = duckdb.connect(str(paths(deployment).vault_db), read_only=True)
    try:
        releases = con.execute("SELECT release_id FROM releases ORDER BY published_at").fetchall()
    finally:
        con.close()
    assert releases == [(first,), (second,)]


def test_the_second_release_keeps_hiding_what_the_first_hid(
    revised: tuple[Deployment, str, str],
) -> None:
    deployment, first, second = revised
    before, after = hidden_keys(deployment, first), hidden_keys(deployment, second)
    republished = all_keys(deployment, second)
    probation = [k for k in before if k[1].startswith("probation__")]
    assert probation and any(before[k] for k in probation)
    for family, keys in before.items():
        still_there = {k for k in keys if (*family, *k) in republished}
        assert still_there <= after.get(family, set()), family


def test_the_two_releases_together_pin_no_small_count(
    revised: tuple[Deployment, str, str],
) -> None:
    """Attack every probation table with both releases at once (an attacker who kept the first
    release's tables and reads the second), straight from the vault's true counts."""
    deployment, first, second = revised
    con = duckdb.connect()
    vault.attach(con, paths(deployment), read_only=True)
    con.execute(f"ATTACH '{deployment.data / 'build' / 'build.duckdb'}' AS build (READ_ONLY)")
    parents = dict(
        con.execute(
            "SELECT geo_code, parent_code FROM build.shared.geography WHERE parent_code IS NOT NULL"
        ).fetchall()
    )
    measures = [m for a, m in vault.candidate_measures(con) if a == "pst" and "probation" in m]
    assert measures
    changed = 0
    for measure in measures:
        past = vault.past_releases(con, "pst", measure, parents, limit=2)
        assert [p.release_id for p in past] == [second, first]
        pubs = [p.publication(p.release_id, -age) for age, p in enumerate(past)]  # newest first
        report = audit(pubs)
        assert report.passed, report.text()
        changed += int(past[0].lattice.n.sum() != past[1].lattice.n.sum())
    assert changed, "the correction changed no probation count: the test would prove nothing"
    con.close()


def test_the_audit_catches_complements_published_after_all(
    revised: tuple[Deployment, str, str], tmp_path: Path
) -> None:
    """Publish the complementary cells of one measure (every hidden count >= k, so the gate
    sees nothing wrong): the audit finds the small cells they were protecting and names them."""
    deployment, _, second = revised
    build = tmp_path / "build.duckdb"
    shutil.copy(deployment.data / "build" / "build.duckdb", build)
    con = duckdb.connect(str(build))
    vault.attach(con, paths(deployment), read_only=True)
    measure, metric = "probation__new_offense_violations", "probation_new_offense_violations"
    complements = con.execute(
        "SELECT period_level, period_start, geo_level, geo_code, breakdown, n FROM vault.cells "
        "WHERE release_id = ? AND audience = 'pst' AND measure_id = ? "
        "AND kind IN ('secondary', 'forced') AND n >= min_cell_size",
        [second, measure],
    ).fetchall()
    assert complements
    for level, start, geo_level, geo_code, breakdown, n in complements:
        con.execute(
            "UPDATE marts.metric_values SET value = ?, numerator = ?, status = 'published' "
            "WHERE audience = 'pst' AND metric_id = ? AND period_level = ? "
            "AND CAST(period_start AS VARCHAR) = ? AND geo_level = ? AND geo_code = ? "
            "AND breakdown = ?",
            [n, n, metric, level, start, geo_level, geo_code, breakdown],
        )
    assert check(con, load_providers(deployment.sources)).passed  # no small count is shown
    result = audit_release(
        con, releases_public=2, audiences=["pst", "public"], policy=load_policy(SHIPPED_POLICY)
    )
    con.close()
    assert not result.passed
    failing = [f for f in result.families if not f.passed]
    assert {(f.audience, f.measure_id) for f in failing} == {("pst", measure)}
    report = result.text()
    assert "FAILED" in report and "can be narrowed to" in report
    assert all(0 < failure.n < 10 for f in failing for failure in f.report.failures)
