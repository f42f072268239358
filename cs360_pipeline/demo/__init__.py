"""Deterministic demo extracts for the fictional city of Riverton (city code ``RIV``).

``generate`` writes what the partners would drop into their inboxes (police incidents and CAD
calls, school attendance, injury ED visits, probation events, plus city reference files and the
beat map as GeoJSON), so
the whole pipeline can be run and demonstrated without real, sensitive data. The output is a
pure function of ``(seed, scale, end_month, months)``: the same arguments give byte-identical
files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa

from cs360_pipeline.demo import hospital, police, probation, school, survey
from cs360_pipeline.demo.city import beat_map, build_city, reference_files
from cs360_pipeline.demo.common import Window, dataset_rng, last_complete_month
from cs360_pipeline.demo.writer import CsvWriter

CITY_CODE = "RIV"
CITY_NAME = "Riverton"

MonthlyDataset = Callable[..., Iterator[tuple[str, pa.Table]]]

# (provider, dataset, generator). The rng of each is keyed by "provider/dataset".
MONTHLY_DATASETS: tuple[tuple[str, str, MonthlyDataset], ...] = (
    ("police", "incidents", police.incidents),
    ("police", "calls", police.calls),
    ("school", "attendance", school.attendance),
    ("hospital", "ed_visits", hospital.ed_visits),
    ("probation", "events", probation.events),
    ("probation", "caseload", probation.caseload),
    ("survey", "responses", survey.responses),
)
# Extra random streams a generator draws from, by keyword: columns added to a dataset after its
# first release get their own stream (so the existing columns stay byte-identical), and the
# caseload roster replays the events extract's stream to list the same cases.
EXTRA_STREAMS: dict[str, dict[str, str]] = {
    "police/incidents": {"offenders_rng": "police/incidents/offenders"},
    "probation/caseload": {"cases_rng": "probation/events"},
}
HOLD_BACK_MONTHS = 3


@dataclass(frozen=True)
class DemoSummary:
    """What a ``generate`` run wrote, keyed by ``"provider/dataset"``."""

    files: dict[str, int]  # "police/incidents" -> number of files written
    rows: dict[str, int]  # "police/incidents" -> total rows written
    first_month: str  # "YYYY-MM"
    last_month: str  # "YYYY-MM"


def generate(
    sources_dir: Path,
    *,
    seed: int = 360,
    scale: float = 1.0,
    end_month: str | None = None,
    months: int = 36,
    progress: Callable[[str], None] | None = None,
    hold_back: Mapping[str, int] | None = None,
) -> DemoSummary:
    """Write every demo extract to ``sources_dir/<provider>/inbox/``.

    ``scale`` multiplies volumes (incidents, calls, students, visits, probation cases, survey
    responses), never the geography. ``end_month`` defaults to the last complete month before
    today; it is the only input not fixed by the arguments. Existing files of the same name are
    replaced; other files in the inboxes are left alone.

    ``hold_back`` maps a provider to a number of months: its monthly files for the window's
    last months are not written, as if the partner had stopped delivering (the delivery
    scorecard should then flag it). The files it does write are the same as without it.
    """
    if seed < 0:
        raise ValueError("seed must be non-negative")
    if scale < 0:
        raise ValueError("scale must be non-negative")
    hold_back = dict(hold_back or {})
    if any(n < 0 for n in hold_back.values()):
        raise ValueError("hold_back months must be non-negative")
    window = Window.ending(end_month or last_complete_month(date.today()), months)
    city = build_city()
    sources_dir = Path(sources_dir)
    files: dict[str, int] = {}
    rows: dict[str, int] = {}

    def record(key: str, n_files: int, n_rows: int) -> None:
        files[key], rows[key] = n_files, n_rows
        if progress is not None:
            noun = "file" if n_files == 1 else "files"
            progress(f"{key}: {n_files} {noun}, {n_rows:,} rows")

    with CsvWriter() as writer:
        reference = {
            ("city", name): table for name, table in reference_files(city, window.years).items()
        }
        reference["school", "schools.csv"] = school.schools_table(city)
        for (provider, name), table in reference.items():
            n = writer.write(table, sources_dir / provider / "inbox" / name)
            record(f"{provider}/{name.removesuffix('.csv')}", 1, n)
        beats = beat_map(city)
        writer.write_json(beats, sources_dir / "city" / "inbox" / "beats.geojson")
        record("city/beat_boundaries", 1, len(beats["features"]))  # type: ignore[arg-type]

        for provider, dataset, make in MONTHLY_DATASETS:
            key = f"{provider}/{dataset}"
            inbox = sources_dir / provider / "inbox"
            streams = {k: dataset_rng(seed, v) for k, v in EXTRA_STREAMS.get(key, {}).items()}
            held = {
                window.label(i)
                for i in range(len(window))[len(window) - hold_back.get(provider, 0) :]
            }
            n_files = n_rows = 0
            for file_name, table in make(city, window, dataset_rng(seed, key), scale, **streams):
                if file_name.rsplit("_", 1)[-1].removesuffix(".csv") in held:
                    continue
                n_rows += writer.write(table, inbox / file_name)
                n_files += 1
            record(key, n_files, n_rows)

    return DemoSummary(
        files=files,
        rows=rows,
        first_month=window.label(0),
        last_month=window.label(len(window) - 1),
    )


__all__ = ["CITY_CODE", "CITY_NAME", "HOLD_BACK_MONTHS", "DemoSummary", "generate"]


def leave_out_delivered(sources_dir: Path) -> int:
    """Take back every inbox file whose bytes are already kept in its provider's archive (a
    second `cs360 demo` writes the same files again); how many. A refresh would only record
    them as duplicates; this way it finds nothing new and says so."""
    from hashlib import sha256

    from cs360_pipeline.ingest.dropfolder import DropFolder

    taken_back = 0
    for inbox in sorted(sources_dir.glob("*/inbox")):
        folder = DropFolder(inbox.parent)
        for path in sorted(p for p in inbox.iterdir() if p.is_file()):
            digest = sha256(path.read_bytes()).hexdigest()
            if folder.archive_path(path.name, digest).is_file():
                path.unlink()
                taken_back += 1
    return taken_back
