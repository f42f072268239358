"""Riverton probation department: event extract from the case-management system.

Cases are simulated whole (start, violations, new charges, revocation or discharge) and then
cut to the window, as a monthly extract of event rows would be. Cases that began up to a year
before the window are simulated too, so early months already carry an active caseload.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Cases:
    """One entry per supervision case, including cases that began before the window."""

    start: np.ndarray  # supervision start (days since epoch)
    length: np.ndarray  # planned length in days
    population: np.ndarray  # ADULT / JUV
    age: np.ndarray  # fractional age at start
    sex: np.ndarray
    tract: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class Timeline:
    """Every event of every case (before cutting to the window)."""

    case: np.ndarray
    day: np.ndarray
    kind: np.ndarray  # index into EVENT_TYPES
    offense: np.ndarray  # index into OFFENSE_CODES, -1 unless NEW_CHARGE
    gun: np.ndarray  # 1 = Y, 0 = N, -1 unless NEW_CHARGE


def _cases(rng: np.random.Generator, city: City, window: Window, scale: float) -> Cases:
    """Cases starting each month from a year before the window to its end."""
    first_month = window.months[0] - LOOKBACK_MONTHS
    start_months = first_month + np.arange(len(window) + LOOKBACK_MONTHS)
    month = np.repeat(start_months, rng.poisson(CASES_PER_MONTH * scale, len(start_months)))
    n = len(month)
    month_start = month.astype("datetime64[D]").astype(np.int64)
    month_days = (month + 1).astype("datetime64[D]").astype(np.int64) - month_start
    population = (rng.random(n) < JUVENILE_SHARE).astype(np.int64)
    juvenile = population == JUV
    return Cases(
        start=month_start + np.floor(rng.random(n) * month_days).astype(np.int64),
        length=np.round(rng.uniform(6, 24, n) * DAYS_PER_MONTH).astype(np.int64),
        population=population,
        age=np.where(juvenile, sample_ages(rng, n, AGES[JUV]), sample_ages(rng, n, AGES[ADULT])),
        sex=sample_sex(rng, n, np.where(juvenile, 0.76, 0.8)),
        tract=city.sample_tracts(rng, n, 4.0),
    )


def _timeline(rng: np.random.Generator, city: City, cases: Cases) -> Timeline:
    """Violations and new charges during supervision, then revocation or discharge."""
    n = len(cases)
    start, length, population = cases.start, cases.length, cases.population
    months_on = length / DAYS_PER_MONTH
    charge_factor = np.where(city.hot[city.tract_beat[cases.tract]], HOT_SPOT_CHARGE_FACTOR, 1.0)

    def scatter(rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poisson(rate x months) event days strictly inside each planned supervision."""
        case = np.repeat(np.arange(n), rng.poisson(rate * months_on))
        offset = np.floor(rng.random(len(case)) * (length[case] - 1)).astype(np.int64)
        return case, start[case] + 1 + offset

    tv_case, tv_day = scatter(TECHNICAL_RATE[population])
    nc_case, nc_day = scatter(CHARGE_RATE[population] * charge_factor)
    gun_case, gun_day = scatter(GUN_CHARGE_RATE[population] * charge_factor)
    charge_case = np.concatenate([nc_case, gun_case])
    charge_day = np.concatenate([nc_day, gun_day])
    gun = np.repeat([0, 1], [len(nc_case), len(gun_case)])
    offense = np.where(
        gun == 1,
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

    # The more violations, the likelier a revocation, weeks after the last one.
    viol_case = np.concatenate([tv_case, nov_case])
    viol_day = np.concatenate([tv_day, nov_day])
    n_viol = np.bincount(viol_case, minlength=n)
    last_viol = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_viol, viol_case, viol_day)
    revoked = (n_viol > 0) & (rng.random(n) < np.minimum(0.6, 0.05 + 0.12 * n_viol))
    planned_end = start + length
    end = np.where(
        revoked, np.minimum(last_viol + rng.integers(7, 61, n), planned_end), planned_end
    )

    none = np.full(n + len(tv_case), -1)
    after = np.full(len(nov_case) + n, -1)
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
    keep = day <= end[case]  # nothing happens on supervision after a revocation
    return Timeline(
        case=case[keep],
        day=day[keep],
        kind=kind[keep],
        offense=np.concatenate([none, offense, after])[keep],
        gun=np.concatenate([none, gun, after])[keep],
    )


RISK_LEVELS = ("LOW", "MODERATE", "HIGH")
RISK_SHARES = {ADULT: (0.45, 0.38, 0.17), JUV: (0.35, 0.43, 0.22)}


