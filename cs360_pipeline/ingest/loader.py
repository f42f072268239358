"""Load one provider dataset's pending files into the restricted database.

A file (CSV/TSV, Parquet or an Excel sheet) is read by DuckDB with the contract's explicit types
into one staged temp table; the provider's export is mapped to canonical columns by configuration
alone (header renames, value maps, date formats). Every rule is checked set-wise in SQL in one
pass. Then the file is either

* loaded: its good rows appended to ``<provider>__<dataset>`` (identifiers dropped, derived
  columns added, stamped with ``_source_file``, ``_file_sha256`` and ``_loaded_at``), the bad rows
  (at most ``max_bad_row_share`` of them) kept with their reasons in ``_rejects``, and the file
  archived; a re-delivery of months already loaded replaces them (a revision); or
* quarantined whole, with a reason that names the file, the rule, the lines and the fix.

Names and values from the file never reach SQL unquoted: the file is read through a hex-named
link, its columns under positional names (``c0``, ``c1``...), and values only as data.

Every file is copied into ``.work/`` while it is hashed, and only that snapshot is read, loaded
and kept. The ledger row is committed (with the rows, for a load) before anything moves; then
the snapshot goes to archive or quarantine and the inbox file is removed if it is unchanged. A
run killed between two steps is finished by the next one from the ledger (``recover``). A file
sent again under its name supersedes the earlier one. Where a dataset revises by month, the
latest delivery of a month wins: a file's rows replace every earlier row of its months, whichever
file delivered them, so an annual file corrected by one month keeps its other eleven. Only bytes
identical to a current file none of whose months were replaced are a duplicate.

Each ledger row records the digest of the contract the file was read under. An archived file is
read again through a corrected contract by ``replay_file`` (for ``cs360 reingest``), at its
first delivery's time and without moving its bytes.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cs360_pipeline.faults import fault_point
from cs360_pipeline.ingest import ledger
from cs360_pipeline.ingest.dropfolder import (
    DropFolder,
    Snapshot,
    identity_of,
    new_delivery_id,
    printable_name,
)
from cs360_pipeline.ingest.readers import (
    Rejected,
    read_header,
)
from cs360_pipeline.ingest.rules import Verdict, duplicates_message, validate
from cs360_pipeline.ingest.staging import (
    BAD,
    DROPPED,
    DUPES,
    ROWS,
    STAGE,
    VALUE_CHARS,
    WITHHELD,
    Staged,
    check_size,
    stage_file,
)
from cs360_pipeline.registry import Dataset, Provider
from cs360_pipeline.sql import ident, literal, table_exists

__all__ = ["FileOutcome", "Rejected", "ingest_dataset", "read_header"]

AGE_MACRO = """
CREATE OR REPLACE TEMP MACRO age_years(birth, at_time) AS (
    date_diff('year', birth, CAST(at_time AS DATE))
    - CASE WHEN strftime(CAST(at_time AS DATE), '%m%d') < strftime(birth, '%m%d') THEN 1 ELSE 0 END
)
"""


@dataclass(frozen=True)
class FileOutcome:
    file_name: str
    status: str  # loaded | quarantined | duplicate
    rows_loaded: int
    message: str


@dataclass(frozen=True)
class _Delivery:
    """One inbox entry on its way through: which dataset takes it and what it is called."""

    provider: Provider
    dataset_name: str
    dataset: Dataset
    folder: DropFolder
    path: Path
    name: str  # printable rendering of the delivered name, as the ledger stores it
    delivery_id: str
    time_zone: str = "UTC"  # the city's: offsets in timestamps are converted to it
    # A replayed file keeps the time it was first delivered: its ledger row and its rows'
    # ``_loaded_at`` say when the partner sent it, not when the contract was applied again.
    delivered_at: dt.datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.provider.provider}/{self.dataset_name}: {self.name}"

    @property
    def loaded_at(self) -> str:
        """SQL expression for the ``_loaded_at`` stamp of the file's rows."""
        if self.delivered_at is None:
            return "now()"
        return f"CAST({literal(self.delivered_at.isoformat())} AS TIMESTAMPTZ)"

    def ledger_entry(self, sha256: str, size: int, identity: str | None) -> dict[str, object]:
        entry: dict[str, object] = {
            "file_name": self.name,
            "provider": self.provider.provider,
            "dataset": self.dataset_name,
            "sha256": sha256,
            "size_bytes": size,
            "delivery_id": self.delivery_id,
            "inbox_identity": identity,
            "contract_sha256": contract_digest(self.dataset),
        }
        if self.delivered_at is not None:
            entry["processed_at"] = self.delivered_at
            entry["reingested_at"] = dt.datetime.now(dt.UTC)
        return entry


