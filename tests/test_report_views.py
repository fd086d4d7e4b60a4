"""Chart builders and their data: run-folder reading, thinning, per-view tables, and that every axis of the
compiled page has a title (with a unit on continuous axes). Synthetic frames stand in for the model."""

from __future__ import annotations

import json
import warnings

import altair as alt
import numpy as np
import polars as pl
import pytest

from dse.errors import DseUserError
from dse.pareto import hypervolume, nondominated_mask
from dse.report import demo
from dse.report.breakdown_view import COMPONENTS, attribute_time, breakdown_chart
from dse.report.composition_view import composition_table, varying_knobs
from dse.report.convergence_view import convergence_table
from dse.report.labels import safe, title_of, unit_of
from dse.report.pareto_view import pair_front, pareto_explorer, use_log
from dse.report.roofline_view import design_param, merge_roofs, roof_lines, roofline_chart, scenario_param
from dse.report.rundata import front_mask, load_run, load_runs, plot_frame, resolve_objectives, round_sig, thin
from dse.report.spec import BreakdownView, Objective, ParetoView, RooflineView

OBJS = [Objective(**o) for o in demo.OBJECTIVES]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return demo.write_run(tmp_path_factory.mktemp("run") / "demo", 3000, seed=5)


def _to_dict(chart) -> dict:
    with warnings.catch_warnings(), alt.data_transformers.disable_max_rows():
        warnings.simplefilter("ignore", UserWarning)
        return chart.to_dict()


# ----------------------------------------------------------------- labels


def test_labels_and_units():
    assert safe("chip.process_node") == "chip__process_node"
    assert unit_of("local_llm.tpot_ms") == "ms"
    assert unit_of("system_cost_usd") == "US$"
    assert unit_of("vision_cnn.throughput", images=True) == "images/s"
    assert unit_of("local_llm.throughput") == "tokens/s"
    assert title_of("local_llm.tpot_ms") == "local_llm: time per output token (ms)"
    assert title_of("power_w", {"power_w": "Wall power (kW)"}) == "Wall power (kW)"
    assert "(" in title_of("mix.throughput") and "(" in title_of("tco_usd_per_mtok")


# ----------------------------------------------------------------- run folders and thinning


def test_load_run_and_errors(run_dir, tmp_path):
    run = load_run(run_dir)
    assert run.name == "demo" and run.sampler == "nsga2" and len(run.results) == 3000
    assert [o.metric for o in run.objectives()] == [o["metric"] for o in demo.OBJECTIVES]
    with pytest.raises(DseUserError, match="no results.parquet"):
        load_run(tmp_path)
    (tmp_path / "results.parquet").write_text("not parquet")
    with pytest.raises(DseUserError, match="cannot read"):
        load_run(tmp_path)
    runs = load_runs([run_dir, run_dir])
    assert [r.name for r in runs] == ["demo", "demo-2"]


def test_objectives_must_exist(run_dir):
    runs = load_runs([run_dir])
    with pytest.raises(DseUserError, match="no column nope"):
        resolve_objectives(runs, [Objective(metric="nope", direction="minimize")])
    assert resolve_objectives(runs, None) == OBJS


def test_front_mask_computed_when_missing(run_dir):
    df = load_run(run_dir).results
    stored = front_mask(df, OBJS)
    computed = front_mask(df.drop("pareto"), OBJS)
    assert stored.tolist() == computed.tolist() and stored.sum() > 10


def test_thin_keeps_front_and_samples_dominated(run_dir):
    run = load_run(run_dir)
    t = thin(run, OBJS, 500)
    feas = run.results["feasible"].to_numpy()
    assert t.total == 3000 and t.feasible == int(feas.sum())
    assert t.front_shown == t.front and t.front + t.dominated_shown == 500 == len(t.frame)
    assert t.frame["feasible"].all()
    assert t.frame["pareto"].sum() == t.front
    big = thin(run, OBJS, 100_000)
    assert len(big.frame) == t.feasible and big.dominated_shown == t.feasible - t.front
    assert t.front > 50
    tiny = thin(run, OBJS, 50)  # front larger than the budget: most isolated front designs kept
    assert tiny.front_shown == 50 == len(tiny.frame) and tiny.dominated_shown == 0


def test_round_sig_and_plot_frame():
    assert round_sig(np.array([123456.0, 0.000123456, 0.0, -2.71828]), 3).tolist() == [123000.0, 0.000123, 0.0, -2.72]
    df = pl.DataFrame({"chip.memory": ["a"], "x.y": [1.23456789], "keep": [1]})
    out = plot_frame([df], ["chip.memory", "x.y", "absent"])
    assert out.columns == ["chip__memory", "x__y"] and out["x__y"][0] == 1.235


