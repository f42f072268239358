"""Riverton Community Voices: the monthly resident pulse survey (four questions).

Each response is one resident's answers on a five-point agreement scale. Answers come from a
latent attitude per respondent: residents of hot-spot beats are less satisfied and feel less
safe, older residents are more satisfied, and satisfaction drifts up slowly over the window, so
the survey metrics have structure for the PST to find. Free-text comments sometimes name an
officer or a neighbour, which is why the contract drops them at the door.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from cs360_pipeline.demo.city import City
from cs360_pipeline.demo.common import (
    DAY_HOURS,
    Window,
    digits,
    join,
    labels,
    null_out,
    pick,
    random_seconds,
    sample_ages,
    sequence_numbers,
    timestamps,
)
from cs360_pipeline.demo.names import LAST_NAMES, house_addresses

RESPONSES_PER_MONTH = 1_500
MODES = ("online", "phone", "in_person")
MODE_SHARES = (0.6, 0.25, 0.15)
GENDERS = ("F", "M", "X", "U")
GENDER_SHARES = (0.52, 0.44, 0.015, 0.025)
ADULT_AGES = ((18, 24, 0.12), (25, 34, 0.19), (35, 49, 0.26), (50, 64, 0.24), (65, 89, 0.19))
HOT_SPOT_PENALTY = 0.8
SATISFACTION_TREND = 0.12  # latent units per year: satisfaction improves a little
# Cut points of the latent score on the 1..5 agreement scale.
CUTS = np.array([-1.6, -0.7, 0.1, 1.2])
COMMENTS = (
    "Officer {name} was very helpful after the break-in.",
    "Too many cars speeding on our street at night.",
    "I hear gunshots most weekends.",
    "The {name} family next door keeps calling about noise.",
    "Response was slow when we called about the fight.",
    "Thank you for the youth basketball nights.",
    "More patrols near the school please.",
)


def _likert(latent: np.ndarray) -> np.ndarray:
    """1..5 from a latent score."""
    return np.searchsorted(CUTS, latent) + 1


def responses(
    city: City, window: Window, rng: np.random.Generator, scale: float
) -> Iterator[tuple[str, pa.Table]]:
    """One ``responses_YYYY-MM.csv`` per month of completed questionnaires."""
    counters: dict[int, int] = {}
    for i in range(len(window)):
        n = rng.poisson(RESPONSES_PER_MONTH * scale)
        tract = city.sample_tracts(rng, n, 1.0)
        beat = city.tract_beat[tract]
        hot = city.hot[beat]
        age = np.floor(sample_ages(rng, n, ADULT_AGES)).astype(np.int64)
        gender = pick(rng, GENDER_SHARES, n)
        mode = pick(rng, MODE_SHARES, n)
        submitted = np.sort(random_seconds(rng, window, i, n, DAY_HOURS))

        attitude = (
            rng.normal(0.0, 1.0, n)
            - HOT_SPOT_PENALTY * hot
            + 0.012 * (age - 45)
            + SATISFACTION_TREND * window.years_elapsed(i)
        )
        satisfied = _likert(attitude + rng.normal(0.0, 0.6, n))
        trust = _likert(attitude - 0.2 + rng.normal(0.0, 0.7, n))
        safety = rng.normal(0.2, 1.0, n) - 1.1 * hot - 0.25 * (gender == 0) + 0.3 * attitude
        safe = _likert(safety)
        report = _likert(0.6 + 0.5 * attitude + 0.01 * (age - 45) + rng.normal(0.0, 0.9, n))

        street, block = city.sample_blocks(rng, beat)
        wrote = rng.random(n) < 0.18
        comment_idx = rng.integers(0, len(COMMENTS), n)
        surname = rng.integers(0, len(LAST_NAMES), n)
        comments = [
            COMMENTS[c].format(name=LAST_NAMES[s].title())
            for c, s in zip(comment_idx, surname, strict=True)
        ]
        left_email = rng.random(n) < 0.2
        number = sequence_numbers(np.full(n, window.year(i)), counters)
        table = pa.table(
            {
                "response_id": join(f"RCV{window.year(i)}-", digits(number, 6)),
                "submitted_at": timestamps(submitted),
                "collection_mode": labels(MODES, mode),
                "home_tract": labels(city.tract, tract),
                "home_address": house_addresses(rng, street, block, upper=False),
                "age": pa.array(age.astype(np.int16)),
                "gender": labels(GENDERS, gender),
                "satisfied_with_police": pa.array(satisfied.astype(np.int8)),
                "trust_police": pa.array(trust.astype(np.int8)),
                "feel_safe": pa.array(safe.astype(np.int8)),
                "would_report": pa.array(report.astype(np.int8)),
                "comments": null_out(pa.array(comments, pa.string()), ~wrote),
                "contact_email": null_out(
                    join("resident", digits(number, 6), "@mail.example"), ~left_email
                ),
            }
        )
        yield f"responses_{window.label(i)}.csv", table
