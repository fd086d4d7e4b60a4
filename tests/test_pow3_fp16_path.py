"""A 16-bit float GEMM on a chip with fp16 but no bf16 (Qualcomm Cloud AI 100) runs on its fp16 path."""

from __future__ import annotations

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.evaluate.table import design_metrics
from dse.model.arrays import DesignArrays
from dse.model.perf import compute_peak
from dse.model.technology import default_technology

TECH = default_technology()


def _hw(name: str):
    return design_metrics(DesignArrays.from_designs([load_catalog_design(name)], TECH))[0]


def test_cloud_ai100_runs_16_bit_and_unsupported_narrow_gemms_at_its_fp16_rate():
    """Cloud AI 100 Ultra: FP16 72 TFLOPS and INT8 217.5 TOPS per SoC, no bf16 or fp8 (chips.yaml): a bf16 or fp8
    GEMM takes the fp16 rate (was 0 FLOP/s, an infinite step), an int4 GEMM the int8 rate; each pays the energy of
    the path it runs on."""
    hw = _hw("Cloud-AI100-Ultra")
    assert hw.peak_flops["bf16"][0] == 0 and hw.peak_flops["fp8"][0] == 0
    fp16 = hw.peak_flops["fp16"][0]
    assert fp16 == pytest.approx(72e12, rel=1e-3)
    for prec in ("bf16", "fp16", "fp8", "fp4"):
        peak, narrow = compute_peak(hw, prec)
        assert peak[0] == pytest.approx(fp16) and not narrow[0], prec
        assert hw.energy_pj_per_flop[prec][0] == pytest.approx(hw.energy_pj_per_flop["fp16"][0]), prec
    peak, narrow = compute_peak(hw, "int4")
    assert peak[0] == pytest.approx(hw.peak_flops["int8"][0]) and narrow[0]


def test_a_chip_with_bf16_keeps_it():
    """H100 runs 16-bit GEMMs on its bf16 path (the same rate as fp16) and pays an fp16 MAC (perf.run_energy)."""
    hw = _hw("H100-SXM")
    peak, _ = compute_peak(hw, "bf16")
    assert peak[0] == hw.peak_flops["bf16"][0] > 0
    assert hw.energy_pj_per_flop["bf16"][0] == pytest.approx(hw.energy_pj_per_flop["fp16"][0])
    assert np.isfinite(peak).all()
