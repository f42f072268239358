"""What a provider's protected cells were built from, so an unchanged provider is not redone.

A provider's cells (``shared.cells_<provider>``, its true counts and pattern in the vault's
candidate, its placement and fallback rows) are a function of the files loaded into the
datasets its cells step reads (its own, the beat map, any crosswalk), the privacy policy and
the code and configuration (``code_version``). Their digest is recorded beside the cells when
the step finishes and forgotten when it starts, so a step that died half way never looks done.
A refresh whose digest for a provider matches the recorded one keeps that provider's cells:
protecting the same counts under the same policy again would give the same pattern, and the
release audit still attacks the whole release, kept cells included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import duckdb

from cs360_pipeline.ingest.ledger import LEDGER_TABLE
from cs360_pipeline.privacy import vault
from cs360_pipeline.sql import ident, table_exists

TABLE = "_cells_inputs"  # in the shared schema of the build database; not a cells_* table


def digest(
    con: duckdb.DuckDBPyConnection,
    datasets: Iterable[tuple[str, str]],
    policy_sha256: str,
    code: str,
    raw: str | None = "raw",
) -> str:
    """The digest of the loaded files of ``datasets`` ((provider, dataset) pairs), the policy
    and ``code`` (``catalog.release.code_version()``). A file read again by ``cs360 reingest``
    counts as changed. ``raw``: the catalog holding the ingest ledger (None: the connection's
    own database)."""
    pairs = sorted(set(datasets))
    rows = []
    if pairs and table_exists(con, LEDGER_TABLE, raw):
        ledger = f"{raw}.{LEDGER_TABLE}" if raw else LEDGER_TABLE
        rows = con.execute(
            f"""
            SELECT provider, dataset, file_name, sha256, coalesce(contract_sha256, ''),
                   coalesce(CAST(reingested_at AS VARCHAR), '')
            FROM {ledger}
            WHERE status = 'loaded' AND superseded_by IS NULL
              AND (provider, dataset) IN (SELECT unnest(?) AS p, unnest(?) AS d)
            ORDER BY ALL
            """,
            [[p for p, _ in pairs], [d for _, d in pairs]],
        ).fetchall()
    text = "\n".join(["\t".join(map(str, row)) for row in rows])
    return hashlib.sha256(f"{policy_sha256}\n{code}\n{text}".encode()).hexdigest()


def recorded(con: duckdb.DuckDBPyConnection, provider: str) -> str | None:
    """The digest the provider's cells were last built from; None when unknown or incomplete."""
    if not table_exists(con, TABLE) or not table_exists(con, f"cells_{provider}"):
        return None
    row = con.execute(
        f"SELECT digest FROM shared.{TABLE} WHERE provider = ?", [provider]
    ).fetchone()
    return row[0] if row else None


def built_from(con: duckdb.DuckDBPyConnection, provider: str, inputs: str) -> bool:
    """Whether the provider's cells were built from ``inputs`` and every output is in place."""
    return recorded(con, provider) == inputs and candidate_complete(con, provider)


def candidate_complete(con: duckdb.DuckDBPyConnection, provider: str) -> bool:
    """Whether the vault (attached as ``vault``) holds the candidate true counts of every measure
    in the provider's cells: without them a publication could not record what it published."""
    missing = con.execute(
        f"""
        SELECT count(*) FROM (SELECT DISTINCT audience, measure_id
                              FROM shared.{ident('cells_' + provider)}) AS c
        WHERE NOT EXISTS (SELECT 1 FROM vault.cells AS v
                          WHERE v.release_id = ? AND v.audience = c.audience
                            AND v.measure_id = c.measure_id)
        """,
        [vault.CANDIDATE],
    ).fetchone()
    return missing is not None and missing[0] == 0


def forget(con: duckdb.DuckDBPyConnection, provider: str) -> None:
    """Before the cells are rebuilt: until ``record``, they count as built from nothing known."""
    con.execute("CREATE SCHEMA IF NOT EXISTS shared")
    con.execute(f"CREATE TABLE IF NOT EXISTS shared.{TABLE} (provider VARCHAR, digest VARCHAR)")
    con.execute(f"DELETE FROM shared.{TABLE} WHERE provider = ?", [provider])


def record(con: duckdb.DuckDBPyConnection, provider: str, value: str) -> None:
    """After every output of the provider's cells step is written."""
    forget(con, provider)
    con.execute(f"INSERT INTO shared.{TABLE} VALUES (?, ?)", [provider, value])


def cells(con: duckdb.DuckDBPyConnection, provider: str) -> int:
    """How many cells the provider's table holds."""
    table = f"shared.{ident('cells_' + provider)}"
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
