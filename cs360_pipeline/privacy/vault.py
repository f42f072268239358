"""The restricted record of what each release published: true counts and suppression patterns.

Two things need the past: sticky suppression (a new release keeps the cells the previous one
hid, so two releases cannot be differenced) and the joint audit (an attacker holds every release
still public). Both need true counts, so this file lives in the restricted zone beside
``raw.duckdb`` and nothing in it is ever published.

The privacy step writes each measure's cells as the ``candidate``; publishing a release copies
the candidate under its release id. Only the last ``keep`` published releases are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from cs360_pipeline.privacy.audit import Publication
from cs360_pipeline.privacy.lattice import KEY_COLUMNS, CellKey, Lattice
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import connect, literal

CANDIDATE = "candidate"
SCHEMA = """
    CREATE TABLE IF NOT EXISTS {db}.cells (
        release_id   VARCHAR NOT NULL,   -- 'candidate' until published
        audience     VARCHAR NOT NULL,
        measure_id   VARCHAR NOT NULL,
        period_level VARCHAR NOT NULL,
        period_start VARCHAR NOT NULL,   -- ISO date, as the lattice keys it
        geo_level    VARCHAR NOT NULL,
        geo_code     VARCHAR NOT NULL,
        breakdown    VARCHAR NOT NULL,
        n            BIGINT  NOT NULL,
        suppressed   BOOLEAN NOT NULL,
        kind         VARCHAR NOT NULL,   -- published | primary | secondary | forced
        min_cell_size INTEGER NOT NULL,
        insider      BOOLEAN NOT NULL
    );
    CREATE TABLE IF NOT EXISTS {db}.releases (
        release_id   VARCHAR PRIMARY KEY,
        published_at TIMESTAMP NOT NULL
    );
    -- pending: stored just before the warehouse swap; published once readers can open it.
    ALTER TABLE {db}.releases ADD COLUMN IF NOT EXISTS state VARCHAR DEFAULT 'published';
"""
PENDING, PUBLISHED = "pending", "published"


@dataclass(frozen=True)
class StoredRelease:
    """One release (or the candidate) of one measure and audience: true counts and pattern."""

    release_id: str
    lattice: Lattice
    suppressed: np.ndarray
    min_cell_size: int
    insider: bool

    def publication(self, name: str, sequence: int) -> Publication:
        """What it published, for the attacker (``sequence``: its place in publishing order)."""
        return Publication(
            self.lattice, self.suppressed, self.min_cell_size, name, insider=self.insider,
            sequence=sequence,
        )  # fmt: skip


def attach(con: duckdb.DuckDBPyConnection, paths: Paths, *, read_only: bool = False) -> str:
    """Attach the vault to ``con`` as ``vault`` (created on first use) and return the name."""
    paths.vault_db.parent.mkdir(parents=True, exist_ok=True)
    mode = " (READ_ONLY)" if read_only and paths.vault_db.exists() else ""
    con.execute(f"ATTACH {literal(paths.vault_db)} AS vault{mode}")
    if not mode:
        con.execute(SCHEMA.format(db="vault"))
    return "vault"


@contextmanager
def opened(paths: Paths, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(None)
    try:
        attach(con, paths, read_only=read_only)
        yield con
    finally:
        con.close()


def key_arrays(lattice: Lattice) -> dict[str, pa.Array]:
    """The lattice's cell keys as Arrow columns named like the cells tables."""
    return {
        name: pa.array([key[i] for key in lattice.keys], pa.string())
        for i, name in enumerate(KEY_COLUMNS)
    }


