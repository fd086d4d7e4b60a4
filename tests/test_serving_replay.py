"""The replay (`dse.evaluate.replay.scenario_engines`, used by the dashboard and the study tests) gives
the engine of the deployment evaluate chose — prefix-cache tier, context parallelism, draft length, at
the power-capped clock — so the analytical model on it reproduces the stored metrics."""

from __future__ import annotations

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.evaluate import evaluate
from dse.evaluate.replay import replay, scenario_engines
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.serving import analytic as an
from dse.workloads.scenarios import Mix, load_mix
from test_serving_pools import LONG_PROMPT_TTFT_P99_MS  # the TTFT SLO under which the pool clearly pays

HOST_TIER = {"arrival_rate_rps": 1.0, "prompt_tokens": {"kind": "uniform", "min_tokens": 1000, "max_tokens": 7000},
             "output_tokens": {"kind": "uniform", "min_tokens": 64, "max_tokens": 512}, "prefix_cache_hit_rate": 0.5,
             "ttft_ms": {"p99": 3000}, "tpot_ms": {"p99": 50}, "prefix_cache_tokens": 3_300_000, "kv_offload": {},
             "speculation": {"k": [1, 2], "acceptance": 0.8}}
LONG_CP = {"arrival_rate_rps": 0.2, "prompt_tokens": {"kind": "uniform", "min_tokens": 32000, "max_tokens": 96000},
           "output_tokens": {"kind": "fixed", "tokens": 256}, "ttft_ms": {"p99": 4000}, "tpot_ms": {"p99": 60},
           "context_parallel": {"cp": [2, 4]}}


def _mix(serving, **scenario):
    d = load_mix("datacenter").model_dump()
    d["scenarios"][0]["scenario"]["serving"] = serving
    d["scenarios"][0]["scenario"]["ttft_ms"] = None
    d["scenarios"][0]["scenario"].update(scenario)
    return Mix.model_validate(d)


@pytest.mark.parametrize("work,column", [(HOST_TIER, "kv_offload"), (LONG_CP, "cp")])
def test_replayed_engine_reproduces_the_stored_metrics(work, column):
    tech = default_technology()
    capped = load_catalog_design("B200").model_dump()
    capped["name"], capped["chip"]["tdp_w"] = "B200-capped", 700.0    # the replay must throttle too
    designs = [load_catalog_design("H100-SXM"), type(load_catalog_design("B200")).model_validate(capped)]
    arr = DesignArrays.from_designs(designs, tech)
    mix = _mix(work)
    out = evaluate(arr, mix, tech)
    col = {k.removeprefix("datacenter_llm."): v for k, v in out.items() if k.startswith("datacenter_llm.")}
    assert np.any(col[column] > (1 if column == "cp" else 0)), col[column]    # the deployment under test is used
    sc = mix.scenarios[0].scenario
    engine, idx, engines = scenario_engines(arr, sc)
    assert sorted(idx) == [0, 1]
    got = an.summary(lambda r: an.colocated(engine, sc.serving, r, engines), sc.serving, engine.n)
    for k in ("max_rate_rps", "goodput_rps", "ttft_p99_ms", "tpot_p99_ms"):
        assert got[k] == pytest.approx(col[k][idx], rel=1e-9), k
    if column == "kv_offload":
        assert np.array_equal(engine.t_per_cached_token_s > 0, col["kv_offload"][idx] == 1)
        assert np.array_equal(engine.spec_k, col["spec_k"][idx])
    else:
        assert np.array_equal(engines * col["cp"][idx], col["dp"][idx])


SPLIT = {"arrival_rate_rps": 1.0, "prompt_tokens": {"kind": "fixed", "tokens": 8192},
         "output_tokens": {"kind": "fixed", "tokens": 256}, "ttft_ms": {"p99": 3000}, "tpot_ms": {"p99": 6},
         "disaggregation": {"link_gbps": 50, "prefill_shares": [0.25, 0.5]}}


