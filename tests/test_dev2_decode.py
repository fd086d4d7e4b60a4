"""Batch-1 decode of a 7B model on every GPU / LPDDR / GDDR device of the catalog (issue 11) under the default
stack: memory-bound weight streaming at the memory's sustained rate plus a fixed per-step cost, the hand-counted
bytes, decode speed ranking with memory bandwidth; and the rows of benchmarks/device_sweep.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import dse
from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import operator_breakdown
from dse.model.calibration import load_calibration
from dse.model.technology import default_technology
from dse.workloads.scenarios import adhoc_scenario

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("device_sweep", ROOT / "benchmarks" / "device_sweep.py")
sweep_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep_mod)

NEW = ["RTX-4090", "RTX-3090", "A10", "L4", "L40S", "Jetson-AGX-Orin-64GB", "M1-Max", "M1-Pro"]
TECH = default_technology()
# Every catalog device tagged gpu, lpddr or gddr with off-chip memory (GPUs, Apple, Jetson, Cloud AI 100): what a
# local-LLM user runs a 7B model on; not the HBM systolic chips (TPU, Inferentia, Gaudi) nor SRAM-only ones.
STREAMING = [n for n in list_catalog() if {"gpu", "lpddr", "gddr"} & set(load_catalog_design(n).tags or ())
             and load_catalog_design(n).chip.memory != "none"]


# Llama-2-7B (32 layers, d 4,096, FFN 11,008, vocabulary 32,000): a decode step reads every weight but the embedding
# table (one row of it): 32 x (4 x 4,096^2 + 3 x 4,096 x 11,008) + 4,096 x 32,000 (LM head) = 6.607e9 parameters,
# plus the KV cache of 512-640 tokens: 2 x 32 x 4,096 x 2 B x ~576 = 0.30 GB.
LLAMA2_7B_DECODE_PARAMS = 32 * (4 * 4096 ** 2 + 3 * 4096 * 11008) + 4096 * 32000
KV_GB = 2 * 32 * 4096 * 2 * 576 / 1e9
BITS = {"fp16": 16.0, "q4_0": 4.5}  # q4_0: 32 4-bit weights + one fp16 scale per block
# The fixed per-step cost of the default stack ("graph": 500 us per step, plus each kernel's gap and memory ramp
# over Llama-2-7B's ~300 kernels): 1.5-1.8 ms on every device on 2026-12-03; 2 ms bounds it. It does not scale with
# bandwidth, so a device's TPOT is its weights at the memory's sustained rate plus at most this.
FIXED_MS = 2.0


def _scenario(fmt: str):
    return adhoc_scenario(model="Llama-2-7B", batch=1, prompt_len=512, output_len=128, max_chips=1,
                          weight_format=sweep_mod.FORMATS[fmt])


@pytest.fixture(scope="module")
def decode():
    """{format: {device: (tpot_ms, decode bound, decode off-chip GB)}} under the default stack."""
    out = {}
    for fmt in BITS:
        sc = _scenario(fmt)
        cols = dse.evaluate_designs(STREAMING, scenario=sc)
        res = {}
        for i, name in enumerate(STREAMING):
            assert cols["adhoc.feasible"][i], (name, cols["adhoc.reason"][i])
            ops = operator_breakdown(load_catalog_design(name), sc)["operators"]
            gb = sum(r["offchip_bytes"] for r in ops if r["phase"] == "decode") / 1e9
            res[name] = (float(cols["adhoc.tpot_ms"][i]), sweep_mod.step_bound(ops, "decode"), gb)
        out[fmt] = res
    return out


@pytest.mark.parametrize("fmt", list(BITS))
@pytest.mark.parametrize("name", STREAMING)
def test_batch1_decode_is_memory_bound_weight_streaming(decode, name, fmt):
    """Band: W / (BW x mem_eff_max x stream_efficiency) <= TPOT <= that + FIXED_MS. The lower edge is the memory's
    sustained rate (the default stack's efficiency times the memory technology's; a step cannot read its
    weights faster), the upper one adds the stack's fixed per-step cost (above)."""
    tpot, bound, gb = decode[fmt][name]
    assert bound == "memory", f"{name} {fmt}: decode {bound}-bound"
    d = load_catalog_design(name)
    bw = d.derived()["mem_bw_tbps"] * 1e12
    eff = load_calibration(None).mem_eff_max * TECH.memories[d.chip.memory].stream_efficiency
    sustained_ms = gb * 1e9 / (bw * eff) * 1e3
    assert gb * 1e9 / bw * 1e3 < sustained_ms <= tpot <= sustained_ms + FIXED_MS, \
        f"{name} {fmt}: TPOT {tpot:.2f} ms vs weights at the sustained rate {sustained_ms:.2f} ms"


