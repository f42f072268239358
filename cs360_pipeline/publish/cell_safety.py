"""Text cells a spreadsheet opens as text, never as a formula (OWASP's CSV injection guidance).

Names in the exports come from partners' files: a beat called ``=HYPERLINK(...)`` or
``@SUM(1+1)`` would run as a formula in Excel or LibreOffice. A spreadsheet starts a formula at
a leading ``=``, ``+``, ``-`` or ``@``, and a leading tab or carriage return can hide one, so
text starting with any of them is neutralised where a spreadsheet reads it:

- CSV: the text gets a leading ``'``, the usual mark for "this is text" (CSV quoting is left to
  the writer, which quotes the whole field, prefix included).
- Excel: every string is stored as a text cell (openpyxl would store a str starting with ``=``
  as a formula), and those that could start a formula also carry Excel's quote-prefix flag, so
  editing the cell does not turn it into one either. The value stays exactly the name.

A plain number written as text (``-3.5``, from a withheld-or-number column) is left alone: it
opens as the number it is. Parquet is not read by spreadsheets and keeps the true values.
"""

from __future__ import annotations

import re
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_GUARD = "'"
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
NOT_IN_XML = "\N{REPLACEMENT CHARACTER}"


def could_run(text: str) -> bool:
    """Whether a spreadsheet could take ``text`` for a formula: the one rule every writer uses."""
    return text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text)


def csv_text(text: str | None) -> str | None:
    """``text`` as a CSV field: prefixed with ``'`` when it could run; NULL stays NULL."""
    if text is None:
        return None
    return CSV_GUARD + text if could_run(text) else text


def sheet_cell(ws: Any, value: Any) -> Any:
    """A write-only cell for ``value``; a string is always a text cell, never a formula.

    Numbers, dates and booleans keep their type; ``None`` stays an empty cell. Characters XML
    cannot hold (control characters other than tab, newline and carriage return) become U+FFFD
    instead of failing the whole workbook.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        return WriteOnlyCell(ws, value=value)
    cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub(NOT_IN_XML, value))
    cell.data_type = "s"  # never "f" (formula) or "e" (an error such as #N/A)
    if could_run(value):
        cell.quotePrefix = True
    return cell
