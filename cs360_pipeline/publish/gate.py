"""The privacy gate before publication: checks that share no logic with the suppressor."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cs360_pipeline.publish.warehouse import MARTS_SCHEMA, PUBLISHED_TABLES
from cs360_pipeline.registry import Provider


@dataclass(frozen=True)
class GateResult:
    small_counts: int
    values_on_suppressed: int
    identifier_columns: list[str]

    @property
    def passed(self) -> bool:
        return not (self.small_counts or self.values_on_suppressed or self.identifier_columns)


def forbidden_columns(providers: dict[str, Provider]) -> set[str]:
    """Direct identifiers and record keys of every dataset: none may reach a published table."""
    names = set()
    for provider in providers.values():
        for dataset in provider.datasets.values():
            if dataset.load == "replace":
                continue  # reference data (beats, schools) has no people in it
            names.update(n for n, c in dataset.columns.items() if c.identifier)
            names.update(dataset.key)
    return names


def check(con: duckdb.DuckDBPyConnection, providers: dict[str, Provider]) -> GateResult:
    """Scan the marts in the build database as they would be published."""
    small = con.execute(
        f"""
        SELECT count(*)
        FROM {MARTS_SCHEMA}.metric_values AS v
        JOIN shared.metric_definitions AS d USING (metric_id)
        JOIN shared.privacy_rules AS r USING (metric_id, audience)
        WHERE (v.numerator > 0 AND v.numerator < r.min_cell_size)
           OR (NOT d.per_population AND v.denominator > 0 AND v.denominator < r.min_cell_size)
        """
    ).fetchall()[0][0]
    leaked = con.execute(
        f"""
        SELECT count(*) FROM {MARTS_SCHEMA}.metric_values
        WHERE status = 'suppressed'
          AND (value IS NOT NULL OR numerator IS NOT NULL OR denominator IS NOT NULL)
        """
    ).fetchall()[0][0]
    tables = ", ".join(f"'{t}'" for t in PUBLISHED_TABLES)
    columns = con.execute(
        f"""
        SELECT table_name || '.' || column_name, column_name
        FROM information_schema.columns
        WHERE table_schema = '{MARTS_SCHEMA}' AND table_name IN ({tables})
        """
    ).fetchall()
    forbidden = forbidden_columns(providers)
    return GateResult(
        small_counts=small,
        values_on_suppressed=leaked,
        identifier_columns=sorted(full for full, name in columns if name in forbidden),
    )
