"""Noticing that a refresh has nothing to do, before anything heavy is loaded.

A refresh would publish exactly the live release again when no file waits in the inboxes it
reads (settled or still being written), nothing is left to recover in their ``.work/`` folders,
the files loaded, the privacy policy and the code (dbt project, metric catalog, provider files)
give the live release's build id, the delivery scorecard would be computed for the same day,
and every output of the release (exports, Data Docs, brief, site) is in place. Then nothing is
run: the release stays published as it is. Any other refresh runs what changed
(``defs.selection``) and everything that reads it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from contextlib import closing

from cs360_pipeline.ingest.dropfolder import DropFolder
from cs360_pipeline.ingest.ledger import LEDGER_TABLE
from cs360_pipeline.privacy.policy import Policy
from cs360_pipeline.publish import expectations, warehouse
from cs360_pipeline.publish.outputs import audience_dir
from cs360_pipeline.registry import Provider
from cs360_pipeline.release import log as release_log
from cs360_pipeline.release.identity import code_version, describe_release
from cs360_pipeline.settings import Paths, expectations_enabled, frozen_as_of
from cs360_pipeline.sql import connect


def scorecard_date(policy: Policy) -> dt.date:
    """The day the delivery scorecard is computed for: ``CS360_AS_OF``, else the city's today."""
    return frozen_as_of() or policy.tables.city.today()


def unchanged_release(paths: Paths, providers: Iterable[Provider], policy: Policy) -> str | None:
    """The live release when refreshing ``providers`` now would publish it again unchanged;
    None when there is anything to do."""
    manifest = warehouse.manifest(paths.warehouse_db)
    if manifest is None or not paths.raw_db.exists():
        return None
    for provider in providers:
        folder = DropFolder(paths.provider_dir(provider.provider))
        if folder.work.is_dir() and any(folder.work.iterdir()):
            return None  # a run was interrupted: its ingest recovers what it left
        # A file still being written is work too: the run says it waits.
        if any(folder.matching(d.file_pattern) for d in provider.datasets.values()):
            return None
    if manifest["data_as_of"] != scorecard_date(policy):
        return None
    with closing(connect(paths.raw_db, read_only=True)) as con:
        build = describe_release(con, policy.sha256, code_version(paths), ledger=LEDGER_TABLE)
    if build.release_id != manifest["build_id"]:
        return None
    live = str(manifest["release_id"])
    if not any(e.release_id == live for e in release_log.read(paths)):
        return None
    return live if _outputs_written(paths, live, list(policy.audiences)) else None


def _outputs_written(paths: Paths, release_id: str, audiences: list[str]) -> bool:
    """Every audience's exports, Data Docs (when expectations run), brief and site."""
    for audience in audiences:
        folder = audience_dir(paths, release_id, audience)
        wanted = [folder / "metric_values.parquet", folder / "brief.html"]
        wanted.append(folder / "site" / "index.html")
        if expectations_enabled():
            wanted.append(expectations.summary_path(paths, release_id, audience))
        if not all(path.is_file() for path in wanted):
            return False
    return True
