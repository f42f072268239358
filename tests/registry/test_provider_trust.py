"""Provider files are trusted only as far as they are checked.

Every SQL text in a provider.yml must be one scalar expression over its dataset's columns: the
project's own files pass, and each way of smuggling a statement, a subquery, a file read or a
setting read is refused with its reason, naming file, dataset and key. A broken provider file
fails only its provider: the others still load, and a real refresh publishes them, runs none of
the broken file's SQL and exits 1 naming the file.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cs360_pipeline.registry import RegistryError, load_providers, load_registry
from cs360_pipeline.registry.expressions import PREFIX, Scope, why_refused
from cs360_pipeline.registry.loader import load_provider
from cs360_pipeline.settings import PROJECT_DIR
from cs360_pipeline.sql import confine_file_access
from tests.conftest import (
    DEMO_SCALE,
    DEMO_SEED,
    copy_provider_configs,
    edit_provider,
    new_deployment,
)

PROJECT_FILES = sorted((PROJECT_DIR / "sources").glob("*/provider.yml")) + sorted(
    (PROJECT_DIR / "tests" / "fixtures").glob("**/provider.yml")
)
STOLEN = "/tmp/cs360_stolen_victims.csv"
EXFILTRATE = (
    "1 AS x FROM _stage; COPY (SELECT victim_name, victim_dob, block_address FROM _stage) "
    f"TO '{STOLEN}'; SELECT (1"
)

pytestmark = pytest.mark.refreshes(minutes=1)  # of real refreshes: scheduled first


# -- what the project itself writes is accepted ------------------------------------------------


@pytest.mark.parametrize("path", PROJECT_FILES, ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_project_provider_files_pass(path: Path) -> None:
    """Every committed provider.yml, fixtures included, passes with all its expressions."""
    assert load_provider(path).datasets


def test_accepted_forms() -> None:
    """The shapes the project relies on: CASE, casts, intervals, the age macro, EXISTS lookups."""
    scope = Scope(frozenset({"a", "b", "d", "offender_id", "seen"}), table="police__incidents")
    accepted = [
        "a + 1",
        "age_years(d, seen)",
        "strptime(b, '%Y-%m')::DATE",
        "CASE WHEN regexp_matches(upper(b), '^X9[345]') THEN 'assault' END",
        "a BETWEEN 10 AND 24 AND b IN ('A', 'E') AND d IS NOT NULL",
        "seen < d + INTERVAL 12 MONTH",
        "coalesce(a, 0) + coalesce(b, 0)",
        "right(upper(trim(b)), 1) = 'A'",
        "date_diff('second', d, seen) / 60.0",
        "CAST(a AS VARCHAR) LIKE 'x%'",
        "d <= current_date",
        "EXISTS (SELECT 1 FROM raw.police__incidents AS e "
        "WHERE e.offender_id = police__incidents.offender_id AND e.seen < police__incidents.seen)",
    ]
    assert [why_refused(text, scope) for text in accepted] == [None] * len(accepted)
    having = Scope(frozenset({"a", "b"}), aggregates=True)
    assert why_refused("sum(a) >= 0.1 * sum(b) AND sum(b) > 0", having) is None


# -- each hostile form is refused with its reason ----------------------------------------------

HOSTILE = {
    "statement_after_semicolon": (EXFILTRATE, "found ';'"),
    "copy": (f"COPY (SELECT victim_name FROM _stage) TO '{STOLEN}'", "statement keyword COPY"),
    "attach": ("ATTACH '/tmp/loot.duckdb' AS loot", "statement keyword ATTACH"),
    "subquery": ("(SELECT max(victim_age) FROM _stage)", "found a subquery"),
    "read_text_table": (
        "(SELECT content FROM read_text('/etc/passwd'))",
        "found a subquery reading read_text()",
    ),
    "read_text_scalar": ("read_text('/etc/passwd')", "found read_text(), which reads files"),
    "read_csv": (
        "offense_code IN (SELECT * FROM read_csv('/etc/passwd'))",
        "found a subquery reading read_csv()",
    ),
    "glob": ("(SELECT count(*) FROM glob('/home/*'))", "found a subquery reading glob()"),
    "getenv": ("getenv('HOME')", "found getenv(), which reads the environment"),
    "current_setting": (
        "current_setting('home_directory')",
        "found current_setting(), which reads settings",
    ),
    "unknown_column": ("victim_nmae IS NULL", "found 'victim_nmae', which is not a column"),
    "comment": ("offense_code = '09A' -- AND firearm", "found a comment"),
    "block_comment": ("firearm /* ) AS x, (SELECT 1 */", "found a comment"),
    "quote_escape": ("offense_code = 'x'' OR ''1''=''1'", "with a quote inside it"),
    "escape_string": ("offense_code = E'\\x27'", "only plain '...' literals"),
    "dollar_string": ("offense_code = $$x$$", "only plain '...' literals"),
    "unlisted_function": ("pragma_version()", "not an allowed scalar function"),
    "schema_function": ("main.upper(offense_code)", "named with a schema"),
    "window": ("count(*) OVER ()", "found a window function"),
    "aggregate": ("sum(victim_age)", "only 'having' may use"),
    "alias": ("firearm AS x", "found an alias"),
    "two_expressions": ("firearm, victim_age", "several expressions"),
    "from_clause": ("victim_name FROM _stage", "found a FROM clause"),
    "union": ("1 UNION SELECT 2", "set operation"),
    "star": ("*", "found * or COLUMNS"),
    "not_sql": ("CASE WHEN", "DuckDB cannot read it"),
}  # fmt: skip


@pytest.mark.parametrize(("text", "reason"), HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_derived_column_is_refused(tmp_path: Path, text: str, reason: str) -> None:
    """The refusal names file, dataset, key and reason, and does not echo a long expression."""
    sources = copy_provider_configs(tmp_path)
    path = edit_provider(
        sources, "police", lambda d: d["datasets"]["incidents"]["derived"].update(x=text)
    )

    registry = load_registry(sources)

    [problem] = registry.problems
    assert problem.file == path
    expected = f"datasets.incidents.derived.x: {PREFIX}; "
    assert expected in problem.line and reason in problem.line, problem.line
    assert "\n" not in problem.line
    if len(text) > 60:
        assert text not in problem.line
    assert "police" not in registry.providers
    assert sorted(registry.providers) == ["city", "hospital", "probation", "school", "survey"]


def test_message_names_the_key_exactly(tmp_path: Path) -> None:
    sources = copy_provider_configs(tmp_path)
    hostile = "(SELECT 1 FROM _stage)"
    path = edit_provider(
        sources, "police", lambda d: d["datasets"]["incidents"]["derived"].update(is_youth=hostile)
    )
    with pytest.raises(RegistryError) as raised:
        load_providers(sources)
    assert str(raised.value) == (
        f"{path}: invalid provider file:\n  datasets.incidents.derived.is_youth: "
        "only one expression over the dataset's columns is allowed; found a subquery"
    )


MEASURE_HOSTILE = {
    "where_reads_another_table": (
        "where",
        "EXISTS (SELECT 1 FROM raw.hospital__ed_visits AS v WHERE v.beat = 'x')",
        "reads something other than raw.police__incidents",
    ),
    "where_exists_returns_a_column": (
        "where",
        "EXISTS (SELECT victim_sex FROM raw.police__incidents AS e WHERE e.firearm)",
        "other than EXISTS (SELECT 1",
    ),
    "where_nested_subquery": (
        "where",
        "EXISTS (SELECT 1 FROM raw.police__incidents AS e WHERE e.offense_code IN "
        "(SELECT content FROM read_text('/etc/passwd')))",
        "found a subquery reading read_text()",
    ),
    "where_identifier": ("where", "victim_name = 'Ann'", "a direct identifier"),
    "value_getenv": ("value", "length(getenv('HOME'))", "found getenv()"),
    "entity_subquery": ("entity", "(SELECT 1)", "found a subquery"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("key", "text", "reason"), MEASURE_HOSTILE.values(), ids=list(MEASURE_HOSTILE)
)
def test_hostile_measure_expression_is_refused(
    tmp_path: Path, key: str, text: str, reason: str
) -> None:
    sources = copy_provider_configs(tmp_path)
    measure = "violent_crimes"

    def change(d: dict[str, Any]) -> None:
        d["measures"][measure].update({key: text})
        if key in ("value", "entity"):
            d["measures"][measure]["kind"] = "sum" if key == "value" else "entities"

    path = edit_provider(sources, "police", change)
    [problem] = load_registry(sources).problems
    assert problem.file == path
    assert f"measures.{measure}.{key}: {PREFIX}; " in problem.line and reason in problem.line


def test_breakdown_and_check_expressions_are_checked(tmp_path: Path) -> None:
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["calls"]["checks"] = {"sane": "priority BETWEEN 1 AND 4"}
        d["measures"]["shots_fired_calls"]["breakdowns"] = {"sex": "getenv('USER')"}

    edit_provider(sources, "police", change)
    [problem] = load_registry(sources).problems
    assert "measures.shots_fired_calls.breakdowns.sex" in problem.line
    assert "found getenv()" in problem.line

    edit_provider(sources, "police", lambda d: d["measures"]["shots_fired_calls"].pop("breakdowns"))
    edit_provider(
        sources, "police", lambda d: d["datasets"]["calls"]["checks"].update(x="(SELECT 1)")
    )
    [problem] = load_registry(sources).problems
    assert "datasets.calls.checks.x" in problem.line and "found a subquery" in problem.line


# -- a broken file fails its provider only -----------------------------------------------------


def test_file_that_is_not_yaml_fails_only_its_provider(tmp_path: Path) -> None:
    sources = copy_provider_configs(tmp_path)
    broken = sources / "survey" / "provider.yml"
    broken.write_text("provider: survey\ndatasets: [unclosed\n  - {\n", encoding="utf-8")

    registry = load_registry(sources)

    assert sorted(registry.providers) == ["city", "hospital", "police", "probation", "school"]
    [problem] = registry.problems
    assert problem.file == broken and "cannot read provider file" in problem.line
    assert registry.failed == ["survey"]
    with pytest.raises(RegistryError, match=re.escape(f"{broken}: cannot read provider file")):
        load_providers(sources)


def test_last_valid_copy_describes_a_broken_provider(tmp_path: Path) -> None:
    """A broken provider is known by its last valid copy; a tampered copy is not used."""
    sources = copy_provider_configs(tmp_path)
    keep = tmp_path / "keep"
    first = load_registry(sources, keep_dir=keep)
    assert not first.problems and sorted(p.name for p in keep.iterdir()) == sorted(first.providers)

    edit_provider(
        sources, "survey", lambda d: d["datasets"]["responses"].update(derived={"x": EXFILTRATE})
    )
    second = load_registry(sources, keep_dir=keep)
    assert "survey" not in second.providers and second.failed == ["survey"]
    assert second.last_valid["survey"] == first.providers["survey"]
    assert second.known["survey"] == first.providers["survey"]
    assert EXFILTRATE not in (keep / "survey" / "provider.yml").read_text(encoding="utf-8")

    kept = keep / "survey" / "provider.yml"
    kept.write_text((sources / "survey" / "provider.yml").read_text(), encoding="utf-8")
    assert "survey" not in load_registry(sources, keep_dir=keep).last_valid


def test_provider_depending_on_a_broken_one_without_a_copy_fails_too(tmp_path: Path) -> None:
    """Crosswalks read city.tracts: with city unreadable and no copy, their providers fail."""
    sources = copy_provider_configs(tmp_path)
    (sources / "city" / "provider.yml").write_text(":\n", encoding="utf-8")

    registry = load_registry(sources)

    assert registry.failed == ["city", "hospital", "probation", "survey"]
    assert sorted(registry.providers) == ["police", "school"]
    assert "crosswalk.dataset: unknown dataset 'city.tracts'" in registry.problems[1].line


# -- end to end: a real refresh with one hostile provider file ---------------------------------


def test_refresh_skips_a_hostile_provider_and_publishes_the_others(tmp_path: Path) -> None:
    """Refresh once, deliver two more months, make the survey's file hostile, refresh again."""
    from cs360_pipeline.demo import generate

    deployment = new_deployment(tmp_path / "deployment")
    generate(deployment.sources, seed=DEMO_SEED, scale=DEMO_SCALE, end_month="2025-10", months=12)
    deployment.cs360("refresh")
    shots = "SELECT max(period_start) FROM metric_values WHERE metric_id = 'shots_fired_calls'"
    survey = (
        "SELECT max(period_start), count(*) FROM metric_values "
        "WHERE metric_id = 'trust_in_police' AND status <> 'missing'"
    )
    [(survey_through, survey_values)] = deployment.query(survey)
    assert str(deployment.query(shots)[0][0]) == "2025-10-01" and survey_values > 0

    later = tmp_path / "later"
    shutil.copytree(deployment.sources, later, ignore=shutil.ignore_patterns("inbox", "archive"))
    generate(later, seed=DEMO_SEED, scale=DEMO_SCALE, end_month="2025-12", months=14)
    for new in [*later.glob("*/inbox/*_2025-11.csv"), *later.glob("*/inbox/*_2025-12.csv")]:
        shutil.copy(new, deployment.sources / new.parent.parent.name / "inbox" / new.name)
    survey_inbox = deployment.sources / "survey" / "inbox"
    waiting = sorted(p.name for p in survey_inbox.iterdir() if not p.name.startswith("."))
    assert waiting == ["responses_2025-11.csv", "responses_2025-12.csv"]

    Path(STOLEN).unlink(missing_ok=True)
    config = deployment.sources / "survey" / "provider.yml"
    edit_provider(
        deployment.sources,
        "survey",
        lambda d: d["datasets"]["responses"].update(
            derived={
                "is_youth": EXFILTRATE,
                "home": "(SELECT content FROM read_text('/etc/hosts'))",
            }
        ),
    )

    result = deployment.cs360("refresh", check=False)

    assert result.returncode == 1, result.stdout + result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("ERROR: ") and "survey" in x]
    assert line == (
        f"ERROR: {config}: invalid provider file; datasets.responses.derived.is_youth: {PREFIX}; "
        "found ';', which ends the expression and starts another statement"
    )
    assert "Published release" in result.stdout
    assert not Path(STOLEN).exists()
    # The others' new months are published; the survey's stay in its inbox, its cells as they were.
    assert str(deployment.query(shots)[0][0]) == "2025-12-01"
    assert deployment.query(survey)[0][0] == survey_through
    assert sorted(p.name for p in survey_inbox.iterdir() if not p.name.startswith(".")) == waiting

    config.write_text("provider: survey\ndatasets: [unclosed\n", encoding="utf-8")
    status = deployment.cs360("status", check=False)
    assert status.returncode == 3  # an error
    assert f"ERROR: {config}: cannot read provider file" in status.stderr
    only = deployment.cs360("refresh", "--provider", "survey", check=False)
    assert only.returncode == 1 and f"ERROR: {config}: cannot read provider file" in only.stderr


