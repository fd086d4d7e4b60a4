"""Physics v2 of the performance model (issue 11): properties over 10^4 random designs and hand checks.

Properties (vectorized through the public `evaluate`): more memory bandwidth, more SRAM bandwidth, more
SRAM (capacity at the same bandwidth), more MACs or more links never make any scenario slower (by its goal: throughput up, latency down) and never
make a feasible scenario infeasible, unless the design itself became infeasible (area, cooling).
"""

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.evaluate import evaluate, evaluate_scenario, operator_breakdown
from dse.model.perf import HwView, compute_peak, op_times
from dse.model.technology import default_technology
from dse.workloads.ops import OpTable
from dse.workloads.scenarios import load_mix
from _designs import random_designs

TECH = default_technology()
N = 10_000
MIX = "extended"


@pytest.fixture(scope="module")
def base():
    cols = random_designs(N, 11)
    arr = DesignArrays.from_columns(cols, TECH)
    # make the derived bandwidths explicit so that a perturbation scales exactly them
    cols["chip.sram_tbps"] = np.asarray(arr.sram_tbps, float)
    per_stack = np.asarray(arr.mem_bw_tbps, float) * 1000.0 / np.maximum(np.asarray(arr.memory_stacks, float), 1)
    cols["chip.memory_gbps_per_stack"] = np.where(per_stack > 0, per_stack, np.nan)
    cols["chip.tdp_w"] = np.full(N, np.nan)
    return cols, evaluate(DesignArrays.from_columns(cols, TECH), MIX, TECH)


def _goal_metrics():
    mix = load_mix(MIX)
    out = []
    for e in mix.scenarios:
        sc = e.scenario
        if getattr(sc, "goal", "throughput") == "throughput":
            out.append((sc.name, "throughput", +1))
        else:
            out.append((sc.name, "tpot_ms" if sc.kind != "cnn" else "latency_ms", -1))
    return out


PERTURB = {
    "memory bandwidth x1.5": lambda c: {"chip.memory_gbps_per_stack": c["chip.memory_gbps_per_stack"] * 1.5},
    "SRAM bandwidth x2": lambda c: {"chip.sram_tbps": c["chip.sram_tbps"] * 2.0},
    "SRAM capacity x1.5": lambda c: {"chip.sram_mb": c["chip.sram_mb"] * 1.5},
    "MACs: cores x2": lambda c: {"chip.cores": np.minimum(c["chip.cores"] * 2, 2048)},
    "links +8": lambda c: {"chip.links": c["chip.links"] + 8},
}


@pytest.mark.parametrize("what", list(PERTURB))
def test_more_hardware_is_never_slower(base, what):
    cols, m0 = base
    new = dict(cols)
    new.update(PERTURB[what](cols))
    m1 = evaluate(DesignArrays.from_columns(new, TECH), MIX, TECH)
    # compare designs whose design-level checks (area, reticle, cooling) pass in both
    design_ok = np.asarray([r == "" or ":" in r for r in m1["reason"]]) & np.asarray(
        [r == "" or ":" in r for r in m0["reason"]])
    checked = 0
    for sc, metric, sign in _goal_metrics():
        f0, f1 = np.asarray(m0[f"{sc}.feasible"], bool), np.asarray(m1[f"{sc}.feasible"], bool)
        design_level = np.asarray([not r.startswith(("SLO", "weights", "no feasible", "latency")) and r != ""
                                   for r in m1[f"{sc}.reason"]])
        lost = f0 & ~f1 & ~design_level & design_ok
        assert not lost.any(), (what, sc, np.flatnonzero(lost)[:5], m1[f"{sc}.reason"][lost][:3])
        both = f0 & f1
        a, b = np.asarray(m0[f"{sc}.{metric}"], float)[both], np.asarray(m1[f"{sc}.{metric}"], float)[both]
        worse = (b < a * (1 - 1e-9)) if sign > 0 else (b > a * (1 + 1e-9))
        assert not worse.any(), (what, sc, metric, np.flatnonzero(both)[worse][:5], a[worse][:5], b[worse][:5])
        checked += int(both.sum())
    assert checked > 1000  # the property was exercised on many feasible designs


# --- hand checks --------------------------------------------------------------------------------------

def _hw(name: str, **flat_updates) -> HwView:
    from dse.model.hardware import Design

    flat = load_catalog_design(name).to_flat()
    flat.update(flat_updates)
    return HwView.from_arrays(DesignArrays.from_designs([Design.from_flat(flat)], TECH))


