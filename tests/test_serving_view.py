"""The dashboard's serving view: latency/throughput curves over the arrival rate and the pool split."""

import altair as alt
import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.model.technology import default_technology
from dse.report.serving_view import serving_chart, serving_scenario, serving_tables
from dse.workloads.scenarios import load_mix
from test_serving_pools import LONG_PROMPT_TTFT_P99_MS  # the TTFT SLO under which the pool clearly pays


@pytest.fixture(scope="module")
def tables():
    sc = serving_scenario(load_mix("serving"))
    designs = {n: load_catalog_design(n) for n in ("H100-SXM", "B200")}
    return sc, serving_tables(designs, sc, default_technology())


def test_curves_rise_with_load_and_splits_include_co_location(tables):
    sc, (curves, splits) = tables
    for name in ("H100-SXM", "B200"):
        c = curves.filter(curves["design"] == name).sort("load")
        assert c.height >= 20
        assert np.all(np.diff(c["tokens_per_s"].to_numpy()) > 0)
        for col in ("ttft_p99_ms", "tpot_p99_ms"):   # queueing: latency grows with the offered load
            v = c[col].to_numpy()
            assert v[-1] > v[0] and np.all(np.diff(v) > -1e-6 * v[:-1])
        assert (c["ttft_p99_ms"] >= c["ttft_p50_ms"]).all()
        s = splits.filter(splits["design"] == name)
        assert s.filter(s["prefill_replicas"] == 0).height == 1
        total = (s["prefill_replicas"] + s["decode_replicas"]).to_numpy()
        assert np.all(total == total[0])                               # splits of the same replicas
        assert s["max_rate_rps"].max() > 0


def test_chart_follows_the_design_dropdown(tables):
    sc, (curves, splits) = tables
    pick = alt.param(name="design", value="B200", bind=alt.binding_select(options=["H100-SXM", "B200"]))
    chart = serving_chart(curves, splits, design_pick=pick, scenario=sc.name)
    chart.params = [pick.param]                                  # as the page's _standalone does
    spec = chart.to_dict()
    text = str(spec)
    assert text.count("(datum.design === design)") >= 2          # both panels filter on the dropdown
    assert "Prefill replicas (0 = co-located)" in text and "Output tokens/s (all replicas)" in text


def test_a_study_rows_prefill_pool_and_deployment_knobs_are_replayed_and_the_split_shown():
    """A results row with `prefill.*` knobs (a compute-rich H100 variant as the prefill pool) and `serving.*`
    knobs: the view replays the deployment evaluate chose — the pool's replicas prefilling for the
    design's, with the pool's chips as evaluate counted them — marks it chosen, and its curve is that
    fleet's (its TTFT at low load is the pool's, well under the co-located design's)."""
    from dse.evaluate import evaluate
    from dse.model.arrays import DesignArrays
    from dse.workloads.scenarios import Mix

    tech = default_technology()
    d = load_mix("serving").model_dump()
    s = d["scenarios"][0]["scenario"]
    s["prompt_len"], s["output_len"] = 32000, 256
    s["serving"].update(prompt_tokens={"kind": "fixed", "tokens": 32000}, output_tokens={"kind": "fixed", "tokens": 256},
                        arrival_rate_rps=0.3, prefix_cache_hit_rate=0.0, ttft_ms={"p99": LONG_PROMPT_TTFT_P99_MS},
                        tpot_ms={"p99": 100},
                        disaggregation={"prefill_shares": [0.5]})
    mix = Mix.model_validate(d)
    sc = serving_scenario(mix)
    h100 = load_catalog_design("H100-SXM")
    row = {k: v for k, v in h100.to_flat().items() if k.startswith(("chip.", "system."))}
    row |= {"prefill.chip.cores": 264, "prefill.chip.memory_stacks": 3, "prefill.chip.dies": 2,
            "serving.chunk_tokens": 4096, "serving.max_batch": 64}
    pool = h100.model_dump()
    pool["chip"] |= {"cores": 264, "memory_stacks": 3, "dies": 2}
    stored = evaluate(DesignArrays.from_designs([h100], tech), mix, tech,
                      prefill=DesignArrays.from_designs([type(h100).model_validate(pool)], tech),
                      deployment={"serving.chunk_tokens": np.array([4096.0]), "serving.max_batch": np.array([64.0])})
    curves, splits = serving_tables({"study#1": h100, "plain": h100}, sc, tech, rows={"study#1": row})
    chosen = splits.filter(splits["chosen"] & (splits["design"] == "study#1")).row(0, named=True)
    assert chosen["prefill_pool"] == "pool design"
    assert chosen["prefill_chips"] == stored[f"{sc.name}.prefill_chips"][0] > 0
    assert chosen["max_rate_rps"] == pytest.approx(float(stored[f"{sc.name}.max_rate_rps"][0]), rel=1e-6)
    assert splits.filter(splits["design"] == "plain")["chosen"].sum() == 1
    low = curves.filter(curves["load"] == curves["load"].min())
    ttft = {r["design"]: r["ttft_p50_ms"] for r in low.iter_rows(named=True)}
    # 0.70x since the default (graph) class exposes its tensor-parallel all-reduces (comm_overlap 0, 2026-12-02):
    # they do not shrink with the pool's doubled compute
    assert ttft["study#1"] < 0.75 * ttft["plain"]
