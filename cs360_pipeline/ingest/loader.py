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

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cs360_pipeline.ingest import ledger
from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.readers import (
    Rejected,
    check_text,
    read_header,
    scan,
    transcode,
    xlsx_to_csv,
)
from cs360_pipeline.registry import Column, Dataset, Provider
from cs360_pipeline.registry.models import EXCEL_SERIAL, TEMPORAL_TYPES
from cs360_pipeline.sql import ident, literal

__all__ = ["FileOutcome", "Rejected", "ingest_dataset", "read_header"]

STAGE = "_stage"
ROWS = "_rows"
BAD = "_bad"
DUPES = "_dupes"
SAMPLE_ROWS = 5
VALUE_CHARS = 200
WITHHELD = "(identifier withheld)"
# DuckDB reader errors that mean the file as a whole is unreadable, not that a row is bad.
STRUCTURAL_ERRORS = ("INVALID ENCODING", "LINE SIZE OVER MAXIMUM")
ISO_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]

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


@dataclass
class Staged:
    """What reading the file produced: the staged rows and what the reader itself refused."""

    rows: int
    line_expr: str  # SQL giving a staged row's line (CSV), sheet row (xlsx) or row (Parquet)
    converted: list[str]  # canonical columns parsed in SQL, with a "_raw_<name>" failure column
    parse_rejects: list[tuple[int, str | None, str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rejected_lines(self) -> int:
        return len({r[0] for r in self.parse_rejects})


@dataclass(frozen=True)
class Rule:
    description: str
    condition: str  # SQL over _rows marking a violating row
    column: str | None
    value: str  # SQL giving the value sample of a violating row


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
        _check_size(path.name, found.size, dataset)
        staged = _stage(con, folder, path, found, dataset)
        verdict = _validate(con, path.name, dataset, staged)
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


def _check_size(name: str, size: int, dataset: Dataset) -> None:
    if size > dataset.max_file_mb * 1024 * 1024:
        raise Rejected(
            f"{name}: the file is {size / 1048576:,.2f} MB, over this dataset's size cap of "
            f"{dataset.max_file_mb:g} MB (max_file_mb). Split the delivery (e.g. one file per "
            "month) or ask the steward to raise max_file_mb."
        )


# -- reading ----------------------------------------------------------------------------------


def _stage(
    con: duckdb.DuckDBPyConnection, folder: DropFolder, path: Path, found, dataset: Dataset
) -> Staged:
    """Read the file into the typed temp table ``_stage`` (one row per delivered record)."""
    name = path.name
    if dataset.format == "parquet":
        if found.size == 0:
            raise Rejected(f"{name}: the file is empty. Export it again.")
        with folder.readable_copy(path, found.sha256) as readable:
            return _stage_parquet(con, readable, name, dataset)
    if dataset.format == "xlsx":
        if found.size == 0:
            raise Rejected(f"{name}: the file is empty. Export it again.")
        with (
            folder.readable_copy(path, found.sha256) as readable,
            folder.work_file(found.sha256, ".sheet.csv") as sheet_csv,
        ):
            header = xlsx_to_csv(readable, sheet_csv, name, dataset.sheet or "")
            return _stage_csv(con, sheet_csv, name, dataset, header, sheet=True)
    check_text(name, found, dataset.encoding, dataset.format)
    if dataset.encoding in ("latin-1", "cp1252"):
        with folder.work_file(found.sha256, ".utf8.csv") as utf8:
            transcode(path, utf8, name, dataset.encoding)
            header = read_header(utf8, name, dataset.field_delimiter)
            return _stage_csv(con, utf8, name, dataset, header, sheet=False)
    with folder.readable_copy(path, found.sha256) as readable:
        header = read_header(readable, name, dataset.field_delimiter, dataset.encoding)
        return _stage_csv(con, readable, name, dataset, header, sheet=False)


def _match_header(name: str, header: list[str], dataset: Dataset) -> tuple[dict[str, int], list]:
    """Canonical column -> position in the file; refuses missing required or repeated names."""
    positions: dict[str, int] = {}
    for column_name, col in dataset.columns.items():
        source = col.source or column_name
        if source in header:
            positions[column_name] = header.index(source)
    missing = [
        (col.source or n)
        for n, col in dataset.columns.items()
        if col.required and n not in positions
    ]
    if missing:
        hint = ""
        if len(header) == 1:
            others = [d for d in (",", ";", "\t", "|") if d != dataset.field_delimiter]
            seen = [d for d in others if d in header[0]]
            if seen:
                hint = (
                    f" The header is one single field containing {seen[0]!r}: the file looks "
                    f"{seen[0]!r}-delimited, the contract says {dataset.field_delimiter!r}."
                )
        raise Rejected(
            f"{name}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {', '.join(header) or 'nothing'}). Rule: the dataset contract requires "
            f"them.{hint}"
        )
    if len(set(header)) != len(header):
        raise Rejected(f"{name}: the header repeats a column name: {', '.join(header)}")
    known = {col.source or n for n, col in dataset.columns.items()}
    extra = [h for h in header if h not in known]
    return positions, extra


def _parse_sql(col: Column, text: str, dataset: Dataset, fallbacks: list[str]) -> str:
    """SQL turning delivered text into the column's canonical type (NULL when it cannot)."""
    if col.values:
        cases = " ".join(
            f"WHEN {literal(k)} THEN {literal(Column.canonical_text(v))}"
            for k, v in col.values.items()
        )
        text = f"(CASE {text} {cases} ELSE {text} END)"
    if col.type == "VARCHAR":
        return text
    if col.type not in TEMPORAL_TYPES:
        return f"TRY_CAST({text} AS {col.type})"
    default = dataset.timestamp_format if col.type == "TIMESTAMP" else dataset.date_format
    formats = col.formats or [default]
    formats += [f for f in fallbacks if f not in formats]
    parts = []
    for fmt in formats:
        if fmt == EXCEL_SERIAL:
            parts.append(
                f"CASE WHEN regexp_full_match(trim({text}), '[0-9]{{1,7}}(\\.[0-9]+)?') "
                "THEN TIMESTAMP '1899-12-30' + to_microseconds(CAST(round("
                f"CAST(trim({text}) AS DOUBLE) * 86400000) * 1000 AS BIGINT)) END"
            )
        else:
            parts.append(f"try_strptime({text}, {literal(fmt)})")
    parsed = parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"
    return f"CAST({parsed} AS {col.type})"


def _needs_sql_parse(col: Column, dataset: Dataset) -> bool:
    return bool(col.values or col.formats)


def _stage_select(
    dataset: Dataset,
    positions: dict[str, int],
    source_of: Callable[[int], str],
    direct: set[str],
    fallbacks: list[str],
    extra_select: str = "",
) -> tuple[str, str, list[str]]:
    """(inner select list, outer select list, converted columns) for the staging query."""
    inner, outer, converted = [], [], []
    for column_name, col in dataset.columns.items():
        q = ident(column_name)
        if column_name not in positions:
            inner.append(f"CAST(NULL AS {col.type}) AS {q}")
            outer.append(q)
            continue
        source = source_of(positions[column_name])
        if column_name in direct:
            inner.append(f"{source} AS {q}")
            outer.append(q)
            continue
        raw = ident(f"_in_{column_name}")
        inner.append(f"{_parse_sql(col, source, dataset, fallbacks)} AS {q}")
        outer.append(q)
        if col.type == "VARCHAR":
            continue
        inner.append(f"{source} AS {raw}")
        outer.append(
            f"CASE WHEN {raw} IS NOT NULL AND {q} IS NULL THEN {raw} END "
            f"AS {ident('_raw_' + column_name)}"
        )
        converted.append(column_name)
    return extra_select + ", ".join(inner), ", ".join(outer), converted


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    dataset: Dataset,
    header: list[str],
    *,
    sheet: bool,
) -> Staged:
    """Stage delimited text; ``sheet``: a converted worksheet whose column 0 is the row number."""
    fields = header
    positions, extra = _match_header(name, fields, dataset)
    direct = (
        set()
        if sheet
        else {n for n in positions if not _needs_sql_parse(dataset.columns[n], dataset)}
    )
    types = ["VARCHAR"] * len(fields)
    for column_name in direct:
        types[positions[column_name]] = dataset.columns[column_name].type
    spec = [("_line", "BIGINT")] if sheet else []
    spec += [(f"c{i}", t) for i, t in enumerate(types)]
    columns = ", ".join(f"{literal(n)}: {literal(t)}" for n, t in spec)
    fallbacks = [*ISO_FORMATS, EXCEL_SERIAL] if sheet else []
    inner, outer, converted = _stage_select(
        dataset, positions, lambda i: f"c{i}", direct, fallbacks, "_line, " if sheet else ""
    )
    delimiter = "," if sheet else dataset.field_delimiter
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    try:
        con.execute(
            f"""
            CREATE TEMP TABLE {STAGE} AS
            SELECT {"_line, " if sheet else ""}{outer} FROM (
                SELECT {inner}
                FROM read_csv({literal(path)}, header = true, auto_detect = false,
                              columns = {{{columns}}}, delim = {literal(delimiter)},
                              quote = '"', escape = '"',
                              timestampformat = {literal(dataset.timestamp_format)},
                              dateformat = {literal(dataset.date_format)},
                              store_rejects = true)
            )
            """
        )
    except duckdb.Error as exc:
        raise Rejected(f"{name}: DuckDB cannot read it as CSV: {exc}") from exc
    by_position = {f"c{p}": n for n, p in positions.items()}
    rejects = [
        (line, by_position.get(col, header[int(col[1:])] if col and col[1:].isdigit() else col),
         kind, text, message)
        for line, col, kind, text, message in con.execute(
            "SELECT line, column_name, error_type, csv_line, error_message FROM reject_errors "
            "ORDER BY line, column_name"
        ).fetchall()
    ]  # fmt: skip
    structural = [r for r in rejects if r[2] in STRUCTURAL_ERRORS]
    if structural:
        line, col, kind, _, _ = structural[0]
        count = len({r[0] for r in structural})
        if kind == "INVALID ENCODING":
            raise Rejected(
                f"{name}: the file is not valid {dataset.encoding} text: {count} line(s) hold "
                f"undecodable bytes, e.g. line {line} column {col or '?'} ({kind}). Export it "
                "as UTF-8, or declare its real encoding in provider.yml (e.g. encoding: cp1252)."
            )
        raise Rejected(
            f"{name}: line {line} is longer than the reader's maximum line size ({kind}): "
            "the file is probably not line-delimited text or a field lost its closing quote. "
            "Export it again."
        )
    rows = con.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]
    line_expr = "_line" if sheet else "rowid + 2"
    _row_view(con, dataset, line_expr)
    warnings = []
    if extra:
        warnings.append(f"column(s) {', '.join(extra)} not in the contract were ignored")
    return Staged(rows, line_expr, converted, rejects, warnings)


