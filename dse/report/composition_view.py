"""Front composition: share of front designs vs all feasible trials per knob value (or value bin).

Aggregated in Python over every trial (not the thinned sample), so the shares are exact.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import polars as pl

from dse.report.labels import title_of
from dse.report.rundata import as_text
from dse.report.spec import CompositionView

GROUPS = ["all feasible trials", "Pareto front"]


def varying_knobs(df: pl.DataFrame, knobs: list[str]) -> list[str]:
    """Knobs with more than one distinct value among the rows."""
    return [k for k in knobs if k in df.columns and as_text(df[k]).n_unique() > 1]


def _bins(values: np.ndarray, nbins: int) -> tuple[np.ndarray, list[str]]:
    """Bin index per value and bin labels; log-spaced edges when positive and spanning more than 20×."""
    v = values[np.isfinite(values)]
    lo, hi = float(v.min()), float(v.max())
    if lo > 0 and hi > 20 * lo:
        edges = np.geomspace(lo, hi, nbins + 1)
    else:
        edges = np.linspace(lo, hi, nbins + 1)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, nbins - 1)
    labels = [f"{_fmt(a)}–{_fmt(b)}" for a, b in zip(edges[:-1], edges[1:])]
    return idx, labels


def _fmt(x: float) -> str:
    """Compact bin edge: 3 significant digits, k/M suffixes for large values."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def composition_table(df: pl.DataFrame, front: np.ndarray, knobs: list[str], nbins: int) -> pl.DataFrame:
    """Rows (knob, value, order, group, share_pct, count) for every knob over feasible trials and the front."""
    feas = df["feasible"].fill_null(False).to_numpy().astype(bool)
    rows = []
    for k in knobs:
        s = as_text(df[k])
        numeric = s.dtype.is_numeric() and s.dtype != pl.Boolean
        if numeric and s.n_unique() > nbins:
            idx, labels = _bins(s.cast(pl.Float64).to_numpy(), nbins)
            keys = np.array(labels, dtype=object)[idx]
            order = {lab: i for i, lab in enumerate(labels)}
        else:
            keys = s.cast(pl.String).to_numpy().astype(object)
            uniq = sorted(set(keys.tolist()), key=lambda t: (float(t) if numeric else 0, str(t)))
            order = {u: i for i, u in enumerate(uniq)}
        for group, mask in ((GROUPS[0], feas), (GROUPS[1], front & feas)):
            total = int(mask.sum())
            vals, counts = np.unique(keys[mask].astype(str), return_counts=True) if total else ([], [])
            got = dict(zip(vals, counts))
            for value, o in order.items():
                c = int(got.get(str(value), 0))
                rows.append({"knob": k, "value": str(value), "order": o, "group": group, "count": c,
                             "share_pct": 100.0 * c / total if total else 0.0})
    return pl.DataFrame(rows, schema={"knob": pl.String, "value": pl.String, "order": pl.Int64, "group": pl.String,
                                      "count": pl.Int64, "share_pct": pl.Float64})


def composition_chart(table: pl.DataFrame, view: CompositionView, labels: dict[str, str] | None = None) -> alt.Chart:
    """Small grouped bar charts, one per knob: front share next to the share among all feasible trials."""
    charts = []
    for i, k in enumerate(dict.fromkeys(table["knob"].to_list())):
        sub = table.filter(pl.col("knob") == k)
        sort = sub.sort("order")["value"].unique(maintain_order=True).to_list()
        charts.append(alt.Chart(sub).mark_bar().encode(
            x=alt.X("value:N", title=title_of(k, labels), sort=sort, scale=alt.Scale(paddingInner=0.35),
                    axis=alt.Axis(labelAngle=-40, labelLimit=90)),
            xOffset=alt.XOffset("group:N", sort=GROUPS),
            y=alt.Y("share_pct:Q", title="Share of designs (%)"),
            color=alt.Color("group:N", title="Among", sort=GROUPS, scale=alt.Scale(
                domain=GROUPS, range=["#bbbbbb", "#d62728"])),
            tooltip=[alt.Tooltip("value:N", title=title_of(k, labels)), alt.Tooltip("group:N", title="Among"),
                     alt.Tooltip("count:Q", title="Designs"), alt.Tooltip("share_pct:Q", title="Share (%)", format=".1f")],
        ).properties(width=180, height=130, name=f"composition_{i}"))
    # each panel has its own number of categories: its xOffset (group) scale must follow its own band width
    rows = [alt.hconcat(*charts[j : j + view.columns]).resolve_scale(xOffset="independent")
            for j in range(0, len(charts), view.columns)]
    return alt.vconcat(*rows, title=alt.Title(view.title, subtitle="Share of each knob value on the Pareto front "
                                              "(red) vs among all feasible trials (grey), over every trial.",
                                              anchor="start", fontSize=16)).resolve_scale(xOffset="independent")
