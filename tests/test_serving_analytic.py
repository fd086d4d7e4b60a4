"""Analytical serving model against the simulator and against hand-computed and literature cases."""

import numpy as np
import pytest

from dse.serving import analytic as an
from dse.serving.engine import DisaggFleet, EngineCoeffs, default_probes, fit_from_probes, with_speculation
from dse.serving.sim import simulate, simulate_disagg
from dse.workloads.serving import ServingWorkload


def relative_errors(m, r) -> np.ndarray:
    """Analytic / simulated - 1 for TTFT p50, TPOT p50, TTFT p99, TPOT p99 (m: analytic model, r: steady
    simulation result)."""
    sim = [np.percentile(r.ttft_s, 50), np.percentile(r.tpot_s, 50),
           np.percentile(r.ttft_s, 99), np.percentile(r.tpot_s, 99)]
    ana = [m.ttft_quantile(0.5)[0], m.tpot_quantile(0.5)[0], m.ttft_quantile(0.99)[0], m.tpot_quantile(0.99)[0]]
    return np.array(ana) / np.array(sim) - 1.0


def _lu(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _dist(rng, mean):
    kind = ("fixed", "uniform", "lognormal")[rng.integers(3)]
    if kind == "fixed":
        return {"kind": "fixed", "tokens": max(1, round(mean))}
    if kind == "uniform":
        return {"kind": "uniform", "min_tokens": max(1, round(mean * 0.5)), "max_tokens": max(2, round(mean * 1.5))}
    s = rng.uniform(0.3, 0.7)
    return {"kind": "lognormal", "median_tokens": mean * np.exp(-s * s / 2), "sigma": s, "max_tokens": round(mean * 6)}


def random_case(seed: int):
    """A random engine (memory- to compute-bound steps, chunk 1k-8k, 1 in 5 speculative) and workload
    (prompts 64-1024, outputs 64-256 tokens on average, prefix hits) at 10-40 % of its saturation rate."""
    rng = np.random.default_rng(seed)
    a = _lu(rng, 3e-3, 30e-3)
    e = EngineCoeffs(t_fixed_s=a, t_per_seq_s=a * rng.uniform(0, 0.004), t_per_token_s=_lu(rng, 5e-6, 5e-5),
                     t_per_kv_token_s=_lu(rng, 1e-10, 1e-8), max_batch=512,
                     chunk_tokens=int(rng.choice([1024, 2048, 4096, 8192])), kv_capacity_tokens=5_000_000)
    if rng.uniform() < 0.2:
        e = with_speculation(e, int(rng.integers(2, 5)), rng.uniform(0.5, 0.85), a * 0.1, 0.0)
    w = ServingWorkload(arrival_rate_rps=1.0, prompt_tokens=_dist(rng, _lu(rng, 64, 1024)),
                        output_tokens=_dist(rng, _lu(rng, 64, 256)),
                        prefix_cache_hit_rate=float(rng.choice([0.0, rng.uniform(0, 0.6)])))
    u = rng.uniform(0.1, 0.4)
    sat = an.saturation_rate_rps(lambda r: an.colocated(e, w, r), 1)[0]
    return e, ServingWorkload.model_validate(w.model_dump() | {"arrival_rate_rps": u * sat})


@pytest.mark.slow
def test_analytic_agrees_with_simulator_over_100_random_cases():
    """p50 within 10 %, p99 within 20 % for TTFT and TPOT in every one of 100 cases (simulator: 4,000
    Poisson requests, the first 10 % dropped as warm-up; fewer leave ~10 requests above the p99, whose
    sampling error alone is ±10-15 %). Measured: median |error| 1.6 % / 3.3 % (TTFT p50/p99) and
    0.4 % / 1.9 % (TPOT p50/p99); worst 5.2 % / 15.5 % and 2.8 % / 9.6 %. Seeds 100-199 (not tuned
    on): worst 9.2 % / 17.6 % and 2.0 % / 11.6 %."""
    errs = []
    for seed in range(100):
        e, w = random_case(seed)
        r = simulate(e, w, 4000, seed=seed).steady()
        m = an.colocated(e, w)
        errs.append(relative_errors(m, r))
    errs = np.abs(np.array(errs))
    outside = [(i, np.round(x, 3).tolist()) for i, x in enumerate(errs) if (x[:2] > 0.10).any() or (x[2:] > 0.20).any()]
    assert not outside, f"outside 10 % (p50) / 20 % (p99): {outside}"
    assert np.median(errs, axis=0).max() < 0.04


def test_one_request_on_an_idle_engine_ttft_is_its_prefill():
    e = EngineCoeffs(t_fixed_s=0.01, t_per_seq_s=0, t_per_token_s=1e-5, t_per_kv_token_s=1e-8, max_batch=8,
                     chunk_tokens=2048, kv_capacity_tokens=100_000)
    w = ServingWorkload(arrival_rate_rps=1e-6, prompt_tokens={"kind": "fixed", "tokens": 5000},
                        output_tokens={"kind": "fixed", "tokens": 1})
    m = an.colocated(e, w)
    hand = 3 * 0.01 + 1e-5 * 5000 + 1e-8 * (2048 + 4096 + 5000)   # three chunks
    assert m.ttft_quantile(0.5)[0] == pytest.approx(hand, rel=1e-3)
    assert m.ttft_quantile(0.99)[0] == pytest.approx(hand, rel=1e-3)


def test_decode_batch_follows_littles_law_like_the_simulator():
    e = EngineCoeffs(t_fixed_s=0.008, t_per_seq_s=1e-5, t_per_token_s=2e-5, t_per_kv_token_s=5e-9, max_batch=512,
                     chunk_tokens=4096, kv_capacity_tokens=5_000_000)
    w = ServingWorkload(arrival_rate_rps=6, prompt_tokens={"kind": "uniform", "min_tokens": 100, "max_tokens": 900},
                        output_tokens={"kind": "uniform", "min_tokens": 50, "max_tokens": 350})
    r = simulate(e, w, 1500, seed=4)
    m = an.colocated(e, w)
    assert m.decode_batch[0] == pytest.approx(r.decode_integral / r.end_s, rel=0.05)


def test_speculation_wins_when_decode_is_memory_bound_and_loses_when_compute_bound():
    """Same draft (k = 4, α = 0.7, draft step = 5 % of the fixed cost): at a small batch with the
    weights read dominating the step it cuts TPOT; at a large batch where per-token compute
    dominates, verifying k+1 tokens per sequence costs more than the accepted tokens save."""
    w_low = ServingWorkload(arrival_rate_rps=0.5, prompt_tokens={"kind": "fixed", "tokens": 256},
                            output_tokens={"kind": "fixed", "tokens": 256})
    mem = EngineCoeffs(t_fixed_s=0.020, t_per_seq_s=1e-5, t_per_token_s=1e-5, t_per_kv_token_s=1e-9,
                       max_batch=512, chunk_tokens=4096, kv_capacity_tokens=5_000_000)
    comp = EngineCoeffs(t_fixed_s=0.002, t_per_seq_s=1e-5, t_per_token_s=1e-4, t_per_kv_token_s=1e-9,
                        max_batch=512, chunk_tokens=8192, kv_capacity_tokens=5_000_000)
    w_high = w_low.model_copy(update={"arrival_rate_rps": 12.0})
    for e, w, wins in ((mem, w_low, True), (comp, w_high, False)):
        spec = with_speculation(e, 4, 0.7, draft_t_fixed_s=0.05 * float(e.t_fixed_s[0]))
        plain_tpot = an.colocated(e, w).tpot_quantile(0.5)[0]
        spec_tpot = an.colocated(spec, w).tpot_quantile(0.5)[0]
        assert (spec_tpot < 0.8 * plain_tpot) if wins else (spec_tpot > 1.2 * plain_tpot)
        sim_plain = np.median(simulate(e, w, 300, seed=1).tpot_s)
        sim_spec = np.median(simulate(spec, w, 300, seed=1).tpot_s)
        assert (sim_spec < sim_plain) if wins else (sim_spec > sim_plain)


ENGINE = EngineCoeffs(t_fixed_s=0.012, t_per_seq_s=2e-5, t_per_token_s=4e-5, t_per_kv_token_s=2e-8, max_batch=256,
                      chunk_tokens=2048, kv_capacity_tokens=2_000_000, kv_bytes_per_token=160e3)


def _best_rates(w, engines=4):
    """Max SLO rate of `engines` co-located engines vs the best prefill/decode split of the same engines."""
    co = an.colocated_summary(ENGINE, w, replicas=engines)["max_rate_rps"][0]
    splits = {p: an.disagg_summary(DisaggFleet(ENGINE, ENGINE, p, engines - p, link_gbps=50.0, link_latency_s=1e-3),
                                   w)["max_rate_rps"][0] for p in range(1, engines)}
    p = max(splits, key=splits.get)
    return co, splits[p], p


def test_disaggregation_wins_for_long_prompts_with_strict_slos_and_loses_for_short_loose_ones():
    """DistServe / Splitwise: separating prefill from decode pays off when long prefills interrupt
    decoding under tight latency targets, and costs capacity (KV transfer, a split pool) otherwise."""
    long = ServingWorkload(arrival_rate_rps=1, prompt_tokens={"kind": "fixed", "tokens": 8192},
                           output_tokens={"kind": "fixed", "tokens": 128}, ttft_ms={"p99": 1500}, tpot_ms={"p99": 25})
    short = ServingWorkload(arrival_rate_rps=1, prompt_tokens={"kind": "fixed", "tokens": 256},
                            output_tokens={"kind": "fixed", "tokens": 256}, ttft_ms={"p99": 5000},
                            tpot_ms={"p99": 200})
    co, dis, p = _best_rates(long)
    assert dis > 1.3 * co
    co_s, dis_s, _ = _best_rates(short)
    assert co_s > 1.05 * dis_s
    # the simulator agrees at a rate between the two: co-location misses the TPOT SLO, the split meets both
    rate = (co + dis) / 2
    wl = long.model_copy(update={"arrival_rate_rps": rate})
    r_co = simulate(ENGINE, wl, 800, seed=2, replicas=4).steady()
    r_dis = simulate_disagg(DisaggFleet(ENGINE, ENGINE, p, 4 - p, link_gbps=50.0, link_latency_s=1e-3), wl, 800,
                            seed=2).steady()
    assert np.percentile(r_co.tpot_s, 99) > 0.025
    assert np.percentile(r_dis.tpot_s, 99) < 0.025 and np.percentile(r_dis.ttft_s, 99) < 1.5


def test_max_rate_is_where_the_slos_stop_holding():
    w = ServingWorkload(arrival_rate_rps=3, prompt_tokens={"kind": "lognormal", "median_tokens": 600, "sigma": 0.6},
                        output_tokens={"kind": "uniform", "min_tokens": 50, "max_tokens": 250},
                        ttft_ms={"p50": 150, "p99": 800}, tpot_ms={"p99": 30})
    e = EngineCoeffs(t_fixed_s=[0.008, 0.012], t_per_seq_s=1e-5, t_per_token_s=2e-5, t_per_kv_token_s=5e-9,
                     max_batch=512, chunk_tokens=2048, kv_capacity_tokens=5_000_000)
    s = an.colocated_summary(e, w)
    top = s["max_rate_rps"]
    assert top[0] > top[1] > 0                       # a slower step serves fewer requests in SLO
    assert an.slo_met(an.colocated(e, w, top * 0.98), w).all()
    assert not an.slo_met(an.colocated(e, w, top * 1.05), w).any()
    assert np.all(s["goodput_rps"] <= s["rate_rps"] + 1e-12)


def test_concurrency_gives_the_closed_loop_rate_of_the_simulator():
    e = EngineCoeffs(t_fixed_s=0.01, t_per_seq_s=1e-5, t_per_token_s=2e-5, t_per_kv_token_s=5e-9, max_batch=512,
                     chunk_tokens=2048, kv_capacity_tokens=5_000_000)
    w = ServingWorkload(concurrency=16, prompt_tokens={"kind": "fixed", "tokens": 500},
                        output_tokens={"kind": "fixed", "tokens": 100})
    rate = an.colocated_summary(e, w)["rate_rps"][0]
    r = simulate(e, w, 800, seed=0)
    assert rate == pytest.approx(len(r.arrival_s) / r.end_s, rel=0.1)


def test_fit_from_probes_recovers_linear_coefficients():
    truth = np.array([[0.01, 0.02], [1e-5, 3e-5], [2e-5, 1e-5], [1e-8, 4e-8]])   # (4 coefficients, 2 designs)
    probes = default_probes(batch=64, chunk_tokens=2048, context_tokens=1000)
    times = np.column_stack([np.ones(4), probes]) @ truth
    e = fit_from_probes(probes, times, max_batch=64, chunk_tokens=2048, kv_capacity_tokens=10**6)
    got = np.vstack([e.t_fixed_s, e.t_per_seq_s, e.t_per_token_s, e.t_per_kv_token_s])
    assert np.allclose(got, truth, rtol=1e-6, atol=1e-12)


def test_prefill_extra_is_charged_on_prompt_tokens_only_by_both_models():
    """t_prefill_extra_s (a lone prompt on one attention-DP rank) lengthens a prompt's prefill by
    extra × its tokens (hand-computed TTFT on an idle engine) and leaves a decode-only step alone; under
    load the analytic model still agrees with the simulator (p50 within 10 %)."""
    base = dict(t_fixed_s=0.01, t_per_seq_s=0, t_per_token_s=1e-5, t_per_kv_token_s=1e-8, max_batch=8,
                chunk_tokens=2048, kv_capacity_tokens=100_000)
    e = EngineCoeffs(**base, t_prefill_extra_s=3e-5)
    assert e.iteration_time_s(4, 4, 400)[0] == EngineCoeffs(**base).iteration_time_s(4, 4, 400)[0]
    assert e.iteration_time_s(0, 100, 100, prefill_tokens=100)[0] == pytest.approx(
        EngineCoeffs(**base).iteration_time_s(0, 100, 100)[0] + 3e-3)
    w = ServingWorkload(arrival_rate_rps=1e-6, prompt_tokens={"kind": "fixed", "tokens": 5000},
                        output_tokens={"kind": "fixed", "tokens": 1})
    hand = 3 * 0.01 + (1e-5 + 3e-5) * 5000 + 1e-8 * (2048 + 4096 + 5000)   # three chunks
    assert an.colocated(e, w).ttft_quantile(0.5)[0] == pytest.approx(hand, rel=1e-3)
    assert np.median(simulate(e, w.model_copy(update={"arrival_rate_rps": 0.01}), 20, seed=0).ttft_s) == \
        pytest.approx(hand, rel=1e-9)
    busy = EngineCoeffs(**(base | {"max_batch": 256, "kv_capacity_tokens": 5_000_000}), t_prefill_extra_s=2e-5)
    w = ServingWorkload(arrival_rate_rps=1.0, prompt_tokens={"kind": "uniform", "min_tokens": 200, "max_tokens": 1200},
                        output_tokens={"kind": "uniform", "min_tokens": 64, "max_tokens": 256})
    sat = an.saturation_rate_rps(lambda r: an.colocated(busy, w, r), 1)[0]
    w = w.model_copy(update={"arrival_rate_rps": 0.3 * sat})
    err = relative_errors(an.colocated(busy, w), simulate(busy, w, 4000, seed=3).steady())
    assert np.all(np.abs(err[:2]) < 0.10), err


def test_saturated_engine_without_fixed_step_time_is_saturated_without_nan():
    """A design whose engine has no fixed step time and a huge per-token time (it cannot serve) saturates at
    any rate; the model says so without a 0/0 (tb = mu1 = 0 once the queue is infinite)."""
    e = EngineCoeffs(t_fixed_s=0.0, t_per_seq_s=0, t_per_token_s=3.7e10, t_per_kv_token_s=1e-8, max_batch=8,
                     chunk_tokens=2048, kv_capacity_tokens=100_000)
    w = ServingWorkload(arrival_rate_rps=0.01, prompt_tokens={"kind": "fixed", "tokens": 500},
                        output_tokens={"kind": "fixed", "tokens": 10})
    with np.errstate(all="raise"):
        m = an.colocated(e, w)
    assert bool(m.saturated[0])
