"""Publishing a release: the whole protocol over the warehouse, the vault and the release log.

Three files must agree about which releases readers could have opened: the warehouse (what
readers open), the restricted vault (true counts and patterns, which the next release is audited
against) and the release log (what each release was made from). No transaction spans three
files, so publication is a fixed order of steps, each durable before the next, and a reconcile
step that finishes or undoes whatever a dead process left between two of them:

1. **stage**: the marts, with the release id and a manifest, go into ``.warehouse.next.duckdb``
   (checkpointed, fsynced). Nobody can open it as the warehouse yet.
2. **vault pending**: the candidate's true counts and pattern are stored under the release id,
   marked pending.
3. **swap**: ``os.replace`` over ``warehouse.duckdb``. From this instant readers may open it.
4. **vault published**: pending becomes published; the next release is audited against it.
5. **release log**: the entry is written from the warehouse's own manifest.

:func:`reconcile` runs before a refresh builds anything and again before each publication: a
pending release that is live becomes published, one that never went live is forgotten, a
staged file left behind is removed, and a live release missing from the log is logged from its
manifest. So at every instant each release a reader could have opened is known to the vault
and the log, or is reconciled before anything new is built or audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from cs360_pipeline.faults import fault_point
from cs360_pipeline.privacy import vault
from cs360_pipeline.publish import warehouse
from cs360_pipeline.release import log as release_log
from cs360_pipeline.settings import Paths


class PublicationError(RuntimeError):
    """The deployment's published state cannot be reconciled without the operator."""


@dataclass(frozen=True)
class Published:
    release_id: str
    rows: dict[str, int]
    log: list[release_log.Entry]


def publish_release(
    paths: Paths, checks: list[release_log.Check], releases_public: int
) -> Published:
    """Publish the build's marts as a release, in the order that recovers from any crash."""
    reconcile(paths, releases_public)
    staged = warehouse.stage(paths, [vars(c) for c in checks])
    fault_point("publish:staged")
    vault.record_pending(paths, staged.release_id)
    fault_point("publish:vault_pending")
    warehouse.swap(paths, staged)
    fault_point("publish:swapped")
    vault.mark_published(paths, staged.release_id, releases_public)
    fault_point("publish:vault_published")
    log = _log_live(paths, releases_public)
    fault_point("publish:logged")
    return Published(release_id=staged.release_id, rows=staged.rows, log=log)


def reconcile(paths: Paths, releases_public: int) -> list[str]:
    """Bring the vault and the release log in line with the live warehouse; say what was done."""
    done = []
    if warehouse.staging_path(paths).exists():
        warehouse.discard_staged(paths)
        done.append("removed a staged warehouse file that was never published")
    live = warehouse.live_release(paths)
    states = vault.release_states(paths)
    for release_id, state in states.items():
        if state != vault.PENDING:
            continue
        if release_id == live:
            vault.mark_published(paths, release_id, releases_public)
            done.append(f"{release_id} went live before the vault recorded it: recorded now")
        else:
            vault.drop_pending(paths, release_id)
            done.append(f"{release_id} was stored for a publication that never happened: dropped")
    if live is None:
        return done
    if live not in states:
        raise PublicationError(
            f"the live release {live} in {paths.warehouse_db} is unknown to the privacy vault "
            f"{paths.vault_db}, so no later release could be audited against it. Restore the "
            "vault from a backup, or withdraw the live release (move the warehouse file away) "
            "before refreshing again."
        )
    manifest = warehouse.manifest(paths.warehouse_db)  # None before manifests: logged back then
    if manifest is not None and _log_is_behind(paths, manifest):
        _log(paths, manifest, releases_public)
        done.append(f"{live} was live but missing from the release log: logged now")
    return done


def _log_live(paths: Paths, releases_public: int) -> list[release_log.Entry]:
    """Record the live release in the log, from the manifest inside the warehouse file."""
    manifest = warehouse.manifest(paths.warehouse_db)
    if manifest is None:
        raise PublicationError(f"{paths.warehouse_db} carries no release manifest")
    return _log(paths, manifest, releases_public)


def _log(
    paths: Paths, manifest: dict[str, object], releases_public: int
) -> list[release_log.Entry]:
    entry = release_log.entry_from_manifest(manifest)
    return release_log.record(paths, entry, release_log.keep_releases(releases_public))


def _log_is_behind(paths: Paths, manifest: dict[str, object]) -> bool:
    """True when the live release was published after the log last recorded it."""
    live = manifest["release_id"]
    entry = next((e for e in release_log.read(paths) if e.release_id == live), None)
    staged_at = manifest["staged_at"].replace(microsecond=0)  # type: ignore[attr-defined]
    return entry is None or entry.published_at < staged_at
