"""Attack a release as its readers would, before it is published.

This reads what the release *actually shows* (``marts.metric_values``, after dbt), not what the
suppressor meant to show: a cell's count counts as published when any metric row reveals it (a
count, a rate over public population, a median's number of records, a percent's numerator or
denominator). The true counts come from the restricted vault. Each audience is attacked with
everything it can see: its own tables of this release and of the releases still public, and for
the PST also the public tables (the public release is public to the PST as well).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import duckdb
import numpy as np

from cs360_pipeline.privacy import audit_memo, vault
from cs360_pipeline.privacy.audit import AuditReport, Publication, audit
from cs360_pipeline.privacy.geography import published_geography
from cs360_pipeline.privacy.lattice import CellKey, normalize_key
from cs360_pipeline.privacy.policy import Policy

THIS_RELEASE = "this release"

PUBLISHED_CELLS = """
    SELECT DISTINCT v.audience, d.numerator_measure AS measure_id, v.period_level,
           CAST(v.period_start AS VARCHAR), v.geo_level, v.geo_code, v.breakdown
    FROM {marts}.metric_values AS v JOIN {shared}.metric_definitions AS d USING (metric_id)
    WHERE v.value IS NOT NULL OR v.numerator IS NOT NULL
    UNION
    SELECT DISTINCT v.audience, d.denominator_measure, v.period_level,
           CAST(v.period_start AS VARCHAR), v.geo_level, v.geo_code, v.breakdown
    FROM {marts}.metric_values AS v JOIN {shared}.metric_definitions AS d USING (metric_id)
    WHERE d.denominator_measure IS NOT NULL AND v.denominator IS NOT NULL
"""


@dataclass(frozen=True)
class FamilyAudit:
    """The audit of one measure for one audience."""

    audience: str
    measure_id: str
    cells: int
    suppressed: int
    report: AuditReport
    unknown_cells: tuple[CellKey, ...] = ()
    chains: audit_memo.Chains = ()  # what was attacked, as audit_memo describes it
    remembered: bool = False  # the same tables (or more) passed an earlier audit

    @property
    def passed(self) -> bool:
        return self.report.passed and not self.unknown_cells


@dataclass(frozen=True)
class ReleaseAudit:
    families: tuple[FamilyAudit, ...]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.families)

    @property
    def failures(self) -> int:
        return sum(len(f.report.failures) + len(f.unknown_cells) for f in self.families)

    def text(self) -> str:
        """The reviewer's report: one line per measure and audience, then every failing cell."""
        lines = [
            f"privacy audit of the release: {'PASSED' if self.passed else 'FAILED'} "
            f"({len(self.families)} tables, {self.failures} failing cells)"
        ]
        for f in self.families:
            how = (
                "the same tables, or more, passed an earlier audit"
                if f.remembered
                else f"{f.report.lps} LPs, {f.report.seconds:.1f} s"
            )
            lines.append(
                f"  {f.measure_id} [{f.audience}]: {f.cells:,} cells, {f.suppressed:,} "
                f"suppressed, {f.report.primaries:,} small; "
                f"{'passed' if f.passed else 'FAILED'} ({how})"
            )
            for failure in f.report.failures:
                lines.append(
                    f"    {failure.release}: {' / '.join(failure.key)} can be narrowed to "
                    f"[{failure.lower:g}, {failure.upper:g}] ({failure.reason})"
                )
            for key in f.unknown_cells:
                lines.append(f"    published but unknown to the vault: {' / '.join(key)}")
        return "\n".join(lines)


def _passed_before(publications: list[Publication]) -> AuditReport:
    """The report of a family that passed an earlier audit of the same tables."""
    primaries = sum(
        int(np.count_nonzero((p.lattice.n > 0) & (p.lattice.n < p.k))) for p in publications
    )
    return AuditReport(
        failures=(), primaries=primaries, checked=primaries, components=0, largest_component=0,
        lps=0, milps=0, seconds=0.0, bounds={},
    )  # fmt: skip


def _published(con: duckdb.DuckDBPyConnection, marts: str, shared: str) -> dict:
    rows = con.execute(PUBLISHED_CELLS.format(marts=marts, shared=shared)).fetchall()
    out: dict[tuple[str, str], set[CellKey]] = {}
    for audience, measure_id, *key in rows:
        out.setdefault((audience, measure_id), set()).add(normalize_key(key))
    return out


def audit_release(
    con: duckdb.DuckDBPyConnection,
    releases_public: int,
    audiences: list[str],
    *,
    policy: Policy,
    marts: str = "marts",
    shared: str = "shared",
    memory: audit_memo.Memory | None = None,
) -> ReleaseAudit:
    """``con`` has the build database as default catalog and the vault attached as ``vault``.

    ``audiences`` in the policy's order, widest view first: each audience also reads the tables
    of every audience after it (the PST reads what the public reads). ``policy``: the one the
    cells were protected under (its zones). ``memory``: the families
    that passed before (``audit_memo``); a family they cover passes without being attacked.
    """
    memory = memory or {}
    published = _published(con, marts, shared)
    geo_parent = published_geography(con, policy, shared)
    families = []
    by_measure: dict[str, list[str]] = {}
    for audience, measure_id in vault.candidate_measures(con):
        by_measure.setdefault(measure_id, []).append(audience)
    for measure_id, built_for in by_measure.items():
        stored = vault.measure_releases(con, measure_id, geo_parent, releases_public)
        for audience in built_for:
            pubs, unknown, chains = [], [], []
            for name in audiences[audiences.index(audience) :]:
                built, past = stored.get(name, (None, []))
                if built is None:
                    continue
                shown = published.get((name, measure_id), set())
                unknown += sorted(key for key in shown if key not in built.lattice.index)
                # Judge what the marts show, not what the suppressor meant to show.
                this = replace(
                    built, release_id=THIS_RELEASE, suppressed=~built.lattice.mask(shown)
                )
                chain = []
                for age, r in enumerate([this, *past]):  # newest first
                    label = r.release_id if name == audience else f"{r.release_id} ({name})"
                    chain.append(r.publication(label, -age))
                pubs += chain
                chains.append((name, chain))
            own = pubs[0]
            described = audit_memo.family_chains(chains)
            again = not unknown and audit_memo.covered(
                described, memory.get(audit_memo.head(described), [])
            )
            families.append(
                FamilyAudit(
                    audience=audience,
                    measure_id=measure_id,
                    cells=own.lattice.size,
                    suppressed=int(np.count_nonzero(own.suppressed)),
                    report=_passed_before(pubs) if again else audit(pubs),
                    unknown_cells=tuple(unknown),
                    chains=described,
                    remembered=again,
                )
            )
    families.sort(key=lambda f: (audiences.index(f.audience), f.measure_id))
    return ReleaseAudit(tuple(families))
