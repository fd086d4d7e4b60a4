"""A chip without a vector unit runs elementwise work on one row of its MAC arrays at its 16-bit float rate:
bf16, else fp16. A chip with fp16 but no bf16 (Apple M1's GPU) had 0 FLOP/s there: Llama-2-7B decode took
3.9e9 ms on M1 Max listed as `precisions: [fp16]` (dev2, 2026-12-03)."""

from __future__ import annotations

import numpy as np
import pytest

import dse
from dse.catalog import load_catalog_design


def _design(name: str, precisions: list[str]):
    d = load_catalog_design(name)
    return d.model_copy(update={"chip": d.chip.model_copy(update={"precisions": precisions})})


@pytest.mark.parametrize("name", ["M1-Max", "M1-Pro"])
def test_fp16_only_chip_times_elementwise_work_at_its_fp16_rate(name):
    only16 = _design(name, ["fp16"])
    both = _design(name, ["bf16", "fp16"])
    assert only16.chip.vector_flops_per_cycle == 0
    got = dse.evaluate_designs([only16, both], scenario={"name": "b1", "model": "Llama-2-7B", "batch": 1,
                                                         "prompt_len": 512, "output_len": 128})
    tpot, ttft = got["b1.tpot_ms"], got["b1.ttft_ms"]
    assert np.all(np.isfinite(tpot)) and np.all(tpot < 1e3), tpot
    # the same arrays at the same rate: the fp16 path and the bf16 path time the step alike
    assert tpot[0] == pytest.approx(tpot[1], rel=1e-12) and ttft[0] == pytest.approx(ttft[1], rel=1e-12)


def test_catalog_m1_entries_list_fp16_only():
    for name in ("M1-Max", "M1-Pro"):
        assert list(load_catalog_design(name).chip.precisions) == ["fp16"]
