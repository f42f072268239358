"""The blocking privacy gate, the atomic publication of the warehouse, and what follows it.

After the swap: the release log, the exports per audience, Great Expectations over the published
tables (with Data Docs), and the brief, all under ``data/exports/<release>/<audience>/``.
"""

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import dagster as dg

from cs360_pipeline.defs import contracts
from cs360_pipeline.defs.catalog import RELEASE_GROUP
from cs360_pipeline.defs.resources import DeploymentResource
from cs360_pipeline.defs.run_options import RunOptions
from cs360_pipeline.privacy import audit_memo, vault
from cs360_pipeline.privacy.release_audit import audit_release
from cs360_pipeline.publish import expectations, outputs
from cs360_pipeline.publish.audiences import readers
from cs360_pipeline.publish.exports import export_audience
from cs360_pipeline.publish.gate import check, completeness
from cs360_pipeline.publish.warehouse import MARTS_SCHEMA, PUBLISHED_TABLES, live_release
from cs360_pipeline.registry import Provider
from cs360_pipeline.release import log as release_log
from cs360_pipeline.release.publication import publish_release
from cs360_pipeline.report.brief import write_brief
from cs360_pipeline.report.site import write_site
from cs360_pipeline.settings import EXPECTATIONS_ENV, expectations_enabled

MART_KEYS = [dg.AssetKey([MARTS_SCHEMA, t]) for t in PUBLISHED_TABLES]
GROUP = "publish"
WAREHOUSE_KEY = dg.AssetKey(["published", "warehouse"])
RELEASE_LOG_KEY = dg.AssetKey(["published", "release_log"])
EXPORTS_KEY = dg.AssetKey(["published", "exports"])
EXPECTATIONS_KEY = dg.AssetKey(["published", "expectations"])
BRIEF_KEY = dg.AssetKey(["published", "brief"])
DBT_LAYERS = {"staging", "intermediate", "marts"}
RELEASE_CHECKS = {"privacy_gate", "privacy_audit", "release_complete"}  # ours, not dbt's


