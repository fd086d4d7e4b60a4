"""Objective matrices for the Pareto / crowding tests: tie-heavy random rows, and floats compared bit for bit."""

from __future__ import annotations

import numpy as np


def float_bits(a: np.ndarray) -> np.ndarray:
    """The float64 bits of `a` (equal arrays of bits: the same values, signs of zero and NaNs)."""
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


def tied_objectives(rng: np.random.Generator, t: int, n: int, m: int) -> np.ndarray:
    """An (n, m) objective matrix for case `t` of a loop: small integers (ties, duplicate rows) on odd cases, normal
    values on even ones, and on every third case signed zeros (-0.0) in ~40 % of the first objective's rows."""
    F = rng.integers(0, 5, (n, m)).astype(float) if t % 2 else rng.normal(size=(n, m))
    if n and t % 3 == 0:
        F[rng.random(n) < 0.4, 0] = -0.0
    return F
