"""Hand-computed checks and properties of the roofline operator model (dse/model/perf.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.model.calibration import load_calibration
from dse.model.perf import HwView, collective_time, gemm_utilization, op_times
from dse.workloads.ops import OpTable

CAL = load_calibration("tuned")


def hw(n=1, *, peak_tflops=1000.0, mem_tbps=3.0, mem_gb=80.0, sram_mb=50.0, sram_tbps=20.0, rows=32,
       cols=64, cores=132, link_gbps=450.0, latency_us=1.0, topology=2, chips=8, dataflow=False):
    """A HwView of n identical designs (numbers in the units of the keyword names)."""
    one = np.ones(n)
    return HwView(
        peak_flops={"bf16": peak_tflops * 1e12 * one, "fp8": 2 * peak_tflops * 1e12 * one,
                    "int8": 2 * peak_tflops * 1e12 * one, "int4": 0 * one, "fp4": 0 * one},
        vector_flops=60e12 * one, rows=rows * one, cols=cols * one, cores=cores * one,
        mem_bw=mem_tbps * 1e12 * one, mem_bytes=mem_gb * 1e9 * one, sram_bw=sram_tbps * 1e12 * one,
        sram_bytes=sram_mb * 1e6 * one, link_bw=link_gbps * 1e9 * one, link_latency_s=latency_us * 1e-6 * one,
        topology=(topology * one).astype(int), num_chips=(chips * one).astype(int),
        dataflow=np.full(n, dataflow), sparsity=np.zeros(n, bool),
    )


def gemv_table(weight_bytes, k=8192, n=8192, m=1):
    return OpTable.from_rows([dict(name="w", kind="gemm", flops=2 * m * k * n, weight_bytes=weight_bytes,
                                   act_in_bytes=2 * m * k, act_out_bytes=2 * m * n, m=m, k=k, n=n,
                                   compute_precision="bf16")])


def test_gemv_fills_one_row_of_the_array():
    assert gemm_utilization(1.0, 4096.0, 128.0, 128.0, 1.0) == pytest.approx(1 / 128)
    # 100 x 200 on a 64x64 array with 4 cores: pad (100/128)(200/256); 2x4=8 tiles fill 2 full waves
    u = gemm_utilization(100.0, 200.0, 64.0, 64.0, 4.0)
    assert u == pytest.approx((100 / 128) * (200 / 256))
    # 5 tiles on 4 cores: 2 waves, the second with 1 of 4 cores busy -> 5/8 of the tile slots
    assert gemm_utilization(64.0, 320.0, 64.0, 64.0, 4.0) == pytest.approx(5 / 8)


def test_split_k_fills_idle_cores():
    # 4 output tiles on 16 cores: K=4096 is split 4 ways (slices of 1024 >= 256) -> all cores busy
    assert gemm_utilization(32.0, 256.0, 32.0, 64.0, 16.0, 1.0, 4096.0) == pytest.approx(1.0)
    # K=512 allows only 2 slices of 256: 8 of 16 cores busy
    assert gemm_utilization(32.0, 256.0, 32.0, 64.0, 16.0, 1.0, 512.0) == pytest.approx(0.5)


def test_gemv_time_is_weights_over_achievable_bandwidth_plus_overhead():
    w = 1e9
    t = op_times(gemv_table(w), hw(), CAL, np.array([False]), np.array([False]))
    # activations (32 KB) fit in SRAM so only the weights go off-chip; the kernel (longer than the
    # host launch interval) pays the device-side gap, and the one-operator step its step overhead
    mem = w / (3e12 * CAL.mem_eff_max) + CAL.mem_ramp_us * 1e-6  # stream + the kernel's ramp-up/tail
    assert mem > CAL.launch_us * 1e-6
    # near-zero math beside the stream: the knee's p-norm adds (c/m)^p/p of the memory time (~1e-7 here)
    comp, p = t.compute[0, 0], CAL.knee_p
    assert t.memory[0, 0] == pytest.approx(mem, rel=1e-12)
    expected = (mem ** p + comp ** p) ** (1 / p) + CAL.kernel_gap_us * 1e-6 + CAL.step_overhead_us * 1e-6
    assert t.total[0, 0] == pytest.approx(expected, rel=1e-9)
    assert t.bound()[0, 0] == 1  # memory


def test_resident_weights_use_sram_bandwidth():
    w = 40e6
    t = op_times(gemv_table(w), hw(sram_mb=100), CAL, np.array([True]), np.array([True]), np.array([w]))
    assert t.memory[0, 0] == 0.0
    on = w + 2 * 8192 * 2  # resident weights + on-chip activations
    assert t.sram[0, 0] == pytest.approx(on / (20e12 * CAL.sram_eff_max))


def test_large_gemm_is_compute_bound_at_calibrated_efficiency():
    m = k = n = 8192
    ops = gemv_table(2 * k * n, k=k, n=n, m=m)
    t = op_times(ops, hw(), CAL, np.array([False]), np.array([False]))
    # SIMT: the M·N outputs spread over all 32×64 lanes of the 132 cores (no padding of M onto rows)
    u = gemm_utilization(1.0, m * n, 1.0, 32.0 * 64.0, 132.0, 1.0, k)
    assert t.compute[0, 0] == pytest.approx(2 * m * k * n / (1000e12 * u * CAL.compute_eff_max))
    assert t.bound()[0, 0] == 0


def test_ring_allreduce_alpha_beta():
    h = hw(topology=0, link_gbps=100.0, latency_us=1.0)
    t = collective_time("allreduce", np.array([1e6]), np.array([8.0]), h, CAL)[0, 0]
    expected = 2 * 7 / 8 * 1e6 / (100e9 * CAL.link_eff) + 2 * 7 * 1e-6 + CAL.collective_floor_us * 1e-6
    assert t == pytest.approx(expected)
    # a statically scheduled fabric (dataflow chip) has no software floor: per-hop latency only
    t_sched = collective_time("allreduce", np.array([1e6]), np.array([8.0]),
                              hw(topology=0, link_gbps=100.0, latency_us=1.0, dataflow=True), CAL)[0, 0]
    assert t_sched == pytest.approx(expected - CAL.collective_floor_us * 1e-6)
    assert collective_time("allreduce", np.array([1e6]), np.array([1.0]), h, CAL)[0, 0] == 0.0


def test_switch_has_fewer_latency_steps_than_ring_for_small_messages():
    """A compiled schedule behind a switch runs halving-doubling (log2 g steps); a GPU library (NCCL)
    runs its ring over the switch ports and pays the ring's 2(g-1) step latencies."""
    small = np.array([1024.0])
    g = np.array([64.0])
    ring = collective_time("allreduce", small, g, hw(topology=0, dataflow=True), CAL)[0, 0]
    switch = collective_time("allreduce", small, g, hw(topology=2, dataflow=True), CAL)[0, 0]
    assert switch < ring
    assert switch == pytest.approx(2 * 63 / 64 * 1024 / (450e9 * CAL.link_eff) + 2 * 6 * 1e-6)
    nccl = CAL.model_copy(update={"allreduce": "ring"})
    gpu_ring = collective_time("allreduce", small, g, hw(topology=0), nccl)[0, 0]
    gpu_switch = collective_time("allreduce", small, g, hw(topology=2), nccl)[0, 0]
    assert gpu_switch == pytest.approx(gpu_ring)
    # a peer-to-peer custom all-reduce: one-shot, 2 latency steps and (g-1)·s over the links
    custom = CAL.model_copy(update={"allreduce": "oneshot"})
    one = collective_time("allreduce", small, g, hw(topology=2), custom)[0, 0]
    assert one == pytest.approx(63 * 1024 / (450e9 * CAL.link_eff) + 2 * 1e-6 + CAL.collective_floor_us * 1e-6)
    assert one < gpu_switch


