"""The contracts between zones as blocking Dagster checks (rules in ``cs360_pipeline.contracts``).

The shared cells are checked by the step that writes them (``defs/privacy.py``); the published
tables here, in one step after dbt. A broken contract stops the run before publication, so the
live release stays as it was.
"""

from collections.abc import Iterator
from contextlib import closing

import dagster as dg

from cs360_pipeline.contracts.validate import Breach
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.publish.warehouse import MARTS_SCHEMA, PUBLISHED_TABLES

CHECK = "contract"


def result(key: dg.AssetKey, breaches: list[Breach]) -> dg.AssetCheckResult:
    """A contract's outcome: each breach in words (a count of rows, never their values)."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CHECK,
        passed=not breaches,
        description="; ".join(b.line() for b in breaches) or "every rule holds",
        metadata={
            "rules_broken": len(breaches),
            "breaches": "\n".join(b.line() for b in breaches) or "none",
        },
    )


def published_checks() -> dg.AssetChecksDefinition:
    keys = {table: dg.AssetKey([MARTS_SCHEMA, table]) for table in PUBLISHED_TABLES}

    @dg.multi_asset_check(
        name="contract_checks",
        specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=key,
                blocking=True,
                description=(
                    "The published table's contract (contracts/published.py): its columns and "
                    "their types, its key, allowed values and the rules between columns. A "
                    "breach stops publication; the live release stays."
                ),
            )
            for key in keys.values()
        ],
        can_subset=True,
    )
    def contract_checks(
        context: dg.AssetCheckExecutionContext, deployment: DeploymentResource
    ) -> Iterator[dg.AssetCheckResult]:
        from cs360_pipeline.contracts.published import CONTRACTS
        from cs360_pipeline.contracts.validate import check_table

        policy = deployment.policy()
        selected = {k.asset_key for k in context.selected_asset_check_keys}
        with closing(deployment.connect("shared", read_only=True)) as con:
            for table, key in keys.items():
                if key not in selected:
                    continue
                contract = CONTRACTS[table]
                breaches = check_table(con, MARTS_SCHEMA, table, lambda db: contract(policy, db))  # noqa: B023
                for breach in breaches:
                    context.log.error(f"contract broken: {breach.line()}")
                yield result(key, breaches)

    return contract_checks


defs = dg.Definitions(asset_checks=[published_checks()])
