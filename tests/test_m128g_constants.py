"""The per-design constants of the compiled step kernels (`step_kernel._design_constants`) come from one compiled pass
(`design_kernel.constants_kernel`) with the numpy code's bits (`step_kernel._constants_numpy`): on random designs of
the full space (chiplet splits, RDMA links, GPUs and dataflow chips), views with fields left unset (None) and a
design alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dse.model import perf
from dse.model.calibration import load_calibration
from dse.model.perf import HwView
from dse.evaluate.table import design_metrics
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import needs_numba  # noqa: E402

pytestmark = needs_numba

TECH = default_technology()


def _pair(hw: HwView, cal) -> tuple[np.ndarray, np.ndarray]:
    from dse.model import step_kernel as sk
    args = (perf.compute_peak, perf.sram_rate, perf.fill_time_s, perf._collective_class)
    return sk._design_constants(hw, cal, *args), sk._constants_numpy(hw, cal, *args)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.parametrize("seed,n", [(0, 2000), (1, 1), (2, 37)])
def test_constants_kernel_gives_numpys_bits(seed, n):
    hw, _, _, _ = design_metrics(DesignArrays.from_columns(random_designs(n, seed), TECH))
    for cal in (load_calibration(None), load_calibration("generic")):
        fast, slow = _pair(hw, cal)
        assert _same(fast, slow), np.argwhere(fast.view(np.int64) != slow.view(np.int64))[:5]
    if n > 1000:  # the designs reach both classes, RDMA links and chiplet splits
        assert hw.dataflow.any() and (~hw.dataflow).any() and hw.link_rdma.any() and (hw.d2d_share > 0).any()


def test_constants_kernel_with_unset_fields():
    """Fields a view may leave None (stream efficiency, clock, energies, chiplet split, RDMA) take the numpy code's
    defaults; a field of another shape (a scalar) takes the numpy code itself."""
    hw, _, _, _ = design_metrics(DesignArrays.from_columns(random_designs(64, 5), TECH))
    cal = load_calibration(None)
    bare = dataclasses.replace(hw, mem_stream_eff=None, clock_hz=None, sram_pj_per_byte=None, mem_pj_per_bit=None,
                               link_pj_per_bit=None, d2d_share=None, d2d_bw=None, link_rdma=None,
                               peak_flops={"bf16": hw.peak_flops["bf16"]})
    fast, slow = _pair(bare, cal)
    assert _same(fast, slow)
    assert not _same(fast, _pair(hw, cal)[0])  # (the unset fields change the constants)
    scalar = dataclasses.replace(hw, sram_bytes=np.float64(1e8))
    fast, slow = _pair(scalar, cal)
    assert _same(fast, slow)


@pytest.fixture
def run(monkeypatch):
    from _kernels import kernel_runner
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


def _catalog_hw() -> HwView:
    from dse.catalog import list_catalog, load_catalog_design
    arr = DesignArrays.from_designs([load_catalog_design(name) for name in list_catalog()], TECH)
    return design_metrics(arr)[0]


def test_peak_and_hop_kernels_give_numpys_bits(run):
    """`perf.compute_peak` of every precision (and one no table names) and the point-to-point hop times of
    `collective_time` (groups of 1, 2 and NaN) by their compiled passes equal numpy's."""
    from _kernels import assert_bit_equal
    cal = load_calibration(None)
    hop_bytes, groups = np.array([0.0, 1e3, 3.3e6, 7e9]), np.array([2.0, 1.0, 2.0, np.nan])
    for hw in (design_metrics(DesignArrays.from_columns(random_designs(500, 8), TECH))[0], _catalog_hw()):
        def both():
            out = {}
            for p in ("bf16", "fp16", "fp8", "int8", "int4", "fp4", "fp6"):
                out[f"{p}.peak"], out[f"{p}.narrow"] = perf.compute_peak(hw, p)
            out["hop"] = perf.collective_time("sendrecv", hop_bytes, groups, hw, cal)
            return out
        slow, fast = run("numpy", both), run("numba", both)
        assert_bit_equal(slow, fast, "peaks and hops")
        assert fast["fp8.narrow"].any() and not fast["bf16.narrow"].any() and (fast["hop"][:, 1] == 0).all()
