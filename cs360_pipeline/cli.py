"""``cs360``: generate demo data, refresh the warehouse, show delivery status."""

from __future__ import annotations

import argparse
import errno
import math
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cs360_pipeline.deployment import Deployment
from cs360_pipeline.settings import (
    MIN_FREE_ENV,
    Paths,
    deployment_dir,
    min_free_bytes,
    use_deployment,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance, ExecuteInProcessResult, JobDefinition

    from cs360_pipeline.refresh_lock import Holder
    from cs360_pipeline.registry import Provider, Registry

# Exit codes. `cs360 status`: 0 all well, 1 warnings only, 3 errors. Every command: 2 for a
# mistake in the command line; `cs360 refresh` and `reingest`: 1 failed, 3 another refresh
# of the deployment is running.
OK, WARNINGS, USAGE, ERRORS = 0, 1, 2, 3
BUSY = 3
# Tables fit a terminal this wide; `--wide` shows every column in full.
WIDTH = 100


def _init(args: argparse.Namespace, deployment: Deployment) -> int:
    from cs360_pipeline.scaffold import City, ScaffoldError, init_deployment

    folder = Path(args.folder).resolve()
    try:
        written = init_deployment(folder, City(args.name, args.code, args.time_zone))
    except ScaffoldError as exc:
        print(f"cs360 init: {exc}", file=sys.stderr)
        return USAGE
    print(f"Wrote the deployment of {args.name} into {folder}:")
    for path in written:
        print(f"  {path.relative_to(folder)}")
    print(
        "Next: describe each data provider in sources/<provider>/provider.yml, the metrics in "
        "metrics/cs360_metrics.yml, drop the beat map into sources/city/inbox/, then "
        f"`cs360 --deployment {folder} refresh`."
    )
    return 0


def _demo(args: argparse.Namespace, deployment: Deployment) -> int:
    from cs360_pipeline.demo import MONTHLY_DATASETS, generate, leave_out_delivered
    from cs360_pipeline.scaffold import ScaffoldError, copy_demo_configuration

    monthly = sorted({provider for provider, _, _ in MONTHLY_DATASETS})
    unknown = sorted(set(args.hold_back or []) - set(monthly))
    if unknown:
        print(f"cs360 demo: --hold-back {unknown[0]!r}: no demo provider delivers monthly by that "
              f"name (choose from {', '.join(monthly)})", file=sys.stderr)  # fmt: skip
        return USAGE
    try:
        if copy_demo_configuration(deployment_dir()):
            print(f"Wrote the demo city's configuration into {deployment_dir()}")
    except ScaffoldError as exc:
        print(f"cs360 demo: {exc}", file=sys.stderr)
        return USAGE
    paths = deployment.paths
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
    delivered = leave_out_delivered(paths.sources_dir)
    if delivered == total:
        print("They were all delivered before, with the same bytes: none was left in the "
              "inboxes, so a refresh finds nothing new.")  # fmt: skip
        return 0
    if delivered:
        print(f"{delivered} of them were delivered before with the same bytes: left out of the "
              "inboxes.")  # fmt: skip
    print("Next: `cs360 refresh` ingests them and publishes the warehouse.")
    return 0


def _refresh(args: argparse.Namespace, deployment: Deployment) -> int:
    from cs360_pipeline.registry import load_registry

    if args.full and args.provider:
        print("cs360 refresh: --full refreshes every provider; leave out --provider.",
              file=sys.stderr)  # fmt: skip
        return USAGE
    paths = deployment.paths
    if _no_such_provider("refresh", args.provider, load_registry(paths.sources_dir)):
        return USAGE
    # Loading Dagster, dbt and the definitions takes a while: say what is starting first.
    print(f"cs360 refresh: deployment {deployment_dir()}, data in {paths.data_dir}; "
          "loading the pipeline ...", flush=True)  # fmt: skip
    from cs360_pipeline.instance import ensure_dagster_home
    from cs360_pipeline.refresh_lock import RefreshRunning, refresh_lock

    ensure_dagster_home(paths)
    paths = paths.ensure()
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
            return _refresh_locked(args, deployment, run_id, died)
    except RefreshRunning as exc:
        print(f"Refresh not started: {exc}. {_live_words(paths)}", file=sys.stderr)
        return BUSY
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


def _run_with_progress(
    job: JobDefinition,
    instance: DagsterInstance,
    run_id: str,
    args: argparse.Namespace,
    paths: Paths,
) -> ExecuteInProcessResult:
    """Run the job, printing a line per stage; everything else only with ``--verbose``.

    Quiet, Dagster's console log is off and dbt's messages go only to their log file; the
    stage lines still name every warning, failure and where dbt's output is.
    """
    from cs360_pipeline.contracts import validate as contract_rules
    from cs360_pipeline.defs.run_options import RunOptions
    from cs360_pipeline.defs.transform import DBT_OUTPUT_TAG
    from cs360_pipeline.progress import Progress, is_terminal, own_streams
    from cs360_pipeline.publish import expectations

    level = args.log_level if args.verbose else "CRITICAL"
    run_config = {
        "loggers": {"console": {"config": {"log_level": level}}},
        **RunOptions.config(full=args.full),  # --full: rebuild kept cells, attack everything
    }
    tags = {} if args.verbose else {DBT_OUTPUT_TAG: "log"}
    with own_streams() as (out, err):
        progress = Progress(
            out,
            err,
            dbt_log=paths.dbt_log,
            echo_logs=not args.verbose,
            live=not args.verbose and is_terminal(out),
        )
        instance.add_event_listener(run_id, progress)
        expectations.preload()
        contract_rules.preload()
        result = job.execute_in_process(
            instance=instance, run_config=run_config, tags=tags, raise_on_error=False,
            run_id=run_id,
        )  # fmt: skip
        progress.finish()
    return result


def _no_such_provider(command: str, name: str | None, registry: Registry) -> bool:
    """Say so (one line on stderr) when ``--provider`` names none of the deployment's."""
    names = sorted({*registry.providers, *registry.failed})
    if name is None or name in names:
        return False
    print(f"cs360 {command}: no provider {name!r} (providers: {', '.join(names) or 'none'})",
          file=sys.stderr)  # fmt: skip
    return True


def _say_waiting(holder: Holder | None) -> None:
    who = holder.describe() if holder else "a refresh that has not said who it is yet"
    print(f"Waiting for the running refresh ({who}) ...", flush=True)


def _refresh_locked(
    args: argparse.Namespace, deployment: Deployment, run_id: str, died: Holder | None
) -> int:
    """The refresh itself, with the deployment's writer lock held."""
    paths = deployment.paths
    stays = None if args.full else _stays_published(args, deployment)
    if stays is not None:
        print(f"No new files; release {stays} stays published (the same files, policy and code, "
              "and the scorecard already computed for today). Nothing was run.")  # fmt: skip
        return 0
    from dagster import DagsterInstance

    from cs360_pipeline.definitions import defs, registry
    from cs360_pipeline.defs.selection import refresh_selection
    from cs360_pipeline.instance import fail_interrupted_run
    from cs360_pipeline.release.publication import reconcile
    from cs360_pipeline.run_times import run_times, summary

    job_name = f"refresh_{args.provider}" if args.provider else "refresh_all"
    if args.provider in registry.failed:  # its provider.yml is invalid: it has no job
        for problem in registry.problems:
            print(f"ERROR: {problem.line}", file=sys.stderr)
        return 1
    job = defs.resolve_job_def(job_name)
    policy = deployment.policy()
    with DagsterInstance.get() as instance:
        if died is not None:
            print(f"Note: {fail_interrupted_run(instance, died)}.", flush=True)
        for line in reconcile(paths, policy.history.releases_public):
            print(f"Recovered: {line}.", flush=True)
        before = _live_release(paths)
        selection = None if args.full else refresh_selection(job, registry, paths, policy)
        if selection is not None:
            print(selection.line(), flush=True)
            job = job.get_subset(
                asset_selection=set(selection.assets), asset_check_selection=set(selection.checks)
            )
        print(f"Running {job_name} (Dagster run {run_id}) ...", flush=True)
        result = _run_with_progress(job, instance, run_id, args, paths)
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
        code = _report_publication(result, paths, list(policy.audiences))
    print(summary(times), flush=True)
    from cs360_pipeline.privacy import fallbacks, placement

    for line in (placement.summary(paths.build_db), fallbacks.summary(paths.build_db)):
        if line:
            print(line, flush=True)
    # A provider whose provider.yml is invalid was left out: the others refreshed, it did not.
    for problem in registry.problems:
        print(f"ERROR: {problem.line}", file=sys.stderr)
    return 1 if registry.problems else code


def _stays_published(args: argparse.Namespace, deployment: Deployment) -> str | None:
    """The live release when this refresh would publish it again unchanged (checked before
    Dagster is loaded); None when there is work, or a provider file to report."""
    from cs360_pipeline.registry import load_registry
    from cs360_pipeline.release.unchanged import unchanged_release

    registry = load_registry(deployment.paths.sources_dir)
    if registry.problems:
        return None
    names = [args.provider] if args.provider else list(registry.providers)
    providers = [registry.providers[n] for n in names if n in registry.providers]
    return unchanged_release(deployment.paths, providers, deployment.policy())


def _reingest(args: argparse.Namespace, deployment: Deployment) -> int:
    """Replay archived files through the current contracts, under the writer lock."""
    from cs360_pipeline.ingest.dropfolder import DropFolder
    from cs360_pipeline.ingest.reingest import ReingestError, reingest
    from cs360_pipeline.refresh_lock import RefreshRunning, refresh_lock
    from cs360_pipeline.registry import load_registry

    paths = deployment.paths
    registry = load_registry(paths.sources_dir)
    if _no_such_provider("reingest", args.provider, registry):
        return USAGE
    paths.ensure()
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
                deployment.policy().tables.city.time_zone,
                log=lambda line: print(f"  {line}", flush=True),
            )
    except RefreshRunning as exc:
        print(f"Re-ingest not started: {exc}. {_live_words(paths)}", file=sys.stderr)
        return BUSY
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


