"""Serving view: for the design picked in the dashboard's dropdown, latency against throughput over the
arrival rate (the curve serving engineers read) of the deployment evaluate chose for it — co-located, or
the prefill/decode split of its replicas, or a prefill pool of its own chip design (a study's `prefill.*`
knobs or the workload's `prefill_design`), with its `serving.*` knobs — and the largest rate in SLO of
each pool split, the chosen one marked, for the first scenario of the mix with a `serving:` workload.
Numbers come from dse.serving.analytic on the fleet evaluate scores (dse.evaluate.replay).
"""

from __future__ import annotations

import altair as alt
import numpy as np
import polars as pl

from dse.evaluate.deployment import DEPLOYMENT_BY_NAME, POOL_PREFIX
from dse.evaluate.replay import ReplayedFleet, replay
from dse.evaluate.serving import own_split, pool_split
from dse.model.arrays import DesignArrays
from dse.report import model_data
from dse.serving import analytic as an

# load points of a curve, as fractions of each design's saturation rate (denser near saturation)
LOAD_FRACTIONS = tuple(np.round(1.0 - np.geomspace(0.95, 0.02, 24), 4))
# prefill shares tried for the pool split (co-location is share 0)
SPLIT_SHARES = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)
LATENCIES = {"ttft_p50_ms": "TTFT p50", "ttft_p99_ms": "TTFT p99", "tpot_p50_ms": "TPOT p50", "tpot_p99_ms": "TPOT p99"}
# bar colours of the pool-split panel by role (the chosen deployment stands out)
SPLIT_COLORS = {"chosen": "#e45756", "co-located": "#9d755d", "split": "#4c78a8"}


def serving_scenario(mix):
    """The first scenario of `mix` that carries a serving workload, or None."""
    return next((e.scenario for e in mix.scenarios if getattr(e.scenario, "serving", None) is not None), None)


def _pool_design(row: dict, name: str):
    """The prefill-pool design of a results row with `prefill.*` knobs (over the row's own), or None."""
    pool = {k.removeprefix(POOL_PREFIX): v for k, v in row.items() if k.startswith(POOL_PREFIX) and v is not None}
    if not pool:
        return None
    return model_data.design_from_row({k: v for k, v in row.items() if k.startswith(("chip.", "system."))} | pool,
                                      f"{name} (prefill pool)")


def _replays(designs: dict, rows: dict, scenario, tech) -> list[tuple[list[str], ReplayedFleet]]:
    """Replay the labelled designs, those with a searched prefill pool apart from those without (one
    `replay` call per group), each with its row's `serving.*` deployment knobs (NaN where unset)."""
    pools = {lab: _pool_design(rows.get(lab) or {}, lab) for lab in designs}
    out = []
    for with_pool in (False, True):
        labels = [lab for lab in designs if (pools[lab] is not None) == with_pool]
        if not labels:
            continue
        arr = DesignArrays.from_designs([designs[k] for k in labels], tech)
        prefill = DesignArrays.from_designs([pools[k] for k in labels], tech) if with_pool else None
        knobs = sorted({k for lab in labels for k, v in (rows.get(lab) or {}).items()
                        if k in DEPLOYMENT_BY_NAME and v is not None})
        deployment = {k: np.array([np.nan if (rows.get(lab) or {}).get(k) is None else float(rows[lab][k])
                                   for lab in labels]) for k in knobs}
        r = replay(arr, scenario, prefill=prefill, deployment=deployment or None)
        if r is not None:
            out.append((labels, r))
    return out


