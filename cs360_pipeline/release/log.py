"""The release log: what each published release was made from and which checks it passed.

The warehouse file is replaced by every release, so the log lives in a small DuckDB file beside
it, ``releases.duckdb`` (table ``release_log``), rewritten the same way as the warehouse: a new
file, checkpointed, renamed over the old one. A reader never blocks a refresh and never sees a
half-written log. Publishing the same release again (nothing changed) updates its entry instead
of adding one.

Only the last ``keep`` releases stay in the log (``CS360_RELEASES_KEPT``, default 12, never fewer
than the releases the privacy policy treats as still public, plus the current one).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cs360_pipeline.settings import Paths, releases_kept
from cs360_pipeline.sql import connect, literal

LOG_FILE = "releases.duckdb"
DEFAULT_KEEP = 12

SCHEMA = """
CREATE TABLE release_log (
    release_id          VARCHAR PRIMARY KEY,
    published_at        TIMESTAMP NOT NULL,
    first_published_at  TIMESTAMP NOT NULL,
    times_published     INTEGER NOT NULL,
    data_as_of          DATE,
    input_files         STRUCT(provider VARCHAR, file_name VARCHAR, sha256 VARCHAR)[] NOT NULL,
    input_sha256        VARCHAR NOT NULL,
    policy_sha256       VARCHAR NOT NULL,
    code_version        VARCHAR NOT NULL,
    metric_values_rows  BIGINT,
    checks              STRUCT(name VARCHAR, passed BOOLEAN, severity VARCHAR, detail VARCHAR)[]
                        NOT NULL,
    notes               STRUCT(metric_id VARCHAR, audience VARCHAR, period_from DATE,
                               period_to DATE, note VARCHAR)[] NOT NULL,
    checks_summary      VARCHAR NOT NULL
)
"""
COMMENTS = {
    "published_at": "When this release was last published (UTC).",
    "first_published_at": "When this release was first published (UTC).",
    "times_published": "How many refreshes published this same release (same inputs and code).",
    "data_as_of": "The date the delivery scorecard (provider_status) was computed for.",
    "input_files": "Every delivered file the release was built from, with its sha256.",
    "input_sha256": "sha256 over the input files' hashes.",
    "policy_sha256": "sha256 of privacy/policy.yml.",
    "code_version": "Package version, git commit and a hash of the dbt and provider config.",
    "checks": "The checks of the refresh that published it: privacy gate and audit, dbt tests, "
    "expectations on the published tables.",
    "notes": "The PST's notes on its metrics that the release published (metric_notes).",
}
COLUMNS = (
    "release_id", "published_at", "first_published_at", "times_published", "data_as_of",
    "input_files", "input_sha256", "policy_sha256", "code_version", "metric_values_rows",
    "checks", "notes", "checks_summary",
)  # fmt: skip


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    severity: str  # ERROR | WARN
    detail: str = ""


@dataclass(frozen=True)
class InputFile:
    provider: str
    file_name: str
    sha256: str


@dataclass(frozen=True)
class Note:
    metric_id: str
    audience: str
    period_from: dt.date
    period_to: dt.date
    note: str


@dataclass
class Entry:
    release_id: str
    published_at: dt.datetime
    first_published_at: dt.datetime
    times_published: int
    data_as_of: dt.date | None
    input_files: list[InputFile]
    input_sha256: str
    policy_sha256: str
    code_version: str
    metric_values_rows: int | None
    checks: list[Check] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def checks_summary(self) -> str:
        return summarize(self.checks)

    def row(self) -> list[object]:
        return [
            self.release_id,
            self.published_at,
            self.first_published_at,
            self.times_published,
            self.data_as_of,
            [vars(f) for f in self.input_files],
            self.input_sha256,
            self.policy_sha256,
            self.code_version,
            self.metric_values_rows,
            [vars(c) for c in self.checks],
            [vars(n) for n in self.notes],
            self.checks_summary,
        ]


def summarize(checks: list[Check]) -> str:
    """'privacy_gate passed; privacy_audit passed; dbt tests 41/41 passed; ...'."""
    if not checks:
        return "no checks recorded"
    groups: dict[str, list[Check]] = {}
    for check in checks:
        groups.setdefault(check.name.split(":", 1)[0], []).append(check)
    parts = []
    for group, members in groups.items():
        passed = sum(c.passed for c in members)
        if len(members) == 1:
            parts.append(f"{group} {'passed' if passed else 'FAILED'}")
        else:
            failed = " (FAILED)" if passed < len(members) else ""
            parts.append(f"{group} {passed}/{len(members)} passed{failed}")
    return "; ".join(parts)


def log_path(paths: Paths) -> Path:
    return paths.data_dir / LOG_FILE


def keep_releases(releases_public: int) -> int:
    """How many releases the log keeps: the setting, but never fewer than the policy's window."""
    floor = releases_public + 1
    wanted = releases_kept()
    return max(DEFAULT_KEEP if wanted is None else wanted, floor)


