"""Time breakdown: stacked bars of compute / off-chip memory / SRAM / interconnect / on-wafer mesh / overhead per scenario.

Each operator's time (count included) is attributed to the component that bounds it; its fixed
overhead goes to "overhead". The bars of one scenario therefore add up to its step time.
"""

from __future__ import annotations

import altair as alt
import polars as pl

from dse.report.roofline_view import BOUND_COLOURS, BOUND_TITLES
from dse.report.spec import BreakdownView

# one bar component per bound of the model (dse.model.perf.BOUNDS), overhead last
_ORDER = [b for b in BOUND_TITLES if b != "overhead"] + ["overhead"]
COMPONENTS = [BOUND_TITLES[b] for b in _ORDER]
COLOURS = [BOUND_COLOURS[b] for b in _ORDER]


def attribute_time(ops: pl.DataFrame) -> pl.DataFrame:
    """Per design × scenario × component time (ms) from operator rows (time_s, overhead_s, bound)."""
    work = ops.with_columns(
        (pl.col("time_s") - pl.col("overhead_s")).clip(lower_bound=0).alias("_work"),
        pl.col("bound").replace_strict(BOUND_TITLES).alias("component"),
    )
    bound_part = work.group_by("design", "scenario", "component").agg((pl.col("_work").sum() * 1e3).alias("time_ms"))
    over = work.group_by("design", "scenario").agg((pl.col("overhead_s").sum() * 1e3).alias("time_ms")).with_columns(
        pl.lit("overhead").alias("component"))
    out = pl.concat([bound_part, over.select(bound_part.columns)]).group_by("design", "scenario", "component").agg(
        pl.col("time_ms").sum())
    order = {c: i for i, c in enumerate(COMPONENTS)}
    return out.with_columns(pl.col("component").replace_strict(order, return_dtype=pl.Int32).alias("component_order")
                            ).sort("scenario", "design", "component_order")


def _ms_text(ms: float) -> str:
    """A step time for the bar label: `31.2 ms`, `1,716 ms`, `0.0123 ms`."""
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.3g} ms"


def breakdown_chart(ops: pl.DataFrame, view: BreakdownView, *, design_pick: alt.Parameter,
                    brush: alt.Parameter | None = None, design_fields: pl.DataFrame | None = None,
                    order: list[str] | None = None) -> alt.Chart:
    """Stacked horizontal bars, one row per design, one panel per scenario.

    `design_fields` (design + objective columns, Vega-safe names) lets the explorer's brush fade
    designs outside it; the dropdown's design gets a black outline; `order` = designs top to bottom.
    """
    if "phase" in ops.columns:  # LLM prefill and decode steps differ by orders of magnitude: separate panels
        ops = ops.with_columns(pl.when(pl.col("phase").is_not_null() & (pl.col("phase") != ""))
                               .then(pl.format("{} · {}", pl.col("scenario"), pl.col("phase")))
                               .otherwise(pl.col("scenario")).alias("scenario"))
    data = attribute_time(ops)
    if design_fields is not None and len(design_fields):
        data = data.join(design_fields, on="design", how="left")
    totals = data.group_by("design", "scenario").agg(pl.col("time_ms").sum().alias("step_ms"))
    data = data.join(totals, on=["design", "scenario"], how="left").with_columns(
        (pl.col("time_ms") / pl.col("step_ms") * 100).alias("share_pct"))
    # one row per bar is labelled with the bar's absolute step time, beside the shares
    data = data.with_columns(
        (pl.int_range(pl.len()).over("design", "scenario") == 0).alias("_first"),
        pl.col("step_ms").map_elements(_ms_text, return_dtype=pl.String).alias("step_text"))
    opacity = alt.value(0.9)
    if brush is not None:
        opacity = alt.when(brush).then(alt.value(0.95)).otherwise(alt.value(0.2))
    xfield, xtitle = ("share_pct:Q", "Share of step time (%)") if view.normalize else ("time_ms:Q", "Time per step (ms)")
    # normalised bars end at 100 %: the absolute step time is written just right of each bar
    end = alt.X("_end:Q", scale=alt.Scale(domain=[0, 100], nice=False)) if view.normalize else alt.X("step_ms:Q")
    bars = alt.Chart().mark_bar().encode(
        x=alt.X(xfield, title=xtitle, stack="zero",
                scale=alt.Scale(domain=[0, 100], nice=False) if view.normalize else alt.Undefined),
        y=alt.Y("design:N", title="Design", sort=order or None, axis=alt.Axis(labelLimit=200)),
        color=alt.Color("component:N", title="Time in", scale=alt.Scale(domain=COMPONENTS, range=COLOURS)),
        order=alt.Order("component_order:Q"),
        opacity=opacity,
        stroke=alt.when(alt.datum.design == design_pick).then(alt.value("black")).otherwise(alt.value(None)),
        strokeWidth=alt.when(alt.datum.design == design_pick).then(alt.value(2)).otherwise(alt.value(0)),
        tooltip=[
            alt.Tooltip("design:N", title="Design"), alt.Tooltip("scenario:N", title="Scenario"),
            alt.Tooltip("component:N", title="Time in"),
            alt.Tooltip("time_ms:Q", title="Time (ms per step)", format=",.4~g"),
            alt.Tooltip("share_pct:Q", title="Share (%)", format=".1f"),
            alt.Tooltip("step_ms:Q", title="Step time (ms)", format=",.4~g"),
        ],
    ).properties(width=view.width, name="breakdown_bars")
    totals_text = alt.Chart().transform_filter(alt.datum._first).transform_calculate(_end="100").mark_text(
        align="left", dx=4, fontSize=11, color="#333333").encode(
        x=end, y=alt.Y("design:N", sort=order or None), text="step_text:N",
    ).properties(name="breakdown_ms")
    return alt.layer(bars, totals_text, data=data).facet(
        row=alt.Row("scenario:N", title=None, header=alt.Header(labelAngle=0, labelOrient="top", labelAnchor="start",
                                                                 labelFontWeight="bold")),
        title=alt.Title(view.title, subtitle="Each operator's time counted where it is bound (shares of the step; "
                        "the number right of a bar is its step time in ms); outlined = picked design; "
                        "faded = outside the brush.", anchor="start", fontSize=16),
    ).resolve_scale(y="independent")
