"""Discrete-event serving simulator: hand-computed single requests, Little's law, KV preemption."""

import numpy as np
import pytest

from dse.serving.engine import DisaggFleet, EngineCoeffs, with_speculation
from dse.serving.sim import simulate, simulate_disagg, simulate_engine
from dse.workloads.serving import ServingWorkload

A, B, C, D = 0.010, 2e-5, 1e-5, 1e-8   # fixed, per decode sequence, per token, per KV token read (s)


def engine(**kw) -> EngineCoeffs:
    args = dict(t_fixed_s=A, t_per_seq_s=B, t_per_token_s=C, t_per_kv_token_s=D, max_batch=64,
                chunk_tokens=2048, kv_capacity_tokens=1_000_000)
    return EngineCoeffs(**(args | kw))


def one(e, prompt, output, computed=None, block=16):
    computed = prompt if computed is None else computed
    return simulate_engine(e, np.array([0.5]), np.array([prompt]), np.array([computed]), np.array([output]), block)


def test_one_request_on_an_idle_engine_ttft_is_its_prefill():
    r = one(engine(), 1000, 1)
    assert r.ttft_s[0] == pytest.approx(A + C * 1000 + D * 1000)
    assert r.finish_s[0] == r.first_token_s[0]


def test_long_prompt_is_prefilled_in_chunks():
    r = one(engine(), 5000, 1)   # chunks of 2048, 2048, 904; attention reads the context so far
    assert r.ttft_s[0] == pytest.approx(3 * A + C * 5000 + D * (2048 + 4096 + 5000))


def test_decode_steps_read_the_growing_context():
    r = one(engine(), 100, 4)    # three decode steps after the first token, contexts 101..103
    steps = [A + B + C + D * ctx for ctx in (101, 102, 103)]
    assert r.tpot_s[0] == pytest.approx(sum(steps) / 3)


def test_prefix_cache_hits_skip_compute_but_not_attention():
    r = one(engine(), 1000, 1, computed=500)
    assert r.ttft_s[0] == pytest.approx(A + C * 500 + D * 1000)


def test_littles_law_holds_in_the_simulator():
    """Time-average requests in the engine = throughput × mean time in system (and for decode)."""
    w = ServingWorkload(arrival_rate_rps=8, prompt_tokens={"kind": "lognormal", "median_tokens": 400, "sigma": 0.7},
                        output_tokens={"kind": "uniform", "min_tokens": 20, "max_tokens": 200})
    r = simulate(engine(), w, 1500, seed=3)
    thr = len(r.arrival_s) / r.end_s
    assert r.in_system_integral / r.end_s == pytest.approx(thr * np.mean(r.finish_s - r.arrival_s), rel=0.02)
    assert r.decode_integral / r.end_s == pytest.approx(thr * np.mean(r.finish_s - r.first_token_s), rel=0.02)
    assert r.busy_s <= r.end_s


def test_short_kv_cache_preempts_and_still_finishes_everything():
    w = ServingWorkload(arrival_rate_rps=20, prompt_tokens={"kind": "fixed", "tokens": 500},
                        output_tokens={"kind": "fixed", "tokens": 300}, kv_block_tokens=16)
    small = simulate(engine(kv_capacity_tokens=4000), w, 400, seed=1)
    big = simulate(engine(), w, 400, seed=1)
    assert small.preemptions > 0 and big.preemptions == 0
    assert np.all(np.isfinite(small.finish_s))
    assert np.mean(small.finish_s - small.arrival_s) > np.mean(big.finish_s - big.arrival_s)


def test_speculative_steps_yield_the_expected_tokens():
    """k = 3, α = 0.6: (1 − α⁴)/(1 − α) = 2.176 tokens per verification step on average."""
    e = with_speculation(engine(), 3, 0.6)
    assert e.tokens_per_step()[0] == pytest.approx((1 - 0.6 ** 4) / 0.4)
    r = one(e, 64, 10_001)
    assert 10_000 / (r.iterations - 1) == pytest.approx(e.tokens_per_step()[0], rel=0.05)


def test_disaggregated_request_pays_prefill_then_transfer_then_decode():
    e = engine(kv_bytes_per_token=1e5)
    f = DisaggFleet(e, e, 1, 1, link_gbps=10.0, link_latency_s=0.002)
    w = ServingWorkload(arrival_rate_rps=1e-3, prompt_tokens={"kind": "fixed", "tokens": 1000},
                        output_tokens={"kind": "fixed", "tokens": 3})
    r = simulate_disagg(f, w, 1, seed=0)
    assert r.ttft_s[0] == pytest.approx(A + C * 1000 + D * 1000)
    transfer = 0.002 + 1e5 * 1000 / 10e9
    decode = sum(A + B + C + D * ctx for ctx in (1001, 1002))
    assert r.finish_s[0] - r.first_token_s[0] == pytest.approx(transfer + decode)


def test_closed_loop_keeps_concurrency_clients():
    w = ServingWorkload(concurrency=4, prompt_tokens={"kind": "fixed", "tokens": 200},
                        output_tokens={"kind": "fixed", "tokens": 50})
    r = simulate(engine(), w, 400, seed=0)
    assert r.in_system_integral / r.end_s == pytest.approx(4.0, rel=0.02)


def test_a_reserving_runtime_never_preempts_and_holds_whole_requests():
    """kv_reserve (TensorRT-LLM GUARANTEED_NO_EVICT): 4,000 KV tokens in blocks of 16 = 250 blocks; a request
    of 500 + 300 tokens reserves 50 blocks at admission, so at most 5 decode at once and none is preempted;
    the growing (vLLM) runtime admits on the prompt's 32 blocks, overcommits and preempts."""
    w = ServingWorkload(concurrency=8, prompt_tokens={"kind": "fixed", "tokens": 500},
                        output_tokens={"kind": "fixed", "tokens": 300}, kv_block_tokens=16)
    held = simulate(engine(kv_capacity_tokens=4000, kv_reserve=1), w, 200, seed=0)
    grow = simulate(engine(kv_capacity_tokens=4000), w, 200, seed=0)
    assert held.preemptions == 0 and grow.preemptions > 0
    assert np.all(np.isfinite(held.finish_s))
    assert held.decode_integral / held.end_s <= 5.0 + 1e-9
    assert grow.decode_integral / grow.end_s > held.decode_integral / held.end_s


def test_kv_reserve_is_a_flag():
    with pytest.raises(ValueError, match="kv_reserve"):
        engine(kv_reserve=2)
