"""Turning a delivered file into something DuckDB reads: checks of its bytes, transcoding, Excel.

Everything here streams: a file is read in blocks (hash, NUL scan, transcoding) or row by row
(openpyxl read-only for .xlsx), never held whole in memory.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 20
HEADER_PROBE_BYTES = 1 << 20
# Longest line (or multi-line quoted record) accepted: DuckDB's own default maximum line size,
# checked before DuckDB reads, because beyond its read buffer DuckDB drops such a line unsaid.
MAX_LINE_BYTES = 2_000_000
NAME_CHARS = 60
# Characters that make a text unsafe to show or to publish as a label: C0/C1 controls, zero-width
# and bidirectional marks (which reorder what a reader sees), and the byte order mark. The same
# set twice: for Python's re and for DuckDB's RE2 (which spells code points \x{...}).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
CONTROL_SQL = r"[\x00-\x1f\x7f-\x9f\x{200B}-\x{200F}\x{202A}-\x{202E}\x{2066}-\x{2069}\x{FEFF}]"
NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_ .()#&%/-]*")

MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook or a zipped export)",
    b"PAR1": "a Parquet file",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls / OLE document",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip-compressed file",
}


class Rejected(Exception):
    """The file breaks its contract; the message is written to the quarantine reason file."""


# -- describing untrusted text without repeating it -------------------------------------------


def _char_class(ch: str) -> str:
    if CONTROL.match(ch):
        return "control characters"
    if "0" <= ch <= "9":
        return "digits"
    if ch == " ":
        return "spaces"
    if ch.isalpha():
        return "letters"
    return "other characters"


SHAPE_ORDER = ("letters", "digits", "spaces", "other characters", "control characters")


def _join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def shape(value: str) -> str:
    """What a value looks like, never what it is: its length and the kinds of its characters.

    A reason or a reject sample may leave the restricted zone, and a shifted row puts any value
    (an address, a date of birth) in any column, so only this description is ever shown.
    """
    if not value:
        return "empty"
    kinds = {_char_class(ch) for ch in value}
    unit = "character" if len(value) == 1 else "characters"
    return f"{len(value)} {unit}: " + _join_words([k for k in SHAPE_ORDER if k in kinds])


def _shape_macro() -> str:
    """A DuckDB macro ``value_shape(v)`` computing :func:`shape` in SQL, for rows in bulk."""
    classes = [
        ("letters", r"\p{L}"),
        ("digits", "[0-9]"),
        ("spaces", " "),
        ("other characters", "[^\\p{L}0-9 " + CONTROL_SQL[1:]),
        ("control characters", CONTROL_SQL),
    ]
    found = ", ".join(
        f"CASE WHEN regexp_matches(v, '{pattern}') THEN '{word}' END" for word, pattern in classes
    )
    w = f"list_filter([{found}], lambda w: w IS NOT NULL)"
    joined = (
        f"CASE WHEN len({w}) = 1 THEN ({w})[1] ELSE array_to_string(({w})[1:len({w}) - 1], ', ')"
        f" || ' and ' || ({w})[len({w})] END"
    )
    return (
        "CREATE OR REPLACE TEMP MACRO value_shape(v) AS (CASE WHEN v IS NULL THEN NULL "
        "WHEN v = '' THEN 'empty' ELSE CAST(length(v) AS VARCHAR) || CASE WHEN length(v) = 1 "
        f"THEN ' character: ' ELSE ' characters: ' END || {joined} END)"
    )


SHAPE_MACRO = _shape_macro()


def shape_sql(text: str) -> str:
    """SQL giving :func:`shape` of an expression; needs :data:`SHAPE_MACRO` run first."""
    return f"value_shape(CAST({text} AS VARCHAR))"


def safe_text(text: str, limit: int = NAME_CHARS) -> str:
    """A partner-supplied name (header, sheet) made printable: controls escaped, length capped."""
    shown = CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def header_label(text: str, position: int) -> str:
    """A header field for a message: a name-like header by name, anything else by shape only.

    A headerless export's first row is data, so a field that does not look like a column name
    (a date, an address, quotes or controls) is described, never repeated.
    """
    if len(text) <= NAME_CHARS and NAME_LIKE.fullmatch(text):
        return f"{text} (column {position})"
    return f"column {position} (header not shown: {shape(text)})"


@dataclass(frozen=True)
class Scan:
    sha256: str
    size: int
    head: bytes
    nul_at: int | None  # byte offset of the first NUL byte, if any


def scan_blocks(blocks: Iterable[bytes]) -> Scan:
    """One streaming pass over a file's blocks: the content hash, the first bytes, the first NUL."""
    digest = hashlib.sha256()
    head = b""
    nul_at = None
    offset = 0
    for block in blocks:
        digest.update(block)
        if not head:
            head = block[:HEADER_PROBE_BYTES]
        if nul_at is None:
            found = block.find(b"\x00")
            if found >= 0:
                nul_at = offset + found
        offset += len(block)
    return Scan(digest.hexdigest(), offset, head, nul_at)


