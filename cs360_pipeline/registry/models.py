"""Typed shape of ``sources/<provider>/provider.yml``.

The YAML is the deployment operator's configuration, never the partners'. Its SQL expressions
(derived columns, checks, measure filters, values, entities, breakdowns) run inside DuckDB, so
each one is accepted only as one scalar expression over its dataset's columns
(:mod:`cs360_pipeline.registry.expressions`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cs360_pipeline.registry.expressions import ExpressionRefused, Scope, why_refused

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
DUCKDB_TYPES = {"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "DATE", "TIMESTAMP", "BOOLEAN"}
NUMERIC_TYPES = {"INTEGER", "BIGINT", "DOUBLE"}
TEMPORAL_TYPES = {"DATE", "TIMESTAMP"}
EXCEL_SERIAL = "excel_serial"
FILE_FORMATS = ("csv", "tsv", "parquet", "xlsx", "geojson")
# The column a GeoJSON dataset gains: each feature's polygon as WKB (written by the reader).
GEOMETRY_COLUMN = "geometry"
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
DUPLICATE_MODES = ("reject", "drop_exact", "keep_first")
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


def _check_expression(where: tuple[str, ...], text: str, scope: Scope) -> None:
    """Refuse ``text`` unless it is one scalar expression in ``scope``; ``where`` names the key."""
    reason = why_refused(text, scope)
    if reason is not None:
        raise ExpressionRefused(where, reason)


class Person(_Strict):
    role: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.role})"


class Column(_Strict):
    """One canonical column of a dataset's contract, and where it comes from in the export."""

    type: str
    required: bool = False
    identifier: bool = Field(False, description="Direct identifier: dropped at the door.")
    allowed: list[str] | None = None
    min: float | str | None = Field(
        None, description="Lowest value: a number, or for dates an ISO date or 'today'."
    )
    max: float | str | None = Field(
        None, description="Highest value: a number, or for dates an ISO date or 'today'."
    )
    source: str | None = Field(
        None, description="Header of this column in the partner's export, if it differs."
    )
    values: dict[str, str | bool | int | float] | None = Field(
        None, description="Partner value -> canonical value, applied before the type is parsed."
    )
    format: str | list[str] | None = Field(
        None,
        description="DATE/TIMESTAMP: strptime format(s) tried in order, or 'excel_serial'.",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value.upper() not in DUCKDB_TYPES:
            raise ValueError(f"type {value!r} is not one of {sorted(DUCKDB_TYPES)}")
        return value.upper()

    @field_validator("values", mode="before")
    @classmethod
    def _text_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ValueError(
                        f"values key {key!r} was read by YAML as {type(key).__name__}, not as "
                        "the text in the file: quote it (e.g. 'yes': true, '01': SHOTS)"
                    )
        return value

    @field_validator("source")
    @classmethod
    def _source_text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("source must name a header, not be blank")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        formats = self.formats
        if formats and self.type not in TEMPORAL_TYPES:
            raise ValueError(f"format only applies to DATE and TIMESTAMP columns, not {self.type}")
        for fmt in formats:
            if fmt != EXCEL_SERIAL and "%" not in fmt:
                raise ValueError(
                    f"format {fmt!r} is neither a strptime format (e.g. '%m/%d/%Y %I:%M:%S %p') "
                    f"nor {EXCEL_SERIAL!r}"
                )
        for key in ("min", "max"):
            bound = getattr(self, key)
            if bound is None:
                continue
            if self.type in NUMERIC_TYPES and not isinstance(bound, int | float):
                raise ValueError(f"{key} of a {self.type} column must be a number, not {bound!r}")
            if self.type in TEMPORAL_TYPES:
                if isinstance(bound, int | float):
                    raise ValueError(f"{key} of a {self.type} column must be a date or 'today'")
                if bound != "today":
                    try:
                        dt.date.fromisoformat(bound)
                    except ValueError:
                        raise ValueError(
                            f"{key} {bound!r} must be an ISO date (YYYY-MM-DD) or 'today'"
                        ) from None
            if self.type in ("VARCHAR", "BOOLEAN"):
                raise ValueError(f"{key} does not apply to a {self.type} column")
        if self.values and self.allowed is not None:
            unknown = sorted(
                {self.canonical_text(v) for v in self.values.values()} - set(self.allowed)
            )
            if unknown:
                raise ValueError(f"values maps to {unknown}, which 'allowed' does not list")
        return self

    @property
    def formats(self) -> list[str]:
        if self.format is None:
            return []
        return [self.format] if isinstance(self.format, str) else list(self.format)

    @staticmethod
    def canonical_text(value: str | bool | int | float) -> str:
        """A value-map target as the text the type parser reads (``true``, ``3``, ``SHOTS``)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


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


class Points(_Strict):
    """Columns holding a row's WGS 84 coordinates (decimal degrees), placed on the beat map."""

    longitude: str
    latitude: str


class Geography(_Strict):
    """How a dataset's rows are placed on a beat: exactly one of ``column`` or ``points``.

    ``column`` holds a beat code (or, with ``crosswalk``, a key a reference dataset maps to a
    beat); ``points`` names longitude and latitude columns, placed on the city's beat
    boundaries (``city/beat_boundaries``) by point-in-polygon in the privacy step.
    """

    column: str | None = None
    crosswalk: Crosswalk | None = None
    points: Points | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Geography:
        if (self.column is None) == (self.points is None):
            raise ValueError(
                "give exactly one of 'column' (a beat code, or a crosswalk key) and 'points' "
                "({longitude: <column>, latitude: <column>})"
            )
        if self.points is not None and self.crosswalk is not None:
            raise ValueError("'crosswalk' applies to 'column', not to 'points'")
        return self


class Dataset(_Strict):
    title: str
    owner: Person | None = Field(
        None, description="Data owner of this dataset, if not the provider's data_owner."
    )
    steward: Person | None = Field(
        None, description="Steward to contact about this dataset, if not the provider's."
    )
    file_pattern: str
    format: Literal[FILE_FORMATS] = "csv"  # type: ignore[valid-type]
    sheet: str | None = Field(None, description="xlsx: the worksheet that holds the table.")
    delimiter: str | None = Field(None, description="csv: ',' by default; tsv: tab.")
    encoding: Literal[ENCODINGS] = "utf-8"  # type: ignore[valid-type]
    timestamp_format: str = "%Y-%m-%d %H:%M:%S"
    date_format: str = "%Y-%m-%d"
    load: Literal["append", "replace"] = "append"
    cadence: Literal[CADENCES]  # type: ignore[valid-type]
    freshness: Freshness | None = None
    no_delivery_months: list[int] = Field(
        default_factory=list,
        description="Calendar months (1-12) the provider never delivers, e.g. [7] for a school "
        "district in July: not counted as gaps in the series.",
    )
    period: str | None = Field(None, description="Column that places a row in a month.")
    coverage: Literal["last_record", "whole_months"] = Field(
        "last_record",
        description="How far a file's last month runs. last_record: to the latest date of its "
        "rows (a month delivered through the 5th is partial). whole_months: the export is made "
        "after each month closes, so its months are whole even without a row on the last day.",
    )
    geography: Geography | None = None
    key: list[str] = Field(default_factory=list)
    duplicates: Literal[DUPLICATE_MODES] = Field(  # type: ignore[valid-type]
        "reject",
        description="What repeated rows of one file become. reject: every row of a repeated key "
        "is rejected. drop_exact: rows identical in every contract column load once; a key "
        "repeated with different values is still rejected. keep_first: one row per key, the "
        "first by duplicate_order.",
    )
    duplicate_order: list[str] = Field(
        default_factory=list,
        description="keep_first: the columns (ascending, NULLs last, then file order) that "
        "decide which row of a key is kept.",
    )
    columns: dict[str, Column]
    derived: dict[str, str] = Field(default_factory=dict)
    checks: dict[str, str] = Field(
        default_factory=dict,
        description="name -> SQL condition every row must meet (may use derived columns).",
    )
    max_bad_row_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of rows that may break the contract: they go to _rejects and the "
        "rest loads. Above it the whole file is quarantined. 0 = any bad row quarantines.",
    )
    max_file_mb: float = Field(4096.0, gt=0, description="Files larger than this are refused.")
    revisions: Literal["by_month", "none"] | None = Field(
        None,
        description="by_month: a file whose months cover an earlier file's months replaces "
        "those months. Default: by_month for monthly or coarser cadences, none for daily/weekly.",
    )

    @field_validator("columns", "derived", "checks")
    @classmethod
    def _names(cls, value: dict) -> dict:
        return _check_keys(value)

    @field_validator("duplicates", mode="before")
    @classmethod
    def _duplicate_mode(cls, value: Any) -> Any:
        """Say what each mode does: a wrong word here changes how many rows are counted."""
        if value not in DUPLICATE_MODES:
            raise ValueError(
                f"duplicates {value!r} is not one of {', '.join(DUPLICATE_MODES)} (reject: every "
                "row of a repeated key is rejected; drop_exact: identical rows load once; "
                "keep_first: one row per key, the first by duplicate_order)"
            )
        return value

    @field_validator("no_delivery_months")
    @classmethod
    def _calendar_months(cls, value: list[int]) -> list[int]:
        bad = [m for m in value if not 1 <= m <= 12]
        if bad:
            raise ValueError(f"months must be 1-12, not {bad}")
        if len(set(value)) == 12:
            raise ValueError("a dataset cannot skip every month of the year")
        return sorted(set(value))

    @model_validator(mode="after")
    def _references(self) -> Dataset:
        known = set(self.columns) | set(self.derived)
        for name in [*self.key, *([self.period] if self.period else [])]:
            if name not in known:
                raise ValueError(f"{name!r} is not a column of this dataset")
        self._check_duplicates(known)
        self._check_geography(known)
        if not any(c.required for c in self.columns.values()):
            raise ValueError("a contract needs at least one required column")
        if self.format == "xlsx" and not self.sheet:
            raise ValueError("an xlsx dataset needs 'sheet': the worksheet that holds the table")
        if self.format != "xlsx" and self.sheet is not None:
            raise ValueError(f"'sheet' only applies to format xlsx, not {self.format}")
        self._check_geojson()
        if self.format in ("parquet", "xlsx", "geojson"):
            for key in ("delimiter",):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key!r} does not apply to format {self.format}")
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'):
            raise ValueError(f"delimiter {self.delimiter!r} must be one character, not a quote")
        sources: dict[str, str] = {}
        for name, col in self.columns.items():
            header = col.source or name
            if header in sources:
                raise ValueError(
                    f"columns {sources[header]!r} and {name!r} both read header {header!r}"
                )
            sources[header] = name
        clash = sorted(set(self.derived) & set(self.columns))
        if clash:
            raise ValueError(f"derived column(s) {clash} also named as delivered columns")
        # Derived columns and checks are computed over the staged file, identifiers included.
        staged = Scope(frozenset(known))
        for key, expressions in (("derived", self.derived), ("checks", self.checks)):
            for name, text in expressions.items():
                _check_expression((key, name), text, staged)
        return self

    def _check_geography(self, known: set[str]) -> None:
        """The geography names real columns; coordinates must be delivered as numbers."""
        geo = self.geography
        if geo is None:
            return
        if geo.column is not None and geo.column not in known:
            raise ValueError(f"geography column {geo.column!r} is not a column")
        if geo.points is None:
            return
        for role in ("longitude", "latitude"):
            name = getattr(geo.points, role)
            col = self.columns.get(name)
            if col is None:
                raise ValueError(
                    f"geography.points.{role} {name!r} is not a delivered column of this dataset"
                )
            if col.type not in NUMERIC_TYPES:
                raise ValueError(
                    f"geography.points.{role} {name!r} is {col.type}; coordinates must be "
                    "DOUBLE (decimal degrees)"
                )
            if col.identifier:
                raise ValueError(
                    f"geography.points.{role} {name!r} is an identifier (dropped at the door): "
                    "coordinates must be kept to be placed"
                )
        if geo.points.longitude == geo.points.latitude:
            raise ValueError("geography.points: longitude and latitude name the same column")

    def _check_geojson(self) -> None:
        """A GeoJSON dataset: one feature per row, its properties mapped by ``source``."""
        if self.format != "geojson":
            return
        if self.encoding != "utf-8":
            raise ValueError("GeoJSON is UTF-8 by definition (RFC 7946): leave out 'encoding'")
        if GEOMETRY_COLUMN in self.columns or GEOMETRY_COLUMN in self.derived:
            raise ValueError(
                f"{GEOMETRY_COLUMN!r} is the column the GeoJSON reader writes (each feature's "
                "polygon): do not declare it"
            )
        if len(self.key) != 1 or not self.columns[self.key[0]].required:
            raise ValueError(
                "a GeoJSON dataset needs 'key': one required column (e.g. [beat]), the feature "
                "property that names each polygon"
            )
        for name, col in self.columns.items():
            if col.identifier:
                raise ValueError(f"column {name!r}: GeoJSON boundaries hold no identifiers")

    def _check_duplicates(self, known: set[str]) -> None:
        """keep_first needs a key and an order, or "the first row" would mean nothing stable."""
        if self.duplicates == "keep_first":
            if not self.key:
                raise ValueError("duplicates: keep_first needs a 'key': the columns of one row")
            if not self.duplicate_order:
                raise ValueError(
                    "duplicates: keep_first needs 'duplicate_order': the columns that decide "
                    "which row of a key is kept (e.g. [reported_at, offense_code])"
                )
        elif self.duplicate_order:
            raise ValueError(
                f"duplicate_order only applies to duplicates: keep_first, not {self.duplicates}"
            )
        for name in self.duplicate_order:
            if name not in known:
                raise ValueError(f"duplicate_order {name!r} is not a column of this dataset")
        if len(set(self.duplicate_order)) != len(self.duplicate_order):
            raise ValueError("duplicate_order names a column twice")

    def measure_scope(self, table: str | None = None) -> Scope:
        """What a measure over this dataset may name: the columns kept at ingest."""
        return Scope(
            frozenset([*self.kept_columns, *self.derived]),
            withheld=frozenset(n for n, c in self.columns.items() if c.identifier),
            table=table,
        )

    @property
    def revises_months(self) -> bool:
        """Whether a re-delivery of months already loaded replaces them (append datasets)."""
        if self.load != "append" or not self.period:
            return False
        if self.revisions is not None:
            return self.revisions == "by_month"
        return self.cadence not in ("daily", "weekly")

    @property
    def field_delimiter(self) -> str:
        """The delimiter of a csv/tsv file (tab for tsv unless stated)."""
        if self.delimiter is not None:
            return self.delimiter
        return "\t" if self.format == "tsv" else ","

    @property
    def kept_columns(self) -> list[str]:
        """Canonical columns that survive ingest: everything but direct identifiers.

        A GeoJSON dataset also keeps the reader's ``geometry`` column (WKB).
        """
        kept = [name for name, col in self.columns.items() if not col.identifier]
        return [*kept, GEOMETRY_COLUMN] if self.format == "geojson" else kept