def read(paths: Paths) -> list[Entry]:
    """Every entry, newest first. An absent log is an empty one."""
    path = log_path(paths)
    if not path.exists():
        return []
    with closing(connect(path, read_only=True)) as con:
        present = {r[0] for r in con.execute("DESCRIBE release_log").fetchall()}
        # A log written before notes were kept has none.
        wanted = [c if c in present else f"[] AS {c}" for c in COLUMNS[:-1]]
        rows = con.execute(
            f"SELECT {', '.join(wanted)} FROM release_log ORDER BY published_at DESC, release_id"
        ).fetchall()
    return [
        Entry(
            release_id=r[0],
            published_at=r[1],
            first_published_at=r[2],
            times_published=r[3],
            data_as_of=r[4],
            input_files=[InputFile(**f) for f in r[5]],
            input_sha256=r[6],
            policy_sha256=r[7],
            code_version=r[8],
            metric_values_rows=r[9],
            checks=[Check(**c) for c in r[10]],
            notes=[Note(**n) for n in r[11]],
        )
        for r in rows
    ]


def previous(entries: list[Entry], release_id: str) -> Entry | None:
    """The release published before ``release_id`` (the newest other entry)."""
    others = [e for e in entries if e.release_id != release_id]
    return others[0] if others else None


@contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    """One writer at a time (two runs may finish together); readers never take the lock."""
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.data_dir / ".releases.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(paths: Paths, entry: Entry, keep: int) -> list[Entry]:
    """Add or update ``entry`` and keep the newest ``keep`` releases; returns the new log.

    Re-publishing a release keeps its first publication time and adds to its count. Checks
    this run did not evaluate (an asset materialized on its own, expectations switched off)
    keep their earlier result: the release, and so its tables, are the same.
    """
    with _locked(paths):
        entries = read(paths)
        earlier = next((e for e in entries if e.release_id == entry.release_id), None)
        if earlier is not None:
            entry.first_published_at = earlier.first_published_at
            entry.times_published = earlier.times_published + 1
            entry.checks = _merge(earlier.checks, entry.checks)
        entries = [entry, *(e for e in entries if e.release_id != entry.release_id)]
        entries.sort(key=lambda e: e.published_at, reverse=True)
        entries = entries[: max(keep, 1)]
        _write(paths, entries)
    return entries


def add_checks(paths: Paths, release_id: str, checks: list[Check]) -> Entry | None:
    """Replace the checks named like ``checks`` (by group) on an entry: later steps report here."""
    with _locked(paths):
        entries = read(paths)
        entry = next((e for e in entries if e.release_id == release_id), None)
        if entry is None:
            return None
        entry.checks = _merge(entry.checks, checks)
        _write(paths, entries)
    return entry


def _merge(earlier: list[Check], newer: list[Check]) -> list[Check]:
    """``newer`` replaces every earlier check of the same group ('dbt tests', 'expectations')."""
    groups = {c.name.split(":", 1)[0] for c in newer}
    kept = [c for c in earlier if c.name.split(":", 1)[0] not in groups]
    return sorted([*kept, *newer], key=lambda c: c.name)


def _write(paths: Paths, entries: list[Entry]) -> None:
    target = log_path(paths)
    staging = target.with_name(f".{target.name}.next")
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)
    with closing(connect(staging, for_analysts=True)) as con:
        con.execute(SCHEMA)
        con.execute(
            "COMMENT ON TABLE release_log IS "
            + literal("Every release published from this deployment, newest first by time.")
        )
        for column, comment in COMMENTS.items():
            con.execute(f"COMMENT ON COLUMN release_log.{column} IS {literal(comment)}")
        con.executemany(
            f"INSERT INTO release_log VALUES ({', '.join('?' for _ in COLUMNS)})",
            [e.row() for e in entries],
        )
        con.execute("CHECKPOINT")
    os.replace(staging, target)


def entry_from_manifest(manifest: dict[str, object]) -> Entry:
    """The log entry of a release, from the manifest its warehouse file carries."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    return Entry(
        release_id=str(manifest["release_id"]),
        published_at=now,
        first_published_at=now,
        times_published=1,
        data_as_of=manifest["data_as_of"],  # type: ignore[arg-type]
        input_files=[InputFile(**f) for f in manifest["input_files"]],  # type: ignore[attr-defined]
        input_sha256=str(manifest["input_sha256"]),
        policy_sha256=str(manifest["policy_sha256"]),
        code_version=str(manifest["code_version"]),
        metric_values_rows=manifest["metric_values_rows"],  # type: ignore[arg-type]
        checks=[Check(**c) for c in manifest["checks"]],  # type: ignore[attr-defined]
        notes=[Note(**n) for n in manifest.get("notes") or []],  # type: ignore[attr-defined]
    )
