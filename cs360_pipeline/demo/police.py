"""Riverton Police Department extracts: NIBRS incidents and CAD calls for service.

Both are generated a month at a time with vectorised draws. Gun violence (firearm incidents,
shots-fired calls) is concentrated in the hot-spot beats, at night and in summer, which is the
pattern the pipeline's metrics are meant to surface.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from cs360_pipeline.demo.city import City
from cs360_pipeline.demo.common import (
    DAY_HOURS,
    EVENING_HOURS,
    NIGHT_HOURS,
    SECONDS_PER_DAY,
    Window,
    birth_days,
    dates,
    digits,
    join,
    labels,
    null_out,
    pick,
    random_seconds,
    sample_ages,
    seasonal,
    sequence_numbers,
    timestamps,
)
from cs360_pipeline.demo.names import (
    SEX_CODES,
    block_addresses,
    person_names,
    phone_numbers,
    sample_sex,
)

INCIDENTS_PER_YEAR = 30_000
CALLS_PER_MONTH = 12_000
FIREARM_TREND = -0.05  # gun violence eases ~5% a year across the window

# code, NIBRS offense name, share (%) of incidents
OFFENSES = (
    ("23H", "All Other Larceny", 25.0),
    ("13B", "Simple Assault", 20.0),
    ("290", "Destruction/Damage/Vandalism of Property", 12.0),
    ("220", "Burglary/Breaking & Entering", 8.0),
    ("35A", "Drug/Narcotic Violations", 8.0),
    ("13A", "Aggravated Assault", 7.0),
    ("240", "Motor Vehicle Theft", 6.0),
    ("13C", "Intimidation", 5.0),
    ("120", "Robbery", 3.0),
    ("520", "Weapon Law Violations", 3.0),
    ("11A", "Rape", 0.7),
    ("09A", "Murder and Nonnegligent Manslaughter", 0.1),
)
OFFENSE_CODES = tuple(o[0] for o in OFFENSES)
VIOLENT = ("09A", "13A", "120", "520")  # grow more than the rest in summer
PERSON = ("09A", "11A", "120", "13A", "13B", "13C")  # carry a victim
DOMESTIC = ("13A", "13B", "13C")

# NIBRS data element 13. 11-15 are firearms.
FIREARM_WEAPONS = {"11": 0.20, "12": 0.60, "13": 0.06, "14": 0.05, "15": 0.09}
# offense -> (firearm share, other weapon/force codes and their weights)
WEAPONS: dict[str, tuple[float, dict[str, float]]] = {
    "09A": (0.70, {"20": 0.5, "30": 0.2, "40": 0.2, "90": 0.05, "95": 0.05}),
    "11A": (0.03, {"40": 0.6, "99": 0.25, "20": 0.08, "95": 0.07}),
    "120": (0.40, {"40": 0.5, "20": 0.2, "99": 0.2, "90": 0.05, "95": 0.05}),
    "13A": (0.35, {"20": 0.35, "30": 0.25, "40": 0.2, "35": 0.05, "90": 0.1, "95": 0.05}),
    "13B": (0.0, {"40": 0.85, "99": 0.15}),
    "13C": (0.05, {"99": 0.7, "40": 0.2, "90": 0.1}),
    "520": (0.85, {"20": 0.6, "90": 0.3, "95": 0.1}),
}
WEAPON_CODES = ("11", "12", "13", "14", "15", "20", "30", "35", "40", "90", "95", "99")

# offense -> (share cleared by arrest, share cleared exceptionally)
CLEARANCE = {
    "09A": (0.55, 0.10), "11A": (0.20, 0.15), "120": (0.25, 0.05), "13A": (0.40, 0.10),
    "13B": (0.45, 0.15), "13C": (0.30, 0.10), "23H": (0.08, 0.03), "220": (0.10, 0.03),
    "240": (0.10, 0.04), "290": (0.08, 0.03), "35A": (0.85, 0.05), "520": (0.75, 0.05),
}  # fmt: skip
CLEARANCE_CODES = ("A", "E", "N")

# victim male share by offense
VICTIM_MALE = {"09A": 0.8, "11A": 0.08, "120": 0.65, "13A": 0.7, "13B": 0.5, "13C": 0.45}
VICTIM_AGES = ((0, 14, 0.06), (15, 24, 0.33), (25, 34, 0.35), (35, 49, 0.15), (50, 64, 0.07),
               (65, 90, 0.04))  # fmt: skip
RAPE_VICTIM_AGES = ((10, 14, 0.15), (15, 24, 0.5), (25, 34, 0.2), (35, 59, 0.15))

# call type code, text, usual priority, share (%), daily profile
CALL_TYPES = (
    ("SHOTS", "Shots fired", 1, 1.5, NIGHT_HOURS),
    ("ASSLT", "Assault in progress", 1, 4.0, EVENING_HOURS),
    ("DV", "Domestic disturbance", 1, 6.0, EVENING_HOURS),
    ("WEAPON", "Person with a weapon", 1, 2.0, EVENING_HOURS),
    ("DISTRB", "Disturbance", 2, 15.0, EVENING_HOURS),
    ("WELFR", "Welfare check", 2, 12.0, DAY_HOURS),
    ("SUSP", "Suspicious person", 3, 14.0, EVENING_HOURS),
    ("THEFT", "Theft report", 3, 12.0, DAY_HOURS),
    ("ALARM", "Alarm", 3, 13.0, DAY_HOURS),
    ("TRAFF", "Traffic complaint", 3, 12.0, DAY_HOURS),
    ("NOISE", "Noise complaint", 4, 8.5, NIGHT_HOURS),
)
CALL_CODES = tuple(c[0] for c in CALL_TYPES)
DISPOSITIONS = ("REPORT TAKEN", "ADVISED", "GONE ON ARRIVAL", "ARREST", "CANCELLED", "UNFOUNDED")
_DISPOSITION_WEIGHTS = {  # for calls an officer reached; CANCELLED is only for no-arrival calls
    "violent": (0.35, 0.15, 0.20, 0.15, 0.0, 0.15),
    "report": (0.60, 0.25, 0.05, 0.03, 0.0, 0.07),
    "other": (0.20, 0.45, 0.15, 0.03, 0.0, 0.17),
}
_CALL_GROUP = {"SHOTS": "violent", "ASSLT": "violent", "DV": "violent", "WEAPON": "violent",
               "THEFT": "report", "ALARM": "report"}  # fmt: skip
QUEUE_MEDIAN_S = np.array([0, 120, 360, 900, 1800])  # by priority 1-4
TRAVEL_MEDIAN_S = np.array([0, 360, 480, 600, 720])


def _in(codes: np.ndarray, wanted: tuple[str, ...]) -> np.ndarray:
    return np.isin(codes, [OFFENSE_CODES.index(c) for c in wanted])


def _weapons(rng: np.random.Generator, offense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weapon/force index per incident (-1 where the offense has none) and a firearm flag."""
    weapon = np.full(len(offense), -1)
    for code, (gun_share, others) in WEAPONS.items():
        rows = np.flatnonzero(offense == OFFENSE_CODES.index(code))
        gun = rng.random(len(rows)) < gun_share
        fire_pick = np.array([WEAPON_CODES.index(c) for c in FIREARM_WEAPONS])
        other_pick = np.array([WEAPON_CODES.index(c) for c in others])
        weapon[rows] = np.where(
            gun,
            fire_pick[pick(rng, list(FIREARM_WEAPONS.values()), len(rows))],
            other_pick[pick(rng, list(others.values()), len(rows))],
        )
    return weapon, (weapon >= 0) & (weapon <= 4)


