"""A small Excel (.xlsx) writer for the PST's workbook: text, numbers and dates, a few styles.

A general library builds an object per cell; the demo's workbook has ~400,000 cells and took
about 10 s that way, most of a refresh's export step. Here each sheet's XML is written as text,
row by row, straight into the zip file.

What a spreadsheet must never do with a partner's text is run it: every string is an inline
text cell (``t="inlineStr"``), never a formula, and text that could start one also carries
Excel's quote-prefix style (``cell_safety.could_run``), so editing the cell keeps it text.
Characters XML cannot hold become U+FFFD.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from cs360_pipeline.publish.cell_safety import NOT_IN_XML, could_run

# Cell styles (indexes into styles.xml's cellXfs); each has a quote-prefixed twin at +QUOTED.
PLAIN, HEADER, WRAP, WRAP_BOLD, ITALIC, DATE, DATETIME = range(7)
QUOTED = 7
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
NEEDS_ESCAPE = re.compile(r"[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
EPOCH = dt.datetime(1899, 12, 30)  # Excel's day 0 (as its 1900 date system counts)

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

FONTS = ("", "<b/>", "<i/>")  # regular, bold, italic
FILLS = ("none", "gray125", "header")  # the first two are required by the format
HEADER_FILL = '<patternFill patternType="solid"><fgColor rgb="FFDCE6F0"/></patternFill>'
# Each cell style: (font, fill, number format, wrapped), in the order of the constants above.
CELL_STYLES = (
    (0, 0, 0, False), (1, 2, 0, False), (0, 0, 0, True), (1, 0, 0, True), (2, 0, 0, False),
    (0, 0, 164, False), (0, 0, 165, False),
)  # fmt: skip
# The conditional format for withheld words: italic brown text on a light amber fill.
_WITHHELD_DXF = (
    '<dxf><font><i/><color rgb="FF7A4A00"/></font><fill><patternFill patternType="solid">'
    '<fgColor rgb="FFFCEBC7"/><bgColor rgb="FFFCEBC7"/></patternFill></fill></dxf>'
)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


LETTERS = [column_letter(i) for i in range(16384)]  # every column a sheet can have


@functools.lru_cache(maxsize=65536)
def _text_cell(value: str, style: int) -> str:
    """A text cell after its reference (sheets repeat titles, codes and status words)."""
    quoted = style + QUOTED if could_run(value) else style
    if NEEDS_ESCAPE.search(value):
        value = escape(NOT_XML.sub(NOT_IN_XML, value), {"\r": "&#13;"})
    return f' t="inlineStr" s="{quoted}"><is><t xml:space="preserve">{value}</t></is></c>'


def _cell(ref: str, value: object, style: int) -> str:
    """One ``<c>`` element; '' for an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str):
        return f'<c r="{ref}"{_text_cell(value, style)}'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b" s="{style}"><v>{int(value)}</v></c>'
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        days = (value - EPOCH).total_seconds() / 86400
        return f'<c r="{ref}" s="{DATETIME}"><v>{days!r}</v></c>'
    if isinstance(value, dt.date):
        return f'<c r="{ref}" s="{DATE}"><v>{(value - EPOCH.date()).days}</v></c>'
    if isinstance(value, (int, float, Decimal)):
        number = float(value) if isinstance(value, Decimal) else value
        if isinstance(number, float) and not math.isfinite(number):
            return _cell(ref, str(number), style)
        return f'<c r="{ref}" s="{style}"><v>{number!r}</v></c>'
    return _cell(ref, str(value), style)


@dataclass
class Sheet:
    """A worksheet: rows are turned into XML as they are appended."""

    title: str
    widths: dict[int, float] = field(default_factory=dict)
    frozen_header: bool = False
    auto_filter: str | None = None
    withheld_rule: tuple[str, str] | None = None  # (range, formula)
    _rows: list[str] = field(default_factory=list)

    def append(self, values: Iterable[object], style: int = PLAIN) -> None:
        r = len(self._rows) + 1
        cells = "".join(_cell(f"{LETTERS[i]}{r}", v, style) for i, v in enumerate(values))
        self._rows.append(f'<row r="{r}">{cells}</row>')

    @property
    def rows(self) -> int:
        return len(self._rows)

    def xml(self) -> Iterable[str]:
        yield f'{HEAD}<worksheet xmlns="{MAIN}" xmlns:r="{RELS}">'
        if self.frozen_header:
            yield (
                '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
                'activePane="bottomLeft" state="frozen"/>'
                '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
            )
        if self.widths:
            cols = "".join(
                f'<col min="{i + 1}" max="{i + 1}" width="{w}" customWidth="1"/>'
                for i, w in sorted(self.widths.items())
            )
            yield f"<cols>{cols}</cols>"
        yield "<sheetData>"
        yield from self._rows
        yield "</sheetData>"
        if self.auto_filter:
            yield f'<autoFilter ref="{self.auto_filter}"/>'
        if self.withheld_rule:
            where, formula = self.withheld_rule
            yield (
                f'<conditionalFormatting sqref="{where}"><cfRule type="expression" dxfId="0" '
                f'priority="1"><formula>{escape(formula)}</formula></cfRule>'
                "</conditionalFormatting>"
            )
        yield "</worksheet>"


