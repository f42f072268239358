"""The warehouse file: a release staged into a new file, then swapped in atomically.

DuckDB lets no process read a file while another writes it, so the release is written to a new
file beside the warehouse, checkpointed, closed and renamed over the old one. Readers that had the
old file open keep their snapshot; new readers get the new release; nobody sees a mix. The order
around the swap (vault, release log) lives in :mod:`cs360_pipeline.release.publication`.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cs360_pipeline.durable import fsync_path
from cs360_pipeline.privacy.vault import candidate_pattern_sha256
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, ident, literal

PUBLISHED_TABLES = (
    "metric_values",
    "metric_catalog",
    "metric_notes",
    "privacy_report",
    "geography",
    "provider_status",
)
MARTS_SCHEMA = "marts"


MANIFEST_TABLE = "release_manifest"
MANIFEST_SCHEMA = f"""
CREATE TABLE {MANIFEST_TABLE} (
    release_id          VARCHAR NOT NULL,
    build_id            VARCHAR NOT NULL,
    pattern_sha256      VARCHAR NOT NULL,
    staged_at           TIMESTAMP NOT NULL,
    data_as_of          DATE,
    input_files         STRUCT(provider VARCHAR, file_name VARCHAR, sha256 VARCHAR)[] NOT NULL,
    input_sha256        VARCHAR NOT NULL,
    policy_sha256       VARCHAR NOT NULL,
    code_version        VARCHAR NOT NULL,
    metric_values_rows  BIGINT NOT NULL,
    checks              STRUCT(name VARCHAR, passed BOOLEAN, severity VARCHAR, detail VARCHAR)[]
                        NOT NULL,
    notes               STRUCT(metric_id VARCHAR, audience VARCHAR, period_from DATE,
                               period_to DATE, note VARCHAR)[] NOT NULL
)
"""


@dataclass(frozen=True)
class Staged:
    """A finished warehouse file beside the live one, not yet readable as the warehouse."""

    path: Path
    release_id: str
    rows: dict[str, int]


def staging_path(paths: Paths) -> Path:
    return paths.data_dir / ".warehouse.next.duckdb"


def release_id_for(build_id: str, pattern_sha256: str) -> str:
    """The published id: the build's inputs, policy and code, and the cells it hides.

    The same inputs normally give the same pattern, hence the same id; should the pattern ever
    differ (another history of earlier releases), so does the id: one id, one set of tables.
    """
    digest = hashlib.sha256(f"{build_id}\n{pattern_sha256}".encode()).hexdigest()
    return f"r-{digest[:12]}"


def stage(paths: Paths, checks: list[dict[str, object]]) -> Staged:
    """Write the release into the staging file: the marts, their comments and the manifest.

    ``checks`` are the blocking checks the release passed (name, passed, severity, detail). The
    file is checkpointed and fsynced, so a swap publishes it whole.
    """
    paths.ensure()
    target = staging_path(paths)
    discard_staged(paths)
    rows = {}
    with closing(connect(target, for_analysts=True)) as con:
        con.execute(f"ATTACH {literal(paths.build_db)} AS build (READ_ONLY)")
        con.execute(f"ATTACH {literal(paths.vault_db)} AS vault (READ_ONLY)")
        build_id, policy, code, inputs_sha = con.execute(
            "SELECT release_id, policy_sha256, code_version, input_sha256 FROM build.shared.release"
        ).fetchall()[0]
        pattern = candidate_pattern_sha256(con)
        release_id = release_id_for(build_id, pattern)
        for table in PUBLISHED_TABLES:
            source = f"build.{MARTS_SCHEMA}.{ident(table)}"
            select = f"SELECT * FROM {source}"
            if table == "metric_values":
                select = f"SELECT * REPLACE ({literal(release_id)} AS release_id) FROM {source}"
            con.execute(f"CREATE TABLE {ident(table)} AS {select}")
            rows[table] = con.execute(f"SELECT count(*) FROM {ident(table)}").fetchall()[0][0]
            _copy_comments(con, table)
        con.execute(MANIFEST_SCHEMA)
        con.execute(
            f"""
            INSERT INTO {MANIFEST_TABLE}
            SELECT ?, ?, ?, CAST(timezone('UTC', now()) AS TIMESTAMP),
                   (SELECT max(as_of) FROM provider_status),
                   coalesce((SELECT list({{'provider': provider, 'file_name': file_name,
                                          'sha256': sha256}} ORDER BY provider, file_name)
                             FROM build.shared.deliveries
                             WHERE status = 'loaded' AND superseded_by IS NULL), []),
                   ?, ?, ?, ?, CAST(? AS STRUCT(name VARCHAR, passed BOOLEAN,
                                                severity VARCHAR, detail VARCHAR)[]),
                   coalesce((SELECT list({{'metric_id': metric_id, 'audience': audience,
                                          'period_from': period_from, 'period_to': period_to,
                                          'note': note}} ORDER BY audience, metric_id,
                                                                  note_order)
                             FROM metric_notes), [])
            """,
            [release_id, build_id, pattern, inputs_sha, policy, code, rows["metric_values"],
             checks],
        )  # fmt: skip
        con.execute(
            f"COMMENT ON TABLE {MANIFEST_TABLE} IS "
            + literal("What this release was made from and the checks it passed (one row).")
        )
        con.execute("DETACH build")
        con.execute("DETACH vault")
        con.execute("CHECKPOINT")
    fsync_path(target)
    return Staged(path=target, release_id=release_id, rows=rows)


def swap(paths: Paths, staged: Staged) -> None:
    """The instant of publication: the staged file becomes the warehouse, whole."""
    os.replace(staged.path, paths.warehouse_db)
    fsync_path(paths.warehouse_db.parent)


def discard_staged(paths: Paths) -> None:
    """Remove a staging file (and its WAL) that never became the warehouse."""
    target = staging_path(paths)
    for leftover in (target, target.with_name(target.name + ".wal")):
        leftover.unlink(missing_ok=True)


def manifest(path: Path) -> dict[str, object] | None:
    """The manifest row of a warehouse file; None when the file holds none (or is absent)."""
    if not path.exists():
        return None
    with closing(connect(path, read_only=True)) as con:
        known = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [MANIFEST_TABLE]
        ).fetchall()[0][0]
        if not known:
            return None
        cursor = con.execute(f"SELECT * FROM {MANIFEST_TABLE}")
        names = [d[0] for d in cursor.description]
        row = cursor.fetchall()[0]
    return dict(zip(names, row, strict=True))


def release_of(con: duckdb.DuckDBPyConnection) -> str | None:
    """The release a connection to a warehouse file sees (its metric_values' one release id)."""
    return con.execute("SELECT max(release_id) FROM metric_values").fetchall()[0][0]


def live_release(paths: Paths) -> str | None:
    """The release readers open now (None before the first publication)."""
    if not paths.warehouse_db.exists():
        return None
    with closing(connect(paths.warehouse_db, read_only=True)) as con:
        return release_of(con)


def _copy_comments(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Carry dbt's table and column descriptions along, so any DuckDB client shows them."""
    table_comment = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE database_name = 'build' "
        "AND schema_name = ? AND table_name = ?",
        [MARTS_SCHEMA, table],
    ).fetchall()
    if table_comment and table_comment[0][0]:
        con.execute(f"COMMENT ON TABLE {ident(table)} IS {literal(table_comment[0][0])}")
    for column, comment in con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = 'build' "
        "AND schema_name = ? AND table_name = ? AND comment IS NOT NULL AND comment <> ''",
        [MARTS_SCHEMA, table],
    ).fetchall():
        con.execute(f"COMMENT ON COLUMN {ident(table)}.{ident(column)} IS {literal(comment)}")
