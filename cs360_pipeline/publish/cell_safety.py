"""Text cells a spreadsheet opens as text, never as a formula (OWASP's CSV injection guidance).

Names in the exports come from partners' files: a beat called ``=HYPERLINK(...)`` or
``@SUM(1+1)`` would run as a formula in Excel or LibreOffice. A spreadsheet starts a formula at
a leading ``=``, ``+``, ``-`` or ``@``, and a leading tab or carriage return can hide one, so
text starting with any of them is neutralised where a spreadsheet reads it:

- CSV: the text gets a leading ``'``, the usual mark for "this is text" (CSV quoting is left to
  the writer, which quotes the whole field, prefix included).
- Excel: every string is stored as a text cell, never a formula, and those that could start a
  formula also carry Excel's quote-prefix flag, so editing the cell does not turn it into one
  either (``xlsx``). The value stays exactly the name.

A plain number written as text (``-3.5``, from a withheld-or-number column) is left alone: it
opens as the number it is. Parquet is not read by spreadsheets and keeps the true values.
"""

from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_GUARD = "'"
# ASCII digits only, as DuckDB's regular expressions read them: the SQL twin below agrees.
PLAIN_NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
PLAIN_NUMBER = re.compile(PLAIN_NUMBER_PATTERN)
NOT_IN_XML = "\N{REPLACEMENT CHARACTER}"


def could_run(text: str) -> bool:
    """Whether a spreadsheet could take ``text`` for a formula: the one rule every writer uses."""
    return text.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(text)


def csv_text(text: str | None) -> str | None:
    """``text`` as a CSV field: prefixed with ``'`` when it could run; NULL stays NULL."""
    if text is None:
        return None
    return CSV_GUARD + text if could_run(text) else text


def csv_text_macro(name: str) -> str:
    """``csv_text`` as a DuckDB macro ``name(text)``, so a CSV export guards its text inside
    the database instead of calling Python once per value."""
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_START)
    return (
        f"CREATE OR REPLACE TEMP MACRO {name}(x) AS CASE WHEN left(x, 1) IN ({starts}) "
        f"AND NOT regexp_full_match(x, '{PLAIN_NUMBER_PATTERN}') "
        f"THEN '{CSV_GUARD}{CSV_GUARD}' || x ELSE x END"
    )