def run_checks(context: dg.AssetExecutionContext) -> list[release_log.Check]:
    """The blocking checks this run evaluated: the privacy gate and audit, the contracts and the
    dbt tests.

    Only blocking checks gate publication, and all of them have run by the time the warehouse
    is swapped in; the delivery checks describe the partners, not the release, and may run
    later in the same run.
    """
    records = context.instance.get_records_for_run(
        run_id=context.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    checks = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.blocking:
            continue
        asset = evaluation.asset_key.to_user_string()
        dbt_test = evaluation.asset_key.path[0] in DBT_LAYERS
        if evaluation.check_name == contracts.CHECK:
            name = f"{contracts.CHECK}:{asset}"
        elif dbt_test and evaluation.check_name not in RELEASE_CHECKS:
            name = f"dbt tests:{asset}:{evaluation.check_name}"
        else:
            name = evaluation.check_name
        checks.append(
            release_log.Check(
                name=name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                detail=evaluation.description or "",
            )
        )
    return sorted(checks, key=lambda c: c.name)


def build_defs(providers: dict[str, Provider]) -> dg.Definitions:
    @dg.asset_check(
        asset=dg.AssetKey([MARTS_SCHEMA, "metric_values"]),
        name="privacy_gate",
        blocking=True,
        description=(
            "No published count 0 < n < k (k by the policy, per metric and audience), no "
            "identifier or record-key column in a published table. A failure stops "
            "publication; the previous release stays published."
        ),
    )
    def privacy_gate(deployment: DeploymentResource) -> dg.AssetCheckResult:
        with closing(deployment.connect("shared", read_only=True)) as con:
            result = check(con, providers)
        return dg.AssetCheckResult(
            passed=result.passed,
            metadata={
                "small_counts_shown": result.small_counts,
                "identifier_columns": ", ".join(result.identifier_columns) or "none",
            },
        )

    @dg.asset_check(
        asset=dg.AssetKey([MARTS_SCHEMA, "metric_values"]),
        name="privacy_audit",
        blocking=True,
        description=(
            "The independent attacker: for every suppressed small count of every audience, the "
            "minimum and maximum any reader can prove from everything published (this release, "
            "the releases still public, rates with their denominators) by linear programming. "
            "Fails when one can be pinned below k or shown to be non-zero; the report names "
            "each such cell with its bounds, and the previous release stays published."
        ),
    )
    def privacy_audit(
        context: dg.AssetCheckExecutionContext,
        deployment: DeploymentResource,
        run_options: RunOptions,
    ) -> dg.AssetCheckResult:
        paths = deployment.paths
        policy = deployment.policy()
        with closing(deployment.connect("shared", read_only=True)) as con:
            vault.attach(con, paths, read_only=True)
            memory = {} if run_options.full else audit_memo.passed_before(con)
            result = audit_release(
                con, policy.history.releases_public, list(policy.audiences), policy=policy,
                memory=memory,
            )  # fmt: skip
        audit_memo.remember(paths, [f.chains for f in result.families if f.passed])
        report = result.text()
        (context.log.info if result.passed else context.log.error)(report)
        return dg.AssetCheckResult(
            passed=result.passed,
            metadata={
                "tables_audited": len(result.families),
                "tables_passed_before": sum(f.remembered for f in result.families),
                "failing_cells": result.failures,
                "report": dg.MetadataValue.md(f"```\n{report}\n```"),
            },
        )

    @dg.asset_check(
        asset=dg.AssetKey([MARTS_SCHEMA, "metric_values"]),
        name="release_complete",
        blocking=True,
        description=(
            "The release is not empty and lost nothing the deliveries promise: metric_values "
            "shows at least one value; every catalog metric whose source datasets all have "
            "loaded files has rows in it; and no provider that still delivers has under half "
            "the rows it has in the live release. "
            "dbt's tests pass on empty marts; this does not. A failure stops publication."
        ),
    )
    def release_complete(
        context: dg.AssetCheckExecutionContext, deployment: DeploymentResource
    ) -> dg.AssetCheckResult:
        with closing(deployment.connect("shared", read_only=True)) as con:
            result = completeness(con, deployment.paths.warehouse_db)
        for problem in result.problems():  # the run's log says why nothing was published
            context.log.error(f"release_complete: {problem}")
        return dg.AssetCheckResult(
            passed=result.passed,
            description=result.text(),
            metadata={
                "published_values": result.shown_values,
                "metrics_without_rows": ", ".join(result.metrics_without_rows) or "none",
                "providers_shrunken": ", ".join(s.provider for s in result.shrunken) or "none",
                "live_release": result.live_release or "none",
                "problems": "\n".join(result.problems()) or "none",
            },
        )

    @dg.asset(
        key=WAREHOUSE_KEY,
        deps=MART_KEYS,
        group_name=RELEASE_GROUP,
        kinds={"duckdb"},
        description=(
            "data/warehouse.duckdb: the marts copied into a new file with the release's manifest "
            "and swapped in atomically, in step with the privacy vault and the release log "
            "(release/publication.py). Analysts open it read-only."
        ),
    )
    def warehouse(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> dg.MaterializeResult:
        paths = deployment.paths
        published = publish_release(
            paths, run_checks(context), deployment.policy().history.releases_public
        )
        context.log.info(f"published release {published.release_id} to {paths.warehouse_db}")
        return dg.MaterializeResult(
            metadata={
                "release_id": published.release_id,
                "path": str(paths.warehouse_db),
                "releases_in_log": len(published.log),
                **{f"rows_{t}": n for t, n in published.rows.items()},
            }
        )

    return dg.Definitions(
        assets=[warehouse, *after_publication()],
        asset_checks=[privacy_gate, privacy_audit, release_complete],
    )


def after_publication() -> list[dg.AssetsDefinition]:
    """The release log, exports, expectations and brief of the release just published."""

    @dg.asset(
        key=RELEASE_LOG_KEY,
        deps=[WAREHOUSE_KEY],
        group_name=RELEASE_GROUP,
        kinds={"duckdb"},
        description=(
            "data/releases.duckdb, table release_log: every release published (id, time, input "
            "file hashes, policy hash, code version, checks), the last N kept "
            "(CS360_RELEASES_KEPT); written by the publication itself. This step removes the "
            "exports of releases no longer public."
        ),
    )
    def release_log_asset(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> dg.MaterializeResult:
        paths = deployment.paths
        releases_public = deployment.policy().history.releases_public
        entries = release_log.read(paths)
        public = [e.release_id for e in entries[: releases_public + 1]]
        removed = outputs.prune(paths, public)
        for release_id in removed:
            context.log.info(f"removed the exports of {release_id}: no longer a public release")
        current = entries[0]
        return dg.MaterializeResult(
            metadata={
                "release_id": current.release_id,
                "releases_in_log": len(entries),
                "checks": current.checks_summary,
                "exports_removed": ", ".join(removed) or "none",
                "path": str(release_log.log_path(paths)),
            }
        )

    @dg.asset(
        key=EXPORTS_KEY,
        deps=[RELEASE_LOG_KEY],
        group_name=GROUP,
        kinds={"parquet", "csv", "excel"},
        description=(
            "Per audience, under data/exports/<release>/<audience>/: metric_values, "
            "metric_catalog and geography as Parquet and CSV (a withheld number reads "
            "'suppressed' or 'missing', never blank), and the PST's Excel workbook."
        ),
    )
    def exports(deployment: DeploymentResource) -> dg.MaterializeResult:
        paths = deployment.paths
        release_id = live_release(paths)
        written = []
        for reader in readers(deployment.policy()):
            done = export_audience(paths, release_id, reader)
            written.extend(f"{reader.name}/{f.name}" for f in done.files)
        return dg.MaterializeResult(
            metadata={
                "release_id": release_id,
                "path": str(outputs.release_dir(paths, release_id)),
                "files_written": len(written),
            }
        )

    @dg.asset(
        key=EXPECTATIONS_KEY,
        deps=[RELEASE_LOG_KEY],
        group_name=GROUP,
        kinds={"great_expectations"},
        check_specs=[
            dg.AssetCheckSpec(
                "expectations_met",
                asset=EXPECTATIONS_KEY,
                description=(
                    "Great Expectations on each audience's published tables: unique keys, "
                    "values in range, no value on a suppressed cell, a complete period spine."
                ),
            )
        ],
        description=(
            "Great Expectations over the published tables of each audience, with HTML Data Docs "
            "in data/exports/<release>/<audience>/data_docs/. Off when CS360_EXPECTATIONS=off."
        ),
    )
    def expectations_asset(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> Iterator[Any]:
        paths = deployment.paths
        release_id = live_release(paths)
        if not expectations_enabled():
            context.log.warning(f"expectations not run: {EXPECTATIONS_ENV} is off")
            yield dg.MaterializeResult(metadata={"release_id": release_id, "run": False})
            yield dg.AssetCheckResult(
                check_name="expectations_met",
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"not run ({EXPECTATIONS_ENV} is off)",
            )
            return
        results = []
        for audience in deployment.policy().audiences:
            results.append(expectations.validate(paths, release_id, audience))
        failures = [
            f"{r.audience}: {o.table}: {o.description}" for r in results for o in r.failures
        ]
        for line in failures:
            context.log.error(f"expectation failed: {line}")
        passed = not failures
        release_log.add_checks(
            paths,
            release_id,
            [
                release_log.Check(
                    name=f"expectations:{r.audience}",
                    passed=r.passed,
                    severity="ERROR",
                    detail=r.summary(),
                )
                for r in results
            ],
        )
        yield dg.MaterializeResult(
            metadata={
                "release_id": release_id,
                **{f"{r.audience}": r.summary() for r in results},
                "data_docs": str(
                    outputs.audience_dir(paths, release_id, results[0].audience)
                    / expectations.DOCS_DIR
                ),
            }
        )
        yield dg.AssetCheckResult(
            check_name="expectations_met",
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(f"{r.audience}: {r.summary()}" for r in results),
            metadata={"failed": "\n".join(failures) or "none"},
        )

    @dg.asset(
        key=BRIEF_KEY,
        deps=[EXPORTS_KEY, EXPECTATIONS_KEY],
        group_name=GROUP,
        kinds={"html"},
        description=(
            "The brief: a self-contained HTML page per audience "
            "(data/exports/<release>/<audience>/brief.html) with each metric's trend and map by "
            "dimension, data freshness per partner, Community Map coverage, what changed since "
            "the previous release, and the checks the release passed; and the site beside it "
            "(site/index.html): a page per metric with its definition, owner, trend, map, trend "
            "by district, values by period and a download of its rows."
        ),
    )
    def brief(
        context: dg.AssetExecutionContext, deployment: DeploymentResource
    ) -> dg.MaterializeResult:
        paths = deployment.paths
        release_id = live_release(paths)
        written = {}
        for reader in readers(deployment.policy()):
            written[reader.name] = str(write_brief(paths, release_id, reader))
            site = write_site(paths, release_id, reader)
            context.log.info(f"{reader.name} site: {len(site.pages)} pages in {site.folder}")
        for audience, path in written.items():
            context.log.info(f"{audience} brief: {path}")
        return dg.MaterializeResult(
            metadata={
                "release_id": release_id,
                **{audience: dg.MetadataValue.path(path) for audience, path in written.items()},
            }
        )

    return [release_log_asset, exports, expectations_asset, brief]

