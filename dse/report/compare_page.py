"""An offline HTML page comparing designs outside any study: the rooflines of every design overlaid
(roofs and operators coloured by design) and side-by-side tables, for `dse compare --html` and
`dse roofline --html`, in the same offline shell as the dashboard (dse.report.html_page)."""

from __future__ import annotations

import html as html_lib
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl

from dse.report.html_page import embed_page
from dse.report.roofline_view import BOUND_TITLES, roof_lines

OP_COLUMNS = ("phase", "name", "kind", "count", "flops", "bytes", "intensity_flop_per_byte", "attainable_tflops",
              "time_s", "share", "bound")


def roofline_frames(designs: dict[str, Any], scenarios: list, *, software: str | None = None,
                    phase: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Operator rows and roofs (per design and scenario) from `operator_breakdown`, plus notes for the
    (design, scenario) pairs that cannot run."""
    from dse.errors import DseUserError
    from dse.evaluate import operator_breakdown

    parts, roofs, notes = [], [], []
    for label, design in designs.items():
        for sc in scenarios:
            try:
                info = operator_breakdown(design, sc, software=software, phase=phase)
            except DseUserError as exc:
                notes.append(f"{label} on {sc.name}: {exc}")
                continue
            rows = [{k: r[k] for k in OP_COLUMNS} for r in info["operators"]]
            if rows:
                parts.append(pl.DataFrame(rows).with_columns(
                    pl.lit(label).alias("design"), pl.lit(sc.name).alias("scenario"),
                    pl.lit(info["mapping"]).alias("mapping")))
            roofs.append({"design": label, "scenario": sc.name, "precision": info["compute_precision"],
                          "peak_tflops": info["peak_tflops"], "mem_tbps": info["mem_bw_tbps"],
                          "sram_tbps": info["sram_bw_tbps"], "knee": info["knee_flop_per_byte"]})
    ops = pl.concat(parts) if parts else pl.DataFrame()
    return ops, pl.DataFrame(roofs), notes


def overlaid_roofline(ops: pl.DataFrame, roofs: pl.DataFrame, title: str, width: int = 760,
                      height: int = 420) -> alt.LayerChart:
    """Every design's roofs (line) and operators (points) on one log-log chart, coloured by design."""
    pts = ops.filter((pl.col("intensity_flop_per_byte") > 0) & (pl.col("attainable_tflops") > 0)) \
        if len(ops) else ops
    lo, hi = 0.05, 1e5
    if len(pts):
        lo, hi = float(pts["intensity_flop_per_byte"].min()) / 3, float(pts["intensity_flop_per_byte"].max()) * 3
    kn = roofs.filter(pl.col("mem_tbps") > 0) if len(roofs) else roofs
    if len(kn):
        lo, hi = min(lo, float(kn["knee"].min()) / 10), max(hi, float(kn["knee"].max()) * 10)
    lines = roof_lines(roofs.drop("knee"), lo, hi) if len(roofs) else pl.DataFrame()
    designs = list(dict.fromkeys(roofs["design"].to_list())) if len(roofs) else []
    colour = alt.Color("design:N", title="Design", scale=alt.Scale(domain=designs),
                       legend=alt.Legend(orient="bottom", columns=3, labelLimit=260))
    x = alt.X("intensity:Q", title="Arithmetic intensity (FLOP/byte moved)", scale=alt.Scale(type="log", domain=[lo, hi]))
    y = alt.Y("tflops:Q", title="Attainable performance (TFLOP/s per chip)", scale=alt.Scale(type="log"))
    layers = []
    if len(lines):
        layers.append(alt.Chart(lines).mark_line(strokeWidth=1.8, clip=True).encode(
            x=x, y=y, color=colour, detail="scenarios:N",
            strokeDash=alt.StrokeDash("roof:N", title="Roof", scale=alt.Scale(
                domain=["off-chip memory roof", "SRAM roof"], range=[[1, 0], [5, 3]])),
            tooltip=[alt.Tooltip("design:N", title="Design"), alt.Tooltip("roof:N", title="Roof"),
                     alt.Tooltip("precision:N", title="Precision")],
        ).properties(name="compare_roofs"))
    if len(pts):
        pts = pts.rename({"intensity_flop_per_byte": "intensity"}).with_columns(
            pl.col("bound").replace(BOUND_TITLES).alias("bound_title"), (pl.col("share") * 100).alias("share_pct"),
            (pl.col("time_s") * 1e3).alias("time_ms"))
        layers.append(alt.Chart(pts).mark_point(filled=True, opacity=0.8).encode(
            x=x, y=alt.Y("attainable_tflops:Q", scale=alt.Scale(type="log")), color=colour,
            shape=alt.Shape("scenario:N", title="Scenario", legend=alt.Legend(orient="bottom")),
            size=alt.Size("share_pct:Q", title="Share of phase time (%)", scale=alt.Scale(range=[25, 400]),
                          legend=None),
            tooltip=[alt.Tooltip("design:N", title="Design"), alt.Tooltip("scenario:N", title="Scenario"),
                     alt.Tooltip("mapping:N", title="Mapping"), alt.Tooltip("phase:N", title="Phase"),
                     alt.Tooltip("name:N", title="Operator"),
                     alt.Tooltip("intensity:Q", title="Intensity (FLOP/byte)", format=",.3~g"),
                     alt.Tooltip("attainable_tflops:Q", title="Attained (TFLOP/s)", format=",.3~g"),
                     alt.Tooltip("time_ms:Q", title="Time (ms)", format=",.4~g"),
                     alt.Tooltip("share_pct:Q", title="Share of phase (%)", format=".1f"),
                     alt.Tooltip("bound_title:N", title="Bound by")],
        ).properties(name="compare_ops"))
    if not layers:
        layers.append(alt.Chart(pl.DataFrame({"x": [0]})).mark_text(text="no design could run these scenarios"))
    return alt.layer(*layers).properties(
        width=width, height=height,
        title=alt.Title(title, subtitle="Lines: each design's off-chip (solid) and SRAM (dashed) roof; points: its "
                        "operators on its best mapping (size = share of the phase's time).", anchor="start"))


def table_html(title: str, header: list[str], rows: list[list[str]]) -> str:
    """An escaped HTML table: first column left-aligned (row names), the rest right-aligned."""
    head = "".join(f"<th>{html_lib.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html_lib.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<h2>{html_lib.escape(title)}</h2><table class=cmp><tr>{head}</tr>{body}</table>"


_STYLE = """
 body { max-width: 1240px; }
 h1 { font-size: 22px; margin: 14px 0 4px; } h2 { font-size: 16px; margin: 18px 0 4px; }
 table.cmp { border-collapse: collapse; font-size: 13px; }
 table.cmp td, table.cmp th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
 table.cmp td:first-child, table.cmp th:first-child { text-align: left; }
"""


def render_compare_html(chart: alt.TopLevelMixin, title: str, subtitle: str = "", tables: str = "",
                        notes: list[str] | None = None) -> str:
    """The self-contained page (dse.report.html_page's shell): the chart and the tables."""
    note_html = ""
    if notes:
        note_html = "<ul class=notes>" + "".join(f"<li>{html_lib.escape(n)}</li>" for n in notes) + "</ul>"
    body = (f"<h1>{html_lib.escape(title)}</h1>\n<p>{html_lib.escape(subtitle)}</p>\n{note_html}\n"
            f"<div id=\"dse-error\"></div>\n<div id=\"vis\"></div>\n{tables}")
    return embed_page(title, chart, body, style=_STYLE, failure="Could not draw the roofline: ")


def write_compare_html(designs: dict[str, Any], scenarios: list, out: Path | str, *, software: str | None = None,
                       phase: str | None = None, title: str = "Design comparison", subtitle: str = "",
                       tables: str = "") -> Path:
    """Write the overlaid-roofline page of `designs` on `scenarios` (plus `tables` HTML) to `out`."""
    ops, roofs, notes = roofline_frames(designs, scenarios, software=software, phase=phase)
    chart = overlaid_roofline(ops, roofs, title=f"Rooflines: {', '.join(designs)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sub = subtitle or (f"Scenario{'s' if len(scenarios) != 1 else ''}: {', '.join(s.name for s in scenarios)}"
                       + (f" · phase {phase}" if phase else ""))
    out.write_text(render_compare_html(chart, title, sub, tables, notes), encoding="utf-8")
    return out
