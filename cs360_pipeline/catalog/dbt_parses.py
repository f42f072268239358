"""dbt's parse of the project, kept by content and shared by the deployments of one user.

A parse depends on the project's files (the installation's models and macros, and the
freshness sources each deployment writes from its providers), dbt's version and the adapter's,
nothing else the pipeline sets: the only var, ``as_of``, is read in compiled SQL, never in the
graph. Deployments whose copies hold the same bytes (a city and its rehearsal folder, every test
deployment with the same providers) would each spend a dbt process (~6 s) on the same parse;
the first one's ``manifest.json`` and ``partial_parse.msgpack`` are kept under
``settings.cache_dir()/dbt-parses/<digest>/`` and the others take a copy. dbt checks the
partial-parse file against the files itself, so a copy can cost a parse, never a wrong graph.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

from cs360_pipeline.catalog.dbt_workdir import project_files
from cs360_pipeline.settings import cache_dir

KEPT = ("manifest.json", "partial_parse.msgpack")


def digest(project_dir: Path) -> str:
    """What a parse of the project at ``project_dir`` depends on, as one hex digest."""
    h = hashlib.sha256()
    for package in ("dbt-core", "dbt-duckdb"):
        h.update(f"{package}=={version(package)}\n".encode())
    for relative, path in sorted(project_files(project_dir).items()):
        data = path.read_bytes()
        h.update(f"{relative.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _folder(key: str) -> Path:
    return cache_dir() / "dbt-parses" / key


def restore(key: str, target: Path) -> bool:
    """Copy a kept parse into ``target`` (dbt's target folder); False when none is kept."""
    kept = _folder(key)
    if not all((kept / name).is_file() for name in KEPT):
        return False
    target.mkdir(parents=True, exist_ok=True)
    for name in KEPT:  # the manifest last: its presence says the copy is whole
        scratch = target / f".{name}.{os.getpid()}.partial"
        shutil.copyfile(kept / name, scratch)
        os.replace(scratch, target / name)
    return True


def keep(key: str, target: Path) -> None:
    """Keep the parse dbt just wrote into ``target``. Best effort: a cache that cannot be
    written (a read-only home) costs the next deployment a parse, nothing else."""
    folder = _folder(key)
    if folder.exists():
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".partial-"))
        for name in KEPT:
            shutil.copyfile(target / name, scratch / name)
        try:
            os.rename(scratch, folder)  # whole or not at all; another process may have won
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
    except OSError:
        return
