"""Shared building blocks: seeds, the month window, vectorised sampling and Arrow columns.

Every dataset module draws from these helpers so that all of them agree on what a month is,
how a timestamp is encoded and how a random stream is derived from the user's seed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365.2425

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")

# Relative frequency of events by hour of day (index = hour). Three profiles are enough to give
# calls and incidents a believable daily rhythm: business-hours reports, evening disturbances
# and the late-night peak of gunfire.
DAY_HOURS = np.array(
    [2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8, 7, 7, 6, 5, 4, 3, 2], dtype=float
)
EVENING_HOURS = np.array(
    [5, 4, 3, 2, 2, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 7, 7, 8, 9, 9, 9, 8, 7, 6], dtype=float
)
NIGHT_HOURS = np.array(
    [10, 9, 8, 6, 4, 2, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5, 6, 8, 9, 10, 10], dtype=float
)

AgeBins = Sequence[tuple[int, int, float]]


def dataset_rng(seed: int, name: str) -> np.random.Generator:
    """An independent stream per dataset, keyed by its name rather than its position.

    Keying by name means adding, removing or reordering datasets never changes the numbers any
    other dataset draws, so published demo files stay stable as the generator grows.
    """
    key = zlib.crc32(name.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))


def parse_month(text: str) -> np.datetime64:
    """Validate a ``YYYY-MM`` string so a typo fails loudly instead of shifting the window."""
    match = _MONTH_RE.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
    return np.datetime64(text, "M")


def last_complete_month(today: date) -> str:
    """The calendar month before ``today``'s: the newest month a partner could have closed."""
    previous = today.replace(day=1) - timedelta(days=1)
    return f"{previous.year:04d}-{previous.month:02d}"


def seasonal(month_of_year: int, amplitude: float) -> float:
    """Multiplier peaking in July and bottoming in January (amplitude 0.11 ≈ +25% summer)."""
    return 1.0 + amplitude * float(np.cos(2 * np.pi * (month_of_year - 7) / 12))


@dataclass(frozen=True, eq=False)
class Window:
    """The consecutive calendar months a run covers, oldest first."""

    months: np.ndarray  # datetime64[M]

    @classmethod
    def ending(cls, end_month: str, count: int) -> Window:
        if count < 1:
            raise ValueError("months must be at least 1")
        end = parse_month(end_month)
        return cls(end - np.arange(count - 1, -1, -1))

    def __len__(self) -> int:
        return len(self.months)

    def label(self, i: int) -> str:
        return str(self.months[i])

    def year(self, i: int) -> int:
        return int(self.months[i].astype(np.int64) // 12 + 1970)

    def month_of_year(self, i: int) -> int:
        return int(self.months[i].astype(np.int64) % 12 + 1)

    def start_day(self, i: int) -> int:
        """First day of month ``i`` as days since 1970-01-01."""
        return int(self.months[i].astype("datetime64[D]").astype(np.int64))

    def days(self, i: int) -> int:
        return int(((self.months[i] + 1).astype("datetime64[D]") - self.months[i]).astype(int))

    def years_elapsed(self, i: int) -> float:
        """Years since the window opened; drives gentle trends that do not depend on the date."""
        return i / 12.0

    @property
    def years(self) -> list[int]:
        return sorted({self.year(i) for i in range(len(self))})


def pick(rng: np.random.Generator, probs: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """Indices drawn with the given (unnormalised) weights."""
    p = np.asarray(probs, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def random_seconds(
    rng: np.random.Generator, window: Window, i: int, n: int, hours: np.ndarray
) -> np.ndarray:
    """Epoch seconds inside month ``i``: uniform day, hour from a daily profile, uniform second."""
    day = rng.integers(0, window.days(i), n)
    hour = pick(rng, hours, n)
    second = rng.integers(0, 3600, n)
    return (window.start_day(i) + day) * SECONDS_PER_DAY + hour * 3600 + second


def sample_ages(rng: np.random.Generator, n: int, bins: AgeBins) -> np.ndarray:
    """Fractional ages from a mixture of uniform age bands ``(first_age, last_age, weight)``."""
    lo = np.array([b[0] for b in bins], dtype=float)
    hi = np.array([b[1] for b in bins], dtype=float) + 1.0
    k = pick(rng, [b[2] for b in bins], n)
    return lo[k] + rng.random(n) * (hi[k] - lo[k])


def birth_days(reference_days: np.ndarray | int, ages: np.ndarray) -> np.ndarray:
    """Date of birth (days since epoch) for someone ``ages`` years old on ``reference_days``."""
    return np.asarray(reference_days) - np.floor(ages * DAYS_PER_YEAR).astype(np.int64)


def timestamps(seconds: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Second-resolution timestamps; DuckDB writes them as ``YYYY-MM-DD HH:MM:SS``."""
    return pa.array(np.asarray(seconds, dtype=np.int64).astype("datetime64[s]"), mask=null)


def dates(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Calendar dates (date32); written as ``YYYY-MM-DD``."""
    return pa.array(np.asarray(days, dtype=np.int64).astype("datetime64[D]"), mask=null)


def labels(values: Sequence[str], idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A string column built by indexing a small vocabulary; masked rows become NULL."""
    return pa.array(list(values), pa.string()).take(pa.array(idx, mask=null))


def digits(numbers: np.ndarray, width: int) -> pa.Array:
    """Zero-padded decimal strings, the usual shape of record numbers."""
    text = pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string())
    return pc.utf8_lpad(text, width=width, padding="0")


def join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    """Element-wise string concatenation (plain strings broadcast)."""
    return pc.binary_join_element_wise(*parts, sep)


def null_out(column: pa.Array, null: np.ndarray) -> pa.Array:
    """Blank out the rows where ``null`` is true."""
    return pc.if_else(pa.array(null), pa.scalar(None, column.type), column)


def sequence_numbers(years: np.ndarray, counters: dict[int, int]) -> np.ndarray:
    """Running per-year record numbers that continue across monthly calls (rows in order)."""
    out = np.empty(len(years), dtype=np.int64)
    for year in np.unique(years):
        rows = np.flatnonzero(years == year)
        start = counters.get(int(year), 0)
        out[rows] = start + 1 + np.arange(len(rows))
        counters[int(year)] = start + len(rows)
    return out