# ----------------------------------------------------------------- Pareto explorer


def _plot_data(run_dir, n=800):
    run = load_run(run_dir)
    t = thin(run, OBJS, n)
    frame = t.frame.with_columns(pl.format("{}#{}", pl.col("run"), pl.col("trial")).alias("design"))
    cols = ["run", "trial", "design", "pareto", *[o.metric for o in OBJS], "power_w", "chip.process_node",
            "chip.memory", "system.num_chips", "chip.cores"]
    return plot_frame([frame], cols), cols


def test_pair_front_is_2d_nondominated():
    df = pl.DataFrame({"run": ["a"] * 5, "x": [1.0, 2.0, 3.0, 2.5, 0.5], "y": [1.0, 2.0, 3.0, 1.0, 0.2]})
    fr = pair_front(df, Objective(metric="x", direction="maximize"), Objective(metric="y", direction="minimize"))
    assert fr["x"].to_list() == [0.5, 2.5, 3.0]  # (1,1) and (2,2) are dominated by (2.5,1)


def test_use_log():
    assert use_log(np.array([1.0, 100.0]), "auto") and not use_log(np.array([1.0, 10.0]), "auto")
    assert not use_log(np.array([0.0, 100.0]), "auto") and not use_log(np.array([1.0, 1e6]), "never")
    assert use_log(np.array([1.0, 2.0]), "always")


def test_pareto_explorer_spec(run_dir):
    data, cols = _plot_data(run_dir)
    refs = pl.DataFrame({"name": ["H100-SXM"], "mix__throughput": [1.0], "system_cost_usd": [60000.0],
                         "local_llm__tpot_ms": [2.0]})
    chart, params = pareto_explorer(data, OBJS, ParetoView(), colour_fields=["chip.process_node", "chip.memory"],
                                    tooltip_fields=cols[4:], refs=refs)
    page = alt.vconcat(chart)
    page.params = [p for p in params]
    spec = _to_dict(page)
    top = {p["name"]: p for p in spec["params"]}
    assert top["brush"]["views"] == ["pareto_points_0", "pareto_points_1", "pareto_points_2"]
    assert top["pick"]["bind"] == "legend"
    assert top["colour_by"]["bind"]["options"] == ["chip__process_node", "chip__memory"]
    text = json.dumps(spec)
    assert '"interpolate": "step-before"' in text  # x = throughput is maximised
    assert '"interpolate": "step-after"' in text   # x = cost is minimised
    assert "H100-SXM" in text and '"shape": "diamond"' in text
    assert "System cost (US$)" in text and "local_llm: time per output token (ms)" in text


# ----------------------------------------------------------------- roofline and breakdown


def _ops_and_roofs():
    parts, roofs = [], []
    for d, (peak, bw, sram) in {"A": (989.0, 3.35, 30.0), "B": (200.0, 0.5, 80.0)}.items():
        for sc in ("local_llm", "vision_cnn"):
            parts.append(demo.synthetic_operators(d, peak, bw, sram, sc).with_columns(
                pl.lit(d).alias("design"), pl.lit(sc).alias("scenario")))
            roofs.append({"design": d, "scenario": sc, "precision": "bf16" if sc == "vision_cnn" else "int8",
                          "peak_tflops": peak, "mem_tbps": bw, "sram_tbps": sram})
    return pl.concat(parts), pl.DataFrame(roofs)


def test_roof_lines_follow_min_of_peak_and_bandwidth():
    _, roofs = _ops_and_roofs()
    merged = merge_roofs(roofs)
    assert len(merged) == 4 and set(merged["scenarios"]) == {"local_llm", "vision_cnn"}
    lines = roof_lines(roofs.filter(pl.col("design") == "A"), 0.1, 1e4, 20)
    mem = lines.filter(pl.col("roof") == "off-chip memory roof")
    expect = np.minimum(989.0, mem["intensity"].to_numpy() * 3.35)
    assert np.allclose(mem["tflops"].to_numpy(), expect)
    assert set(lines["roof"]) == {"off-chip memory roof", "SRAM roof"}


def test_roofline_chart_spec():
    ops, roofs = _ops_and_roofs()
    dp, sp = design_param(["A", "B"]), scenario_param(["local_llm", "vision_cnn"])
    chart = roofline_chart(ops, roofs, RooflineView(), design_pick=dp, scenario_pick=sp)
    c = alt.vconcat(chart)
    c.params = [dp.param, sp.param]
    text = json.dumps(_to_dict(c))
    assert '"type": "log"' in text and "Attainable performance (TFLOP/s per chip)" in text
    assert "knee" in text and "(datum.design === design_pick)" in text and "indexof(" in text


