"""The life of a delivered file: inbox -> snapshot in ``.work/`` -> archive or quarantine.

A file is never read where the partner put it. One streaming pass copies it into the provider's
``.work/`` folder while hashing it; that snapshot is what is checked, loaded and finally moved
into ``archive/`` (or ``quarantine/``), so the bytes kept are the bytes hashed and loaded. The
inbox file is removed only if it is still the very file that was copied (same device, inode,
size and modification time); a file that changed while it was copied is left to settle.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import stat
import time
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cs360_pipeline.ingest.readers import BLOCK, Scan, scan_blocks
from cs360_pipeline.settings import settle_seconds

IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")
NAME_MAX = 255  # bytes in one file name, on every filesystem the pipeline runs on
REASON_SUFFIX = ".reason.txt"
# A kept name leaves room for its reason file's suffix, so both always fit.
KEPT_NAME_MAX = NAME_MAX - len(REASON_SUFFIX)
CUT_MARK = "~"
LONGEST_EXTENSION = 16
DELIVERY_PREFIX = "delivery-"
# Characters that would make a name misleading when printed: bidirectional overrides.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class Snapshot:
    """A delivered file copied into ``.work/``, and what the copy saw of the original."""

    path: Path
    scan: Scan
    identity: str  # the inbox file's dev:inode:size:mtime_ns when it was copied


@dataclass(frozen=True)
class DropFolder:
    """The folders of one provider: inbox, archive, quarantine and the ``.work/`` scratch."""

    root: Path
    # A file modified less than this many seconds ago may still be being written: it is left
    # for the next run. One setting everywhere (CS360_SETTLE_SECONDS), unless given here.
    settle_seconds: float = field(default_factory=settle_seconds)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def work(self) -> Path:
        return self.root / ".work"

    def pending(self, pattern: str) -> list[Path]:
        """Settled regular files in the inbox that match a dataset's pattern, by name.

        Hidden files, names still being written (``.part``, ``.tmp``) and files changed within
        ``settle_seconds`` are left alone. Symlinks and folders are :meth:`strays`.
        """
        return [p for p, mode in self._settled(pattern) if stat.S_ISREG(mode)]

    def strays(self, pattern: str) -> list[Path]:
        """Settled inbox entries matching the pattern that are not regular files.

        Symlinks (never followed), folders, pipes and sockets: refused, not left forever.
        """
        return [p for p, mode in self._settled(pattern) if not stat.S_ISREG(mode)]

    def matching(self, pattern: str) -> list[Path]:
        """Every inbox entry a dataset would take, settled or not (for recovery)."""
        return [p for p, _ in self._entries(pattern)]

    def _settled(self, pattern: str) -> list[tuple[Path, int]]:
        now = time.time()
        return [
            (path, mode)
            for path, mode in self._entries(pattern)
            if not self.settle_seconds or now - _mtime(path) >= self.settle_seconds
        ]

    def _entries(self, pattern: str) -> list[tuple[Path, int]]:
        """(path, lstat mode) of the inbox entries whose name matches, oldest name first."""
        if not self.inbox.is_dir():
            return []
        found = []
        for path in sorted(self.inbox.iterdir()):
            name = path.name
            if name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES):
                continue
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            try:
                found.append((path, os.lstat(path).st_mode))
            except FileNotFoundError:
                continue  # taken away while listing
        return found

    # -- names --------------------------------------------------------------------------------

    def archive_path(self, name: str, sha256: str) -> Path:
        """Where an accepted file's bytes are kept: ``<sha256[:16]>__<name>``, always fitting."""
        return _inside(self.archive, kept_name(sha256[:16], name))

    def quarantine_path(self, name: str, tag: str) -> Path:
        """Where a refused file is kept, with its reason file beside it."""
        return _inside(self.quarantine, kept_name(tag[:16], name))

    # -- the snapshot -------------------------------------------------------------------------

    def delivery_dir(self, delivery_id: str) -> Path:
        return self.work / f"{DELIVERY_PREFIX}{delivery_id}"

    def take_snapshot(self, path: Path, delivery_id: str, name: str) -> Snapshot | None:
        """Copy the inbox file into ``.work/`` while hashing it; None if it changed meanwhile.

        The file is opened without following a link, and its identity is taken from the open
        handle before the copy and from the inbox entry after it: if the two differ, or the
        byte count does, the partner is still writing it, and the copy is thrown away.
        """
        target_dir = self.delivery_dir(delivery_id)
        target_dir.mkdir(parents=True)
        target = _inside(target_dir, fit(name, NAME_MAX))
        try:
            scan, opened = _copy_and_scan(path, target)
            after = identity_of(os.lstat(path))
        except BaseException:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise
        before = identity_of(opened)
        if after != before or scan.size != opened.st_size:
            shutil.rmtree(target_dir, ignore_errors=True)
            return None
        return Snapshot(target, scan, before)

    def drop_snapshot(self, delivery_id: str) -> None:
        """Forget an uncommitted snapshot (its run failed or died before the ledger row)."""
        shutil.rmtree(self.delivery_dir(delivery_id), ignore_errors=True)

    def keep(self, source: Path, target: Path, reason: str | None = None) -> Path:
        """Move a snapshot (or a refused inbox entry) to its kept place, reason file first.

        The reason file is written before the move, so once the bytes are in quarantine their
        reason is too. A symlink or folder is moved itself (renamed), never followed or copied.
        """
        if reason is not None:
            write_reason(target, reason)
        _move(source, target)
        work = source.parent
        if work.parent == self.work and work.name.startswith(DELIVERY_PREFIX):
            shutil.rmtree(work, ignore_errors=True)
        return target

    def remove_if_unchanged(self, path: Path, identity: str) -> bool:
        """Delete the inbox file only if it is still the file that was copied."""
        try:
            if identity_of(os.lstat(path)) != identity:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def leftover_deliveries(self) -> list[tuple[str, Path]]:
        """(delivery id, snapshot) of every delivery folder a run left in ``.work/``."""
        if not self.work.is_dir():
            return []
        found = []
        for entry in sorted(self.work.iterdir()):
            if entry.is_dir() and entry.name.startswith(DELIVERY_PREFIX):
                files = sorted(entry.iterdir())
                found.append((entry.name[len(DELIVERY_PREFIX) :], files[0] if files else entry))
        return found

    def clear_scratch(self) -> list[str]:
        """Remove every scratch file (links, transcoded copies) a dead run left in ``.work/``."""
        if not self.work.is_dir():
            return []
        removed = []
        for entry in sorted(self.work.iterdir()):
            if entry.name.startswith(DELIVERY_PREFIX) and entry.is_dir():
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
        return removed

    # -- scratch files for readers ------------------------------------------------------------

    @contextmanager
    def work_file(self, sha256: str, suffix: str) -> Iterator[Path]:
        """A scratch file named by hex digits only (transcoded text, a converted sheet)."""
        self.work.mkdir(exist_ok=True)
        scratch = self.work / f"{sha256}{suffix}"
        scratch.unlink(missing_ok=True)
        try:
            yield scratch
        finally:
            scratch.unlink(missing_ok=True)

    @contextmanager
    def readable_copy(self, path: Path, sha256: str) -> Iterator[Path]:
        """The file under a name of hex digits only, for readers that expand globs in names.

        A hard link costs nothing; where links are impossible the bytes are copied.
        """
        self.work.mkdir(exist_ok=True)
        link = self.work / f"{sha256}.input"
        link.unlink(missing_ok=True)
        try:
            os.link(path, link)
        except OSError:
            shutil.copyfile(path, link)
        try:
            yield link
        finally:
            link.unlink(missing_ok=True)


