"""Load and validate ``privacy/policy.yml``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cs360_pipeline.settings import PRIVACY_DIR

BAND = re.compile(r"^(\d+)(?:-(\d+)|\+)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    min_cell_size: int = Field(ge=2)


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
    code: str
    name: str


class Tables(_Strict):
    city: City
    geography_levels: list[str]
    period_levels: list[str]
    breakdowns: dict[str, Breakdown]

    @model_validator(mode="after")
    def _levels(self) -> Tables:
        if self.geography_levels != ["beat", "district", "city"]:
            raise ValueError("geography_levels must be [beat, district, city]")
        if self.period_levels != ["month", "quarter", "year"]:
            raise ValueError("period_levels must be [month, quarter, year]")
        return self


class Policy(_Strict):
    version: int
    defaults: Rule
    providers: dict[str, Rule] = Field(default_factory=dict)
    tables: Tables
    sha256: str = ""

    def min_cell_size(self, provider: str) -> int:
        return self.providers.get(provider, self.defaults).min_cell_size


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; names the file and key."""


def load_policy(path: Path | None = None) -> Policy:
    path = path or PRIVACY_DIR / "policy.yml"
    try:
        text = path.read_bytes()
        raw = yaml.safe_load(text)
        return Policy.model_validate({**raw, "sha256": hashlib.sha256(text).hexdigest()})
    except (OSError, yaml.YAMLError, TypeError) as exc:
        raise PolicyError(f"{path}: cannot read the privacy policy: {exc}") from exc
    except ValidationError as exc:
        details = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{path}: invalid privacy policy:\n{details}") from exc
