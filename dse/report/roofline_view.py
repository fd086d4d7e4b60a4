"""Roofline of one design picked in a dropdown: its operators as points under the compute roof and the
off-chip / SRAM bandwidth slopes, with the knee (peak FLOP/s ÷ off-chip bandwidth) marked."""

from __future__ import annotations

import altair as alt
import numpy as np
import polars as pl

from dse.model.perf import BOUNDS
from dse.report.spec import RooflineView

# one colour and one title per bound of the model (dse.model.perf.BOUNDS, the names OpTimes.bound gives operators)
_PALETTE = {"compute": "#4c78a8", "memory": "#e45756", "sram": "#f58518", "interconnect": "#54a24b",
            "overhead": "#9d755d", "mesh": "#b279a2"}
_TITLES = {"memory": "off-chip memory", "sram": "SRAM", "mesh": "on-wafer mesh"}  # the others' titles are their names
BOUND_COLOURS = {b: _PALETTE.get(b, "#bab0ac") for b in BOUNDS}
BOUND_TITLES = {b: _TITLES.get(b, b) for b in BOUNDS}


def design_param(designs: list[str], labels: list[str] | None = None) -> alt.Parameter:
    """Page-wide dropdown choosing the design shown by the roofline and emphasised in the breakdown."""
    return alt.param(
        name="design_pick", value=designs[0] if designs else "",
        bind=alt.binding_select(options=designs, labels=labels or designs, name="Design "),
    )


def scenario_param(scenarios: list[str]) -> alt.Parameter:
    """Dropdown restricting the roofline to one scenario ("all" shows every scenario's operators)."""
    return alt.param(
        name="scenario_pick", value=scenarios[0] if scenarios else "all",
        bind=alt.binding_select(options=["all", *scenarios], name="Roofline scenario "),
    )


def merge_roofs(roofs: pl.DataFrame) -> pl.DataFrame:
    """One row per design × distinct roof (precision, peak, bandwidths), with the scenarios sharing it."""
    if "scenario" not in roofs.columns:
        roofs = roofs.with_columns(pl.lit("").alias("scenario"))
    if "precision" not in roofs.columns:
        roofs = roofs.with_columns(pl.lit("bf16").alias("precision"))
    return roofs.group_by("design", "precision", "peak_tflops", "mem_tbps", "sram_tbps", maintain_order=True).agg(
        pl.col("scenario").str.join(",").alias("scenarios"))


def roof_lines(roofs: pl.DataFrame, lo: float = 0.05, hi: float = 1e5, n: int = 64) -> pl.DataFrame:
    """Sampled roof curves per merged roof: min(peak, intensity × bandwidth) for off-chip memory and SRAM."""
    grid = np.geomspace(lo, hi, n)
    rows = []
    for r in merge_roofs(roofs).iter_rows(named=True):
        peak = float(r["peak_tflops"])
        for roof, bw in (("off-chip memory roof", r.get("mem_tbps")), ("SRAM roof", r.get("sram_tbps"))):
            if bw and bw > 0:
                y = np.minimum(peak, grid * float(bw))
                rows += [{"design": r["design"], "scenarios": r["scenarios"], "precision": r["precision"],
                          "roof": roof, "intensity": float(x), "tflops": float(v)} for x, v in zip(grid, y)]
    return pl.DataFrame(rows, schema={"design": pl.String, "scenarios": pl.String, "precision": pl.String,
                                      "roof": pl.String, "intensity": pl.Float64, "tflops": pl.Float64})


def utilisation_roofs(ops: pl.DataFrame, roofs: pl.DataFrame) -> pl.DataFrame:
    """Per design and scenario: the array-utilisation roof, Σ FLOPs ÷ Σ compute time of its operators (the
    rate its systolic array / SIMT cores reach on these GEMM shapes: why a compute-bound operator can sit
    below the peak roof), with its share of the peak."""
    if not len(ops) or "compute_s" not in ops.columns or not len(roofs):
        return pl.DataFrame(schema={"design": pl.String, "scenario": pl.String, "util_tflops": pl.Float64,
                                    "util_pct": pl.Float64, "util_label": pl.String})
    peak = roofs.group_by("design", "scenario").agg(pl.col("peak_tflops").max())
    return (ops.filter((pl.col("compute_s") > 0) & (pl.col("flops") > 0))
            .group_by("design", "scenario", maintain_order=True)
            .agg((pl.col("flops").sum() / pl.col("compute_s").sum() / 1e12).alias("util_tflops"))
            .join(peak, on=["design", "scenario"], how="inner")
            .with_columns((pl.col("util_tflops") / pl.col("peak_tflops") * 100).alias("util_pct"))
            .with_columns(pl.format("array-utilisation roof ({}): {} % of peak", pl.col("scenario"),
                                    pl.col("util_pct").round(0).cast(pl.Int64)).alias("util_label"))
            .drop("peak_tflops"))


