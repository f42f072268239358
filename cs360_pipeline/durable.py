"""Make a write survive a power cut: what a rename-into-place needs before it counts as done."""

from __future__ import annotations

import os


def fsync_path(path: os.PathLike[str] | str) -> None:
    """Flush a file, or a folder's entries (after a rename into it), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
