"""The replay (`dse.evaluate.replay.scenario_engines`, used by the dashboard and the study tests) gives
the engine of the deployment evaluate chose — prefix-cache tier, context parallelism, draft length, at
the power-capped clock — so the analytical model on it reproduces the stored metrics."""

from __future__ import annotations

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.evaluate import evaluate
from dse.evaluate.replay import scenario_engines
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.serving import analytic as an
from dse.workloads.scenarios import Mix, load_mix

HOST_TIER = {"arrival_rate_rps": 1.0, "prompt_tokens": {"kind": "uniform", "min_tokens": 1000, "max_tokens": 7000},
             "output_tokens": {"kind": "uniform", "min_tokens": 64, "max_tokens": 512}, "prefix_cache_hit_rate": 0.5,
             "ttft_ms": {"p99": 3000}, "tpot_ms": {"p99": 50}, "prefix_cache_tokens": 3_300_000, "kv_offload": {},
             "speculation": {"k": [1, 2], "acceptance": 0.8}}
LONG_CP = {"arrival_rate_rps": 0.2, "prompt_tokens": {"kind": "uniform", "min_tokens": 32000, "max_tokens": 96000},
           "output_tokens": {"kind": "fixed", "tokens": 256}, "ttft_ms": {"p99": 4000}, "tpot_ms": {"p99": 60},
           "context_parallel": {"cp": [2, 4]}}


def _mix(serving):
    d = load_mix("datacenter").model_dump()
    d["scenarios"][0]["scenario"]["serving"] = serving
    d["scenarios"][0]["scenario"]["ttft_ms"] = None
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
