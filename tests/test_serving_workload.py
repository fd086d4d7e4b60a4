"""Request-level serving workload: schema errors, length distributions, SLO percentiles."""

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from dse.workloads.serving import SUPPORT_POINTS, ServingWorkload, percentile_of

BASE = {"arrival_rate_rps": 2.0, "prompt_tokens": {"kind": "fixed", "tokens": 512},
        "output_tokens": {"kind": "uniform", "min_tokens": 10, "max_tokens": 30}}


def test_yaml_with_histogram_and_slos_round_trips():
    text = """
    arrival_rate_rps: 4
    prompt_tokens: {kind: histogram, tokens: [128, 1024, 8192], weights: [5, 3, 2]}
    output_tokens: {kind: lognormal, median_tokens: 200, sigma: 0.5, max_tokens: 2000}
    prefix_cache_hit_rate: 0.25
    ttft_ms: {p50: 300, p99: 2000}
    tpot_ms: {p99: 50}
    kv_block_tokens: 32
    """
    w = ServingWorkload.model_validate(yaml.safe_load(text))
    assert w.slo_quantiles("ttft") == [(0.5, 0.3), (0.99, 2.0)]
    assert w.slo_quantiles("tpot") == [(0.99, 0.05)]
    v, p = w.prompt_tokens.support()
    assert list(v) == [128, 1024, 8192] and np.allclose(p, [0.5, 0.3, 0.2])
    assert ServingWorkload.model_validate(w.model_dump()) == w


@pytest.mark.parametrize("bad, words", [
    ({"arrival_rate_rps": None}, "exactly one of"),
    ({"concurrency": 8}, "exactly one of"),
    ({"ttft_ms": {"99th": 100}}, "p50, p90, p99"),
    ({"ttft_ms": {"p99": 0}}, "> 0"),
    ({"rate": 3}, "Extra inputs"),
    ({"output_tokens": {"kind": "uniform", "min_tokens": 30, "max_tokens": 10}}, "swap"),
    ({"prompt_tokens": {"kind": "histogram", "tokens": [1, 2], "weights": [1]}}, "one weight per length"),
    ({"prompt_tokens": {"kind": "zipf", "tokens": 3}}, "kind"),
    ({"prefix_cache_hit_rate": 1.0}, "less than 1"),
])
def test_bad_input_names_the_field_and_fix(bad, words):
    with pytest.raises(ValidationError) as e:
        ServingWorkload.model_validate(BASE | bad)
    assert words in str(e.value)


def test_percentile_keys():
    assert percentile_of("p99.9") == pytest.approx(0.999)
    assert percentile_of("p50") == 0.5
    with pytest.raises(ValueError):
        percentile_of("p100")


@pytest.mark.parametrize("dist", [
    {"kind": "fixed", "tokens": 77},
    {"kind": "uniform", "min_tokens": 5, "max_tokens": 2000},
    {"kind": "lognormal", "median_tokens": 300, "sigma": 0.8, "max_tokens": 4000},
    {"kind": "histogram", "tokens": [10, 100, 1000], "weights": [1, 1, 2]},
])
def test_support_matches_samples(dist):
    """The analytical model's discrete table has the simulator's mean (within sampling error)."""
    w = ServingWorkload.model_validate(BASE | {"prompt_tokens": dist})
    v, p = w.prompt_tokens.support()
    assert v.size <= SUPPORT_POINTS and p.sum() == pytest.approx(1.0)
    x = w.prompt_tokens.sample(np.random.default_rng(0), 200_000)
    assert x.min() >= 1
    assert v @ p == pytest.approx(x.mean(), rel=0.01)


def test_prefix_cache_leaves_at_least_one_token():
    w = ServingWorkload.model_validate(BASE | {"prefix_cache_hit_rate": 0.9})
    assert list(w.computed_prompt(np.array([1, 10, 1000]))) == [1, 1, 100]