def _stage_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, name: str, dataset: Dataset
) -> Staged:
    source = f"read_parquet({literal(path)})"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.Error as exc:
        raise Rejected(
            f"{name}: not a readable Parquet file ({str(exc).splitlines()[0]}). Export it again."
        ) from exc
    header = [r[0] for r in described]
    kinds = {r[0]: r[1] for r in described}
    positions, extra = _match_header(name, header, dataset)
    direct = {
        n for n, p in positions.items()
        if not _needs_sql_parse(dataset.columns[n], dataset)
        and kinds[header[p]] == dataset.columns[n].type
    }  # fmt: skip

    def source_of(i: int) -> str:
        q = ident(header[i])
        column_name = next(n for n, p in positions.items() if p == i)
        if _needs_sql_parse(dataset.columns[column_name], dataset):
            return f"CAST({q} AS VARCHAR)"
        return q

    inner, outer, converted = _stage_select(dataset, positions, source_of, direct, [])
    try:
        con.execute(
            f"CREATE TEMP TABLE {STAGE} AS SELECT {outer} FROM (SELECT {inner} FROM {source})"
        )
    except duckdb.Error as exc:
        raise Rejected(f"{name}: DuckDB cannot read the Parquet file: {exc}") from exc
    rows = con.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]
    _row_view(con, dataset, "rowid + 1")
    warnings = [f"column(s) {', '.join(extra)} not in the contract were ignored"] if extra else []
    return Staged(rows, "rowid + 1", converted, [], warnings)


