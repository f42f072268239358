"""Typed shape of ``sources/<provider>/provider.yml``.

The YAML is reviewed configuration: SQL expressions in it (derived columns, measure filters) are
written by the project's maintainers, never by partners, and run inside DuckDB.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
DUCKDB_TYPES = {"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "BOOLEAN"}
CADENCES = ("daily", "weekly", "monthly", "quarterly", "annual", "as_needed")
COMMUNITY_MAP_AREAS = (
    "education & youth services",
    "health",
    "justice & crime",
    "housing",
    "labor & economic development",
    "public works & traffic",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} must be lower_snake_case (letters, digits, underscores)")
    return value


def _check_keys(mapping: dict) -> dict:
    for name in mapping:
        _check_identifier(name)
    return mapping


class Person(_Strict):
    role: str
    name: str
    email: str | None = None


class Column(_Strict):
    """One canonical column of a dataset's contract."""

    type: str
    required: bool = False
    identifier: bool = Field(False, description="Direct identifier: dropped at the door.")
    allowed: list[str] | None = None
    min: float | None = None
    max: float | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value.upper() not in DUCKDB_TYPES:
            raise ValueError(f"type {value!r} is not one of {sorted(DUCKDB_TYPES)}")
        return value.upper()


class Freshness(_Strict):
    warn_after_days: int = Field(gt=0)
    error_after_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Freshness:
        if self.error_after_days < self.warn_after_days:
            raise ValueError("error_after_days must not be smaller than warn_after_days")
        return self


class Crosswalk(_Strict):
    """A reference dataset that maps a column to a beat, e.g. census tract -> beat."""

    dataset: str = Field(description="'<provider>.<dataset>' of a reference dataset with a beat")
    key: str


class Geography(_Strict):
    """How a dataset's rows are placed on a beat."""

    column: str
    crosswalk: Crosswalk | None = None


class Dataset(_Strict):
    title: str
    file_pattern: str
    format: Literal["csv"] = "csv"
    delimiter: str = ","
    encoding: Literal["utf-8"] = "utf-8"
    timestamp_format: str = "%Y-%m-%d %H:%M:%S"
    date_format: str = "%Y-%m-%d"
    load: Literal["append", "replace"] = "append"
    cadence: Literal[CADENCES]  # type: ignore[valid-type]
    freshness: Freshness | None = None
    period: str | None = Field(None, description="Column that places a row in a month.")
    geography: Geography | None = None
    key: list[str] = Field(default_factory=list)
    columns: dict[str, Column]
    derived: dict[str, str] = Field(default_factory=dict)

    @field_validator("columns", "derived")
    @classmethod
    def _names(cls, value: dict) -> dict:
        return _check_keys(value)

    @model_validator(mode="after")
    def _references(self) -> Dataset:
        known = set(self.columns) | set(self.derived)
        for name in [*self.key, *([self.period] if self.period else [])]:
            if name not in known:
                raise ValueError(f"{name!r} is not a column of this dataset")
        if self.geography and self.geography.column not in known:
            raise ValueError(f"geography column {self.geography.column!r} is not a column")
        if not any(c.required for c in self.columns.values()):
            raise ValueError("a contract needs at least one required column")
        return self

    @property
    def kept_columns(self) -> list[str]:
        """Canonical columns that survive ingest: everything but direct identifiers."""
        return [name for name, col in self.columns.items() if not col.identifier]


class Measure(_Strict):
    """A count or statistic computed from row-level data inside the restricted zone."""

    title: str
    dataset: str
    kind: Literal["count", "sum", "median", "entities"]
    where: str | None = None
    value: str | None = Field(None, description="SQL expression summed or summarised.")
    entity: str | None = Field(None, description="SQL expression naming the person counted.")
    having: str | None = Field(None, description="Aggregate condition an entity must meet.")
    period: str | None = Field(None, description="Date column; defaults to the dataset's.")
    breakdowns: dict[str, str] = Field(
        default_factory=dict, description="breakdown name -> SQL expression giving its value"
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> Measure:
        if self.kind in ("sum", "median") and not self.value:
            raise ValueError(f"a {self.kind} measure needs 'value'")
        if self.kind == "entities" and not self.entity:
            raise ValueError("an entities measure needs 'entity'")
        if self.having and self.kind != "entities":
            raise ValueError("'having' only applies to entities measures")
        return self


class Provider(_Strict):
    provider: str
    organisation: str
    community_map_area: Literal[COMMUNITY_MAP_AREAS]  # type: ignore[valid-type]
    data_owner: Person
    steward: Person
    agreement: str | None = None
    datasets: dict[str, Dataset]
    measures: dict[str, Measure] = Field(default_factory=dict)

    @field_validator("provider")
    @classmethod
    def _provider_name(cls, value: str) -> str:
        return _check_identifier(value)

    @field_validator("datasets", "measures")
    @classmethod
    def _names(cls, value: dict) -> dict:
        return _check_keys(value)

    @model_validator(mode="after")
    def _measure_datasets(self) -> Provider:
        for name, measure in self.measures.items():
            dataset = self.datasets.get(measure.dataset)
            if dataset is None:
                raise ValueError(f"measure {name!r} names unknown dataset {measure.dataset!r}")
            if not (measure.period or dataset.period):
                raise ValueError(f"measure {name!r}: dataset {measure.dataset!r} has no period")
            columns = set(dataset.columns) | set(dataset.derived)
            if measure.period and measure.period not in columns:
                raise ValueError(
                    f"measure {name!r}: period {measure.period!r} is not a column of "
                    f"dataset {measure.dataset!r}"
                )
            if dataset.geography is None:
                raise ValueError(f"measure {name!r}: dataset {measure.dataset!r} has no geography")
        return self

    def table(self, dataset: str) -> str:
        """Name of the dataset's table in the restricted database."""
        return f"{self.provider}__{dataset}"

    def measure_id(self, measure: str) -> str:
        return f"{self.provider}__{measure}"