def test_tuned_batch1_decode_on_h100_is_memory_bound():
    """`dse roofline H100-SXM --scenario local_llm`: every decode GEMM is memory-bound; overhead is small."""
    from dse.workloads.scenarios import load_scenario

    info = operator_breakdown(load_catalog_design("H100-SXM"), load_scenario("local_llm"), phase="decode")
    gemms = [r for r in info["operators"] if r["kind"] == "gemm"]
    assert gemms and all(r["bound"] == "memory" for r in gemms), [(r["name"], r["bound"]) for r in gemms]
    total = sum(r["time_s"] for r in info["operators"])
    overhead = sum(r["overhead_s"] for r in info["operators"])
    # the per-step cost (fitted on the measured stacks) and one device-side gap per fused kernel: 1.29 of
    # 2.92 ms after the robust refit (the 4-bit weights alone stream in ~1.9 ms, so the ~4.9 µs kernel
    # boundary the measured stacks show is comparable to a 4-bit GEMV); overhead stays below half
    assert overhead < 0.5 * total


@pytest.mark.parametrize("chip,bits", [("H100-SXM", None), ("B200", 16)])
def test_tuned_stack_batch1_decode_is_memory_bound_not_host_bound(chip, bits):
    """The `tuned` class (C++ runtime, kernels launched one by one) on a batch-1 decode: every GEMM is
    memory-bound and the host's launch queue stays behind the GPU (issue 11: "a tuned stack's batch-1
    decode must come out memory-bound, with the overhead a small additive term"). A host launch cost
    fitted far above a C++ launch (~4 µs) made B200 decode host-bound at every weight precision."""
    from dse.workloads.scenarios import load_scenario

    from dse.workloads.scenarios import adhoc_scenario

    sc = load_scenario("local_llm") if bits is None else adhoc_scenario(
        model="Llama-3-8B", batch=1, prompt_len=512, output_len=128, weight_bits=bits)
    from dse.model.hardware import Design

    flat = load_catalog_design(chip).to_flat()
    flat["system.num_chips"] = 1  # one chip: the weights stream from its own memory (no tp split)
    info = operator_breakdown(Design.from_flat(flat), sc, software="tuned", phase="decode")
    gemms = [r for r in info["operators"] if r["kind"] == "gemm"]
    assert gemms and all(r["bound"] == "memory" for r in gemms), [(r["name"], r["bound"]) for r in gemms]
    total = sum(r["time_s"] for r in info["operators"])
    overhead = sum(r["overhead_s"] for r in info["operators"])
    # TensorRT-LLM 0.5-0.12 (kernels launched one by one) runs ~1.5-2 ms per token above its kernels' own time
    # at batch 1 (LLM-Inference-Bench Llama-3-8B on H100: 7.55 ms/token vs ~5.9 ms of Vidur-measured GEMVs
    # scaled to 8B plus attention): with 4-bit weights streaming in ~1.4 ms that share is ~40 % of the step
    # (measured 0.40 after the ramp-as-time refit); the graph stack keeps it far lower (test above)
    assert overhead < 0.45 * total, (overhead, total)


def test_eager_stack_still_pays_its_launch_cost():
    """The generic (eager) class is launch-bound on small decode kernels: slower than the graph stack."""
    from dse.workloads.scenarios import load_scenario

    sc = load_scenario("local_llm")
    hw = _hw("H100-SXM")
    graph = evaluate_scenario(sc, hw, load_calibration("graph")).metrics["tpot_ms"][0]
    eager = evaluate_scenario(sc, hw, load_calibration("generic")).metrics["tpot_ms"][0]
    cal = load_calibration("generic")
    kernels_per_layer = 11  # norm, qkv, rope, attention, o-proj, add, norm, up, act, down, add
    assert eager > graph + 0.5 * kernels_per_layer * 32 * cal.launch_us * 1e-3 * 0.3


def test_llama2_70b_8xh100_tp8_decode_near_the_hand_estimate():
    """Issue 11 hand check: 70B bf16 on 8xH100 tp8 ≈ 9.5 ms per token (5.6 ms weights + ~4 ms all-reduce)."""
    from types import SimpleNamespace

    from dse.evaluate.steps import Builders
    from dse.evaluate.mapping import map_llm
    from dse.workloads.precision import parse_precision
    from dse.workloads.modelfile import load_model_shape

    sc = SimpleNamespace(name="h", max_chips=8, goal="latency", tpot_ms=None, ttft_ms=None, slo=None,
                         prompt_len=128, output_len=128, batch=1)
    res = map_llm(sc, load_model_shape("Llama-2-70B"), parse_precision("bf16"), _hw("H100-SXM"),
                  load_calibration("graph"), Builders, force_tp=8, force_pp=1)
    assert 7.0 < res.metrics["tpot_ms"][0] < 13.0


