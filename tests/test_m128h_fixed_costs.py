"""Per-call fixed costs at chunks of 128, without changing a bit: the knob bounds and sanitized knobs in one compiled pass
(`arrays._bounds`) equal `BoundsTable.in_bounds` and `_sanitized`, at NaN, infinities, signed zeros and bounds; the
CNN one-image step's tuple is the same object on every call (its step caches hit)."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model import arrays as A
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import kernel_runner, needs_numba  # noqa: E402

TECH = default_technology()


def _bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, float).view(np.int64)


def _values(n: int, seed: int) -> np.ndarray:
    """Rows of `arrays._NUMERIC_KNOBS`: in and out of bounds, NaN, ±inf, ±0, halves (rint), integers."""
    rng = np.random.default_rng(seed)
    b = A._BOUNDS
    lo, hi = np.where(np.isfinite(b.clip_low), b.clip_low, -1e6), np.where(np.isfinite(b.clip_high), b.clip_high, 1e6)
    v = lo + (hi - lo) * rng.uniform(-0.2, 1.2, (len(A._NUMERIC_KNOBS), n))
    pick = rng.uniform(size=v.shape)
    v = np.where(pick < 0.05, np.nan, v)
    v = np.where((pick >= 0.05) & (pick < 0.08), np.inf * np.sign(rng.uniform(-1, 1, v.shape)), v)
    v = np.where((pick >= 0.08) & (pick < 0.12), np.rint(v) + 0.5, v)
    v = np.where((pick >= 0.12) & (pick < 0.2), np.rint(v), v)
    v = np.where((pick >= 0.2) & (pick < 0.23), 0.0, v)
    v = np.where((pick >= 0.23) & (pick < 0.25), np.broadcast_to(lo, v.shape), v)
    v = np.where((pick >= 0.25) & (pick < 0.27), np.broadcast_to(hi, v.shape), v)
    return np.ascontiguousarray(v)


@needs_numba
@pytest.mark.parametrize("seed,n", [(0, 400), (1, 1), (2, 128)])
def test_bounds_kernel_is_in_bounds_and_sanitized(monkeypatch, seed, n):
    values = _values(n, seed)
    run = kernel_runner(monkeypatch)
    ok, san = run("numba", A._bounds, values)
    assert np.array_equal(ok, A._BOUNDS.in_bounds(values))
    assert np.array_equal(_bits(san), _bits(A._sanitized(values)))
    assert run("numba", A._design_kernel) is not None and run("numpy", A._design_kernel) is None


@needs_numba
def test_bounds_kernel_leaves_a_negative_zero_at_a_zero_bound_to_numpy(monkeypatch):
    """A -0.0 clipped at a bound of 0 takes numpy's clip (whose sign of zero depends on its code path)."""
    values = _values(8, 4)
    row = list(A._SAN_ROWS).index(A._NUMERIC_ROW["chip.sram_mb"])
    assert A._SAN_BOUNDS.clip_low[row, 0] == 0.0
    values[A._NUMERIC_ROW["chip.sram_mb"], 3] = -0.0
    from dse.model import design_kernel as dk
    ok, san = np.empty(values.shape, bool), np.empty((len(A._SAN_ROWS), values.shape[1]))
    b, s = A._BOUNDS, A._SAN_BOUNDS
    assert dk.bounds_kernel(values, b.low_row, b.high_row, b.is_int_row, b.optional_row, A._SAN_ROWS,
                            A._SAN_FILL_ROW, s.is_int_row, s.clip_low_row, s.clip_high_row, ok, san) == -1
    run = kernel_runner(monkeypatch)
    ok, san = run("numba", A._bounds, values)
    assert np.array_equal(_bits(san), _bits(A._sanitized(values)))


def test_from_columns_flags_and_sanitizes_alike_on_both_paths(monkeypatch):
    cols = random_designs(300, 9)
    cols["chip.cores"] = np.where(np.arange(300) % 7 == 0, -3.0, np.asarray(cols["chip.cores"], float))
    cols["chip.sram_mb"] = np.where(np.arange(300) % 11 == 0, np.nan, np.asarray(cols["chip.sram_mb"], float))
    run = kernel_runner(monkeypatch)
    fast = run("numba", DesignArrays.from_columns, cols, TECH)
    slow = run("numpy", DesignArrays.from_columns, cols, TECH)
    assert (~fast.valid).any()
    assert np.array_equal(fast.valid, slow.valid) and list(fast.reason) == list(slow.reason)
    for f in ("cores", "sram_mb", "array_rows", "num_chips", "io_dies"):
        assert np.array_equal(_bits(getattr(fast, f)), _bits(getattr(slow, f))), f


def test_cnn_one_image_steps_are_one_tuple():
    from dse.evaluate import mapping
    from dse.evaluate.steps import Builders  # noqa: F401  (the table's builders)
    from dse.workloads.modelfile import load_model_shape
    from dse.workloads.scenarios import load_mix
    sc = next(e.scenario for e in load_mix("balanced").scenarios if e.scenario.kind == "cnn")
    t = mapping._cnn_table(sc, load_model_shape(sc.model), sc.precision_spec())
    assert mapping._one_steps(t) is mapping._one_steps(t) and mapping._one_steps(t) == (t.one,)
