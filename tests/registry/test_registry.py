"""The provider registry: the project's own sources load, and every broken file is named.

Each negative test copies the project's ``sources/*/provider.yml`` into ``tmp_path``, breaks one
thing, and checks that :func:`load_providers` raises a :class:`RegistryError` whose message names
the offending file and the key that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cs360_pipeline.registry import Provider, RegistryError, load_providers
from cs360_pipeline.settings import PROJECT_DIR
from tests.conftest import copy_provider_configs, edit_provider

PROJECT_SOURCES = PROJECT_DIR / "sources"
PROVIDERS = ["city", "hospital", "police", "probation", "school", "survey"]


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
        "domestic_violence_incidents",
        "priority1_calls_reached",
        "priority1_reached_within_10_minutes",
        "priority1_response_minutes",
        "repeat_domestic_violence_incidents",
        "shots_fired_calls",
        "violent_crimes",
        "violent_crimes_cleared",
        "violent_firearm_crimes",
    ]
    assert sorted(providers["probation"].datasets) == ["caseload", "events"]
    assert providers["school"].datasets["attendance"].no_delivery_months == [7]
    assert providers["survey"].measures["respondents"].kind == "count"
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
    copied = load_providers(copy_provider_configs(tmp_path))
    original = load_providers(PROJECT_SOURCES)

    assert copied == original


# -- schema errors name the file and the key --------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    """A key the schema does not know is refused (extra='forbid'), with its name."""
    sources = copy_provider_configs(tmp_path)
    path = edit_provider(sources, "police", lambda d: d.update(colour="blue"))

    with pytest.raises(RegistryError, match=named(path, "invalid provider file", "colour")):
        load_providers(sources)


def test_unknown_dataset_key(tmp_path: Path) -> None:
    """An unknown key nested in a dataset is reported with its full dotted location."""
    sources = copy_provider_configs(tmp_path)
    path = edit_provider(sources, "police", lambda d: d["datasets"]["calls"].update(tab="Calls"))

    with pytest.raises(RegistryError, match=named(path, "datasets.calls.tab", "Extra inputs")):
        load_providers(sources)


def test_unknown_column_type(tmp_path: Path) -> None:
    """A column type outside the DuckDB whitelist names the column and the bad type."""
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["calls"]["columns"]["priority"]["type"] = "INT128"

    path = edit_provider(sources, "police", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "datasets.calls.columns.priority.type", "type 'INT128' is not one of"),
    ):
        load_providers(sources)


def test_measure_names_unknown_dataset(tmp_path: Path) -> None:
    """A measure whose dataset does not exist names both the measure and the dataset."""
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["measures"]["shots_fired_calls"]["dataset"] = "callz"

    path = edit_provider(sources, "police", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "measure 'shots_fired_calls' names unknown dataset 'callz'"),
    ):
        load_providers(sources)


def test_crosswalk_names_unknown_dataset(tmp_path: Path) -> None:
    """A crosswalk to a dataset no provider delivers is caught across providers."""
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["ed_visits"]["geography"]["crosswalk"]["dataset"] = "city.tractz"

    path = edit_provider(sources, "hospital", change)

    with pytest.raises(
        RegistryError,
        match=named(
            path, "datasets.ed_visits.geography.crosswalk.dataset", "unknown dataset 'city.tractz'"
        ),
    ):
        load_providers(sources)


def test_crosswalk_names_unknown_provider(tmp_path: Path) -> None:
    """A crosswalk whose provider part is unknown is reported the same way."""
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["events"]["geography"]["crosswalk"]["dataset"] = "county.tracts"

    path = edit_provider(sources, "probation", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "datasets.events.geography.crosswalk.dataset", "'county.tracts'"),
    ):
        load_providers(sources)


def test_crosswalk_key_missing_from_reference(tmp_path: Path) -> None:
    """A crosswalk key the reference dataset lacks is refused, naming both columns needed."""
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["datasets"]["ed_visits"]["geography"]["crosswalk"]["key"] = "geoid"

    path = edit_provider(sources, "hospital", change)

    with pytest.raises(
        RegistryError,
        match=named(path, "datasets.ed_visits.geography.crosswalk", "needs columns 'geoid'"),
    ):
        load_providers(sources)


def test_provider_name_must_match_folder(tmp_path: Path) -> None:
    """A provider.yml in the wrong folder is refused, naming both names."""
    sources = copy_provider_configs(tmp_path)
    (sources / "police").rename(sources / "cops")
    path = sources / "cops" / "provider.yml"

    with pytest.raises(
        RegistryError, match=named(path, "provider: 'police' must match its folder 'cops'")
    ):
        load_providers(sources)


def test_invalid_yaml(tmp_path: Path) -> None:
    """Unparseable YAML names the file and says it cannot be read."""
    sources = copy_provider_configs(tmp_path)
    path = sources / "school" / "provider.yml"
    path.write_text("provider: school\ndatasets: [unclosed\n", encoding="utf-8")

    with pytest.raises(RegistryError, match=named(path, "cannot read provider file")):
        load_providers(sources)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    """A YAML list (or empty file) at the top level is refused."""
    sources = copy_provider_configs(tmp_path)
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
    sources = copy_provider_configs(tmp_path)
    path = edit_provider(
        sources, "police", lambda d: d["datasets"]["calls"].update(key=["call_id"])
    )

    with pytest.raises(
        RegistryError, match=named(path, "datasets.calls", "'call_id' is not a column")
    ):
        load_providers(sources)


def test_measure_period_must_name_a_dataset_column(tmp_path: Path) -> None:
    """A measure-level period override naming no column should be refused like a dataset's."""
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        d["measures"]["shots_fired_calls"]["period"] = "recieved_at"

    path = edit_provider(sources, "police", change)

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


