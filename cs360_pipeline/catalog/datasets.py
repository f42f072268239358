"""Who delivers what, how often: the provider registry as a table for the freshness scorecard."""

from __future__ import annotations

import duckdb

from cs360_pipeline.registry import Provider

DATASETS_DDL = """
CREATE OR REPLACE TABLE shared.datasets (
    provider VARCHAR, organisation VARCHAR, community_map_area VARCHAR,
    data_owner VARCHAR, steward VARCHAR, steward_email VARCHAR, agreement VARCHAR,
    dataset VARCHAR, title VARCHAR, file_pattern VARCHAR, cadence VARCHAR,
    warn_after_days INTEGER, error_after_days INTEGER,
    PRIMARY KEY (provider, dataset)
)
"""


def write_datasets(con: duckdb.DuckDBPyConnection, providers: dict[str, Provider]) -> int:
    rows = [
        (
            p.provider,
            p.organisation,
            p.community_map_area,
            f"{p.data_owner.name} ({p.data_owner.role})",
            f"{p.steward.name} ({p.steward.role})",
            p.steward.email,
            p.agreement,
            name,
            d.title,
            d.file_pattern,
            d.cadence,
            d.freshness.warn_after_days if d.freshness else None,
            d.freshness.error_after_days if d.freshness else None,
        )
        for p in providers.values()
        for name, d in p.datasets.items()
    ]
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(DATASETS_DDL)
    con.executemany(f"INSERT INTO shared.datasets VALUES ({', '.join('?' * 13)})", rows)
    return len(rows)
