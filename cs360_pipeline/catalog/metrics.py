"""Load ``<deployment>/metrics/*.yml``, check it against the providers, write it for dbt.

A metric file holds the CS360 taxonomy (dimension -> goal -> indicators) and the metrics the
Problem-Solving Team agreed on. Every reference is checked when the file is loaded: an unknown
dimension, goal, indicator, provider or measure, or a metric without an owner, stops the
refresh with a message that names the file, the metric and the key.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

import duckdb
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import SHIPPED_METRICS
from cs360_pipeline.yaml_text import parse_yaml

METRICS_DIR = SHIPPED_METRICS  # the demo city's catalog
SCALE = {"count": 1, "minutes": 1, "percent": 100, "rate_per_1000": 1000}
POPULATION = "population"
POPULATION_DATASET = "city.population"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# Friendlier words for the errors reviewers meet most often.
HINTS = {
    "owner": "every metric needs an owner: {organisation: ..., role: ...}",
    "baseline": "every metric needs a baseline window: {start: YYYY-MM, end: YYYY-MM}",
    "providers": "list the providers whose data the metric uses",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _month(value: str) -> str:
    if not MONTH.match(str(value)):
        raise ValueError(f"{value!r} is not a month (YYYY-MM)")
    return str(value)


def month_start(value: str) -> dt.date:
    year, month = map(int, value.split("-"))
    return dt.date(year, month, 1)


def month_end(value: str) -> dt.date:
    start = month_start(value)
    following = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return following - dt.timedelta(days=1)


class Owner(_Strict):
    """Who answers for the metric at the PST table."""

    organisation: str = Field(min_length=1)
    role: str = Field(min_length=1)
    name: str | None = Field(None, min_length=1)

    def __str__(self) -> str:
        who = f"{self.name}, {self.role}" if self.name else self.role
        return f"{self.organisation} ({who})"


class Baseline(_Strict):
    """The months the PST compares against: the metric's mean value over them."""

    start: str
    end: str
    note: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _months(cls, value: str) -> str:
        return _month(value)

    @model_validator(mode="after")
    def _ordered(self) -> Baseline:
        if self.end < self.start:
            raise ValueError("baseline end is before its start")
        return self