def _row_view(con: duckdb.DuckDBPyConnection, dataset: Dataset, line_expr: str) -> None:
    derived = "".join(f", ({expr}) AS {ident(n)}" for n, expr in dataset.derived.items())
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {ROWS} AS "
        f"SELECT rowid AS _rid, {line_expr} AS _line, *{derived} FROM {STAGE}"
    )


# -- validating -------------------------------------------------------------------------------


@dataclass
class Verdict:
    total: int  # records in the file (staged + refused by the reader)
    bad_rows: int  # records rejected (reader + rules)
    staged_bad: int  # staged rows flagged by a rule (in _bad)
    rules: list[Rule]
    counts: list[int]
    months: list  # months of the good rows, for revisions
    problems: list[str]
    parse_rejects: list


def _bound_sql(col: Column, q: str, bound: float | str, op: str) -> tuple[str, str]:
    """(condition, description) for a min (op '<') or max (op '>') bound."""
    if col.type in TEMPORAL_TYPES:
        ref = "current_date" if bound == "today" else f"DATE {literal(str(bound))}"
        words = {"<": "before", ">": "after"}[op]
        said = "today (no future dates)" if bound == "today" else str(bound)
        return f"CAST({q} AS DATE) {op} {ref}", f"not be {words} {said}"
    word = {"<": "at least", ">": "at most"}[op]
    return f"{q} {op} {float(bound)!r}", f"be {word} {float(bound):g}"


