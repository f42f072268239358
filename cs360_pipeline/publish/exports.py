"""Exports of a published release, per audience: Parquet, CSV and (for the PST) an Excel workbook.

Everything is read from the published warehouse, so an export holds exactly what the release
published for that audience and nothing else. Suppressed cells never turn into a blank that a
spreadsheet reads as zero: Parquet keeps a typed NULL next to the ``status`` column, and the CSV
and Excel files write the word ``suppressed`` (or ``missing``) where the number would be. A
blank never appears in a CSV: anything else without a value reads ``n/a``.

Names come from partners' files, so no text reaches a spreadsheet as a formula: the CSV and
Excel writers pass every text cell through ``cell_safety`` (see there). Parquet keeps the true
values.
"""

from __future__ import annotations

import datetime as dt
import re
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cs360_pipeline.publish import xlsx
from cs360_pipeline.publish.audiences import Reader
from cs360_pipeline.publish.cell_safety import FORMULA_START, csv_text, csv_text_macro
from cs360_pipeline.publish.outputs import audience_dir, sweep, write_text, write_with
from cs360_pipeline.publish.reader import open_warehouse
from cs360_pipeline.publish.warehouse import release_of
from cs360_pipeline.settings import Paths
from cs360_pipeline.sql import ident, literal

METRIC_KEY = (
    "audience", "metric_id", "period_level", "period_start", "geo_level", "geo_code", "breakdown",
)  # fmt: skip
NOT_APPLICABLE = "n/a"
WITHHELD = ("suppressed", "missing")
GEO_ORDER = (
    "CASE v.geo_level WHEN 'city' THEN 0 WHEN 'district' THEN 1 WHEN 'zone' THEN 2 ELSE 3 END"
)
PERIOD_ORDER = "CASE v.period_level WHEN 'month' THEN 0 WHEN 'quarter' THEN 1 ELSE 2 END"
CSV_TEXT = "cs360_csv_text"  # cell_safety.csv_text as a macro on the export's connection
# Column types a CSV writes as numbers, dates or booleans; everything else is text to guard.
UNGUARDED_TYPE = re.compile(
    r"BOOLEAN|U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|FLOAT|DOUBLE|DECIMAL\(\d+,\s*\d+\)"
    r"|DATE|TIME(STAMP)?(_S|_MS|_NS)?( WITH TIME ZONE)?"
)


@dataclass(frozen=True)
class Exported:
    audience: str
    folder: Path
    files: list[Path]


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
    ]


def metric_values_query(audience: str, *, marked: bool, metric_id: str | None = None) -> str:
    """The audience's cells (of one metric); ``marked`` writes the status word where a number
    is withheld."""
    order = ", ".join(METRIC_KEY[1:])
    where = f"audience = {literal(audience)}"
    if metric_id is not None:
        where += f" AND metric_id = {literal(metric_id)}"
    if not marked:
        return f"SELECT * FROM metric_values WHERE {where} ORDER BY {order}"
    return f"""
        SELECT * REPLACE (
            CASE WHEN status IN ('suppressed', 'missing') THEN status
                 ELSE CAST(value AS VARCHAR) END AS value,
            CASE WHEN status = 'suppressed' THEN 'suppressed'
                 WHEN status = 'missing' AND numerator IS NULL THEN 'missing'
                 ELSE CAST(numerator AS VARCHAR) END AS numerator,
            CASE WHEN status = 'suppressed' THEN 'suppressed'
                 WHEN status = 'missing' AND denominator IS NULL THEN 'missing'
                 ELSE CAST(denominator AS VARCHAR) END AS denominator
        )
        FROM metric_values WHERE {where} ORDER BY {order}
    """


def catalog_query(con: duckdb.DuckDBPyConnection, audience: str, *, marked: bool) -> str:
    have = set(columns(con, "metric_catalog"))
    order = "display_order, metric_id" if "display_order" in have else "metric_id"
    replace = ""
    if marked and {"latest_value", "latest_status"} <= have:
        replace = (
            " REPLACE (CASE WHEN latest_status IN ('suppressed', 'missing') THEN latest_status "
            "ELSE CAST(latest_value AS VARCHAR) END AS latest_value)"
        )
    return (
        f"SELECT *{replace} FROM metric_catalog WHERE audience = {literal(audience)} "
        f"ORDER BY {order}"
    )


