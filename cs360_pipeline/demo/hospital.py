"""Injury-related emergency-department visits from Riverton's hospitals.

Diagnosis codes are ICD-10-CM external-cause codes with their 7th character, so the pipeline
has to do what real firearm-injury surveillance does: pick the firearm codes, count initial
encounters (``A``) and leave out subsequent ones (``D``), and not mistake air guns for firearms.
Subsequent encounters reuse the patient of an earlier initial firearm visit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from cs360_pipeline.demo.city import City
from cs360_pipeline.demo.common import (
    DAY_HOURS,
    NIGHT_HOURS,
    SECONDS_PER_DAY,
    AgeBins,
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
    format_addresses,
    format_names,
    house_numbers,
    name_parts,
    sample_sex,
)

FIREARM_PER_MONTH = 23.0
AIRGUN_PER_MONTH = 1.2
OTHER_PER_MONTH = 380.0
SUBSEQUENT_SHARE = 0.15
FIREARM_TREND = -0.05

FACILITIES = (
    "Riverton General Hospital",
    "St. Anne Medical Center",
    "Lakeshore Community Hospital",
)
DISPOSITIONS = ("ADMITTED", "DISCHARGED", "TRANSFERRED", "DIED")

GSW_PARTS = ("left leg", "right leg", "abdomen", "chest", "left arm", "right arm", "head", "back",
             "buttock", "hand", "foot", "neck")  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """Who gets this kind of injury, where they live, and how the visit ends."""

    ages: AgeBins
    male: float
    hot_boost: float  # residence concentration in hot-spot beats
    complaints: tuple[str, ...]
    disposition: tuple[float, float, float, float]
    facility: tuple[float, float, float]
    night: bool = False


_GUN_FACILITY = (0.7, 0.2, 0.1)
_ANY_FACILITY = (0.4, 0.35, 0.25)
PROFILES = {
    "gun_assault": Profile(
        ((10, 14, 0.04), (15, 24, 0.42), (25, 34, 0.32), (35, 49, 0.15), (50, 74, 0.07)),
        0.88, 25.0, (*(f"GSW {p}" for p in GSW_PARTS), "multiple GSW"),
        (0.45, 0.38, 0.07, 0.10), _GUN_FACILITY, night=True,
    ),
    "gun_other": Profile(
        ((5, 14, 0.08), (15, 24, 0.35), (25, 34, 0.25), (35, 54, 0.22), (55, 80, 0.10)),
        0.85, 4.0, tuple(f"GSW {p}" for p in (*GSW_PARTS[:6], "hand", "foot")),
        (0.35, 0.55, 0.07, 0.03), _GUN_FACILITY, night=True,
    ),
    "gun_self": Profile(
        ((15, 24, 0.2), (25, 44, 0.3), (45, 64, 0.3), (65, 90, 0.2)), 0.86, 1.0,
        ("self-inflicted GSW head", "self-inflicted GSW chest", "self-inflicted GSW abdomen"),
        (0.35, 0.15, 0.10, 0.40), _GUN_FACILITY, night=True,
    ),
    "gun_followup": Profile(
        ((15, 34, 1.0),), 0.88, 25.0,
        ("GSW follow-up, wound check", "wound infection after GSW", "suture removal, prior GSW"),
        (0.2, 0.8, 0.0, 0.0), _GUN_FACILITY,
    ),
    "airgun": Profile(
        ((5, 17, 0.75), (18, 40, 0.25)), 0.8, 1.0,
        ("BB gun injury eye", "pellet wound hand", "airsoft injury face"),
        (0.05, 0.93, 0.02, 0.0), _ANY_FACILITY,
    ),
    "fall": Profile(
        ((0, 9, 0.15), (10, 44, 0.2), (45, 64, 0.2), (65, 95, 0.45)), 0.45, 1.0,
        ("fall from ladder", "fall at home", "fall down stairs", "found down after fall"),
        (0.2, 0.76, 0.03, 0.01), _ANY_FACILITY,
    ),
    "slip": Profile(
        ((5, 44, 0.35), (45, 64, 0.3), (65, 95, 0.35)), 0.45, 1.0,
        ("slipped on ice", "slip and fall, wrist pain", "tripped on sidewalk"),
        (0.1, 0.88, 0.02, 0.0), _ANY_FACILITY,
    ),
    "fight": Profile(
        ((12, 17, 0.15), (18, 34, 0.55), (35, 64, 0.3)), 0.7, 4.0,
        ("assaulted, facial injury", "fight, hand injury", "punched in face"),
        (0.08, 0.9, 0.02, 0.0), _ANY_FACILITY, night=True,
    ),
    "crash": Profile(
        ((16, 24, 0.3), (25, 64, 0.6), (65, 90, 0.1)), 0.55, 1.0,
        ("MVC driver, neck pain", "car crash, chest pain", "MVC rollover, driver"),
        (0.2, 0.75, 0.04, 0.01), _ANY_FACILITY,
    ),
    "cut": Profile(
        ((5, 64, 1.0),), 0.6, 1.0, ("laceration from glass", "cut hand on broken glass"),
        (0.03, 0.96, 0.01, 0.0), _ANY_FACILITY,
    ),
    "other": Profile(
        ((0, 90, 1.0),), 0.5, 1.0, ("twisted ankle", "injury unspecified", "back strain"),
        (0.03, 0.96, 0.01, 0.0), _ANY_FACILITY,
    ),
}  # fmt: skip
PROFILE_NAMES = tuple(PROFILES)

# (code, profile, weight within its group). Firearm weights are intent share x code share:
# assault 60%, unintentional 25%, self-harm 8%, undetermined 5%, legal intervention 2%.
FIREARM_CODES = (
    ("X93.XXXA", "gun_assault", 0.60 * 0.30),
    ("X94.0XXA", "gun_assault", 0.60 * 0.02),
    ("X94.9XXA", "gun_assault", 0.60 * 0.03),
    ("X95.9XXA", "gun_assault", 0.60 * 0.65),
    ("W32.0XXA", "gun_other", 0.25 * 0.40),
    ("W33.00XA", "gun_other", 0.25 * 0.05),
    ("W34.00XA", "gun_other", 0.25 * 0.55),
    ("X72.XXXA", "gun_self", 0.08 * 0.5),
    ("X73.0XXA", "gun_self", 0.08 * 0.1),
    ("X74.9XXA", "gun_self", 0.08 * 0.4),
    ("Y22.XXXA", "gun_other", 0.05 * 0.5),
    ("Y23.0XXA", "gun_other", 0.05 * 0.1),
    ("Y24.9XXA", "gun_other", 0.05 * 0.4),
    ("Y35.001A", "gun_other", 0.02),
)
AIRGUN_CODES = (("W34.010A", "airgun", 1.0),)
OTHER_CODES = (
    ("W19.XXXA", "fall", 0.35),
    ("Y04.0XXA", "fight", 0.15),
    ("V43.52XA", "crash", 0.20),
    ("W25.XXXA", "cut", 0.10),
    ("X58.XXXA", "other", 0.12),
    ("W01.XXXA", "slip", 0.08),
)
# Vocabulary of every code written; subsequent encounters use the firearm codes ending in D.
CODES = tuple(c[0] for c in FIREARM_CODES + AIRGUN_CODES + OTHER_CODES) + tuple(
    c[0][:-1] + "D" for c in FIREARM_CODES
)
_N_FIREARM = len(FIREARM_CODES)
_SUBSEQUENT_OFFSET = len(CODES) - _N_FIREARM
_CODE_PROFILE = np.array(
    [PROFILE_NAMES.index(c[1]) for c in FIREARM_CODES + AIRGUN_CODES + OTHER_CODES]
    + [PROFILE_NAMES.index("gun_followup")] * _N_FIREARM
)
_COMPLAINTS = tuple(dict.fromkeys(c for p in PROFILES.values() for c in p.complaints))

_PATIENT_FIELDS = ("mrn", "last", "first", "dob", "sex", "tract", "number", "street", "facility")


def _draw_codes(rng: np.random.Generator, group: tuple, offset: int, n: int) -> np.ndarray:
    return offset + pick(rng, [c[2] for c in group], n)


def _new_patients(
    rng: np.random.Generator, city: City, profile: np.ndarray, visit_day: np.ndarray
) -> dict[str, np.ndarray]:
    """Demographics and residence for first-time patients, following each row's profile."""
    n = len(profile)
    ages = np.zeros(n)
    male = np.zeros(n)
    tract = np.zeros(n, dtype=np.int64)
    facility = np.zeros(n, dtype=np.int64)
    for k, name in enumerate(PROFILE_NAMES):
        rows = np.flatnonzero(profile == k)
        if not len(rows):
            continue
        p = PROFILES[name]
        ages[rows] = sample_ages(rng, len(rows), p.ages)
        male[rows] = p.male
        tract[rows] = city.sample_tracts(rng, len(rows), p.hot_boost)
        facility[rows] = pick(rng, p.facility, len(rows))
    sex = sample_sex(rng, n, male, unknown_share=0.005)
    last, first = name_parts(rng, sex)
    street, block = city.sample_blocks(rng, city.tract_beat[tract])
    tract[rng.random(n) < 0.03] = -1  # residence unknown
    return {
        "last": last,
        "first": first,
        "dob": birth_days(visit_day, ages),
        "sex": sex,
        "tract": tract,
        "number": house_numbers(rng, block),
        "street": street,
        "facility": facility,
    }


