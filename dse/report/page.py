"""Assemble the views of a dashboard spec over run folders into one offline HTML page (and PNGs).

The page is dse.report.html_page's offline shell (Vega inlined, the view as `window.dseView`); the
dropdowns sit in a control bar at the top; a click on a ringed front point picks its design.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl

from dse.report import model_data
from dse.report.breakdown_view import breakdown_chart
from dse.report.composition_view import composition_chart, composition_table, varying_knobs
from dse.report.convergence_view import convergence_chart, convergence_table
from dse.report.html_page import chart_spec, embed_page, script_json
from dse.report.labels import safe, title_of
from dse.report.pareto_view import brush_param, pareto_explorer
from dse.report.roofline_view import design_param, roofline_chart, scenario_param
from dse.report.serving_view import serving_section
from dse.report.rundata import RunData, front_mask, knob_columns, load_runs, plot_frame, resolve_objectives, thin
from dse.report.spec import (BreakdownView, CompositionView, ConvergenceView, DashboardSpec, ParetoView,
                             RooflineView, TornadoView)
from dse.report.uncertainty_view import P_FRONT, front_uncertainty, tornado_chart, tornado_data

CONTROLS = "#dse-controls"


@dataclass
class Dashboard:
    """The page chart, each view on its own (for PNGs), and what the page header says."""

    title: str
    chart: alt.TopLevelMixin
    views: dict[str, alt.TopLevelMixin] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    description: str = ""
    drill: dict[str, str] = field(default_factory=dict)  # clickable design (run#trial) → its 'Design' entry
    drill_text: str = ""
    uncertainty: bool = False  # front points carry error bars and P(on the front)


def _top_level(params: list) -> list:
    """Schema objects for a top-level `params` list (alt.param() wrappers unwrapped, duplicates dropped)."""
    out = {}
    for p in params:
        obj = p.param if isinstance(p, alt.Parameter) else p
        out.setdefault(obj.name, obj)
    return list(out.values())


def _bind_to_controls(params: list) -> None:
    for p in params:
        bind = getattr(p, "bind", alt.Undefined)
        if bind is not alt.Undefined and not isinstance(bind, str):
            bind.element = CONTROLS


def _images_metrics(df: pl.DataFrame) -> set[str]:
    """Per-scenario `throughput` columns that count images (their scenario reports images/s)."""
    out = set()
    for c in df.columns:
        if c.endswith(".throughput") and c != "mix.throughput":
            img = c[: -len("throughput")] + "images_per_s"
            if img in df.columns and df[img].cast(pl.Float64).fill_null(0).max() > 0:
                out.add(c)
    return out


def _name_the_reference(run: RunData, labels: dict[str, str] | None) -> dict[str, str] | None:
    """Axis titles that say which design "× reference" is relative to (the run's mix's reference design)."""
    try:
        ref = getattr(model_data.mix_of(run), "reference_design", None)
    except Exception:  # no mix: the titles keep the registry's generic unit
        return labels
    if not ref:
        return labels
    named = {"mix.throughput": title_of("mix.throughput").replace("× reference", f"× {ref}")}
    return {**named, **(labels or {})}


def build_dashboard(run_dirs: list[Path | str], spec: DashboardSpec) -> Dashboard:
    """Read the runs and build every view of `spec` into one linked chart."""
    runs: list[RunData] = load_runs(run_dirs)
    objs = resolve_objectives(runs, spec.objectives)
    notes: list[str] = []
    thinned = [thin(r, objs, spec.max_points) for r in runs]
    fronts = {r.name: front_mask(r.results, objs) for r in runs}
    images = _images_metrics(runs[0].results)
    labels = _name_the_reference(runs[0], spec.labels)
    frames = [t.frame.with_columns(pl.format("{}#{}", pl.col("run"), pl.col("trial")).alias("design"))
              for t in thinned]
    knobs = list(dict.fromkeys(k for r in runs for k in knob_columns(r.results)))
    headline = [m for m in spec.headline_metrics if any(m in r.results.columns for r in runs)]
    obj_metrics = [o.metric for o in objs]
    pv = next((v for v in spec.views if isinstance(v, ParetoView)), None)
    colour = list(dict.fromkeys(([pv.color] + pv.color_choices) if pv else []))
    columns = ["run", "trial", "design", "pareto", *obj_metrics, *headline, *colour, *knobs]
    data = plot_frame(frames, columns)
    if pv is not None and pv.uncertainty_samples > 0:  # error bars and P(on the front) of the front designs
        unc, unotes = front_uncertainty(runs, fronts, objs, pv)
        notes += unotes
        if unc is not None:
            data = data.join(unc, on="design", how="left")
    run_rows = [{"name": r.name, "sampler": r.sampler, "path": str(r.path), "trials": t.total, "feasible": t.feasible,
                 "front": t.front, "front_shown": t.front_shown, "dominated_shown": t.dominated_shown}
                for r, t in zip(runs, thinned)]

    brush = brush_param()
    page_params: list = []
    sections: list = []
    views: dict[str, alt.TopLevelMixin] = {}
    has_explorer = any(isinstance(v, ParetoView) for v in spec.views)

    # catalog chips: markers on the explorer, and reference designs in the roofline / breakdown dropdown
    pv_refs = pv.reference_chips if pv else None
    rv = next((v for v in spec.views if isinstance(v, RooflineView)), RooflineView())
    ref_names = model_data.reference_names(pv_refs, rv.reference_designs)
    ref_df = None
    if ref_names:
        try:
            ref_df, rnotes = model_data.reference_metrics(ref_names, model_data.mix_of(runs[0]),
                                                         model_data.technology_of(runs[0]))
            if rnotes:
                notes.append("reference chips not plotted (infeasible on this mix): " + "; ".join(rnotes))
        except Exception as exc:  # model or catalog unavailable: the explorer still works
            notes.append(f"reference chips unavailable: {exc}")
    ops = roofs = None
    picked: dict = {}
    picked_rows: dict = {}
    scenario_names: list[str] = []
    od = None
    if any(isinstance(v, (RooflineView, BreakdownView, TornadoView)) for v in spec.views):
        od = model_data.operator_data(runs, fronts, objs, rv, labels, ref_df)
        picked, picked_rows, ops, roofs, scenario_names = od.designs, od.rows, od.ops, od.roofs, od.scenarios
        notes += od.notes
    design_pick = design_param(list(picked) or [""])
    reference = next((lab for lab in picked if lab.endswith(" (reference)")), None)
    drill = {lab.split(" · ")[0]: lab for lab in picked if "#" in lab}  # clicked point's design → dropdown entry
    data = data.with_columns(pl.col("design").is_in(list(drill)).alias("drillable"))
    scenario_pick = scenario_param(scenario_names)

    for view in spec.views:
        if isinstance(view, ParetoView):
            refs = None
            if view.reference_chips and ref_df is not None:
                wanted = model_data.reference_names(view.reference_chips, [])
                refs = plot_frame([ref_df.filter(pl.col("name").is_in(wanted))], ["name", *obj_metrics])
            tips = [*obj_metrics, *headline, *knobs, "trial"]
            chart, params = pareto_explorer(data, objs, view, colour_fields=colour, tooltip_fields=tips, refs=refs,
                                            labels=labels, images=images, brush=brush)
            page_params += params
            sections.append(chart)
            views["pareto"] = _standalone(chart, params)
        elif isinstance(view, RooflineView):
            if ops is None or roofs is None:
                continue
            chart = roofline_chart(ops, roofs, view, design_pick=design_pick, scenario_pick=scenario_pick,
                                   reference=reference)
            sections.append(chart)
            views["roofline"] = _standalone(chart, [design_pick, scenario_pick])
            page_params += [design_pick, scenario_pick]
        elif isinstance(view, BreakdownView):
            if ops is None:
                continue
            fields = None
            if picked:
                rows = [{"design": lab, **{safe(m): picked_rows.get(lab, {}).get(m) for m in obj_metrics}}
                        for lab in picked]
                fields = pl.DataFrame(rows)
            chart = breakdown_chart(ops, view, design_pick=design_pick, brush=brush if has_explorer else None,
                                    design_fields=fields, order=list(picked))
            sections.append(chart)
            views["breakdown"] = _standalone(breakdown_chart(ops, view, design_pick=design_pick, order=list(picked)),
                                             [design_pick])
            if design_pick not in page_params:
                page_params.append(design_pick)
        elif isinstance(view, TornadoView):
            if od is None or not picked:
                continue
            tdata, tnotes = tornado_data(picked, od.techs, model_data.mix_of(runs[0]), objs, view.top, labels)
            notes += tnotes
            if tdata is None:
                continue
            chart = tornado_chart(tdata, view, design_pick=design_pick)
            sections.append(chart)
            views["tornado"] = _standalone(chart, [design_pick])
            if design_pick not in page_params:
                page_params.append(design_pick)
        elif isinstance(view, CompositionView):
            all_res = pl.concat([r.results for r in runs], how="diagonal_relaxed")
            all_front = np.concatenate([fronts[r.name] for r in runs])
            ks = varying_knobs(all_res, view.knobs or knobs)
            if ks:
                chart = composition_chart(composition_table(all_res, all_front, ks, view.bins), view, labels)
                sections.append(chart)
                views["composition"] = chart
        elif isinstance(view, ConvergenceView):
            chart = convergence_chart(convergence_table(runs, objs, view.points), view)
            sections.append(chart)
            views["convergence"] = chart
    serving, snotes = serving_section(picked, runs[0], design_pick, picked_rows)  # mixes with a serving workload
    notes += snotes
    if serving is not None:
        sections.append(serving)
        views["serving"] = _standalone(serving, [design_pick])
        page_params += [] if design_pick in page_params else [design_pick]
    page_params = _top_level(page_params)
    _bind_to_controls(page_params)
    independent = {ch: "independent" for ch in ("color", "shape", "size", "strokeDash", "opacity")}
    page = alt.vconcat(*sections, spacing=40).resolve_scale(**independent).resolve_legend(
        **independent).properties(padding=12).configure_axis(labelFontSize=11, titleFontSize=12).configure_legend(
        labelLimit=220)
    page.params = page_params
    n_front = sum(int(fronts[r.name].sum()) for r in runs)
    return Dashboard(spec.title, page, views, run_rows, notes, spec.description, drill=drill,
                     drill_text=_drill_text(len(drill), n_front, rv.designs, reference),
                     uncertainty=P_FRONT in data.columns)


def _drill_text(drillable: int, front: int, cap: int, reference: str | None) -> str:
    """What the page says about which designs can be drilled into (clicked for a roofline and breakdown)."""
    ref = f" The reference chip, {reference.removesuffix(' (reference)')}, is drawn in every roofline and breakdown." \
        if reference else ""
    if drillable >= front:
        return (f"Every one of the {front:,} Pareto-front designs is ringed: click it for its roofline and time "
                f"breakdown.{ref}")
    return (f"{drillable:,} of the {front:,} Pareto-front designs are ringed and can be clicked for a roofline and time "
            f"breakdown "
            f"(the roofline view's `designs` cap, {cap}, spread evenly along the front; the others show only their "
            f"tooltip).{ref}")


def _standalone(chart, params) -> alt.TopLevelMixin:
    """A copy of one view with the params it uses, for a PNG (brush-linked encodings keep their default)."""
    c = chart.copy(deep=True)
    c.params = _top_level(params)
    return c


_STYLE = """
 header { margin: 14px 0 6px; }
 header h1 { font-size: 22px; margin: 0 0 4px; }
 header p { margin: 3px 0; max-width: 1100px; }
 table.runs { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
 table.runs td, table.runs th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
 table.runs td:first-child, table.runs th:first-child { text-align: left; }
 #dse-controls { position: sticky; top: 0; z-index: 5; background: #f7f7f7; border: 1px solid #ddd;
   padding: 6px 10px; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 13px; }
 #dse-controls .vega-bind { display: inline-flex; align-items: center; }
 #dse-controls select { max-width: 420px; }
 #vis.vega-embed { width: 100%; display: flex; }
