"""Load and validate ``privacy/policy.yml``."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cs360_pipeline.yaml_text import parse_yaml

BAND = re.compile(r"^(\d+)(?:-(\d+)|\+)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleOverride(_Strict):
    """Any subset of the rule fields; layered metric > provider > audience > defaults."""

    min_cell_size: int | None = Field(default=None, ge=2)
    insider: bool | None = None
    flag_unreliable_below: int | None = Field(default=None, ge=0)
    min_denominator: int | None = Field(default=None, ge=0)
    max_small_share: float | None = Field(default=None, gt=0, le=1)


class Rule(_Strict):
    """The resolved rule for one measure and audience.

    - ``min_cell_size`` (k): counts 1..k-1 are suppressed, and complements are added so that
      none can be derived from other published numbers.
    - ``insider``: the cells must stay protected against a person counted in one of them: who
      knows that their own cell is not empty, and the count of a small one exactly.
    - ``flag_unreliable_below``: a rate or percent on fewer events is marked unreliable.
    - ``min_denominator``: a rate or percent over fewer residents or students is not shown.
    - ``max_small_share``: a level of a table (beats by month, sex by district and quarter, ...)
      whose non-zero cells are mostly small is left out, with every finer level: it would be
      mostly suppressed, and each of its small cells costs complements elsewhere. The same share
      leaves out a percent's levels whose denominators are mostly under ``min_denominator``.
    """

    min_cell_size: int = Field(ge=2)
    insider: bool = False
    flag_unreliable_below: int = Field(default=20, ge=0)
    min_denominator: int = Field(default=100, ge=0)
    max_small_share: float = Field(default=0.5, gt=0, le=1)

    def layered(self, override: RuleOverride | None) -> Rule:
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))

    def strictest(self, other: Rule) -> Rule:
        return Rule(
            min_cell_size=max(self.min_cell_size, other.min_cell_size),
            insider=self.insider or other.insider,
            flag_unreliable_below=max(self.flag_unreliable_below, other.flag_unreliable_below),
            min_denominator=max(self.min_denominator, other.min_denominator),
            max_small_share=min(self.max_small_share, other.max_small_share),
        )


PERIOD_ORDER = ("month", "quarter", "year")
# A zone (and a piece of one, never shown) is read at a district's grain.
GEO_GRAIN = {"beat": 0, "piece": 1, "zone": 1, "district": 1, "city": 2}
ZONE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


AUDIENCE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A policy written before audiences had a title and under_agreement keeps what its two
# audiences were given then: the PST under the agreement, the public not.
EARLIER_AUDIENCES = {
    "pst": {"title": "Problem-Solving Team", "under_agreement": True},
    "public": {"title": "Public", "under_agreement": False},
}


class Audience(_Strict):
    """Who reads a table, and which cells it holds at all (table design comes first)."""

    description: str
    # How pages and files name the audience ("Problem-Solving Team"); its key when not given.
    title: str = ""
    # Readers under the data-sharing agreement: their brief names each partner's steward and
    # the files delivered, and their exports include the Excel workbook.
    under_agreement: bool = False
    breakdowns_min_geo_level: Literal["beat", "district", "city"]
    beat_min_period_level: Literal["month", "quarter", "year"]
    rules: RuleOverride = RuleOverride()

    def shows(self, geo_level: str, period_level: str, breakdown: str) -> bool:
        """Whether a cell of these levels is part of this audience's tables."""
        if breakdown != "total" and GEO_GRAIN[geo_level] < GEO_GRAIN[self.breakdowns_min_geo_level]:
            return False
        return geo_level != "beat" or PERIOD_ORDER.index(period_level) >= PERIOD_ORDER.index(
            self.beat_min_period_level
        )

    def shows_sql(self) -> str:
        """The same test as ``shows`` as a SQL predicate over the cell columns."""
        grain = GEO_GRAIN[self.breakdowns_min_geo_level]
        fine_geo = [g for g, n in GEO_GRAIN.items() if n < grain]
        fine_period = [p for p in PERIOD_ORDER[: PERIOD_ORDER.index(self.beat_min_period_level)]]
        parts = ["true"]
        if fine_geo:
            levels = ", ".join(f"'{g}'" for g in fine_geo)
            parts.append(f"(breakdown = 'total' OR geo_level NOT IN ({levels}))")
        if fine_period:
            levels = ", ".join(f"'{p}'" for p in fine_period)
            parts.append(f"NOT (geo_level = 'beat' AND period_level IN ({levels}))")
        return " AND ".join(parts)


