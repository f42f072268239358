"""Riverton probation department: event extract from the case-management system.

Cases are simulated whole (start, violations, new charges, revocation or discharge) and then
cut to the window, as a monthly extract of event rows would be. Cases that began up to a year
before the window are simulated too, so early months already carry an active caseload.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from cs360_pipeline.demo.city import City
from cs360_pipeline.demo.common import (
    DAYS_PER_YEAR,
    Window,
    birth_days,
    dates,
    digits,
    join,
    labels,
    pick,
    sample_ages,
    sequence_numbers,
)
from cs360_pipeline.demo.names import SEX_CODES, person_names, sample_sex

CASES_PER_MONTH = 120
LOOKBACK_MONTHS = 12
JUVENILE_SHARE = 0.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12

POPULATIONS = ("ADULT", "JUV")
ADULT, JUV = 0, 1
# In the order rows of one case on one day are listed.
EVENT_TYPES = (
    "START",
    "TECHNICAL_VIOLATION",
    "NEW_CHARGE",
    "NEW_OFFENSE_VIOLATION",
    "REVOCATION",
    "DISCHARGE",
)
START, TECHNICAL, CHARGE, NEW_OFFENSE, REVOCATION, DISCHARGE = range(len(EVENT_TYPES))

AGES = {
    JUV: ((12, 13, 0.15), (14, 15, 0.35), (16, 17, 0.5)),
    ADULT: ((18, 24, 0.35), (25, 34, 0.33), (35, 44, 0.18), (45, 60, 0.14)),
}
# Monthly rates per case by population (adult, juvenile).
TECHNICAL_RATE = np.array([0.06, 0.08])
CHARGE_RATE = np.array([0.025, 0.035])
GUN_CHARGE_RATE = np.array([0.0025, 0.0037])
HOT_SPOT_CHARGE_FACTOR = 2.0

# NIBRS offense of a new charge: gun charges (gun_involved = Y) and the rest (N).
GUN_OFFENSES = (("520", 0.60), ("13A", 0.30), ("120", 0.08), ("09A", 0.02))
OTHER_OFFENSES = (("13B", 22), ("35A", 20), ("23H", 15), ("13A", 12), ("290", 9), ("220", 7),
                  ("240", 6), ("120", 5), ("13C", 4))  # fmt: skip
OFFENSE_CODES = tuple(dict.fromkeys(c for c, _ in GUN_OFFENSES + OTHER_OFFENSES))


def _offense_index(group: tuple[tuple[str, float], ...]) -> np.ndarray:
    return np.array([OFFENSE_CODES.index(c) for c, _ in group])


def _scatter(
    rng: np.random.Generator, counts: np.ndarray, start: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``counts[c]`` event days strictly inside case ``c``'s planned supervision."""
    case = np.repeat(np.arange(len(counts)), counts)
    day = start[case] + 1 + np.floor(rng.random(len(case)) * (length[case] - 1)).astype(np.int64)
    return case, day