def save_candidate(
    con: duckdb.DuckDBPyConnection,
    audience: str,
    measure_id: str,
    keys: dict[str, pa.Array],
    n: np.ndarray,
    suppressed: np.ndarray,
    kinds: list[str],
    min_cell_size: int,
    insider: bool,
) -> None:
    """Replace the candidate cells of one measure and audience (``keys``: ``key_arrays``)."""
    size = len(n)
    table = pa.table(
        {
            "audience": pa.array([audience] * size, pa.string()),
            "measure_id": pa.array([measure_id] * size, pa.string()),
            **keys,
            "n": pa.array(n, pa.int64()),
            "suppressed": pa.array(suppressed, pa.bool_()),
            "kind": pa.array(kinds, pa.string()),
        }
    )
    con.register("_candidate", table)
    try:
        con.execute(
            "DELETE FROM vault.cells WHERE release_id = ? AND audience = ? AND measure_id = ?",
            [CANDIDATE, audience, measure_id],
        )
        con.execute(
            f"""
            INSERT INTO vault.cells
            SELECT {literal(CANDIDATE)}, audience, measure_id, {", ".join(KEY_COLUMNS)}, n,
                   suppressed, kind, {int(min_cell_size)}, {bool(insider)}
            FROM _candidate
            """
        )
    finally:
        con.unregister("_candidate")


def drop_candidates(
    con: duckdb.DuckDBPyConnection, measure_ids: list[str], audience: str | None = None
) -> None:
    """Measures no longer built (their dataset was withdrawn) leave the candidate, for one
    audience or all of them."""
    if measure_ids:
        marks = ", ".join("?" * len(measure_ids))
        only = "" if audience is None else " AND audience = ?"
        con.execute(
            f"DELETE FROM vault.cells WHERE release_id = ? AND measure_id IN ({marks}){only}",
            [CANDIDATE, *measure_ids, *([] if audience is None else [audience])],
        )


def _select(con: duckdb.DuckDBPyConnection, where: str, params: list) -> dict[tuple, list]:
    """Stored cells grouped by (release id, audience, measure id)."""
    groups: dict[tuple, list] = {}
    for release_id, audience, measure_id, *row in con.execute(
        f"""
        SELECT release_id, audience, measure_id, {", ".join(KEY_COLUMNS)}, n, suppressed,
               min_cell_size, insider
        FROM vault.cells WHERE {where}
        """,
        params,
    ).fetchall():
        groups.setdefault((release_id, audience, measure_id), []).append(row)
    return groups


def _release(release_id: str, rows: list, geo_parent: dict[str, str]) -> StoredRelease:
    keys = [CellKey(*r[:5]) for r in rows]  # stored from a lattice: canonical already
    lattice = Lattice.build(keys, (r[5] for r in rows), geo_parent)
    suppressed = lattice.mask(key for key, r in zip(keys, rows, strict=True) if r[6])
    return StoredRelease(release_id, lattice, suppressed, rows[0][7], rows[0][8])


def _past_ids(con: duckdb.DuckDBPyConnection, limit: int) -> list[str]:
    """The last ``limit`` published releases, newest first."""
    if limit <= 0:
        return []
    return [
        r[0]
        for r in con.execute(
            "SELECT release_id FROM vault.releases WHERE state = 'published' "
            f"ORDER BY published_at DESC, release_id LIMIT {int(limit)}"
        ).fetchall()
    ]


def past_releases(
    con: duckdb.DuckDBPyConnection,
    audience: str,
    measure_id: str,
    geo_parent: dict[str, str],
    limit: int,
) -> list[StoredRelease]:
    """The last ``limit`` published releases of a measure and audience, newest first."""
    ids = _past_ids(con, limit)
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    groups = _select(
        con, f"audience = ? AND measure_id = ? AND release_id IN ({marks})",
        [audience, measure_id, *ids],
    )  # fmt: skip
    return [
        _release(r, groups[(r, audience, measure_id)], geo_parent)
        for r in ids
        if (r, audience, measure_id) in groups
    ]