@dataclass(frozen=True)
class Simulation:
    """The cases, their events and the identifiers every extract of them repeats."""

    cases: Cases
    timeline: Timeline
    start_year: np.ndarray
    seq: np.ndarray
    case_number: pa.Array
    name: pa.Array
    dob: np.ndarray

    def end_day(self) -> np.ndarray:
        """The day each case ended (revocation or discharge)."""
        t = self.timeline
        last = np.isin(t.kind, (REVOCATION, DISCHARGE))
        end = np.full(len(self.cases), np.iinfo(np.int64).max)
        end[t.case[last]] = t.day[last]
        return end


def simulate(city: City, window: Window, rng: np.random.Generator, scale: float) -> Simulation:
    """Every case of the window, drawn from the events extract's random stream."""
    cases = _cases(rng, city, window, scale)
    timeline = _timeline(rng, city, cases)
    n = len(cases)

    # Case numbers run per start year in order of start date.
    start_year = cases.start.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)
    start_year += 1970
    order = np.lexsort((np.arange(n), cases.start))
    seq = np.empty(n, dtype=np.int64)
    seq[order] = sequence_numbers(start_year[order], {})
    case_number = join("PB-", digits(start_year % 100, 2), "-", digits(seq, 5))
    name = person_names(rng, cases.sex, upper=False)
    dob = birth_days(cases.start, cases.age)
    return Simulation(cases, timeline, start_year, seq, case_number, name, dob)


def events(
    city: City, window: Window, rng: np.random.Generator, scale: float
) -> Iterator[tuple[str, pa.Table]]:
    """One ``events_YYYY-MM.csv`` per month of probation case events."""
    sim = simulate(city, window, rng, scale)
    cases, timeline, case_number, name, dob = (
        sim.cases, sim.timeline, sim.case_number, sim.name, sim.dob
    )  # fmt: skip

    # Rows in the order an extract would list them: by day, case, then event order.
    c, d, k = timeline.case, timeline.day, timeline.kind
    rows = np.lexsort((k, sim.seq[c], sim.start_year[c], d))
    for i in range(len(window)):
        first, after = window.start_day(i), window.start_day(i) + window.days(i)
        r = rows[(d[rows] >= first) & (d[rows] < after)]
        case = c[r]
        offense, gun = timeline.offense[r], timeline.gun[r]
        table = pa.table(
            {
                "case_number": case_number.take(case),
                "person_name": name.take(case),
                "date_of_birth": dates(dob[case]),
                "sex": labels(SEX_CODES, cases.sex[case]),
                "population": labels(POPULATIONS, cases.population[case]),
                "supervision_start_date": dates(cases.start[case]),
                "residence_tract": labels(city.tract, cases.tract[case]),
                "event_type": labels(EVENT_TYPES, k[r]),
                "event_date": dates(d[r]),
                "offense_code": labels(OFFENSE_CODES, np.maximum(offense, 0), null=offense < 0),
                "gun_involved": labels(("N", "Y"), np.maximum(gun, 0), null=gun < 0),
            }
        )
        yield f"events_{window.label(i)}.csv", table


def caseload(
    city: City,
    window: Window,
    rng: np.random.Generator,
    scale: float,
    *,
    cases_rng: np.random.Generator,
) -> Iterator[tuple[str, pa.Table]]:
    """One ``caseload_YYYY-MM.csv`` per month: every case under supervision on its last day.

    ``cases_rng`` must be the events extract's stream, so the roster lists the same cases
    (numbers, names, dates) as the events; ``rng`` only draws the risk levels.
    """
    sim = simulate(city, window, cases_rng, scale)
    cases = sim.cases
    end = sim.end_day()
    risk = np.empty(len(cases), dtype=np.int64)
    for population, shares in RISK_SHARES.items():
        rows = np.flatnonzero(cases.population == population)
        risk[rows] = pick(rng, shares, len(rows))
    order = np.lexsort((sim.seq, sim.start_year))
    for i in range(len(window)):
        last_day = window.start_day(i) + window.days(i) - 1
        case = order[(cases.start[order] <= last_day) & (end[order] > last_day)]
        table = pa.table(
            {
                "case_number": sim.case_number.take(case),
                "person_name": sim.name.take(case),
                "date_of_birth": dates(sim.dob[case]),
                "sex": labels(SEX_CODES, cases.sex[case]),
                "population": labels(POPULATIONS, cases.population[case]),
                "supervision_start_date": dates(cases.start[case]),
                "risk_level": labels(RISK_LEVELS, risk[case]),
                "residence_tract": labels(city.tract, cases.tract[case]),
                "roster_date": dates(np.full(len(case), last_day)),
            }
        )
        yield f"caseload_{window.label(i)}.csv", table
