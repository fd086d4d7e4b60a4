"""The speed-only paths of the design metrics give the plain paths' numbers to the bit: the harvested yield's
per-design sorted sum against the general loop, and the I/O die envelope compared one line at a time
against all lines at once."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model import area, fab
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402


def test_harvested_yield_rows_equal_general_loop():
    """A column of designs (the sorted-sum path) equals the general loop over the same elements (a (1, n)
    row of unsorted spares), bit for bit, for integer, fractional, zero, above-EXACT_SPARES_MAX and
    continuous (wafer-scale) spares; all-continuous rows equal the same rows of a mixed call."""
    rng = np.random.default_rng(3)
    n = 400
    nr, arr = rng.uniform(5, 600, n), rng.uniform(0, 700, n)
    spares = rng.choice([0, 0, 1, 2, 2.5, 7, 33, 64, 65, 4000], n)
    d0, alpha = rng.uniform(0.02, 0.4, n), rng.uniform(0.5, 6, n)
    ws = rng.random(n) < 0.2
    assert (np.diff(spares) < 0).any()  # the (1, n) row takes the general loop
    got = fab.harvested_yield(nr, arr, spares, d0, alpha, continuous=ws)
    loop = fab.harvested_yield(nr[None], arr[None], spares[None], d0[None], alpha[None], continuous=ws[None])[0]
    assert np.array_equal(got, loop)
    every = fab.harvested_yield(nr, arr, spares, d0, alpha, continuous=np.ones(n, bool))
    assert np.array_equal(every[ws], got[ws])


@pytest.mark.parametrize("seed", [0, 1])
def test_io_envelope_line_by_line_equals_all_at_once(monkeypatch, seed):
    """`chip_area` of random designs (many with I/O dies) is the same whether `_on_envelope` compares all lines
    at once or one line at a time."""
    tech = default_technology()
    arr = DesignArrays.from_columns(random_designs(600, seed), tech)
    monkeypatch.setattr(area, "ENVELOPE_ELEMENTS", 1 << 40)
    wide = area.chip_area(arr)
    monkeypatch.setattr(area, "ENVELOPE_ELEMENTS", 0)
    narrow = area.chip_area(arr)
    assert (arr.has_io_die & wide.feasible).sum() > 20
    for k in wide.__dataclass_fields__:
        a, b = getattr(wide, k), getattr(narrow, k)
        assert np.array_equal(a, b), k
