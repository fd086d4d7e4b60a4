"""`DesignArrays.from_columns` derives its arithmetic columns in one pass of `design_kernel.rows_kernel` when the
compiled kernels are on and in numpy (`arrays._derived`) otherwise: the same bits, on sampled designs with knobs given
out of bounds, unset, at their edges or infinite (flagged rows compute too), and on one design."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dse.model import arrays as A
from dse.model import perf, voltage
from dse.model.technology import default_technology
from dse.study.samplers import sample_space
from dse.study.space import load_space

from _kernels import assert_bit_equal, kernel_runner, needs_numba  # noqa: E402

pytestmark = needs_numba

TECH = default_technology()
FULL = Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"
EDGE = np.array([np.nan, -1.0, 0.0, -0.0, 0.5, 1.0, 3.0, 64.0, 70.0, 1e13, np.inf, -np.inf])


@pytest.fixture
def run(monkeypatch):
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


def _columns(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    cols = sample_space(load_space(FULL), n, rng)
    for knob in A._RAW:  # the knobs read as given: out of bounds, unset (NaN), at their edges
        cols[knob] = rng.choice(EDGE, n)
    for knob in ("chip.clock_ghz", "chip.sram_mb", "chip.cores"):
        cols[knob] = np.where(rng.random(n) < 0.1, rng.choice(EDGE, n), cols[knob])
    return cols


def _fields(arr: A.DesignArrays) -> dict:
    out = {"valid": arr.valid}
    for k, v in vars(arr).items():
        if isinstance(v, dict) and k in ("speedup", "peak_tflops", "energy_pj_per_flop"):
            out.update({f"{k}.{p}": x for p, x in v.items()})
        elif isinstance(v, np.ndarray) and v.dtype != object:
            out[k] = v
    return out


@pytest.mark.parametrize("seed,n", [(0, 700), (1, 128), (2, 1)])
def test_rows_kernel_gives_numpys_bits(run, seed, n):
    if run("numba", voltage.curve_kernel) is None:
        pytest.skip("numpy's log or power is not libm's here: from_columns stays in numpy")
    cols = _columns(n, seed)
    fast = run("numba", A.DesignArrays.from_columns, cols, TECH)
    slow = run("numpy", A.DesignArrays.from_columns, cols, TECH)
    assert_bit_equal(_fields(fast), _fields(slow), "from_columns")
    assert list(fast.reason) == list(slow.reason)
    if n > 100:
        assert (~fast.valid).any() and fast.valid.any()
        assert (fast.clock_over_nominal > voltage.max_clock_ratio()).any()  # the over-clock texts' rows


def test_rows_kernel_is_taken(run):
    """The compiled path is the kernel's (not numpy's by another route) when the voltage curve is compiled."""
    calls = []
    real = A._derived_compiled

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    A._derived_compiled, saved = spy, A._derived_compiled
    try:
        run("numba", A.DesignArrays.from_columns, _columns(5, 3), TECH)
        compiled = run("numba", voltage.curve_kernel) is not None
    finally:
        A._derived_compiled = saved
    assert bool(calls) == compiled
