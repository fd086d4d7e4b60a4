"""The `vllm` software class (vLLM's engine: graph-replayed decode steps under a Python scheduler) and the
structural `stack:` fields a measurement may state, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model.calibration import STACK_FIELDS, calibration_classes, check_stack, derived_classes, load_calibration
from dse.model.perf import collective_time, op_times
from dse.validate.predict import hw_view
from dse.workloads.ops import OpBuilder
from dse.workloads.precision import parse_precision


def _three_gemvs():
    b = OpBuilder(parse_precision("bf16"))
    for i in range(3):
        b.gemm(f"gemv{i}", 1, 4096, 4096)  # 33.5 MB each
    return b.table()


def test_vllm_is_a_class_of_its_own_with_vllm_structure():
    """vLLM fits its own constants (not derived), fuses its layers, replays its decode step as a graph (no
    per-kernel host launch) and sizes its KV cache from the whole memory (gpu_memory_utilization), growing
    sequences block by block."""
    cal = load_calibration("vllm")
    assert "vllm" in calibration_classes() and "vllm" not in derived_classes()
    assert cal.fuse_epilogues and not cal.plugin_layers and cal.fusion_variant == 1
    assert cal.launch_us == 0.0 and cal.step_overhead_us > 0.0
    assert (cal.kv_memory_of, cal.kv_admission, cal.kv_memory_fraction) == ("total", "grow", 0.9)
    # 0.9 x 192 GB - 141 GB of weights (MI300X, Llama-3-70B fp16) = 31.8 GB for the KV cache
    assert float(cal.kv_room_bytes(192e9, 141e9)) == pytest.approx(31.8e9)


def test_graph_inherits_every_constant_it_does_not_set_from_tuned():
    cals = calibration_classes()
    tuned, graph = cals["tuned"], cals["graph"]
    own = {"plugin_layers", "launch_us", "kernel_gap_us", "comm_overlap", "description"}
    for key in type(tuned).model_fields:
        if key not in own:
            assert getattr(graph, key) == getattr(tuned, key), key
    assert graph.launch_us == 0.0 and not graph.plugin_layers


def test_vllm_decode_step_pays_one_step_overhead_and_a_device_gap_per_kernel():
    """Three streamed GEMVs on one H100 under the vllm class: each kernel pays the device-side gap, the step
    pays `step_overhead_us` once (spread over its kernels), and no host launch is exposed (graph replay):
    total = 3 x (bytes / rate + ramp + gap) + step overhead, by hand."""
    cal = load_calibration("vllm").model_copy(update={"step_overhead_us": 2000.0, "kernel_gap_us": 2.0,
                                                      "mem_eff_max": 0.8, "mem_ramp_us": 4.0})
    hw = hw_view("H100-SXM", 1)
    table = _three_gemvs()
    off = np.zeros(1, bool)
    t = op_times(table, hw, cal, off, off, np.zeros(1))
    rate = float(hw.mem_bw[0]) * float(hw.mem_stream_eff[0]) * 0.8
    bytes_each = float(t.offchip_bytes[0, 0])
    assert bytes_each >= 4096 * 4096 * 2
    stream = bytes_each / rate + 4e-6
    assert float(t.memory[0, 0]) == pytest.approx(stream, rel=1e-9)
    assert float(t.overhead[0].sum()) == pytest.approx(3 * 2e-6 + 2000e-6, rel=1e-9)
    # each GEMV is the p-norm of its two roofs (compute ~1 % of the stream: +0.005 %); the step is 3 of them + 3 gaps
    # + the step's host work
    c = float(t.compute[0, 0])
    assert 0 < c < 0.02 * stream
    knee = (stream ** cal.knee_p + c ** cal.knee_p) ** (1.0 / cal.knee_p)
    assert float(t.total[0].sum()) == pytest.approx(3 * (knee + 2e-6) + 2000e-6, rel=1e-9)


def test_eager_generic_step_exposes_the_host_launches_the_graph_step_hides():
    """Same GEMVs under the eager class: when the host issues kernels slower than the GPU runs them, the step
    takes the host's time (launch_us per kernel); the vllm (graph) step does not depend on launch_us."""
    hw = hw_view("H100-SXM", 1)
    table = _three_gemvs()
    off = np.zeros(1, bool)
    eager = load_calibration("generic").model_copy(update={"launch_us": 60.0, "step_overhead_us": 0.0})
    t = op_times(table, hw, eager, off, off, np.zeros(1))
    assert float(t.total[0].sum()) == pytest.approx(3 * 60e-6, rel=1e-9)  # 3 launches x 60 µs > GPU time
    graph = load_calibration("vllm").model_copy(update={"step_overhead_us": 0.0})
    a = float(op_times(table, hw, graph, off, off, np.zeros(1)).total[0].sum())
    assert a < 3 * 60e-6