def test_attribute_time_sums_to_step_time():
    ops, _ = _ops_and_roofs()
    att = attribute_time(ops)
    assert set(att["component"]) <= set(COMPONENTS)
    got = att.group_by("design", "scenario").agg(pl.col("time_ms").sum()).sort("design", "scenario")
    want = ops.group_by("design", "scenario").agg((pl.col("time_s").sum() * 1e3).alias("t")).sort("design", "scenario")
    assert np.allclose(got["time_ms"].to_numpy(), want["t"].to_numpy())


def test_breakdown_chart_with_brush_fields():
    ops, _ = _ops_and_roofs()
    dp = design_param(["A", "B"])
    brush = alt.selection_interval(name="brush", encodings=["x", "y"])
    fields = pl.DataFrame({"design": ["A", "B"], "system_cost_usd": [1.0, 2.0]})
    c = breakdown_chart(ops, BreakdownView(), design_pick=dp, brush=brush, design_fields=fields)
    text = json.dumps(_to_dict(alt.vconcat(c)))
    assert "Share of step time (%)" in text and "system_cost_usd" in text and "brush" in text


# ----------------------------------------------------------------- composition and convergence


def test_composition_shares(run_dir):
    df = load_run(run_dir).results
    knobs = varying_knobs(df, ["chip.process_node", "chip.sram_mb", "system.topology", "system.num_chips"])
    assert "system.topology" not in knobs  # constant in the demo
    t = composition_table(df, df["pareto"].to_numpy(), knobs, 8)
    sums = t.group_by("knob", "group").agg(pl.col("share_pct").sum())
    assert np.allclose(sums["share_pct"].to_numpy(), 100.0)
    assert t.filter(pl.col("knob") == "chip.sram_mb")["value"].n_unique() == 8  # binned
    assert set(t.filter(pl.col("knob") == "system.num_chips")["value"]) == {"1", "2", "4", "8", "16", "64"}


def test_convergence_monotone_and_final_value(run_dir):
    runs = load_runs([run_dir])
    t = convergence_table(runs, OBJS, 15)
    hv = t["hypervolume"].to_numpy()
    assert len(t) == 15 and t["trials"][-1] == 3000
    assert (np.diff(hv) >= -1e-12).all() and 0 < hv[-1] <= 1
    # the last checkpoint equals the hypervolume of the whole feasible front in the same normalisation
    df = runs[0].results
    assert t["front"][-1] == int(front_mask(df, OBJS).sum())


def test_convergence_two_runs_share_normalisation(tmp_path):
    a = demo.write_run(tmp_path / "a", 500, seed=1, name="a")
    b = demo.write_run(tmp_path / "b", 500, seed=2, name="b", sampler="random")
    t = convergence_table(load_runs([a, b]), OBJS, 5)
    assert set(t["run"]) == {"a (nsga2)", "b (random)"}
    assert t["hypervolume"].max() <= 1.0
    Y = np.array([[1.0, 1.0]])
    assert hypervolume(Y, [2.0, 2.0]) == 1.0 and nondominated_mask(Y).all()


# ----------------------------------------------------------------- sweeps, list knobs, reference designs


def test_sweep_folder_expands_to_sub_runs(tmp_path):
    sweep = tmp_path / "sweep"
    demo.write_run(sweep / "n5", 300, seed=1, name="sweep-n5")
    demo.write_run(sweep / "n7", 300, seed=2, name="sweep-n7")
    (sweep / "run.json").write_text(json.dumps({"name": "sweep", "sweep": ["sweep-n5", "sweep-n7"],
                                                "objectives": demo.OBJECTIVES}))
    demo.synthetic_results(600).write_parquet(sweep / "results.parquet")  # merged table of the sweep
    runs = load_runs([sweep])
    assert [r.name for r in runs] == ["sweep-n5", "sweep-n7"]
    plain = load_runs([sweep / "n5"])
    assert [r.name for r in plain] == ["sweep-n5"]


def test_list_knobs_become_text():
    from dse.report.rundata import as_text

    s = pl.Series("chip.precisions", [["bf16", "fp8"], ["bf16"]])
    assert as_text(s).to_list() == ["bf16,fp8", "bf16"]
    df = pl.DataFrame({"chip.precisions": s, "feasible": [True, True]})
    t = composition_table(df, np.array([True, False]), ["chip.precisions"], 4)
    assert set(t["value"]) == {"bf16,fp8", "bf16"}


def test_reference_names():
    from dse.report.model_data import reference_names

    assert reference_names(["A100-SXM-80GB"], ["H100-SXM"]) == ["A100-SXM-80GB", "H100-SXM"]
    assert reference_names(None, ["H100-SXM"]) == ["H100-SXM"]
    assert "H100-SXM" in reference_names("all", [])


