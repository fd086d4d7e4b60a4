"""Serving view: for the design picked in the dashboard's dropdown, latency against throughput over the
arrival rate (the curve serving engineers read) and the largest rate in SLO of each prefill/decode pool
split of its replicas (a disaggregated fleet), for the first scenario of the mix with a `serving:`
workload. Numbers come from dse.serving.analytic on the engines evaluate fits (dse.evaluate.serving).
"""

from __future__ import annotations

import altair as alt
import numpy as np
import polars as pl

from dse.evaluate.replay import scenario_engines
from dse.model.arrays import DesignArrays
from dse.report import model_data
from dse.serving import analytic as an
from dse.serving.engine import DisaggFleet

# load points of a curve, as fractions of each design's saturation rate (denser near saturation)
LOAD_FRACTIONS = tuple(np.round(1.0 - np.geomspace(0.95, 0.02, 24), 4))
# prefill shares tried for the pool split (co-location is share 0)
SPLIT_SHARES = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)
LATENCIES = {"ttft_p50_ms": "TTFT p50", "ttft_p99_ms": "TTFT p99", "tpot_p50_ms": "TPOT p50", "tpot_p99_ms": "TPOT p99"}


def serving_scenario(mix):
    """The first scenario of `mix` that carries a serving workload, or None."""
    return next((e.scenario for e in mix.scenarios if getattr(e.scenario, "serving", None) is not None), None)


def serving_tables(designs: dict, scenario, tech) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(curves, splits) for labelled designs: curves has one row per design × load point (rate_rps,
    tokens_per_s and the four latency percentiles in ms); splits one row per design × prefill share
    (0 = co-located) with the prefill / decode replicas and the largest rate meeting every SLO."""
    labels = list(designs)
    arr = DesignArrays.from_designs([designs[k] for k in labels], tech)
    engine, idx, dp = scenario_engines(arr, scenario)
    if engine is None:
        return pl.DataFrame(), pl.DataFrame()
    w = scenario.serving
    names = [labels[i] for i in idx]
    mean_out = w.output_tokens.mean()
    build = lambda r: an.colocated(engine, w, r, dp)  # noqa: E731
    sat = an.saturation_rate_rps(build, engine.n)
    rows = []
    for f in LOAD_FRACTIONS:
        m = build(sat * f)
        lat = {k: m.ttft_quantile(0.5 if "p50" in k else 0.99) if k.startswith("ttft")
               else m.tpot_quantile(0.5 if "p50" in k else 0.99) for k in LATENCIES}
        for j, name in enumerate(names):
            rows.append({"design": name, "load": float(f), "rate_rps": float(sat[j] * f),
                         "tokens_per_s": float(sat[j] * f * mean_out),
                         **{k: float(v[j]) * 1e3 for k, v in lat.items()}})
    curves = pl.DataFrame(rows).filter(pl.all_horizontal(pl.col(list(LATENCIES)).is_finite()))
    link = w.disaggregation
    gbps, lat_s = (link.link_gbps, link.link_latency_ms / 1e3) if link is not None else (50.0, 1e-3)
    co = an.max_rate_rps(build, w, engine.n)
    split_rows = [{"design": name, "prefill_share": 0.0, "prefill_replicas": 0, "decode_replicas": int(dp[j]),
                   "max_rate_rps": float(co[j])} for j, name in enumerate(names)]
    for s in SPLIT_SHARES:
        p = np.clip(np.rint(s * dp), 1, np.maximum(dp - 1, 1)).astype(np.int64)
        fleet = DisaggFleet(engine, engine, p, np.maximum(dp - p, 1), gbps, lat_s)
        top = an.max_rate_rps(lambda r, fleet=fleet: an.disaggregated(fleet, w, r), w, engine.n)
        split_rows += [{"design": name, "prefill_share": s, "prefill_replicas": int(p[j]),
                        "decode_replicas": int(dp[j] - p[j]), "max_rate_rps": float(top[j])}
                       for j, name in enumerate(names) if dp[j] >= 2]
    splits = pl.DataFrame(split_rows).unique(["design", "prefill_replicas"], keep="first", maintain_order=True)
    return curves, splits


def serving_chart(curves: pl.DataFrame, splits: pl.DataFrame, *, design_pick: alt.Parameter,
                  scenario: str) -> alt.HConcatChart:
    """Latency percentiles vs throughput for the picked design, and its max rate in SLO per pool split."""
    long = curves.unpivot(index=["design", "load", "rate_rps", "tokens_per_s"], on=list(LATENCIES),
                          variable_name="percentile", value_name="latency_ms").with_columns(
        pl.col("percentile").replace_strict(LATENCIES).alias("percentile"),
        pl.when(pl.col("percentile").str.starts_with("ttft")).then(pl.lit("time to first token"))
        .otherwise(pl.lit("time per output token")).alias("metric"))
    pick = alt.datum.design == design_pick
    lines = alt.Chart(alt.Data(values=long.to_dicts())).mark_line(point=True).encode(
        x=alt.X("tokens_per_s:Q", title="Output tokens/s (all replicas)"),
        y=alt.Y("latency_ms:Q", title="Latency (ms)", scale=alt.Scale(type="log")),
        color=alt.Color("percentile:N", title="Percentile"),
        tooltip=["design:N", "percentile:N", alt.Tooltip("rate_rps:Q", format=".3g", title="requests/s"),
                 alt.Tooltip("tokens_per_s:Q", format=",.0f"), alt.Tooltip("latency_ms:Q", format=".4g"),
                 alt.Tooltip("load:Q", format=".0%", title="of saturation")],
    ).transform_filter(pick).properties(width=300, height=220).facet(
        column=alt.Column("metric:N", title=None)).properties(
        title=f"{scenario}: latency vs throughput over the arrival rate (selected design)")
    bars = alt.Chart(alt.Data(values=splits.to_dicts())).mark_bar().encode(
        x=alt.X("prefill_replicas:O", title="Prefill replicas (0 = co-located)"),
        y=alt.Y("max_rate_rps:Q", title="Largest rate meeting every SLO (requests/s)"),
        color=alt.condition(alt.datum.prefill_replicas == 0, alt.value("#9d755d"), alt.value("#4c78a8")),
        tooltip=["design:N", "prefill_replicas:Q", "decode_replicas:Q", alt.Tooltip("max_rate_rps:Q", format=".3g")],
    ).transform_filter(pick).properties(width=260, height=220, title="Pool split of a disaggregated fleet")
    return alt.hconcat(lines, bars)


def serving_section(designs: dict, run, design_pick: alt.Parameter) -> tuple[alt.HConcatChart | None, list[str]]:
    """The page's serving section for the dropdown's designs (label → Design) of `run`'s mix, or
    (None, notes) when the mix has no serving workload or no design can run it."""
    if not designs:
        return None, []
    try:
        mix = model_data.mix_of(run)
        sc = serving_scenario(mix) if mix is not None else None
        if sc is None:
            return None, []
        curves, splits = serving_tables(designs, sc, model_data.technology_of(run))
    except Exception as exc:  # the model cannot re-evaluate: the rest of the page still works
        return None, [f"serving view unavailable: {exc}"]
    if curves.is_empty():
        return None, [f"serving view: no picked design can run {sc.name}"]
    return serving_chart(curves, splits, design_pick=design_pick, scenario=sc.name), []
