"""The city's geography for the privacy engine: beats in districts in the city, and zones.

A **zone** (a focus corridor, a school's surroundings, a campus) is a list of beats the policy
names (``tables.zones``), or an area drawn as a polygon that takes the beats lying mostly
inside it (measured on the city's beat boundaries); it may cut across districts. A zone is
published as its own geography level beside the districts, and that lets a reader subtract: a
district of 40 minus the zone's part of it, 37, leaves a sliver of 3 that is no published
cell, so no check on published cells would notice it.

So each district a zone touches is cut into **pieces**: its beats grouped by the set of zones
they lie in (the beat-by-zone atoms). Pieces are cells of every table that has zones, never
shown: a district is the sum of its pieces, a zone the sum of the pieces inside it, and a piece
the sum of its beats. A small piece is then a primary cell like any other, and every sliver a
reader can difference out is a sum of pieces, so the audit attacks it.

A piece's code names its zones and its district, ``piece:Z1,Z2@D3`` (``piece:@D3`` for the
part of D3 outside every zone); zone codes are plain (letters, digits, ``_`` and ``-``), so the
code is unambiguous however odd the district's code is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import duckdb

from cs360_pipeline.ingest.readers import safe_text
from cs360_pipeline.privacy.boundaries import BOUNDARIES_TABLE, beat_polygons
from cs360_pipeline.privacy.policy import Policy, PolicyError, area_shape

PIECE_PREFIX = "piece:"
SHARED_BOUNDARIES = "beat_boundaries"  # the beat polygons in the shared zone


def piece_code(district: str, zones: Iterable[str]) -> str:
    return f"{PIECE_PREFIX}{','.join(sorted(zones))}@{district}"


class Geography(dict[str, str]):
    """Code -> parent code (beat -> piece -> district -> city, or beat -> district where no
    zone cuts the district), with ``pieces``: each piece's zones (empty: outside every zone)."""

    def __init__(
        self,
        parents: Mapping[str, str] | None = None,
        pieces: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__(parents or {})
        self.pieces = dict(pieces or {})

    @classmethod
    def build(
        cls,
        beats: Iterable[tuple[str, str]],
        city: str,
        zones: Mapping[str, Iterable[str]] | None = None,
    ) -> Geography:
        """From (beat, district) pairs, the city's code and zone -> its beats.

        Raises ``ValueError`` naming the zone and beat when a zone lists a beat the city does
        not have, and naming the code when a zone's code is also a beat's or district's.
        """
        district_of = dict(beats)
        zones = {z: sorted(set(b)) for z, b in (zones or {}).items()}
        taken = {*district_of, *district_of.values(), city}
        for zone, members in sorted(zones.items()):
            if zone in taken:
                raise ValueError(f"zone {zone!r}: the code is also a beat, district or the city")
            missing = [b for b in members if b not in district_of]
            if missing:
                shown = ", ".join(safe_text(b, 30) for b in missing[:5])
                raise ValueError(f"zone {zone!r} lists beats the city does not have: {shown}")
        zones_of: dict[str, list[str]] = {}
        for zone, members in zones.items():
            for beat in members:
                zones_of.setdefault(beat, []).append(zone)
        cut = {district_of[b] for b in zones_of}
        parents: dict[str, str] = {}
        pieces: dict[str, tuple[str, ...]] = {}
        for beat, district in district_of.items():
            if district in cut:
                inside = tuple(sorted(zones_of.get(beat, ())))
                piece = piece_code(district, inside)
                parents[beat], parents[piece] = piece, district
                pieces[piece] = inside
            else:
                parents[beat] = district
            parents[district] = city
        clash = set(pieces) & taken
        if clash:
            raise ValueError(f"code {safe_text(min(clash), 30)!r} is a beat or district code")
        return cls(parents, pieces)

    def piece_of(self) -> dict[str, str]:
        """Beat -> its piece, for the beats of the districts a zone cuts."""
        return {code: parent for code, parent in self.items() if parent in self.pieces}

    def zone_beats(self) -> dict[str, list[str]]:
        """Zone -> its beats in code order."""
        out: dict[str, list[str]] = {}
        for beat, piece in sorted(self.piece_of().items()):
            for zone in self.pieces[piece]:
                out.setdefault(zone, []).append(beat)
        return out


def city_geography(con: duckdb.DuckDBPyConnection, policy: Policy) -> Geography:
    """The city's geography from the restricted beat tree and the policy's zones."""
    rows = con.execute("SELECT beat, district FROM raw.city__beats").fetchall()
    return _checked(rows, policy, lambda: beat_polygons(con, f"raw.{BOUNDARIES_TABLE}"))


def published_geography(
    con: duckdb.DuckDBPyConnection, policy: Policy, shared: str = "shared"
) -> Geography:
    """The same geography from the shared zone's beat tree and beat boundaries (what a release
    shows) and the policy's zones (what the cells were built and protected with)."""
    rows = con.execute(
        f"SELECT geo_code, parent_code FROM {shared}.geography WHERE geo_level = 'beat'"
    ).fetchall()
    return _checked(rows, policy, lambda: beat_polygons(con, f"{shared}.{SHARED_BOUNDARIES}"))


def zone_beats(
    policy: Policy, polygons: Callable[[], tuple[list[str], list[bytes]]]
) -> dict[str, list[str]]:
    """Zone -> its beats: the policy's list, or the beats an area takes (``polygons``: the
    city's beat codes and WKB polygons, read only when some zone is an area).

    A beat belongs to an area when at least the zone's ``min_beat_share`` of the beat's own
    area lies inside it (measured in degrees: over a city the ratio is the same as on the
    ground). Raises ``ValueError`` naming the zone when there are no boundaries to measure
    against, or when the area takes no beat."""
    out: dict[str, list[str]] = {}
    loaded: tuple[list[str], list[bytes]] | None = None
    for code, zone in sorted(policy.tables.zones.items()):
        if zone.beats is not None:
            out[code] = list(zone.beats)
            continue
        loaded = loaded or polygons()
        if not loaded[0]:
            raise ValueError(
                f"zone {code!r} is an area: it needs the city's beat boundaries "
                "(city/beat_boundaries), and none are loaded"
            )
        out[code] = _beats_in_area(area_shape(zone.area or {}), *loaded, zone.min_beat_share)
        if not out[code]:
            raise ValueError(
                f"zone {code!r}: no beat lies at least {zone.min_beat_share:.0%} inside its area"
            )
    return out


def _beats_in_area(area: Any, codes: list[str], wkb: list[bytes], share: float) -> list[str]:
    import shapely

    beats = shapely.from_wkb(wkb)
    inside = shapely.area(shapely.intersection(beats, area))
    whole = shapely.area(beats)
    return [c for c, i, w in zip(codes, inside, whole, strict=True) if w > 0 and i >= share * w]


def _checked(
    rows: list, policy: Policy, polygons: Callable[[], tuple[list[str], list[bytes]]]
) -> Geography:
    try:
        return Geography.build(rows, policy.tables.city.code, zone_beats(policy, polygons))
    except ValueError as exc:
        raise PolicyError(f"privacy/policy.yml tables.zones: {exc}") from exc
