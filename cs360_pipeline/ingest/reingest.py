"""Read a provider's archived files again through its current contract (``cs360 reingest``).

A contract corrected after files were loaded (a header renamed, a code mapped, a rule eased)
changes nothing for those files until they are read again: the rows in the restricted database
were read under the contract of their day, and the ledger records which (``contract_sha256``).
Re-ingest replays every archived file of the provider in the order it was delivered, each at
its first delivery's time, so the revision rules decide again which months each file provides:
the result is what the current contract makes of the same deliveries.

The replay runs on a copy of the restricted database, which replaces the live one in one rename
under the deployment's writer lock. A run that dies before the rename leaves the live database
as it was; after it, the replay is whole. Nothing in the archive moves: a file the current
contract refuses keeps its bytes there, and its ledger row says why. Files refused when they
were delivered stay in quarantine; delivering them again retries them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cs360_pipeline.durable import fsync_path
from cs360_pipeline.faults import fault_point
from cs360_pipeline.ingest import ledger
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.loader import AGE_MACRO, FileOutcome, recover, replay_file
from cs360_pipeline.registry import Provider
from cs360_pipeline.sql import confine_file_access, connect, ident, table_rows

SCRATCH_NAME = ".reingest.duckdb"  # the copy being replayed, beside the live database


class ReingestError(RuntimeError):
    """An archived file is missing or is not the bytes the ledger recorded: nothing replaced."""


@dataclass
class DatasetReplay:
    """What re-ingest made of one dataset: its files' outcomes, its rows before and after."""

    provider: str
    dataset: str
    rows_before: int
    rows_after: int = 0
    outcomes: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def summary(self) -> str:
        refused = self.count("quarantined")
        words = f"{self.count('loaded')} loaded, {self.count('duplicate')} duplicate"
        if refused:
            words += f", {refused} refused by the current contract (kept in the archive)"
        return (
            f"{self.provider}/{self.dataset}: {len(self.outcomes)} archived files read again "
            f"({words}); rows {self.rows_before:,} -> {self.rows_after:,}"
        )


def reingest(
    raw_db: Path,
    providers: list[Provider],
    folder_of: Callable[[str], DropFolder],
    time_zone: str,
    log: Callable[[str], None] = print,
) -> list[DatasetReplay]:
    """Replay the providers' archived files on a copy of ``raw_db``, then swap the copy in.

    The caller holds the deployment's writer lock. Raises :class:`ReingestError`, with the live
    database untouched, when an archived file is missing or its bytes changed.
    """
    scratch = raw_db.with_name(SCRATCH_NAME)
    _discard(scratch)  # a copy a killed run left behind
    if not raw_db.exists():
        return []
    with closing(connect(raw_db)) as con:
        con.execute("CHECKPOINT")  # everything in the main file: the copy needs no WAL
    shutil.copyfile(raw_db, scratch)
    try:
        with closing(connect(scratch)) as con:
            folders = {p.provider: folder_of(p.provider) for p in providers}
            confine_file_access(con, [scratch.parent, *(f.work for f in folders.values())])
            ledger.ensure_ledger(con)
            con.execute(AGE_MACRO)
            replays = []
            for provider in providers:
                folder = folders[provider.provider]
                replays += _replay_provider(con, provider, folder, time_zone, log)
            con.execute("CHECKPOINT")
        fault_point("reingest:replayed")
        os.replace(scratch, raw_db)
        fsync_path(raw_db.parent)  # the rename is what a restart finds
    finally:
        _discard(scratch)
    return replays


def _replay_provider(
    con: duckdb.DuckDBPyConnection,
    provider: Provider,
    folder: DropFolder,
    time_zone: str,
    log: Callable[[str], None],
) -> list[DatasetReplay]:
    """Empty the provider's datasets in the copy, then load their archived files again."""
    name = provider.provider
    datasets = list(provider.datasets)
    folder.work.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:  # a file a stopped run committed but did not archive, archived
        for note in recover(con, name, provider.datasets[dataset].file_pattern, folder):
            log(f"{name}/{dataset}: {note}")
    files = ledger.archived_files(con, name, datasets)
    for f in files:
        kept = folder.archive_path(f.file_name, f.sha256)
        if not kept.is_file():
            raise ReingestError(
                f"{name}/{f.dataset}: {f.file_name} is not in {folder.archive} (its ledger row "
                f"names {kept.name}); nothing was re-ingested. Put the file back, or deliver it "
                "again."
            )
    replays = {d: DatasetReplay(name, d, table_rows(con, provider.table(d))) for d in datasets}
    con.execute("BEGIN TRANSACTION")
    ledger.forget_archived(con, name, datasets)
    for dataset in datasets:
        con.execute(f"DROP TABLE IF EXISTS {ident(provider.table(dataset))}")
    con.execute("COMMIT")
    for f in files:
        outcome = replay_file(con, provider, f.dataset, folder, f, time_zone)
        if outcome is None:
            raise ReingestError(
                f"{name}/{f.dataset}: {f.file_name}: the archived bytes are not the bytes the "
                "ledger recorded (their sha256 differs, or they changed while read); nothing was "
                "re-ingested. Restore the archived file, or deliver it again."
            )
        log(f"{name}/{f.dataset}: {f.file_name}: {outcome.message}")
        replays[f.dataset].outcomes.append(outcome)
    if any(provider.datasets[d].format == "geojson" for d in datasets):
        from cs360_pipeline.privacy.boundaries import derive_beat_tree

        note = derive_beat_tree(con, provider)
        if note:
            log(f"{name}: {note}")
    for replay in replays.values():
        replay.rows_after = table_rows(con, provider.table(replay.dataset))
    return list(replays.values())


def _discard(scratch: Path) -> None:
    for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
        leftover.unlink(missing_ok=True)