def utilisation_layers(pts: pl.DataFrame, roofs: pl.DataFrame, x: alt.X, lo: float, hi: float, pick, in_scenario
                       ) -> list[alt.Chart]:
    """The array-utilisation roof of the picked design per shown scenario (dotted line, labelled) and each
    operator's own ceiling (peak × its array utilisation) as a short tick above its point."""
    util = utilisation_roofs(pts, roofs)
    if not len(util):
        return []
    y = alt.Y("util_tflops:Q", scale=alt.Scale(type="log"))
    rule = alt.Chart(util).mark_rule(color="#4c78a8", strokeDash=[1, 3], strokeWidth=1.6).encode(
        y=y, tooltip=[alt.Tooltip("util_label:N", title="Roof"),
                      alt.Tooltip("util_tflops:Q", title="TFLOP/s", format=",.3~g")],
    ).transform_filter(pick).transform_filter(in_scenario).properties(name="roofline_util")
    text = alt.Chart(util).mark_text(align="left", dx=4, dy=-5, color="#4c78a8", fontSize=10).encode(
        x=alt.value(4), y=y, text="util_label:N",
    ).transform_filter(pick).transform_filter(in_scenario).properties(name="roofline_util_label")
    ceil = pts.filter((pl.col("compute_s") > 0) & (pl.col("flops") > 0)).with_columns(
        (pl.col("flops") / pl.col("compute_s") / 1e12).alias("op_ceiling_tflops"))
    ticks = alt.Chart(ceil).mark_tick(orient="horizontal", color="#4c78a8", thickness=1.5, size=12, opacity=0.8).encode(
        x=x, y=alt.Y("op_ceiling_tflops:Q", scale=alt.Scale(type="log")),
        tooltip=[alt.Tooltip("name:N", title="Operator"),
                 alt.Tooltip("op_ceiling_tflops:Q", title="Array-utilisation ceiling (TFLOP/s)", format=",.3~g")],
    ).transform_filter(pick).transform_filter(in_scenario).properties(name="roofline_util_ops")
    return [rule, text, ticks]


