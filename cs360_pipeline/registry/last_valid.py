"""The last valid copy of each provider file, kept beside the build.

When a provider.yml breaks, that provider stops refreshing but the rest of the deployment still
needs to know it: the metric catalog names its measures, the scorecard lists its datasets, and
its cells from the last good refresh stay published. The copy kept here is what they read. It is
written only from a file that has just passed validation, and validated again when it is read.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_NAME = "provider.yml"


def copy_path(folder: Path, provider: str) -> Path:
    return folder / provider / FILE_NAME


def remember(folder: Path, provider: str, text: str) -> None:
    """Keep ``text`` as the provider's last valid file, atomically (unchanged: not rewritten)."""
    target = copy_path(folder, provider)
    try:
        if target.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".yml.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, target)