@pytest.mark.parametrize("fmt", list(BITS))
@pytest.mark.parametrize("name", NEW)
def test_decode_reads_the_hand_counted_bytes(decode, name, fmt):
    """The new devices hold no weights in their caches at batch 1: a decode step reads the hand count (2 %)."""
    want = LLAMA2_7B_DECODE_PARAMS * BITS[fmt] / 8 / 1e9 + KV_GB
    assert decode[fmt][name][2] == pytest.approx(want, rel=0.02)


@pytest.mark.parametrize("fmt", list(BITS))
def test_decode_speed_ranks_with_memory_bandwidth(decode, fmt):
    """Spearman's rank correlation of decode tokens/s with memory bandwidth over the streaming devices of one
    stack: >= 0.95 (issue 11 asks >= 0.9 against measurements; 0.99 / 0.98 for fp16 / q4_0 on 2026-12-03), and
    among the new devices strictly more bandwidth is strictly faster decode."""
    names = sorted(decode[fmt])
    bw = [load_catalog_design(n).derived()["mem_bw_tbps"] for n in names]
    speed = [1 / decode[fmt][n][0] for n in names]
    assert sweep_mod.spearman(bw, speed) >= 0.95
    new = sorted(NEW, key=lambda n: load_catalog_design(n).derived()["mem_bw_tbps"])
    tpots = [decode[fmt][n][0] for n in new]
    assert all(a > b for a, b in zip(tpots, tpots[1:])), list(zip(new, tpots))


def test_spearman_by_hand():
    assert sweep_mod.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert sweep_mod.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties share their mean rank: ranks (1.5, 1.5, 3) vs (1, 2, 3): r = 0.866
    assert sweep_mod.ranks(np.array([5.0, 5.0, 7.0])).tolist() == [1.5, 1.5, 3.0]
    assert sweep_mod.spearman([5, 5, 7], [1, 2, 3]) == pytest.approx(np.sqrt(3) / 2)
    assert np.isnan(sweep_mod.spearman([1, 2], [1, 2]))


def test_step_bound_and_overhead_share_by_hand():
    rows = [{"phase": "decode", "bound": "memory", "time_s": 3.0, "overhead_s": 0.5},
            {"phase": "decode", "bound": "overhead", "time_s": 1.0, "overhead_s": 1.0},
            {"phase": "prefill", "bound": "compute", "time_s": 9.0, "overhead_s": 0.0}]
    assert sweep_mod.step_bound(rows, "decode") == "memory" and sweep_mod.step_bound(rows, "prefill") == "compute"
    assert sweep_mod.overhead_share(rows, "decode") == pytest.approx(1.5 / 4.0)
    assert sweep_mod.overhead_share(rows, "prefill") == 0.0 and sweep_mod.step_bound(rows, "none") == "-"


def test_sweep_rows_from_the_public_api():
    """The benchmark's rows on two devices: one per (device, format), bounds and fractions filled in."""
    rows = sweep_mod.sweep(["M1-Pro", "RTX-4090"], "graph", "Llama-2-7B", 512, 128, ["fp16", "q4_0"])
    assert [(r["device"], r["format"]) for r in rows] == [("M1-Pro", "fp16"), ("RTX-4090", "fp16"),
                                                          ("M1-Pro", "q4_0"), ("RTX-4090", "q4_0")]
    for r in rows:
        assert r["feasible"] and r["decode_bound"] == "memory" and 0 < r["bw_fraction"] < 1
        assert 0 < r["decode_overhead_share"] < 0.5  # the default stack's fixed cost is a small additive term
        assert r["prefill_tok_s"] == pytest.approx(512e3 / r["ttft_ms"])
    summ = sweep_mod.summary(rows)
    assert [(s["format"], s["devices"]) for s in summ] == [("fp16", 2), ("q4_0", 2)]
    assert sweep_mod.devices({"apple"}) == ["M2-Ultra", "M1-Max", "M1-Pro"]