def contract_digest(dataset: Dataset) -> str:
    """A digest of the dataset's contract as parsed: the rules a file's rows were loaded under.

    Kept per file in the ledger and hashed into the release id, so the same files loaded under
    two contracts never give one id; a file whose digest differs from today's contract was
    loaded under an earlier one (``cs360 reingest`` reads it again).
    """
    return hashlib.sha256(dataset.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Replaced:
    """What a load takes over from the dataset's earlier current files."""

    names: list[str]  # files whose rows it replaced, whole or some months (the revision_of)
    months: list[str]  # months (YYYY-MM) whose earlier rows it replaced
    ids: list[str]  # files left without a row: now superseded by this one
    partly: dict[str, list[str]]  # delivery id -> months replaced, of files still current
    same_name: bool = False  # an earlier file of this name was replaced whole


NOTHING_REPLACED = _Replaced([], [], [], {})


def ingest_dataset(
    con: duckdb.DuckDBPyConnection,
    provider: Provider,
    dataset_name: str,
    folder: DropFolder,
    log: Callable[[str], None] = print,
    time_zone: str = "UTC",
    notice: Callable[[str], None] | None = None,
) -> list[FileOutcome]:
    """Process every settled file of one dataset, oldest name first.

    ``time_zone`` is the city's (its policy's ``tables.city.time_zone``; the refresh passes it).
    ``notice`` (default ``log``) gets the lines an operator must see even when routine ones
    are not shown: what an interrupted run left and was finished, and files left waiting.

    First whatever a stopped run left half done is finished. A file that fails for a reason
    outside its contract (a database error, a full disk) stays in the inbox and is reported,
    the other files are still processed, and that error is raised at the end so the run fails
    where an operator sees it: one file never holds up another.
    """
    dataset = provider.datasets[dataset_name]
    notice = notice or log
    ledger.ensure_ledger(con)
    con.execute(AGE_MACRO)
    for note in recover(con, provider.provider, dataset.file_pattern, folder):
        notice(f"{provider.provider}/{dataset_name}: {note}")
    outcomes = []
    failures: list[Exception] = []
    try:
        for note in _settle_overlapping_months(con, provider, dataset_name):
            notice(f"{provider.provider}/{dataset_name}: {note}")
    except Exception as exc:  # the files are still tried; the error is raised at the end
        notice(f"{provider.provider}/{dataset_name}: months loaded twice left as they are: {exc}")
        failures.append(exc)
    for path, regular in _entries(folder, dataset.file_pattern):
        delivery = _Delivery(
            provider,
            dataset_name,
            dataset,
            folder,
            path,
            printable_name(path.name),
            new_delivery_id(),
            time_zone,
        )
        try:
            outcome = _ingest_file(con, delivery) if regular else _refuse(con, delivery, None)
        except Exception as exc:
            notice(f"{delivery.label}: left in the inbox: {type(exc).__name__}: {exc}")
            failures.append(exc)
            continue
        if outcome is None:
            notice(f"{delivery.label}: changed while it was copied (still being written); it waits")
            continue
        log(f"{delivery.label}: {outcome.message}")
        outcomes.append(outcome)
    if failures:
        raise failures[0]
    return outcomes


def _entries(folder: DropFolder, pattern: str) -> list[tuple[Path, bool]]:
    """(path, is a regular file) of every settled inbox entry the dataset takes, by name."""
    files = [(p, True) for p in folder.pending(pattern)]
    strays = [(p, False) for p in folder.strays(pattern)]
    return sorted(files + strays)


# -- one file ---------------------------------------------------------------------------------


def _ingest_file(con: duckdb.DuckDBPyConnection, d: _Delivery) -> FileOutcome | None:
    """Snapshot, then load, quarantine or skip as a duplicate; None if it is still changing."""
    try:
        snap = d.folder.take_snapshot(d.path, d.delivery_id, d.name)
    except PermissionError:
        return _refuse(con, d, UNREADABLE)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None  # gone or replaced since the listing: the next run sees what is there
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a symlink since the listing
            return None
        raise
    if snap is None:
        return None
    fault_point("ingest:snapshot_taken")
    entry = {**d.ledger_entry(snap.scan.sha256, snap.scan.size, snap.identity),
             "snapshot": str(snap.path)}  # fmt: skip
    try:
        outcome, target, reason = _settle_file(con, d, snap, entry)
    except BaseException:
        d.folder.drop_snapshot(d.delivery_id)  # nothing was committed: the inbox file stays
        raise
    if outcome.status == "quarantined":
        _keep(d, snap, target, reason, "ingest:quarantine_committed", "ingest:quarantined")
    else:
        _keep(d, snap, target, None, "ingest:committed", "ingest:archived")
    return outcome


def replay_file(
    con: duckdb.DuckDBPyConnection,
    provider: Provider,
    dataset_name: str,
    folder: DropFolder,
    archived: ledger.Archived,
    time_zone: str,
) -> FileOutcome | None:
    """Read an archived file again through the dataset's current contract (``cs360 reingest``).

    Its kept bytes are copied into ``.work/`` like a delivery and decided as if delivered now at
    its first delivery's time: loaded, a duplicate, or refused. They stay where they are kept,
    which the new ledger row names, refused or not. None, with nothing recorded, if the kept
    bytes are not the ones the ledger recorded.
    """
    kept = folder.archive_path(archived.file_name, archived.sha256)
    d = _Delivery(
        provider,
        dataset_name,
        provider.datasets[dataset_name],
        folder,
        kept,
        archived.file_name,
        new_delivery_id(),
        time_zone,
        delivered_at=archived.delivered_at,
    )
    snap = folder.take_snapshot(kept, d.delivery_id, d.name)
    try:
        if snap is None or snap.scan.sha256 != archived.sha256:
            return None
        entry = {**d.ledger_entry(archived.sha256, snap.scan.size, None), "snapshot": None}
        return _settle_file(con, d, snap, entry, kept)[0]
    finally:
        folder.drop_snapshot(d.delivery_id)


def _settle_file(
    con: duckdb.DuckDBPyConnection,
    d: _Delivery,
    snap: Snapshot,
    entry: dict[str, object],
    kept_at: Path | None = None,
) -> tuple[FileOutcome, Path, str | None]:
    """Load, refuse or skip the snapshot as a duplicate, its ledger row committed.

    Returns the outcome, where the bytes are to be kept (``kept_at`` if they are already) and
    the reason a refused file is kept with.
    """
    sha = snap.scan.sha256
    current = ledger.current_copy(con, d.provider.provider, d.dataset_name, sha)
    if current is not None:
        message = f"duplicate of {current} (same sha256), nothing loaded"
        target = kept_at or d.folder.archive_path(d.name, sha)
        ledger.record(con, **entry, status="duplicate", reason=message, stored_as=str(target))
        return FileOutcome(d.name, "duplicate", 0, message), target, None
    try:
        rows_loaded, message = _load_file(con, d, snap, entry, kept_at)
    except Rejected as exc:
        reason = str(exc)
        target = kept_at or d.folder.quarantine_path(d.name, sha)
        ledger.record(con, **entry, status="quarantined", reason=reason, stored_as=str(target))
        return FileOutcome(d.name, "quarantined", 0, f"quarantined: {reason}"), target, reason
    target = kept_at or d.folder.archive_path(d.name, sha)
    return FileOutcome(d.name, "loaded", rows_loaded, message), target, None


def _keep(
    d: _Delivery, snap: Snapshot, target: Path, reason: str | None, committed: str, kept: str
) -> None:
    """After the ledger row is committed: the snapshot to its place, then the inbox file out.

    Each step can be cut short by a crash; the ledger row says how to finish it (``recover``).
    """
    fault_point(committed)
    d.folder.keep(snap.path, target, reason)
    fault_point(kept)
    d.folder.remove_if_unchanged(d.path, snap.identity)


def _load_file(
    con: duckdb.DuckDBPyConnection,
    d: _Delivery,
    snap: Snapshot,
    entry: dict[str, object],
    kept_at: Path | None = None,
) -> tuple[int, str]:
    """Check and load the snapshot; rows, rejects and ledger row commit together or not at all."""
    name, sha, dataset = d.name, snap.scan.sha256, d.dataset
    in_transaction = False
    try:
        check_size(name, snap.scan.size, dataset)
        staged = stage_file(con, d.folder, snap.path, snap.scan, dataset, d.time_zone)
        verdict = validate(con, name, dataset, staged)
        con.execute("BEGIN TRANSACTION")
        in_transaction = True
        rows_loaded, first, last, replaced = _load(con, d, sha, verdict)
        through = _data_through(con, d, sha) if last is not None else None
        _keep_rejects(con, name, d.provider.provider, d.dataset_name, sha, dataset, verdict)
        message = _loaded_message(rows_loaded, staged, verdict, dataset, replaced)
        ledger.record(
            con,
            **entry,
            rows_read=verdict.total,
            rows_loaded=rows_loaded,
            rows_rejected=verdict.bad_rows,
            status="loaded",
            reason=message if message != f"loaded {rows_loaded:,} rows" else None,
            first_period=first,
            last_period=last,
            data_through=through,
            revision_of=", ".join(replaced.names) or None,
            stored_as=str(kept_at or d.folder.archive_path(name, sha)),
        )
        ledger.mark_superseded(con, replaced.ids, d.delivery_id, name)
        for delivery_id, months in replaced.partly.items():
            ledger.mark_months_replaced(con, delivery_id, months)
        con.execute("COMMIT")
        in_transaction = False
    except BaseException:
        if in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.execute(
            f"DROP VIEW IF EXISTS {ROWS}; DROP TABLE IF EXISTS {STAGE}; "
            f"DROP TABLE IF EXISTS {BAD}; DROP TABLE IF EXISTS {DUPES}; "
            f"DROP TABLE IF EXISTS {DROPPED}"
        )
    return rows_loaded, message


# -- entries that are not files ---------------------------------------------------------------

UNREADABLE = (
    "the file cannot be read (permission denied), so it was not loaded. Give the pipeline's "
    "account read access, or deliver it again as a plain readable file."
)


def _stray_reason(path: Path) -> str:
    """Why an inbox entry that is not a regular file is refused, in a data owner's words."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return (
            "this is a symbolic link, not a file; links are never followed, so nothing was "
            "read. Deliver the file itself into the inbox."
        )
    if stat.S_ISDIR(mode):
        return (
            "this is a folder, not a file; folders are not opened. Deliver each file directly "
            "into the inbox."
        )
    return "this is not a regular file (a pipe, socket or device). Deliver a plain file."


def _refuse(con: duckdb.DuckDBPyConnection, d: _Delivery, why: str | None) -> FileOutcome:
    """Quarantine an inbox entry that cannot be read as a file, moving the entry itself."""
    info = os.lstat(d.path)
    reason = f"{d.name}: {why or _stray_reason(d.path)}"
    target = d.folder.quarantine_path(d.name, d.delivery_id)
    size = info.st_size if stat.S_ISREG(info.st_mode) else 0
    ledger.record(
        con,
        **d.ledger_entry("", size, identity_of(info)),
        status="quarantined",
        reason=reason,
        stored_as=str(target),
    )
    fault_point("ingest:quarantine_committed")
    d.folder.keep(d.path, target, reason)
    fault_point("ingest:quarantined")
    return FileOutcome(d.name, "quarantined", 0, f"quarantined: {reason}")


# -- after a crash ----------------------------------------------------------------------------


def recover(
    con: duckdb.DuckDBPyConnection, provider: str, pattern: str, folder: DropFolder
) -> list[str]:
    """Finish what a stopped run left: the ledger row decides, the folders follow it.

    A snapshot whose row was committed goes to its archive or quarantine place (reason file
    rewritten); one without a row is thrown away, its inbox file is simply taken again. An
    inbox entry whose name and identity match a committed row was already taken: a copied file
    is removed (its bytes are kept), a refused entry is moved to quarantine. A re-send of the
    same bytes is a new file (new inode or mtime) and never matches.
    """
    notes = []
    for delivery_id, snapshot in folder.leftover_deliveries():
        row = ledger.committed_delivery(con, provider, delivery_id)
        if row is None or snapshot is None:
            folder.drop_snapshot(delivery_id)
            if row is None and snapshot is not None:
                notes.append(f"{snapshot.name}: an unfinished copy was removed from .work/")
            continue
        reason = row.reason if row.status == "quarantined" else None
        folder.keep(snapshot, Path(row.stored_as), reason)
        notes.append(f"{row.file_name}: kept as {Path(row.stored_as).name} (recorded earlier)")
    folder.clear_scratch()
    for path in folder.matching(pattern):
        note = _recover_inbox_entry(con, provider, folder, path)
        if note:
            notes.append(note)
    return notes


def _recover_inbox_entry(
    con: duckdb.DuckDBPyConnection, provider: str, folder: DropFolder, path: Path
) -> str | None:
    """Take an already recorded entry out of the inbox; None if it is a file not yet taken."""
    row = ledger.committed_inbox_file(
        con, provider, printable_name(path.name), identity_of(os.lstat(path))
    )
    if row is None:
        return None
    if row.snapshot is None:
        folder.keep(path, Path(row.stored_as), row.reason)
        return f"{row.file_name}: moved to quarantine (recorded earlier)"
    if not os.path.lexists(row.stored_as):
        return None  # its kept copy is missing: take the file again rather than lose it
    path.unlink()
    return f"{row.file_name}: removed from the inbox (recorded and kept earlier)"


# -- loading ----------------------------------------------------------------------------------


def _load(
    con: duckdb.DuckDBPyConnection, d: _Delivery, sha: str, verdict: Verdict
) -> tuple[int, object, object, _Replaced]:
    """Insert the good rows (replacing what they revise); a column the contract gained is added."""
    dataset = d.dataset
    table = d.provider.table(d.dataset_name)
    target = ident(table)
    kept = [ident(n) for n in dataset.kept_columns] + [ident(n) for n in dataset.derived]
    source = f"{ROWS} ANTI JOIN {BAD} USING (_rid)" if verdict.staged_bad else ROWS
    if verdict.dropped:
        source += f" ANTI JOIN {DROPPED} USING (_rid)"
    select = (
        f"SELECT {', '.join(kept)}, {literal(d.name)} AS _source_file, "
        f"{literal(sha)} AS _file_sha256, {d.loaded_at} AS _loaded_at FROM {source}"
    )
    if dataset.load == "replace":
        earlier = ledger.current_files(con, d.provider.provider, d.dataset_name)
        replaced = _Replaced([e[1] for e in earlier], [], [e[0] for e in earlier], {})
        con.execute(f"CREATE OR REPLACE TABLE {target} AS {select}")
    else:
        exists = table_exists(con, table)
        replaced = _replace_earlier(con, target, d, verdict) if exists else NOTHING_REPLACED
        if not exists:
            con.execute(f"CREATE TABLE {target} AS {select} LIMIT 0")
        existing = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_catalog = current_database() AND table_name = ?",
                [table],
            ).fetchall()
        }
        for name, kind, *_ in con.execute(f"DESCRIBE {select}").fetchall():
            if name not in existing:
                con.execute(f"ALTER TABLE {target} ADD COLUMN {ident(name)} {kind}")
        con.execute(f"INSERT INTO {target} BY NAME {select}")
    rows = verdict.total - verdict.bad_rows - verdict.dropped
    first = verdict.months[0] if verdict.months else None
    last = verdict.months[-1] if verdict.months else None
    return rows, first, last, replaced


def _data_through(con: duckdb.DuckDBPyConnection, d: _Delivery, sha: str) -> object:
    """The latest date the file's loaded rows cover (its period column, city local time).

    One date per file, like its months: delivery metadata, not a row. It tells a month that
    was delivered through the 5th from one delivered whole. Rows dated once per month, all on
    its first or all on its last day (a monthly snapshot: attendance by month start, a roster on
    the last day), cover their months
    whole, so such a file's date is the last day of its last month; so does every file of a
    dataset declared ``coverage: whole_months``.
    """
    if not d.dataset.period:
        return None
    whole = d.dataset.coverage == "whole_months"
    return con.execute(
        f"SELECT CASE WHEN {'true OR ' if whole else ''}"
        "(count(DISTINCT day) = count(DISTINCT date_trunc('month', day)) "
        "AND (bool_and(day(day) = 1) OR bool_and(day = last_day(day)))) "
        "THEN last_day(max(day)) ELSE max(day) END "
        f"FROM (SELECT CAST({ident(d.dataset.period)} AS DATE) AS day "
        f"FROM {ident(d.provider.table(d.dataset_name))} "
        "WHERE _source_file = ? AND _file_sha256 = ?)",
        [d.name, sha],
    ).fetchall()[0][0]


def _replace_earlier(
    con: duckdb.DuckDBPyConnection, target: str, d: _Delivery, verdict: Verdict
) -> _Replaced:
    """Delete the rows this file replaces (same transaction as the insert) and say whose they were.

    A file sent again under its name replaces that file whole. Where the dataset revises by
    month, every row of this file's months goes too, whichever file delivered it: the latest
    delivery of a month wins, so no month is ever counted from two files. An earlier file left
    without a row is superseded; one that keeps other months stays current, short of these.
    """
    current = ledger.current_files(con, d.provider.provider, d.dataset_name)
    month = _month_of(d.dataset)
    in_months = _in_months(month, verdict.months) if d.dataset.revises_months else None
    # With no current file there is nothing to revise (and a table made by hand is not read).
    touched = _months_by_file(con, target, month, in_months) if in_months and current else {}
    same_name = any(n == d.name for _, n, _ in current)
    if same_name:
        con.execute(f"DELETE FROM {target} WHERE _source_file = ?", [d.name])
    if touched:
        con.execute(f"DELETE FROM {target} WHERE {in_months}")
    ids: list[str] = []
    partly: dict[str, list[str]] = {}
    for delivery_id, name, sha in current:
        if name == d.name:
            ids.append(delivery_id)
        elif (name, sha) in touched:
            if _has_rows(con, target, name, sha):
                partly[delivery_id] = touched[(name, sha)]
            else:
                ids.append(delivery_id)
    names = sorted({n for i, n, _ in current if i in ids or i in partly})
    months = sorted({m for file_months in touched.values() for m in file_months})
    return _Replaced(names, months, ids, partly, same_name)


def _month_of(dataset: Dataset) -> str:
    """SQL expression: the first day of the month a row's period places it in."""
    return f"CAST(date_trunc('month', {ident(dataset.period or '')}) AS DATE)"


def _in_months(month: str, months: list) -> str | None:
    """SQL condition on a raw table: the row's month is one of these; None for no month."""
    if not months:
        return None
    month_list = f"CAST({[m.isoformat() for m in months]!r} AS DATE[])"
    return f"list_contains({month_list}, {month})"


def _months_by_file(
    con: duckdb.DuckDBPyConnection, target: str, month: str, in_months: str
) -> dict[tuple[str, str], list[str]]:
    """(file name, sha256) -> months (YYYY-MM) of rows already loaded in the new file's months.

    Read before anything is deleted, it is what each earlier file loses to the new one.
    """
    rows = con.execute(
        f"SELECT _source_file, _file_sha256, list(DISTINCT month ORDER BY month) FROM ("
        f"SELECT _source_file, _file_sha256, strftime({month}, '%Y-%m') "
        f"AS month FROM {target} WHERE {in_months}) GROUP BY ALL"
    ).fetchall()
    return {(name, sha): months for name, sha, months in rows}


def _settle_overlapping_months(
    con: duckdb.DuckDBPyConnection, provider: Provider, dataset_name: str
) -> list[str]:
    """A month two current files both still provide keeps only the later file's rows.

    Loads made while a file replaced only earlier files lying wholly within its months left
    such months counted twice (an annual file, then a corrected month). The rule of every load
    now settles them: the latest delivery of a month wins, and the earlier file loses that
    month or, with none left, is superseded by the file that took its last one.
    """
    dataset = provider.datasets[dataset_name]
    table = provider.table(dataset_name)
    if not dataset.revises_months or not ledger.periods_overlap(
        con, provider.provider, dataset_name
    ):
        return []
    current = ledger.current_files(con, provider.provider, dataset_name)
    order = {(name, sha): k for k, (_, name, sha) in enumerate(current)}
    month = _month_of(dataset)
    shared = con.execute(
        f"SELECT strftime({month}, '%Y-%m') AS m, list(DISTINCT [_source_file, _file_sha256]) "
        f"FROM {ident(table)} WHERE {month} IS NOT NULL GROUP BY m "
        "HAVING count(DISTINCT [_source_file, _file_sha256]) > 1 ORDER BY m"
    ).fetchall()
    losses: dict[int, list[str]] = {}  # index in current -> months it loses
    taken_by: dict[int, int] = {}  # index in current -> the file that took its latest month
    for m, files in shared:
        ranks = sorted(order[(n, s)] for n, s in files if (n, s) in order)
        for loser in ranks[:-1]:
            losses.setdefault(loser, []).append(m)
            taken_by[loser] = ranks[-1]
    if not losses:
        return []
    return _settle(con, ident(table), month, current, losses, taken_by)


def _settle(
    con: duckdb.DuckDBPyConnection,
    target: str,
    month: str,
    current: list[tuple[str, str, str]],
    losses: dict[int, list[str]],
    taken_by: dict[int, int],
) -> list[str]:
    """Delete the earlier files' rows of the months they lost and record it, in one transaction."""
    notes = []
    con.execute("BEGIN TRANSACTION")
    try:
        for k, months in losses.items():
            delivery_id, name, sha = current[k]
            con.execute(
                f"DELETE FROM {target} WHERE _source_file = ? AND _file_sha256 = ? "
                f"AND list_contains(?, strftime({month}, '%Y-%m'))",
                [name, sha, months],
            )
            by_id, by_name, _ = current[taken_by[k]]
            if _has_rows(con, target, name, sha):
                ledger.mark_months_replaced(con, delivery_id, months)
            else:
                ledger.mark_superseded(con, [delivery_id], by_id, by_name)
            notes.append(
                f"{name}: month(s) {', '.join(months)} were also loaded from a later file; "
                "its rows of them were removed (the latest delivery of a month wins)"
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return notes


def _has_rows(con: duckdb.DuckDBPyConnection, target: str, name: str, sha: str) -> bool:
    return bool(
        con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {target} "
            "WHERE _source_file = ? AND _file_sha256 = ? LIMIT 1)",
            [name, sha],
        ).fetchall()[0][0]
    )


def _keep_rejects(
    con: duckdb.DuckDBPyConnection,
    file_name: str,
    provider: str,
    dataset_name: str,
    sha: str,
    dataset: Dataset,
    verdict: Verdict,
) -> None:
    """Bad rows of a loaded file, one row per broken rule, in the restricted ``_rejects``.

    ``value`` keeps the shape of the offending value (its length and kinds of characters) or
    NULL, never the value: a row shifted by a stray delimiter puts an address or a date of birth
    in any column, and nobody expects identifiers in a table of rejects.
    """
    stamp = f"{literal(file_name)}, {literal(provider)}, {literal(dataset_name)}, {literal(sha)}"
    if verdict.staged_bad:
        for i, (rule, count) in enumerate(zip(verdict.rules, verdict.counts, strict=True)):
            if not count:
                continue
            con.execute(
                f"INSERT INTO {ledger.REJECTS_TABLE} SELECT {stamp}, _line, ?, ?, "
                f"left(CAST(v{i} AS VARCHAR), {VALUE_CHARS}), now() FROM {BAD} WHERE f{i}",
                [rule.description, rule.column],
            )
    identifiers = {n for n, c in dataset.columns.items() if c.identifier}
    for reject in verdict.parse_rejects:
        value = WITHHELD if reject.column in identifiers else reject.sample
        con.execute(
            f"INSERT INTO {ledger.REJECTS_TABLE} VALUES ({stamp}, ?, ?, ?, ?, now())",
            [reject.line, f"does not parse ({reject.kind})", reject.column, value],
        )


def _loaded_message(
    rows: int, staged: Staged, verdict: Verdict, dataset: Dataset, replaced: _Replaced
) -> str:
    """What a loaded file became, for the log and the ledger: counts, rules and lines only.

    Its parts (the rule problems, the reader's refusals, the warnings) name columns, rules and
    lines and describe values by shape, so the message may leave the restricted zone.
    """
    message = f"loaded {rows:,} rows"
    dropped = duplicates_message(dataset, verdict)
    if dropped:
        message += f"; {dropped}"
    if verdict.bad_rows:
        message += (
            f"; rejected {verdict.bad_rows:,} of {verdict.total:,} rows "
            f"({verdict.bad_rows / verdict.total:.1%}, within max_bad_row_share "
            f"{dataset.max_bad_row_share:.1%}) into _rejects: " + "; ".join(verdict.problems)
        )
    if replaced.months:
        message += (
            f"; revision of {', '.join(replaced.names) or 'rows no current file provides'}: "
            f"replaced month(s) {', '.join(replaced.months)}"
        )
    elif replaced.same_name:
        message += (
            f"; revision of the earlier {replaced.names[0]} (same file name): its rows replaced"
        )
    for warning in staged.warnings:
        message += f"; warning: {warning}"
    return message
