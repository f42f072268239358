"""The provider registry: the project's own sources load, and every broken file is named.

Each negative test copies the project's ``sources/*/provider.yml`` into ``tmp_path``, breaks one
thing, and checks that :func:`load_providers` raises a :class:`RegistryError` whose message names
the offending file and the key that is wrong.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cs360_pipeline.registry import Provider, RegistryError, load_providers
from cs360_pipeline.settings import PROJECT_DIR

PROJECT_SOURCES = PROJECT_DIR / "sources"
PROVIDERS = ["city", "hospital", "police", "probation", "school"]


def copy_sources(tmp_path: Path) -> Path:
    """A copy of every project provider.yml (no drop folders) under ``tmp_path/sources``."""
    sources = tmp_path / "sources"
    for config in sorted(PROJECT_SOURCES.glob("*/provider.yml")):
        target = sources / config.parent.name / "provider.yml"
        target.parent.mkdir(parents=True)
        shutil.copy(config, target)
    return sources


def edit(sources: Path, provider: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """Apply ``change`` to one provider's parsed YAML and write it back; returns the file."""
    path = sources / provider / "provider.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def named(path: Path, *fragments: str) -> str:
    """A regex that requires the file path first and then every fragment, in order."""
    return "(?s)" + re.escape(str(path)) + "".join(".*" + re.escape(f) for f in fragments)


# -- the project's own registry ---------------------------------------------------------------


def test_project_sources_load() -> None:
    """The committed sources/ folder is valid and cross-references resolve."""
    providers = load_providers(PROJECT_SOURCES)

    assert sorted(providers) == PROVIDERS
    assert sorted(providers["police"].datasets) == ["calls", "incidents"]
    assert sorted(providers["police"].measures) == [
        "priority1_response_minutes",
        "shots_fired_calls",
        "violent_firearm_crimes",
    ]
    walk = providers["hospital"].datasets["ed_visits"].geography
    assert walk is not None and walk.crosswalk is not None
    assert (walk.crosswalk.dataset, walk.crosswalk.key) == ("city.tracts", "tract_geoid")
    # Types are normalised to DuckDB's upper-case names; identifiers are not kept.
    calls = providers["police"].datasets["calls"]
    assert calls.columns["priority"].type == "INTEGER"
    assert "caller_name" not in calls.kept_columns
    assert providers["school"].table("attendance") == "school__attendance"
    assert providers["school"].measure_id("enrolled_students") == "school__enrolled_students"


def test_copied_sources_load_identically(tmp_path: Path) -> None:
    """A verbatim copy in tmp_path loads to the same models (the helper itself is sound)."""
    copied = load_providers(copy_sources(tmp_path))
    original = load_providers(PROJECT_SOURCES)

    assert copied == original


# -- schema errors name the file and the key --------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    """A key the schema does not know is refused (extra='forbid'), with its name."""
    sources = copy_sources(tmp_path)
    path = edit(sources, "police", lambda d: d.update(colour="blue"))

    with pytest.raises(RegistryError, match=named(path, "invalid provider file", "colour")):
        load_providers(sources)


def test_unknown_dataset_key(tmp_path: Path) -> None:
    """An unknown key nested in a dataset is reported with its full dotted location."""
    sources = copy_sources(tmp_path)
    path = edit(sources, "police", lambda d: d["datasets"]["calls"].update(sheet="Calls"))

    with pytest.raises(RegistryError, match=named(path, "datasets.calls.sheet", "Extra inputs")):
        load_providers(sources)


def test_unknown_column_type(tmp_path: Path) -> None:
    """A column type outside the DuckDB whitelist names the column and the bad type."""
    sources = copy_sources(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["calls"]["columns"]["priority"]["type"] = "INT128"

    path = edit(sources, "police", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "datasets.calls.columns.priority.type", "type 'INT128' is not one of"),
    ):
        load_providers(sources)


def test_measure_names_unknown_dataset(tmp_path: Path) -> None:
    """A measure whose dataset does not exist names both the measure and the dataset."""
    sources = copy_sources(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["measures"]["shots_fired_calls"]["dataset"] = "callz"

    path = edit(sources, "police", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "measure 'shots_fired_calls' names unknown dataset 'callz'"),
    ):
        load_providers(sources)


