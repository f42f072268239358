"""``cs360``: generate demo data, refresh the warehouse, show delivery status."""

from __future__ import annotations

import argparse
import errno
import sys
from collections import Counter
from contextlib import closing
from typing import TYPE_CHECKING

from cs360_pipeline.settings import Paths, current_paths

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult

    from cs360_pipeline.refresh_lock import Holder
    from cs360_pipeline.registry import Provider


def _init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cs360_pipeline.scaffold import City, ScaffoldError, init_deployment

    folder = Path(args.folder).resolve()
    try:
        written = init_deployment(folder, City(args.name, args.code, args.time_zone))
    except ScaffoldError as exc:
        print(f"cs360 init: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote the deployment of {args.name} into {folder}:")
    for path in written:
        print(f"  {path.relative_to(folder)}")
    print(
        "Next: describe each data provider in sources/<provider>/provider.yml, the metrics in "
        "metrics/cs360_metrics.yml, drop the beat map into sources/city/inbox/, then "
        f"`cs360 --deployment {folder} refresh`."
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from cs360_pipeline.demo import generate
    from cs360_pipeline.scaffold import ScaffoldError, copy_demo_configuration
    from cs360_pipeline.settings import deployment_dir

    try:
        if copy_demo_configuration(deployment_dir()):
            print(f"Wrote the demo city's configuration into {deployment_dir()}")
    except ScaffoldError as exc:
        print(f"cs360 demo: {exc}", file=sys.stderr)
        return 2
    paths = current_paths()
    print(f"Writing demo deliveries into {paths.sources_dir}/<provider>/inbox ...")
    summary = generate(
        paths.sources_dir,
        seed=args.seed,
        scale=args.scale,
        end_month=args.end_month,
        months=args.months,
        progress=lambda line: print(f"  {line}", flush=True),
        hold_back={provider: args.hold_back_months for provider in args.hold_back or []},
    )
    total = sum(summary.files.values())
    print(f"Done: {total} files for {summary.first_month} to {summary.last_month}.")
    print("Next: `cs360 refresh` ingests them and publishes the warehouse.")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from cs360_pipeline.instance import ensure_dagster_home
    from cs360_pipeline.refresh_lock import RefreshRunning, refresh_lock

    if args.full and args.provider:
        print("--full refreshes every provider; leave out --provider.", file=sys.stderr)
        return 2
    ensure_dagster_home()
    paths = current_paths().ensure()
    shortfall = _disk_shortfall(paths)
    if shortfall:
        print(f"Refresh not started: {shortfall}. {_live_words(paths)}", file=sys.stderr)
        return 1
    from dagster._core.utils import make_new_run_id

    run_id = make_new_run_id()
    try:
        with refresh_lock(
            paths,
            "cs360 refresh",
            run_id=run_id,
            wait_seconds=args.wait,
            on_wait=_say_waiting,
        ) as died:
            return _refresh_locked(args, paths, run_id, died)
    except RefreshRunning as exc:
        print(f"Refresh not started: {exc}. {_live_words(paths)}", file=sys.stderr)
        return 3
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        where = exc.filename or paths.data_dir
        print(
            f"Refresh stopped: no space left on the disk holding {where}. "
            f"{_live_words(paths)} Free some space and refresh again.",
            file=sys.stderr,
        )
        return 1


def _say_waiting(holder: Holder | None) -> None:
    who = holder.describe() if holder else "a refresh that has not said who it is yet"
    print(f"Waiting for the running refresh ({who}) ...", flush=True)


def _refresh_locked(
    args: argparse.Namespace, paths: Paths, run_id: str, died: Holder | None
) -> int:
    """The refresh itself, with the deployment's writer lock held."""
    from dagster import DagsterInstance

    from cs360_pipeline.definitions import defs, registry
    from cs360_pipeline.instance import fail_interrupted_run
    from cs360_pipeline.privacy.policy import load_policy
    from cs360_pipeline.publish.outputs import FULL_TAG
    from cs360_pipeline.publish.publication import reconcile
    from cs360_pipeline.run_times import run_times, summary

    job_name = f"refresh_{args.provider}" if args.provider else "refresh_all"
    if args.provider in registry.failed:  # its provider.yml is invalid: it has no job
        for problem in registry.problems:
            print(f"ERROR: {problem.line}", file=sys.stderr)
        return 1
    job = defs.resolve_job_def(job_name)
    run_config = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    # --full: rewrite exports, expectations and briefs even when the release is unchanged.
    tags = {FULL_TAG: "true"} if args.full else {}
    with DagsterInstance.get() as instance:
        if died is not None:
            print(f"Note: {fail_interrupted_run(instance, died)}.", flush=True)
        for line in reconcile(paths, load_policy().history.releases_public):
            print(f"Recovered: {line}.", flush=True)
        before = _live_release(paths)
        print(f"Running {job_name} (data in {paths.data_dir}) ...", flush=True)
        result = job.execute_in_process(
            instance=instance, run_config=run_config, tags=tags, raise_on_error=False,
            run_id=run_id,
        )  # fmt: skip
        times = run_times(instance, result.run_id)
    after = _live_release(paths)
    if not result.success:
        if after is not None and after != before:
            print(f"Refresh failed after publishing (run {result.run_id}): release {after} is "
                  "live; a step after publication failed (see the run's log).")  # fmt: skip
        else:
            print(f"Refresh failed (run {result.run_id}). {_live_words(paths)}")
        code = 1
    else:
        print(f"Published release {after} to {paths.warehouse_db}")
        code = _report_publication(result)
    print(summary(times), flush=True)
    from cs360_pipeline.privacy import fallbacks, placement

    for line in (placement.summary(paths.build_db), fallbacks.summary(paths.build_db)):
        if line:
            print(line, flush=True)
    # A provider whose provider.yml is invalid was left out: the others refreshed, it did not.
    for problem in registry.problems:
        print(f"ERROR: {problem.line}", file=sys.stderr)
    return 1 if registry.problems else code


def _reingest(args: argparse.Namespace) -> int:
    """Replay archived files through the current contracts, under the writer lock."""
    from cs360_pipeline.ingest.dropfolder import DropFolder
    from cs360_pipeline.ingest.reingest import ReingestError, reingest
    from cs360_pipeline.privacy.policy import load_policy
    from cs360_pipeline.refresh_lock import RefreshRunning, refresh_lock
    from cs360_pipeline.registry import load_registry

    paths = current_paths().ensure()
    registry = load_registry(paths.sources_dir)
    if args.provider and args.provider not in registry.known:
        known = ", ".join(registry.known) or "none"
        print(
            f"cs360 reingest: no provider {args.provider!r} (providers: {known})", file=sys.stderr
        )
        return 2
    broken = [p for p in registry.problems if args.provider in (None, p.file.parent.name)]
    for problem in broken:  # its archived files would be read through a contract that fails
        print(f"ERROR (not re-ingested): {problem.line}", file=sys.stderr)
    chosen = [args.provider] if args.provider else list(registry.providers)
    providers = [registry.providers[n] for n in chosen if n in registry.providers]
    if not providers:
        return 1
    print(f"Re-ingesting the archived files of {', '.join(p.provider for p in providers)} ...")
    try:
        with refresh_lock(
            paths, "cs360 reingest", wait_seconds=args.wait, on_wait=_say_waiting
        ) as died:
            if died is not None:  # its Dagster run would show it running forever
                print(f"Note: {_interrupted(died)}.", flush=True)
            replays = reingest(
                paths.raw_db,
                providers,
                lambda name: DropFolder(paths.provider_dir(name)),
                load_policy().tables.city.time_zone,
                log=lambda line: print(f"  {line}", flush=True),
            )
    except RefreshRunning as exc:
        print(f"Re-ingest not started: {exc}. {_live_words(paths)}", file=sys.stderr)
        return 3
    except ReingestError as exc:
        print(f"Re-ingest stopped: {exc} {_live_words(paths)}", file=sys.stderr)
        return 1
    if not replays:
        print("Nothing to re-ingest: no file has been loaded yet.")
        return 1 if broken else 0
    for replay in replays:
        print(replay.summary())
    print(
        "The restricted database now holds these files as the current contracts read them. "
        f"{_live_words(paths)} `cs360 refresh` publishes a release from them."
    )
    refused = any(r.count("quarantined") for r in replays)
    return 1 if refused or broken else 0


def _interrupted(died: Holder) -> str:
    """Say that the lock's last holder died; mark its Dagster run failed if it had one."""
    from cs360_pipeline.instance import ensure_dagster_home, fail_interrupted_run

    if died.run_id is None:
        return fail_interrupted_run(None, died)
    from dagster import DagsterInstance

    ensure_dagster_home()
    with DagsterInstance.get() as instance:
        return fail_interrupted_run(instance, died)


def _live_release(paths: Paths) -> str | None:
    from cs360_pipeline.publish.warehouse import live_release

    return live_release(paths)


def _live_words(paths: Paths) -> str:
    """Which release readers get now, in a sentence."""
    live = _live_release(paths)
    return f"Release {live} stays published." if live else "No release is published yet."


# Free space a refresh needs beyond what it rewrites: DuckDB temp files, Dagster's event log.
MIN_FREE_BYTES = 64 * 1024 * 1024
MIN_FREE_ENV = "CS360_MIN_FREE_BYTES"


def _disk_shortfall(paths: Paths) -> str | None:
    """Why the data folder's disk is too full to refresh safely, or None.

    A refresh writes a new build and a new warehouse beside the old ones, so it needs about
    their size again, plus room for the inboxes' files to be archived.
    """
    import os
    import shutil

    rewritten = sum(
        p.stat().st_size for p in (paths.build_db, paths.warehouse_db, paths.raw_db) if p.exists()
    )
    floor = int(os.environ.get(MIN_FREE_ENV) or MIN_FREE_BYTES)
    needed = rewritten + floor
    free = shutil.disk_usage(paths.data_dir).free
    if free >= needed:
        return None
    mb = 1024 * 1024
    return (
        f"only {free // mb:,} MB free on the disk holding {paths.data_dir}; a refresh needs "
        f"about {needed // mb:,} MB ({MIN_FREE_ENV} sets the reserve)"
    )


def _report_publication(result: ExecuteInProcessResult) -> int:
    """Where the brief went, and a non-zero exit when the published tables failed expectations."""
    from cs360_pipeline.publish.outputs import AUDIENCES, audience_dir

    paths = current_paths()
    release_id = _live_release(paths)
    for audience in AUDIENCES:
        brief = audience_dir(paths, release_id, audience) / "brief.html"
        if brief.exists():
            print(f"Brief ({audience}): {brief}")
    failed = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path[0] == "published" and not e.passed and e.severity.value == "ERROR"
    ]
    for evaluation in failed:
        print(
            f"ERROR: {evaluation.check_name} failed for release {release_id}: "
            f"{evaluation.description}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _releases(args: argparse.Namespace) -> int:
    """List the release log, newest first; with a release id, that release in detail."""
    from cs360_pipeline.publish import release_log

    paths = current_paths()
    entries = release_log.read(paths)
    if not entries:
        print(f"No release recorded yet ({release_log.log_path(paths)} does not exist).")
        return 1
    if args.release:
        entry = next((e for e in entries if e.release_id == args.release), None)
        if entry is None:
            print(f"{args.release} is not in the release log.", file=sys.stderr)
            return 1
        print(f"release        {entry.release_id}")
        print(f"published      {entry.published_at:%Y-%m-%d %H:%M} UTC "
              f"(first {entry.first_published_at:%Y-%m-%d %H:%M}, "
              f"{entry.times_published} time(s))")  # fmt: skip
        print(f"policy sha256  {entry.policy_sha256}")
        print(f"code version   {entry.code_version}")
        print(f"inputs sha256  {entry.input_sha256}")
        print(f"checks         {entry.checks_summary}")
        for check in entry.checks:
            if not check.passed:
                print(f"  FAILED {check.name}: {check.detail}")
        print(f"input files    {len(entry.input_files)}")
        _print_table(
            ("provider", "file", "sha256"),
            [(f.provider, f.file_name, f.sha256) for f in entry.input_files],
        )
        return 0
    current = entries[0].release_id
    rows = [
        (
            ("* " if e.release_id == current else "  ") + e.release_id,
            f"{e.published_at:%Y-%m-%d %H:%M}",
            f"{e.first_published_at:%Y-%m-%d %H:%M}",
            e.times_published,
            len(e.input_files),
            e.policy_sha256[:12],
            e.code_version,
            e.checks_summary,
        )
        for e in entries
    ]
    header = ("  release", "published (UTC)", "first published", "times", "files", "policy",
              "code", "checks")  # fmt: skip
    _print_table(header, rows)
    return 0


def _print_table(header: tuple[str, ...], rows: list[tuple]) -> None:
    table = [header, *[tuple("" if v is None else str(v) for v in r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _files(args: argparse.Namespace) -> int:
    """The ingest ledger of the last refresh: every delivered file and what became of it.

    Read from the ledger's snapshot file, so it works while a refresh is writing the build.
    """
    from cs360_pipeline.catalog.deliveries_snapshot import snapshot_path
    from cs360_pipeline.sql import connect, literal

    snapshot = snapshot_path(current_paths())
    if not snapshot.exists():
        print(f"No delivery recorded yet ({snapshot} is written by each refresh).")
        return 0
    where = "WHERE provider = ?" if args.provider else ""
    with closing(connect(None)) as con:
        rows = con.execute(
            f"""
            SELECT provider, dataset, file_name, status, rows_loaded, rows_rejected,
                   strftime(processed_at, '%Y-%m-%d %H:%M'), left(sha256, 12),
                   coalesce(reason, '')
            FROM read_parquet({literal(snapshot)}) {where} ORDER BY processed_at, file_name
            """,
            [args.provider] if args.provider else [],
        ).fetchall()
    header = ("provider", "dataset", "file", "status", "loaded", "rejected", "processed",
              "sha256", "reason")  # fmt: skip
    _print_table(header, [(*r[:-1], r[-1][:120]) for r in rows])
    return 0


def _status(args: argparse.Namespace) -> int:
    """Print the delivery scorecard of the published release; non-zero on an error-level gap."""
    from cs360_pipeline.sql import connect

    if args.files:
        return _files(args)
    paths = current_paths()
    if not paths.warehouse_db.exists():
        print(f"No release published yet ({paths.warehouse_db} does not exist).")
        return 1
    where = "WHERE provider = ?" if args.provider else ""
    with closing(connect(paths.warehouse_db, read_only=True)) as con:
        rows = con.execute(
            f"""
            SELECT provider, dataset, cadence, files_loaded, files_quarantined,
                   strftime(last_delivered_on, '%Y-%m-%d'), strftime(next_expected_by, '%Y-%m-%d'),
                   freshness_status, strftime(data_through, '%Y-%m-%d'), data_status, severity,
                   coalesce(steward, data_owner, 'nobody named'), coalesce(issues, ''),
                   strftime(as_of, '%Y-%m-%d')
            FROM provider_status {where} ORDER BY provider, dataset
            """,
            [args.provider] if args.provider else [],
        ).fetchall()
        metrics = con.execute(
            """
            SELECT metric_id, owner_status, freshness_status, coalesce(stale_sources, '')
            FROM metric_catalog
            WHERE audience = (SELECT min(audience) FROM metric_catalog)
              AND (owner_status <> 'owned' OR freshness_status <> 'fresh')
            ORDER BY display_order
            """
        ).fetchall()
        unplaced = _unplaced_rows(con)
    header = (
        "provider", "dataset", "cadence", "loaded", "quarantined", "last delivery",
        "next expected", "delivery", "data through", "data", "severity", "steward", "issues",
    )  # fmt: skip
    print(f"Delivery status as of {rows[0][-1] if rows else '?'} (the last refresh):")
    _print_table(header, [r[:-1] for r in rows])
    if metrics:
        print()
        print("Metrics to read with care:")
        for metric_id, owner, freshness, why in metrics:
            if owner != "owned":
                print(f"  {metric_id}: no owner named")
            if freshness != "fresh":
                print(f"  {metric_id}: stale ({why})")
    if unplaced:
        print()
        print("Rows placed in no beat (counted in no cell), per metric of the release:")
        for line in unplaced:
            print(f"  {line}")
    errors = [r for r in rows if r[10] == "error"]
    for r in errors:
        print(f"ERROR: {r[0]}/{r[1]}: {r[12]}; contact {r[11]}.", file=sys.stderr)
    unowned = [m for m in metrics if m[1] != "owned"]
    for m in unowned:
        print(f"ERROR: metric {m[0]} has no owner.", file=sys.stderr)
    from cs360_pipeline.registry import load_registry

    registry = load_registry(paths.sources_dir)
    earlier = _earlier_contracts(paths, registry.providers, args.provider)
    if earlier:
        print()
        print("Files loaded under an earlier contract (provider.yml changed since):")
        for line in earlier:
            print(f"  {line}")
    invalid = [p for p in registry.problems if args.provider in (None, p.file.parent.name)]
    for problem in invalid:
        print(f"ERROR: {problem.line} (it is not refreshed)", file=sys.stderr)
    return 1 if errors or unowned or invalid else 0


def _earlier_contracts(paths: Paths, providers: dict[str, Provider], only: str | None) -> list[str]:
    """Datasets whose current files (at the last refresh) were read under another contract."""
    from cs360_pipeline.catalog.deliveries_snapshot import snapshot_path
    from cs360_pipeline.ingest.loader import contract_digest
    from cs360_pipeline.sql import connect, literal

    snapshot = snapshot_path(paths)
    if not snapshot.exists():
        return []
    with closing(connect(None)) as con:
        ledger = f"read_parquet({literal(snapshot)})"
        columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {ledger}").fetchall()}
        digest = "contract_sha256" if "contract_sha256" in columns else "NULL"  # older refresh
        rows = con.execute(
            f"SELECT provider, dataset, coalesce({digest}, ''), count(*) FROM {ledger} "
            "WHERE status = 'loaded' AND superseded_by IS NULL GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    stale: Counter[tuple[str, str]] = Counter()
    for provider, dataset, digest, files in rows:
        datasets = providers[provider].datasets if provider in providers else {}
        wanted = only in (None, provider) and dataset in datasets
        if wanted and digest != contract_digest(datasets[dataset]):
            stale[(provider, dataset)] += files
    return [
        f"{provider}/{dataset}: {files} current file(s); `cs360 reingest --provider {provider}` "
        "reads them again through today's contract"
        for (provider, dataset), files in stale.items()
    ]


def _unplaced_rows(con: object) -> list[str]:
    """The privacy report's rows placed in no beat, per metric (first audience), in words."""
    columns = {
        r[0]
        for r in con.execute(  # type: ignore[attr-defined]
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'privacy_report'"
        ).fetchall()
    }
    if "rows_unplaced" not in columns:  # a release published before the report had it
        return []
    rows = con.execute(  # type: ignore[attr-defined]
        """
        SELECT metric_id, rows_unplaced, rows_unplaced_withheld FROM privacy_report
        WHERE audience = (SELECT min(audience) FROM privacy_report)
          AND (rows_unplaced > 0 OR rows_unplaced_withheld)
        ORDER BY metric_id
        """
    ).fetchall()
    return [
        f"{metric}: {'a few (fewer than the smallest count shown)' if withheld else f'{n:,}'}"
        for metric, n, withheld in rows
    ]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cs360", description=__doc__)
    top.add_argument(
        "--deployment",
        metavar="DIR",
        help="the city's deployment folder (default: $CS360_DEPLOYMENT_DIR, else the demo city "
        "in this repository)",
    )
    sub = top.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write a new city's deployment folder")
    init.add_argument("folder", help="a new or empty folder")
    init.add_argument("--name", required=True, help='the city, as readers know it: "Metro City"')
    init.add_argument("--code", required=True, help="a short code for the city: MET")
    init.add_argument("--time-zone", required=True, help="IANA name: America/Chicago")
    init.set_defaults(func=_init)

    demo = sub.add_parser("demo", help="write demo deliveries into the providers' inboxes")
    demo.add_argument("--seed", type=int, default=360)
    demo.add_argument("--scale", type=float, default=1.0, help="volume factor (1.0 = a city)")
    demo.add_argument("--end-month", help="last month delivered, YYYY-MM (default: last month)")
    demo.add_argument("--months", type=int, default=36)
    demo.add_argument(
        "--hold-back",
        action="append",
        metavar="PROVIDER",
        help="leave out this provider's last months, as if it had stopped delivering",
    )
    demo.add_argument("--hold-back-months", type=int, default=3, metavar="N")
    demo.set_defaults(func=_demo)

    refresh = sub.add_parser("refresh", help="ingest, aggregate, model and publish, headless")
    refresh.add_argument("--provider", help="only this provider's inbox and what depends on it")
    refresh.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    refresh.add_argument(
        "--full",
        action="store_true",
        help="rebuild and republish everything, even when no input changed (after a policy or "
        "code change): exports, expectations and briefs are rewritten too",
    )
    refresh.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another refresh of this deployment is running, wait up to this long for it "
        "(default: exit at once, with code 3, naming the running refresh)",
    )
    refresh.set_defaults(func=_refresh)

    reingest = sub.add_parser(
        "reingest",
        help="read the archived files again through the current provider contracts (after a "
        "contract fix); the next refresh publishes from them",
    )
    reingest.add_argument("--provider", help="only this provider's files (default: every one)")
    reingest.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if a refresh of this deployment is running, wait up to this long for it",
    )
    reingest.set_defaults(func=_reingest)

    releases = sub.add_parser("releases", help="the release log: the last releases published")
    releases.add_argument("release", nargs="?", help="show one release's input files and checks")
    releases.set_defaults(func=_releases)

    status = sub.add_parser(
        "status",
        help="delivery scorecard per provider dataset; exits 1 on an error (never delivered, "
        "overdue, data far behind, months missing, no data owner, a metric without owner)",
    )
    status.add_argument(
        "--files", action="store_true", help="list every delivered file (the ingest ledger)"
    )
    status.add_argument("--provider", help="only this provider")
    status.set_defaults(func=_status)
    return top


def main(argv: list[str] | None = None) -> int:
    import signal

    # `cs360 status --files | head` ends quietly, as other command-line tools do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = parser().parse_args(argv)
    if args.deployment:
        problem = _use_deployment(args)
        if problem:
            print(f"cs360: {problem}", file=sys.stderr)
            return 2
    from cs360_pipeline.catalog.metrics import CatalogError
    from cs360_pipeline.privacy.policy import PolicyError

    try:
        return args.func(args)
    except (PolicyError, CatalogError) as exc:  # the message names the file and key
        print(f"cs360 {args.command}: {exc}", file=sys.stderr)
        return 2


def _use_deployment(args: argparse.Namespace) -> str | None:
    """Point every part of the run at ``--deployment``; why not, if it is no deployment."""
    import os
    from pathlib import Path

    from cs360_pipeline.settings import DEPLOYMENT_ENV

    folder = Path(args.deployment).resolve()
    if args.command != "demo" and not (folder / "privacy" / "policy.yml").is_file():
        return f"{folder} is not a deployment (no privacy/policy.yml): see `cs360 init --help`"
    os.environ[DEPLOYMENT_ENV] = str(folder)
    return None


if __name__ == "__main__":
    sys.exit(main())
