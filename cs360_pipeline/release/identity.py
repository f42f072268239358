"""The release being built: an id derived from its inputs, policy and code, nothing else.

Two builds from the same delivered files, policy and code get the same id (and the same tables),
so a release id says exactly what a published table was made from.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from importlib.metadata import version

import duckdb

from cs360_pipeline.catalog.dbt_workdir import project_files
from cs360_pipeline.privacy.zones import restricted_to_shared
from cs360_pipeline.settings import DBT_PROJECT_DIR, PROJECT_DIR, Paths


@dataclass(frozen=True)
class Release:
    release_id: str
    policy_sha256: str
    code_version: str
    input_files: list[str]
    input_sha256: str


def code_version(paths: Paths) -> str:
    """Package version, git commit when available, and a hash of the configuration."""
    digest = hashlib.sha256()
    config_files = [
        *project_files(DBT_PROJECT_DIR).values(),
        *paths.metrics_dir.glob("*.yml"),
        *paths.sources_dir.glob("*/provider.yml"),
    ]
    for path in sorted(config_files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "nogit"
    return f"{version('cs360-pipeline')}+{commit}.cfg{digest.hexdigest()[:8]}"


def describe_release(
    con: duckdb.DuckDBPyConnection,
    policy_sha256: str,
    code: str,
    ledger: str = "raw._ingest_ledger",
) -> Release:
    """The release for everything the ledger says is loaded.

    Each file counts with the contract its rows were read under, so the same files before and
    after ``cs360 reingest`` under a changed contract never share an id.
    """
    rows = con.execute(
        f"SELECT provider || '/' || file_name, sha256 || coalesce(':' || contract_sha256, '') "
        f"AS input FROM {ledger} WHERE status = 'loaded' AND superseded_by IS NULL ORDER BY input"
    ).fetchall()
    inputs = hashlib.sha256("\n".join(sha for _, sha in rows).encode()).hexdigest()
    release_id = hashlib.sha256(f"{inputs}\n{policy_sha256}\n{code}".encode()).hexdigest()[:12]
    return Release(
        release_id=f"r-{release_id}",
        policy_sha256=policy_sha256,
        code_version=code,
        input_files=sorted(name for name, _ in rows),
        input_sha256=inputs,
    )


def write_release(paths: Paths, policy_sha256: str) -> Release:
    """Record the release being built in the shared zone."""
    with restricted_to_shared(paths) as con:
        release = describe_release(con, policy_sha256, code_version(paths))
        con.execute("CREATE SCHEMA IF NOT EXISTS shared")
        con.execute(
            """
            CREATE OR REPLACE TABLE shared.release AS
            SELECT ? AS release_id, ? AS policy_sha256, ? AS code_version,
                   CAST(? AS VARCHAR[]) AS input_files, ? AS input_sha256
            """,
            [
                release.release_id,
                release.policy_sha256,
                release.code_version,
                release.input_files,
                release.input_sha256,
            ],
        )
    return release