class Target(_Strict):
    """Where the PST wants the metric to be: a value, or a change from the baseline."""

    value: float | None = None
    change_pct: float | None = Field(
        None, description="Percent change from the baseline, e.g. -10 for 10 % below it."
    )
    by: str | None = Field(None, description="Month the target is meant to be met by.")

    @field_validator("by")
    @classmethod
    def _by_month(cls, value: str | None) -> str | None:
        return None if value is None else _month(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if (self.value is None) == (self.change_pct is None):
            raise ValueError("give either 'value' or 'change_pct'")
        return self


class Metric(_Strict):
    title: str = Field(min_length=1)
    dimension: str
    goal: str
    indicator: str
    definition: str = Field(min_length=1)
    unit: Literal["count", "rate_per_1000", "percent", "minutes"]
    numerator: str
    denominator: str | None = None
    direction: Literal["up_is_good", "down_is_good"]
    baseline: Baseline
    target: Target | None = None
    cadence: Literal["monthly", "quarterly", "annual"]
    providers: list[str] = Field(min_length=1)
    owner: Owner
    audiences: list[str] = Field(default_factory=lambda: ["pst", "public"], min_length=1)
    privacy: str | None = Field(
        None,
        description="The privacy/policy.yml entry whose cell rule governs the metric: "
        "'providers.<provider>' or 'metrics.<metric id>'.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        needs = self.unit in ("rate_per_1000", "percent")
        if needs and not self.denominator:
            raise ValueError(f"a {self.unit} metric needs a denominator")
        if not needs and self.denominator:
            raise ValueError(f"a {self.unit} metric takes no denominator")
        if self.unit == "rate_per_1000" and self.denominator != POPULATION:
            raise ValueError("rate_per_1000 is per residents: denominator must be 'population'")
        absolute = self.target is not None and self.target.value is not None
        if absolute and self.unit in ("count", "rate_per_1000"):
            raise ValueError(
                f"a {self.unit} target depends on the period length: use target.change_pct"
            )
        if len(set(self.audiences)) != len(self.audiences):
            raise ValueError("audiences are listed twice")
        return self


class Goal(_Strict):
    title: str = Field(min_length=1)
    indicators: list[str] = Field(min_length=1)


class Dimension(_Strict):
    title: str = Field(min_length=1)
    goals: dict[str, Goal] = Field(min_length=1)


class Note(_Strict):
    """What a reader should know about a metric over some months before reading its numbers
    (a new CAD system, a school closed for repairs, a survey's fieldwork changed): the PST's
    words, shown on the metric's charts and pages and carried in the exports and release log."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    metric: str
    start: str = Field(alias="from", description="The first month the note is about (YYYY-MM).")
    end: str | None = Field(None, alias="to", description="The last month; default the first.")
    note: str = Field(min_length=1, max_length=400)
    audiences: list[str] | None = Field(
        None, description="Who sees it; default every audience the metric is published for."
    )

    @field_validator("start", "end")
    @classmethod
    def _months(cls, value: str | None) -> str | None:
        return None if value is None else _month(value)

    @field_validator("note")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ValueError("a note may not hold control characters")
        return " ".join(value.split())

    @model_validator(mode="after")
    def _ordered(self) -> Note:
        if self.end is not None and self.end < self.start:
            raise ValueError("a note's 'to' month is before its 'from' month")
        return self

    @property
    def last(self) -> str:
        return self.end or self.start


class Catalog(_Strict):
    dimensions: dict[str, Dimension] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    notes: list[Note] = Field(default_factory=list)
    _folder: Path | None = PrivateAttr(default=None)  # where its files are, for messages


class CatalogError(ValueError):
    """The metric catalog is invalid; the message names the file, metric and key."""


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        message = item["msg"]
        if item["type"] == "missing" and loc and loc[-1] in HINTS:
            message = f"missing: {HINTS[loc[-1]]}"
        lines.append(f"  {'.'.join(loc) or '(top level)'}: {message}")
    return "\n".join(lines)


def load_catalog(providers: dict[str, Provider], directory: Path) -> Catalog:
    """Every metric file of the folder, merged and checked against the providers."""
    dimensions: dict[str, Dimension] = {}
    metrics: dict[str, Metric] = {}
    notes: list[Note] = []
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise CatalogError(f"{directory}: no metric definition files (*.yml)")
    parts: list[tuple[Path, Catalog]] = []
    for path in files:
        try:
            raw = parse_yaml(path.read_text(encoding="utf-8"))
            part = Catalog.model_validate(raw if raw is not None else {})
        except (OSError, yaml.YAMLError) as exc:
            raise CatalogError(f"{path}: cannot read: {exc}") from exc
        except ValidationError as exc:
            raise CatalogError(f"{path}: invalid metric catalog:\n{_explain(exc)}") from exc
        for name in part.dimensions:
            if name in dimensions:
                raise CatalogError(f"{path}: dimensions.{name}: defined twice")
        for name in part.metrics:
            if name in metrics:
                raise CatalogError(f"{path}: metrics.{name}: defined twice")
        dimensions.update(part.dimensions)
        metrics.update(part.metrics)
        notes.extend(part.notes)
        parts.append((path, part))
    for path, part in parts:
        for name, metric in part.metrics.items():
            _check_references(path, name, metric, dimensions, providers)
        for i, note in enumerate(part.notes):
            _check_note(f"{path}: notes[{i}]", note, metrics)
    if not metrics:
        raise CatalogError(f"{directory}: no metrics defined")
    catalog = Catalog(dimensions=dimensions, metrics=metrics, notes=notes)
    catalog._folder = directory
    return catalog


def _check_note(where: str, note: Note, metrics: dict[str, Metric]) -> None:
    metric = metrics.get(note.metric)
    if metric is None:
        raise CatalogError(f"{where}.metric: {note.metric!r} is not a metric of the catalog")
    extra = sorted(set(note.audiences or ()) - set(metric.audiences))
    if extra:
        raise CatalogError(
            f"{where}.audiences: {note.metric} is not published for {', '.join(extra)} "
            f"(it is for {', '.join(metric.audiences)})"
        )


def _measure_provider(reference: str, providers: dict[str, Provider]) -> str | None:
    provider, _, measure = reference.partition(".")
    if provider in providers and measure in providers[provider].measures:
        return provider
    return None


def _check_references(
    path: Path,
    name: str,
    metric: Metric,
    dimensions: dict[str, Dimension],
    providers: dict[str, Provider],
) -> None:
    where = f"{path}: metrics.{name}"
    dimension = dimensions.get(metric.dimension)
    if dimension is None:
        raise CatalogError(
            f"{where}.dimension: unknown dimension {metric.dimension!r} "
            f"(known: {', '.join(dimensions) or 'none'})"
        )
    goal = dimension.goals.get(metric.goal)
    if goal is None:
        raise CatalogError(
            f"{where}.goal: {metric.goal!r} is not a goal of dimension {metric.dimension!r} "
            f"(known: {', '.join(dimension.goals)})"
        )
    if metric.indicator not in goal.indicators:
        raise CatalogError(
            f"{where}.indicator: {metric.indicator!r} is not an indicator of goal "
            f"{metric.goal!r} (known: {', '.join(goal.indicators)})"
        )
    unknown = sorted(set(metric.providers) - set(providers))
    if unknown:
        raise CatalogError(
            f"{where}.providers: unknown provider {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(providers))})"
        )
    refs = [("numerator", metric.numerator)]
    if metric.denominator and metric.denominator != POPULATION:
        refs.append(("denominator", metric.denominator))
    for key, ref in refs:
        if _measure_provider(ref, providers) is None:
            raise CatalogError(
                f"{where}.{key}: {ref!r} is not a '<provider>.<measure>' "
                "defined in sources/<provider>/provider.yml"
            )
    used = source_providers(metric)
    if sorted(set(metric.providers)) != used:
        raise CatalogError(
            f"{where}.providers: lists {', '.join(sorted(set(metric.providers)))}, but its "
            f"numerator and denominator come from {', '.join(used)}"
        )


def check_against_policy(catalog: Catalog, policy: Policy) -> None:
    """Audiences must be the policy's, and a metric's ``privacy`` key must name the policy
    entry that really sets its rule (so a policy edit cannot silently change it)."""
    for metric_id, m in catalog.metrics.items():
        where = f"{catalog._folder or 'metrics'}: metrics.{metric_id}"
        unknown = sorted(set(m.audiences) - set(policy.audiences))
        if unknown:
            raise CatalogError(
                f"{where}.audiences: unknown audience {', '.join(unknown)} "
                f"(privacy/policy.yml has {', '.join(policy.audiences)})"
            )
        if m.privacy is None:
            continue
        expected = privacy_key(metric_id, m, policy)
        if m.privacy != expected:
            raise CatalogError(
                f"{where}.privacy: says {m.privacy!r}, but privacy/policy.yml sets this "
                f"metric's rule in {expected!r}"
            )


def privacy_key(metric_id: str, metric: Metric, policy: Policy) -> str:
    """The policy entry that decides the metric's cell rule (most specific first)."""
    if metric_id in policy.metrics:
        return f"metrics.{metric_id}"
    named = [p for p in metric_providers(metric) if p in policy.providers]
    if not named:
        return "defaults"
    strictest = max(named, key=lambda p: policy.rule(p, metric.audiences[0]).min_cell_size)
    return f"providers.{strictest}"


def uncovered_goals(catalog: Catalog) -> list[str]:
    """``dimension.goal`` of every goal no metric measures (CS360 asks for one per goal)."""
    covered = {(m.dimension, m.goal) for m in catalog.metrics.values()}
    return [
        f"{d}.{g}"
        for d, dimension in catalog.dimensions.items()
        for g in dimension.goals
        if (d, g) not in covered
    ]


def measure_ids(metric: Metric) -> list[str]:
    """The cells tables a metric reads, as ``<provider>__<measure>``."""
    refs = [metric.numerator] + ([metric.denominator] if metric.denominator else [])
    return [ref.replace(".", "__") for ref in refs if ref != POPULATION]


def measures_by_metric(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """Metric id -> the cells tables it reads (their privacy rules and levels follow it)."""
    return {metric_id: tuple(measure_ids(m)) for metric_id, m in catalog.metrics.items()}


def metric_providers(metric: Metric) -> list[str]:
    """Providers whose cells the metric reads (its privacy rule is the strictest of theirs)."""
    refs = [metric.numerator] + ([metric.denominator] if metric.denominator else [])
    return sorted({ref.partition(".")[0] for ref in refs if ref != POPULATION})


def source_providers(metric: Metric) -> list[str]:
    """Every provider the metric's data comes from, the city's population included."""
    extra = ["city"] if metric.denominator == POPULATION else []
    return sorted({*metric_providers(metric), *extra})


def source_datasets(metric: Metric, providers: dict[str, Provider]) -> list[str]:
    """``provider.dataset`` of every dataset the metric's numerator and denominator read."""
    out = []
    for ref in [metric.numerator] + ([metric.denominator] if metric.denominator else []):
        if ref == POPULATION:
            out.append(POPULATION_DATASET)
            continue
        provider, _, measure = ref.partition(".")
        out.append(f"{provider}.{providers[provider].measures[measure].dataset}")
    return sorted(set(out))


def history_months(metric: Metric, providers: dict[str, Provider]) -> int:
    """The longest look-back of the metric's measures: its first months need that history."""
    months = [0]
    for ref in [metric.numerator] + ([metric.denominator] if metric.denominator else []):
        if ref != POPULATION:
            provider, _, measure = ref.partition(".")
            months.append(providers[provider].measures[measure].history_months)
    return max(months)


def _measure_title(ref: str | None, providers: dict[str, Provider]) -> str | None:
    if ref is None:
        return None
    if ref == POPULATION:
        return "Residents (the city's population estimate for the year)"
    provider, _, measure = ref.partition(".")
    return providers[provider].measures[measure].title


DEFINITIONS_DDL = """
CREATE OR REPLACE TABLE shared.metric_definitions (
    metric_id VARCHAR PRIMARY KEY, display_order INTEGER NOT NULL, title VARCHAR NOT NULL,
    dimension VARCHAR NOT NULL, dimension_title VARCHAR NOT NULL, goal_key VARCHAR NOT NULL,
    goal VARCHAR NOT NULL, indicator VARCHAR NOT NULL, definition VARCHAR NOT NULL,
    unit VARCHAR NOT NULL, scale INTEGER NOT NULL, numerator_measure VARCHAR NOT NULL,
    numerator_title VARCHAR NOT NULL, denominator_measure VARCHAR, denominator_title VARCHAR,
    per_population BOOLEAN NOT NULL, direction VARCHAR NOT NULL, cadence VARCHAR NOT NULL,
    providers VARCHAR NOT NULL, source_datasets VARCHAR[] NOT NULL,
    owner_organisation VARCHAR, owner_role VARCHAR, owner_name VARCHAR, owner VARCHAR,
    audiences VARCHAR[] NOT NULL, privacy_key VARCHAR NOT NULL,
    baseline_start DATE NOT NULL, baseline_end DATE NOT NULL, baseline_note VARCHAR,
    target_value DOUBLE, target_change_pct DOUBLE, target_by DATE,
    history_months INTEGER NOT NULL
)
"""


def write_definitions(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    providers: dict[str, Provider],
    policy: Policy,
) -> int:
    """Replace ``shared.metric_definitions`` with one row per metric, in file order."""
    rows = []
    for order, (metric_id, m) in enumerate(catalog.metrics.items(), start=1):
        dimension = catalog.dimensions[m.dimension]
        denominator = m.denominator
        target = m.target
        rows.append(
            (
                metric_id,
                order,
                m.title,
                m.dimension,
                dimension.title,
                m.goal,
                dimension.goals[m.goal].title,
                m.indicator,
                " ".join(m.definition.split()),
                m.unit,
                SCALE[m.unit],
                m.numerator.replace(".", "__"),
                _measure_title(m.numerator, providers),
                None if denominator in (None, POPULATION) else denominator.replace(".", "__"),
                _measure_title(denominator, providers),
                denominator == POPULATION,
                m.direction,
                m.cadence,
                ", ".join(source_providers(m)),
                source_datasets(m, providers),
                m.owner.organisation,
                m.owner.role,
                m.owner.name,
                str(m.owner),
                m.audiences,
                m.privacy or privacy_key(metric_id, m, policy),
                month_start(m.baseline.start),
                month_end(m.baseline.end),
                m.baseline.note,
                target.value if target else None,
                target.change_pct if target else None,
                month_end(target.by) if target and target.by else None,
                history_months(m, providers),
            )
        )
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(DEFINITIONS_DDL)
    con.executemany(
        "INSERT INTO shared.metric_definitions VALUES (" + ", ".join(["?"] * 33) + ")", rows
    )
    return len(rows)


NOTES_DDL = """
CREATE OR REPLACE TABLE shared.metric_notes (
    metric_id VARCHAR NOT NULL, audience VARCHAR NOT NULL, note_order INTEGER NOT NULL,
    period_from DATE NOT NULL, period_to DATE NOT NULL, note VARCHAR NOT NULL
)
"""


def write_notes(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> int:
    """Replace ``shared.metric_notes``: each note once per audience that sees it, numbered
    per metric in file order (the number a chart marks it with)."""
    rows = []
    numbers: dict[tuple[str, str], int] = {}
    for note in catalog.notes:
        for audience in note.audiences or catalog.metrics[note.metric].audiences:
            number = numbers[note.metric, audience] = numbers.get((note.metric, audience), 0) + 1
            rows.append(
                (
                    note.metric,
                    audience,
                    number,
                    month_start(note.start),
                    month_end(note.last),
                    note.note,
                )
            )
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(NOTES_DDL)
    if rows:
        con.executemany("INSERT INTO shared.metric_notes VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def write_privacy_rules(con: duckdb.DuckDBPyConnection, catalog: Catalog, policy: Policy) -> int:
    """Replace ``shared.privacy_rules``: each metric's resolved rule per audience (the strictest
    of its providers' when it mixes them), for the rate rules dbt applies."""
    rows = []
    for metric_id, m in catalog.metrics.items():
        for audience in policy.audiences:
            rules = [policy.rule(p, audience, (metric_id,)) for p in metric_providers(m)]
            rule = rules[0]
            for other in rules[1:]:
                rule = rule.strictest(other)
            rows.append(
                (
                    metric_id,
                    audience,
                    rule.min_cell_size,
                    rule.insider,
                    rule.flag_unreliable_below,
                    rule.min_denominator,
                )
            )
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(
        """
        CREATE OR REPLACE TABLE shared.privacy_rules (
            metric_id VARCHAR NOT NULL, audience VARCHAR NOT NULL, min_cell_size INTEGER NOT NULL,
            insider BOOLEAN NOT NULL, flag_unreliable_below INTEGER NOT NULL,
            min_denominator INTEGER NOT NULL, PRIMARY KEY (metric_id, audience)
        )
        """
    )
    con.executemany("INSERT INTO shared.privacy_rules VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(rows)
