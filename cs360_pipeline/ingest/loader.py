"""Load one provider dataset's pending files into the restricted database.

A file is read by DuckDB with the contract's explicit types, checked set-wise in SQL, and then
either appended to ``<provider>__<dataset>`` (identifiers dropped, derived columns added, rows
stamped with ``_source_file``, ``_file_sha256`` and ``_loaded_at``) and archived, or quarantined
whole with a reason that names the file, the rule, the rows and the fix.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cs360_pipeline.ingest import ledger
from cs360_pipeline.ingest.dropfolder import DropFolder, sha256_of
from cs360_pipeline.registry import Dataset, Provider
from cs360_pipeline.sql import ident, literal

STAGE = "_stage"
READY = "_ready"
SAMPLE_ROWS = 5
HEADER_PROBE_BYTES = 1 << 20

AGE_MACRO = """
CREATE OR REPLACE TEMP MACRO age_years(birth, at_time) AS (
    date_diff('year', birth, CAST(at_time AS DATE))
    - CASE WHEN strftime(CAST(at_time AS DATE), '%m%d') < strftime(birth, '%m%d') THEN 1 ELSE 0 END
)
"""


class Rejected(Exception):
    """The file breaks its contract; the message is written to the quarantine reason file."""


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
    sha = sha256_of(path)
    size = path.stat().st_size
    entry = {
        "file_name": path.name,
        "provider": provider.provider,
        "dataset": dataset_name,
        "sha256": sha,
        "size_bytes": size,
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
        with folder.readable_copy(path, sha) as readable:
            rows_read = _stage(con, readable, path.name, dataset)
        _validate(con, path.name, dataset)
        _derive(con, path.name, dataset, sha)
        con.execute("BEGIN TRANSACTION")
        in_transaction = True
        rows_loaded, first, last = _load(con, table, dataset)
        ledger.record(
            con,
            **entry,
            rows_read=rows_read,
            rows_loaded=rows_loaded,
            status="loaded",
            first_period=first,
            last_period=last,
            stored_as=str(folder.archive_path(path, sha)),
        )
        con.execute("COMMIT")
        in_transaction = False
    except Rejected as exc:
        reason = str(exc)
        stored = folder.quarantine_file(path, sha, reason)
        ledger.record(con, **entry, status="quarantined", reason=reason, stored_as=str(stored))
        return FileOutcome(path.name, "quarantined", 0, f"quarantined: {reason}")
    except BaseException:
        if in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {STAGE}; DROP TABLE IF EXISTS {READY}")
    folder.archive_file(path, sha)
    return FileOutcome(path.name, "loaded", rows_loaded, f"loaded {rows_loaded:,} rows")


def read_header(path: Path, name: str, delimiter: str) -> list[str]:
    """The header row, decoded strictly as UTF-8 (a BOM is allowed)."""
    with path.open("rb") as handle:
        probe = handle.read(HEADER_PROBE_BYTES)
    if not probe.strip():
        raise Rejected(f"{name}: the file is empty. Export it again with its header row.")
    first_line = probe.splitlines()[0]
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected(
            f"{name}: line 1 is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "Save the export as UTF-8 CSV."
        ) from exc
    return [name.strip() for name in next(csv.reader(io.StringIO(text), delimiter=delimiter))]


def _stage(con: duckdb.DuckDBPyConnection, path: Path, name: str, dataset: Dataset) -> int:
    """Read the file into a typed temp table; ``path`` is a copy whose name DuckDB cannot glob."""
    header = read_header(path, name, dataset.delimiter)
    missing = [n for n, c in dataset.columns.items() if c.required and n not in header]
    if missing:
        raise Rejected(
            f"{name}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {', '.join(header) or 'nothing'}). Rule: the dataset contract requires them."
        )
    if len(set(header)) != len(header):
        raise Rejected(f"{name}: the header repeats a column name: {', '.join(header)}")
    # Columns the contract does not know are read as text and ignored; absent optional ones
    # become NULL.
    types = {name: col.type for name, col in dataset.columns.items()}
    columns = ", ".join(f"{literal(n)}: {literal(types.get(n, 'VARCHAR'))}" for n in header)
    absent = [n for n in dataset.columns if n not in header]
    fill = "".join(f", CAST(NULL AS {dataset.columns[n].type}) AS {ident(n)}" for n in absent)
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    try:
        con.execute(
            f"""
            CREATE TEMP TABLE {STAGE} AS
            SELECT row_number() OVER () AS _row, *{fill}
            FROM read_csv({literal(path)}, header = true, auto_detect = false,
                          columns = {{{columns}}}, delim = {literal(dataset.delimiter)},
                          quote = '"', escape = '"',
                          timestampformat = {literal(dataset.timestamp_format)},
                          dateformat = {literal(dataset.date_format)},
                          store_rejects = true)
            """
        )
    except duckdb.Error as exc:
        raise Rejected(f"{name}: DuckDB cannot read it as CSV: {exc}") from exc
    rejects = con.execute(
        "SELECT line, column_name, error_type, csv_line FROM reject_errors ORDER BY line LIMIT ?",
        [SAMPLE_ROWS],
    ).fetchall()
    if rejects:
        total = con.execute("SELECT count(*) FROM reject_errors").fetchall()[0][0]
        samples = "; ".join(
            f"line {line} column {col or '?'} ({kind}): {str(text)[:80]!r}"
            for line, col, kind, text in rejects
        )
        raise Rejected(
            f"{name}: {total} line(s) do not match the contract's types or the CSV "
            f"structure, e.g. {samples}. Rule: every value must parse as its declared type "
            f"(timestamps as {dataset.timestamp_format}, dates as {dataset.date_format})."
        )
    return con.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]


def _rules(dataset: Dataset) -> list[tuple[str, str]]:
    """(description, SQL condition that marks a violating row) for every contract rule."""
    rules = []
    for name, col in dataset.columns.items():
        q = ident(name)
        if col.required:
            rules.append((f"{name} is required", f"{q} IS NULL"))
        if col.allowed is not None:
            allowed = ", ".join(literal(v) for v in col.allowed)
            rules.append(
                (f"{name} must be one of {', '.join(col.allowed)}", f"{q} NOT IN ({allowed})")
            )
        if col.min is not None:
            rules.append((f"{name} must be at least {col.min:g}", f"{q} < {col.min!r}"))
        if col.max is not None:
            rules.append((f"{name} must be at most {col.max:g}", f"{q} > {col.max!r}"))
    if dataset.key:
        key = ", ".join(ident(k) for k in dataset.key)
        rules.append(
            (
                f"({', '.join(dataset.key)}) must be unique in the file",
                f"count(*) OVER (PARTITION BY {key}) > 1",
            )
        )
    return rules


def _validate(con: duckdb.DuckDBPyConnection, file_name: str, dataset: Dataset) -> None:
    """One pass over the staged rows counts every rule; samples name the lines (row + header)."""
    rules = _rules(dataset)
    flags = ", ".join(f"coalesce({cond}, false) AS r{i}" for i, (_, cond) in enumerate(rules))
    con.execute(f"CREATE OR REPLACE TEMP VIEW _flags AS SELECT _row, {flags} FROM {STAGE}")
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE r{i})" for i in range(len(rules)))
        + " FROM _flags"
    ).fetchall()[0]
    problems = []
    for i, ((description, _), count) in enumerate(zip(rules, counts, strict=True)):
        if count:
            rows = con.execute(
                f"SELECT _row + 1 FROM _flags WHERE r{i} ORDER BY _row LIMIT {SAMPLE_ROWS}"
            ).fetchall()
            where = ", ".join(str(r[0]) for r in rows)
            problems.append(f"rule '{description}': {count} row(s), e.g. line(s) {where}")
    con.execute("DROP VIEW _flags")
    if problems:
        raise Rejected(f"{file_name}: " + "; ".join(problems) + ". Correct the rows and re-send.")


def _derive(con: duckdb.DuckDBPyConnection, file_name: str, dataset: Dataset, sha: str) -> None:
    """Compute derived columns and drop identifiers; a value that breaks a derivation rejects."""
    kept = [ident(n) for n in dataset.kept_columns]
    derived = [f"({expr}) AS {ident(name)}" for name, expr in dataset.derived.items()]
    try:
        con.execute(
            f"CREATE TEMP TABLE {READY} AS SELECT {', '.join(kept + derived)}, "
            f"{literal(file_name)} AS _source_file, {literal(sha)} AS _file_sha256, "
            f"now() AS _loaded_at FROM {STAGE}"
        )
    except duckdb.Error as exc:
        raise Rejected(
            f"{file_name}: a derived column ({', '.join(dataset.derived)}) cannot be computed "
            f"from the delivered values: {exc}. Check the values it is computed from."
        ) from exc


def _load(
    con: duckdb.DuckDBPyConnection, table: str, dataset: Dataset
) -> tuple[int, object, object]:
    """Append (or replace) the prepared rows; a column the contract gained is added first."""
    target = ident(table)
    if dataset.load == "replace":
        con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {READY}")
    else:
        con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {READY} LIMIT 0")
        existing = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_catalog = current_database() AND table_name = ?",
                [table],
            ).fetchall()
        }
        for name, kind, *_ in con.execute(f"DESCRIBE {READY}").fetchall():
            if name not in existing:
                con.execute(f"ALTER TABLE {target} ADD COLUMN {ident(name)} {kind}")
        con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {READY}")
    rows = con.execute(f"SELECT count(*) FROM {READY}").fetchall()[0][0]
    first = last = None
    if dataset.period:
        period = ident(dataset.period)
        first, last = con.execute(
            f"SELECT min(date_trunc('month', {period})), max(date_trunc('month', {period})) "
            f"FROM {READY}"
        ).fetchall()[0]
    return rows, first, last
