"""`perf.HwView.from_arrays` takes its float fields (clock, vector FLOP/s, bandwidths, capacities, links, the chiplet
split, peak FLOP/s and `run_energy`'s pJ per FLOP per precision) from one compiled pass (`design_kernel.hw_kernel`)
where the compiled kernels are on: the numpy path's bits, on random designs of the full space (GPUs with and without
fp16 and fp8, caches and scratchpads split into chiplets), a design alone, and an object that is not a DesignArrays
(the numpy path)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from dse.catalog import list_catalog, load_catalog_design
from dse.model import perf
from dse.model.area import chip_area
from dse.model.arrays import DesignArrays
from dse.model.perf import HwView
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import assert_bit_equal, kernel_runner, needs_numba  # noqa: E402

pytestmark = needs_numba

TECH = default_technology()


@pytest.fixture
def run(monkeypatch):
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


def _fields(hw: HwView) -> dict[str, np.ndarray]:
    out = {}
    for k, v in vars(hw).items():
        if isinstance(v, dict):
            out.update({f"{k}.{p}": a for p, a in v.items()})
        elif v is not None:
            out[k] = v
    return out


@pytest.mark.parametrize("seed,n", [(0, 3000), (1, 1), (2, 9)])
def test_hw_kernel_gives_numpys_bits(run, seed, n):
    arr = DesignArrays.from_columns(random_designs(n, seed), TECH)
    area = run("numpy", chip_area, arr)
    slow, fast = (run(mode, HwView.from_arrays, arr, area) for mode in ("numpy", "numba"))
    assert_bit_equal(_fields(slow), _fields(fast), f"seed {seed}")
    assert list(fast.peak_flops) == list(slow.peak_flops) and list(fast.energy_pj_per_flop) == list(
        slow.energy_pj_per_flop)
    if n > 1000:  # chiplet splits of caches and scratchpads
        cache = np.asarray(arr.is_cache, bool)
        assert ((fast.dies > 1) & cache).any() and ((fast.dies > 1) & ~cache).any()


def test_hw_kernel_on_the_catalog(run):
    """The catalog's chips: with and without fp16 (a bf16 FLOP's energy is an fp16 MAC's where the chip has fp16), fp8
    and fp4."""
    arr = DesignArrays.from_designs([load_catalog_design(name) for name in list_catalog()], TECH)
    area = run("numpy", chip_area, arr)
    slow, fast = (run(mode, HwView.from_arrays, arr, area) for mode in ("numpy", "numba"))
    assert_bit_equal(_fields(slow), _fields(fast), "catalog")
    for p in ("fp16", "fp8", "fp4"):
        assert (fast.peak_flops[p] > 0).any() and (fast.peak_flops[p] == 0).any(), p


def test_hw_kernel_needs_columns(run, monkeypatch):
    """An object with a field missing (no is_cache) or a static power of its own takes the numpy code."""
    arr = DesignArrays.from_columns(random_designs(16, 4), TECH)
    area = run("numpy", chip_area, arr)
    taken = []
    real = perf._view_fields
    monkeypatch.setattr(perf, "_view_fields", lambda *a: taken.append(real(*a)) or taken[-1])
    run("numba", HwView.from_arrays, arr, area)
    assert taken[-1] is not None
    for extra in ({"is_cache": None}, {"static_w": np.full(16, 3.0)}):
        duck = types.SimpleNamespace(**{**vars(arr), **extra, "mem_bytes": arr.mem_bytes})
        if extra.get("is_cache", 0) is None:
            del duck.is_cache
        hw = run("numba", HwView.from_arrays, duck, area)
        assert taken[-1] is None
        if "static_w" in extra:
            assert (hw.static_w == 3.0).all()
