"""Load ``dbt_project/metrics/*.yml``, check it against the providers, write it for dbt."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.registry import Provider
from cs360_pipeline.settings import DBT_PROJECT_DIR

METRICS_DIR = DBT_PROJECT_DIR / "metrics"
SCALE = {"count": 1, "minutes": 1, "percent": 100, "rate_per_1000": 1000}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(_Strict):
    organisation: str = Field(min_length=1)
    role: str = Field(min_length=1)


class Metric(_Strict):
    title: str
    dimension: str
    goal: str
    indicator: str
    definition: str
    unit: Literal["count", "rate_per_1000", "percent", "minutes"]
    numerator: str
    denominator: str | None = None
    direction: Literal["up_is_good", "down_is_good"]
    cadence: Literal["monthly", "quarterly", "annual"]
    owner: Owner

    @model_validator(mode="after")
    def _denominator_fits_unit(self) -> Metric:
        needs = self.unit in ("rate_per_1000", "percent")
        if needs and not self.denominator:
            raise ValueError(f"a {self.unit} metric needs a denominator")
        if not needs and self.denominator:
            raise ValueError(f"a {self.unit} metric takes no denominator")
        if self.unit == "rate_per_1000" and self.denominator != "population":
            raise ValueError("rate_per_1000 is per residents: denominator must be 'population'")
        return self


class Catalog(_Strict):
    dimensions: dict[str, str]
    metrics: dict[str, Metric]


class CatalogError(ValueError):
    """The metric catalog is invalid; the message names the file, metric and key."""


def load_catalog(providers: dict[str, Provider], directory: Path = METRICS_DIR) -> Catalog:
    dimensions: dict[str, str] = {}
    metrics: dict[str, Metric] = {}
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise CatalogError(f"{directory}: no metric definition files (*.yml)")
    for path in files:
        try:
            part = Catalog.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise CatalogError(f"{path}: cannot read: {exc}") from exc
        except ValidationError as exc:
            details = "\n".join(
                f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise CatalogError(f"{path}: invalid metric catalog:\n{details}") from exc
        for name in part.metrics:
            if name in metrics:
                raise CatalogError(f"{path}: metrics.{name}: defined twice")
        dimensions.update(part.dimensions)
        metrics.update(part.metrics)
        for name, metric in part.metrics.items():
            _check_references(path, name, metric, part.dimensions | dimensions, providers)
    return Catalog(dimensions=dimensions, metrics=metrics)


def _measure_provider(reference: str, providers: dict[str, Provider]) -> str | None:
    provider, _, measure = reference.partition(".")
    if provider in providers and measure in providers[provider].measures:
        return provider
    return None


def _check_references(
    path: Path,
    name: str,
    metric: Metric,
    dimensions: dict[str, str],
    providers: dict[str, Provider],
) -> None:
    if metric.dimension not in dimensions:
        raise CatalogError(
            f"{path}: metrics.{name}.dimension: unknown dimension {metric.dimension!r} "
            f"(known: {', '.join(dimensions)})"
        )
    refs = [("numerator", metric.numerator)]
    if metric.denominator and metric.denominator != "population":
        refs.append(("denominator", metric.denominator))
    for key, ref in refs:
        if _measure_provider(ref, providers) is None:
            raise CatalogError(
                f"{path}: metrics.{name}.{key}: {ref!r} is not a '<provider>.<measure>' "
                "defined in sources/<provider>/provider.yml"
            )


def measure_ids(metric: Metric) -> list[str]:
    """The cells tables a metric reads, as ``<provider>__<measure>``."""
    refs = [metric.numerator] + ([metric.denominator] if metric.denominator else [])
    return [ref.replace(".", "__") for ref in refs if ref != "population"]


def metrics_by_measure(catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """Measure id -> the metrics built on it (their privacy overrides apply to its cells)."""
    out: dict[str, list[str]] = {}
    for metric_id, metric in catalog.metrics.items():
        for measure in measure_ids(metric):
            out.setdefault(measure, []).append(metric_id)
    return {m: tuple(ids) for m, ids in out.items()}


def metric_providers(metric: Metric) -> list[str]:
    refs = [metric.numerator] + ([metric.denominator] if metric.denominator else [])
    return sorted({ref.partition(".")[0] for ref in refs if ref != "population"})


def write_definitions(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> int:
    """Replace ``shared.metric_definitions`` with one row per metric, in file order."""
    rows = []
    for order, (metric_id, m) in enumerate(catalog.metrics.items(), start=1):
        providers = metric_providers(m)
        denominator = m.denominator
        rows.append(
            (
                metric_id,
                order,
                m.title,
                m.dimension,
                catalog.dimensions[m.dimension],
                m.goal,
                m.indicator,
                " ".join(m.definition.split()),
                m.unit,
                SCALE[m.unit],
                m.numerator.replace(".", "__"),
                None if denominator in (None, "population") else denominator.replace(".", "__"),
                denominator == "population",
                m.direction,
                m.cadence,
                ", ".join(providers),
                m.owner.organisation,
                m.owner.role,
            )
        )
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(
        """
        CREATE OR REPLACE TABLE shared.metric_definitions (
            metric_id VARCHAR PRIMARY KEY, display_order INTEGER, title VARCHAR,
            dimension VARCHAR, dimension_title VARCHAR, goal VARCHAR, indicator VARCHAR,
            definition VARCHAR, unit VARCHAR, scale INTEGER, numerator_measure VARCHAR,
            denominator_measure VARCHAR, per_population BOOLEAN, direction VARCHAR,
            cadence VARCHAR, providers VARCHAR, owner_organisation VARCHAR, owner_role VARCHAR
        )
        """
    )
    con.executemany(
        "INSERT INTO shared.metric_definitions VALUES (" + ", ".join(["?"] * 18) + ")", rows
    )
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
