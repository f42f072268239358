"""Who delivers what, how often: the provider registry as a table for the delivery scorecard."""

from __future__ import annotations

import duckdb

from cs360_pipeline.registry import Provider

DATASETS_DDL = """
CREATE OR REPLACE TABLE shared.datasets (
    provider VARCHAR NOT NULL, organisation VARCHAR, community_map_area VARCHAR,
    data_owner VARCHAR, steward VARCHAR, steward_email VARCHAR, agreement VARCHAR,
    dataset VARCHAR NOT NULL, title VARCHAR, file_pattern VARCHAR, cadence VARCHAR NOT NULL,
    load VARCHAR NOT NULL, has_period BOOLEAN NOT NULL, measures INTEGER NOT NULL,
    warn_after_days INTEGER, error_after_days INTEGER, no_delivery_months INTEGER[],
    PRIMARY KEY (provider, dataset)
)
"""


def write_datasets(con: duckdb.DuckDBPyConnection, providers: dict[str, Provider]) -> int:
    """Replace ``shared.datasets``: one row per provider dataset, owner and steward resolved
    (the dataset's own, else the provider's; NULL when neither is named)."""
    rows = []
    for p in providers.values():
        for name, d in p.datasets.items():
            owner, steward = p.dataset_owner(name), p.dataset_steward(name)
            rows.append(
                (
                    p.provider,
                    p.organisation,
                    p.community_map_area,
                    str(owner) if owner else None,
                    str(steward) if steward else None,
                    steward.email if steward else None,
                    p.agreement,
                    name,
                    d.title,
                    d.file_pattern,
                    d.cadence,
                    d.load,
                    d.period is not None,
                    sum(m.dataset == name for m in p.measures.values()),
                    d.freshness.warn_after_days if d.freshness else None,
                    d.freshness.error_after_days if d.freshness else None,
                    d.no_delivery_months,
                )
            )
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(DATASETS_DDL)
    if rows:  # executemany refuses an empty list
        con.executemany(f"INSERT INTO shared.datasets VALUES ({', '.join('?' * 17)})", rows)
    return len(rows)