def test_crosswalk_names_unknown_dataset(tmp_path: Path) -> None:
    """A crosswalk to a dataset no provider delivers is caught across providers."""
    sources = copy_sources(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["ed_visits"]["geography"]["crosswalk"]["dataset"] = "city.tractz"

    path = edit(sources, "hospital", change)

    with pytest.raises(
        RegistryError,
        match=named(
            path, "datasets.ed_visits.geography.crosswalk.dataset", "unknown dataset 'city.tractz'"
        ),
    ):
        load_providers(sources)


def test_crosswalk_names_unknown_provider(tmp_path: Path) -> None:
    """A crosswalk whose provider part is unknown is reported the same way."""
    sources = copy_sources(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["events"]["geography"]["crosswalk"]["dataset"] = "county.tracts"

    path = edit(sources, "probation", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "datasets.events.geography.crosswalk.dataset", "'county.tracts'"),
    ):
        load_providers(sources)


def test_crosswalk_key_missing_from_reference(tmp_path: Path) -> None:
    """A crosswalk key the reference dataset lacks is refused, naming both columns needed."""
    sources = copy_sources(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["ed_visits"]["geography"]["crosswalk"]["key"] = "geoid"

    path = edit(sources, "hospital", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "datasets.ed_visits.geography.crosswalk", "needs columns 'geoid'"),
    ):
        load_providers(sources)


def test_provider_name_must_match_folder(tmp_path: Path) -> None:
    """A provider.yml in the wrong folder is refused, naming both names."""
    sources = copy_sources(tmp_path)
    (sources / "police").rename(sources / "cops")
    path = sources / "cops" / "provider.yml"

    with pytest.raises(
        RegistryError, match=named(path, "provider: 'police' must match its folder 'cops'")
    ):
        load_providers(sources)


def test_invalid_yaml(tmp_path: Path) -> None:
    """Unparseable YAML names the file and says it cannot be read."""
    sources = copy_sources(tmp_path)
    path = sources / "school" / "provider.yml"
    path.write_text("provider: school\ndatasets: [unclosed\n", encoding="utf-8")

    with pytest.raises(RegistryError, match=named(path, "cannot read provider file")):
        load_providers(sources)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    """A YAML list (or empty file) at the top level is refused."""
    sources = copy_sources(tmp_path)
    path = sources / "city" / "provider.yml"
    path.write_text("- just\n- a list\n", encoding="utf-8")

    with pytest.raises(RegistryError, match=named(path, "expected a mapping at the top level")):
        load_providers(sources)


def test_no_provider_files(tmp_path: Path) -> None:
    """An empty sources folder is an error, not an empty registry."""
    with pytest.raises(RegistryError, match=re.escape(f"{tmp_path}: no */provider.yml found")):
        load_providers(tmp_path)


def test_dataset_key_must_be_a_column(tmp_path: Path) -> None:
    """A dataset key naming no column is refused with the dataset's location."""
    sources = copy_sources(tmp_path)
    path = edit(sources, "police", lambda d: d["datasets"]["calls"].update(key=["call_id"]))

    with pytest.raises(
        RegistryError, match=named(path, "datasets.calls", "'call_id' is not a column")
    ):
        load_providers(sources)


def test_measure_period_must_name_a_dataset_column(tmp_path: Path) -> None:
    """A measure-level period override naming no column should be refused like a dataset's."""
    sources = copy_sources(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["measures"]["shots_fired_calls"]["period"] = "recieved_at"

    path = edit(sources, "police", change)

    with pytest.raises(RegistryError, match=named(path, "shots_fired_calls", "recieved_at")):
        load_providers(sources)


def test_model_validate_reports_every_rule() -> None:
    """Measure kinds enforce their fields (sum/median need value, having is entities-only)."""
    police = load_providers(PROJECT_SOURCES)["police"].model_dump()
    police["measures"] = {
        "bad_median": {"title": "t", "dataset": "calls", "kind": "median"},
    }
    with pytest.raises(ValueError, match="a median measure needs 'value'"):
        Provider.model_validate(police)

    police["measures"] = {
        "bad_having": {"title": "t", "dataset": "calls", "kind": "count", "having": "true"},
    }
    with pytest.raises(ValueError, match="'having' only applies to entities measures"):
        Provider.model_validate(police)
