"""Uncertainty on the dashboard (issue 16.6): p10–p90 error bars and the probability of being on the front
for the Pareto-front designs (a Monte-Carlo evaluation of the technology ranges and the model error,
dse.uncertainty.montecarlo), and the tornado chart of the selected design (dse.uncertainty.sensitivity).

Error bars span p10–p90 over the samples in which the design can run. P(on the front) is the share of samples in which a front design is feasible and not dominated by any
other analysed design: the front designs (up to the view's cap, evenly spread along the front) and as
many feasible dominated ones (a uniform sample) as competitors; every design sees the same samples.
"""

from __future__ import annotations

import warnings
from typing import Any

import altair as alt
import numpy as np
import polars as pl

from dse import expr as ex
from dse.pareto import nondominated_mask
from dse.report.labels import safe, title_of
from dse.report.rundata import RunData, knob_columns, objective_matrix
from dse.report.spec import Objective, ParetoView, TornadoView
from dse.runs.layout import robust_column

P_FRONT = "p_front_pct"  # plot column: P(on the front) in %
KIND_COLOURS = {"knob step": "#4c78a8", "technology range (low end)": "#72b7b2",
                "technology range (high end)": "#e45756"}


def error_columns(metric: str) -> tuple[str, str]:
    """Plot columns of a metric's p10 and p90 (Vega-safe)."""
    return f"{safe(metric)}_p10", f"{safe(metric)}_p90"


def _columns(df: pl.DataFrame) -> dict[str, np.ndarray]:
    """Knob columns of result rows as the model's column input (nulls: the knob's default)."""
    return {k: np.asarray(df[k].to_list(), dtype=object) for k in knob_columns(df)}


def _robust_samples(objs: list[Objective], samples: dict[str, np.ndarray], sub: pl.DataFrame) -> dict[str, np.ndarray]:
    """(S, n) samples of the robust columns the objectives read (a study with `uncertainty:`): `p90.x`
    spreads as `x` does (its p10-p90 whiskers are those of x), `prob.name` is the run's value in every
    sample (a probability has no spread of its own)."""
    out = {}
    for name in {n for o in objs for n in o.names()}:
        r = robust_column(name)
        if r is None or name in samples:
            continue
        if r[0] == "quantile" and r[2] in samples:
            out[name] = samples[r[2]]
        elif name in sub.columns:
            out[name] = np.broadcast_to(sub[name].cast(pl.Float64).fill_null(np.nan).to_numpy(),
                                        samples["feasible"].shape)
    return out


def tornado_metric(o: Objective) -> str | None:
    """The metric a tornado shows for an objective: itself, a robust percentile's metric (`p90.x` → x);
    None for expressions and chance columns."""
    if o.is_expression:
        return None
    r = robust_column(o.metric)
    return o.metric if r is None else (r[2] if r[0] == "quantile" else None)


def _objective_samples(o: Objective, samples: dict[str, np.ndarray], knobs: dict[str, np.ndarray]) -> np.ndarray:
    """(S, n) samples of an objective: a metric column, or an expression over metrics and knobs."""
    if o.metric in samples:
        return samples[o.metric]
    env = {**knobs, **samples}
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(ex.parse(o.metric).evaluate(env), float),
                               samples["feasible"].shape).copy()


def _spread(idx: np.ndarray, k: int) -> np.ndarray:
    """At most k of the indices, evenly spaced (idx sorted along the front's first objective)."""
    return idx if len(idx) <= k else idx[np.unique(np.linspace(0, len(idx) - 1, k).round().astype(int))]


