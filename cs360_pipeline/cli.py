"""``cs360``: generate demo data, refresh the warehouse, show delivery status."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing

from cs360_pipeline.settings import current_paths


def _demo(args: argparse.Namespace) -> int:
    from cs360_pipeline.demo import generate

    paths = current_paths()
    print(f"Writing demo deliveries into {paths.sources_dir}/<provider>/inbox ...")
    summary = generate(
        paths.sources_dir,
        seed=args.seed,
        scale=args.scale,
        end_month=args.end_month,
        months=args.months,
        progress=lambda line: print(f"  {line}", flush=True),
    )
    total = sum(summary.files.values())
    print(f"Done: {total} files for {summary.first_month} to {summary.last_month}.")
    print("Next: `cs360 refresh` ingests them and publishes the warehouse.")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from cs360_pipeline.instance import ensure_dagster_home

    ensure_dagster_home()
    from dagster import DagsterInstance

    from cs360_pipeline.definitions import defs

    paths = current_paths().ensure()
    job_name = f"refresh_{args.provider}" if args.provider else "refresh_all"
    job = defs.resolve_job_def(job_name)
    run_config = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    print(f"Running {job_name} (data in {paths.data_dir}) ...", flush=True)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, run_config=run_config, raise_on_error=False
        )
    if not result.success:
        print(f"Refresh failed (run {result.run_id}); the previous release stays published.")
        return 1
    print(f"Published {paths.warehouse_db}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from cs360_pipeline.sql import connect

    paths = current_paths()
    if not paths.raw_db.exists():
        print("Nothing ingested yet.")
        return 0
    with closing(connect(paths.raw_db, read_only=True)) as con:
        rows = con.execute(
            """
            SELECT provider, dataset,
                   count(*) FILTER (WHERE status = 'loaded') AS loaded,
                   count(*) FILTER (WHERE status = 'quarantined') AS quarantined,
                   count(*) FILTER (WHERE status = 'duplicate') AS duplicates,
                   strftime(max(last_period), '%Y-%m') AS latest_month,
                   strftime(max(processed_at), '%Y-%m-%d %H:%M') AS last_processed
            FROM _ingest_ledger GROUP BY ALL ORDER BY ALL
            """
        ).fetchall()
    header = ("provider", "dataset", "loaded", "quarantined", "duplicates", "latest", "processed")
    table = [header, *[tuple("" if v is None else str(v) for v in r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cs360", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="write demo deliveries into the providers' inboxes")
    demo.add_argument("--seed", type=int, default=360)
    demo.add_argument("--scale", type=float, default=1.0, help="volume factor (1.0 = a city)")
    demo.add_argument("--end-month", help="last month delivered, YYYY-MM (default: last month)")
    demo.add_argument("--months", type=int, default=36)
    demo.set_defaults(func=_demo)

    refresh = sub.add_parser("refresh", help="ingest, aggregate, model and publish, headless")
    refresh.add_argument("--provider", help="only this provider's inbox and what depends on it")
    refresh.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    refresh.set_defaults(func=_refresh)

    status = sub.add_parser("status", help="what each provider has delivered")
    status.set_defaults(func=_status)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