def serving_tables(designs: dict, scenario, tech, rows: dict | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(curves, splits) for labelled designs (`rows`: their results rows, for the `prefill.*` and
    `serving.*` knobs of a study): curves has one row per design × load point (rate_rps, tokens_per_s
    and the four latency percentiles in ms) of the chosen deployment; splits one row per design × pool
    split (prefill_replicas 0 = co-located) with the replicas and chips of each pool, whether the
    prefill replicas are the design's own or its pool design's, the largest rate meeting every SLO, and
    `chosen` (and `role`) for the deployment evaluate picked."""
    w = scenario.serving
    mean_out = w.output_tokens.mean()
    curve_rows, split_rows = [], []
    for labels, r in _replays(designs, rows or {}, scenario, tech):
        names = [labels[i] for i in r.idx]
        n = r.engine.n

        def build(rate, r=r):
            return r.model(w, rate)
        sat = an.saturation_rate_rps(build, n)
        for f in LOAD_FRACTIONS:
            m = build(sat * f)
            lat = {k: m.ttft_quantile(0.5 if "p50" in k else 0.99) if k.startswith("ttft")
                   else m.tpot_quantile(0.5 if "p50" in k else 0.99) for k in LATENCIES}
            for j, name in enumerate(names):
                curve_rows.append({"design": name, "load": float(f), "rate_rps": float(sat[j] * f),
                                   "tokens_per_s": float(sat[j] * f * mean_out),
                                   **{k: float(v[j]) * 1e3 for k, v in lat.items()}})
        split_rows += _split_rows(r, w, names)
    curves = pl.DataFrame(curve_rows)
    if not curve_rows:
        return curves, pl.DataFrame()
    curves = curves.filter(pl.all_horizontal(pl.col(list(LATENCIES)).is_finite()))
    splits = pl.DataFrame(split_rows).sort("chosen", descending=True).unique(
        ["design", "prefill_replicas"], keep="first", maintain_order=True).sort(["design", "prefill_replicas"])
    return curves, splits


def _split_rows(r: ReplayedFleet, w, names: list[str]) -> list[dict]:
    """Largest rate in SLO of co-location, of the chosen deployment and of each share in SPLIT_SHARES:
    of the design's own replicas (designs without a pool; cp groups stay co-located) or, with a pool
    design, that many of its replicas prefilling for all of the design's."""
    n = r.engine.n
    co = an.max_rate_rps(lambda rate: an.colocated(r.engine, w, rate, r.engines), w, n)
    chosen = an.max_rate_rps(lambda rate: r.model(w, rate), w, n)
    out = []

    def add(j, p, d, pre_chips, rate, is_chosen):
        out.append({"design": names[j], "prefill_replicas": int(p), "decode_replicas": int(d),
                    "prefill_chips": int(pre_chips), "decode_chips": int((r.dp[j] if p == 0 else d) * r.replica_chips[j]),
                    "prefill_pool": "pool design" if p and r.pool_design[j] else ("own replicas" if p else "none"),
                    "max_rate_rps": float(rate), "chosen": bool(is_chosen),
                    "role": "chosen" if is_chosen else ("co-located" if p == 0 else "split")})
    for j in range(n):
        add(j, 0, r.engines[j], 0, co[j], not r.disaggregated[j])
        if r.disaggregated[j]:
            add(j, r.prefill_replicas[j], r.decode_replicas[j], r.prefill_replicas[j] * r.prefill_replica_chips[j],
                chosen[j], True)
    link = w.disaggregation
    if link is None:
        return out
    for s in SPLIT_SHARES:
        own = own_split(s, r.dp)
        p = np.where(r.pool_design, pool_split(s, r.dp, r.replica_chips, r.prefill_replica_chips), own)
        d = np.where(r.pool_design, r.dp, np.maximum(r.dp - own, 1))
        ok = r.pool_design | ((r.dp >= 2) & (r.engines == r.dp))
        top = an.max_rate_rps(lambda rate, f=r.fleet(p, d): an.disaggregated(f, w, rate), w, n)
        for j in np.flatnonzero(ok):
            add(j, p[j], d[j], p[j] * r.prefill_replica_chips[j], top[j], False)
    return out


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
        color=alt.Color("role:N", title="Deployment", scale=alt.Scale(
            domain=list(SPLIT_COLORS), range=list(SPLIT_COLORS.values()))),
        tooltip=["design:N", alt.Tooltip("chosen:N", title="chosen by the mapping"),
                 alt.Tooltip("prefill_pool:N", title="prefill replicas"), "prefill_replicas:Q", "prefill_chips:Q",
                 "decode_replicas:Q", "decode_chips:Q", alt.Tooltip("max_rate_rps:Q", format=".3g")],
    ).transform_filter(pick).properties(
        width=260, height=220, title=alt.Title("Pool split of the fleet", subtitle="chosen: the deployment evaluate scored"))
    return alt.hconcat(lines, bars)


def serving_section(designs: dict, run, design_pick: alt.Parameter, rows: dict | None = None
                    ) -> tuple[alt.HConcatChart | None, list[str]]:
    """The page's serving section for the dropdown's designs (label → Design; `rows`: label → results
    row, for a study's `prefill.*` / `serving.*` knobs) of `run`'s mix, or (None, notes) when the mix
    has no serving workload or no design can run it."""
    if not designs:
        return None, []
    try:
        mix = model_data.mix_of(run)
        sc = serving_scenario(mix) if mix is not None else None
        if sc is None:
            return None, []
        curves, splits = serving_tables(designs, sc, model_data.technology_of(run), rows)
    except Exception as exc:  # the model cannot re-evaluate: the rest of the page still works
        return None, [f"serving view unavailable: {exc}"]
    if curves.is_empty():
        return None, [f"serving view: no picked design can run {sc.name}"]
    return serving_chart(curves, splits, design_pick=design_pick, scenario=sc.name), []
