"""Read one delivered file into a typed staging table, its columns mapped to the contract.

CSV/TSV is read by DuckDB with explicit types (through a hex-named link, so no name can act as a
glob); Parquet through DuckDB; an Excel sheet streamed to CSV first. Partner headers never reach
SQL: columns are read under positional names (``c0``, ``c1``...) and renamed by the contract.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb

from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.readers import (
    MAX_LINE_BYTES,
    Rejected,
    check_text,
    count_records,
    header_label,
    read_header,
    shape,
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
DROPPED = "_dropped"  # good rows dropped as duplicates (the dataset's duplicates option)
SAMPLE_ROWS = 5
VALUE_CHARS = 200
WITHHELD = "(identifier withheld)"
# DuckDB reader errors that mean the file as a whole is unreadable, not that a row is bad.
STRUCTURAL_ERRORS = ("INVALID ENCODING", "LINE SIZE OVER MAXIMUM")
ISO_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]
# An ISO 8601 timestamp that carries its UTC offset or Z: converted to the city's local time.
# A timestamp without one is the city's wall-clock time already and is kept as it is.
WITH_OFFSET = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?"
    r" ?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)"
)
ZONED_TYPES = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")


CAST_VALUE = re.compile(r'Could not convert string "(.*)" to ', re.DOTALL)


class ReaderReject(NamedTuple):
    """A record the reader refused: where, which column, why, and the value's shape only."""

    line: int
    column: str | None  # canonical column, a described header position, or None
    kind: str  # DuckDB's error type: CAST, TOO MANY COLUMNS, MISSING COLUMNS...
    sample: str | None  # :func:`shape` of the refused value, never the value itself