@settings(max_examples=60, deadline=None)
@given(bw=st.floats(0.1, 10.0), factor=st.floats(1.0, 10.0), wbytes=st.floats(1e6, 1e11),
       m=st.integers(1, 4096))
def test_more_bandwidth_never_slower(bw, factor, wbytes, m):
    ops = gemv_table(wbytes, m=m)
    slow = op_times(ops, hw(mem_tbps=bw), CAL, np.array([False]), np.array([False])).total[0, 0]
    fast = op_times(ops, hw(mem_tbps=bw * factor), CAL, np.array([False]), np.array([False])).total[0, 0]
    assert fast <= slow * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(peak=st.floats(10.0, 5000.0), factor=st.floats(1.0, 8.0), m=st.integers(1, 65536))
def test_more_compute_never_slower(peak, factor, m):
    ops = gemv_table(2 * 4096 * 4096, k=4096, n=4096, m=m)
    a = op_times(ops, hw(peak_tflops=peak), CAL, np.array([False]), np.array([False])).total[0, 0]
    b = op_times(ops, hw(peak_tflops=peak * factor), CAL, np.array([False]), np.array([False])).total[0, 0]
    assert b <= a * (1 + 1e-12)


def test_gemv_on_simt_is_not_padded_onto_array_rows():
    """A batch-1 GEMV on SIMT lanes runs at the memory roof; a 1-row view would be 32x slower."""
    ops = gemv_table(2 * 8192 * 8192)
    kernel = load_calibration("kernel")  # the kernel alone: no step around it
    t = op_times(ops, hw(rows=32), kernel, np.array([False]), np.array([False]))
    assert t.compute[0, 0] < 0.1 * t.memory[0, 0]
    assert t.bound()[0, 0] == 1


def test_resident_systolic_gemv_is_fed_by_sram_not_padded_to_rows():
    """Batch-1 GEMV on a 160-row systolic chip with resident weights: the array waits for SRAM to load
    each weight tile (tile bytes / SRAM bytes per core per cycle), not for 160 rows of padding."""
    w = 2 * 8192 * 8192
    fast = hw(rows=160, cols=160, cores=4, sram_tbps=80.0, sram_mb=300, dataflow=True)
    slow = hw(rows=160, cols=160, cores=4, sram_tbps=8.0, sram_mb=300, dataflow=True)
    yes = np.array([True])
    tf = op_times(gemv_table(w), fast, CAL, yes, yes, np.array([w]))
    ts = op_times(gemv_table(w), slow, CAL, yes, yes, np.array([w]))
    padded = 2 * 8192 * 8192 / (1000e12 / 160 * CAL.compute_eff_max)
    assert tf.compute[0, 0] < 0.2 * padded   # far from 1/160 utilisation
    assert ts.total[0, 0] > tf.total[0, 0]     # and it scales with SRAM bandwidth


def test_streamed_weights_pass_the_sram_at_no_less_than_the_memory_rate():
    # streamed weights land in SRAM on their way to the arrays; an SRAM slower than the memory behind it
    # passes them at the memory's sustained rate (perf.sram_rate), so the memory term still decides
    w = 1e9
    t = op_times(gemv_table(w), hw(sram_tbps=0.5), CAL, np.array([False]), np.array([False]))
    assert t.sram[0, 0] == pytest.approx((2 * 8192 * 2 + w) / (3e12 * CAL.mem_eff_max))
    assert t.bound()[0, 0] == 1
    fast = op_times(gemv_table(w), hw(sram_tbps=20.0), CAL, np.array([False]), np.array([False]))
    assert fast.sram[0, 0] == pytest.approx((2 * 8192 * 2 + w) / (20e12 * CAL.sram_eff_max))
