"""`area_kernel.split_scan`'s exact mode (`area._split_exact`): the designs where the kernel compared two costs
within its powers' rounding run again with numpy's powers of the same arguments, which must give the numpy
path's fields to the bit without falling back to it; forced on every design (every comparison taken as a
near-tie), it must still give the numpy path's answer everywhere. Both exact modes: numpy's powers from tables,
and (where numpy's power is libm's, `area_kernel.numpy_pow_is_libm`) libm's `pow` in the kernel."""

from __future__ import annotations


import numpy as np
import pytest

from dse.model import area, perf
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import assert_bit_equal, kernel_runner, needs_numba, ndarray_fields as _fields  # noqa: E402



@pytest.fixture
def mode(monkeypatch):
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()



@pytest.fixture(params=["tables", "libm"])
def exact_mode(request, monkeypatch):
    """The exact mode under test: numpy's powers from tables, or libm's `pow` (skipped where numpy's is not)."""
    from dse.model import area_kernel as ak

    if request.param == "tables":
        monkeypatch.setattr(ak, "numpy_pow_is_libm", lambda: False)
    elif not ak.numpy_pow_is_libm():
        pytest.skip("numpy's float64 power is not libm's here")
    return request.param


def _spy(monkeypatch) -> dict:
    """Record the designs `_split_exact` is given and those it leaves to the numpy path."""
    seen = {"rows": 0, "left": 0, "idx": []}
    orig = area._split_exact

    def spy(ak, v, rows, args):
        left = orig(ak, v, rows, args)
        seen["rows"] += rows.size
        seen["idx"].append(rows)
        seen["left"] += int(left.sum())
        return left
    monkeypatch.setattr(area, "_split_exact", spy)
    return seen


@needs_numba
def test_near_ties_settled_in_exact_mode_equal_numpy(mode, monkeypatch, exact_mode):
    arr = DesignArrays.from_columns(random_designs(6000, 7), default_technology())
    ref = _fields(mode("numpy", area.chip_area, arr))
    seen = _spy(monkeypatch)
    got = _fields(mode("numba", area.chip_area, arr))
    assert seen["rows"] > 0 and seen["left"] == 0  # near-ties occur, and exact mode settles them all
    assert_bit_equal(ref, got, "chip_area, near-ties in exact mode")


@needs_numba
@pytest.mark.parametrize("slots", [3, area.EXACT_SLOTS])
def test_exact_mode_on_every_design_equals_numpy(mode, monkeypatch, slots, exact_mode):
    """(3 slots: the tables grow to the powers a design takes, the known ones kept.)"""
    from dse.model import area_kernel as ak

    monkeypatch.setattr(area, "EXACT_SLOTS", slots)

    arr = DesignArrays.from_columns(random_designs(1500, 8), default_technology())
    ref = _fields(mode("numpy", area.chip_area, arr))
    seen = _spy(monkeypatch)
    monkeypatch.setattr(ak, "TIE_ULPS", 1e300)  # every finite comparison is a near-tie
    got = _fields(mode("numba", area.chip_area, arr))
    assert seen["rows"] > 0.3 * arr.n and seen["left"] == 0
    assert_bit_equal(ref, got, "chip_area, exact mode on every design")
    # the chosen split's cost too (not in AreaBreakdown): exact mode's powers are numpy's to the bit
    splits = {}
    for name in ("_split", "_split_compiled"):
        fn = getattr(area, name)
        monkeypatch.setattr(area, name, lambda *a, fn=fn, name=name, **kw: splits.setdefault(name, fn(*a, **kw)))
    mode("numpy", area.chip_area, arr)
    mode("numba", area.chip_area, arr)
    rows = seen["idx"][-1]  # (the designs with a comparison: those without take the kernel's own powers)
    usd = [splits[k]["chip_usd"][rows] for k in ("_split", "_split_compiled")]
    assert np.isfinite(usd[0]).any()
    assert_bit_equal({"chip_usd": usd[0]}, {"chip_usd": usd[1]}, "the chosen split's cost in exact mode")


@needs_numba
def test_unsettled_designs_fall_back_to_numpy(mode, monkeypatch):
    """With no exact-mode run allowed, every flagged design takes the numpy path: the same fields (the tables'
    exact mode: libm's settles in one run)."""
    from dse.model import area_kernel as ak

    monkeypatch.setattr(ak, "numpy_pow_is_libm", lambda: False)
    arr = DesignArrays.from_columns(random_designs(3000, 9), default_technology())
    ref = _fields(mode("numpy", area.chip_area, arr))
    seen = _spy(monkeypatch)
    monkeypatch.setattr(area, "EXACT_ROUNDS", 0)
    got = _fields(mode("numba", area.chip_area, arr))
    assert seen["left"] == seen["rows"] > 0
    assert_bit_equal(ref, got, "chip_area, flagged designs in numpy")
