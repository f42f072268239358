"""Fictional identifiers: people's names, streets and phone numbers.

Every extract carries direct identifiers so the pipeline's privacy layer has something real to
strip or hash. The lists are short and generic on purpose: combinations are made up, and the
``555-01xx`` phone range is reserved for fiction.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cs360_pipeline.demo.common import digits, join, labels

LAST_NAMES = (
    "Abbott", "Alvarez", "Baker", "Bennett", "Brooks", "Campbell", "Carter", "Castillo",
    "Chen", "Coleman", "Cruz", "Daniels", "Diaz", "Dixon", "Edwards", "Ellis", "Fisher",
    "Flores", "Foster", "Garcia", "Gonzalez", "Graham", "Griffin", "Hall", "Harris",
    "Hayes", "Henderson", "Hughes", "Jackson", "Jenkins", "Johnson", "Kelly", "Kim",
    "Lee", "Lewis", "Lopez", "Marshall", "Martin", "Mendoza", "Mitchell", "Morales",
    "Murphy", "Nguyen", "Ortiz", "Owens", "Patel", "Perez", "Porter", "Price", "Ramirez",
    "Reed", "Reyes", "Richardson", "Rivera", "Robinson", "Russell", "Sanders", "Simmons",
    "Stewart", "Sullivan", "Thompson", "Torres", "Turner", "Walker", "Washington",
    "Watson", "Webb", "Williams", "Wright", "Young",
)  # fmt: skip

FIRST_NAMES_F = (
    "Aaliyah", "Alicia", "Amara", "Angela", "Ava", "Brianna", "Camila", "Chloe", "Danielle",
    "Destiny", "Elena", "Emily", "Gabriela", "Grace", "Hannah", "Imani", "Isabella", "Jada",
    "Jasmine", "Jessica", "Kayla", "Keisha", "Laura", "Leah", "Lucia", "Maria", "Maya",
    "Mei", "Monique", "Nadia", "Olivia", "Priya", "Rosa", "Sarah", "Sofia", "Tanya",
    "Valeria", "Vanessa", "Yolanda", "Zoe",
)  # fmt: skip

FIRST_NAMES_M = (
    "Aaron", "Adrian", "Andre", "Anthony", "Brandon", "Carlos", "Christopher", "Daniel",
    "Darnell", "David", "DeShawn", "Diego", "Elijah", "Eric", "Ethan", "Gabriel", "Isaiah",
    "Jamal", "James", "Javier", "Jayden", "Jose", "Joshua", "Juan", "Kevin", "Liam",
    "Luis", "Malik", "Marcus", "Mason", "Michael", "Miguel", "Nathan", "Omar", "Raj",
    "Robert", "Samuel", "Terrence", "Tyrone", "Wei",
)  # fmt: skip

STREETS = (
    "ASH ST", "BAY ST", "BIRCH AVE", "BRIDGE ST", "BROAD ST", "CANAL ST", "CEDAR AVE",
    "CENTER ST", "CHERRY LN", "CHURCH ST", "CLAY ST", "COLLEGE AVE", "COURT ST", "DEPOT RD",
    "ELM ST", "FERRY RD", "FRANKLIN AVE", "GARDEN ST", "GRAND AVE", "GROVE ST", "HARBOR DR",
    "HIGH ST", "HILL RD", "JEFFERSON AVE", "KING ST", "LAKE DR", "LIBERTY ST", "LINCOLN AVE",
    "MAIN ST", "MAPLE AVE", "MARKET ST", "MILL RD", "OAK ST", "ORCHARD RD", "PARK AVE",
    "PEARL ST", "PINE ST", "PROSPECT AVE", "QUARRY RD", "RAILROAD AVE", "RIVER RD",
    "SPRING ST", "SPRUCE ST", "SUMMIT AVE", "UNION ST", "VALLEY RD", "VINE ST",
    "WALNUT ST", "WASHINGTON BLVD", "WATER ST", "WILLOW WAY",
)  # fmt: skip

SEX_CODES = ("F", "M", "U")
FEMALE, MALE, UNKNOWN = 0, 1, 2

_FIRST_NAMES = FIRST_NAMES_F + FIRST_NAMES_M


def sample_sex(
    rng: np.random.Generator, n: int, male_share: float | np.ndarray, unknown_share: float = 0.0
) -> np.ndarray:
    """Sex codes as indices into ``SEX_CODES``."""
    u = rng.random(n)
    sex = np.where(u < male_share, MALE, FEMALE)
    if unknown_share:
        sex[rng.random(n) < unknown_share] = UNKNOWN
    return sex


def name_parts(rng: np.random.Generator, sex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(last, first) name indices; the first name fits the sex (either list when unknown).

    Kept as integers so a record can be copied to a later row (a returning patient) before
    the strings are built.
    """
    n = len(sex)
    n_f, n_m = len(FIRST_NAMES_F), len(FIRST_NAMES_M)
    female_first = rng.integers(0, n_f, n)
    male_first = n_f + rng.integers(0, n_m, n)
    either = rng.random(n) < 0.5
    first = np.where(
        sex == MALE,
        male_first,
        np.where(sex == FEMALE, female_first, np.where(either, male_first, female_first)),
    )
    return rng.integers(0, len(LAST_NAMES), n), first


def format_names(last: np.ndarray, first: np.ndarray, *, upper: bool) -> pa.Array:
    """``Last, First``. ``upper`` mimics all-caps records-management and EHR systems; schools
    and probation keep mixed case, so the pipeline cannot rely on one spelling across sources.
    """
    names = join(labels(LAST_NAMES, last), labels(_FIRST_NAMES, first), sep=", ")
    return pc.utf8_upper(names) if upper else names


def person_names(rng: np.random.Generator, sex: np.ndarray, *, upper: bool) -> pa.Array:
    """Fresh ``Last, First`` names for people of the given sex."""
    return format_names(*name_parts(rng, sex), upper=upper)


def house_numbers(rng: np.random.Generator, block: np.ndarray) -> np.ndarray:
    """A house number inside each hundred-block."""
    return np.asarray(block, dtype=np.int64) + rng.integers(1, 100, len(block))


def format_addresses(number: np.ndarray, street: np.ndarray, *, upper: bool) -> pa.Array:
    """``1234 ELM ST`` (or ``1234 Elm St`` when not ``upper``)."""
    text = pc.cast(pa.array(np.asarray(number, dtype=np.int64)), pa.string())
    address = join(text, labels(STREETS, street), sep=" ")
    return address if upper else pc.utf8_title(address)


def house_addresses(
    rng: np.random.Generator, street: np.ndarray, block: np.ndarray, *, upper: bool
) -> pa.Array:
    """Fresh street addresses on the given street index and hundred-block."""
    return format_addresses(house_numbers(rng, block), street, upper=upper)


def block_addresses(street: np.ndarray, block: np.ndarray) -> pa.Array:
    """``1200 BLOCK OF ELM ST``: police records publish locations at block level."""
    number = pc.cast(pa.array(np.asarray(block, dtype=np.int64)), pa.string())
    return join(number, " BLOCK OF ", labels(STREETS, street))


def phone_numbers(rng: np.random.Generator, n: int) -> pa.Array:
    """Numbers in the reserved fictional ``555-0100``..``555-0199`` range."""
    return join("555-01", digits(rng.integers(0, 100, n), 2))
