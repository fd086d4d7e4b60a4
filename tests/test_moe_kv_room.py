"""The static mapping's KV cache takes the software stack's room (Calibration.kv_room_bytes), as the serving
engine does: TensorRT-LLM 0.9 of the memory left after the weights, vLLM 0.9 of the whole memory less the
weights. Hand-computed capacity batches and the fits rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.evaluate.mapping import fits_in, map_llm, residency
from dse.evaluate.steps import Builders
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.hardware import Design
from dse.model.perf import HwView
from dse.model.technology import default_technology
from dse.workloads.modelfile import load_model_shape
from dse.workloads.precision import parse_precision
from dse.workloads.scenarios import BatchRange
from types import SimpleNamespace


def test_fits_in_with_the_stack_room_hand_values():
    cal_free, cal_total = load_calibration("graph"), load_calibration("generic")
    mem, sram = np.array([80e9]), np.array([50e6])
    w, act = 30e9, 1e6
    # TensorRT-LLM: 0.9 x (80 - 30) = 45 GB of KV room
    assert fits_in(w, 45e9, act, sram, mem, kv_room=cal_free.kv_room_bytes)[0]
    assert not fits_in(w, 45.1e9, act, sram, mem, kv_room=cal_free.kv_room_bytes)[0]
    # vLLM: 0.9 x 80 - 30 = 42 GB
    assert fits_in(w, 42e9, act, sram, mem, kv_room=cal_total.kv_room_bytes)[0]
    assert not fits_in(w, 42.1e9, act, sram, mem, kv_room=cal_total.kv_room_bytes)[0]
    # without a stack: all 50 GB the weights leave
    assert fits_in(w, 50e9, act, sram, mem)[0] and not fits_in(w, 50.1e9, act, sram, mem)[0]
    # weights resident in SRAM: the whole memory is free for the KV cache (0.9 x 80 = 72 GB)
    big = np.array([40e9])
    assert fits_in(w, 72e9, act, big, mem, kv_room=cal_free.kv_room_bytes)[0]
    assert not fits_in(w, 72.1e9, act, big, mem, kv_room=cal_free.kv_room_bytes)[0]
    # a chip without memory holds everything in SRAM, whatever the stack
    assert fits_in(1e9, 1e9, act, np.array([2.1e9]), np.array([0.0]), kv_room=cal_free.kv_room_bytes)[0]
    fw, fk, fits, _ = residency(w, 45.1e9, act, sram, mem, kv_room=cal_free.kv_room_bytes)
    assert not fits[0]


def _hw(name: str) -> HwView:
    flat = load_catalog_design(name).to_flat()
    flat["system.num_chips"] = 1
    return HwView.from_arrays(DesignArrays.from_designs([Design.from_flat(flat)], default_technology()))


@pytest.mark.parametrize("cls", ["graph", "generic"])
def test_offline_capacity_batch_is_the_stack_room(cls):
    """Llama-3-8B bf16 on one H100, 1,000 + 1,000 tokens, best batch <= 4,096: throughput grows with the batch,
    so the mapping runs the largest batch whose KV fits the stack's room (hand formula below)."""
    shape, prec, cal = load_model_shape("Llama-3-8B"), parse_precision("bf16"), load_calibration(cls)
    sc = SimpleNamespace(name="t", max_chips=1, goal="throughput", tpot_ms=None, ttft_ms=None, slo=None,
                         prompt_len=1000, output_len=1000, batch=BatchRange(min=1, max=4096))
    hw = _hw("H100-SXM")
    res = map_llm(sc, shape, prec, hw, cal, Builders, force_tp=1, force_pp=1)
    assert res.feasible[0]
    w = Builders.llm(shape, "decode", 1, 1, 1500, 1, prec).weight_bytes_per_chip
    kv_seq = Builders.kv_bytes(shape, 1, 2000, 1, prec)  # 32 layers x 8 kv heads x 128 x 2 x 2 B x 2,000 = 262 MB
    assert kv_seq == pytest.approx(32 * 8 * 128 * 2 * 2 * 2000)
    mem = 80 * 2**30  # the H100's 80 GB are binary: 80 GiB (dse.units.MEMORY_GB_BYTES)
    room = 0.9 * (mem - w) if cls == "graph" else 0.9 * mem - w
    assert int(res.metrics["batch"][0]) == math.floor(room / kv_seq)


@pytest.mark.parametrize("cls", ["graph", "generic"])
def test_static_capacity_and_serving_engine_share_one_kv_room(cls):
    """One concept computed once: the offline mapping's capacity batch holds floor(engine KV tokens / context)
    sequences, the serving engine's KV capacity (dse.evaluate.serving.fit_engine) in tokens of the same room.
    Mixtral-8x7B fp8 at tp 2 on two H100s (MoE: the weights per chip include the experts)."""
    from dse.evaluate.serving import fit_engine

    shape, prec, cal = load_model_shape("Mixtral-8x7B"), parse_precision("fp8"), load_calibration(cls)
    flat = load_catalog_design("H100-SXM").to_flat()
    flat["system.num_chips"] = 2
    hw = HwView.from_arrays(DesignArrays.from_designs([Design.from_flat(flat)], default_technology()))
    prompt, out = 1000, 1000
    sc = SimpleNamespace(name="t", max_chips=2, goal="throughput", tpot_ms=None, ttft_ms=None, slo=None,
                         prompt_len=prompt, output_len=out, batch=BatchRange(min=1, max=8192))
    res = map_llm(sc, shape, prec, hw, cal, Builders, force_tp=2, force_pp=1)
    eng = fit_engine(shape, prec, hw, cal, tp=2, pp=1, ep=1, batch=64, context=prompt + out // 2)
    tokens = int(np.asarray(eng.kv_capacity_tokens).ravel()[0])
    assert int(res.metrics["batch"][0]) == tokens // (prompt + out)
