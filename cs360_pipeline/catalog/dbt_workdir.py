"""Each deployment's own working copy of the dbt project, in ``data/build/dbt_project/``.

The installation's ``dbt_project/`` holds reviewed code only and is never written at run time.
What dbt needs or writes for one deployment (the freshness sources rendered from its providers,
the parsed manifest, partial-parse state, logs) lives in the copy, so deployments sharing an
installation (a city and a rehearsal folder, two cities on one server, parallel test runs) never
read each other's. A file is copied only when its bytes differ, so an unchanged project keeps
its manifest and is not parsed again.

    cd data/build/dbt_project && ../../../.venv/bin/cs360-dbt build   # dbt by hand
"""

from __future__ import annotations

import os
from pathlib import Path

from cs360_pipeline.catalog import freshness_sources
from cs360_pipeline.registry import load_registry
from cs360_pipeline.settings import DBT_PROJECT_DIR, Paths

SHIPPED = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")


def project_files(root: Path) -> dict[Path, Path]:
    """The dbt project's own files under ``root``, by path relative to it."""
    files: dict[Path, Path] = {}
    for name in SHIPPED:
        path = root / name
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files.update({p.relative_to(root): p for p in found})
    return files


def mirror(workdir: Path, keep: frozenset[Path] = frozenset()) -> list[Path]:
    """Make ``workdir``'s project files equal the installation's; the paths that changed.

    Each file is replaced atomically, so a process reading the copy meanwhile (the UI's code
    server, a sensor) sees the old bytes or the new, never half a file. Files the installation
    no longer ships are removed. ``keep`` is written in the copy itself: never taken from the
    installation (an older checkout may still hold one) and never removed.
    """
    shipped = {r: p for r, p in project_files(DBT_PROJECT_DIR).items() if r not in keep}
    changed = []
    for relative, source in shipped.items():
        target = workdir / relative
        data = source.read_bytes()
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{os.getpid()}.partial")
        scratch.write_bytes(data)
        os.replace(scratch, target)
        changed.append(relative)
    for relative, stale in project_files(workdir).items():
        if relative not in shipped and relative not in keep:
            stale.unlink()
            changed.append(relative)
    return changed


def prepare(paths: Paths) -> Path:
    """The deployment's copy, current with the installation and with the deployment's
    freshness sources written; its folder."""
    workdir = paths.dbt_dir
    mirror(workdir, keep=frozenset({freshness_sources.RELATIVE_PATH}))
    freshness_sources.sync(load_registry(paths.sources_dir).providers, workdir)
    return workdir