# -- how a partner's export maps onto the contract --------------------------------------------


def test_defaults_keep_existing_provider_files_valid() -> None:
    """Files that predate the export keys get CSV, UTF-8, ',' and no tolerance for bad rows."""
    calls = load_providers(PROJECT_SOURCES)["police"].datasets["calls"]

    assert (calls.format, calls.encoding, calls.field_delimiter, calls.sheet) == (
        "csv",
        "utf-8",
        ",",
        None,
    )
    assert calls.max_bad_row_share == 0.0
    assert calls.max_file_mb == 4096.0
    assert calls.revises_months  # monthly cadence: a re-delivered month replaces the month
    assert calls.columns["call_number"].source is None


def test_export_mapping_keys_load() -> None:
    """The Metro PD fixture: renames, value maps, formats, Excel and Parquet datasets."""
    from cs360_pipeline.registry.loader import load_provider

    fixture = PROJECT_DIR / "tests" / "fixtures" / "exports" / "metro_pd" / "provider.yml"
    metro = load_provider(fixture)

    calls = metro.datasets["calls"]
    assert (calls.encoding, calls.max_bad_row_share) == ("utf-8-sig", 0.25)
    assert calls.columns["call_number"].source == "Incident #"
    assert calls.columns["priority"].values == {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
    assert calls.columns["received_at"].formats == ["%m/%d/%Y %I:%M:%S %p"]
    assert calls.columns["received_at"].max == "today"
    sheet = metro.datasets["calls_xlsx"]
    assert (sheet.format, sheet.sheet) == ("xlsx", "Calls")
    assert sheet.columns["received_at"].formats == ["%m/%d/%Y %I:%M:%S %p", "excel_serial"]
    assert metro.datasets["calls_parquet"].format == "parquet"
    assert metro.datasets["calls_parquet"].field_delimiter == ","


def _set(dataset: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["datasets"][dataset].update(values)

    return change


def _set_column(dataset: str, column: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["datasets"][dataset]["columns"][column].update(values)

    return change


EXPORT_KEY_ERRORS = {
    "unknown_format": (_set("calls", format="json"), ["datasets.calls.format", "'csv'"]),
    "xlsx_without_sheet": (_set("calls", format="xlsx"), ["datasets.calls", "needs 'sheet'"]),
    "sheet_on_csv": (_set("calls", sheet="Calls"), ["datasets.calls", "'sheet' only applies"]),
    "delimiter_on_parquet": (
        _set("calls", format="parquet", delimiter=";"),
        ["datasets.calls", "'delimiter' does not apply to format parquet"],
    ),
    "long_delimiter": (_set("calls", delimiter=";;"), ["delimiter ';;' must be one character"]),
    "unknown_encoding": (_set("calls", encoding="utf-16"), ["datasets.calls.encoding"]),
    "bad_row_share_over_one": (
        _set("calls", max_bad_row_share=1.5),
        ["datasets.calls.max_bad_row_share", "less than or equal to 1"],
    ),
    "zero_size_cap": (_set("calls", max_file_mb=0), ["datasets.calls.max_file_mb"]),
    "yaml_boolean_value_key": (
        _set_column("calls", "disposition", values={True: "YES"}),
        ["datasets.calls.columns.disposition.values", "was read by YAML as bool", "quote it"],
    ),
    "format_on_text_column": (
        _set_column("calls", "beat", format="%Y"),
        ["datasets.calls.columns.beat", "format only applies to DATE and TIMESTAMP"],
    ),
    "format_without_percent": (
        _set_column("calls", "received_at", format="MM/DD/YYYY"),
        ["datasets.calls.columns.received_at", "neither a strptime format"],
    ),
    "date_bound_not_a_date": (
        _set_column("calls", "received_at", max="tomorrow"),
        ["datasets.calls.columns.received_at", "'tomorrow' must be an ISO date"],
    ),
    "number_bound_on_text": (
        _set_column("calls", "priority", max="today"),
        ["datasets.calls.columns.priority", "must be a number"],
    ),
    "value_map_outside_allowed": (
        _set_column("calls", "call_type_code", allowed=["SHOTS"], values={"10-71": "SHOTS",
                                                                           "484": "THEFT"}),
        ["datasets.calls.columns.call_type_code", "values maps to ['THEFT']"],
    ),
    "two_columns_one_header": (
        _set_column("calls", "call_type", source="call_type_code"),
        ["datasets.calls", "both read header 'call_type_code'"],
    ),
    "unknown_revisions": (_set("calls", revisions="by_week"), ["datasets.calls.revisions"]),
    "check_name_not_snake": (
        _set("calls", checks={"Bad Name": "true"}),
        ["datasets.calls.checks", "must be lower_snake_case"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fragments"), EXPORT_KEY_ERRORS.values(), ids=list(EXPORT_KEY_ERRORS)
)
def test_export_key_errors_name_file_and_key(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], fragments: list[str]
) -> None:
    sources = copy_provider_configs(tmp_path)
    path = edit_provider(sources, "police", change)

    with pytest.raises(RegistryError, match=named(path, "invalid provider file", *fragments)):
        load_providers(sources)


# -- ownership and the delivery calendar --------------------------------------------------------


def test_owner_and_steward_are_optional_and_resolve_per_dataset(tmp_path: Path) -> None:
    """A provider may name no owner or steward (the scorecard flags it); a dataset's own owner
    or steward overrides the provider's, and an empty name is refused."""
    sources = copy_provider_configs(tmp_path)

    def change(d: dict[str, Any]) -> None:
        del d["data_owner"], d["steward"]
        d["datasets"]["caseload"]["owner"] = {"role": "Juvenile Division Director", "name": "Ana"}

    edit_provider(sources, "probation", change)
    probation = load_providers(sources)["probation"]
    assert probation.data_owner is None and probation.steward is None
    assert probation.dataset_owner("events") is None
    assert str(probation.dataset_owner("caseload")) == "Ana (Juvenile Division Director)"
    assert probation.dataset_steward("caseload") is None

    path = edit_provider(
        sources, "probation", lambda d: d.update(steward={"role": "Analyst", "name": ""})
    )
    with pytest.raises(RegistryError, match=named(path, "steward.name")):
        load_providers(sources)


@pytest.mark.parametrize(
    ("months", "message"),
    [([0, 7], "months must be 1-12, not [0]"), (list(range(1, 13)), "cannot skip every month")],
)
def test_no_delivery_months_are_calendar_months(
    tmp_path: Path, months: list[int], message: str
) -> None:
    sources = copy_provider_configs(tmp_path)
    path = edit_provider(
        sources,
        "school",
        lambda d: d["datasets"]["attendance"].update(no_delivery_months=months),
    )
    with pytest.raises(
        RegistryError,
        match=named(path, "datasets.attendance.no_delivery_months", message),
    ):
        load_providers(sources)