def scan(path: Path) -> Scan:
    """:func:`scan_blocks` over a file on disk."""
    with path.open("rb") as handle:
        return scan_blocks(iter(lambda: handle.read(BLOCK), b""))


def what_binary(head: bytes) -> str | None:
    """A name for a well-known binary file type, from its first bytes."""
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text (export it as UTF-8)"
    return None


def check_text(name: str, found: Scan, encoding: str, file_format: str) -> None:
    """Refuse a file that is not delimited text at all, with a specific reason."""
    if not found.head.strip():
        raise Rejected(f"{name}: the file is empty. Export it again with its header row.")
    kind = what_binary(found.head)
    if kind is not None:
        raise Rejected(
            f"{name}: this is {kind}, not a {file_format.upper()} text table. Send the "
            f"{file_format.upper()} export itself, or change the dataset's format in provider.yml."
        )
    if found.nul_at is not None:
        raise Rejected(
            f"{name}: the file contains a NUL byte (at byte offset {found.nul_at}), so it is "
            f"binary, not {encoding} text. Export it again as plain {file_format.upper()}."
        )


def read_header(path: Path, name: str, delimiter: str, encoding: str = "utf-8") -> list[str]:
    """The header row (field names stripped), decoded strictly; UTF-8 BOMs are allowed."""
    with path.open("rb") as handle:
        probe = handle.read(HEADER_PROBE_BYTES)
    if not probe.strip():
        raise Rejected(f"{name}: the file is empty. Export it again with its header row.")
    lines = probe.splitlines()
    first_line = next(line for line in lines if line.strip())
    codec = "utf-8-sig" if encoding.startswith("utf-8") else encoding
    try:
        text = first_line.decode(codec)
    except UnicodeDecodeError as exc:
        raise Rejected(
            f"{name}: line 1 is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "Save the export as UTF-8 CSV. If it uses another encoding, declare it in "
            "provider.yml (e.g. encoding: cp1252)."
        ) from exc
    text = strip_byte_order_marks(text)
    return [field.strip() for field in next(csv.reader(io.StringIO(text), delimiter=delimiter))]


# A UTF-8 byte-order mark decoded as cp1252/latin-1 and encoded again: exports that went
# through two tools arrive with "ï»¿" before the first header even when read as utf-8-sig.
MISDECODED_BOM = "\ufeff".encode().decode("latin-1")


def strip_byte_order_marks(text: str) -> str:
    """The header line without leading byte-order marks, plain or encoded twice (any number)."""
    while True:
        stripped = text.removeprefix("\ufeff").removeprefix(MISDECODED_BOM)
        if stripped == text:
            return text
        text = stripped


def _too_long(name: str, number: int, length: int, limit: int) -> Rejected:
    return Rejected(
        f"{name}: line {number} is {length:,} bytes long, over the limit of {limit:,} bytes per "
        "line. Rule: every line must be a record no longer than the limit, so that no row is "
        "dropped unread. The file is probably not line-delimited text, or a field lost its "
        "closing quote. Export it again."
    )


