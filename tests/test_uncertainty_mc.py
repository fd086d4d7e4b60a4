"""Monte-Carlo internals (issue 16): the grouping of (sample, design) pairs that need a performance run."""

from __future__ import annotations

import numpy as np

from dse.uncertainty.montecarlo import _distinct_rows


def test_distinct_rows_groups_as_np_unique():
    rng = np.random.default_rng(3)
    base = rng.random((40, 9))
    base[5] = base[6]  # two equal base rows: one group
    base[7, 3] = 1e300
    pick = rng.integers(0, 40, 3000)
    key = base[pick]
    first, inverse = _distinct_rows(key)
    _, ref_first, ref_inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    assert len(first) == len(ref_first) == len(np.unique(np.where(pick == 6, 5, pick)))
    assert np.array_equal(key[first][inverse], key)  # every row equals its group's first row
    # the same partition as np.unique, each group's first row its first occurrence
    assert len(np.unique(np.c_[inverse, ref_inverse.ravel()], axis=0)) == len(first)
    assert all(np.flatnonzero(inverse == g)[0] == f for g, f in enumerate(first))
