"""The gates before publication: checks that share no logic with the code they judge.

``check`` is the privacy gate: no small count by the policy's cell sizes, no identifier or record
key of any registered dataset. (That a suppressed row shows nothing is a rule of the published
contract, ``contracts/published.py``.)
``completeness`` refuses a release that is empty or lost what the deliveries promise: a build can
pass every dbt test and the privacy gate with empty marts, and must still not replace the live
release.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb

from cs360_pipeline.publish.reader import open_warehouse
from cs360_pipeline.publish.warehouse import MARTS_SCHEMA, PUBLISHED_TABLES, release_of
from cs360_pipeline.registry import Provider


@dataclass(frozen=True)
class GateResult:
    small_counts: int
    identifier_columns: list[str]

    @property
    def passed(self) -> bool:
        return not (self.small_counts or self.identifier_columns)


def forbidden_columns(providers: dict[str, Provider]) -> set[str]:
    """Direct identifiers and record keys of every dataset: none may reach a published table."""
    names = set()
    for provider in providers.values():
        for dataset in provider.datasets.values():
            if dataset.load == "replace":
                continue  # reference data (beats, schools) has no people in it
            names.update(n for n, c in dataset.columns.items() if c.identifier)
            names.update(dataset.key)
    return names


def check(con: duckdb.DuckDBPyConnection, providers: dict[str, Provider]) -> GateResult:
    """Scan the marts in the build database as they would be published."""
    small = con.execute(
        f"""
        SELECT count(*)
        FROM {MARTS_SCHEMA}.metric_values AS v
        JOIN shared.metric_definitions AS d USING (metric_id)
        JOIN shared.privacy_rules AS r USING (metric_id, audience)
        WHERE (v.numerator > 0 AND v.numerator < r.min_cell_size)
           OR (NOT d.per_population AND v.denominator > 0 AND v.denominator < r.min_cell_size)
        """
    ).fetchall()[0][0]
    tables = ", ".join(f"'{t}'" for t in PUBLISHED_TABLES)
    columns = con.execute(
        f"""
        SELECT table_name || '.' || column_name, column_name
        FROM information_schema.columns
        WHERE table_schema = '{MARTS_SCHEMA}' AND table_name IN ({tables})
        """
    ).fetchall()
    forbidden = forbidden_columns(providers)
    return GateResult(
        small_counts=small,
        identifier_columns=sorted(full for full, name in columns if name in forbidden),
    )


# --- Completeness: never publish an empty or broken release -----------------------------------

SHRINK_LIMIT = 0.5  # a delivering provider may not fall below half its rows in the live release
LISTED = 5  # metrics named per shrunken provider, reasons named in a description


@dataclass(frozen=True)
class Shrunken:
    """A provider that still delivers, whose rows in metric_values fell far below the live ones."""

    provider: str
    rows: int
    live_rows: int
    metrics: list[tuple[str, int, int]]  # (metric_id, rows now, rows live), largest drop first

    def text(self, live_release: str) -> str:
        drops = ", ".join(f"{m} {live:,} -> {now:,}" for m, now, live in self.metrics[:LISTED])
        return (
            f"provider {self.provider} still delivers, but this build has {self.rows:,} rows "
            f"in metric_values for its metrics against {self.live_rows:,} in the live release "
            f"{live_release} (under {SHRINK_LIMIT:.0%}): {drops}"
        )


@dataclass(frozen=True)
class Completeness:
    """Whether the marts hold what the deliveries promise, compared with the live release."""

    shown_values: int
    metrics_without_rows: dict[str, list[str]]  # metric_id -> its delivered source datasets
    shrunken: list[Shrunken]
    live_release: str | None

    @property
    def passed(self) -> bool:
        return bool(self.shown_values) and not self.metrics_without_rows and not self.shrunken

    def problems(self) -> list[str]:
        """One sentence per reason the release must not be published."""
        out = []
        if not self.shown_values:
            out.append("metric_values holds no published value at all")
        for metric_id, sources in self.metrics_without_rows.items():
            out.append(
                f"metric {metric_id} has no row in metric_values, although "
                f"{', '.join(sources)} delivered loaded files"
            )
        out.extend(s.text(self.live_release or "") for s in self.shrunken)
        return out

    def text(self) -> str:
        """The check's description: what passed, or the first reasons it failed."""
        if self.passed:
            return (
                f"{self.shown_values:,} published values; every metric whose sources delivered "
                "has rows; no delivering provider fell below half its rows in the live release"
            )
        problems = self.problems()
        more = len(problems) - LISTED
        return "; ".join(problems[:LISTED]) + (f"; and {more} more" if more > 0 else "")