def _rest_of_line(handle: BinaryIO) -> int:
    """Bytes up to and including the next line break, counted without keeping them."""
    length = 0
    for block in iter(lambda: handle.read(BLOCK), b""):
        ends = [i for i in (block.find(b"\n"), block.find(b"\r")) if i >= 0]
        if ends:
            return length + min(ends)
        length += len(block)
    return length


def physical_lines(handle: BinaryIO, name: str, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The file's lines (endings kept: LF, CRLF or CR), refusing the first one over ``limit``.

    Streams in blocks; an over-long line is measured to its end but never held in memory.
    """
    carry = b""
    number = 0
    for block in iter(lambda: handle.read(BLOCK), b""):
        pieces = (carry + block).splitlines(keepends=True)
        carry = pieces.pop() if pieces and not pieces[-1].endswith(b"\n") else b""
        for piece in pieces:
            number += 1
            if len(piece) > limit:
                raise _too_long(name, number, len(piece.rstrip(b"\r\n")), limit)
            yield piece
        if len(carry) > limit:
            raise _too_long(name, number + 1, len(carry) + _rest_of_line(handle), limit)
    if carry:
        yield carry


def count_records(path: Path, name: str, delimiter: str, limit: int = MAX_LINE_BYTES) -> int:
    """Data records in a delimited file by Python's csv module: a check on DuckDB's reader.

    Blank lines are not records (DuckDB skips them too). The header must be on line 1, since
    DuckDB takes line 1 as the header whatever it holds. A quoted record spanning lines may not
    exceed ``limit`` either.
    """
    csv.field_size_limit(max(csv.field_size_limit(), limit))
    records = 0
    with path.open("rb") as handle:
        lines = physical_lines(handle, name, limit)
        first = next(lines, b"")
        if first.lstrip(b"\xef\xbb\xbf").strip(b" \t\r\n") == b"":
            raise Rejected(
                f"{name}: line 1 is blank. Rule: the header row must be the file's first line. "
                "Remove the blank line(s) above the header and re-send."
            )
        texts = (line.decode("utf-8", "replace") for line in lines)
        reader = csv.reader(texts, delimiter=delimiter, quotechar='"', doublequote=True)
        try:
            for row in reader:
                if row:
                    records += 1
        except csv.Error as exc:
            raise Rejected(
                f"{name}: the record starting near line {reader.line_num + 1} cannot be read as "
                f"CSV ({str(exc).split('(')[0].strip()}): a quoted field is longer than "
                f"{limit:,} bytes or lost its closing quote. Export it again."
            ) from None
    return records


def transcode(source: Path, target: Path, name: str, encoding: str) -> None:
    """Rewrite a latin-1 / cp1252 file as UTF-8, block by block."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with source.open("rb") as src, target.open("wb") as out:
        for block in iter(lambda: src.read(BLOCK), b""):
            try:
                out.write(decoder.decode(block).encode("utf-8"))
            except UnicodeDecodeError as exc:
                bad = block[exc.start : exc.start + 1].hex()
                raise Rejected(
                    f"{name}: byte 0x{bad} at offset {offset + exc.start} is not {encoding} "
                    f"text. Check the export's encoding (provider.yml encoding: {encoding})."
                ) from exc
            offset += len(block)
        out.write(decoder.decode(b"", final=True).encode("utf-8"))


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Sheet:
    """A worksheet streamed to CSV: its header, the rows written, and rows refused on the way."""

    header: list[str]
    rows: int
    rejects: list[tuple[int, str]]  # (sheet row, kind) for rows not written


def check_workbook_size(source: Path, name: str, max_bytes: int) -> None:
    """Refuse a workbook whose parts unpack to more than ``max_bytes``, before any is read.

    An .xlsx is a zip: a few kilobytes can unpack to gigabytes of sheet XML. The sizes come from
    the zip directory; Python's zipfile stops a part at its declared size (and fails its CRC),
    so a part cannot unpack to more than it declares.
    """
    import zipfile

    try:
        with zipfile.ZipFile(source) as archive:
            parts = [(i.filename, i.file_size) for i in archive.infolist()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Rejected(
            f"{name}: not a readable .xlsx workbook ({type(exc).__name__}). "
            "Save it again from Excel as .xlsx, or send a CSV export."
        ) from exc
    total = sum(size for _, size in parts)
    if total > max_bytes:
        part, size = max(parts, key=lambda p: p[1])
        raise Rejected(
            f"{name}: the workbook unpacks to {total / 1048576:,.2f} MB (its largest part, "
            f"{safe_text(part)}, to {size / 1048576:,.2f} MB), over this dataset's size cap of "
            f"{max_bytes / 1048576:g} MB (max_file_mb), which applies to the unpacked sheets. "
            "Split the delivery or send a CSV export."
        )


def _sheet_rows(book: object, name: str, sheet: str) -> Iterator[tuple[int, tuple]]:
    """(sheet row number, values) of every row, reading past a wrong ``<dimension>``.

    openpyxl in read-only mode trusts the sheet's stored dimension (A1:E2 reads two rows of five
    columns, whatever the sheet holds), so the dimension is reset and every row is read.
    """
    worksheet = book[sheet]  # type: ignore[index]
    worksheet.reset_dimensions()
    number = 0
    try:
        for number, row in enumerate(worksheet.iter_rows(min_row=1, values_only=True), 1):
            yield number, row
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise Rejected(
            f"{name}: sheet {safe_text(sheet)!r} row {number + 1} cannot be read "
            f"({type(exc).__name__}: a cell holds a value of the wrong kind for its type). "
            "Save the workbook again from Excel, or send a CSV export."
        ) from None


def xlsx_to_csv(
    source: Path, target: Path, name: str, sheet: str, max_bytes: int, limit: int = MAX_LINE_BYTES
) -> Sheet:
    """Stream one worksheet into a UTF-8 CSV whose first column is the sheet's row number.

    The header is the first non-empty row. Wholly empty rows are skipped; every other row keeps
    its sheet row number, so rejects point at the row the data owner sees in Excel. A row with
    filled cells beyond the header is refused (not cut short), and a row longer than ``limit``
    quarantines the file, as for CSV.
    """
    import zipfile

    import openpyxl  # heavy: only when a workbook arrives
    from openpyxl.utils.exceptions import InvalidFileException

    check_workbook_size(source, name, max_bytes)
    handle = source.open("rb")  # a file object: openpyxl then does not judge the name
    try:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        handle.close()
        raise Rejected(
            f"{name}: not a readable .xlsx workbook ({type(exc).__name__}). "
            "Save it again from Excel as .xlsx, or send a CSV export."
        ) from exc
    try:
        if sheet not in book.sheetnames:
            raise Rejected(
                f"{name}: the workbook has no sheet {sheet!r} (it has: "
                f"{', '.join(repr(safe_text(s)) for s in book.sheetnames)}). Put the table on a "
                f"sheet named {sheet!r}, or change the dataset's sheet in provider.yml."
            )
        with target.open("w", encoding="utf-8", newline="") as out:
            written = _write_sheet(_sheet_rows(book, name, sheet), out, name, limit)
    finally:
        book.close()
        handle.close()
    if written is None:
        raise Rejected(f"{name}: sheet {sheet!r} is empty. Export it again with its header row.")
    return written


def _write_sheet(
    rows: Iterator[tuple[int, tuple]], out: io.TextIOBase, name: str, limit: int
) -> Sheet | None:
    """Write the sheet's rows as CSV; None when the sheet has no non-empty row at all."""
    writer = csv.writer(out, lineterminator="\n")
    header: list[str] | None = None
    sheet = Sheet([], 0, [])
    for number, row in rows:
        cells = [_cell_text(v) for v in row]
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            while cells and not cells[-1].strip():
                cells.pop()
            header = [c.strip() for c in cells]
            sheet.header = header
            writer.writerow(["_line", *header])
            continue
        length = sum(len(c.encode("utf-8")) + 1 for c in cells)
        if length > limit:
            raise _too_long(name, number, length, limit)
        if any(c.strip() for c in cells[len(header) :]):
            sheet.rejects.append((number, "TOO MANY COLUMNS"))
            continue
        writer.writerow([number, *(cells + [""] * len(header))[: len(header)]])
        sheet.rows += 1
    return sheet if header is not None else None