class Breakdown(_Strict):
    """The closed list of values a breakdown can take; anything else counts as ``other``."""

    values: list[str] | None = None
    bands: list[str] | None = None
    other: str

    @model_validator(mode="after")
    def _one_kind(self) -> Breakdown:
        if (self.values is None) == (self.bands is None):
            raise ValueError("give either 'values' or 'bands'")
        for band in self.bands or []:
            if not BAND.match(band):
                raise ValueError(f"age band {band!r} must look like '10-17' or '65+'")
        return self

    @property
    def domain(self) -> list[str]:
        return [*(self.values or self.bands or []), self.other]

    def bounds(self) -> list[tuple[str, int, int | None]]:
        result = []
        for band in self.bands or []:
            low, high = BAND.match(band).groups()  # type: ignore[union-attr]
            result.append((band, int(low), int(high) if high else None))
        return result


class City(_Strict):
    """The city the deployment serves, and the time zone its partners' clocks keep.

    ``time_zone`` (an IANA name such as ``America/Chicago``) decides which day, month, quarter
    and year a timestamp falls in: a naive timestamp in an export is the city's wall-clock time,
    one with an offset or ``Z`` is converted to it before it is truncated; "today" is the city's
    local date.
    """

    code: str
    name: str
    time_zone: str = Field(description="IANA time zone name, e.g. America/Chicago.")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone name (e.g. America/Chicago, Europe/Berlin)"
            ) from None
        return value

    def today(self) -> dt.date:
        """The city's local date now: "today" for freshness and for periods not yet over."""
        return dt.datetime.now(zoneinfo.ZoneInfo(self.time_zone)).date()


class Zone(_Strict):
    """A place a PST works on that cuts across districts: a corridor, a campus. Published as
    geography level ``zone``; see :mod:`cs360_pipeline.privacy.geography`.

    Given as ``beats`` (a list of beat codes) or as an ``area``: a GeoJSON Polygon or
    MultiPolygon geometry in longitude and latitude, which takes every beat lying at least
    ``min_beat_share`` inside it (by area, from the city's beat boundaries). Records are placed
    by beat, so a zone is always whole beats."""

    name: str = Field(min_length=1, max_length=120)
    beats: list[str] | None = Field(default=None, min_length=1)
    area: dict[str, Any] | None = None
    min_beat_share: float = Field(default=0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _one_definition(self) -> Zone:
        if (self.beats is None) == (self.area is None):
            raise ValueError("give a zone either beats (a list of beat codes) or an area")
        if self.area is not None:
            area_shape(self.area)  # raises ValueError saying what is wrong
        return self


AREA_TYPES = ("Polygon", "MultiPolygon")


def area_shape(area: dict[str, Any]) -> Any:
    """A zone's area as a shapely geometry, or ``ValueError`` saying why it cannot be one.

    shapely is imported here, only for policies that draw a zone as an area."""
    import shapely
    from shapely.geometry import shape

    if area.get("type") not in AREA_TYPES:
        raise ValueError("area: a GeoJSON geometry of type Polygon or MultiPolygon")
    try:
        geometry = shape(area)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError("area: coordinates are not a GeoJSON polygon's rings") from exc
    if geometry.is_empty:
        raise ValueError("area: the polygon is empty")
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry).split("[", 1)[0]
        raise ValueError(f"area: not a valid polygon ({reason})")
    west, south, east, north = geometry.bounds
    if west < -180 or east > 180 or south < -90 or north > 90:
        raise ValueError("area: coordinates must be longitude -180..180 and latitude -90..90")
    return geometry


