"""The audiences of a release, as the policy names them: who each set of outputs is for.

Every loop over audiences (exports, expectations, briefs, sites, what a refresh reports) runs
over the policy's, so an audience added to ``privacy/policy.yml`` gets its tables, files and
pages with no other edit.
"""

from __future__ import annotations

from dataclasses import dataclass

from cs360_pipeline.privacy.policy import Policy


@dataclass(frozen=True)
class Reader:
    """One audience: its name (a folder and a column value), title and what it is shown."""

    name: str
    title: str
    description: str
    under_agreement: bool  # stewards, delivered files and the Excel workbook are for it


def readers(policy: Policy) -> list[Reader]:
    """The policy's audiences in its order (the widest view first)."""
    return [
        Reader(
            name=name,
            title=audience.title or name,
            description=audience.description,
            under_agreement=audience.under_agreement,
        )
        for name, audience in policy.audiences.items()
    ]