def _report_lag(rng: np.random.Generator, person: np.ndarray) -> np.ndarray:
    """Seconds between occurrence and report: mostly minutes, some hours, a few days."""
    n = len(person)
    quick, hours = np.where(person, 0.85, 0.55), np.where(person, 0.12, 0.30)
    u = rng.random(n)
    minutes = np.minimum(rng.lognormal(np.log(25 * 60), 0.8, n), 7140)
    return np.where(
        u < quick,
        minutes,
        np.where(u < quick + hours, rng.uniform(2, 24, n) * 3600, rng.uniform(1, 3, n) * 86400),
    ).astype(np.int64)


def _victims(
    rng: np.random.Generator, offense: np.ndarray, occurred: np.ndarray
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Name, date of birth and sex of the first victim of person crimes and robberies."""
    n = len(offense)
    has_victim = _in(offense, PERSON)
    male_share = np.zeros(n)
    for code, share in VICTIM_MALE.items():
        male_share[offense == OFFENSE_CODES.index(code)] = share
    sex = sample_sex(rng, n, male_share, unknown_share=0.02)
    rape = offense == OFFENSE_CODES.index("11A")
    ages = np.where(rape, sample_ages(rng, n, RAPE_VICTIM_AGES), sample_ages(rng, n, VICTIM_AGES))
    dob = birth_days(occurred // SECONDS_PER_DAY, ages)
    no_dob = ~has_victim | (rng.random(n) < 0.02)
    name = null_out(person_names(rng, sex, upper=True), ~has_victim)
    return name, dates(dob, null=no_dob), labels(SEX_CODES, sex, null=~has_victim)


# Offenders: the share of incidents with a known first offender, and how often a domestic
# incident's offender is someone already known for domestic violence.
KNOWN_OFFENDER = {"person": 0.75, "other": 0.25, "domestic": 0.97}
DV_REPEAT_SHARE = 0.3
DV_POOL_MONTHS = 18  # a domestic offender can re-offend for this long after their last incident


class Offenders:
    """Pseudonymous RMS person numbers of first offenders, kept across months.

    Drawn from their own random stream, so adding them left every other column unchanged.
    Domestic-violence offenders stay in a pool and a share of later domestic incidents is
    theirs again, which is what the repeat-offending measure looks for.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.next_number = 0
        self.dv_pool = np.empty(0, dtype=np.int64)
        self.dv_last_month = np.empty(0, dtype=np.int64)

    def _new(self, n: int) -> np.ndarray:
        numbers = self.next_number + np.arange(n, dtype=np.int64)
        self.next_number += n
        return numbers

    def month(self, i: int, person: np.ndarray, domestic: np.ndarray) -> pa.Array:
        n = len(person)
        rng = self.rng
        usual = np.where(person, KNOWN_OFFENDER["person"], KNOWN_OFFENDER["other"])
        share = np.where(domestic, KNOWN_OFFENDER["domestic"], usual)
        known = rng.random(n) < share
        number = np.full(n, -1, dtype=np.int64)
        plain = known & ~domestic
        number[plain] = self._new(int(plain.sum()))
        dv = np.flatnonzero(known & domestic)
        active = np.flatnonzero(self.dv_last_month >= i - DV_POOL_MONTHS)
        again = (rng.random(len(dv)) < DV_REPEAT_SHARE) & (len(active) > 0)
        if again.any():
            number[dv[again]] = self.dv_pool[rng.choice(active, int(again.sum()))]
        fresh = self._new(int((~again).sum()))
        number[dv[~again]] = fresh
        self.dv_pool = np.concatenate([self.dv_pool, fresh])
        self.dv_last_month = np.concatenate([self.dv_last_month, np.full(len(fresh), i)])
        seen = np.isin(self.dv_pool, number[dv])
        self.dv_last_month[seen] = i
        scrambled = (number * 7919 + 104_729) % 10_000_000  # unique, unordered
        return null_out(join("MN", digits(scrambled, 7)), number < 0)


def incidents(
    city: City,
    window: Window,
    rng: np.random.Generator,
    scale: float,
    *,
    offenders_rng: np.random.Generator | None = None,
) -> Iterator[tuple[str, pa.Table]]:
    """One ``incidents_YYYY-MM.csv`` per month: one row per incident, first victim only."""
    offenders = Offenders(offenders_rng or np.random.default_rng(0))
    base_share = np.array([o[2] for o in OFFENSES])
    violent = np.isin(OFFENSE_CODES, VIOLENT)
    counters: dict[int, int] = {}
    for i in range(len(window)):
        moy = window.month_of_year(i)
        trend = (1 + FIREARM_TREND) ** window.years_elapsed(i)
        n = rng.poisson(INCIDENTS_PER_YEAR / 12 * scale * seasonal(moy, 0.11))
        share = np.where(violent, base_share * seasonal(moy, 0.12) * trend, base_share)
        offense = pick(rng, share, n)
        weapon, firearm = _weapons(rng, offense)
        person = _in(offense, PERSON)

        beat = np.empty(n, dtype=np.int64)
        classes = (firearm, ~firearm & (person | _in(offense, ("520",))), ~firearm & ~person)
        for rows, boost in zip(classes, (25.0, 4.0, 2.5), strict=True):
            beat[rows] = city.sample_beats(rng, int(rows.sum()), boost)

        occurred = random_seconds(rng, window, i, n, DAY_HOURS)
        occurred[person] = random_seconds(rng, window, i, int(person.sum()), EVENING_HOURS)
        occurred[firearm] = random_seconds(rng, window, i, int(firearm.sum()), NIGHT_HOURS)
        order = np.argsort(occurred, kind="stable")
        offense, weapon, firearm, person, beat, occurred = (
            a[order] for a in (offense, weapon, firearm, person, beat, occurred)
        )
        reported = occurred + _report_lag(rng, person)

        arrest = np.array([CLEARANCE[c][0] for c in OFFENSE_CODES])[offense]
        arrest = np.where(firearm, arrest * 0.6, arrest)
        exceptional = np.array([CLEARANCE[c][1] for c in OFFENSE_CODES])[offense]
        u = rng.random(n)
        clearance = np.where(u < arrest, 0, np.where(u < arrest + exceptional, 1, 2))
        domestic = _in(offense, DOMESTIC) & (rng.random(n) < 0.30)

        street, block = city.sample_blocks(rng, beat)
        victim_name, victim_dob, victim_sex = _victims(rng, offense, occurred)
        year = np.full(n, window.year(i))
        number = sequence_numbers(year, counters)
        table = pa.table(
            {
                "incident_number": join(f"RPD-{window.year(i)}-", digits(number, 6)),
                "offense_code": labels(OFFENSE_CODES, offense),
                "offense_description": labels([o[1] for o in OFFENSES], offense),
                "weapon_force_code": labels(WEAPON_CODES, weapon, null=weapon < 0),
                "occurred_at": timestamps(occurred),
                "reported_at": timestamps(reported),
                "beat": labels(city.beat, beat),
                "block_address": block_addresses(street, block),
                "victim_name": victim_name,
                "victim_dob": victim_dob,
                "victim_sex": victim_sex,
                "clearance_code": labels(CLEARANCE_CODES, clearance),
                "domestic_violence": labels(("N", "Y"), domestic.astype(np.int64)),
                "offender_id": offenders.month(i, person, domestic),
            }
        )
        yield f"incidents_{window.label(i)}.csv", table


def calls(
    city: City, window: Window, rng: np.random.Generator, scale: float
) -> Iterator[tuple[str, pa.Table]]:
    """One ``calls_YYYY-MM.csv`` per month of CAD calls for service."""
    base_share = np.array([c[3] for c in CALL_TYPES])
    usual_priority = np.array([c[2] for c in CALL_TYPES])
    shots = CALL_CODES.index("SHOTS")
    urgent = np.isin(CALL_CODES, ("ASSLT", "DV", "WEAPON", "DISTRB"))
    group_names = list(_DISPOSITION_WEIGHTS)
    group = np.array([group_names.index(_CALL_GROUP.get(c, "other")) for c in CALL_CODES])
    counters: dict[int, int] = {}
    for i in range(len(window)):
        moy = window.month_of_year(i)
        trend = (1 + FIREARM_TREND) ** window.years_elapsed(i)
        n = rng.poisson(CALLS_PER_MONTH * scale * seasonal(moy, 0.08))
        share = base_share.copy()
        share[shots] *= seasonal(moy, 0.3) * trend
        kind = pick(rng, share, n)

        beat = city.sample_beats(rng, n, 1.8)
        is_shots = kind == shots
        beat[is_shots] = city.sample_beats(rng, int(is_shots.sum()), 30.0)
        is_urgent = urgent[kind]
        beat[is_urgent] = city.sample_beats(rng, int(is_urgent.sum()), 3.0)

        received = np.empty(n, dtype=np.int64)
        for k, call_type in enumerate(CALL_TYPES):
            rows = kind == k
            received[rows] = random_seconds(rng, window, i, int(rows.sum()), call_type[4])
        order = np.argsort(received, kind="stable")
        kind, beat, received = kind[order], beat[order], received[order]
        is_shots = kind == shots

        shift = pick(rng, (0.06, 0.86, 0.08), n) - 1
        priority = np.clip(usual_priority[kind] + shift, 1, 4)
        queue = np.maximum(10, rng.lognormal(np.log(QUEUE_MEDIAN_S[priority]), 0.9, n))
        dispatched = received + queue.astype(np.int64)
        travel = np.maximum(30, rng.lognormal(np.log(TRAVEL_MEDIAN_S[priority]), 0.5, n))
        arrived = dispatched + travel.astype(np.int64)
        no_arrival = rng.random(n) < 0.05

        disposition = np.empty(n, dtype=np.int64)
        for g, weights in enumerate(_DISPOSITION_WEIGHTS.values()):
            rows = group[kind] == g
            disposition[rows] = pick(rng, weights, int(rows.sum()))
        disposition[no_arrival] = DISPOSITIONS.index("CANCELLED")

        street, block = city.sample_blocks(rng, beat)
        anonymous = rng.random(n) < np.where(is_shots, 0.45, 0.22)
        caller = person_names(rng, sample_sex(rng, n, 0.48), upper=True)
        phone = phone_numbers(rng, n)
        number = sequence_numbers(np.full(n, window.year(i)), counters)
        table = pa.table(
            {
                "call_number": join(f"C{window.year(i) % 100:02d}-", digits(number, 7)),
                "call_type_code": labels(CALL_CODES, kind),
                "call_type": labels([c[1] for c in CALL_TYPES], kind),
                "priority": pa.array(priority.astype(np.int8)),
                "received_at": timestamps(received),
                "dispatched_at": timestamps(dispatched),
                "first_arrived_at": timestamps(arrived, null=no_arrival),
                "beat": labels(city.beat, beat),
                "block_address": block_addresses(street, block),
                "caller_name": null_out(caller, anonymous),
                "caller_phone": null_out(phone, rng.random(n) < 0.06),
                "disposition": labels(DISPOSITIONS, disposition),
            }
        )
        yield f"calls_{window.label(i)}.csv", table