def test_a_stack_may_state_its_all_reduce_algorithm():
    """`stack: {allreduce: ring}` (a vLLM build without the custom all-reduce) turns the one-shot all-reduce of
    16 KB over 8 H100s (2 latency steps, (g-1) x s over the links) into NCCL's ring (2(g-1) = 14 steps,
    2(g-1)/g x s), by hand from the link's bandwidth and latency."""
    hw = hw_view("H100-SXM", 8)
    cal = load_calibration("vllm").model_copy(update={"collective_floor_us": 10.0, "link_eff": 0.8})
    s, g = 16384.0, 8.0
    bw, lat = float(hw.link_bw[0]) * 0.8, float(hw.link_latency_s[0])
    one = float(collective_time("allreduce", np.array([s]), np.array([g]), hw, cal)[0, 0])
    ring = float(collective_time("allreduce", np.array([s]), np.array([g]), hw, cal.for_stack({"allreduce": "ring"}))[0, 0])
    assert one == pytest.approx(2 * lat + 10e-6 + (g - 1) * s / bw, rel=1e-9)
    assert ring == pytest.approx(14 * lat + 10e-6 + 2 * (g - 1) / g * s / bw, rel=1e-9)
    assert ring > one


def test_stack_fields_are_structural_and_checked():
    assert {"fuse_epilogues", "plugin_layers", "allreduce", "kv_memory_of", "kv_admission"} == set(STACK_FIELDS)
    assert check_stack({"allreduce": "ring", "plugin_layers": False}) == {"allreduce": "ring", "plugin_layers": False}
    for bad in ({"allreduce": "tree"}, {"link_eff": 0.5}, {"plugin_layers": "ring"}, {"kv_memory_of": True}):
        with pytest.raises(ValueError):
            check_stack(bad)


def test_rows_of_vllm_on_rocm_are_class_vllm_on_rccl_and_generic_keeps_eager_stacks():
    """The LLM-Inference-Bench vLLM (ROCm) rows run under `vllm` with their build's RCCL ring all-reduce; `generic`
    keeps the eager stacks: PyTorch operators and collectives timed alone (LLMCompass, Vidur) and vLLM on XPU,
    which runs eagerly (a loose row)."""
    from dse.validate.measurements import load_measurements

    rows = load_measurements().measurements
    rocm = [m for m in rows if m.software == "vLLM (ROCm)"]
    assert len(rocm) == 5
    assert all(m.software_class == "vllm" and m.stack.get("allreduce") == "ring" for m in rocm)
    for m in rows:
        if m.software_class == "generic":
            assert m.kind in ("gemm", "layer", "collective") or "XPU" in m.software, m.id
            assert m.kind in ("gemm", "layer", "collective") or m.loose, m.id


def test_vllm_fit_lands_inside_its_bounds():
    """Every constant `dse calibrate` fits for vllm sits inside its physical range, away from both ends."""
    from dse.validate.calibrate import FIT_ORDER, INITIAL, NOT_FITTED, bounds

    cal = load_calibration("vllm")
    fitted = [k for k in FIT_ORDER if k not in NOT_FITTED["vllm"]]
    assert {"mem_eff_max", "step_overhead_us"} <= set(fitted)
    for key in ("mem_eff_max", "step_overhead_us"):
        lo, hi = bounds("vllm", key)
        v = getattr(cal, key)
        assert lo + 0.02 * (hi - lo) < v < hi - 0.02 * (hi - lo), (key, v)
    for key in NOT_FITTED["vllm"]:
        assert getattr(cal, key) == pytest.approx(INITIAL["vllm"][key]), key


def test_generic_collective_floor_is_not_fitted_over_link_latencies_derived_from_nccl():
    """technology.yaml's NVLink latencies come from Vidur's 2 KB NCCL all-reduces (37 µs / 14 steps on 8xH100): the
    generic (NCCL through torch.distributed) floor on top is not fitted, and an 8xH100 2 KB all-reduce is by hand
    14 x latency + floor + 2(g-1)/g x 2,048 B over the links at link_eff."""
    from dse.validate.calibrate import INITIAL, NOT_FITTED

    cal = load_calibration("generic")
    assert "collective_floor_us" in NOT_FITTED["generic"]
    assert cal.collective_floor_us == INITIAL["generic"]["collective_floor_us"] == 2.0
    hw = hw_view("H100-SXM", 8)
    t = float(collective_time("allreduce", np.array([2048.0]), np.array([8.0]), hw, cal)[0, 0])
    lat, bw = float(hw.link_latency_s[0]), float(hw.link_bw[0]) * cal.link_eff
    assert t == pytest.approx(14 * lat + 2e-6 + 1.75 * 2048 / bw, rel=1e-9)
    assert 30e-6 < t < 45e-6  # Vidur: 37 µs
