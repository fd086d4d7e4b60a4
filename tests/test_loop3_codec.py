"""The knob codec's scale (`to_scale`, `from_scale`) works on all number columns at once; every element is what
the knob-by-knob rule gives (log of log knobs; back: exp, steps on the grid, ints rounded, within bounds)."""

from __future__ import annotations

import numpy as np

from dse.study.samplers import KnobCodec
from dse.study.space import SearchSpace, SearchSpaceSpec
from _spaces import SPACE

STEPPED = {**SPACE, "params": {**SPACE["params"], "chip.clock_ghz": {"low": 0.8, "high": 2.0, "step": 0.05},
                               "chip.cores": {"low": 8, "high": 128, "type": "int"}}}


def _one_by_one(codec: KnobCodec, U: np.ndarray) -> np.ndarray:
    """`from_scale` written knob by knob."""
    X = U.copy()
    for j, k in enumerate(codec.knobs):
        if k.kind == "categorical":
            continue
        d = k.dist
        v = np.exp(U[:, j]) if d.log else U[:, j]
        if d.step is not None and not d.log:
            v = d.low + np.round((v - d.low) / d.step) * d.step
        if k.kind == "int":
            v = np.rint(v)
        X[:, j] = np.clip(v, d.low, d.high)
    return X


def test_the_scale_is_the_knob_by_knob_rule():
    for spec in (SPACE, STEPPED):
        codec = KnobCodec(SearchSpace(SearchSpaceSpec(**spec)))
        rng = np.random.default_rng(4)
        X = codec.random(rng, 500)
        X[rng.random(X.shape) < 0.1] = np.nan  # inactive knobs
        U = codec.to_scale(X)
        for j, k in enumerate(codec.knobs):
            want = np.log(X[:, j]) if k.kind != "categorical" and k.dist.log else X[:, j]
            assert np.array_equal(U[:, j], want, equal_nan=True)
        lo, hi, _ = codec.scale_bounds()
        V = U + rng.normal(size=U.shape) * (hi - lo)  # off the grid and out of bounds
        assert np.array_equal(codec.from_scale(V), _one_by_one(codec, V), equal_nan=True)
