"""The speed-only paths of the design metrics give the plain paths' numbers to the bit: the harvested yield's
per-design sorted sum against the general loop, and the I/O die envelope on each design's packed lines
against every line at once."""

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


def _envelope_all_at_once(iy, fx, floor_usd, on):
    """The envelope test written as one (a, o, designs) pass over every line (the reference)."""
    used = iy.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = iy[:, None, :] - iy[None, :, :]
        gap = fx[None, :, :] - fx[:, None, :]
        bound = gap / np.where(slope != 0, slope, 1.0)
    other = ~np.eye(used, dtype=bool)[:, :, None]
    hi = np.where(other & (slope > 0), bound, np.inf).min(axis=1)
    lo = np.maximum(np.where(other & (slope < 0), bound, -np.inf).max(axis=1), floor_usd)
    earlier = (np.arange(used)[None, :] < np.arange(used)[:, None])[:, :, None]
    lost = (other & (slope == 0) & ((gap < 0) | ((gap == 0) & earlier)) | np.isnan(gap) & other).any(axis=1)
    return on & (lo <= hi) & ~lost


@pytest.mark.parametrize("used", [2, 3, 5, 16])
def test_io_envelope_packed_equals_all_at_once(monkeypatch, used):
    """`_on_envelope` (live lines packed, designs grouped by their count, in blocks) equals every line against
    every line, with ties, equal slopes, lines at ±∞ and NaN among them."""
    rng = np.random.default_rng(used)
    m = 3000
    iy = rng.choice([1.0, 1.01, 1.02, 1.05, 1.2], (used, m))
    fx = rng.choice([0.0, 5.0, 10.0, 10.0, 40.0, 100.0], (used, m)) + rng.uniform(0, 1, (used, m)).round(1)
    fx = np.where(rng.random((used, m)) < 0.3, np.inf, fx)
    odd = rng.random((used, m)) < 0.01
    fx = np.where(odd, rng.choice([np.nan, -np.inf], (used, m)), fx)
    iy = np.where(rng.random((used, m)) < 0.005, np.inf, iy)
    floor = rng.choice([0.0, 50.0, 1e4], m)
    on = np.isfinite(fx)
    want = _envelope_all_at_once(iy, fx, floor, on)
    assert 0 < want.sum() < on.sum()
    for elements in (1 << 16, 64, 0):
        monkeypatch.setattr(area, "ENVELOPE_ELEMENTS", elements)
        assert np.array_equal(area._on_envelope(iy, fx, floor, on), want)


@pytest.mark.parametrize("seed", [0, 1])
def test_chip_area_same_in_any_envelope_blocks(monkeypatch, seed):
    """`chip_area` of random designs (many with I/O dies) is the same whether `_on_envelope` compares all
    designs of a group at once or one design at a time."""
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