def front_uncertainty(runs: list[RunData], fronts: dict[str, np.ndarray], objs: list[Objective],
                      view: ParetoView) -> tuple[pl.DataFrame | None, list[str]]:
    """Per analysed front design (`design` = run#trial): p10/p90 of each objective and P(on the front)."""
    from dse.report.model_data import mix_of, technology_of
    from dse.uncertainty.montecarlo import monte_carlo_columns

    parts, notes = [], []
    maximize = [o.direction == "maximize" for o in objs]
    for r in runs:
        df = r.results
        front = np.flatnonzero(fronts[r.name])
        if not len(front) or not knob_columns(df):
            continue
        first = objective_matrix(df[front], objs)[:, 0]
        front = _spread(front[np.argsort(first, kind="stable")], view.uncertainty_designs)
        feas = df["feasible"].fill_null(False).to_numpy().astype(bool)
        dom = np.flatnonzero(feas & ~fronts[r.name])
        if len(dom) > len(front):
            dom = np.sort(np.random.default_rng(0).choice(dom, size=len(front), replace=False))
        rows = np.concatenate([front, dom])
        sub = df[rows]
        knobs = _columns(sub)
        try:
            mc = monte_carlo_columns(knobs, mix_of(r), technology_of(r), samples=view.uncertainty_samples, seed=0)
            samples = {**mc.samples, **_robust_samples(objs, mc.samples, sub)}
            Ys = [_objective_samples(o, samples, knobs) for o in objs]
        except Exception as exc:  # a run the model cannot re-evaluate: the explorer still works
            notes.append(f"{r.name}: no error bars or P(on the front): {type(exc).__name__}: {exc}")
            continue
        ok = mc.samples["feasible"] > 0.5
        count = np.zeros(len(rows))
        for s in range(mc.n_samples):
            live = np.flatnonzero(ok[s] & np.all([np.isfinite(Y[s]) for Y in Ys], axis=0))
            if len(live):
                Y = np.column_stack([Y[s, live] for Y in Ys])
                count[live[nondominated_mask(Y, maximize)]] += 1
        out: dict[str, Any] = {"design": [f"{r.name}#{t}" for t in sub["trial"][: len(front)].to_list()]}
        for o, Y in zip(objs, Ys):  # over the samples in which the design can run (else its metrics are 0)
            lo, hi = error_columns(o.metric)
            Yf = np.where(ok, Y, np.nan)[:, : len(front)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a design infeasible in every sample: NaN
                out[lo], out[hi] = np.nanquantile(Yf, 0.1, axis=0), np.nanquantile(Yf, 0.9, axis=0)
        out[P_FRONT] = 100.0 * count[: len(front)] / max(mc.n_samples, 1)
        parts.append(pl.DataFrame(out))
        n_front = int(fronts[r.name].sum())
        if len(front) < n_front:
            notes.append(f"{r.name}: error bars and P(on the front) for {len(front)} of {n_front} front designs "
                         f"(the Pareto view's uncertainty_designs cap, spread evenly along the front)")
    return (pl.concat(parts) if parts else None), notes


def error_bar_layers(base: alt.Chart, xs: str, ys: str, xenc: alt.X, yenc: alt.Y, scales: tuple[alt.Scale, alt.Scale],
                     name: str, columns: list[str]) -> list[alt.Chart]:
    """p10–p90 whiskers of the front points in both objectives of a pair (where the columns exist)."""
    layers = []
    for axis, col in (("x", xs), ("y", ys)):
        lo, hi = f"{col}_p10", f"{col}_p90"
        if lo not in columns or hi not in columns:
            continue
        enc = (dict(x=alt.X(f"{lo}:Q", scale=scales[0]), x2=alt.X2(f"{hi}:Q"), y=yenc) if axis == "x"
               else dict(x=xenc, y=alt.Y(f"{lo}:Q", scale=scales[1]), y2=alt.Y2(f"{hi}:Q")))
        shown = alt.datum.pareto & alt.expr.isFinite(alt.datum[lo]) & alt.expr.isFinite(alt.datum[hi])
        if scales[0 if axis == "x" else 1].to_dict().get("type") == "log":
            shown = shown & (alt.datum[lo] > 0)
        layers.append(base.transform_filter(shown).mark_rule(
            color="#555555", strokeWidth=1, opacity=0.55).encode(**enc).properties(name=f"{name}_{axis}"))
    return layers


def tornado_data(designs: dict[str, Any], techs: dict[str, Any], mix, objs: list[Objective], top: int,
                 labels: dict[str, str] | None = None) -> tuple[pl.DataFrame | None, list[str]]:
    """Rows (design, objective, input, kind, delta_pct, rank) of the `top` inputs moving each objective
    most, per design of the dropdown: knob steps and technology range ends (dse.uncertainty.sensitivity)."""
    from dse.uncertainty.sensitivity import sensitivity_many

    metrics = list(dict.fromkeys(m for m in map(tornado_metric, objs) if m is not None))
    if not designs or not metrics or mix is None:
        return None, []
    groups: dict[int, list[str]] = {}
    for lab in designs:
        groups.setdefault(id(techs.get(lab)), []).append(lab)
    rows, notes = [], []
    for labs in groups.values():
        try:
            res = sensitivity_many([designs[lab] for lab in labs], mix, metrics, techs.get(labs[0]))
        except Exception as exc:
            notes.append(f"no tornado for {', '.join(labs[:3])}…: {type(exc).__name__}: {exc}")
            continue
        for lab, (_, changes) in zip(labs, res):
            for m in metrics:
                per_input: dict[str, list[dict]] = {}
                for c in changes:
                    if not c.feasible:
                        continue
                    if c.kind == "knob":
                        key, kind = f"{c.label}: {_fmt(c.old)} → {_fmt(c.new)}", "knob step"
                    else:
                        key = f"{c.label.replace('process_nodes.', '').replace('memories.', '')}"
                        kind = f"technology range ({'low' if c.new < c.old else 'high'} end)"
                    per_input.setdefault(key, []).append({"kind": kind, "delta_pct": 100.0 * c.delta_rel[m],
                                                          "to": _fmt(c.new)})
                ranked = sorted(per_input.items(), key=lambda kv: -max(abs(v["delta_pct"]) for v in kv[1]))
                for rank, (key, vals) in enumerate(ranked[:top]):
                    if max(abs(v["delta_pct"]) for v in vals) == 0:
                        break
                    rows += [{"design": lab, "objective": title_of(m, labels), "input": key, "rank": rank, **v}
                             for v in vals]
    return (pl.DataFrame(rows) if rows else None), notes


def _fmt(v: Any) -> str:
    return f"{v:,.4g}" if isinstance(v, float) else str(v)


def tornado_chart(data: pl.DataFrame, view: TornadoView, *, design_pick: alt.Parameter) -> alt.VConcatChart:
    """One bar chart per objective: the selected design's inputs by effect (% change of the objective)."""
    charts = []
    for obj in data["objective"].unique(maintain_order=True).to_list():
        sub = data.filter(pl.col("objective") == obj)
        charts.append(alt.Chart(sub).mark_bar(height={"band": 0.8}).encode(
            y=alt.Y("input:N", title="Input (knob step or technology range)",
                    sort=alt.EncodingSortField("rank", order="ascending"),
                    axis=alt.Axis(labelLimit=260)),
            x=alt.X("delta_pct:Q", title=f"Change of {obj} (%)"),
            color=alt.Color("kind:N", title="Input", scale=alt.Scale(domain=list(KIND_COLOURS),
                                                                     range=list(KIND_COLOURS.values()))),
            tooltip=[alt.Tooltip("input:N", title="Input"), alt.Tooltip("kind:N", title="Kind"),
                     alt.Tooltip("to:N", title="Set to"), alt.Tooltip("delta_pct:Q", title="Change (%)", format="+.2f")],
        ).transform_filter(alt.datum.design == design_pick).properties(
            width=view.width, height=view.height, name=f"tornado_bars_{len(charts)}"))
    rows = [alt.hconcat(*charts[i:i + 2]) for i in range(0, len(charts), 2)]
    # two subtitle lines: as one (≈1,190 px) it starts at the left edge of the first chart's input labels and
    # so widened the page past 1,280 px whenever the selected design's labels were short
    return alt.vconcat(*rows, title=alt.Title(view.title, anchor="start", fontSize=16, subtitle=[
        "The selected design (click a ringed front point or use the 'Design' dropdown): each knob one step "
        "(+1 stack or chip, +10 %, the next process node …)",
        f"and each technology range at its ends, the {view.top} largest effects per objective."]))


__all__ = ["front_uncertainty", "error_columns", "error_bar_layers", "tornado_data", "tornado_chart", "P_FRONT"]
