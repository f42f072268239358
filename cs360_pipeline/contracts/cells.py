"""The shared cells contract: what the privacy step may hand to dbt, one table per provider.

This is the zone boundary. Row-level data stays behind it; what crosses is a count per cell,
and no count a reader could take for a small one.
"""

from __future__ import annotations

import ibis
import pandera.ibis as pa

from cs360_pipeline.contracts.rules import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    INTEGER,
    TEXT,
    at_least,
    column,
    one_of,
    required,
    rule,
)
from cs360_pipeline.contracts.validate import Contract
from cs360_pipeline.privacy.policy import Policy

CELL_KEY = ["audience", "measure_id", "period_level", "period_start", "geo_level", "geo_code",
            "breakdown"]  # fmt: skip


def geo_levels(policy: Policy) -> list[str]:
    """The geography levels a cell or a published row may have: the policy's, and its zones."""
    return [*policy.tables.geography_levels, "zone"]


def cells_contract(policy: Policy, provider: str) -> Contract:
    """The contract of ``shared.cells_<provider>``: its keys, counts and suppression."""

    def contract(_: ibis.BaseBackend) -> pa.DataFrameSchema:
        measure = pa.Check.str_startswith(
            f"{provider}__", error=f"a measure of {provider} ({provider}__<measure>)"
        )
        return pa.DataFrameSchema(
            name=f"cells_{provider}",
            columns={
                "audience": required(one_of(policy.audiences), dtype=TEXT),
                "measure_id": required(measure, dtype=TEXT),
                "period_level": required(one_of(policy.tables.period_levels), dtype=TEXT),
                "period_start": required(dtype=DATE),
                "geo_level": required(one_of(geo_levels(policy)), dtype=TEXT),
                "geo_code": required(dtype=TEXT),
                "breakdown": required(dtype=TEXT),
                "n": column(at_least(0), dtype=BIGINT),
                "value": column(dtype=DOUBLE),
                "suppressed": required(dtype=BOOLEAN),
                "min_cell_size": required(at_least(2), dtype=INTEGER),
            },
            checks=[
                rule(
                    "a hidden cell carries no count and no value",
                    lambda t: ~t.suppressed | (t.n.isnull() & t.value.isnull()),
                ),
                rule(
                    "no count shown is below the cell's minimum (0 < n < k)",
                    lambda t: t.suppressed | (t.n == 0) | (t.n >= t.min_cell_size),
                ),
            ],
            unique=CELL_KEY,
            # No other column: an identifier or record key cannot ride along.
            strict=True,
        )

    return contract