def _disk_shortfall(paths: Paths) -> str | None:
    """Why the data folder's disk is too full to refresh safely, or None.

    A refresh writes a new build and a new warehouse beside the old ones, so it needs about
    their size again, plus room for the inboxes' files to be archived.
    """
    import shutil

    rewritten = sum(
        p.stat().st_size for p in (paths.build_db, paths.warehouse_db, paths.raw_db) if p.exists()
    )
    floor = min_free_bytes(MIN_FREE_BYTES)
    needed = rewritten + floor
    free = shutil.disk_usage(paths.data_dir).free
    if free >= needed:
        return None
    mb = 1024 * 1024
    return (
        f"only {free // mb:,} MB free on the disk holding {paths.data_dir}; a refresh needs "
        f"about {needed // mb:,} MB ({MIN_FREE_ENV} sets the reserve)"
    )


def _report_publication(result: ExecuteInProcessResult, paths: Paths, audiences: list[str]) -> int:
    """Where the brief went, and a non-zero exit when the published tables failed expectations."""
    from cs360_pipeline.publish.outputs import audience_dir

    release_id = _live_release(paths)
    for audience in audiences:
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


def _releases(args: argparse.Namespace, deployment: Deployment) -> int:
    """List the release log, newest first; with a release id, that release in detail."""
    from cs360_pipeline.release import log as release_log

    paths = deployment.paths
    entries = release_log.read(paths)
    if not entries:
        print(f"No release recorded yet ({release_log.log_path(paths)} does not exist).")
        return 1
    if args.release:
        entry = next((e for e in entries if e.release_id == args.release), None)
        if entry is None:
            print(f"cs360 releases: {args.release!r} is not in the release log (`cs360 releases` "
                  "lists them)", file=sys.stderr)  # fmt: skip
            return USAGE
        print(f"release        {entry.release_id}")
        print(f"published      {entry.published_at:%Y-%m-%d %H:%M} UTC "
              f"(first {entry.first_published_at:%Y-%m-%d %H:%M}, "
              f"{entry.times_published} time(s))")  # fmt: skip
        print(f"policy sha256  {entry.policy_sha256}")
        print(f"code version   {entry.code_version}")
        print(f"inputs sha256  {entry.input_sha256}")
        print(textwrap.fill(entry.checks_summary, WIDTH, initial_indent="checks         ",
                            subsequent_indent=" " * 15))  # fmt: skip
        for check in entry.checks:
            if not check.passed:
                print(f"  FAILED {check.name}: {check.detail}")
        print(f"input files    {len(entry.input_files)}")
        _print_table(
            ("provider", "file", "sha256"),
            [(f.provider, _file_name(f.file_name, args), f.sha256) for f in entry.input_files],
            fit=None if args.wide else 1,  # the hashes stay whole
        )
        return OK
    current = entries[0].release_id
    columns = [
        ("  release", lambda e: ("* " if e.release_id == current else "  ") + e.release_id),
        ("published (UTC)", lambda e: f"{e.published_at:%Y-%m-%d %H:%M}"),
        ("first published", lambda e: f"{e.first_published_at:%Y-%m-%d %H:%M}"),
        ("times", lambda e: e.times_published),
        ("files", lambda e: len(e.input_files)),
        ("policy", lambda e: e.policy_sha256[:12]),
        ("code", lambda e: e.code_version),
        ("checks", lambda e: e.checks_summary),
    ]
    if not args.wide:  # the release's detail has the rest
        columns = [c for c in columns if c[0] not in ("first published", "code")]
    _print_table(
        tuple(name for name, _ in columns),
        [tuple(value(e) for _, value in columns) for e in entries],
        fit=None if args.wide else len(columns) - 1,
    )
    return OK


