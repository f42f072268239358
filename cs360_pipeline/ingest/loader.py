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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cs360_pipeline.ingest import ledger
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.readers import (
    Rejected,
    read_header,
    scan,
)
from cs360_pipeline.ingest.rules import Verdict, validate
from cs360_pipeline.ingest.staging import (
    BAD,
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
from cs360_pipeline.sql import ident, literal

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


def ingest_dataset(
    con: duckdb.DuckDBPyConnection,
    provider: Provider,
    dataset_name: str,
    folder: DropFolder,
    log: Callable[[str], None] = print,
) -> list[FileOutcome]:
    """Process every pending file of one dataset, oldest name first."""
    dataset = provider.datasets[dataset_name]
    ledger.ensure_ledger(con)
    con.execute(AGE_MACRO)
    outcomes = []
    for path in folder.pending(dataset.file_pattern):
        outcome = _ingest_file(con, provider, dataset_name, dataset, folder, path)
        log(f"{provider.provider}/{dataset_name}: {outcome.file_name}: {outcome.message}")
        outcomes.append(outcome)
    return outcomes


def _ingest_file(
    con: duckdb.DuckDBPyConnection,
    provider: Provider,
    dataset_name: str,
    dataset: Dataset,
    folder: DropFolder,
    path: Path,
) -> FileOutcome:
    found = scan(path)
    sha = found.sha256
    entry = {
        "file_name": path.name,
        "provider": provider.provider,
        "dataset": dataset_name,
        "sha256": sha,
        "size_bytes": found.size,
    }
    previous = ledger.already_loaded(con, sha)
    if previous is not None:
        stored = folder.archive_file(path, sha)
        message = f"duplicate of {previous} (same sha256), nothing loaded"
        ledger.record(con, **entry, status="duplicate", reason=message, stored_as=str(stored))
        return FileOutcome(path.name, "duplicate", 0, message)

    table = provider.table(dataset_name)
    in_transaction = False
    try:
        check_size(path.name, found.size, dataset)
        staged = stage_file(con, folder, path, found, dataset)
        verdict = validate(con, path.name, dataset, staged)
        con.execute("BEGIN TRANSACTION")
        in_transaction = True
        rows_loaded, first, last, revision_of = _load(
            con, table, provider.provider, dataset_name, dataset, path.name, sha, verdict
        )
        _keep_rejects(con, path.name, provider.provider, dataset_name, sha, dataset, verdict)
        message = _loaded_message(rows_loaded, staged, verdict, dataset, revision_of)
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
            revision_of=", ".join(revision_of) or None,
            stored_as=str(folder.archive_path(path, sha)),
        )
        if revision_of:
            ledger.mark_superseded(con, provider.provider, dataset_name, revision_of, path.name)
        con.execute("COMMIT")
        in_transaction = False
    except Rejected as exc:
        if in_transaction:
            con.execute("ROLLBACK")
        reason = str(exc)
        stored = folder.quarantine_file(path, sha, reason)
        ledger.record(con, **entry, status="quarantined", reason=reason, stored_as=str(stored))
        return FileOutcome(path.name, "quarantined", 0, f"quarantined: {reason}")
    except BaseException:
        if in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.execute(
            f"DROP VIEW IF EXISTS {ROWS}; DROP TABLE IF EXISTS {STAGE}; "
            f"DROP TABLE IF EXISTS {BAD}; DROP TABLE IF EXISTS {DUPES}"
        )
    folder.archive_file(path, sha)
    return FileOutcome(path.name, "loaded", rows_loaded, message)


def _load(
    con: duckdb.DuckDBPyConnection,
    table: str,
    provider: str,
    dataset_name: str,
    dataset: Dataset,
    file_name: str,
    sha: str,
    verdict: Verdict,
) -> tuple[int, object, object, list[str]]:
    """Insert the good rows (replacing revised months); a column the contract gained is added."""
    target = ident(table)
    kept = [ident(n) for n in dataset.kept_columns] + [ident(n) for n in dataset.derived]
    source = f"{ROWS} ANTI JOIN {BAD} USING (_rid)" if verdict.staged_bad else ROWS
    select = (
        f"SELECT {', '.join(kept)}, {literal(file_name)} AS _source_file, "
        f"{literal(sha)} AS _file_sha256, now() AS _loaded_at FROM {source}"
    )
    revision_of: list[str] = []
    if dataset.load == "replace":
        con.execute(f"CREATE OR REPLACE TABLE {target} AS {select}")
    else:
        exists = _table_exists(con, table)
        if exists and dataset.revises_months and verdict.months:
            revision_of = _replace_revised_months(
                con, target, provider, dataset_name, dataset, verdict.months
            )
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
    rows = verdict.total - verdict.bad_rows
    first = verdict.months[0] if verdict.months else None
    last = verdict.months[-1] if verdict.months else None
    return rows, first, last, revision_of


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_name = ?",
            [table],
        ).fetchall()[0][0]
    )


def _replace_revised_months(
    con: duckdb.DuckDBPyConnection,
    target: str,
    provider: str,
    dataset_name: str,
    dataset: Dataset,
    months: list,
) -> list[str]:
    """A revision: earlier files whose months all lie within this file's months are replaced.

    Then every row of this file's months is deleted before the insert (same transaction), so a
    corrected re-delivery never duplicates a period. A file covering new months only (or an
    earlier file reaching beyond them) is no revision and nothing is deleted.
    """
    earlier = ledger.contained_files(con, provider, dataset_name, months[0], months[-1])
    if not earlier:
        return []
    period = f"CAST(date_trunc('month', {ident(dataset.period)}) AS DATE)"
    month_list = f"CAST({[m.isoformat() for m in months]!r} AS DATE[])"
    touched = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT _source_file FROM {target} "
            f"WHERE list_contains({month_list}, {period}) ORDER BY 1"
        ).fetchall()
    ]
    con.execute(f"DELETE FROM {target} WHERE list_contains({month_list}, {period})")
    return sorted(set(touched) | set(earlier))


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
    rows: int, staged: Staged, verdict: Verdict, dataset: Dataset, revision_of: list[str]
) -> str:
    """What a loaded file became, for the log and the ledger: counts, rules and lines only.

    Its parts (the rule problems, the reader's refusals, the warnings) name columns, rules and
    lines and describe values by shape, so the message may leave the restricted zone.
    """
    message = f"loaded {rows:,} rows"
    if verdict.bad_rows:
        message += (
            f"; rejected {verdict.bad_rows:,} of {verdict.total:,} rows "
            f"({verdict.bad_rows / verdict.total:.1%}, within max_bad_row_share "
            f"{dataset.max_bad_row_share:.1%}) into _rejects: " + "; ".join(verdict.problems)
        )
    if revision_of:
        months = ", ".join(m.strftime("%Y-%m") for m in verdict.months)
        message += f"; revision of {', '.join(revision_of)}: replaced month(s) {months}"
    for warning in staged.warnings:
        message += f"; warning: {warning}"
    return message