def test_a_confined_connection_reaches_no_file_outside_its_folders(tmp_path: Path) -> None:
    """The second wall behind the parser: even SQL that got through reads and writes nothing
    outside the folders the step needs, and cannot lift the confinement."""
    inside, outside = tmp_path / "restricted", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours\n", encoding="utf-8")
    con = duckdb.connect(str(inside / "raw.duckdb"))
    try:
        confine_file_access(con, [inside])
        con.execute(f"COPY (SELECT 1 AS a) TO '{inside / 'ok.csv'}'")
        assert con.execute(f"SELECT a FROM read_csv('{inside / 'ok.csv'}')").fetchall() == [(1,)]
        for sql in (
            f"SELECT * FROM read_text('{outside / 'secret.txt'}')",
            f"COPY (SELECT 1) TO '{outside / 'leak.csv'}'",
            f"ATTACH '{outside / 'other.duckdb'}' AS other",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.execute(sql)
        with pytest.raises(duckdb.InvalidInputException):
            con.execute("SET enable_external_access = true")
        confine_file_access(con, [inside])  # asking again for the same folders is fine
        with pytest.raises(RuntimeError, match="excludes"):
            confine_file_access(con, [outside])
    finally:
        con.close()
    assert not (outside / "leak.csv").exists()