def measure_releases(
    con: duckdb.DuckDBPyConnection, measure_id: str, geo_parent: dict[str, str], limit: int
) -> dict[str, tuple[StoredRelease | None, list[StoredRelease]]]:
    """Per audience, a measure's candidate and its last ``limit`` published releases (newest
    first), read in one pass."""
    ids = [CANDIDATE, *_past_ids(con, limit)]
    marks = ", ".join("?" * len(ids))
    groups = _select(con, f"measure_id = ? AND release_id IN ({marks})", [measure_id, *ids])
    out: dict[str, tuple[StoredRelease | None, list[StoredRelease]]] = {}
    for audience in sorted({a for _, a, _ in groups}):
        found = [
            _release(r, groups[(r, audience, measure_id)], geo_parent)
            if (r, audience, measure_id) in groups
            else None
            for r in ids
        ]
        out[audience] = (found[0], [f for f in found[1:] if f is not None])
    return out


def candidate_measures(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(audience, measure_id) of every candidate table family."""
    return con.execute(
        "SELECT DISTINCT audience, measure_id FROM vault.cells WHERE release_id = ? ORDER BY ALL",
        [CANDIDATE],
    ).fetchall()


def release_states(paths: Paths) -> dict[str, str]:
    """release id -> pending | published, for every release the vault holds."""
    if not paths.vault_db.exists():
        return {}
    with opened(paths) as con:
        return dict(con.execute("SELECT release_id, state FROM vault.releases").fetchall())


def record_pending(paths: Paths, release_id: str) -> None:
    """Store the candidate under ``release_id`` before the warehouse swap makes it readable.

    A release already published keeps its record: the same id means the same inputs and the
    same pattern, so its true counts and pattern are the candidate's already.
    """
    with opened(paths) as con:
        con.execute("BEGIN TRANSACTION")
        known = con.execute(
            "SELECT count(*) FROM vault.releases WHERE release_id = ?", [release_id]
        ).fetchall()[0][0]
        if not known:
            con.execute("DELETE FROM vault.cells WHERE release_id = ?", [release_id])
            con.execute(
                """
                INSERT INTO vault.cells
                SELECT ? AS release_id, * EXCLUDE (release_id) FROM vault.cells
                WHERE release_id = ?
                """,
                [release_id, CANDIDATE],
            )
            con.execute(
                "INSERT INTO vault.releases (release_id, published_at, state) VALUES (?, now(), ?)",
                [release_id, PENDING],
            )
        con.execute("COMMIT")


def mark_published(paths: Paths, release_id: str, keep: int) -> None:
    """The release is live: it joins the history; releases beyond the last ``keep`` go."""
    with opened(paths) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "UPDATE vault.releases SET state = ?, published_at = now() WHERE release_id = ?",
            [PUBLISHED, release_id],
        )
        con.execute(
            f"""
            DELETE FROM vault.releases WHERE state = '{PUBLISHED}' AND release_id NOT IN (
                SELECT release_id FROM vault.releases WHERE state = '{PUBLISHED}'
                ORDER BY published_at DESC, release_id LIMIT {int(keep)}
            )
            """
        )
        _drop_orphan_cells(con)
        con.execute("COMMIT")


def drop_pending(paths: Paths, release_id: str) -> None:
    """Forget a release stored for a swap that never happened: no reader ever saw it."""
    with opened(paths) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "DELETE FROM vault.releases WHERE release_id = ? AND state = ?",
            [release_id, PENDING],
        )
        _drop_orphan_cells(con)
        con.execute("COMMIT")


def _drop_orphan_cells(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "DELETE FROM vault.cells WHERE release_id <> ? "
        "AND release_id NOT IN (SELECT release_id FROM vault.releases)",
        [CANDIDATE],
    )


def candidate_pattern_sha256(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of the candidate's suppression pattern (which cells of which table are hidden).

    Part of the release id: two builds that hide different cells can never share an id.
    """
    count, total = con.execute(
        f"""
        SELECT count(*), coalesce(sum(hash(audience, measure_id, {", ".join(KEY_COLUMNS)},
                                           suppressed)::HUGEINT), 0)
        FROM vault.cells WHERE release_id = ?
        """,
        [CANDIDATE],
    ).fetchall()[0]
    return hashlib.sha256(f"{count}:{total}".encode()).hexdigest()
