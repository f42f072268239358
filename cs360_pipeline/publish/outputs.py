"""The per-release output folder: ``<data>/exports/<release>/<audience>/``.

The steps that write there (exports, expectations, brief and site) rewrite their files at every
refresh that reaches them: they are small, and a file rewritten from the live release is never
stale. A refresh with nothing new does not reach them (``release/unchanged.py``).

Files are written to a temporary name and renamed into place, so a reader never opens half a
file. Only the current release and the releases the privacy policy treats as still public are
kept: older exports could be set against the current release, which the audit does not cover.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cs360_pipeline.privacy.policy import AUDIENCE_NAME
from cs360_pipeline.settings import Paths

RELEASE_DIR = re.compile(r"^r-[0-9a-f]{12}$")


def release_dir(paths: Paths, release_id: str) -> Path:
    if not RELEASE_DIR.match(release_id):
        raise ValueError(f"not a release id: {release_id!r}")
    return paths.exports_dir / release_id


def audience_dir(paths: Paths, release_id: str, audience: str) -> Path:
    if not AUDIENCE_NAME.fullmatch(audience):
        raise ValueError(f"not an audience name: {audience[:40]!r}")
    return release_dir(paths, release_id) / audience


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> Path:
    with replacing(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def write_with(target: Path, writer: Callable[[Path], object]) -> Path:
    with replacing(target) as tmp:
        writer(tmp)
    return target


def replace_dir(target: Path, builder: Callable[[Path], object]) -> Path:
    """Build a folder beside ``target`` and swap it in (old folder removed afterwards)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = target.with_name(f".{target.name}.{os.getpid()}.new")
    stale = target.with_name(f".{target.name}.{os.getpid()}.old")
    for leftover in (fresh, stale):
        shutil.rmtree(leftover, ignore_errors=True)
    fresh.mkdir()
    try:
        builder(fresh)
        if target.exists():
            os.replace(target, stale)
        os.replace(fresh, target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)
    return target


def sweep(folder: Path) -> None:
    """Remove what a killed refresh left behind: hidden temporary files and folders."""
    if not folder.exists():
        return
    for leftover in folder.glob(".*"):
        if leftover.name.endswith((".tmp", ".new", ".old")):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def prune(paths: Paths, keep: list[str]) -> list[str]:
    """Remove release folders not in ``keep``; only folders named like a release are touched."""
    removed = []
    if not paths.exports_dir.exists():
        return removed
    for folder in sorted(paths.exports_dir.iterdir()):
        if folder.is_dir() and RELEASE_DIR.match(folder.name) and folder.name not in keep:
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed
