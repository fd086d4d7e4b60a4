"""Pareto explorer: one scatter per objective pair, a shared brush, 2-D fronts as step lines, reference chips.

Brushing in any pair highlights the same designs in every view of the page (the brush predicate is
evaluated on each row's own objective values); clicking the legend keeps one category; the
"Colour by" dropdown switches the categorical knob used for colour and legend.
"""

from __future__ import annotations

import itertools

import altair as alt
import numpy as np
import polars as pl

from dse.pareto import nondominated_mask
from dse.report.labels import safe, title_of
from dse.report.spec import Objective, ParetoView
from dse.report.uncertainty_view import P_FRONT, error_bar_layers, error_columns

BRUSH = "brush"
CLICK = "design_click"  # point selection: clicking a point picks its design for the roofline and breakdown
FADED = "#d0d0d0"
PAGE_WIDTH_PX = 1180  # room for charts on a 1,280 px window (page margins, axes and legends take the rest)
AXIS_AND_LEGEND_PX = 95  # per scatter: y axis title and labels, spacing
LABEL_BOX_PX = (70, 13)  # a reference-chip label's rough width and height, for collision avoidance


def per_row(view_width: int) -> int:
    """How many scatters share a row so that the explorer fits PAGE_WIDTH_PX."""
    return max(1, min(3, PAGE_WIDTH_PX // (view_width + AXIS_AND_LEGEND_PX)))


def label_offsets(x: np.ndarray, y: np.ndarray, logx: bool, logy: bool, width: int, height: int,
                  x_all: np.ndarray | None = None, y_all: np.ndarray | None = None) -> np.ndarray:
    """Vertical offset (px) of each reference label, or NaN to leave it unlabelled (its diamond and tooltip
    still name it): labels are placed greedily, left to right, in the first of a few slots that does not
    overlap a label already placed, so a clump of chips does not print its names on top of each other."""
    def px(v, every, log, size):  # position on the axis, whose domain spans `every` value plotted
        f = (lambda a: np.log10(np.clip(a.astype(float), 1e-300, None))) if log else (lambda a: a.astype(float))
        span = f(np.concatenate([v, every]) if every is not None else v)
        span = span[np.isfinite(span)]
        lo, hi = float(span.min()), float(span.max())
        return (f(v) - lo) / (hi - lo) * size if hi > lo else np.full(v.shape, size / 2)

    X, Y = px(x, x_all, logx, width), -px(y, y_all, logy, height)  # screen y grows downwards
    out = np.full(len(x), np.nan)
    placed: list[tuple[float, float]] = []
    for i in np.argsort(X):
        for dy in (-7.0, 7.0 + LABEL_BOX_PX[1], -7.0 - LABEL_BOX_PX[1], 7.0 + 2 * LABEL_BOX_PX[1]):
            cx, cy = X[i], Y[i] + dy
            if all(abs(cx - px_) > LABEL_BOX_PX[0] or abs(cy - py_) > LABEL_BOX_PX[1] for px_, py_ in placed):
                placed.append((cx, cy))
                out[i] = dy
                break
    return out


def brush_param() -> alt.Parameter:
    """The page-wide interval selection (one brush, whichever pair it is drawn in)."""
    return alt.selection_interval(name=BRUSH, encodings=["x", "y"])


def use_log(values: np.ndarray, mode: str) -> bool:
    """Log axis when forced, or ("auto") when all values are positive and span more than 30×."""
    if mode == "never":
        return False
    v = values[np.isfinite(values)]
    positive = v.size > 0 and bool((v > 0).all())
    if mode == "always":
        return positive
    return positive and float(v.max()) > 30 * float(v.min())


def pairs_of(objs: list[Objective], view: ParetoView) -> list[tuple[Objective, Objective]]:
    """The [x, y] pairs to draw: the spec's, or every pair of objectives."""
    by_metric = {o.metric: o for o in objs}
    if view.pairs:
        out = []
        for x, y in view.pairs:
            ox = by_metric.get(x) or Objective(metric=x, direction="minimize")
            oy = by_metric.get(y) or Objective(metric=y, direction="minimize")
            out.append((ox, oy))
        return out
    return list(itertools.combinations(objs, 2))


def pair_front(df: pl.DataFrame, ox: Objective, oy: Objective, run_col: str = "run") -> pl.DataFrame:
    """2-D non-dominated rows of one pair per run, sorted by x (the step line of that projection)."""
    parts = []
    xs, ys = safe(ox.metric), safe(oy.metric)
    for (run,), g in df.group_by([run_col], maintain_order=True):
        Y = np.column_stack([g[xs].cast(pl.Float64).to_numpy(), g[ys].cast(pl.Float64).to_numpy()])
        mask = nondominated_mask(Y, [ox.direction == "maximize", oy.direction == "maximize"])
        parts.append(g.filter(pl.Series(mask)).select(run_col, xs, ys).unique().sort(xs))
    return pl.concat(parts) if parts else pl.DataFrame()


def pareto_explorer(
    data: pl.DataFrame,
    objs: list[Objective],
    view: ParetoView,
    *,
    colour_fields: list[str],
    tooltip_fields: list[str],
    refs: pl.DataFrame | None = None,
    labels: dict[str, str] | None = None,
    images: set[str] | None = None,
    brush: alt.Parameter | None = None,
) -> tuple[alt.VConcatChart, list[alt.Parameter]]:
    """Build the explorer from a plot frame with Vega-safe column names (see rundata.plot_frame).

    `colour_fields` are dotted knob names present in `data`. Returns the chart and the top-level params
    (brush, legend pick, colour dropdown) that the page must declare: selections shared by several
    views are declared once at the top with the list of views that own them.
    """
    brush = brush or brush_param()
    images = images or set()
    present = [c for c in colour_fields if safe(c) in data.columns]
    if not present:
        data = data.with_columns(pl.col("run").alias("_run_colour"))
        present_safe, present_titles = ["_run_colour"], ["Run"]
    else:
        present_safe = [safe(c) for c in present]
        present_titles = [title_of(c, labels) for c in present]
    first = safe(view.color) if safe(view.color) in present_safe else present_safe[0]
    colour_by = alt.VariableParameter(
        name="colour_by",
        value=first,
        bind=alt.binding_select(options=present_safe, labels=present_titles, name="Colour by "),
    )
    pick = alt.selection_point(name="pick", fields=["colour"], bind="legend")
    point_views: list[str] = []
    front_views: list[str] = []
    multi_run = data["run"].n_unique() > 1
    tips = [alt.Tooltip(f"{safe(c)}:N" if data[safe(c)].dtype == pl.String else f"{safe(c)}:Q",
                        title=title_of(c, labels, images=c in images), format=alt.Undefined if data[safe(c)].dtype == pl.String else ",.4~g")
            for c in tooltip_fields if safe(c) in data.columns]
    tips = [alt.Tooltip("design:N", title="Design"), alt.Tooltip("pareto:N", title="On the front")] + tips
    uncertain = P_FRONT in data.columns  # front designs carry p10/p90 of each objective and P(on the front)
    if uncertain:  # a front point's opacity is its P(on the front) (a plain column: a null field would drop rows)
        data = data.with_columns(pl.when(pl.col("pareto")).then(
            0.12 + 0.88 * pl.col(P_FRONT).fill_null(100.0) / 100.0).otherwise(0.3).alias("_opacity"))
        tips[2:2] = [alt.Tooltip(f"{P_FRONT}:Q", title="P(on the front) (%)", format=".0f")] + [
            alt.Tooltip(f"{c}:Q", title=f"{title_of(o.metric, labels)} {q}", format=",.4~g")
            for o in objs for c, q in zip(error_columns(o.metric), ("p10", "p90")) if c in data.columns]

    base = (
        alt.Chart(data)
        .transform_calculate(colour="'' + datum[colour_by]")
        .properties(width=view.width, height=view.height)
    )
    charts = []
    for i, (ox, oy) in enumerate(pairs_of(objs, view)):
        xs, ys = safe(ox.metric), safe(oy.metric)
        if xs not in data.columns or ys not in data.columns:
            continue
        logx = use_log(data[xs].cast(pl.Float64).to_numpy(), view.log_axes)
        logy = use_log(data[ys].cast(pl.Float64).to_numpy(), view.log_axes)
        arrow = lambda o: "→ better" if o.direction == "maximize" else "← better"  # noqa: E731
        xscale = alt.Scale(type="log" if logx else "linear", zero=False, nice=False)
        yscale = alt.Scale(type="log" if logy else "linear", zero=False, nice=False)
        xenc = alt.X(f"{xs}:Q", title=f"{title_of(ox.metric, labels, images=ox.metric in images)}  {arrow(ox)}",
                     scale=xscale)
        yenc = alt.Y(f"{ys}:Q", title=f"{title_of(oy.metric, labels, images=oy.metric in images)}  "
                     f"{'↑' if oy.direction == 'maximize' else '↓'} better", scale=yscale)
        points = base.mark_point(filled=True).properties(name=f"pareto_points_{i}").encode(
            x=xenc,
            y=yenc,
            color=alt.when(brush & pick)
            .then(alt.Color("colour:N", title="Colour (see dropdown)", legend=alt.Legend(symbolOpacity=1)))
            .otherwise(alt.value(FADED)),
            opacity=(alt.Opacity("_opacity:Q", scale=None) if uncertain
                     else alt.when(alt.datum.pareto).then(alt.value(0.95)).otherwise(alt.value(0.3))),
            size=alt.when(alt.datum.pareto).then(alt.value(46)).otherwise(alt.value(14)),
            shape=alt.Shape("run:N", title="Run") if multi_run else alt.value("circle"),
            tooltip=tips,
        )
        point_views.append(f"pareto_points_{i}")
        layers = [*error_bar_layers(base, xs, ys, xenc, yenc, (xscale, yscale), f"pareto_errors_{i}",
                                    data.columns), points]
        # designs with a precomputed roofline ringed on top: clicking one picks it (a `drillable` column marks
        # them; without it every front point is clickable)
        can_drill = alt.datum.drillable if "drillable" in data.columns else alt.datum.pareto
        clickable = base.transform_filter(can_drill).mark_point(  # filled (almost clear) so a click inside hits it
            filled=True, size=110, fill="#ffffff", fillOpacity=0.01, stroke="black", strokeWidth=1.3,
            strokeOpacity=0.9, cursor="pointer").encode(
            x=xenc, y=yenc, tooltip=tips).properties(name=f"pareto_click_{i}")
        front_views.append(f"pareto_click_{i}")
        layers.append(clickable)
        front = pair_front(data.filter(pl.col("pareto")), ox, oy)
        if len(front):
            layers.insert(0, alt.Chart(front).mark_line(
                interpolate="step-before" if ox.direction == "maximize" else "step-after",
                color="#333333", strokeWidth=1.2, opacity=0.8,
            ).properties(name=f"pareto_front_{i}").encode(x=xenc, y=yenc, detail="run:N",
                     strokeDash=alt.StrokeDash("run:N", title="Front of run") if multi_run else alt.value([1, 0])))
        if refs is not None and len(refs) and xs in refs.columns and ys in refs.columns:
            rp = refs.filter(pl.col(xs).is_not_null() & pl.col(ys).is_not_null() & (pl.col(xs) > 0 if logx else True)
                             & (pl.col(ys) > 0 if logy else True))
            if len(rp):
                dy = label_offsets(rp[xs].cast(pl.Float64).to_numpy(), rp[ys].cast(pl.Float64).to_numpy(), logx, logy,
                                   view.width, view.height, data[xs].cast(pl.Float64).to_numpy(),
                                   data[ys].cast(pl.Float64).to_numpy())
                rp = rp.with_columns(pl.Series("_label_dy", np.nan_to_num(dy)), pl.Series("_labelled", ~np.isnan(dy)))
                rbase = alt.Chart(rp).encode(x=xenc, y=yenc, tooltip=[alt.Tooltip("name:N", title="Reference chip")] + [
                    alt.Tooltip(f"{c}:Q", title=title_of(o.metric, labels), format=",.4~g")
                    for o in objs for c in [safe(o.metric)] if c in rp.columns])
                layers.append(rbase.mark_point(shape="diamond", size=120, filled=False, strokeWidth=2,
                                               color="black").properties(name=f"pareto_refs_{i}"))
                for slot in sorted(set(dy[~np.isnan(dy)].tolist())):  # one text layer per vertical offset
                    layers.append(rbase.transform_filter(alt.datum._label_dy == slot).mark_text(
                        align="left", dx=7, dy=slot, baseline="middle", fontSize=11, fontWeight="bold").encode(
                        text="name:N"))
        charts.append(alt.layer(*layers))
    n = per_row(view.width)
    rows = [alt.hconcat(*charts[i : i + n]) for i in range(0, len(charts), n)]
    counter = (
        alt.Chart(data)
        .transform_filter(brush)
        .transform_calculate(_front="datum.pareto ? 1 : 0")
        .transform_aggregate(n="count()", front="sum(_front)")
        .transform_calculate(text="datum.n + ' designs in the brush (' + datum.front + ' on the front)'")
        .mark_text(align="left", fontSize=13)
        .encode(text="text:N", x=alt.value(0), y=alt.value(9))
        .properties(width=view.width, height=18, name="brush_count", view=alt.ViewBackground(stroke=None))
    )
    explorer = alt.vconcat(counter, *rows, title=alt.Title(view.title, anchor="start", fontSize=16))
    params = [
        alt.TopLevelSelectionParameter(
            name=BRUSH, select=alt.IntervalSelectionConfig(type="interval", encodings=["x", "y"]), views=point_views
        ),
        alt.TopLevelSelectionParameter(
            name="pick", select=alt.PointSelectionConfig(type="point", fields=["colour"]), bind="legend",
            views=point_views,
        ),
        alt.TopLevelSelectionParameter(
            name=CLICK, select=alt.PointSelectionConfig(type="point", fields=["design"], on="click",
                                                        clear="dblclick"), views=front_views,
        ),
        colour_by,
    ]
    return explorer, params