def _rules(dataset: Dataset, converted: list[str], dupes: bool) -> list[Rule]:
    """Every contract rule as SQL over ``_rows``; one row may break several."""
    rules = []
    for name, col in dataset.columns.items():
        q = ident(name)
        shown = f"CAST({q} AS VARCHAR)" if not col.identifier else literal(WITHHELD)
        if name in converted:
            raw = ident("_raw_" + name)
            if col.values and col.type not in TEMPORAL_TYPES:
                what = f"one of {', '.join(col.values)} (values map) or a {col.type}"
            elif col.type in TEMPORAL_TYPES:
                formats = col.formats or [
                    dataset.timestamp_format if col.type == "TIMESTAMP" else dataset.date_format
                ]
                what = f"a {col.type} as {' or '.join(formats)}"
            else:
                what = f"a {col.type}"
            rules.append(
                Rule(
                    f"{name} must be {what}",
                    f"{raw} IS NOT NULL",
                    name,
                    raw if not col.identifier else literal(WITHHELD),
                )
            )
            if col.required:
                rules.append(
                    Rule(f"{name} is required", f"{q} IS NULL AND {raw} IS NULL", name, "NULL")
                )
        elif col.required:
            rules.append(Rule(f"{name} is required", f"{q} IS NULL", name, "NULL"))
        if col.allowed is not None:
            allowed = ", ".join(literal(v) for v in col.allowed)
            rules.append(
                Rule(
                    f"{name} must be one of {', '.join(col.allowed)}",
                    f"{q} NOT IN ({allowed})",
                    name,
                    shown,
                )
            )
        if col.min is not None:
            cond, said = _bound_sql(col, q, col.min, "<")
            rules.append(Rule(f"{name} must {said}", cond, name, shown))
        if col.max is not None:
            cond, said = _bound_sql(col, q, col.max, ">")
            rules.append(Rule(f"{name} must {said}", cond, name, shown))
    if dupes:
        key = " || '|' || ".join(f"coalesce(CAST({ident(k)} AS VARCHAR), '')" for k in dataset.key)
        rules.append(
            Rule(
                f"({', '.join(dataset.key)}) must be unique in the file",
                "_dup IS NOT NULL",
                ", ".join(dataset.key),
                key,
            )
        )
    for name, condition in dataset.checks.items():
        rules.append(Rule(f"check {name}: {condition}", f"NOT ({condition})", None, "NULL"))
    return rules