def test_unsupported_fp4_runs_no_slower_than_the_best_supported_precision():
    hw = _hw("H100-SXM")   # bf16, fp8, int8: no fp4
    fp4, narrow4 = compute_peak(hw, "fp4")
    fp8, _ = compute_peak(hw, "fp8")
    assert fp4[0] == fp8[0] and narrow4[0]  # fp4 values are exact in fp8 e4m3: run at the fp8 rate
    int4, _ = compute_peak(hw, "int4")
    assert int4[0] == hw.peak_flops["int8"][0]
    cal = load_calibration("graph")

    def gemm(prec):
        return OpTable.from_rows([dict(name="g", kind="gemm", flops=2 * 8192 ** 3, weight_bytes=8192 ** 2,
                                       act_in_bytes=8192 ** 2, act_out_bytes=8192 ** 2, m=8192, k=8192,
                                       n=8192, compute_precision=prec)])

    no = np.zeros(1, bool)
    t4 = op_times(gemm("fp4"), hw, cal, no, no).compute[0, 0]
    t16 = op_times(gemm("bf16"), hw, cal, no, no).compute[0, 0]
    t8 = op_times(gemm("fp8"), hw, cal, no, no).compute[0, 0]
    assert t4 <= t8 * (1 + 1e-12) < t16


def test_int8_is_not_fp8():
    """A chip with int8 but no fp8 runs int8 GEMMs at its int8 rate, fp8 ones at bf16 (not exact in int8)."""
    hw = _hw("A100-SXM-80GB")   # bf16, int8 (2x), int4: no fp8
    i8, n8 = compute_peak(hw, "int8")
    f8, nf = compute_peak(hw, "fp8")
    assert i8[0] == 2 * hw.peak_flops["bf16"][0] and n8[0]
    assert f8[0] == hw.peak_flops["bf16"][0] and not nf[0]


def test_scheduled_fabric_has_no_software_collective_floor():
    from dse.model.perf import collective_time

    cal = load_calibration("graph")
    gpu = _hw("H100-SXM")
    groq = _hw("Groq-LPU")
    tiny = np.array([64.0])
    t_gpu = collective_time("allreduce", tiny, np.array([8.0]), gpu, cal)[0, 0]
    t_groq = collective_time("allreduce", tiny, np.array([8.0]), groq, cal)[0, 0]
    assert t_gpu >= cal.collective_floor_us * 1e-6
    # per-hop latency only: 2·log2(8) switch steps × the link latency
    assert t_groq == pytest.approx(6 * groq.link_latency_s[0] + 2 * 7 / 8 * 64 / (groq.link_bw[0] * cal.link_eff))


def test_rdma_ports_run_library_collectives_even_on_a_scheduled_chip():
    """Gaudi 2 (systolic MMEs, 24 x 100 GbE RoCE): its all-reduce runs a library's ring over the NIC, 2(g-1)
    steps of the port latency plus the stack's floor, by hand; no one-shot (no peer load/store over RDMA).
    The same chip on a scale-up link compiles it: 2 log2(g) steps, no floor."""
    from dse.model.perf import collective_time

    cal = load_calibration("tuned")     # one-shot all-reduce stack
    gaudi = _hw("Gaudi2")
    assert gaudi.link_rdma[0] and gaudi.dataflow[0] and gaudi.link_bw[0] == pytest.approx(24 * 12.5e9)
    size, g = np.array([16384.0]), np.array([8.0])
    bw, lat = gaudi.link_bw[0] * cal.link_eff, gaudi.link_latency_s[0]
    t = collective_time("allreduce", size, g, gaudi, cal)[0, 0]
    assert t == pytest.approx(2 * 7 / 8 * 16384 / bw + 14 * lat + cal.collective_floor_us * 1e-6, rel=1e-12)
    scheduled = _hw("Gaudi2")
    scheduled.link_rdma = np.zeros(1, bool)
    t_s = collective_time("allreduce", size, g, scheduled, cal)[0, 0]
    assert t_s == pytest.approx(2 * 7 / 8 * 16384 / bw + 6 * lat, rel=1e-12)


def test_memory_technologies_have_their_own_stream_efficiency():
    effs = {k: m.stream_efficiency for k, m in TECH.memories.items()}
    assert effs["lpddr5x"] < effs["hbm3"] and all(0.5 < v <= 1.0 for v in effs.values())
    assert _hw("M2-Ultra").mem_stream_eff[0] == effs["lpddr5x"]