def _stored(out, name):
    return {k.removeprefix(name + "."): v for k, v in out.items() if k.startswith(name + ".")}


def _same_as_stored(r, sc, col):
    got = an.summary(lambda rate: r.model(sc.serving, rate), sc.serving, r.engine.n)
    for k in ("max_rate_rps", "goodput_rps", "ttft_p99_ms", "tpot_p99_ms", "ttft_p50_ms", "tpot_p50_ms"):
        assert got[k] == pytest.approx(col[k][r.idx], rel=1e-9), k
    assert np.array_equal(r.prefill_replicas, col["prefill_replicas"][r.idx])


def test_replay_splits_the_designs_own_replicas_as_evaluate_chose():
    """8k prompts under a 6 ms TPOT (Llama-3-8B): evaluate splits each design's replicas into prefill and
    decode; the replay's fleet is that split (decode = dp − prefill replicas, same replica chips) and
    reproduces the stored metrics; the co-located engine alone (scenario_engines) does not."""
    tech = default_technology()
    arr = DesignArrays.from_designs([load_catalog_design(n) for n in ("H100-SXM", "B200")], tech)
    mix = _mix(SPLIT, model="Llama-3-8B")
    sc = mix.scenarios[0].scenario
    col = _stored(evaluate(arr, mix, tech), sc.name)
    r = replay(arr, sc)
    assert r.disaggregated.all() and not r.pool_design.any(), col["prefill_replicas"]
    assert np.array_equal(r.prefill_replicas + r.decode_replicas, col["dp"][r.idx])
    assert np.array_equal(r.prefill_replica_chips, r.replica_chips)
    _same_as_stored(r, sc, col)
    co = an.summary(lambda rate: an.colocated(r.engine, sc.serving, rate, r.engines), sc.serving, r.engine.n)
    assert np.all(co["max_rate_rps"] < col["max_rate_rps"][r.idx])


def test_replay_uses_the_searched_prefill_pool_and_deployment_knobs():
    """A study's `prefill.*` design (a compute-rich H100 variant) and `serving.*` knobs: the replayed fleet
    has the pool's replicas prefilling for all of the design's replicas, its chips as evaluate counted
    them, and the stored metrics; without the knobs the replay gives other metrics (they matter)."""
    tech = default_technology()
    h = load_catalog_design("H100-SXM").model_dump()
    h["name"], h["chip"] = "compute-rich", h["chip"] | {"cores": 264, "memory_stacks": 3, "dies": 2}
    pool = DesignArrays.from_designs([type(load_catalog_design("H100-SXM")).model_validate(h)], tech)
    arr = DesignArrays.from_designs([load_catalog_design("H100-SXM")], tech)
    long = {"arrival_rate_rps": 0.3, "prompt_tokens": {"kind": "fixed", "tokens": 32000},
            "output_tokens": {"kind": "fixed", "tokens": 256}, "ttft_ms": {"p99": LONG_PROMPT_TTFT_P99_MS},
            "tpot_ms": {"p99": 100},
            "disaggregation": {"prefill_shares": [0.5]}}
    mix = _mix(long)
    sc = mix.scenarios[0].scenario
    dep = {"serving.chunk_tokens": np.array([4096.0]), "serving.max_batch": np.array([64.0])}
    col = _stored(evaluate(arr, mix, tech, prefill=pool, deployment=dep), sc.name)
    r = replay(arr, sc, prefill=pool, deployment=dep)
    assert r.pool_design.all() and np.array_equal(r.decode_replicas, col["dp"][r.idx])
    assert np.array_equal(r.prefill_replicas * r.prefill_replica_chips, col["prefill_chips"][r.idx])
    assert np.all(r.engine.chunk_tokens == 4096) and np.all(r.engine.max_batch == 64)
    _same_as_stored(r, sc, col)
    plain = replay(arr, sc)
    assert not np.allclose(an.summary(lambda rate: plain.model(sc.serving, rate), sc.serving, 1)["max_rate_rps"],
                           col["max_rate_rps"][r.idx])