def _validate(
    con: duckdb.DuckDBPyConnection, file_name: str, dataset: Dataset, staged: Staged
) -> Verdict:
    """One pass counts every rule (and computes derived columns); bad rows go to ``_bad``."""
    dupes = False
    if dataset.key:
        key = ", ".join(ident(k) for k in dataset.key)
        con.execute(
            f"CREATE TEMP TABLE {DUPES} AS SELECT {key}, true AS _dup FROM {STAGE} "
            f"GROUP BY {key} HAVING count(*) > 1"
        )
        dupes = con.execute(f"SELECT count(*) FROM {DUPES}").fetchall()[0][0] > 0
    rules = _rules(dataset, staged.converted, dupes)
    joined = (
        f"{ROWS} LEFT JOIN {DUPES} USING ({', '.join(ident(k) for k in dataset.key)})"
        if (dupes)
        else ROWS
    )
    flags = ", ".join(
        [f"coalesce({r.condition}, false) AS f{i}" for i, r in enumerate(rules)] or ["false AS f0"]
    )
    any_flag = " OR ".join(f"f{i}" for i in range(len(rules))) or "false"
    if dataset.period:
        period = f"CAST(date_trunc('month', {ident(dataset.period)}) AS DATE)"
        months_sql = (
            f"list(DISTINCT {period} ORDER BY {period}) FILTER "
            f"(WHERE NOT ({any_flag}) AND {period} IS NOT NULL)"
        )
    else:
        months_sql = "CAST([] AS DATE[])"
    # Counting each derived column forces it to be computed here, before any transaction.
    forced = [f"count({ident(n)})" for n in dataset.derived]
    flagged = f"SELECT *, {flags} FROM {joined}"
    try:
        counts_row = con.execute(
            "SELECT "
            + ", ".join(
                [f"count(*) FILTER (WHERE f{i})" for i in range(len(rules))]
                + [f"count(*) FILTER (WHERE {any_flag})", months_sql, *forced]
            )
            + f" FROM ({flagged})"
        ).fetchall()[0]
    except duckdb.Error as exc:
        raise Rejected(
            f"{file_name}: a derived column or check "
            f"({', '.join([*dataset.derived, *dataset.checks])}) cannot be computed from the "
            f"delivered values: {exc}. Check the values it is computed from."
        ) from exc
    counts = list(counts_row[: len(rules)])
    staged_bad = counts_row[len(rules)]
    months = counts_row[len(rules) + 1] or []
    problems = []
    if staged_bad:
        values = ", ".join(
            f"CASE WHEN f{i} THEN {r.value} END AS v{i}" for i, r in enumerate(rules)
        )
        kept_flags = ", ".join(f"f{i}" for i in range(len(rules)))
        con.execute(
            f"CREATE TEMP TABLE {BAD} AS SELECT _rid, _line, {kept_flags}, {values} "
            f"FROM ({flagged}) WHERE {any_flag}"
        )
        if staged.parse_rejects and staged.line_expr == "rowid + 2":
            _shift_lines(con, staged)
        for i, (rule, count) in enumerate(zip(rules, counts, strict=True)):
            if count:
                lines = con.execute(
                    f"SELECT _line FROM {BAD} WHERE f{i} ORDER BY _line LIMIT {SAMPLE_ROWS}"
                ).fetchall()
                where = ", ".join(str(r[0]) for r in lines)
                problems.append(f"rule '{rule.description}': {count} row(s), e.g. line(s) {where}")
    parse_problem = _parse_problem(file_name, dataset, staged)
    if parse_problem:
        problems.insert(0, parse_problem)
    total = staged.rows + staged.rejected_lines
    bad = staged_bad + staged.rejected_lines
    verdict = Verdict(total, bad, staged_bad, rules, counts, months, problems, staged.parse_rejects)
    if total == 0:
        raise Rejected(
            f"{file_name}: the file has a header row but no data rows. "
            "Export the period's rows again."
        )
    if bad and (bad / total > dataset.max_bad_row_share or bad == total):
        limit = (
            f" {bad:,} of {total:,} rows ({bad / total:.1%}) break the contract; this dataset "
            f"accepts at most {dataset.max_bad_row_share:.1%} (max_bad_row_share)."
            if dataset.max_bad_row_share > 0 or bad == total
            else ""
        )
        raise Rejected(
            f"{file_name}: " + "; ".join(problems) + f".{limit} Correct the rows and re-send."
        )
    return verdict