@dataclass
class Workbook:
    sheets: list[Sheet] = field(default_factory=list)

    def sheet(self, title: str) -> Sheet:
        self.sheets.append(Sheet(title))
        return self.sheets[-1]

    def save(self, path: Path) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            z.writestr("[Content_Types].xml", self._content_types())
            z.writestr(
                "_rels/.rels",
                f'{HEAD}<Relationships xmlns="{PACKAGE_RELS}"><Relationship Id="rId1" '
                f'Type="{RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
            )
            z.writestr("xl/workbook.xml", self._workbook())
            z.writestr("xl/_rels/workbook.xml.rels", self._workbook_rels())
            z.writestr("xl/styles.xml", _styles())
            for i, sheet in enumerate(self.sheets, start=1):
                with z.open(f"xl/worksheets/sheet{i}.xml", "w") as part:
                    for chunk in sheet.xml():
                        part.write(chunk.encode("utf-8"))

    def _content_types(self) -> str:
        sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
        sheets = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{sheet_type}"/>'
            for i in range(1, len(self.sheets) + 1)
        )
        office = "application/vnd.openxmlformats-officedocument.spreadsheetml"
        return (
            f'{HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{office}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{office}.styles+xml"/>'
            f"{sheets}</Types>"
        )

    def _workbook(self) -> str:
        sheets = "".join(
            f'<sheet name={quoteattr(s.title)} sheetId="{i}" r:id="rId{i}"/>'
            for i, s in enumerate(self.sheets, start=1)
        )
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
            f"{escape(_sheet_ref(s.title, s.auto_filter))}</definedName>"
            for i, s in enumerate(self.sheets)
            if s.auto_filter
        )
        defined = f"<definedNames>{names}</definedNames>" if names else ""
        return (
            f'{HEAD}<workbook xmlns="{MAIN}" xmlns:r="{RELS}"><bookViews><workbookView/>'
            f"</bookViews><sheets>{sheets}</sheets>{defined}</workbook>"
        )

    def _workbook_rels(self) -> str:
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="{RELS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, len(self.sheets) + 1)
        )
        styles = len(self.sheets) + 1
        return (
            f'{HEAD}<Relationships xmlns="{PACKAGE_RELS}">{rels}'
            f'<Relationship Id="rId{styles}" Type="{RELS}/styles" Target="styles.xml"/>'
            "</Relationships>"
        )


def _sheet_ref(title: str, cells: str) -> str:
    """``'Sheet name'!$A$1:$O$9``: a workbook-level reference to a range of a sheet."""
    absolute = re.sub(r"([A-Z]+)(\d+)", r"$\1$\2", cells)
    return "'" + title.replace("'", "''") + "'!" + absolute


def _styles() -> str:
    xfs = []
    for quoted in (False, True):
        for font, fill, fmt, wrap in CELL_STYLES:
            attrs = f'numFmtId="{fmt}" fontId="{font}" fillId="{fill}" borderId="0" xfId="0"'
            attrs += ' applyNumberFormat="1"' if fmt else ""
            attrs += ' applyFont="1"' if font else ""
            attrs += ' applyFill="1"' if fill else ""
            attrs += ' quotePrefix="1"' if quoted else ""
            attrs += ' applyAlignment="1"' if wrap else ""
            align = '<alignment wrapText="1" vertical="top"/>' if wrap else ""
            xfs.append(f"<xf {attrs}>{align}</xf>")
    fonts = "".join(f'<font>{f}<sz val="11"/><name val="Calibri"/></font>' for f in FONTS)
    fills = "".join(
        f"<fill>{HEADER_FILL if f == 'header' else f'<patternFill patternType={f!r}/>'}</fill>"
        for f in FILLS
    )
    return (
        f'{HEAD}<styleSheet xmlns="{MAIN}">'
        '<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
        '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
        f'<fonts count="{len(FONTS)}">{fonts}</fonts><fills count="{len(FILLS)}">{fills}</fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        f'</cellStyleXfs><cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        f'<dxfs count="1">{_WITHHELD_DXF}</dxfs></styleSheet>'
    )