"""

_BODY = """<header>
<h1>{title}</h1>
{description}
<p>{thinning}</p>
{run_table}
<p>How to use: <b>click a ringed Pareto-front point</b> to show its roofline, time breakdown and tornado (or pick
it in the <b>Design</b> dropdown); drag a rectangle in any Pareto scatter to brush designs (every view highlights
the same designs; double-click to clear); click a legend entry to keep one category (shift-click for several);
hover for details.{uncertainty}</p>
<p id="dse-drill">{drill_text}</p>
{notes}
</header>
<div id="dse-controls"></div>
<div id="dse-error"></div>
<div id="vis"></div>
"""

_ON_READY = """      // a click on a front point picks its design in the 'Design' dropdown (roofline and breakdown follow)
      const drill = {drill};
      const say = document.getElementById("dse-drill");
      const onClick = function (name, value) {{
        const design = value && value.design && value.design[0];
        if (!design) return;
        if (drill[design]) {{ view.signal("design_pick", drill[design]).runAsync(); say.textContent = {drill_text_js}; }}
        else {{ say.textContent = design + " has no precomputed roofline (only the designs listed in the Design "
                + "dropdown have one); " + {drill_text_js}; }}
      }};
      try {{ view.addSignalListener("design_click", onClick); }} catch (e) {{ /* no explorer on this page */ }}"""

UNCERTAINTY_TEXT = (" Whiskers on front points span p10–p90 of each objective over Monte-Carlo samples of the "
                    "technology ranges and the model error; a front point's opacity is its probability of staying "
                    "on the front (tooltip: P(on the front)). mix.throughput is relative to the reference chip "
                    "under a common model error, so its whiskers are flat; absolute rates carry the error.")


def _run_table(runs: list[dict]) -> str:
    head = ("<tr><th>run</th><th>sampler</th><th>trials</th><th>feasible</th><th>front</th>"
            "<th>front shown</th><th>dominated shown</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(r['sampler'])}</td><td>{r['trials']:,}</td>"
        f"<td>{r['feasible']:,}</td><td>{r['front']:,}</td><td>{r['front_shown']:,}</td>"
        f"<td>{r['dominated_shown']:,}</td></tr>" for r in runs)
    return f'<table class="runs">{head}{body}</table>'


def _thinning_text(runs: list[dict]) -> str:
    total = sum(r["trials"] for r in runs)
    shown = sum(r["front_shown"] + r["dominated_shown"] for r in runs)
    dom = sum(r["feasible"] - r["front"] for r in runs)
    if shown == 0:
        return (f"None of the {total:,} trials is feasible, so the Pareto views are empty (the `reason` column of "
                f"results.parquet says why); reference chips are still shown.")
    if shown >= sum(r["feasible"] for r in runs):
        return f"Showing all {shown:,} feasible designs of {total:,} trials (infeasible trials are not plotted)."
    return (f"Showing {shown:,} of {total:,} trials: every Pareto-front design plus a uniform random sample of "
            f"{sum(r['dominated_shown'] for r in runs):,} of the {dom:,} feasible dominated designs (thinned so the "
            f"page stays responsive; infeasible trials are not plotted). Front composition and convergence use "
            f"every trial.")


def render_html(d: Dashboard) -> str:
    """The self-contained page as a string."""
    notes = ""
    if d.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in d.notes)
        notes = f"<details class=notes><summary>{len(d.notes)} note(s) about this page</summary><ul>{items}</ul></details>"
    body = _BODY.format(
        title=html.escape(d.title),
        description=f"<p>{html.escape(d.description)}</p>" if d.description else "",
        thinning=html.escape(_thinning_text(d.runs)),
        run_table=_run_table(d.runs),
        uncertainty=UNCERTAINTY_TEXT if d.uncertainty else "",
        notes=notes,
        drill_text=html.escape(d.drill_text),
    )
    on_ready = _ON_READY.format(drill=script_json(d.drill), drill_text_js=script_json(d.drill_text))
    return embed_page(d.title, d.chart, body, style=_STYLE, on_ready=on_ready,
                      failure="Could not draw the dashboard: ")


def write_html(d: Dashboard, out: Path | str) -> Path:
    """Write the page; parent folders are created."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(d), encoding="utf-8")
    return out


def write_pngs(d: Dashboard, out_dir: Path | str, scale: float = 1.5) -> list[Path]:
    """One static PNG per view (interactive state at its defaults) via vl-convert."""
    import vl_convert

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, chart in d.views.items():
        spec = chart_spec(chart)
        for p in spec.get("params", []):
            if p.get("bind") != "legend":
                p.pop("bind", None)
        png = vl_convert.vegalite_to_png(spec, scale=scale)
        path = out_dir / f"{name}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths


def build_and_write(run_dirs, spec: DashboardSpec, out: Path | str, png_dir: Path | str | None = None):
    """Build the dashboard, write the HTML (and PNGs); returns (html path, png paths, dashboard)."""
    d = build_dashboard(run_dirs, spec)
    path = write_html(d, out)
    pngs = write_pngs(d, png_dir) if png_dir else []
    return path, pngs, d


__all__ = ["Dashboard", "build_dashboard", "render_html", "write_html", "write_pngs", "build_and_write", "title_of",
           "script_json"]