def events(
    city: City, window: Window, rng: np.random.Generator, scale: float
) -> Iterator[tuple[str, pa.Table]]:
    """One ``events_YYYY-MM.csv`` per month of probation case events."""
    first_month = window.months[0] - LOOKBACK_MONTHS
    start_months = first_month + np.arange(len(window) + LOOKBACK_MONTHS)
    per_month = rng.poisson(CASES_PER_MONTH * scale, len(start_months))
    month = np.repeat(start_months, per_month)
    n = len(month)
    month_start = month.astype("datetime64[D]").astype(np.int64)
    month_days = ((month + 1).astype("datetime64[D]").astype(np.int64)) - month_start
    start = month_start + np.floor(rng.random(n) * month_days).astype(np.int64)

    population = (rng.random(n) < JUVENILE_SHARE).astype(np.int64)
    ages = np.where(
        population == JUV, sample_ages(rng, n, AGES[JUV]), sample_ages(rng, n, AGES[ADULT])
    )
    sex = sample_sex(rng, n, np.where(population == JUV, 0.76, 0.8))
    tract = city.sample_tracts(rng, n, 4.0)
    hot = city.hot[city.tract_beat[tract]]
    length = np.round(rng.uniform(6, 24, n) * DAYS_PER_MONTH).astype(np.int64)
    months_on = length / DAYS_PER_MONTH
    charge_factor = np.where(hot, HOT_SPOT_CHARGE_FACTOR, 1.0)

    tv_case, tv_day = _scatter(
        rng, rng.poisson(TECHNICAL_RATE[population] * months_on), start, length
    )
    nc_case, nc_day = _scatter(
        rng, rng.poisson(CHARGE_RATE[population] * months_on * charge_factor), start, length
    )
    gun_case, gun_day = _scatter(
        rng, rng.poisson(GUN_CHARGE_RATE[population] * months_on * charge_factor), start, length
    )
    charge_case = np.concatenate([nc_case, gun_case])
    charge_day = np.concatenate([nc_day, gun_day])
    gun = np.concatenate([np.zeros(len(nc_case), bool), np.ones(len(gun_case), bool)])
    offense = np.where(
        gun,
        _offense_index(GUN_OFFENSES)[pick(rng, [w for _, w in GUN_OFFENSES], len(gun))],
        _offense_index(OTHER_OFFENSES)[pick(rng, [w for _, w in OTHER_OFFENSES], len(gun))],
    )
    # Most new charges are followed by a violation filed against the supervision.
    filed = rng.random(len(charge_case)) < 0.6
    nov_case = charge_case[filed]
    nov_day = np.minimum(
        charge_day[filed] + rng.integers(1, 31, int(filed.sum())),
        start[nov_case] + length[nov_case] - 1,
    )

    # Revocation ends some cases after their last violation; the rest are discharged.
    viol_case = np.concatenate([tv_case, nov_case])
    viol_day = np.concatenate([tv_day, nov_day])
    n_viol = np.bincount(viol_case, minlength=n)
    last_viol = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_viol, viol_case, viol_day)
    revoked = (n_viol > 0) & (rng.random(n) < np.minimum(0.6, 0.05 + 0.12 * n_viol))
    end = np.where(
        revoked,
        np.minimum(np.where(revoked, last_viol, 0) + rng.integers(7, 61, n), start + length),
        start + length,
    )

    case = np.concatenate([np.arange(n), tv_case, charge_case, nov_case, np.arange(n)])
    day = np.concatenate([start, tv_day, charge_day, nov_day, end])
    kind = np.concatenate(
        [
            np.full(n, START),
            np.full(len(tv_case), TECHNICAL),
            np.full(len(charge_case), CHARGE),
            np.full(len(nov_case), NEW_OFFENSE),
            np.where(revoked, REVOCATION, DISCHARGE),
        ]
    )
    charge_offense = np.concatenate(
        [np.full(n + len(tv_case), -1), offense, np.full(len(nov_case) + n, -1)]
    )
    charge_gun = np.concatenate(
        [np.full(n + len(tv_case), -1), gun.astype(np.int64), np.full(len(nov_case) + n, -1)]
    )
    keep = day <= end[case]
    window_start = window.start_day(0)
    window_end = window.start_day(len(window) - 1) + window.days(len(window) - 1)
    keep &= (day >= window_start) & (day < window_end)

    # Case numbers run per start year in order of start date.
    case_order = np.lexsort((np.arange(n), start))
    start_year = start.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    case_seq = np.empty(n, dtype=np.int64)
    case_seq[case_order] = sequence_numbers(start_year[case_order], {})
    case_number = join("PB-", digits(start_year % 100, 2), "-", digits(case_seq, 5))
    name = person_names(rng, sex, upper=False)
    dob = birth_days(start, ages)

    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((kind[rows], case_seq[case[rows]], start_year[case[rows]], day[rows]))]
    row_day = day[rows]
    for i in range(len(window)):
        lo = np.searchsorted(row_day, window.start_day(i), side="left")
        hi = np.searchsorted(row_day, window.start_day(i) + window.days(i), side="left")
        r = rows[lo:hi]
        c = case[r]
        off = charge_offense[r]
        table = pa.table(
            {
                "case_number": case_number.take(c),
                "person_name": name.take(c),
                "date_of_birth": dates(dob[c]),
                "sex": labels(SEX_CODES, sex[c]),
                "population": labels(POPULATIONS, population[c]),
                "supervision_start_date": dates(start[c]),
                "residence_tract": labels(city.tract, tract[c]),
                "event_type": labels(EVENT_TYPES, kind[r]),
                "event_date": dates(day[r]),
                "offense_code": labels(OFFENSE_CODES, np.maximum(off, 0), null=off < 0),
                "gun_involved": labels(("N", "Y"), np.maximum(charge_gun[r], 0), null=off < 0),
            }
        )
        yield f"events_{window.label(i)}.csv", table