def _print_table(header: tuple[str, ...], rows: list[tuple], fit: int | None = None) -> None:
    for line in _table(header, rows, fit):
        print(line)


def _table(header: tuple[str, ...], rows: list[tuple], fit: int | None = None) -> list[str]:
    """Aligned columns, header first; column ``fit`` is cut (with …) so lines fit ``WIDTH``."""
    table = [header, *[tuple("" if v is None else str(v) for v in r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    if fit is not None:
        room = WIDTH - (sum(widths) - widths[fit]) - 2 * (len(widths) - 1)
        widths[fit] = max(len(header[fit]), min(widths[fit], room), 12)
        table = [tuple(_cut(c, widths[fit]) if i == fit else c for i, c in enumerate(r))
                 for r in table]  # fmt: skip
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _file_name(name: str, args: argparse.Namespace) -> str:
    """A delivered file's name as a table shows it: printable, and short unless ``--wide``."""
    from cs360_pipeline.ingest.readers import safe_text

    return safe_text(name, limit=1000 if args.wide else 40)


def _files(args: argparse.Namespace, deployment: Deployment) -> int:
    """The ingest ledger of the last refresh: every delivered file and what became of it.

    Read from the ledger's snapshot file, so it works while a refresh is writing the build.
    """
    from cs360_pipeline.catalog.deliveries_snapshot import snapshot_path
    from cs360_pipeline.sql import connect, literal

    snapshot = snapshot_path(deployment.paths)
    if not snapshot.exists():
        print(f"No delivery recorded yet ({snapshot} is written by each refresh).")
        return OK
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
    shown = [(p, d, _file_name(f, args), *rest) for p, d, f, *rest in rows]
    if args.wide:
        _print_table(header, shown)
        return OK
    # The hash is in `--wide` and the release detail; a reason follows its file, wrapped.
    lines = _table(header[:7], [r[:7] for r in shown])
    print(lines[0])
    for line, (_, _, name, *_, reason) in zip(lines[1:], shown, strict=True):
        print(line)
        if reason:
            reason = reason.removeprefix(f"{name}: ")
            print(textwrap.fill(reason, WIDTH, initial_indent="  why: ", subsequent_indent=" " * 7))
    return OK


# The scorecard's columns: (header, provider_status column); `--wide` shows them all.
SCORECARD = (
    ("provider", "provider"),
    ("dataset", "dataset"),
    ("cadence", "cadence"),
    ("loaded", "files_loaded"),
    ("quarantine", "files_quarantined"),
    ("awaiting fix", "files_quarantined_open"),
    ("last delivery", "last_delivered_on"),
    ("next expected", "next_expected_by"),
    ("delivery", "freshness_status"),
    ("data to", "data_through"),
    ("data", "data_status"),
    ("severity", "severity"),
    ("steward", "contact"),
    ("issues", "issues"),
)
# What fits in WIDTH: the statuses and the dates that explain them are in the issues, which
# follow the table as WARNING and ERROR lines with whom to call.
NARROW = ("provider", "dataset", "loaded", "quarantine", "delivery", "data to", "data",
          "severity")  # fmt: skip


def _status(args: argparse.Namespace, deployment: Deployment) -> int:
    """Print the delivery scorecard of the published release; the exit code says how it went."""
    from cs360_pipeline.registry import load_registry
    from cs360_pipeline.sql import connect

    paths = deployment.paths
    registry = load_registry(paths.sources_dir)
    if _no_such_provider("status", args.provider, registry):
        return USAGE
    if args.files:
        return _files(args, deployment)
    if not paths.warehouse_db.exists():
        print(f"ERROR: no release published yet ({paths.warehouse_db} does not exist).",
              file=sys.stderr)  # fmt: skip
        return ERRORS
    with closing(connect(paths.warehouse_db, read_only=True)) as con:
        rows = _scorecard(con, args.provider)
        metrics = _metrics_to_watch(con, args.provider)
        unplaced = _unplaced_rows(con, args.provider)
    as_of = rows[0]["as_of"] if rows else "?"
    print(f"Delivery status as of {as_of} (the last refresh):")
    columns = [c for c in SCORECARD if args.wide or c[0] in NARROW]
    _print_table(tuple(h for h, _ in columns), [tuple(r[c] for _, c in columns) for r in rows])
    care = [line for line, _ in metrics]
    for title, lines in (
        ("Metrics to read with care:", care),
        ("Rows placed in no beat (counted in no cell), per metric of the release:", unplaced),
        ("Files loaded under an earlier contract (provider.yml changed since):",
         _earlier_contracts(paths, registry.providers, args.provider)),
    ):  # fmt: skip
        if lines:
            print()
            print(title)
            for line in lines:
                print(f"  {line}")
    problems = _problems(rows, [m for _, m in metrics if m], registry, args.provider)
    for line in problems:
        print(line, file=sys.stderr)
    if any(line.startswith("ERROR") for line in problems):
        return ERRORS
    return WARNINGS if problems else OK


def _scorecard(con: object, provider: str | None) -> list[dict[str, str]]:
    """The published provider_status rows (of one provider), every value as text."""
    where = "WHERE provider = ?" if provider else ""
    cursor = con.execute(  # type: ignore[attr-defined]
        f"SELECT *, coalesce(steward, data_owner, 'nobody named') AS contact "
        f"FROM provider_status {where} ORDER BY provider, dataset",
        [provider] if provider else [],
    )
    names = [c[0] for c in cursor.description]
    return [
        {n: "" if v is None else str(v) for n, v in zip(names, r, strict=True)}
        for r in cursor.fetchall()
    ]


def _metrics_to_watch(con: object, provider: str | None) -> list[tuple[str, str | None]]:
    """(line, metric id if it has no owner) per metric to read with care; with a provider, only
    metrics it feeds and, for staleness, only its late sources."""
    rows = con.execute(  # type: ignore[attr-defined]
        """
        SELECT metric_id, owner_status, freshness_status, coalesce(stale_sources, ''), providers
        FROM metric_catalog
        WHERE audience = (SELECT min(audience) FROM metric_catalog)
          AND (owner_status <> 'owned' OR freshness_status <> 'fresh')
        ORDER BY display_order
        """
    ).fetchall()
    found: list[tuple[str, str | None]] = []
    for metric_id, owner, freshness, stale, providers in rows:
        if owner != "owned" and provider in (None, *(providers or "").split(", ")):
            found.append((f"{metric_id}: no owner named", metric_id))
        sources = [s for s in stale.split("; ") if provider is None or s.startswith(f"{provider}/")]
        if freshness != "fresh" and (sources or provider is None):
            found.append((f"{metric_id}: stale ({'; '.join(sources)})", None))
    return found


def _problems(
    rows: list[dict[str, str]], unowned: list[str], registry: Registry, provider: str | None
) -> list[str]:
    """The ERROR and WARNING lines of the scorecard, each naming whom to call."""
    lines = []
    for level, severity in (("ERROR", "error"), ("WARNING", "warn")):
        for r in (r for r in rows if r["severity"] == severity):
            hint = ""
            if r["files_quarantined_open"] not in ("", "0"):
                hint = f"; `cs360 status --files --provider {r['provider']}` shows which and why"
            lines.append(f"{level}: {r['provider']}/{r['dataset']}: {r['issues']}; "
                         f"contact {r['contact']}{hint}.")  # fmt: skip
    lines += [f"ERROR: metric {m} has no owner." for m in unowned]
    invalid = [p for p in registry.problems if provider in (None, p.file.parent.name)]
    lines += [f"ERROR: {p.line} (it is not refreshed)" for p in invalid]
    return lines


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


def _unplaced_rows(con: object, provider: str | None) -> list[str]:
    """The privacy report's rows placed in no beat, per metric (first audience), in words;
    with a provider, only the metrics it feeds."""
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
          AND (CAST(? AS VARCHAR) IS NULL OR metric_id IN (
              SELECT metric_id FROM metric_catalog
              WHERE list_contains(string_split(providers, ', '), CAST(? AS VARCHAR))))
        ORDER BY metric_id
        """,
        [provider, provider],
    ).fetchall()
    return [
        f"{metric}: {'a few (fewer than the smallest count shown)' if withheld else f'{n:,}'}"
        for metric, n, withheld in rows
    ]


class _Parser(argparse.ArgumentParser):
    """A mistake in the command line is one line on stderr and exit code 2.

    argparse prints the whole usage first; the line names the fix and where ``--help`` is.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


class _Version(argparse.Action):
    """``--version``: the package, and the code version a release made now would record."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=kwargs.get("help"))  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> NoReturn:  # fmt: skip
        from importlib.metadata import version

        problem = _choose_deployment(namespace)
        if problem:
            parser.exit(USAGE, f"cs360: {problem}\n")
        from cs360_pipeline.release.identity import code_version

        code = code_version(Deployment.from_settings().paths)
        print(f"cs360 {version('cs360-pipeline')} (code {code})")
        parser.exit(OK)


def _number(kind: type, minimum: float, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of ``kind``, at least ``minimum`` (more than, if ``above``)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            whole = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {whole}") from None
        if not math.isfinite(value) or value < minimum or (above and value == minimum):
            bound = "more than" if above else "at least"
            raise argparse.ArgumentTypeError(f"it must be {bound} {minimum:g}, not {text!r}")
        return value

    return parse


def _month(text: str) -> str:
    """An argparse type: a month written YYYY-MM."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month written YYYY-MM (2025-12)")
    return text


TOP_EXAMPLES = """\
examples:
  cs360 demo && cs360 refresh        write the demo city's deliveries, then publish a release
  cs360 status                       how current each partner's data is (exit code 0, 1 or 3)
  cs360 status --provider police     one partner only
  cs360 releases                     the releases published, newest first
  cs360 --deployment /srv/metro refresh
                                     refresh another city's deployment folder
"""
REFRESH_EXAMPLES = """\
It prints a line per stage (ingest, aggregate, dbt, checks, publish) with its counts; dbt's
own messages go to <data>/logs/dbt.log, Dagster's log to its UI (run history).

examples:
  cs360 refresh                      every inbox, then publish
  cs360 refresh --provider police    police's inbox and everything built from it
  cs360 refresh --verbose            also Dagster's log and dbt's messages, as they come
  cs360 refresh --wait 7200          wait up to two hours for a refresh already running

exit codes: 0 published, 1 failed (the previous release stays published) or published but
an expectation failed or a provider.yml cannot be read, 2 a mistake in the command line,
3 another refresh of this deployment is running.
"""
STATUS_EXAMPLES = """\
A dataset is an error when it was never delivered, is overdue, its data is far behind, months
are missing inside its series or it names no data owner; a warning when it is late, its data
is behind, its latest file is far smaller than usual, it names no steward, or a quarantined
file of it awaits a corrected delivery (no file of the dataset has loaded since). Each is
printed on stderr, with whom to call.

examples:
  cs360 status                       the scorecard, then the metrics to read with care
  cs360 status --provider hospital   one partner: its datasets and the metrics it feeds
  cs360 status --wide                every column: cadence, dates, steward, issues
  cs360 status --files --provider police
                                     every file police delivered, and what became of it

exit codes: 0 all well, 1 warnings only, 2 a mistake in the command line, 3 errors (also: no
release published yet, a metric without an owner, a provider.yml that cannot be read).
"""


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="cs360",
        description="Generate demo data, refresh the warehouse, show delivery status.",
        epilog=TOP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument(
        "--deployment",
        metavar="DIR",
        help="the city's deployment folder (default: $CS360_DEPLOYMENT_DIR, else the demo city "
        "in this repository)",
    )
    top.add_argument(
        "--version",
        action=_Version,
        help="the package version and the code version a release made now would record",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_init(sub)
    _add_demo(sub)
    _add_refresh(sub)
    _add_reingest(sub)
    _add_releases(sub)
    _add_status(sub)
    return top


def _command(sub: argparse._SubParsersAction, name: str, summary: str,
             epilog: str | None = None) -> argparse.ArgumentParser:  # fmt: skip
    return sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_init(sub: argparse._SubParsersAction) -> None:
    init = _command(sub, "init", "write a new city's deployment folder",
                    'example:\n  cs360 init /srv/metro --name "Metro City" --code MET '
                    "--time-zone America/Chicago\n")  # fmt: skip
    init.add_argument("folder", help="a new or empty folder")
    init.add_argument("--name", required=True, help='the city, as readers know it: "Metro City"')
    init.add_argument("--code", required=True, help="a short code for the city: MET")
    init.add_argument("--time-zone", required=True, help="IANA name: America/Chicago")
    init.set_defaults(func=_init)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = _command(
        sub,
        "demo",
        "write demo deliveries into the providers' inboxes",
        "examples:\n  cs360 demo\n  cs360 demo --scale 0.2 --end-month 2025-12\n"
        "  cs360 demo --hold-back hospital   (a late partner for the scorecard)\n",
    )
    demo.add_argument("--seed", type=_number(int, 0), default=360)
    demo.add_argument("--scale", type=_number(float, 0, above=True), default=1.0,
                      help="volume factor (1.0 = a city)")  # fmt: skip
    demo.add_argument("--end-month", type=_month, metavar="YYYY-MM",
                      help="last month delivered (default: last month)")  # fmt: skip
    demo.add_argument("--months", type=_number(int, 1), default=36)
    demo.add_argument(
        "--hold-back",
        action="append",
        metavar="PROVIDER",
        help="leave out this provider's last months, as if it had stopped delivering",
    )
    demo.add_argument("--hold-back-months", type=_number(int, 0), default=3, metavar="N")
    demo.set_defaults(func=_demo)


def _add_refresh(sub: argparse._SubParsersAction) -> None:
    refresh = _command(sub, "refresh", "ingest, aggregate, model and publish, headless",
                       REFRESH_EXAMPLES)  # fmt: skip
    refresh.add_argument("--provider", help="only this provider's inbox and what depends on it")
    refresh.add_argument("-v", "--verbose", action="store_true",
                         help="also print Dagster's log and dbt's messages")  # fmt: skip
    refresh.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING"],
        help="with --verbose: the least level of Dagster's log printed",
    )
    refresh.add_argument(
        "--full",
        action="store_true",
        help="rebuild and republish everything, even when no input changed (after a policy or "
        "code change): exports, expectations and briefs are rewritten too",
    )
    refresh.add_argument(
        "--wait",
        type=_number(float, 0),
        default=0.0,
        metavar="SECONDS",
        help="if another refresh of this deployment is running, wait up to this long for it "
        "(default: exit at once, with code 3, naming the running refresh)",
    )
    refresh.set_defaults(func=_refresh)


def _add_reingest(sub: argparse._SubParsersAction) -> None:
    reingest = _command(
        sub,
        "reingest",
        "read the archived files again through the current provider contracts (after a "
        "contract fix); the next refresh publishes from them",
        "example:\n  cs360 reingest --provider police && cs360 refresh\n",
    )
    reingest.add_argument("--provider", help="only this provider's files (default: every one)")
    reingest.add_argument(
        "--wait",
        type=_number(float, 0),
        default=0.0,
        metavar="SECONDS",
        help="if a refresh of this deployment is running, wait up to this long for it",
    )
    reingest.set_defaults(func=_reingest)


def _add_releases(sub: argparse._SubParsersAction) -> None:
    releases = _command(
        sub,
        "releases",
        "the release log: the last releases published",
        "examples:\n  cs360 releases\n  cs360 releases r-120468c304fa\n",
    )
    releases.add_argument("release", nargs="?", help="show one release's input files and checks")
    releases.add_argument("--wide", action="store_true",
                          help="every column in full (first published, code version)")  # fmt: skip
    releases.set_defaults(func=_releases)


def _add_status(sub: argparse._SubParsersAction) -> None:
    status = _command(
        sub,
        "status",
        "delivery scorecard per provider dataset; exits 1 on warnings, 3 on errors",
        STATUS_EXAMPLES,
    )
    status.add_argument(
        "--files", action="store_true", help="list every delivered file (the ingest ledger)"
    )
    status.add_argument("--provider", help="only this provider")
    status.add_argument(
        "--wide", action="store_true", help="every column in full (the default fits 100 columns)"
    )
    status.set_defaults(func=_status)


def main(argv: list[str] | None = None) -> int:
    import signal

    # `cs360 status --files | head` ends quietly, as other command-line tools do.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a mistake argparse already reported
        return exc.code if isinstance(exc.code, int) else USAGE
    problem = _choose_deployment(args)
    if problem:
        print(f"cs360: {problem}", file=sys.stderr)
        return USAGE
    from cs360_pipeline.catalog.metrics import CatalogError
    from cs360_pipeline.privacy.policy import PolicyError
    from cs360_pipeline.registry.loader import RegistryError

    try:
        return args.func(args, Deployment.from_settings())
    except (PolicyError, CatalogError, RegistryError) as exc:  # it names the file and key
        print(f"cs360 {args.command}: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print(f"cs360 {args.command}: interrupted", file=sys.stderr)
        return 130


def _choose_deployment(args: argparse.Namespace) -> str | None:
    """Point every part of the run at ``--deployment``, if given; why not, when the folder chosen
    (by it or by ``CS360_DEPLOYMENT_DIR``) is no deployment. Every command but ``init`` and
    ``demo``, which make one, needs its policy."""
    folder = Path(args.deployment).resolve() if args.deployment else deployment_dir()
    policy = folder / "privacy" / "policy.yml"
    if getattr(args, "command", None) not in ("init", "demo") and not policy.is_file():
        return f"{folder} is not a deployment (no privacy/policy.yml): see `cs360 init --help`"
    if args.deployment:
        use_deployment(folder)
    return None


def run() -> NoReturn:
    """The ``cs360`` script: :func:`main`, then out without tearing the interpreter down.

    By the end every file and database is closed and the at-exit handlers have run. Tearing
    down a process that loaded dbt and Great Expectations besides DuckDB makes DuckDB 2.0's
    bindings print "nanobind: leaked N instances" for DuckDB's own type constants, which says
    nothing true about the refresh; it also costs about half a second."""
    import atexit
    import os

    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
