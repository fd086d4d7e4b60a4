"""The analytical model of a disaggregated fleet (prefill pool and decode pool) against the simulator over
random engines × workloads, as tests/test_serving_analytic.py does for co-located engines."""

from __future__ import annotations

import numpy as np
import pytest

from dse.serving import analytic as an
from dse.serving.engine import DisaggFleet, EngineCoeffs
from dse.serving.sim import simulate_disagg
from dse.workloads.serving import ServingWorkload

from test_serving_analytic import _dist, _lu, relative_errors


def random_fleet(seed: int):
    """A random engine (as test_serving_analytic.random_case, without speculation) in a fleet of 1-3
    prefill and 1-3 decode engines, prompts 64-16k tokens on average (short ones share a step, long ones
    take several chunks), at 10-40 % of the fleet's saturation rate."""
    rng = np.random.default_rng(seed)
    a = _lu(rng, 3e-3, 30e-3)
    e = EngineCoeffs(t_fixed_s=a, t_per_seq_s=a * rng.uniform(0, 0.004), t_per_token_s=_lu(rng, 5e-6, 5e-5),
                     t_per_kv_token_s=_lu(rng, 1e-10, 1e-8), max_batch=512,
                     chunk_tokens=int(rng.choice([1024, 2048, 4096, 8192])), kv_capacity_tokens=50_000_000,
                     kv_bytes_per_token=_lu(rng, 3e4, 3e5))
    w = ServingWorkload(arrival_rate_rps=1.0, prompt_tokens=_dist(rng, _lu(rng, 64, 16384)),
                        output_tokens=_dist(rng, _lu(rng, 64, 256)),
                        prefix_cache_hit_rate=float(rng.choice([0.0, rng.uniform(0, 0.6)])))
    fleet = DisaggFleet(e, e, int(rng.integers(1, 4)), int(rng.integers(1, 4)), 50.0, 1e-3)
    sat = an.saturation_rate_rps(lambda r: an.disaggregated(fleet, w, r), 1)[0]
    return fleet, w.model_copy(update={"arrival_rate_rps": rng.uniform(0.1, 0.4) * sat})


@pytest.mark.slow
def test_disaggregated_analytic_agrees_with_the_simulator_over_random_fleets():
    """p99 within 20 % and p50 within 15 % for TTFT and TPOT in all 60 cases, median |error| < 5 %.
    Measured: median 1.1 % / 4.7 % (TTFT p50/p99), 0.1 % / 0.4 % (TPOT); worst 12.9 % / 19.3 % and
    1.0 % / 4.0 % (before the prefill-only busy fraction and the budget cap on co-scheduled prompts:
    14.9 % / 19.3 %). The p50 misses of 10-13 % (2 cases: fixed prompts shorter than the chunk, the
    p50 just above the idle engine's own prefill) come from prompts queued ahead of an arrival, which share
    its step but are charged as M/G/1 backlog work (t_b per chunk of tokens each)."""
    errs = []
    for seed in range(60):
        fleet, w = random_fleet(seed)
        r = simulate_disagg(fleet, w, 4000, seed=seed).steady()
        m = an.disaggregated(fleet, w)
        errs.append(relative_errors(m, r))
    errs = np.abs(np.array(errs))
    print("median", np.round(np.median(errs, axis=0), 3), "max", np.round(errs.max(axis=0), 3))
    outside = [(i, np.round(x, 3).tolist()) for i, x in enumerate(errs) if (x[:2] > 0.15).any() or (x[2:] > 0.20).any()]
    assert not outside, f"outside 15 % (p50) / 20 % (p99): {outside}"
    assert np.median(errs, axis=0).max() < 0.05


ENGINE = EngineCoeffs(t_fixed_s=0.012, t_per_seq_s=2e-5, t_per_token_s=4e-5, t_per_kv_token_s=2e-8, max_batch=256,
                      chunk_tokens=2048, kv_capacity_tokens=2_000_000, kv_bytes_per_token=160e3)


@pytest.mark.parametrize("prompt", [256, 2048, 8192])
def test_prefill_pool_ttft_at_a_third_of_its_capacity(prompt):
    """One prefill engine at 33 % of its capacity, fixed prompts: shorter than the 2048-token chunk
    (several share a step), exactly one chunk (none can join its step: an M/D/1 queue — the analytic p99
    was 24 % high while it let prompts arriving during the running step share the arrival's full chunk),
    four chunks."""
    w = ServingWorkload(arrival_rate_rps=1, prompt_tokens={"kind": "fixed", "tokens": prompt},
                        output_tokens={"kind": "fixed", "tokens": 128})
    fleet = DisaggFleet(ENGINE, ENGINE, 1, 3, 50.0, 1e-3)
    sat = an.saturation_rate_rps(lambda r: an.disaggregated(fleet, w, r), 1)[0]
    w = w.model_copy(update={"arrival_rate_rps": sat / 3})
    r = simulate_disagg(fleet, w, 6000, seed=1).steady()
    m = an.disaggregated(fleet, w)
    assert m.ttft_quantile(0.5)[0] == pytest.approx(np.quantile(r.ttft_s, 0.5), rel=0.10)
    assert m.ttft_quantile(0.99)[0] == pytest.approx(np.quantile(r.ttft_s, 0.99), rel=0.15)


@pytest.mark.slow
def test_pools_of_their_own_plans_agree_with_the_simulator():
    """The disaggregated rows' fleet (dse validate, DeepSeek-V3 fp8 on B200): three TEP4 prefill engines
    (tp 4) feeding one DEP8 decode engine (tp 1 × ep 8, attention data parallel), each fitted from the
    operator model for its own plan. Analytic vs simulated TPOT p50/p99 within 5 % at 20 % and 60 % of
    saturation, TTFT p50/p99 within 10 %/20 % at 20 %. Measured (10,000 requests): TPOT within 0.5 %;
    TTFT +0.0 %/−10 % at 20 %, but +15/+19 % at 40 % and +32/+32 % at 80 % (fixed 4,096-token prompts two
    to a 8,192-token chunk: the analytic prefill-only engine overstates the wait there, as in the random
    fleets above)."""
    from dataclasses import replace

    from dse.validate import serving as sv

    m = next(r for r in sv.load_serving() if r.kind == "disaggregated")
    w = m.workload(arrival_rate_rps=1.0)
    ctx = sv.mean_context(w)

    def engine(tp, ep):
        e = sv._fit(m.hardware, tp, ep, m.model, m.precision, m.software_class, m.max_batch * ep, ctx)
        return replace(e, t_fixed_s=e.t_fixed_s + sv.STEP_OVERHEAD_S)
    pre, dec = engine(4, 1), engine(1, 8)
    assert pre.t_prefill_extra_s[0] == 0 < dec.t_prefill_extra_s[0]
    fleet = DisaggFleet(pre, dec, 3, 1, m.link_gbps, sv.KV_LINK_LATENCY_S)
    sat = an.saturation_rate_rps(lambda r: an.disaggregated(fleet, w, r), 1)[0]
    for u in (0.2, 0.6):
        wl = w.model_copy(update={"arrival_rate_rps": u * sat})
        err = relative_errors(an.disaggregated(fleet, wl), simulate_disagg(fleet, wl, 10000, seed=1).steady())
        assert np.all(np.abs(err[[1, 3]]) < 0.05), (u, err)
        if u < 0.3:
            assert abs(err[0]) < 0.10 and abs(err[2]) < 0.20, (u, err)
