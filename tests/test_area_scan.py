"""`area._IoChoices._hull_scan` (designs sorted by their envelope line count, line j scanned on the designs
that have it) picks the same line as the plain scan of every line on every design, to the index, with
ties, NaN and infinite chip costs, designs of one or no line, and (choices, designs) costs."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model import area


def _plain_scan(hull_iy, hull_fx, hull_len, rows, compute_usd):
    """Every line on every design (past a design's last line its cost is +inf): the reference."""
    r = np.ravel(rows)
    shape = np.broadcast_shapes(np.shape(compute_usd), np.shape(rows))
    c = np.broadcast_to(compute_usd, shape).reshape(-1, r.size)
    best = np.zeros(c.shape, dtype=np.intp)
    lines = int(hull_len[0, r].max())
    best_usd = c * hull_iy[0, r] + hull_fx[0, r]
    for j in range(1, lines):
        usd = c * hull_iy[j, r] + hull_fx[j, r]
        better = usd < best_usd * (1 - 1e-12)
        np.copyto(best_usd, usd, where=better)
        best[better] = j
    return best.reshape(shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hull_scan_equals_plain_scan(seed):
    rng = np.random.default_rng(seed)
    k, n = 9, 2000
    lens = rng.choice([0, 1, 1, 1, 2, 2, 3, 5, 9], n)
    iy = rng.choice([1.0, 1.01, 1.02, 1.05, 1.2], (k, n))
    fx = rng.choice([0.0, 5.0, 10.0, 10.0, 40.0], (k, n)) + rng.uniform(0, 1, (k, n)).round(1)
    fx = np.where(np.arange(k)[:, None] < lens[None, :], fx, np.inf)  # past a design's last line: +inf
    io = area._IoChoices(*(None,) * 9, hull_inv_yield=iy, hull_fixed_usd=fx, hull_len=lens[None, :])
    rows = rng.integers(0, n, 3 * n)  # repeated and unordered rows (split candidates)
    usd = rng.choice([0.0, 10.0, 100.0, 1e3, 1e5, np.nan, np.inf], rows.size)
    assert np.array_equal(io._hull_scan(rows, usd), _plain_scan(iy, fx, io.hull_len, rows, usd))
    two = rng.uniform(0, 1e4, (4, rows.size))  # (choices, designs) costs, as the numpy spare search passes
    assert np.array_equal(io._hull_scan(rows, two), _plain_scan(iy, fx, io.hull_len, rows, two))
    one = np.flatnonzero(lens <= 1)  # designs of at most one line: line 0
    assert not io._hull_scan(one, usd[:one.size]).any()