class Measure(_Strict):
    """A count or statistic computed from row-level data inside the restricted zone."""

    title: str
    dataset: str
    kind: Literal["count", "sum", "median", "entities", "distinct"] = Field(
        description="count: rows; sum/median: of 'value'; entities: each 'entity' once per "
        "period (one period level only); distinct: each 'entity' once in all, in the period, "
        "beat and breakdowns of its earliest row (so it adds up at every period level)."
    )
    where: str | None = None
    value: str | None = Field(None, description="SQL expression summed or summarised.")
    entity: str | None = Field(None, description="SQL expression naming the person counted.")
    having: str | None = Field(None, description="Aggregate condition an entity must meet.")
    period: str | None = Field(None, description="Date column; defaults to the dataset's.")
    breakdowns: dict[str, str] = Field(
        default_factory=dict, description="breakdown name -> SQL expression giving its value"
    )
    history_months: int = Field(
        0,
        ge=0,
        description="Months of earlier data a row's count looks back over (e.g. 12 for an "
        "offender's incidents in the 12 months before): until the dataset has that much "
        "history, the measure's periods are missing, not undercounted.",
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> Measure:
        if self.kind in ("sum", "median") and not self.value:
            raise ValueError(f"a {self.kind} measure needs 'value'")
        if self.kind in ("entities", "distinct") and not self.entity:
            raise ValueError(f"{self.kind} measures need 'entity': the thing counted once")
        if self.having and self.kind != "entities":
            raise ValueError("'having' only applies to entities measures")
        return self


class Provider(_Strict):
    provider: str
    organisation: str
    community_map_area: Literal[COMMUNITY_MAP_AREAS]  # type: ignore[valid-type]
    # Optional so that a partner without a named owner or steward can still be registered; the
    # delivery scorecard flags every dataset that has neither (here nor on the dataset).
    data_owner: Person | None = None
    steward: Person | None = None
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
            self._check_measure_expressions(name, measure, dataset)
        return self

    def _check_measure_expressions(self, name: str, measure: Measure, dataset: Dataset) -> None:
        """Every SQL text of a measure, in the scope the cells query splices it into."""
        rows = dataset.measure_scope()
        texts: list[tuple[tuple[str, ...], str | None, Scope]] = [
            (("where",), measure.where, dataset.measure_scope(self.table(measure.dataset))),
            (("value",), measure.value, rows),
            (("entity",), measure.entity, rows),
            (("having",), measure.having, Scope(rows.columns, rows.withheld, aggregates=True)),
            *((("breakdowns", b), text, rows) for b, text in measure.breakdowns.items()),
        ]
        for where, text, scope in texts:
            if text is not None:
                _check_expression(("measures", name, *where), text, scope)

    def dataset_owner(self, dataset: str) -> Person | None:
        """Who owns a dataset: its own ``owner``, else the provider's ``data_owner``."""
        return self.datasets[dataset].owner or self.data_owner

    def dataset_steward(self, dataset: str) -> Person | None:
        """Whom to call about a dataset: its own ``steward``, else the provider's."""
        return self.datasets[dataset].steward or self.steward

    def table(self, dataset: str) -> str:
        """Name of the dataset's table in the restricted database."""
        return f"{self.provider}__{dataset}"

    def measure_id(self, measure: str) -> str:
        return f"{self.provider}__{measure}"
