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
from dataclasses import dataclass
from pathlib import Path

BLOCK = 1 << 20
HEADER_PROBE_BYTES = 1 << 20

MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook or a zipped export)",
    b"PAR1": "a Parquet file",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls / OLE document",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip-compressed file",
}


class Rejected(Exception):
    """The file breaks its contract; the message is written to the quarantine reason file."""


@dataclass(frozen=True)
class Scan:
    sha256: str
    size: int
    head: bytes
    nul_at: int | None  # byte offset of the first NUL byte, if any


def scan(path: Path) -> Scan:
    """One streaming pass: the content hash, the first bytes and the first NUL byte."""
    digest = hashlib.sha256()
    head = b""
    nul_at = None
    offset = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
            if not head:
                head = block[:HEADER_PROBE_BYTES]
            if nul_at is None:
                found = block.find(b"\x00")
                if found >= 0:
                    nul_at = offset + found
            offset += len(block)
    return Scan(digest.hexdigest(), offset, head, nul_at)


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
    """The header row (field names stripped), decoded strictly; a UTF-8 BOM is allowed."""
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
    return [field.strip() for field in next(csv.reader(io.StringIO(text), delimiter=delimiter))]


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


def xlsx_to_csv(source: Path, target: Path, name: str, sheet: str) -> list[str]:
    """Stream one worksheet into a UTF-8 CSV whose first column is the sheet's row number.

    Returns the header (the first non-empty row). Wholly empty rows are skipped; every other
    row keeps its sheet row number, so rejects point at the row the data owner sees in Excel.
    """
    import zipfile

    import openpyxl  # heavy: only when a workbook arrives
    from openpyxl.utils.exceptions import InvalidFileException

    handle = source.open("rb")  # a file object: openpyxl then does not judge the name
    try:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise Rejected(
            f"{name}: not a readable .xlsx workbook ({type(exc).__name__}: {exc}). "
            "Save it again from Excel as .xlsx, or send a CSV export."
        ) from exc
    finally:
        if "book" not in locals():
            handle.close()
    try:
        if sheet not in book.sheetnames:
            raise Rejected(
                f"{name}: the workbook has no sheet {sheet!r} (it has: "
                f"{', '.join(map(repr, book.sheetnames))}). Put the table on a sheet named "
                f"{sheet!r}, or change the dataset's sheet in provider.yml."
            )
        header: list[str] | None = None
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            for number, row in enumerate(book[sheet].iter_rows(min_row=1, values_only=True), 1):
                cells = [_cell_text(v) for v in row]
                if not any(c.strip() for c in cells):
                    continue
                if header is None:
                    while cells and not cells[-1].strip():
                        cells.pop()
                    header = [c.strip() for c in cells]
                    writer.writerow(["_line", *header])
                    continue
                cells = (cells + [""] * len(header))[: len(header)]
                writer.writerow([number, *cells])
    finally:
        book.close()
        handle.close()
    if header is None:
        raise Rejected(f"{name}: sheet {sheet!r} is empty. Export it again with its header row.")
    return header
