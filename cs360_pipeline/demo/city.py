"""Riverton's geography and residents: districts, beats, census tracts and population.

The city is the same for every seed (it is drawn from a fixed internal seed), so hot spots and
small beats can be named in docs and tests; the user's seed only varies the events. Volumes
(``scale``) never touch the geography either.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa

from cs360_pipeline.demo.common import labels
from cs360_pipeline.demo.names import STREETS

CITY_SEED = 2_024_360
BASE_YEAR = 2024
TARGET_POPULATION = 300_000
TRACT_PREFIX = "99001"  # fictional state + county FIPS so GEOIDs never collide with real ones

DISTRICTS = (
    ("D01", "Northside", (2.0, 4.0)),
    ("D02", "Riverfront", (1.0, 2.5)),
    ("D03", "Eastgate", (4.0, 3.0)),
    ("D04", "Southpark", (2.0, 0.0)),
    ("D05", "Westview", (0.0, 3.5)),
    ("D06", "Old Town", (2.0, 2.0)),
    ("D07", "Hillcrest", (3.5, 1.0)),
    ("D08", "Lakeshore", (0.0, 1.0)),
    ("D09", "Mill District", (3.0, 2.5)),
    ("D10", "Cedar Heights", (4.5, 4.5)),
)

# Beats with 3-5x the per-capita crime rate and most of the city's gun violence.
HOT_SPOT_BEATS = ("0203", "0401", "0404", "0902")
# Deliberately tiny beats (under 800 residents) so small-cell suppression has work to do.
SMALL_BEATS = ("0106", "0306", "0506", "0806", "1006")

AGE_GROUPS = ("0-9", "10-17", "18-24", "25-34", "35-64", "65+")
AGE_SHARES = np.array([0.12, 0.10, 0.10, 0.15, 0.38, 0.15])
SEXES = ("F", "M")

_NAME_STEMS = (
    "Alder", "Ash", "Aspen", "Beech", "Birch", "Cedar", "Chestnut", "Cypress", "Dogwood",
    "Elm", "Hawthorn", "Hickory", "Holly", "Juniper", "Laurel", "Linden", "Magnolia",
    "Maple", "Oak", "Pine", "Poplar", "Spruce", "Sycamore", "Walnut", "Willow",
)  # fmt: skip
_NAME_SUFFIXES = (
    "Commons", "Crossing", "Flats", "Gardens", "Grove", "Heights", "Hollow", "Park",
    "Point", "Ridge", "Square", "Terrace",
)  # fmt: skip
STREETS_PER_BEAT = 6
BLOCKS_PER_STREET = 16


@dataclass(frozen=True, eq=False)
class City:
    """Per-beat arrays (index = position in ``beat``) plus the tract lookup."""

    beat: tuple[str, ...]
    beat_name: tuple[str, ...]
    district: tuple[str, ...]
    district_name: tuple[str, ...]
    population: np.ndarray  # residents in BASE_YEAR
    growth: np.ndarray  # annual growth rate
    age_sex: np.ndarray  # (beat, age group, sex) shares summing to 1 per beat
    hot: np.ndarray  # bool
    xy: np.ndarray  # (beat, 2) map position, used to send children to nearby schools
    streets: np.ndarray  # (beat, STREETS_PER_BEAT) indices into names.STREETS
    block_base: np.ndarray  # lowest hundred-block number of the beat
    tract: tuple[str, ...]
    tract_beat: np.ndarray  # beat index of each tract
    tract_share: np.ndarray  # share of its beat's residents living in the tract

    @property
    def n_beats(self) -> int:
        return len(self.beat)

    def beat_index(self, code: str) -> int:
        return self.beat.index(code)

    def weights(self, hot_boost: float = 1.0) -> np.ndarray:
        """Probability of each beat when events scale with residents, hot spots boosted."""
        w = self.population * np.where(self.hot, hot_boost, 1.0)
        return w / w.sum()

    def tract_weights(self, hot_boost: float = 1.0) -> np.ndarray:
        """Probability of each tract as someone's residence, hot-spot tracts boosted."""
        w = self.weights(hot_boost)[self.tract_beat] * self.tract_share
        return w / w.sum()

    def sample_beats(self, rng: np.random.Generator, n: int, hot_boost: float) -> np.ndarray:
        return rng.choice(self.n_beats, size=n, p=self.weights(hot_boost))

    def sample_tracts(self, rng: np.random.Generator, n: int, hot_boost: float) -> np.ndarray:
        return rng.choice(len(self.tract), size=n, p=self.tract_weights(hot_boost))

    def sample_blocks(
        self, rng: np.random.Generator, beat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A street and hundred-block inside each given beat."""
        street = self.streets[beat, rng.integers(0, STREETS_PER_BEAT, len(beat))]
        block = self.block_base[beat] + 100 * rng.integers(0, BLOCKS_PER_STREET, len(beat))
        return street, block

    def population_in(self, year: int) -> np.ndarray:
        """Integer residents by (beat, age group, sex) for a calendar year."""
        total = self.population * (1.0 + self.growth) ** (year - BASE_YEAR)
        return np.rint(total[:, None, None] * self.age_sex).astype(np.int64)

    def beats_table(self) -> pa.Table:
        return pa.table(
            {
                "beat": pa.array(self.beat),
                "beat_name": pa.array(self.beat_name),
                "district": pa.array(self.district),
                "district_name": pa.array(self.district_name),
            }
        )

    def tracts_table(self) -> pa.Table:
        return pa.table(
            {
                "tract_geoid": pa.array(self.tract),
                "beat": labels(self.beat, self.tract_beat),
            }
        )

    def population_table(self, years: list[int]) -> pa.Table:
        counts = np.stack([self.population_in(y) for y in years])  # (year, beat, age, sex)
        year, beat, age, sex = (g.ravel() for g in np.indices(counts.shape))
        return pa.table(
            {
                "year": pa.array(np.asarray(years, dtype=np.int32)[year]),
                "beat": labels(self.beat, beat),
                "age_group": labels(AGE_GROUPS, age),
                "sex": labels(SEXES, sex),
                "population": pa.array(counts.ravel()),
            }
        )


def _beat_populations(rng: np.random.Generator, small: np.ndarray) -> np.ndarray:
    """Beat sizes between ~1,200 and 8,000, small beats 420-760, summing to the target."""
    pop = np.exp(rng.normal(np.log(3600), 0.45, len(small)))
    pop[small] = rng.uniform(420, 760, small.sum())
    for _ in range(5):  # rescale the regular beats towards the target, keeping them in range
        room = TARGET_POPULATION - pop[small].sum()
        pop[~small] = np.clip(pop[~small] * room / pop[~small].sum(), 1200, 8000)
    return np.round(pop)


def _age_sex_shares(rng: np.random.Generator, hot: np.ndarray) -> np.ndarray:
    """Slightly different age pyramids per beat; hot spots skew young."""
    n = len(hot)
    ages = rng.dirichlet(300 * AGE_SHARES, n)
    ages[hot] *= np.array([1.05, 1.1, 1.25, 1.2, 0.9, 0.7])
    ages /= ages.sum(axis=1, keepdims=True)
    female = np.array([0.49, 0.49, 0.5, 0.5, 0.51, 0.56]) + rng.normal(0, 0.01, (n, 1))
    return np.stack([ages * female, ages * (1 - female)], axis=2)


def _tracts(rng: np.random.Generator, pop: np.ndarray, small: np.ndarray):
    """1-3 tracts per beat, numbered like real ones (``000300``, or ``000301``/``000302``)."""
    codes: list[str] = []
    beat_of: list[int] = []
    shares: list[float] = []
    for b, residents in enumerate(pop):
        if small[b] or residents < 2500:
            k = 1
        elif residents < 5000:
            k = int(rng.integers(1, 3))
        else:
            k = int(rng.integers(2, 4))
        base = (b + 1) * 100
        suffixes = [0] if k == 1 else list(range(1, k + 1))
        codes += [f"{TRACT_PREFIX}{base + s:06d}" for s in suffixes]
        beat_of += [b] * k
        shares += list(rng.dirichlet(np.full(k, 8.0)))
    return tuple(codes), np.array(beat_of), np.array(shares)


@cache
def build_city() -> City:
    """Riverton as a pure function of the fixed city seed (cached: it never changes)."""
    rng = np.random.default_rng(CITY_SEED)
    per_district = rng.integers(6, 11, len(DISTRICTS))
    stems = rng.permutation(len(_NAME_STEMS) * len(_NAME_SUFFIXES))[: per_district.sum()]
    beat, beat_name, district, district_name, xy = [], [], [], [], []
    for d, ((code, name, (x, y)), count) in enumerate(zip(DISTRICTS, per_district, strict=True)):
        for j in range(count):
            beat.append(f"{d + 1:02d}{j + 1:02d}")
            stem = stems[len(beat_name)]
            suffix = _NAME_SUFFIXES[stem % len(_NAME_SUFFIXES)]
            beat_name.append(f"{_NAME_STEMS[stem // len(_NAME_SUFFIXES)]} {suffix}")
            district.append(code)
            district_name.append(name)
            xy.append((x + rng.normal(0, 0.35), y + rng.normal(0, 0.35)))
    hot = np.isin(beat, HOT_SPOT_BEATS)
    small = np.isin(beat, SMALL_BEATS)
    pop = _beat_populations(rng, small)
    pop[hot] = np.maximum(pop[hot], 4000)  # hot spots are dense neighbourhoods
    age_sex = _age_sex_shares(rng, hot)
    growth = rng.normal(0.007, 0.006, len(beat))
    streets = np.stack([rng.choice(len(STREETS), STREETS_PER_BEAT, replace=False) for _ in beat])
    block_base = 100 * rng.integers(1, 60, len(beat))
    tract, tract_beat, tract_share = _tracts(rng, pop, small)
    return City(
        beat=tuple(beat),
        beat_name=tuple(beat_name),
        district=tuple(district),
        district_name=tuple(district_name),
        population=pop,
        growth=growth,
        age_sex=age_sex,
        hot=hot,
        xy=np.array(xy),
        streets=streets,
        block_base=block_base,
        tract=tract,
        tract_beat=tract_beat,
        tract_share=tract_share,
    )


def reference_files(city: City, years: list[int]) -> dict[str, pa.Table]:
    """The three city reference extracts, keyed by file name."""
    return {
        "beats.csv": city.beats_table(),
        "tracts.csv": city.tracts_table(),
        "population.csv": city.population_table(years),
    }


# The map: district areas around the district centres, cut into beats around the beats' map
# positions (Voronoi cells), placed on a fictional spot of the globe.
MAP_ORIGIN = (-90.32, 38.52)  # longitude, latitude of map position (0, 0)
MAP_SCALE = (0.024, 0.018)  # degrees per map unit: a city some 12 km across
MAP_OUTLINE = (-0.9, -0.9, 5.4, 5.4)


def beat_map(city: City) -> dict[str, object]:
    """The beat boundaries as a GeoJSON FeatureCollection (what a city's GIS office exports):
    one Polygon per beat with its codes and names, beats tiling their district, districts
    tiling the city. A pure function of the city, so the same bytes every time."""
    import shapely

    outline = shapely.box(*MAP_OUTLINE)
    centres = shapely.points([xy for _, _, xy in DISTRICTS])
    areas = _cells(centres, outline)
    features = []
    for d, (code, _, _) in enumerate(DISTRICTS):
        members = [b for b in range(city.n_beats) if city.district[b] == code]
        inside = [_pulled_inside(city.xy[b], DISTRICTS[d][2], areas[d]) for b in members]
        for b, cell in zip(members, _cells(shapely.points(inside), areas[d]), strict=True):
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "beat": city.beat[b],
                        "beat_name": city.beat_name[b],
                        "district": code,
                        "district_name": city.district_name[b],
                    },
                    "geometry": _lonlat(cell),
                }
            )
    return {"type": "FeatureCollection", "features": features}


def _cells(points: object, area: object) -> list:
    """The Voronoi cells of ``points`` inside ``area``, in the points' order."""
    import shapely

    if len(points) == 1:  # type: ignore[arg-type]
        return [area]
    cells = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=area, ordered=True)
    return [shapely.intersection(cell, area) for cell in shapely.get_parts(cells)]


def _pulled_inside(xy: np.ndarray, centre: tuple[float, float], area: object) -> tuple:
    """A beat's position, moved towards its district's centre until it lies in the district."""
    import shapely

    x, y = float(xy[0]), float(xy[1])
    while not shapely.contains_xy(area, x, y):
        x, y = (x + centre[0]) / 2, (y + centre[1]) / 2
    return x, y


def _lonlat(polygon: object) -> dict[str, object]:
    """A map polygon as a GeoJSON geometry in longitude and latitude (6 decimals)."""
    import shapely

    def ring(coords: np.ndarray) -> list[list[float]]:
        lon = MAP_ORIGIN[0] + coords[:, 0] * MAP_SCALE[0]
        lat = MAP_ORIGIN[1] + coords[:, 1] * MAP_SCALE[1]
        return [[round(float(a), 6), round(float(b), 6)] for a, b in zip(lon, lat, strict=True)]

    polygon = shapely.normalize(polygon)
    rings = [ring(np.asarray(polygon.exterior.coords))]
    rings += [ring(np.asarray(hole.coords)) for hole in polygon.interiors]
    return {"type": "Polygon", "coordinates": rings}