def guarded_csv_query(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """``query`` with every text column (and every column name) through ``csv_text``.

    Numbers, dates and booleans pass untouched, so they stay what they are in a spreadsheet.
    The ordering of ``query`` is kept: a projection over it does not reorder rows.
    """
    described = con.execute(f"DESCRIBE {query}").fetchall()
    select = []
    for name, column_type, *_ in described:
        column = ident(name)
        if not UNGUARDED_TYPE.fullmatch(column_type):
            column = f"{CSV_TEXT}(CAST({column} AS VARCHAR))"
        select.append(f"{column} AS {ident(csv_text(name) or name)}")
    return f"SELECT {', '.join(select)} FROM ({query})"


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path, fmt: str) -> Path:
    if fmt == "parquet":  # typed and true: not a format spreadsheets open
        options = "FORMAT parquet, COMPRESSION zstd"
    else:
        options = f"FORMAT csv, HEADER, NULLSTR {literal(NOT_APPLICABLE)}"
        query = guarded_csv_query(con, query)
    return write_with(
        target, lambda tmp: con.execute(f"COPY ({query}) TO {literal(tmp)} ({options})")
    )


def _register_csv_text(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(csv_text_macro(CSV_TEXT))


def write_metric_csv(
    con: duckdb.DuckDBPyConnection, audience: str, metric_id: str, target: Path
) -> int:
    """One metric's rows for one audience, written as the CSV exports write them (a withheld
    number in words, text guarded against formulas); returns the rows written."""
    _register_csv_text(con)
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy(con, metric_values_query(audience, marked=True, metric_id=metric_id), target, "csv")
    return con.execute(
        "SELECT count(*) FROM metric_values WHERE audience = ? AND metric_id = ?",
        [audience, metric_id],
    ).fetchall()[0][0]


def export_audience(paths: Paths, release_id: str, reader: Reader) -> Exported:
    """Write one audience's files for the release currently in the warehouse."""
    audience = reader.name
    folder = audience_dir(paths, release_id, audience)
    folder.mkdir(parents=True, exist_ok=True)
    sweep(folder)
    sweep(folder.parent)
    files = []
    # A fresh view of the file: a connection another part of this process holds on the
    # previous release must not hand that release to the export.
    with closing(open_warehouse(paths.warehouse_db)) as con:
        _register_csv_text(con)
        published = release_of(con)
        if published != release_id:
            raise RuntimeError(f"the warehouse holds {published}, not {release_id}")
        notes = (
            f"SELECT * FROM metric_notes WHERE audience = {literal(audience)} "
            "ORDER BY metric_id, note_order"
        )
        tables = {
            "metric_values": (
                metric_values_query(audience, marked=False),
                metric_values_query(audience, marked=True),
            ),
            "metric_catalog": (
                catalog_query(con, audience, marked=False),
                catalog_query(con, audience, marked=True),
            ),
            "metric_notes": (notes, notes),
            "geography": ("SELECT * FROM geography", "SELECT * FROM geography"),
        }
        for table, (typed, marked) in tables.items():
            files.append(_copy(con, typed, folder / f"{table}.parquet", "parquet"))
            files.append(_copy(con, marked, folder / f"{table}.csv", "csv"))
        if reader.under_agreement:
            files.append(write_workbook(con, release_id, audience, folder))
        files.append(write_text(folder / "README.txt", readme(release_id, reader)))
    return Exported(audience=audience, folder=folder, files=files)


def readme(release_id: str, reader: Reader) -> str:
    return f"""CS360 release {release_id}, audience "{reader.name}" ({reader.description}).

metric_values   one row per metric, period, geography and breakdown
metric_catalog  what each metric is, who owns it, its latest city-wide value
metric_notes    the PST's notes: what to know about a metric over some months
geography       beat -> district -> city, with names and outlines (GeoJSON)

Each table comes as Parquet (typed; a withheld number is NULL) and as CSV.

Text that a spreadsheet would take for a formula (starting with =, +, -, @, a tab or a carriage
return) is written to the CSV files with a ' in front, so that it opens as text and never runs;
numbers, including negative ones, are written as they are. The Excel workbook stores such text
as text cells. The Parquet files keep the true values, without the ': strip a leading ' from
such a CSV field to get the name back.

The status column says whether a number may be shown:
  published   the value is shown
  unreliable  shown, but a rate or percent resting on fewer than 20 events
  suppressed  withheld: a count it rests on is too small to publish (privacy/policy.yml)
  missing     no data delivered for the period (or one of its months), no denominator, or a
              measure that looks back (e.g. 12 months) before the data has that history

period_complete is false for a partial period: a month whose data ends before its last day,
or a quarter or year not over or not delivered whole (a month of it missing or partial, or
the data starting inside it). data_through is the last date the period's data covers (e.g.
2026-08-05 for August delivered through the 5th). A partial period's value covers only part
of it: do not compare it with whole periods. The catalog's trends, baselines and targets use
complete periods only.

A metric listed in metric_catalog with no row in metric_values has no data published yet (its
partner's data has not reached a release); it is not a zero. In the PST workbook a dimension
without data has a sheet that says so, and the Notes sheet names such metrics.

In the CSV files a withheld number is written as the word "suppressed" or "missing", never left
blank: a blank would read as zero in a spreadsheet. "{NOT_APPLICABLE}" marks a field that has no
value (a count has no denominator). Never replace these words with 0.
"""


# --- The PST workbook ---------------------------------------------------------------------

SHEET_COLUMNS = (
    ("Metric", 38), ("metric_id", 28), ("Unit", 14), ("Period", 9), ("Period start", 12),
    ("Geography level", 10), ("Geography", 10), ("Name", 22), ("Breakdown", 22),
    ("Value", 12), ("Numerator", 11), ("Denominator", 12), ("Period complete", 10),
    ("Data through", 12), ("Status", 11),
)  # fmt: skip
PARTIAL = "partial"  # a period whose data ends before its end, or not delivered whole
STATUS_COLUMN = "Status"
NO_DIMENSION_DATA = "No data published for this dimension yet."
NO_METRIC_DATA = "No data published for this metric yet."
MAX_SHEET_TITLE = 31


def sheet_title(name: str, taken: set[str]) -> str:
    """Excel sheet names: at most 31 characters, none of []:*?/\\ and unique in the workbook.

    A name from the data loses what could start a formula and the apostrophes Excel refuses at
    either end; control characters become spaces.
    """
    clean = "".join(" " if ch in "[]:*?/\\" or ord(ch) < 32 else ch for ch in name)
    clean = clean.lstrip("".join(FORMULA_START) + "' ").rstrip("' ") or "Sheet"
    title = _clip(clean, MAX_SHEET_TITLE).rstrip("' ")
    n = 2
    while title.lower() in {t.lower() for t in taken}:
        suffix = f" ({n})"
        title = _clip(clean, MAX_SHEET_TITLE - len(suffix)).rstrip("' ") + suffix
        n += 1
    taken.add(title)
    return title


def _clip(text: str, width: int) -> str:
    """At most ``width`` characters, cut at a word boundary when one is near."""
    if len(text) <= width:
        return text
    cut = text[:width]
    if text[width] == " ":
        return cut.rstrip(" ,;-")
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;-")


def write_workbook(
    con: duckdb.DuckDBPyConnection, release_id: str, audience: str, folder: Path
) -> Path:
    """``cs360_<release>_<audience>.xlsx``: notes, a sheet per CS360 dimension, provider status.

    Every string is a text cell, never a formula (``xlsx``).
    """
    have = set(columns(con, "metric_catalog"))
    order = "display_order, metric_id" if "display_order" in have else "metric_id"
    catalog = con.execute(
        f"SELECT metric_id, title, dimension, unit, owner, min_cell_size FROM metric_catalog "
        f"WHERE audience = ? ORDER BY {order}",
        [audience],
    ).fetchall()
    without = metrics_without_data(con, audience)
    dimensions: dict[str, list[tuple]] = {}
    for row in catalog:
        dimensions.setdefault(row[2] or "Other", []).append(row)

    wb = xlsx.Workbook()
    taken: set[str] = set()
    notes = wb.sheet(sheet_title("Notes", taken))
    notes.widths[0] = 110
    for line in _notes(release_id, audience, catalog, without):
        heading = bool(line) and not line.startswith(" ") and line.endswith(":")
        notes.append([line], xlsx.WRAP_BOLD if heading else xlsx.WRAP)

    for dimension, metrics in dimensions.items():
        ws = wb.sheet(sheet_title(dimension, taken))
        ws.widths.update({i: width for i, (_, width) in enumerate(SHEET_COLUMNS)})
        ws.frozen_header = True
        ws.append((c for c, _ in SHEET_COLUMNS), xlsx.HEADER)
        rows = dimension_rows(con, audience, [m[0] for m in metrics])
        for row in rows:
            ws.append(_marked(row))
        if rows:
            _format_values(ws, len(rows))
        else:
            ws.append([NO_DIMENSION_DATA], xlsx.ITALIC)
            for metric_id, title, *_ in metrics:
                ws.append([title, metric_id])

    status = con.execute("SELECT * FROM provider_status ORDER BY provider, dataset")
    names = [d[0] for d in status.description]
    ws = wb.sheet(sheet_title("Provider status", taken))
    ws.widths.update({i: max(12, min(40, len(name) + 4)) for i, name in enumerate(names)})
    ws.frozen_header = True
    ws.append(names, xlsx.HEADER)
    for row in status.fetchall():
        ws.append(NOT_APPLICABLE if v is None else v for v in row)

    target = folder / f"cs360_{release_id}_{audience}.xlsx"
    return write_with(target, wb.save)


def dimension_rows(con: duckdb.DuckDBPyConnection, audience: str, ids: list[str]) -> list[tuple]:
    """The sheet rows of one dimension's metrics, in catalog order (none without data)."""
    return con.execute(
        f"""
        SELECT c.title, v.metric_id, c.unit, v.period_level, v.period_start, v.geo_level,
               v.geo_code, g.name, v.breakdown, v.value, v.numerator, v.denominator,
               CASE WHEN v.period_complete THEN 'complete' ELSE '{PARTIAL}' END,
               v.data_through, v.status
        FROM metric_values AS v
        JOIN metric_catalog AS c USING (audience, metric_id)
        LEFT JOIN geography AS g USING (geo_level, geo_code)
        WHERE v.audience = ? AND list_contains(?, v.metric_id)
        ORDER BY list_position(?, v.metric_id), {PERIOD_ORDER}, {GEO_ORDER}, v.geo_code,
                 v.breakdown <> 'total', v.breakdown, v.period_start
        """,
        [audience, ids, ids],
    ).fetchall()


def metrics_without_data(con: duckdb.DuckDBPyConnection, audience: str) -> list[tuple[str, str]]:
    """(title, metric_id) of the audience's catalog metrics that have no row in metric_values.

    A metric can be in the catalog before its partner's first delivery reaches the release; the
    reader is told so rather than left to wonder where it went.
    """
    return con.execute(
        """
        SELECT c.title, c.metric_id FROM metric_catalog AS c
        WHERE c.audience = ? AND NOT EXISTS (
            SELECT 1 FROM metric_values AS v
            WHERE v.audience = c.audience AND v.metric_id = c.metric_id)
        ORDER BY c.metric_id
        """,
        [audience],
    ).fetchall()


def _format_values(ws: xlsx.Sheet, rows: int) -> None:
    """A filter over the table, and the withheld words in J:L shaded by one rule (not per cell).
    Both need at least one data row: ``J2:L1`` is no range."""
    last = rows + 1
    ws.auto_filter = f"A1:{xlsx.column_letter(len(SHEET_COLUMNS) - 1)}{last}"
    ws.withheld_rule = (f"J2:L{last}", 'OR(J2="suppressed",J2="missing")')


def _marked(row: tuple) -> list:
    """A metric_values row for a sheet: the status word where a number is withheld."""
    out = list(row)
    status = row[-1]
    if status in WITHHELD:
        out[9] = status
        if status == "suppressed":
            out[10] = out[11] = status
        elif out[11] is None:
            out[11] = status
        if out[10] is None:  # missing: nothing was delivered for the period
            out[10] = status
    if out[11] is None:
        out[11] = NOT_APPLICABLE
    if out[13] is None:
        out[13] = NOT_APPLICABLE
    return out


def _notes(
    release_id: str, audience: str, catalog: list[tuple], without: list[tuple[str, str]]
) -> list[str]:
    today = dt.date.today().isoformat()
    lines = [
        f"CS360 release {release_id}: figures for the {audience.upper()} audience "
        f"(written {today}).",
        "",
        "What the sheets hold:",
        "  One sheet per CS360 dimension, with every metric of that dimension by period (month, "
        "quarter, year), geography (city, district, beat) and breakdown.",
        "  'Provider status': each partner's deliveries, how current the data is, and whom to "
        "contact.",
        "",
        "Suppression (why some cells say 'suppressed'):",
        "  A count from 1 up to k - 1 is never shown, and neither is any rate, percent or median "
        "resting on it. Some further cells are withheld as well, so that a hidden count cannot be "
        "worked out by subtracting published numbers (a beat from its district, a month from its "
        "quarter, one sex from the total), in this release or together with earlier ones.",
        "  'suppressed' means withheld for privacy; 'missing' means no data was delivered for "
        "the period or there is no denominator; "
        "'unreliable' means shown, but resting on fewer than 20 events. "
        f"'{NOT_APPLICABLE}' marks a field with no value (a count has no denominator).",
        "  A withheld cell is not zero. Do not replace the word with 0, and do not fill it in "
        "from other sources before sharing: the rules in privacy/policy.yml apply to anything "
        "derived from this workbook.",
        "",
        "Partial periods:",
        f"  'Period complete' says '{PARTIAL}' for a month whose data ends before its last day and "
        "for a quarter or year not over or not delivered whole; 'Data through' is the last date "
        "its data covers. A partial period's value covers only part of it: do not compare it "
        "with whole periods. The catalog's trends, baselines and targets use complete periods "
        "only.",
        "",
        "Text cells:",
        "  Names come from the partners' files. Text that a spreadsheet would take for a formula "
        "(starting with =, +, -, @, a tab or a carriage return) is stored as text and never runs. "
        "The Parquet files hold the same text; in the CSV files it starts with an added '.",
        "",
        "Minimum cell size k by metric:",
    ]
    lines += [f"  {title} ({metric_id}): k = {k}" for metric_id, title, _, _, _, k in catalog]
    if without:
        lines += ["", "Metrics with no data published yet:"]
        lines += [f"  {title} ({metric_id}): {NO_METRIC_DATA}" for title, metric_id in without]
    return lines
