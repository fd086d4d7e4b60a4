"""Dashboard uncertainty and roofline additions (issues 16.6, 14.2): error bars and P(on the front) of front
designs, the tornado of the selected design, the array-utilisation roof, one HTML shell for every page."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dse.catalog import load_catalog_design
from dse.report import demo
from dse.report.html_page import embed_page
from dse.report.page import build_dashboard, render_html
from dse.report.roofline_view import utilisation_roofs
from dse.report.rundata import front_mask, load_runs, resolve_objectives
from dse.report.spec import DashboardSpec, ParetoView, RooflineView, TornadoView
from dse.report.uncertainty_view import P_FRONT, error_columns, front_uncertainty, tornado_data
from dse.workloads.scenarios import load_mix


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return demo.write_run(tmp_path_factory.mktemp("unc") / "quick", 600, seed=3, name="quick", sampler="nsga2")


def test_front_uncertainty_columns_are_ordered_probabilities_and_cover_the_front(run):
    runs = load_runs([run])
    objs = resolve_objectives(runs, None)
    fronts = {r.name: front_mask(r.results, objs) for r in runs}
    df, notes = front_uncertainty(runs, fronts, objs, ParetoView(uncertainty_samples=16, uncertainty_designs=5000))
    assert df is not None and not notes
    trials = runs[0].results.filter(pl.Series(fronts["quick"]))["trial"].to_list()
    assert sorted(df["design"].to_list()) == sorted(f"quick#{t}" for t in trials)  # every front design
    for o in objs:
        lo, hi = error_columns(o.metric)
        assert (df[lo] <= df[hi]).all(), o.metric
    p = df[P_FRONT].to_numpy()
    assert np.all((p >= 0) & (p <= 100)) and p.max() > 0
    assert len(np.unique(p)) > 1  # the samples separate robust front designs from fragile ones


def test_front_uncertainty_cap_spreads_and_says_so(run):
    runs = load_runs([run])
    objs = resolve_objectives(runs, None)
    fronts = {r.name: front_mask(r.results, objs) for r in runs}
    df, notes = front_uncertainty(runs, fronts, objs, ParetoView(uncertainty_samples=4, uncertainty_designs=3))
    assert df.height == 3 and any("3 of" in n and "uncertainty_designs" in n for n in notes)


def test_tornado_rows_are_ranked_by_effect():
    designs = {"H100": load_catalog_design("H100-SXM")}
    from dse.model.technology import default_technology
    from dse.report.spec import Objective

    objs = [Objective(metric="local_llm.tpot_ms", direction="minimize"),
            Objective(metric="system_cost_usd", direction="minimize")]
    df, notes = tornado_data(designs, {"H100": default_technology()}, load_mix("local"), objs, top=6)
    assert df is not None and not notes
    for obj, g in df.group_by("objective"):
        g = g.sort("rank")
        best = g.group_by("rank", maintain_order=True).agg(pl.col("delta_pct").abs().max())["delta_pct"].to_list()
        assert best == sorted(best, reverse=True) and len(best) <= 6
    kinds = set(df["kind"].to_list())
    assert "knob step" in kinds and any(k.startswith("technology range") for k in kinds)
    # prices move the cost but not the time per token
    tpot = df.filter(pl.col("objective").str.contains("time per output token"))
    assert not tpot.filter(pl.col("kind").str.starts_with("technology")).height


def test_utilisation_roof_is_flops_over_compute_time():
    ops = pl.DataFrame({"design": ["a", "a", "a"], "scenario": ["s", "s", "s"], "flops": [2e12, 1e12, 5e11],
                        "compute_s": [1.0, 1.0, 0.0]})
    roofs = pl.DataFrame({"design": ["a"], "scenario": ["s"], "peak_tflops": [3.0]})
    u = utilisation_roofs(ops, roofs)
    assert u["util_tflops"].to_list() == [1.5] and u["util_pct"].to_list() == [50.0]
    assert "50 % of peak" in u["util_label"][0]


def test_dashboard_has_tornado_error_bars_and_says_what_they_are(run):
    spec = DashboardSpec(views=[ParetoView(uncertainty_samples=8), RooflineView(designs=6), TornadoView(top=4)])
    d = build_dashboard([run], spec)
    assert "tornado" in d.views and d.uncertainty
    page = render_html(d)
    assert "probability of staying on the front" in page and "tornado_bars_0" in page
    assert "pareto_errors_0_x" in page and "roofline_util" in page
    assert page.count("vegaEmbed(") == 1 and "window.dseView" in page
    off = build_dashboard([run], DashboardSpec(views=[ParetoView(uncertainty_samples=0)]))
    assert not off.uncertainty and "pareto_errors" not in render_html(off)


def test_one_html_shell_for_every_page():
    import altair as alt

    from dse.report.compare_page import render_compare_html

    chart = alt.Chart(pl.DataFrame({"x": [1]})).mark_point().encode(x="x:Q")
    a = embed_page("<t>", chart, '<div id="dse-error"></div><div id="vis"></div>')
    b = render_compare_html(chart, "cmp")
    for page in (a, b):
        assert page.count("vegaEmbed(") == 1 and "document.body.dataset.rendered = \"ok\"" in page
    assert "<title>&lt;t&gt;</title>" in a
