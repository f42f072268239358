"""Write a deployment folder: a new city's (``cs360 init``) or the demo city's (``cs360 demo``).

A deployment holds everything city-specific; the code and the dbt project hold none of it. A new
city starts from the demo's policy and CS360 taxonomy with its own name, code and time zone, no
provider overrides, no metrics yet, and a city provider for its beat map.
"""

from __future__ import annotations

import re
import shutil
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from cs360_pipeline.settings import PROJECT_DIR, SHIPPED_METRICS, SHIPPED_POLICY

DEMO_POLICY = SHIPPED_POLICY
DEMO_METRICS = SHIPPED_METRICS
DEMO_SOURCES = PROJECT_DIR / "sources"
CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,15}$")
CITY_LINE = re.compile(r"^  city: \{.*\}$", re.MULTILINE)
PROVIDERS_BLOCK = re.compile(r"^providers:\n(?:  .*\n)+", re.MULTILINE)
METRICS_BLOCK = re.compile(r"^metrics:\n.*", re.MULTILINE | re.DOTALL)

CITY_PROVIDER = """\
# Reference data from {name}: the police beat map, and optionally census population by beat
# (only rate metrics need it) and a census tract -> beat crosswalk (only datasets placed by
# residence tract need it). Name the data owner and steward: `cs360 status` flags a dataset
# that has neither.
provider: city
organisation: {name} (reference data)
community_map_area: public works & traffic
# data_owner: {{role: GIS Manager, name: ...}}
# steward: {{role: GIS Analyst, name: ..., email: ...}}

datasets:
  beats:
    title: Police beats and districts
    file_pattern: "beats*.csv"
    load: replace
    cadence: as_needed
    key: [beat]
    columns:
      beat: {{type: VARCHAR, required: true}}
      beat_name: {{type: VARCHAR, required: false}}
      district: {{type: VARCHAR, required: true}}
      district_name: {{type: VARCHAR, required: false}}

  population:
    title: Resident population by beat, age group and sex
    file_pattern: "population*.csv"
    load: replace
    cadence: annual
    key: [year, beat, age_group, sex]
    columns:
      year: {{type: INTEGER, required: true, min: 1990, max: 2100}}
      beat: {{type: VARCHAR, required: true}}
      age_group:
        type: VARCHAR
        required: true
        allowed: ["0-9", "10-17", "18-24", "25-34", "35-64", "65+"]
      sex: {{type: VARCHAR, required: true, allowed: [F, M]}}
      population: {{type: INTEGER, required: true, min: 0}}
"""

NO_METRICS = """\
metrics: {}
  # One entry per metric the PST agreed to track, for example:
  # shots_fired_calls:
  #   title: Calls for service reporting shots fired
  #   dimension: crime
  #   goal: interrupt
  #   indicator: Active Crime Reports
  #   definition: >-
  #     Dispatched calls whose type is shots fired, by the month and beat received.
  #   unit: count
  #   numerator: police.shots_fired_calls
  #   direction: down_is_good
  #   baseline: {start: 2025-01, end: 2025-12}
  #   cadence: monthly
  #   providers: [police]
  #   owner: {organisation: Police Department, role: Crime Analyst}
  #   audiences: [pst, public]
  #   privacy: police
"""

README = """\
# {name}: a CS360 deployment

| file | what it holds |
|---|---|
| `privacy/policy.yml` | the city ({code}, {time_zone}), audiences, minimum cell sizes, breakdowns |
| `metrics/cs360_metrics.yml` | the metrics the Problem-Solving Team agreed to track |
| `sources/<provider>/provider.yml` | per provider: owner, datasets, column contract, measures |
| `sources/<provider>/inbox/` | where the provider drops its files |
| `data/` | runtime data (restricted raw data, build, published warehouse): never commit it |

Refresh with `cs360 --deployment {folder} refresh`, or set `CS360_DEPLOYMENT_DIR={folder}`.
"""


class ScaffoldError(ValueError):
    """The deployment cannot be written as asked; the message says why."""


@dataclass(frozen=True)
class City:
    name: str
    code: str
    time_zone: str

    def __post_init__(self) -> None:
        if not self.name.strip() or not self.name.isprintable() or len(self.name) > 80:
            raise ScaffoldError("--name: the city's name, 1 to 80 printable characters")
        if not CODE.match(self.code):
            raise ScaffoldError(
                "--code: 2 to 16 capital letters, digits or _, starting with a letter (e.g. MET)"
            )
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ScaffoldError(
                "--time-zone: an IANA time zone name such as America/Chicago"
            ) from None


def _empty_or_new(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} exists and is not empty: choose a new folder")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def policy_text(city: City) -> str:
    """The demo's policy, commented as it is, for ``city`` and with no provider overrides."""
    text = DEMO_POLICY.read_text(encoding="utf-8")
    line = (
        f"  city: {{code: {city.code}, name: {_quoted(city.name)}, "
        f"time_zone: {city.time_zone}}}"
    )
    text, cities = CITY_LINE.subn(line, text)
    text, blocks = PROVIDERS_BLOCK.subn(
        "providers: {}                           # per provider, e.g. probation: {insider: true}\n",
        text,
    )
    if cities != 1 or blocks != 1:
        raise ScaffoldError(f"{DEMO_POLICY}: no single tables.city line or providers block")
    return text


def metrics_text() -> str:
    """The demo catalog's guide and CS360 taxonomy, with no metrics yet."""
    text = (DEMO_METRICS / "cs360_metrics.yml").read_text(encoding="utf-8")
    text, found = METRICS_BLOCK.subn(NO_METRICS, text)
    if found != 1:
        raise ScaffoldError(f"{DEMO_METRICS}: no top-level metrics block")
    return text


def init_deployment(folder: Path, city: City) -> list[Path]:
    """Write a new city's deployment into ``folder`` (new or empty); returns the files written."""
    _empty_or_new(folder)
    files = {
        folder / "privacy" / "policy.yml": policy_text(city),
        folder / "metrics" / "cs360_metrics.yml": metrics_text(),
        folder / "sources" / "city" / "provider.yml": CITY_PROVIDER.format(name=city.name),
        folder / "README.md": README.format(
            name=city.name, code=city.code, time_zone=city.time_zone, folder=folder
        ),
        folder / ".gitignore": "data/\n",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (folder / "sources" / "city" / "inbox").mkdir()
    return sorted(files)


def copy_demo_configuration(folder: Path) -> bool:
    """Make ``folder`` the demo city's deployment unless it already is one; True if written."""
    if (folder / "privacy" / "policy.yml").exists():
        return False
    _empty_or_new(folder)
    (folder / "privacy").mkdir(parents=True)
    shutil.copy2(DEMO_POLICY, folder / "privacy" / "policy.yml")
    shutil.copytree(DEMO_METRICS, folder / "metrics")
    for provider_file in sorted(DEMO_SOURCES.glob("*/provider.yml")):
        target = folder / "sources" / provider_file.parent.name
        target.mkdir(parents=True)
        shutil.copy2(provider_file, target / "provider.yml")
    (folder / ".gitignore").write_text("data/\n", encoding="utf-8")
    return True