def _delivered_sources(con: duckdb.DuckDBPyConnection) -> set[str]:
    """``provider.dataset`` of every dataset with a loaded file that brought rows."""
    rows = con.execute(
        "SELECT DISTINCT provider || '.' || dataset FROM shared.deliveries "
        "WHERE status = 'loaded' AND coalesce(rows_loaded, 0) > 0"
    ).fetchall()
    return {r[0] for r in rows}


def _rows_per_metric(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, int]:
    """Rows per metric, whatever their status.

    A metric's rows exist once its cells reached the marts: suppression (the policy) and
    'missing' (a period not yet fully delivered, as when another partner is a month ahead)
    change a row's status, not whether it is there. Rows vanish only when cells are lost.
    """
    rows = con.execute(f"SELECT metric_id, count(*) FROM {table} GROUP BY metric_id").fetchall()
    return dict(rows)


def _live_rows(live_warehouse: Path | None) -> tuple[str | None, dict[str, int]]:
    """The live release's id and rows per metric; nothing before a first release."""
    if live_warehouse is None or not live_warehouse.is_file():
        return None, {}
    with closing(open_warehouse(live_warehouse)) as con:
        release_id = release_of(con)
        return release_id, _rows_per_metric(con, "metric_values")


def _shrunken(
    owners: dict[str, str],
    delivering: set[str],
    rows: dict[str, int],
    live: dict[str, int],
) -> list[Shrunken]:
    """Delivering providers whose metrics' rows fell under half of those in the live release.

    A metric belongs to the provider of its numerator; metrics no longer in the catalog are
    left out on both sides, so retiring a metric is not a loss.
    """
    out = []
    for provider in sorted(set(owners.values()) & delivering):
        mine = [m for m, owner in owners.items() if owner == provider]
        now = sum(rows.get(m, 0) for m in mine)
        before = sum(live.get(m, 0) for m in mine)
        if before and now < SHRINK_LIMIT * before:
            drops = sorted(
                ((m, rows.get(m, 0), live.get(m, 0)) for m in mine),
                key=lambda d: d[1] - d[2],
            )
            lost = [d for d in drops if d[1] < d[2]]
            out.append(Shrunken(provider, now, before, lost))
    return out


def completeness(
    con: duckdb.DuckDBPyConnection, live_warehouse: Path | None = None
) -> Completeness:
    """Check the build's marts against the deliveries and against the live release.

    dbt's tests pass on empty tables, and the privacy gate finds nothing to object to in them,
    so a build whose cells never reached the marts would otherwise be published. Fails when no
    value at all is published; when a catalog metric all of whose source datasets delivered
    loaded rows has no row in metric_values; or when a provider that still delivers has under
    half the rows it has in the live release.
    """
    shown = con.execute(
        f"SELECT count(*) FROM {MARTS_SCHEMA}.metric_values "
        "WHERE status IN ('published', 'unreliable') AND value IS NOT NULL"
    ).fetchall()[0][0]
    delivered = _delivered_sources(con)
    definitions = con.execute(
        "SELECT metric_id, source_datasets, split_part(numerator_measure, '__', 1) "
        "FROM shared.metric_definitions WHERE len(audiences) > 0 ORDER BY display_order"
    ).fetchall()
    rows = _rows_per_metric(con, f"{MARTS_SCHEMA}.metric_values")
    without = {
        metric_id: sorted(sources)
        for metric_id, sources, _ in definitions
        if sources and set(sources) <= delivered and not rows.get(metric_id)
    }
    live_release, live = _live_rows(live_warehouse)
    owners = {metric_id: provider for metric_id, _, provider in definitions}
    delivering = {source.split(".", 1)[0] for source in delivered}
    return Completeness(
        shown_values=shown,
        metrics_without_rows=without,
        shrunken=_shrunken(owners, delivering, rows, live),
        live_release=live_release,
    )
