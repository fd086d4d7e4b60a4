"""Calibration physics: what a fit may use, what it may not absorb, and which constants may sit at a bound."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dse.model.calibration import CALIBRATION_FILE, calibration_classes
from dse.model.perf import op_times
from dse.validate.calibrate import BOUNDS, INITIAL, NOT_FITTED, bounds, fit_rows
from dse.validate.measurements import load_measurements, select
from dse.validate.predict import hw_view
from dse.workloads.ops import OpBuilder
from dse.workloads.precision import parse_precision

# Constants a refit may leave at a bound of its physical range, each with the reason (the mechanism the
# model lacks, or why the data cannot see the constant). Any other "AT THE FIT BOUND" fails the test:
# a fit that pins a constant means a mechanism is missing, and it must be named here or fixed.
KNOWN_AT_BOUND: dict[tuple[str, str], str] = {
    # TensorRT-LLM 0.5-0.12 / FasterTransformer batch-1 decode runs ~1.5-2 ms per token above its kernels'
    # own time (LLM-Inference-Bench Llama-3-8B on H100: 7.55 ms/token vs ~5.9 ms of Vidur-measured GEMVs
    # scaled to 8B plus attention; llm_perf_models.md §3.5: end to end 55-60 % of ideal bandwidth, GEMVs
    # alone 70-80 %). Missing mechanism: the host work of a runtime that launches kernels one by one
    # (TensorRT enqueue, per-step sync for stop/sampling). Per step or per kernel, the rows cannot tell:
    # fits ending at (step, gap) = (0, 5), (500, 8), (1590, 8) µs reach the same loss within 0.05. The fit
    # puts it per kernel; `graph` (CUDA graphs) keeps only a device-side gap (calibration.yaml).
    # Which rows pull the step cost up (sensitivity at 0 / 50 / 250 / 500 / 1000 us, 2026-12-01, after CNN passes
    # stopped paying it): all TensorRT-LLM 0.5-era batch-1 or short-prompt rows on A100 / H100 — Llama-7B TTFT at
    # 128 tokens -19.0 -> -12.8 %, GPT-J TTFT at 128 -8.8 -> -0.8 %, GPT-J batch-1 decode +8.9 -> -2.8 %, the
    # LLM-Inference-Bench Llama-3-70B tp4 batch 1 -4.8 -> +0.4 %; against it Mixtral tp4 batch 1 -3.7 -> +13.7 %.
    # The large-batch rows barely move (< 3 points over the range), so the rows show no per-step cost that grows
    # with batch (per-sequence scheduling / sampling): the pinned cost is a batch-1 host cost of a runtime that
    # launches one kernel at a time. Loss 0.2549 / 0.2249 / 0.2268 at 0 / 500 / 1000 us: flat beyond the bound.
    # Before 2026-12-01 the ResNet-50 offline rows also leaned on it (8xH100 +8.9 -> +6.0 % over 0-500 us); a CNN
    # pass now pays `inference_launch_us` instead (calibration.Calibration.for_phase).
    ("tuned", "step_overhead_us"): "per-step vs per-kernel host work of non-graph runtimes not identifiable",
    ("tuned", "kernel_gap_us"): "carries the non-graph runtime's per-token host work (see above)",
    # Pinned by tensor-parallel PREFILL rows (FasterTransformer GPT-13B TP2 at 512 tokens, TRT-LLM v0.5
    # Llama-70B TP4 A100 at 128): a 2-5 MB all-reduce per layer is slower than the one-shot custom
    # all-reduce the class assumes for every size. Missing mechanism: which algorithm (custom vs NCCL
    # ring with its floor) the stack picks per message size; the thresholds of those releases are not in
    # the reference.
    ("tuned", "link_eff"): "per-message-size all-reduce algorithm of TRT-LLM 0.5 / FT (custom vs NCCL) unknown",
    # Pinned by LLMCompass A100 GEMMs with short K at M = 8192 (K = N = 512: 91 vs ~121 TFLOPS predicted;
    # 1024) and the eager GPT-3 layer decode: a tiled GEMM pays a fixed prologue/epilogue per output tile
    # (about K = 500 of main loop from the K = N = 4096 / 16384 pair, 269.2 / 293.0 TFLOPS), which the
    # SIMT model does not have, so the per-kernel gap takes it.
    ("generic", "kernel_gap_us"): "short-K GEMM tile prologue/epilogue missing from the SIMT compute roof",
    # The NVLink hop latency in technology.yaml is itself derived from NCCL's 2 KB all-reduce (37 µs /
    # 14 ring steps on 8xH100, 62 / 14 on 8xA100): NCCL's software cost already lives in the link latency,
    # so the floor on top is ~0 and sits at its 2 µs lower bound (one launch + flag handshake).
    ("generic", "collective_floor_us"): "NCCL's small-message cost is already in the link latency_us",
    # The one memory-bound generic training row, MI300X vLLM Llama-3-8B batch 1 (10.3 ms per token), is
    # launch-bound in the model: 355 eagerly launched kernels x launch_us 28.9 us = 10.26 ms, its whole step
    # (`dse roofline MI300X`, generic), against 14.9 GB read at 5.3 TB/s x 0.917 stream efficiency = 3.1 ms
    # (~24 us per GEMM, under its launch). The memory roof never decides a generic training
    # row, so the fit is flat in mem_eff_max and it drifts to its bound (refit on the per-row split,
    # 2026-12-01). Missing: a generic training row whose memory time exceeds its launches.
    ("generic", "mem_eff_max"): "no generic training row is memory-bound (eager launches hide the memory roof)",
}


def _at_bound_lines() -> set[tuple[str, str]]:
    out, cls = set(), None
    for line in CALIBRATION_FILE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^  ([A-Za-z0-9_]+):", line)
        if m:
            cls = m.group(1)
        f = re.match(r"^    ([a-z_]+):.*AT THE FIT BOUND", line)
        if f:
            out.add((cls, f.group(1)))
    return out


def test_fits_never_use_loose_or_power_rows():
    rows = [m for m, _ in select("all")]
    kept = fit_rows(rows)
    assert kept and all(not m.loose and m.regime != "power" for m in kept)
    assert {m.id for m in rows} - {m.id for m in kept} == {m.id for m in rows if m.loose or m.regime == "power"}


def test_first_fp8_release_batch1_rows_are_loose_with_their_evidence():
    """TensorRT-LLM v0.5's batch-1 FP8 H100 rows contradict the same table's FP16 A100 rows and v0.6.1's
    FP8 rows; they are validated, not fitted (measurements.yaml notes give the ratios)."""
    by_id = {m.id: m for m in load_measurements().measurements}
    for rid in ("trtllm05-ttft-llama7b-h100-fp8-tp1-128", "trtllm05-ttft-llama70b-h100-fp8-tp4-128",
                "trtllm05-ttft-gptj-h100-fp8-128", "trtllm05-decode-gptj-h100-fp8-b1"):
        assert by_id[rid].loose and "first FP8 release" in by_id[rid].notes, rid
    # the compute-bound rows of the same release agree with the hardware: they stay fitted
    for rid in ("trtllm05-ttft-llama7b-h100-fp8-tp1-2048", "trtllm05-ttft-llama7b-a100-fp16-tp1-128"):
        assert not by_id[rid].loose, rid


def test_no_constant_at_a_fit_bound_without_a_named_reason():
    pinned = _at_bound_lines()
    assert pinned <= set(KNOWN_AT_BOUND), sorted(pinned - set(KNOWN_AT_BOUND))
    # and the file agrees with the bounds themselves (the marker is not stale)
    cals = calibration_classes()
    for cls, key in pinned:
        lo, hi = bounds(cls, key)
        v = getattr(cals[cls], key)
        assert min(abs(v - lo), abs(v - hi)) <= 1e-3 * (hi - lo), (cls, key, v)


def test_kernel_ramp_is_a_time_fitted_only_on_isolated_kernels():
    """A streaming kernel's ramp-up/tail is a time (`mem_ramp_us`) of the memory system, fitted on the kernel
    class (Vidur's isolated GEMVs); the stacks keep that value instead of fitting it to their own costs."""
    cals = calibration_classes()
    assert 0.0 < cals["kernel"].mem_ramp_us <= BOUNDS["mem_ramp_us"][1]
    for cls in ("tuned", "generic"):
        assert "mem_ramp_us" in NOT_FITTED[cls] and "mem_ramp_us" not in NOT_FITTED["kernel"]
        assert cals[cls].mem_ramp_us == pytest.approx(INITIAL[cls]["mem_ramp_us"])
        assert cals[cls].mem_ramp_us == pytest.approx(cals["kernel"].mem_ramp_us, rel=1e-3)
    assert cals["graph"].mem_ramp_us == cals["tuned"].mem_ramp_us


@pytest.mark.parametrize("cls", ["tuned", "graph", "generic", "kernel"])
def test_fixed_cost_of_a_streamed_matrix_does_not_grow_as_memory_slows(cls):
    """t(GEMV) = bytes / (BW x eff) + fixed: on the same chip with 10x slower memory the time grows by
    exactly 9 x the bandwidth term; the fixed part (kernel gap, step) is the same time on both. A byte-sized
    ramp (a half-rate transfer size) would charge the slow memory 10x more fixed time (an LPDDR device
    35 µs per 7 MB matrix where an H100 pays 2.6 µs)."""
    cal = calibration_classes()[cls]
    b = OpBuilder(parse_precision("bf16"))
    b.gemm("gemv", 1, 8192, 8192)  # 134 MB: longer than any host launch interval, so no launch is exposed
    table = b.table()
    off = np.zeros(1, bool)
    times, streams = [], []
    for gbps in (407.8, 40.78):
        hw = hw_view("A100-SXM-80GB", 1, (("chip.memory_gbps_per_stack", gbps),))
        t = op_times(table, hw, cal, off, off, np.zeros(1))
        times.append(float(t.total[0, 0]))
        streams.append(float(t.memory[0, 0]))
    ramp = cal.mem_ramp_us * 1e-6
    assert streams[1] - ramp == pytest.approx(10 * (streams[0] - ramp), rel=1e-9)
    fixed_fast, fixed_slow = times[0] - streams[0] + ramp, times[1] - streams[1] + ramp
    # the knee's p-norm adds a sliver of the (tiny) compute roof to the memory time; the rest is fixed
    assert fixed_slow == pytest.approx(fixed_fast, abs=2e-7)
    assert fixed_fast >= (cal.kernel_gap_us + cal.mem_ramp_us) * 1e-6 - 1e-12