def ed_visits(
    city: City, window: Window, rng: np.random.Generator, scale: float
) -> Iterator[tuple[str, pa.Table]]:
    """One ``ed_visits_YYYY-MM.csv`` per month of injury-related ED visits."""
    counters: dict[int, int] = {}
    next_patient = 0
    # Surviving initial firearm visits of past months: the patients who come back as D rows.
    pool = {f: np.zeros(0, dtype=np.int64) for f in (*_PATIENT_FIELDS, "code", "month")}
    for i in range(len(window)):
        moy = window.month_of_year(i)
        trend = (1 + FIREARM_TREND) ** window.years_elapsed(i)
        n_fire = rng.poisson(FIREARM_PER_MONTH * scale * seasonal(moy, 0.2) * trend)
        n_air = rng.poisson(AIRGUN_PER_MONTH * scale * seasonal(moy, 0.3))
        n_other = rng.poisson(OTHER_PER_MONTH * scale * seasonal(moy, 0.06))
        code = np.concatenate(
            [
                _draw_codes(rng, FIREARM_CODES, 0, n_fire),
                _draw_codes(rng, AIRGUN_CODES, _N_FIREARM, n_air),
                _draw_codes(rng, OTHER_CODES, _N_FIREARM + len(AIRGUN_CODES), n_other),
            ]
        )
        n = len(code)
        profile = _CODE_PROFILE[code]
        night = np.array([PROFILES[p].night for p in PROFILE_NAMES])[profile]
        visit = random_seconds(rng, window, i, n, DAY_HOURS)
        visit[night] = random_seconds(rng, window, i, int(night.sum()), NIGHT_HOURS)
        patient = _new_patients(rng, city, profile, visit // SECONDS_PER_DAY)
        patient["mrn"] = next_patient + np.arange(n)
        next_patient += n

        # Returning firearm patients: copy an earlier initial visit and switch A -> D.
        eligible = np.flatnonzero((pool["month"] >= i - 3) & (pool["month"] < i))
        follow = np.flatnonzero(code < _N_FIREARM)
        follow = follow[rng.random(len(follow)) < SUBSEQUENT_SHARE]
        if len(eligible) and len(follow):
            source = eligible[rng.integers(0, len(eligible), len(follow))]
            for f in _PATIENT_FIELDS:
                patient[f][follow] = pool[f][source]
            code[follow] = pool["code"][source] + _SUBSEQUENT_OFFSET
        else:
            code[follow] += _SUBSEQUENT_OFFSET
        profile = _CODE_PROFILE[code]

        complaint = np.zeros(n, dtype=np.int64)
        disposition = np.zeros(n, dtype=np.int64)
        for k, name in enumerate(PROFILE_NAMES):
            rows = np.flatnonzero(profile == k)
            p = PROFILES[name]
            options = np.array([_COMPLAINTS.index(c) for c in p.complaints])
            complaint[rows] = options[rng.integers(0, len(options), len(rows))]
            disposition[rows] = pick(rng, p.disposition, len(rows))

        survivors = (code < _N_FIREARM) & (disposition != DISPOSITIONS.index("DIED"))
        for f in _PATIENT_FIELDS:
            pool[f] = np.concatenate([pool[f], patient[f][survivors]])
        pool["code"] = np.concatenate([pool["code"], code[survivors]])
        pool["month"] = np.concatenate([pool["month"], np.full(int(survivors.sum()), i)])

        order = np.argsort(visit, kind="stable")
        visit, code = visit[order], code[order]
        complaint, disposition = complaint[order], disposition[order]
        patient = {f: a[order] for f, a in patient.items()}
        unknown = patient["tract"] < 0
        mrn = (patient["mrn"] * 7919 + 2_000_003) % 10_000_000  # unique, not sequential
        number = sequence_numbers(np.full(n, window.year(i)), counters)
        table = pa.table(
            {
                "visit_id": join(f"V{window.year(i)}-", digits(number, 7)),
                "mrn": join("M", digits(mrn, 7)),
                "patient_name": format_names(patient["last"], patient["first"], upper=True),
                "date_of_birth": dates(patient["dob"]),
                "sex": labels(SEX_CODES, patient["sex"]),
                "visit_at": timestamps(visit),
                "facility": labels(FACILITIES, patient["facility"]),
                "residence_tract": labels(city.tract, np.maximum(patient["tract"], 0), unknown),
                "residence_address": null_out(
                    format_addresses(patient["number"], patient["street"], upper=True), unknown
                ),
                "diagnosis_code": labels(CODES, code),
                "chief_complaint": labels(_COMPLAINTS, complaint),
                "disposition": labels(DISPOSITIONS, disposition),
            }
        )
        yield f"ed_visits_{window.label(i)}.csv", table
