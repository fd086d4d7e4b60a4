"""A scenario with a `serving:` workload gets request-level metrics from evaluate."""

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.evaluate import evaluate, metric_info
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.workloads.scenarios import Mix, load_mix

SERVING = {"arrival_rate_rps": 2.0, "prompt_tokens": {"kind": "lognormal", "median_tokens": 1500, "sigma": 0.6,
                                                      "max_tokens": 8192},
           "output_tokens": {"kind": "uniform", "min_tokens": 64, "max_tokens": 448},
           "ttft_ms": {"p99": 2000}, "tpot_ms": {"p99": 50}}
COLUMNS = ("goodput_rps", "max_rate_rps", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
           "prefill_replicas", "spec_k", "usd_per_mtok_at_slo", "tokens_per_s_per_mw_at_slo",
           "tokens_per_s_per_rack_kw_at_slo", "kv_offload", "cp", "prefill_chips", "fleet_cost_usd", "fleet_power_w")


def _mix(serving, **static):
    d = load_mix("datacenter").model_dump()
    d["scenarios"][0]["scenario"]["serving"] = serving
    d["scenarios"][0]["scenario"].update(static)
    return Mix.model_validate(d)


@pytest.fixture(scope="module")
def h100_b200():
    tech = default_technology()
    arr = DesignArrays.from_designs([load_catalog_design(n) for n in ("H100-SXM", "B200")], tech)
    return arr, tech


def test_serving_workload_adds_registry_metrics(h100_b200):
    arr, tech = h100_b200
    out = evaluate(arr, _mix(SERVING), tech)
    col = {c: out[f"datacenter_llm.{c}"] for c in COLUMNS}
    for c in COLUMNS:
        assert metric_info(f"datacenter_llm.{c}").metric.unit in ("ms", "requests/s", "", "US$ per 10⁶ tokens",
                                                                         "tokens/s per MW", "tokens/s per kW", "US$", "W")
    assert np.all(col["max_rate_rps"] > 2.0)                 # both meet the SLOs at the offered 2 req/s
    assert np.allclose(col["goodput_rps"], 2.0, rtol=0.01)
    assert np.all(col["ttft_p99_ms"] > col["ttft_p50_ms"]) and np.all(col["tpot_p99_ms"] > col["tpot_p50_ms"])
    assert np.all(col["tpot_p99_ms"] <= 50) and np.all(col["ttft_p99_ms"] <= 2000)
    assert col["max_rate_rps"][1] > col["max_rate_rps"][0]   # B200 serves more than H100 in SLO


def test_scenarios_without_serving_leave_the_columns_zero_and_the_rest_unchanged():
    """Without a serving workload the serving columns are 0; with one, a design whose plan the serving
    choice kept (tests/test_serving_plan.py) has every other column unchanged."""
    tech = default_technology()
    arr = DesignArrays.from_designs([load_catalog_design(n) for n in ("H100-SXM", "B200", "H200-SXM")], tech)
    plain = evaluate(arr, load_mix("datacenter"), tech)
    served = evaluate(arr, _mix(SERVING), tech)
    for c in COLUMNS:
        assert np.all(plain[f"datacenter_llm.{c}"] == 0)
    kept = np.all([plain[f"datacenter_llm.{f}"] == served[f"datacenter_llm.{f}"]
                   for f in ("tp", "pp", "ep", "dp", "batch")], axis=0)
    # both designs kept their static plan since the TP all-reduces sum 16-bit GEMM outputs
    # (transformer.GEMM_OUT_BYTES, 2026-12-01; B200 served with another plan when they were sized at 8 bits);
    # since the graph class exposes its all-reduces (comm_overlap 0, 2026-12-02) the static plans of H100 / B200
    # are tp 4 / tp 2 and serving picks tp 8 / tp 4, while H200 keeps its tp 4 x dp 2
    assert kept.any()
    for k, v in plain.items():
        # mix columns are normalised to the mix's reference design (H100-SXM, design 0): equal only if it kept its plan
        if not any(k.endswith(c) for c in COLUMNS) and (kept[0] or not k.startswith("mix.")):
            assert np.array_equal(v[kept], served[k][kept]), k


def test_a_rate_beyond_capacity_scores_no_goodput(h100_b200):
    arr, tech = h100_b200
    out = evaluate(arr, _mix(SERVING | {"arrival_rate_rps": 500.0}), tech)
    assert np.all(out["datacenter_llm.goodput_rps"] == 0)
    assert np.all(out["datacenter_llm.max_rate_rps"] < 500)


def test_cost_per_mtok_at_slo_is_tco_over_tokens_at_the_max_rate(h100_b200):
    arr, tech = h100_b200
    out = evaluate(arr, _mix(SERVING), tech)
    mean_out = (64 + 448) / 2
    usd_h = out["datacenter_llm.usd_per_mtok"] * out["datacenter_llm.tokens_per_s"] * 3600 / 1e6   # hourly TCO
    want = usd_h / (out["datacenter_llm.max_rate_rps"] * mean_out * 3600) * 1e6
    assert np.allclose(out["datacenter_llm.usd_per_mtok_at_slo"], want, rtol=1e-9)
    assert np.all(out["datacenter_llm.prefill_replicas"] == 0) and np.all(out["datacenter_llm.spec_k"] == 0)


def test_tokens_per_power_at_slo_are_slo_tokens_over_it_and_facility_power(h100_b200):
    arr, tech = h100_b200
    out = evaluate(arr, _mix(SERVING), tech)
    tok_s = out["datacenter_llm.max_rate_rps"] * (64 + 448) / 2
    kw = out["datacenter_llm.power_w"] / 1e3
    assert np.all(kw > 1) and np.all(tok_s > 0)
    assert np.allclose(out["datacenter_llm.tokens_per_s_per_rack_kw_at_slo"], tok_s / kw, rtol=1e-12)
    assert np.allclose(out["datacenter_llm.tokens_per_s_per_mw_at_slo"], tok_s / (kw / 1e3 * 1.5), rtol=1e-12)  # PUE 1.5


