"""Riverton Unified School District extracts: the school list and monthly attendance.

Students are simulated as cohorts (the school year each one was in kindergarten), so grades
advance every August, seniors graduate and new kindergartners arrive. Per-student traits
(home, schools, absence propensity, behaviour) are drawn once and reused every month, which
keeps chronic absence persistent and the monthly loop fully vectorised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cs360_pipeline.demo.city import BASE_YEAR, City
from cs360_pipeline.demo.common import Window, birth_days, dates, digits, join, labels
from cs360_pipeline.demo.names import SEX_CODES, house_addresses, person_names, sample_sex

STUDENTS_PER_GRADE = 2_580
GRADES = ("K", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")
LEVELS = ("elementary", "middle", "high")
LEVEL_OF_GRADE = np.array([0] * 6 + [1] * 3 + [2] * 4)
# Instructional days in a full month; July has none (no file).
SCHOOL_DAYS = {8: 15, 9: 20, 10: 22, 11: 18, 12: 15, 1: 19, 2: 19, 3: 17, 4: 21, 5: 21, 6: 15}

# (school name, level index, beat). Several sit in hot-spot beats (0203, 0401, 0404, 0902).
SCHOOLS = (
    ("Adams Elementary School", 0, "0102"),
    ("Banneker Elementary School", 0, "0105"),
    ("Carver Elementary School", 0, "0201"),
    ("Douglass Elementary School", 0, "0204"),
    ("Earhart Elementary School", 0, "0302"),
    ("Franklin Elementary School", 0, "0305"),
    ("Garfield Elementary School", 0, "0402"),
    ("Hamilton Elementary School", 0, "0404"),
    ("Irving Elementary School", 0, "0503"),
    ("Jefferson Elementary School", 0, "0601"),
    ("Keller Elementary School", 0, "0604"),
    ("Lincoln Elementary School", 0, "0702"),
    ("Madison Elementary School", 0, "0705"),
    ("Nightingale Elementary School", 0, "0802"),
    ("Parks Elementary School", 0, "0902"),
    ("Tubman Elementary School", 0, "0905"),
    ("Whitman Elementary School", 0, "1003"),
    ("Northside Middle School", 1, "0104"),
    ("Riverfront Middle School", 1, "0203"),
    ("Eastgate Middle School", 1, "0303"),
    ("Southpark Middle School", 1, "0405"),
    ("Westview Middle School", 1, "0502"),
    ("Hillcrest Middle School", 1, "0703"),
    ("Cedar Heights Middle School", 1, "1002"),
    ("Northside High School", 2, "0103"),
    ("Eastgate High School", 2, "0301"),
    ("Southpark High School", 2, "0401"),
    ("Riverton Central High School", 2, "0602"),
    ("Lakeshore High School", 2, "0803"),
    ("Mill District High School", 2, "0904"),
)
SCHOOL_IDS = tuple(f"S{k + 1:03d}" for k in range(len(SCHOOLS)))

# Monthly event rates per student by level (elementary, middle, high), before behaviour.
OSS_RATE = np.array([0.002, 0.025, 0.02])
ISS_RATE = np.array([0.003, 0.035, 0.03])
ARREST_RATE = np.array([0.0, 0.0004, 0.0015])
REFERRAL_RATE = np.array([0.0001, 0.002, 0.004])
ABSENCE_LEVEL = np.array([0.9, 1.05, 1.45])
ABSENCE_MONTH = {8: 0.8, 9: 0.85, 12: 1.15, 1: 1.15, 2: 1.15, 5: 1.15, 6: 1.25}


def schools_table(city: City) -> pa.Table:
    return pa.table(
        {
            "school_id": pa.array(SCHOOL_IDS),
            "school_name": pa.array([s[0] for s in SCHOOLS]),
            "school_level": pa.array([LEVELS[s[1]] for s in SCHOOLS]),
            "beat": pa.array([s[2] for s in SCHOOLS]),
        }
    )


def school_year(year: int, month: int) -> int:
    """School years start in August and are named by their first calendar year."""
    return year if month >= 8 else year - 1


@dataclass(frozen=True)
class Students:
    """Everyone enrolled at some point in the window, one array entry per student."""

    kyear: np.ndarray  # school year the student was (or will be) in kindergarten
    first: np.ndarray  # first enrolled school-month index (inclusive)
    last: np.ndarray  # last enrolled school-month index (inclusive)
    partial_first: np.ndarray  # joined mid-month
    partial_last: np.ndarray  # left mid-month
    school: np.ndarray  # (student, level) school index
    transfer: np.ndarray  # school-month index from which transfer_school applies
    transfer_school: np.ndarray  # (student, level) school after a transfer
    absence: np.ndarray  # baseline share of days missed
    behaviour: np.ndarray  # multiplier on discipline events
    columns: dict[str, pa.Array]  # identifiers repeated on every row


def attendance_zones(city: City, children: np.ndarray) -> np.ndarray:
    """Zoned school of each level for every beat: (beat, level) school index.

    Nearest school with a per-school handicap that is tuned until schools of one level serve
    roughly equal numbers of children, so no school ends up tiny or enormous.
    """
    school_beat = np.array([city.beat_index(s[2]) for s in SCHOOLS])
    level = np.array([s[1] for s in SCHOOLS])
    distance = np.linalg.norm(city.xy[:, None, :] - city.xy[school_beat][None, :, :], axis=2)
    zones = np.empty((city.n_beats, len(LEVELS)), dtype=np.int64)
    for lv in range(len(LEVELS)):
        candidates = np.flatnonzero(level == lv)
        handicap = np.zeros(len(candidates))
        for _ in range(200):
            nearest = np.argmin(distance[:, candidates] + handicap, axis=1)
            load = np.bincount(nearest, weights=children, minlength=len(candidates))
            handicap += 0.02 * (load / load.mean() - 1.0)
        zones[:, lv] = candidates[nearest]
    return zones


def _other_school(rng: np.random.Generator, zoned: np.ndarray) -> np.ndarray:
    """A random school of the same level as each zoned school (choice, transfers)."""
    level = np.array([s[1] for s in SCHOOLS])
    out = np.empty_like(zoned)
    for lv in range(len(LEVELS)):
        candidates = np.flatnonzero(level == lv)
        rows = level[zoned] == lv
        out[rows] = candidates[rng.integers(0, len(candidates), int(rows.sum()))]
    return out


def _students(rng: np.random.Generator, city: City, sm_year: np.ndarray, scale: float) -> Students:
    first_sy, last_sy, n_months = int(sm_year[0]), int(sm_year[-1]), len(sm_year)
    kyears = np.arange(first_sy - 12, last_sy + 1)
    kyear = np.repeat(kyears, rng.poisson(STUDENTS_PER_GRADE * scale, len(kyears)))
    n = len(kyear)

    lo = np.searchsorted(sm_year, np.maximum(kyear, first_sy), side="left")
    hi = np.searchsorted(sm_year, np.minimum(kyear + 12, last_sy), side="right") - 1
    mover_in = rng.random(n) < 0.12
    mover_out = rng.random(n) < 0.12
    first = np.where(mover_in, lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(int), lo)
    last = np.where(mover_out, first + np.floor(rng.random(n) * (hi - first + 1)).astype(int), hi)

    children = city.population_in(BASE_YEAR)[:, :2, :].sum(axis=(1, 2)).astype(float)
    home = rng.choice(city.n_beats, size=n, p=children / children.sum())
    school = attendance_zones(city, children)[home]
    choice = rng.random((n, len(LEVELS))) < 0.08
    school = np.where(choice, _other_school(rng, school), school)
    # A few students change school within a level part-way through the window.
    moved = rng.random(n) < 0.05
    transfer = np.where(moved, first + np.floor(rng.random(n) * (last - first + 1)), n_months)
    transfer_school = _other_school(rng, school)
    hot_home = city.hot[home]
    sex = sample_sex(rng, n, 0.51)
    retained = rng.random(n) < 0.03
    start_of_year = (kyear - 1970).astype("datetime64[Y]").astype("datetime64[M]")
    september_first = (start_of_year + 8).astype("datetime64[D]").astype(np.int64)
    dob = birth_days(september_first, 5.0 + retained + rng.random(n))
    street, block = city.sample_blocks(rng, home)

    chronic = rng.random(n) < np.where(hot_home, 0.24, 0.14)
    absence = np.where(chronic, rng.beta(2.0, 12.0, n), rng.beta(1.2, 80.0, n))
    behaviour = rng.gamma(0.5, 2.0, n) * np.where(chronic, 1.5, 1.0)
    number = (np.arange(n, dtype=np.int64) * 7919 + 104_729) % 10_000_000  # unique, unordered
    columns = {
        "student_id": join("ST", digits(number, 7)),
        "student_name": person_names(rng, sex, upper=False),
        "date_of_birth": dates(dob),
        "sex": labels(SEX_CODES, sex),
        "home_address": house_addresses(rng, street, block, upper=False),
    }
    return Students(
        kyear=kyear,
        first=first,
        last=last,
        partial_first=mover_in,
        partial_last=mover_out,
        school=school,
        transfer=transfer.astype(np.int64),
        transfer_school=transfer_school,
        absence=absence,
        behaviour=behaviour,
        columns=columns,
    )


def _events(rng: np.random.Generator, expected: np.ndarray) -> pa.Array:
    """Rare discipline counts for one month."""
    return pa.array(rng.poisson(expected).astype(np.int16))


def attendance(
    city: City, window: Window, rng: np.random.Generator, scale: float
) -> Iterator[tuple[str, pa.Table]]:
    """One ``attendance_YYYY-MM.csv`` per school month (none for July)."""
    months = [i for i in range(len(window)) if window.month_of_year(i) != 7]
    sm_year = np.array([school_year(window.year(i), window.month_of_year(i)) for i in months])
    if not months:
        return
    students = _students(rng, city, sm_year, scale)
    school_hot = city.hot[[city.beat_index(s[2]) for s in SCHOOLS]]
    for t, i in enumerate(months):
        moy = window.month_of_year(i)
        idx = np.flatnonzero((students.first <= t) & (students.last >= t))
        n = len(idx)
        grade = np.clip(sm_year[t] - students.kyear[idx], 0, 12)
        level = LEVEL_OF_GRADE[grade]
        transferred = students.transfer[idx] <= t
        school = np.where(
            transferred, students.transfer_school[idx, level], students.school[idx, level]
        )

        full = SCHOOL_DAYS[moy]
        days = np.full(n, full)
        partial = (students.partial_first[idx] & (students.first[idx] == t)) | (
            students.partial_last[idx] & (students.last[idx] == t)
        )
        days[partial] = rng.integers(1, full, int(partial.sum())) if full > 1 else 1
        p_absent = (
            students.absence[idx]
            * ABSENCE_LEVEL[level]
            * np.where(school_hot[school], 1.35, 1.0)
            * ABSENCE_MONTH.get(moy, 1.0)
        )
        absent = rng.binomial(days, np.minimum(p_absent, 0.95))
        exposure = students.behaviour[idx] * days / full
        table = pa.table(
            {
                "student_id": students.columns["student_id"].take(idx),
                "student_name": students.columns["student_name"].take(idx),
                "date_of_birth": students.columns["date_of_birth"].take(idx),
                "sex": students.columns["sex"].take(idx),
                "grade": labels(GRADES, grade),
                "school_id": labels(SCHOOL_IDS, school),
                "month": pa.array([window.label(i)] * n, pa.string()),
                "days_enrolled": pa.array(days.astype(np.int16)),
                "days_absent": pa.array(absent.astype(np.int16)),
                "oss_suspensions": _events(rng, OSS_RATE[level] * exposure),
                "iss_suspensions": _events(rng, ISS_RATE[level] * exposure),
                "school_arrests": _events(rng, ARREST_RATE[level] * exposure),
                "law_enforcement_referrals": _events(rng, REFERRAL_RATE[level] * exposure),
                "home_address": students.columns["home_address"].take(idx),
            }
        )
        yield f"attendance_{window.label(i)}.csv", table