def new_delivery_id() -> str:
    """A ledger row's own id: 16 hex digits, unique even for the same bytes under one name."""
    return uuid.uuid4().hex[:16]


def identity_of(info: os.stat_result) -> str:
    """``dev:inode:size:mtime_ns``: a re-sent file (new inode or new mtime) never matches."""
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def printable_name(name: str) -> str:
    """A delivered name as text anyone can read and any database can store.

    Bytes that are not UTF-8 become ``\\xNN`` escapes, control characters (newlines, tabs),
    line separators and bidirectional overrides become ``\\xNN`` / ``\\uNNNN`` escapes.
    """
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return ch


def fit(name: str, limit: int) -> str:
    """The name cut to ``limit`` UTF-8 bytes, keeping its extension and marking the cut."""
    if len(name.encode()) <= limit:
        return name
    stem, ext = _split_extension(name)
    room = limit - len(ext.encode()) - len(CUT_MARK)
    cut = stem.encode()[: max(room, 0)].decode("utf-8", "ignore")
    return f"{cut}{CUT_MARK}{ext}"


def kept_name(tag: str, name: str) -> str:
    """``<tag>__<name>``, fitted so it and its reason file stay within the name limit."""
    prefix = f"{tag}__"
    return prefix + fit(name, KEPT_NAME_MAX - len(prefix))


def _split_extension(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot <= 0 or len(name) - dot > LONGEST_EXTENSION:
        return name, ""
    return name[:dot], name[dot:]


def write_reason(target: Path, reason: str) -> Path:
    """The reason file beside a kept file, written whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    reason_path = target.with_name(target.name + REASON_SUFFIX)
    partial = target.with_name(f".{target.name[:200]}.reason.part")
    partial.write_text(reason + "\n", encoding="utf-8")
    os.replace(partial, reason_path)
    return reason_path


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return time.time()


def _copy_and_scan(path: Path, target: Path) -> tuple[Scan, os.stat_result]:
    """One pass over the file: copy, hash, first bytes, first NUL; its stat from the handle."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        with target.open("xb") as out:

            def copied() -> Iterator[bytes]:
                for block in iter(lambda: source.read(BLOCK), b""):
                    out.write(block)
                    yield block

            found = scan_blocks(copied())
            out.flush()
            os.fsync(out.fileno())
    return found, info


def _inside(folder: Path, name: str) -> Path:
    """``folder / name``, refusing any name that could point outside the folder."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name or os.sep in name:
        raise ValueError(f"unsafe file name {name!r}")
    target = folder / name
    if target.parent != folder:
        raise ValueError(f"unsafe file name {name!r}")
    return target


def _move(path: Path, target: Path) -> None:
    """Rename into place; the same name and content hash already kept means a spare copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(target):
        if path.is_dir() and not path.is_symlink():
            raise FileExistsError(errno.EEXIST, "already kept", str(target))
        path.unlink()
        return
    try:
        os.rename(path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(str(path), target)