def test_the_mapping_splits_pools_for_long_prompts_under_strict_slos_and_not_for_short_loose_ones(h100_b200):
    """DistServe / Splitwise on the operator model's engines: 8k prompts under a tight TPOT make the
    mapping pick a prefill pool and raise the rate in SLO; short prompts under loose SLOs stay co-located."""
    arr, tech = h100_b200
    disagg = {"disaggregation": {"link_gbps": 50, "prefill_shares": [0.25, 0.5]}}
    static = {"ttft_ms": None}   # no static-batch TTFT limit
    # the same plan with and without pools (tp 2: dp 4 replicas to split); left free, the serving choice
    # may prefer one tp-8 replica, and a comparison across plans would not isolate disaggregation
    tp = 2
    long = {"arrival_rate_rps": 1.0, "prompt_tokens": {"kind": "fixed", "tokens": 8192},
            "output_tokens": {"kind": "fixed", "tokens": 128}, "ttft_ms": {"p99": 3000}, "tpot_ms": {"p99": 30}}
    short = {"arrival_rate_rps": 1.0, "prompt_tokens": {"kind": "fixed", "tokens": 256},
             "output_tokens": {"kind": "fixed", "tokens": 256}, "ttft_ms": {"p99": 5000}, "tpot_ms": {"p99": 200}}
    for work, split in ((long, True), (short, False)):
        plain = evaluate(arr, _mix(work, **static), tech, force_tp=tp)
        free = evaluate(arr, _mix(work | disagg, **static), tech, force_tp=tp)
        assert np.all(free["datacenter_llm.dp"] >= 2) and np.array_equal(free["datacenter_llm.dp"], plain["datacenter_llm.dp"])
        chosen = free["datacenter_llm.prefill_replicas"]
        assert np.all(free["datacenter_llm.max_rate_rps"] >= plain["datacenter_llm.max_rate_rps"] * (1 - 1e-9))
        if split:
            assert np.any(chosen > 0), chosen
            assert np.any(free["datacenter_llm.max_rate_rps"] > 1.1 * plain["datacenter_llm.max_rate_rps"])
        else:
            assert np.all(chosen == 0), chosen


def test_the_mapping_drafts_tokens_where_decode_is_memory_bound(h100_b200):
    """At a low rate (small decode batch, weights read once per step) MTP drafting with 80 % acceptance
    raises tokens per step at little cost: the mapping picks k > 0 and the median TPOT falls."""
    arr, tech = h100_b200
    work = {"arrival_rate_rps": 0.2, "prompt_tokens": {"kind": "fixed", "tokens": 1024},
            "output_tokens": {"kind": "fixed", "tokens": 512}, "ttft_ms": {"p99": 5000}, "tpot_ms": {"p99": 40}}
    plain = evaluate(arr, _mix(work), tech)
    spec = evaluate(arr, _mix(work | {"speculation": {"k": [2, 4], "acceptance": 0.8}}), tech)
    assert np.all(spec["datacenter_llm.spec_k"] > 0)
    assert np.all(spec["datacenter_llm.tpot_p50_ms"] < 0.8 * plain["datacenter_llm.tpot_p50_ms"])
    assert np.all(spec["datacenter_llm.max_rate_rps"] >= plain["datacenter_llm.max_rate_rps"] * (1 - 1e-9))


def test_a_lone_prompt_on_attention_dp_ranks_costs_a_whole_rank_step():
    """Mixtral-8x7B on 8 H100s, tp 1 × ep 8 (attention data parallel): one prompt's chunk runs on the
    rank holding its KV, so its prefill costs at least the operator model's spread-out chunk and at most
    the step where every rank prefills a chunk; t_prefill_extra_s carries the difference and is 0
    without attention DP. The routed-expert operator names the split relies on exist in the MoE block."""
    from dse.evaluate.serving import EXPERT_COMPUTE_OPS, fit_engine
    from dse.evaluate.steps import Builders
    from dse.model.calibration import load_calibration
    from dse.validate.predict import hw_view
    from dse.workloads.modelfile import load_model_shape
    from dse.workloads.precision import parse_precision

    shape, prec, cal = load_model_shape("Mixtral-8x7B"), parse_precision("fp8"), load_calibration()
    hw = hw_view("H100-SXM", 8)
    chunk = 4096
    lone = Builders.llm(shape, "prefill", 1, chunk, chunk, 1, prec, 8)
    assert set(EXPERT_COMPUTE_OPS) <= set(lone.ops.name)
    dp = fit_engine(shape, prec, hw, cal, 1, 1, 8, 64, 1024, chunk=chunk)
    tp = fit_engine(shape, prec, hw, cal, 8, 1, 1, 64, 1024, chunk=chunk)
    assert dp.t_prefill_extra_s[0] > 0 and tp.t_prefill_extra_s[0] == 0

    def step(s):
        from dse.evaluate.mapping import ComboCache
        return float(ComboCache(s.ops, hw, cal).get(np.zeros(1, int), np.arange(1)).time_s[0])
    spread = step(lone)
    every = step(Builders.llm(shape, "prefill", 8, chunk, chunk, 1, prec, 8))
    t = float(dp.iteration_time_s(0, chunk, chunk, prefill_tokens=chunk)[0])
    assert spread * (1 - 1e-6) < t <= every * (1 + 1e-6)