def test_operator_frame_from_the_model():
    """The roofline / breakdown adapter against the real performance model (H100 on the balanced mix)."""
    catalog = pytest.importorskip("dse.catalog")
    from dse.report.model_data import operator_frame
    from dse.workloads.scenarios import load_mix

    designs = {"H100": catalog.load_catalog_design("H100-SXM")}
    scenarios = [e.scenario for e in load_mix("balanced").scenarios]
    ops, roofs, notes = operator_frame(designs, scenarios)
    assert not notes, notes
    assert {"intensity", "attainable_tflops", "time_s", "bound", "overhead_s", "scenario", "design"} <= set(ops.columns)
    assert set(ops["scenario"]) == {s.name for s in scenarios}
    assert (roofs["peak_tflops"] > 100).all() and (roofs["mem_tbps"] > 1).all()
    # each bound's time is a column (dse.model.perf.TIME_FIELDS), and an operator's bound is its largest
    # (its overhead column holds its share of the step's fixed cost too, so overhead-bound rows are left out)
    from dse.model.perf import TIME_FIELDS

    cols = {b: f"{f}_s" for b, f in TIME_FIELDS.items()}
    assert set(cols.values()) <= set(ops.columns)
    work = ops.filter(pl.col("bound") != "overhead")
    assert len(work) > 0
    for row in work.iter_rows(named=True):
        assert row[cols[row["bound"]]] == max(row[c] for b, c in cols.items() if b != "overhead"), row
    att = attribute_time(ops)
    assert (att["time_ms"] >= 0).all() and att["time_ms"].sum() > 0
    dp, sp = design_param(["H100"]), scenario_param([s.name for s in scenarios])
    c = alt.vconcat(roofline_chart(ops, roofs, RooflineView(), design_pick=dp, scenario_pick=sp))
    c.params = [dp.param, sp.param]
    assert "roofline_ops" in json.dumps(_to_dict(c))


def test_convergence_estimate_for_big_4d_fronts():
    from dse.report.convergence_view import REF, _hv_fraction

    rng = np.random.default_rng(0)
    F = np.abs(rng.standard_normal((1500, 4)))
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    F = F[nondominated_mask(F)]
    est, flag = _hv_fraction(F)
    exact = hypervolume(F[:400], np.full(4, REF)) / REF**4
    assert flag and exact <= est + 0.02 and 0 < est < 1
    small, flag2 = _hv_fraction(F[:400])
    assert not flag2 and small == pytest.approx(exact)


def test_every_model_bound_has_its_own_breakdown_component():
    """Each bound the model gives operators (dse.model.perf.BOUNDS) is a bar of its own, with a title and a colour:
    an 8-chip Llama-2-70B's all-reduces go to "interconnect" and a wafer's mesh-bound GEMMs to "on-wafer mesh"
    (before 2026-12-03 the views keyed "comm", not the model's "interconnect", and filed that time under compute)."""
    catalog = pytest.importorskip("dse.catalog")
    from dse.model.perf import BOUNDS
    from dse.report.breakdown_view import COLOURS
    from dse.report.model_data import operator_frame
    from dse.report.roofline_view import BOUND_COLOURS, BOUND_TITLES
    from dse.workloads.scenarios import load_mix

    assert list(BOUND_TITLES) == list(BOUNDS) == list(BOUND_COLOURS)
    assert len(set(COMPONENTS)) == len(BOUNDS) and len(set(COLOURS)) == len(BOUNDS)
    dc = [e.scenario for e in load_mix("datacenter").scenarios if e.scenario.kind == "llm"][:1]
    local = [e.scenario for e in load_mix("balanced").scenarios if e.scenario.name == "local_llm"]
    h100x8 = catalog.load_catalog_design("H100-SXM").model_copy(update={"num_chips": 8})
    for label, design, scenarios, bound, title in (
            ("H100x8", h100x8, dc, "interconnect", "interconnect"),
            ("WSE-3", catalog.load_catalog_design("Cerebras-WSE-3"), local, "mesh", "on-wafer mesh")):
        ops, _, notes = operator_frame({label: design}, scenarios)
        assert not notes, notes
        want = ops.filter(pl.col("bound") == bound)
        assert len(want) > 0, (label, ops["bound"].unique().to_list())
        att = attribute_time(ops)
        got = att.filter(pl.col("component") == title)["time_ms"].sum()
        work = (want["time_s"] - want["overhead_s"]).clip(lower_bound=0).sum() * 1e3
        assert got == pytest.approx(work, rel=1e-9) and got > 0
