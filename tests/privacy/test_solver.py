"""The attacker's solver on a table small enough to solve by hand.

A 2 x 2 table whose four margins are published: rows 10 and 7, columns 8 and 9. Every cell
follows from the first, x0: x1 = 10 - x0, x2 = 8 - x0, x3 = x0 - 1, so x0 runs from 1 to 8 and
x3 from 0 to 7. Each question the audit asks has an answer worked out here first.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from cs360_pipeline.privacy.solver import ComponentModel, Counters, fractional

MARGINS = np.array(
    [
        [1, 1, 0, 0],  # row 1: x0 + x1 = 10
        [0, 0, 1, 1],  # row 2: x2 + x3 = 7
        [1, 0, 1, 0],  # column 1: x0 + x2 = 8
        [0, 1, 0, 1],  # column 2: x1 + x3 = 9
    ]
)
TOTALS = np.array([10.0, 7.0, 8.0, 9.0])


def model(targets: list[int] = [0, 3], caps: list[int] = [3, 3]) -> ComponentModel:  # noqa: B006
    return ComponentModel(
        sparse.csr_matrix(MARGINS),
        TOTALS,
        lo=np.zeros(4),
        hi=np.full(4, np.inf),
        targets=targets,
        caps=caps,
        counters=Counters(),
    )


def test_the_bounds_of_a_cell_are_what_the_margins_allow() -> None:
    m = model()
    assert m.extreme(0, 1)[0] == pytest.approx(1)
    assert m.extreme(0, -1)[0] == pytest.approx(8)
    assert m.extreme(3, 1)[0] == pytest.approx(0)
    assert m.extreme(3, -1)[0] == pytest.approx(7)
    lowest = m.extreme(0, 1)[1]
    assert lowest is not None and np.allclose(MARGINS @ lowest[:4], TOTALS)
    assert m.counters.lps == 5 and m.counters.milps == 0


def test_an_insider_who_knows_a_cell_pins_the_others() -> None:
    m = model()
    with m.pinned(0, 5):
        for j, value in ((1, 5), (2, 3), (3, 4)):
            assert m.extreme(j, 1)[0] == pytest.approx(value)
            assert m.extreme(j, -1)[0] == pytest.approx(value)
    assert m.extreme(0, -1)[0] == pytest.approx(8)  # outside the block, unpinned again


def test_integer_questions() -> None:
    m = model()
    assert m.integer_witness(3, (1, 2))
    assert not m.integer_witness(3, (8, 20))  # x3 never exceeds 7
    assert m.integer_bound(0, 1) == pytest.approx(1)
    assert m.integer_bound(0, -1) == pytest.approx(8)
    assert m.counters.milps == 4


def test_batch_questions_over_the_targets() -> None:
    m = model()
    low = m.batch_min([0, 3])  # x0 + x3 = 2 x0 - 1 is least at x0 = 1
    assert low is not None and np.allclose(low[:4], [1, 9, 7, 0])
    high = m.batch_max([0, 3], None)  # min(x0, 3) + min(x3, 3) reaches 6 (x0 from 4 to 8)
    assert high is not None
    assert min(high[0], 3) + min(high[3], 3) == pytest.approx(6)
    assert not fractional(low[:4])


def test_a_cell_inside_another_is_always_at_most_it() -> None:
    m = model()
    assert m.always_at_most(3, 0)  # x3 = x0 - 1
    assert not m.always_at_most(0, 3)
