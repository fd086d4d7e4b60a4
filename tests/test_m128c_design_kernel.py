"""The compiled cost and power of a design (dse/model/design_kernel.py, numba, taken when the compiled kernels are on)
give the numpy path's numbers to the bit: every field of `chip_cost` and `chip_power` on the same `chip_area`, on
the catalog chips, random designs of search_spaces/full.yaml (wafer-scale ones, I/O dies and spare cores among them),
designs with more spares than the exact sum takes (their yield comes from numpy) and calls of one design."""

from __future__ import annotations

import numpy as np
import pytest

from dse.catalog import list_catalog, load_catalog_design
from dse.model import area_kernel, cost, perf
from dse.model.area import chip_area
from dse.model.arrays import DesignArrays
from dse.model.cost import chip_cost
from dse.model.fab import EXACT_SPARES_MAX
from dse.model.power import chip_power
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import assert_bit_equal, kernel_runner, needs_numba, ndarray_fields  # noqa: E402

pytestmark = needs_numba


@pytest.fixture
def run(monkeypatch):
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


def _both(run, arr: DesignArrays) -> tuple[dict, dict]:
    """(numpy path's, compiled path's) cost and power fields of `arr`, on the numpy path's area."""
    area = run("numpy", chip_area, arr)

    def fields():
        out = {f"cost.{k}": v for k, v in ndarray_fields(chip_cost(arr, area)).items()}
        out.update({f"power.{k}": v for k, v in ndarray_fields(chip_power(arr, area)).items()})
        return out
    return run("numpy", fields), run("numba", fields)


def _capped(n: int, seed: int) -> dict:
    """`n` random designs, every other one with a chip.tdp_w cap of 50-1500 W (full.yaml leaves it unset)."""
    cols = random_designs(n, seed)
    cols["chip.tdp_w"] = np.where(np.arange(n) % 2 == 0, np.random.default_rng(seed).uniform(50.0, 1500.0, n), np.nan)
    return cols


def test_random_designs_bit_equal(run):
    tech = default_technology()
    for seed, n in ((0, 3000), (1, 1), (2, 7)):
        arr = DesignArrays.from_columns(_capped(n, seed), tech)
        a, b = _both(run, arr)
        assert_bit_equal(a, b, f"seed {seed}, {n} designs")
    assert arr.n == 7


def test_random_designs_cover_the_branches(run):
    """The random designs reach the branches the kernel writes out: wafer-scale (numpy's yield), I/O dies, spares,
    a switch, a power cap and rows over the cooling limit."""
    arr = DesignArrays.from_columns(_capped(3000, 0), default_technology())
    area = run("numpy", chip_area, arr)
    power = run("numpy", chip_power, arr, area)
    assert arr.wafer_scale.any() and (~arr.wafer_scale).any()
    assert (area.num_io_dies > 0).any() and (area.tolerated_defects > 0).any() and (area.num_dies > 1).any()
    assert (arr.tdp_cap_w > 0).any() and (~power.feasible).any()


def test_catalog_chips_bit_equal(run):
    tech = default_technology()
    arr = DesignArrays.from_designs([load_catalog_design(name) for name in list_catalog()], tech)
    a, b = _both(run, arr)
    assert_bit_equal(a, b, "catalog")


def test_many_given_spares_take_numpys_yield(run):
    """Spare cores above EXACT_SPARES_MAX per die (chip.spare_cores) take harvested_yield's continuous form: in numpy
    on the compiled path too."""
    cols = random_designs(400, 5)
    cols["chip.spare_cores"] = np.full(400, 4.0 * EXACT_SPARES_MAX)
    arr = DesignArrays.from_columns(cols, default_technology())
    area = run("numpy", chip_area, arr)
    assert (area.tolerated_defects > EXACT_SPARES_MAX).any()
    a, b = _both(run, arr)
    assert_bit_equal(a, b, "many spares")


def test_numpy_power_not_libm_keeps_numpy(run, monkeypatch):
    """Where numpy's float64 power is not libm's the kernel's powers could differ: chip_cost stays in numpy."""
    monkeypatch.setattr(area_kernel, "numpy_pow_is_libm", lambda: False)
    assert run("numba", cost.design_kernel) is None
    monkeypatch.undo()
    # on a machine whose numpy dispatches power to a SIMD library (AVX-512) the kernel is off there too
    assert (run("numba", cost.design_kernel) is not None) == area_kernel.numpy_pow_is_libm()
    assert run("numpy", cost.design_kernel) is None


def test_voltage_curve_bit_equal(run):
    """The compiled supply voltage (`design_kernel.voltage_curve`) gives numpy's values to the bit, on clock ratios
    below, at and above nominal (the floor, 1 and the top included), in calls of many rows and of one."""
    from dse.model import voltage
    rng = np.random.default_rng(3)
    r = np.concatenate([rng.uniform(0.0, 1.6, 5000), 10.0 ** rng.uniform(-3.0, 0.2, 2000),
                        [0.0, 1e-12, voltage._floor_ratio(), 1.0, voltage.max_clock_ratio(), 1.6]])
    assert np.array_equal(run("numpy", voltage.voltage_ratio, r).view(np.int64),
                          run("numba", voltage.voltage_ratio, r).view(np.int64))
    for x in r[::500]:
        assert run("numpy", voltage.voltage_ratio, x) == run("numba", voltage.voltage_ratio, x)
    f = rng.uniform(0.05, 1.0, 300)
    assert np.array_equal(run("numpy", voltage.throttle_energy_ratio, f, r[:300]).view(np.int64),
                          run("numba", voltage.throttle_energy_ratio, f, r[:300]).view(np.int64))


def test_numpy_log_or_power_not_libm_keeps_numpy(run, monkeypatch):
    """Where numpy's float64 log (the Newton steps) or power (their start) is not libm's the curve stays in numpy."""
    from dse.model import design_kernel, voltage
    monkeypatch.setattr(design_kernel, "numpy_log_is_libm", lambda: False)
    assert run("numba", voltage.curve_kernel) is None
    monkeypatch.undo()
    monkeypatch.setattr(area_kernel, "numpy_pow_is_libm", lambda: False)
    assert run("numba", voltage.curve_kernel) is None
    monkeypatch.undo()
    libm = design_kernel.numpy_log_is_libm() and area_kernel.numpy_pow_is_libm()  # False on AVX-512 numpy (SIMD)
    assert run("numba", voltage.curve_kernel) is (design_kernel if libm else None)
