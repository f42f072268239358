"""The life of a delivered file: inbox -> archive (accepted) or quarantine (rejected)."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


@dataclass(frozen=True)
class DropFolder:
    """The three folders of one provider."""

    root: Path
    # A file modified less than this many seconds ago may still be being written: it is left
    # for the next run (0 = take every complete-looking file now; sensors should set e.g. 60).
    settle_seconds: float = 0.0

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def pending(self, pattern: str) -> list[Path]:
        """Complete, regular files in the inbox that match a dataset's pattern, oldest name first.

        Hidden files, names still being written (``.part``, ``.tmp``) and files changed within
        ``settle_seconds`` are left alone, and a symlink is never followed out of the inbox.
        """
        if not self.inbox.is_dir():
            return []
        found = []
        for path in sorted(self.inbox.iterdir()):
            name = path.name
            if name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES):
                continue
            if path.is_symlink() or not path.is_file():
                continue
            if self.settle_seconds and time.time() - path.stat().st_mtime < self.settle_seconds:
                continue
            if fnmatch.fnmatchcase(name, pattern):
                found.append(path)
        return found

    def archive_path(self, path: Path, sha256: str) -> Path:
        return _inside(self.archive, f"{sha256[:16]}__{path.name}")

    def archive_file(self, path: Path, sha256: str) -> Path:
        """Move an accepted file into the archive, keyed by its content hash."""
        return _move(path, self.archive_path(path, sha256))

    @contextmanager
    def work_file(self, sha256: str, suffix: str) -> Iterator[Path]:
        """A scratch file named by hex digits only (transcoded text, a converted sheet)."""
        work = self.root / ".work"
        work.mkdir(exist_ok=True)
        scratch = work / f"{sha256}{suffix}"
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
        work = self.root / ".work"
        work.mkdir(exist_ok=True)
        link = work / f"{sha256}.input"
        link.unlink(missing_ok=True)
        try:
            os.link(path, link)
        except OSError:
            shutil.copyfile(path, link)
        try:
            yield link
        finally:
            link.unlink(missing_ok=True)

    def quarantine_file(self, path: Path, sha256: str, reason: str) -> Path:
        """Move a rejected file aside with a reason file a data owner can act on."""
        target = _move(path, _inside(self.quarantine, f"{sha256[:16]}__{path.name}"))
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return target


def _inside(folder: Path, name: str) -> Path:
    """``folder / name``, refusing any name that could point outside the folder."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name or os.sep in name:
        raise ValueError(f"unsafe file name {name!r}")
    target = folder / name
    if target.parent != folder:
        raise ValueError(f"unsafe file name {name!r}")
    return target


def _move(path: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        # Same name and same content hash: the bytes are already kept, drop the extra copy.
        path.unlink()
    else:
        shutil.move(str(path), target)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