@dataclass
class Staged:
    """What reading the file produced: the staged rows and what the reader itself refused."""

    rows: int
    line_expr: str  # SQL giving a staged row's line (CSV), sheet row (xlsx) or row (Parquet)
    converted: list[str]  # canonical columns parsed in SQL, with a "_raw_<name>" failure column
    parse_rejects: list[ReaderReject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rejected_lines(self) -> int:
        return len({r[0] for r in self.parse_rejects})


def check_size(name: str, size: int, dataset: Dataset) -> None:
    """Refuse a file over the dataset's cap before reading a byte of it."""
    if size > dataset.max_file_mb * 1024 * 1024:
        raise Rejected(
            f"{name}: the file is {size / 1048576:,.2f} MB, over this dataset's size cap of "
            f"{dataset.max_file_mb:g} MB (max_file_mb). Split the delivery (e.g. one file per "
            "month) or ask the steward to raise max_file_mb."
        )


# -- reading ----------------------------------------------------------------------------------


def stage_file(
    con: duckdb.DuckDBPyConnection,
    folder: DropFolder,
    path: Path,
    found,
    dataset: Dataset,
    time_zone: str = "UTC",
) -> Staged:
    """Read the file into the typed temp table ``_stage`` (one row per delivered record).

    ``time_zone`` is the city's (IANA name): a TIMESTAMP delivered with an offset or ``Z`` is
    converted to the city's wall-clock time, so every later truncation to a day or month is the
    city's; a naive one is taken as the city's wall-clock time.
    """
    name = path.name
    if dataset.format == "geojson":
        from cs360_pipeline.ingest.geojson import stage_geojson

        return stage_geojson(con, folder, path, found, dataset)
    if dataset.format == "parquet":
        if found.size == 0:
            raise Rejected(f"{name}: the file is empty. Export it again.")
        with folder.readable_copy(path, found.sha256) as readable:
            return _stage_parquet(con, readable, name, dataset, time_zone)
    if dataset.format == "xlsx":
        if found.size == 0:
            raise Rejected(f"{name}: the file is empty. Export it again.")
        with (
            folder.readable_copy(path, found.sha256) as readable,
            folder.work_file(found.sha256, ".sheet.csv") as sheet_csv,
        ):
            max_bytes = int(dataset.max_file_mb * 1024 * 1024)
            sheet = xlsx_to_csv(readable, sheet_csv, name, dataset.sheet or "", max_bytes)
            staged = _stage_csv(
                con, sheet_csv, name, dataset, sheet.header, sheet.rows, time_zone, sheet=True
            )
            staged.parse_rejects += [ReaderReject(r, None, k, None) for r, k in sheet.rejects]
            return staged
    check_text(name, found, dataset.encoding, dataset.format)
    if dataset.encoding in ("latin-1", "cp1252"):
        with folder.work_file(found.sha256, ".utf8.csv") as utf8:
            transcode(path, utf8, name, dataset.encoding)
            records = count_records(utf8, name, dataset.field_delimiter)
            header = read_header(utf8, name, dataset.field_delimiter)
            return _stage_csv(con, utf8, name, dataset, header, records, time_zone, sheet=False)
    with folder.readable_copy(path, found.sha256) as readable:
        records = count_records(readable, name, dataset.field_delimiter)
        header = read_header(readable, name, dataset.field_delimiter, dataset.encoding)
        return _stage_csv(con, readable, name, dataset, header, records, time_zone, sheet=False)


def _delimiter_hint(header: list[str], dataset: Dataset) -> str:
    """When the header is one field holding another delimiter: say which (only the character)."""
    if len(header) != 1:
        return ""
    others = [d for d in (",", ";", "\t", "|") if d != dataset.field_delimiter]
    seen = [d for d in others if d in header[0]]
    if not seen:
        return ""
    return (
        f" The header is one single field containing {seen[0]!r}: the file looks "
        f"{seen[0]!r}-delimited, the contract says {dataset.field_delimiter!r}."
    )


def _found_fields(header: list[str], known: set[str]) -> str:
    """The header as found, for a reason; withheld when no field is a contract header.

    A row holding none of the contract's headers is likely data (a headerless export), so its
    fields are only counted. Otherwise each field is shown by name if it looks like a name.
    """
    if not any(h in known for h in header):
        return (
            f"{len(header)} field(s), none of them a header of the contract, so line 1 may be "
            "data (an export without its header row); its fields are not shown"
        )
    return (
        ", ".join(h if h in known else header_label(h, i) for i, h in enumerate(header, 1))
        or "nothing"
    )


def _match_header(name: str, header: list[str], dataset: Dataset) -> tuple[dict[str, int], list]:
    """Canonical column -> position in the file, and labels of the fields not in the contract.

    Refuses missing required or repeated names, naming header fields only by
    :func:`header_label`.
    """
    positions: dict[str, int] = {}
    for column_name, col in dataset.columns.items():
        source = col.source or column_name
        if source in header:
            positions[column_name] = header.index(source)
    known = {col.source or n for n, col in dataset.columns.items()}
    missing = [
        (col.source or n)
        for n, col in dataset.columns.items()
        if col.required and n not in positions
    ]
    if missing:
        raise Rejected(
            f"{name}: required column(s) {', '.join(missing)} missing from the header "
            f"(found: {_found_fields(header, known)}). Rule: the dataset contract requires "
            f"them.{_delimiter_hint(header, dataset)}"
        )
    repeated = [h for i, h in enumerate(header) if h in header[:i]]
    if repeated:
        shown = ", ".join(
            f"{header_label(h, header.index(h) + 1)} again at column {i}"
            for i, h in enumerate(header, 1)
            if h in header[: i - 1]
        )
        raise Rejected(
            f"{name}: the header repeats a column name: {shown}. Rule: each header names one "
            "column. Rename or remove the repeated column and re-send."
        )
    extra = [header_label(h, i) for i, h in enumerate(header, 1) if h not in known]
    return positions, extra


def _parse_sql(
    col: Column, text: str, dataset: Dataset, fallbacks: list[str], time_zone: str = "UTC"
) -> str:
    """SQL turning delivered text into the column's canonical type (NULL when it cannot).

    A TIMESTAMP parsed with an offset (a ``%z`` format, or ISO 8601 text ending in ``Z`` or
    ``+hh:mm``) becomes the city's local wall-clock time (DuckDB's ``timezone(zone, ts)``,
    ICU built in), never the server's or UTC's.
    """
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
        elif "%z" in fmt or "%Z" in fmt:
            parts.append(f"timezone({literal(time_zone)}, try_strptime({text}, {literal(fmt)}))")
        else:
            parts.append(f"try_strptime({text}, {literal(fmt)})")
    if col.type == "TIMESTAMP":
        parts.append(
            f"CASE WHEN regexp_full_match(trim({text}), {literal(WITH_OFFSET)}) THEN "
            f"timezone({literal(time_zone)}, TRY_CAST(replace(trim({text}), ',', '.') "
            "AS TIMESTAMPTZ)) END"
        )
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
    time_zone: str = "UTC",
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
        inner.append(f"{_parse_sql(col, source, dataset, fallbacks, time_zone)} AS {q}")
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


def duckdb_reason(exc: duckdb.Error) -> str:
    """DuckDB's error, cut to its kind (and line): its full text quotes the line it read."""
    kind = str(exc).split(":", 1)[0].strip()[:60] or type(exc).__name__
    line = re.search(r"[Ll]ine:? (\d+)", str(exc))
    return f"{kind}{f' on line {line.group(1)}' if line else ''}"


def _reader_rejects(
    con: duckdb.DuckDBPyConnection, header: list[str], positions: dict[str, int]
) -> list[ReaderReject]:
    """DuckDB's refused records, columns named by the contract; values kept as shapes only."""
    by_position = {f"c{p}": n for n, p in positions.items()}
    rejects = []
    for line, col, kind, message in con.execute(
        "SELECT line, column_name, error_type, error_message FROM reject_errors "
        "ORDER BY line, column_name"
    ).fetchall():
        column = by_position.get(col) if col else None
        if col and column is None and col[1:].isdigit() and int(col[1:]) < len(header):
            column = header_label(header[int(col[1:])], int(col[1:]) + 1)
        value = CAST_VALUE.search(str(message)) if kind == "CAST" else None
        rejects.append(ReaderReject(line, column, kind, shape(value.group(1)) if value else None))
    return rejects


def _refuse_structural(name: str, dataset: Dataset, rejects: list[ReaderReject]) -> None:
    """A record the reader could not split or decode makes the whole file unreadable."""
    structural = [r for r in rejects if r.kind in STRUCTURAL_ERRORS]
    if not structural:
        return
    first = structural[0]
    count = len({r.line for r in structural})
    if first.kind == "INVALID ENCODING":
        raise Rejected(
            f"{name}: the file is not valid {dataset.encoding} text: {count} line(s) hold "
            f"undecodable bytes, e.g. line {first.line} column {first.column or '?'} "
            f"({first.kind}). Export it as UTF-8, or declare its real encoding in provider.yml "
            "(e.g. encoding: cp1252)."
        )
    raise Rejected(
        f"{name}: line {first.line} is longer than the reader's maximum line size of "
        f"{MAX_LINE_BYTES:,} bytes ({first.kind}): the file is probably not line-delimited text "
        "or a field lost its closing quote. Export it again."
    )


def _refuse_unaccounted(name: str, expected: int, rows: int, rejected: int) -> None:
    """Every record of the file must be staged or rejected with its line: none may vanish.

    ``expected`` comes from a second, independent reader (Python's csv module, or the count of
    rows written from a sheet); if DuckDB accounts for fewer or more records, nothing loads.
    """
    if rows + rejected == expected:
        return
    raise Rejected(
        f"{name}: the file holds {expected:,} data record(s), but the CSV reader accounted for "
        f"{rows + rejected:,} ({rows:,} read, {rejected:,} refused). Rule: every record is "
        "loaded or rejected with its line, never dropped. Look for a stray quote, a field that "
        "lost its closing quote, or an over-long line, and export it again."
    )


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    dataset: Dataset,
    header: list[str],
    expected: int,
    time_zone: str = "UTC",
    *,
    sheet: bool,
) -> Staged:
    """Stage delimited text; ``sheet``: a converted worksheet whose column 0 is the row number.

    ``expected`` is the number of data records an independent count found in the same bytes.
    """
    positions, extra = _match_header(name, header, dataset)
    # TIMESTAMP text is parsed in SQL, so a value with an offset can be taken to local time.
    direct = (
        set()
        if sheet
        else {
            n
            for n in positions
            if not _needs_sql_parse(dataset.columns[n], dataset)
            and dataset.columns[n].type != "TIMESTAMP"
        }
    )
    types = ["VARCHAR"] * len(header)
    for column_name in direct:
        types[positions[column_name]] = dataset.columns[column_name].type
    spec = [("_line", "BIGINT")] if sheet else []
    spec += [(f"c{i}", t) for i, t in enumerate(types)]
    columns = ", ".join(f"{literal(n)}: {literal(t)}" for n, t in spec)
    fallbacks = [*ISO_FORMATS, EXCEL_SERIAL] if sheet else []
    inner, outer, converted = _stage_select(
        dataset,
        positions,
        lambda i: f"c{i}",
        direct,
        fallbacks,
        "_line, " if sheet else "",
        time_zone,
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
                              quote = '"', escape = '"', strict_mode = true,
                              max_line_size = {MAX_LINE_BYTES},
                              timestampformat = {literal(dataset.timestamp_format)},
                              dateformat = {literal(dataset.date_format)},
                              store_rejects = true)
            )
            """
        )
    except duckdb.Error as exc:
        raise Rejected(
            f"{name}: DuckDB cannot read it as CSV ({duckdb_reason(exc)}). Export it again."
        ) from None
    rejects = _reader_rejects(con, header, positions)
    _refuse_structural(name, dataset, rejects)
    rows = con.execute(f"SELECT count(*) FROM {STAGE}").fetchall()[0][0]
    _refuse_unaccounted(name, expected, rows, len({r.line for r in rejects}))
    line_expr = "_line" if sheet else "rowid + 2"
    row_view(con, dataset, line_expr)
    warnings = []
    if extra:
        warnings.append(f"column(s) {', '.join(extra)} not in the contract were ignored")
    return Staged(rows, line_expr, converted, rejects, warnings)


def _stage_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, name: str, dataset: Dataset, time_zone: str = "UTC"
) -> Staged:
    source = f"read_parquet({literal(path)})"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.Error as exc:
        raise Rejected(
            f"{name}: not a readable Parquet file ({duckdb_reason(exc)}). Export it again."
        ) from None
    header = [r[0] for r in described]
    kinds = {r[0]: r[1] for r in described}
    positions, extra = _match_header(name, header, dataset)
    # A zoned Parquet timestamp (an instant) is read as the city's wall-clock time.
    zoned = {
        n for n, p in positions.items()
        if dataset.columns[n].type == "TIMESTAMP" and kinds[header[p]] in ZONED_TYPES
        and not _needs_sql_parse(dataset.columns[n], dataset)
    }  # fmt: skip
    direct = {
        n for n, p in positions.items()
        if not _needs_sql_parse(dataset.columns[n], dataset)
        and kinds[header[p]] == dataset.columns[n].type
    } | zoned  # fmt: skip

    def source_of(i: int) -> str:
        q = ident(header[i])
        column_name = next(n for n, p in positions.items() if p == i)
        if column_name in zoned:
            return f"timezone({literal(time_zone)}, {q})"
        if _needs_sql_parse(dataset.columns[column_name], dataset):
            return f"CAST({q} AS VARCHAR)"
        return q

    inner, outer, converted = _stage_select(
        dataset, positions, source_of, direct, [], time_zone=time_zone
    )
    try:
        con.execute(
            f"CREATE TEMP TABLE {STAGE} AS SELECT {outer} FROM (SELECT {inner} FROM {source})"
        )
    except duckdb.Error as exc:
        raise Rejected(
            f"{name}: DuckDB cannot read the Parquet file ({duckdb_reason(exc)}). Export it again."
        ) from None
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
