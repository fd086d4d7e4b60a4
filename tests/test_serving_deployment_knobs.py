"""Max batch and chunk size as deployment knobs a study searches (`serving.max_batch`,
`serving.chunk_tokens`, declared once in dse.evaluate.serving.DEPLOYMENT_KNOBS): evaluate fits the
engine with them, the replay sees them, search spaces check them against their bounds."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from dse.catalog import load_catalog_design
from dse.errors import ConfigError
from dse.evaluate import evaluate
from dse.evaluate.replay import scenario_engines
from dse.evaluate.deployment import DEPLOYMENT_BY_NAME
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.study.space import load_space
from dse.workloads.scenarios import load_mix

TECH = default_technology()


def test_chunk_size_trades_ttft_for_tpot_and_max_batch_caps_the_rate():
    """8 × H100 at tp8 on `mix: serving`: 512-token chunks interleave less prefill per step than 8192
    (lower p99 TPOT) but take more steps per prompt (higher TTFT); a max batch of 24 sequences caps the
    rate in SLO well below the plan's 256; unset knobs give the mapping's own numbers."""
    arr = DesignArrays.from_designs([load_catalog_design("H100-SXM")] * 3, TECH)
    dep = {"serving.chunk_tokens": np.array([512, 8192, 8192]), "serving.max_batch": np.array([256, 256, 24])}
    out = evaluate(arr, "serving", TECH, force_tp=8, deployment=dep)
    plain = evaluate(arr, "serving", TECH, force_tp=8)

    def col(o, k):
        return o[f"chat_70b.{k}"]
    assert col(plain, "batch")[0] == 256 and np.all(col(out, "tp") == 8)
    assert col(out, "tpot_p99_ms")[0] < 0.95 * col(out, "tpot_p99_ms")[1]
    assert col(out, "ttft_p50_ms")[0] > 1.1 * col(out, "ttft_p50_ms")[1]
    assert col(out, "max_rate_rps")[2] < 0.5 * col(out, "max_rate_rps")[1]
    for k in ("max_rate_rps", "ttft_p99_ms", "tpot_p99_ms"):    # 8192 and the plan's 256 are the defaults
        assert col(out, k)[1] == pytest.approx(col(plain, k)[1], rel=1e-9), k
    sc = load_mix("serving").scenarios[0].scenario
    engine, idx, _ = scenario_engines(arr, sc, deployment=dep)
    order = np.argsort(idx)
    assert list(engine.chunk_tokens[order]) == [512, 8192, 8192]
    assert list(engine.max_batch[order]) == [256, 256, 24]


def test_deployment_knobs_in_a_search_space_are_checked(tmp_path):
    base = {"name": "dep", "params": {"chip.cores": {"low": 32, "high": 64}}}
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(base | {"params": base["params"] | {
        "serving.chunk_tokens": {"low": 512, "high": 8192, "log": True}, "serving.max_batch": {"choices": [32, 256]}}}))
    space = load_space(ok)
    assert space.knobs["serving.chunk_tokens"].kind == "int"
    assert DEPLOYMENT_BY_NAME["serving.chunk_tokens"].unit == "tokens"
    for bad, needle in (({"serving.chunk_tokens": {"low": 0, "high": 100}}, "serving.chunk_tokens must be an integer in [16"),
                        ({"serving.max_batch": {"choices": [0, 8]}}, "serving.max_batch must be"),
                        ({"serving.max_batchh": {"low": 1, "high": 8}}, "serving.max_batch")):
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump(base | {"params": base["params"] | bad}))
        with pytest.raises(ConfigError) as err:
            load_space(p)
        assert needle in str(err.value.problems), err.value.problems