class Tables(_Strict):
    city: City
    geography_levels: list[str]
    period_levels: list[str]
    entity_period_level: Literal["month", "quarter", "year"] = "month"
    breakdowns: dict[str, Breakdown]
    zones: dict[str, Zone] = Field(default_factory=dict)

    @field_validator("zones")
    @classmethod
    def _zone_codes(cls, zones: dict[str, Zone]) -> dict[str, Zone]:
        for code in zones:
            if not ZONE_CODE.match(code):
                raise ValueError(
                    f"zone code {code[:40]!r}: use 1 to 40 letters, digits, '_' or '-'"
                )
        return zones

    @model_validator(mode="after")
    def _levels(self) -> Tables:
        if self.geography_levels != ["beat", "district", "city"]:
            raise ValueError("geography_levels must be [beat, district, city]")
        if self.period_levels != ["month", "quarter", "year"]:
            raise ValueError("period_levels must be [month, quarter, year]")
        return self


class History(_Strict):
    """How many published releases stay public: they are audited together with a new one."""

    releases_public: int = Field(default=2, ge=1)


class Policy(_Strict):
    version: int
    defaults: Rule
    audiences: dict[str, Audience]
    history: History = History()
    providers: dict[str, RuleOverride] = Field(default_factory=dict)
    metrics: dict[str, RuleOverride] = Field(default_factory=dict)
    tables: Tables
    sha256: str = ""

    @model_validator(mode="after")
    def _audiences(self) -> Policy:
        if not self.audiences:
            raise ValueError("audiences: name at least one audience (pst, public)")
        for name, audience in self.audiences.items():
            if not AUDIENCE_NAME.fullmatch(name):  # a folder name under exports/ and a value
                raise ValueError(
                    f"audiences.{name[:40]!r}: an audience's name is lower-case letters, digits "
                    "and _ (at most 32, a letter first)"
                )
            earlier = {
                key: value
                for key, value in EARLIER_AUDIENCES.get(name, {}).items()
                if key not in audience.model_fields_set
            }
            if earlier:
                self.audiences[name] = audience.model_copy(update=earlier)
        return self

    def rule(self, provider: str, audience: str, metrics: tuple[str, ...] = ()) -> Rule:
        """Resolve metric > provider > audience > defaults; strictest across ``metrics``."""
        base = self.defaults.layered(self.audiences[audience].rules).layered(
            self.providers.get(provider)
        )
        resolved = [base.layered(self.metrics.get(m)) for m in metrics] or [base]
        out = resolved[0]
        for other in resolved[1:]:
            out = out.strictest(other)
        return out

    def check_names(self, providers: set[str], metrics: set[str]) -> None:
        """An override naming no known provider or metric is a typo: fail loudly."""
        for kind, names, known in (
            ("providers", self.providers, providers),
            ("metrics", self.metrics, metrics),
        ):
            unknown = sorted(set(names) - known)
            if unknown:
                raise PolicyError(
                    f"privacy/policy.yml {kind}: unknown {', '.join(unknown)} "
                    f"(known: {', '.join(sorted(known))})"
                )


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; names the file and key."""


def load_policy(path: Path) -> Policy:
    """The policy file, validated (a message naming the file and key when it is not valid)."""
    try:
        text = path.read_bytes()
        raw = parse_yaml(text)
        return Policy.model_validate({**raw, "sha256": hashlib.sha256(text).hexdigest()})
    except (OSError, yaml.YAMLError, TypeError) as exc:
        raise PolicyError(f"{path}: cannot read the privacy policy: {exc}") from exc
    except ValidationError as exc:
        details = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{path}: invalid privacy policy:\n{details}") from exc