def roofline_chart(ops: pl.DataFrame, roofs: pl.DataFrame, view: RooflineView, *,
                   design_pick: alt.Parameter, scenario_pick: alt.Parameter, reference: str | None = None) -> alt.Chart:
    """Operators (x = FLOP per byte moved, y = attained TFLOP/s) of the dropdown's design on log axes.

    `ops`: operator rows with design and scenario; `roofs`: design, scenario, precision, peak_tflops,
    mem_tbps, sram_tbps (per chip).
    """
    pts = ops.filter((pl.col("intensity") > 0) & (pl.col("attainable_tflops") > 0))
    lo = float(pts["intensity"].min()) / 3 if len(pts) else 0.05
    hi = float(pts["intensity"].max()) * 3 if len(pts) else 1e5
    kn = merge_roofs(roofs).filter(pl.col("mem_tbps") > 0)
    if len(kn):
        knees = (kn["peak_tflops"] / kn["mem_tbps"]).to_numpy()
        lo, hi = min(lo, float(knees.min()) / 10), max(hi, float(knees.max()) * 10)
    lines = roof_lines(roofs, lo, hi)
    total = pts.group_by("design", "scenario").agg(pl.col("time_s").sum().alias("_step_s"))
    pts = pts.join(total, on=["design", "scenario"], how="left").with_columns(
        (pl.col("time_s") / pl.col("_step_s") * 100).alias("time_share_pct"),
        pl.col("bound").replace(BOUND_TITLES).alias("bound_title"),
    ).drop("_step_s")
    x = alt.X("intensity:Q", title="Arithmetic intensity (FLOP/byte moved: off-chip, or SRAM if resident)",
              scale=alt.Scale(type="log", domain=[lo, hi]))
    y = alt.Y("tflops:Q", title="Attainable performance (TFLOP/s per chip)", scale=alt.Scale(type="log"))
    pick = alt.datum.design == design_pick
    in_scenario = (scenario_pick == "all") | (alt.datum.scenario == scenario_pick)
    roof_in_scenario = (
        "scenario_pick == 'all' || indexof(',' + datum.scenarios + ',', ',' + scenario_pick + ',') >= 0")
    roofs_layer = alt.Chart(lines).mark_line(color="#222222", strokeWidth=1.6, clip=True).encode(
        x=x, y=y, strokeDash=alt.StrokeDash("roof:N", title="Roof", scale=alt.Scale(
            domain=["off-chip memory roof", "SRAM roof"], range=[[1, 0], [5, 3]])),
        detail="precision:N",
    ).transform_filter(pick).transform_filter(roof_in_scenario).properties(name="roofline_roofs")
    knee_df = kn.with_columns((pl.col("peak_tflops") / pl.col("mem_tbps")).alias("knee")).with_columns(
        pl.format("{} roof {} TFLOP/s · knee {} FLOP/B", pl.col("precision"), pl.col("peak_tflops").round(0).cast(pl.Int64),
                  pl.col("knee").round(1)).alias("knee_label"))
    knee_rule = alt.Chart(knee_df).mark_rule(color="#888888", strokeDash=[2, 2]).encode(
        x=alt.X("knee:Q", scale=alt.Scale(type="log", domain=[lo, hi])),
        tooltip=[alt.Tooltip("knee:Q", title="Knee (FLOP/byte)", format=",.1f"),
                 alt.Tooltip("precision:N", title="Compute precision")],
    ).transform_filter(pick).transform_filter(roof_in_scenario).properties(name="roofline_knee")
    knee_text = alt.Chart(knee_df).mark_text(align="left", dx=4, dy=-6, color="#444444").encode(
        x=alt.X("knee:Q", scale=alt.Scale(type="log", domain=[lo, hi])),
        y=alt.Y("peak_tflops:Q", scale=alt.Scale(type="log")), text="knee_label:N",
    ).transform_filter(pick).transform_filter(roof_in_scenario)
    points = alt.Chart(pts).mark_point(filled=True, opacity=0.85).encode(
        x=x,
        y=alt.Y("attainable_tflops:Q", scale=alt.Scale(type="log")),
        color=alt.Color("bound_title:N", title="Bound by", scale=alt.Scale(
            domain=list(BOUND_TITLES.values()), range=list(BOUND_COLOURS.values()))),
        shape=alt.Shape("scenario:N", title="Scenario"),
        size=alt.Size("time_share_pct:Q", title="Share of step time (%)", scale=alt.Scale(range=[30, 500])),
        tooltip=[
            alt.Tooltip("design:N", title="Design"), alt.Tooltip("scenario:N", title="Scenario"),
            alt.Tooltip("name:N", title="Operator"), alt.Tooltip("kind:N", title="Kind"),
            alt.Tooltip("intensity:Q", title="Intensity (FLOP/byte)", format=",.3~g"),
            alt.Tooltip("attainable_tflops:Q", title="Attained (TFLOP/s)", format=",.3~g"),
            alt.Tooltip("flops:Q", title="FLOPs", format=".3~s"),
            alt.Tooltip("time_s:Q", title="Time (s)", format=".3~e"),
            alt.Tooltip("time_share_pct:Q", title="Share of step (%)", format=".1f"),
            alt.Tooltip("bound_title:N", title="Bound by"),
            *([alt.Tooltip("phase:N", title="Phase")] if "phase" in pts.columns else []),
            *([alt.Tooltip("mapping:N", title="Mapping")] if "mapping" in pts.columns else []),
        ],
    ).transform_filter(pick).transform_filter(in_scenario).properties(name="roofline_ops")
    layers = [roofs_layer, knee_rule, knee_text, *utilisation_layers(pts, roofs, x, lo, hi, pick, in_scenario), points]
    if reference:  # the reference chip drawn under every pick, in grey: its roofs and its operators
        is_ref = alt.datum.design == reference
        ref_roofs = alt.Chart(lines).mark_line(color="#9a9a9a", strokeWidth=1.2, opacity=0.8, clip=True).encode(
            x=x, y=y, detail="precision:N",
            tooltip=[alt.Tooltip("design:N", title="Reference"), alt.Tooltip("roof:N", title="Roof")],
        ).transform_filter(is_ref).transform_filter(alt.datum.roof == "off-chip memory roof").transform_filter(
            roof_in_scenario).properties(name="roofline_ref_roofs")
        ref_pts = alt.Chart(pts).mark_point(filled=False, color="#9a9a9a", opacity=0.7, size=40).encode(
            x=x, y=alt.Y("attainable_tflops:Q", scale=alt.Scale(type="log")),
            tooltip=[alt.Tooltip("design:N", title="Reference"), alt.Tooltip("name:N", title="Operator"),
                     alt.Tooltip("attainable_tflops:Q", title="Attained (TFLOP/s)", format=",.3~g")],
        ).transform_filter(is_ref).transform_filter(in_scenario).properties(name="roofline_ref_ops")
        ref_text = alt.Chart(knee_df).mark_text(align="right", dx=-6, dy=10, color="#777777").encode(
            x=alt.X("knee:Q", scale=alt.Scale(type="log", domain=[lo, hi])),
            y=alt.Y("peak_tflops:Q", scale=alt.Scale(type="log")), text=alt.value(f"grey: {reference}"),
        ).transform_filter(is_ref).transform_filter(roof_in_scenario).properties(name="roofline_ref_label")
        layers = [ref_roofs, ref_pts, ref_text, *layers]
    subtitle = ["Click a Pareto-front point in the explorer (or use the 'Design' dropdown); point size = share of "
                "the scenario's step time;",
                "dashed grey rule = off-chip knee; blue dotted line = array-utilisation roof of the scenario (blue ticks: "
                "each operator's own)" + (f"; grey lines and rings = {reference}, for comparison." if reference else ".")]
    return alt.layer(*layers).resolve_scale(
        color="independent", shape="independent", size="independent", strokeDash="independent"
    ).properties(
        width=view.width, height=view.height,
        title=alt.Title(view.title, subtitle=subtitle, anchor="start", fontSize=16),
    )
