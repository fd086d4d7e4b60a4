"""The dashboard's serving view: latency/throughput curves over the arrival rate and the pool split."""

import altair as alt
import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.model.technology import default_technology
from dse.report.serving_view import serving_chart, serving_scenario, serving_tables
from dse.workloads.scenarios import load_mix


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
