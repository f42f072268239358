"""Read one delivered file into a typed staging table, its columns mapped to the contract.

CSV/TSV is read by DuckDB with explicit types (through a hex-named link, so no name can act as a
glob); Parquet through DuckDB; an Excel sheet streamed to CSV first. Partner headers never reach
SQL: columns are read under positional names (``c0``, ``c1``...) and renamed by the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.readers import (
    Rejected,
    check_text,
    read_header,
    transcode,
    xlsx_to_csv,
)
from cs360_pipeline.registry import Column, Dataset
from cs360_pipeline.registry.models import EXCEL_SERIAL, TEMPORAL_TYPES
from cs360_pipeline.sql import ident, literal

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


def check_size(name: str, size: int, dataset: Dataset) -> None:
    if size > dataset.max_file_mb * 1024 * 1024:
        raise Rejected(
            f"{name}: the file is {size / 1048576:,.2f} MB, over this dataset's size cap of "
            f"{dataset.max_file_mb:g} MB (max_file_mb). Split the delivery (e.g. one file per "
            "month) or ask the steward to raise max_file_mb."
        )


# -- reading ----------------------------------------------------------------------------------


def stage_file(
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
    row_view(con, dataset, line_expr)
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
    row_view(con, dataset, "rowid + 1")
    warnings = [f"column(s) {', '.join(extra)} not in the contract were ignored"] if extra else []
    return Staged(rows, "rowid + 1", converted, [], warnings)


def row_view(con: duckdb.DuckDBPyConnection, dataset: Dataset, line_expr: str) -> None:
    derived = "".join(f", ({expr}) AS {ident(n)}" for n, expr in dataset.derived.items())
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {ROWS} AS "
        f"SELECT rowid AS _rid, {line_expr} AS _line, *{derived} FROM {STAGE}"
    )


# -- validating -------------------------------------------------------------------------------