def _parse_problem(file_name: str, dataset: Dataset, staged: Staged) -> str | None:
    """The reader's refusals, by line and column. No line text: this reason reaches the ledger,
    which is shared; only a value that failed to parse as a number or date is quoted."""
    if not staged.parse_rejects:
        return None
    samples = []
    for line, col, kind, _, message in staged.parse_rejects[:SAMPLE_ROWS]:
        sample = f"line {line} column {col or '?'} ({kind})"
        column = dataset.columns.get(col or "")
        value = re.search(r'Could not convert string "(.{0,40})" to', str(message))
        if kind == "CAST" and value and column is not None and not column.identifier:
            sample += f": {value.group(1)!r}"
        samples.append(sample)
    return (
        f"{staged.rejected_lines} line(s) do not match the contract's types or the CSV "
        f"structure, e.g. {'; '.join(samples)}. Rule: every value must parse as its declared "
        f"type (timestamps as {dataset.timestamp_format}, dates as {dataset.date_format}, unless "
        "the column declares its own format)"
    )


def _shift_lines(con: duckdb.DuckDBPyConnection, staged: Staged) -> None:
    """Staged rows skip the reader's rejected lines: move ``_line`` past those before it."""
    lines = sorted({r[0] for r in staged.parse_rejects})
    # t = staged rows before each rejected line; a staged row moves down once per t <= its _rid.
    gaps = [line - 2 - i for i, line in enumerate(lines)]
    con.execute(
        f"UPDATE {BAD} SET _line = _line + "
        f"(SELECT count(*) FROM unnest({gaps!r}::BIGINT[]) AS g(t) WHERE g.t <= {BAD}._rid)"
    )


# -- loading ----------------------------------------------------------------------------------


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
    """Bad rows of a loaded file, one row per broken rule, in the restricted ``_rejects``."""
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
    for line, column, kind, _, message in verdict.parse_rejects:
        value = WITHHELD if column in identifiers else str(message)[:VALUE_CHARS]
        con.execute(
            f"INSERT INTO {ledger.REJECTS_TABLE} VALUES ({stamp}, ?, ?, ?, ?, now())",
            [line, f"does not parse ({kind})", column, value],
        )


def _loaded_message(
    rows: int, staged: Staged, verdict: Verdict, dataset: Dataset, revision_of: list[str]
) -> str:
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
