"""A reduced cliff hunter (issue 11, benchmarks/cliff_hunter.py): random designs of search_spaces/full.yaml,
every numeric knob stepped by +2 % (integers by at least 1), every metric of a mix compared.

It fails when
- a step improves a metric by more than 5× the relative step (+2 % buying > 10 %) outside one of the
  documented physical thresholds below, or
- more silicon or memory (cores, array rows/columns, SRAM, memory stacks, links) lowers chip or system cost
  or chip TDP / system power at all.

Documented physical thresholds (a small step may cross them and move a metric by much more than 10 %):
- FEASIBILITY: only designs feasible before and after the step are compared (a design may start to fit the
  reticle, the shoreline or the package; a model may start to fit in memory or SRAM).
- PLAN: the scenario's mapping picked another plan (tp, pp, dp, ep, batch or chips used): a plan that did
  not fit before now fits (a model no longer fitting on fewer chips, a larger batch whose KV cache now
  fits), or two plans trade places on the scenario's goal; the by-products of a plan (its latency when
  the goal is throughput, its energy, its cost per token) jump with the switch.
- WAVES: a knob that reshapes the MAC arrays (cores, array rows or columns) changes how many tiles of a
  GEMM run per wave (`dse.model.perf.gemm_utilization`): one more core can remove a partial last wave
  (wave quantization, as on GPUs), so a compute-bound operator may speed up by up to 2× in one step;
  these knobs may buy up to +100 % on performance metrics (never more: that would be another cliff).
- SPLIT: the chip's die count changed (the reticle, the package or the split priced as a choice) or its
  spare cores fell at the reticle (a big die that can no longer carry a spare loses yield): cost and the
  power of die-to-die PHYs may jump. For growing knobs cost only jumps up (the split and the spares are
  priced choices, so the cost check has no exemption); power may fall where the cheaper split of the
  bigger chip has fewer dies (less traffic crosses a die edge, fewer PHYs leak): the power check skips
  rows whose die count changed. Fused-off spare cores are power-gated, so spares do not move power.
- RESIDENCY: a scenario that streams part of its weights keeps W − S bytes off chip; a step of SRAM
  moves step·S of them into SRAM, so its time is linear in S with elasticity ≈ S/(W − S), unbounded as
  the model nears a full fit (the "model no longer fitting" threshold approached continuously). Such a
  gain is explained when it is a slope: half the step buys at most 60 % of it (a cliff buys it all).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dse.model.technology import default_technology
from dse.study.space import load_space

ROOT = Path(__file__).resolve().parents[1]
TECH = default_technology()
N_DESIGNS = 200
STEP = 0.02
ELASTICITY = 5.0                 # +2 % may buy at most +10 %
MIX = "balanced"
GROWING = ("chip.cores", "chip.array_rows", "chip.array_cols", "chip.sram_mb", "chip.memory_stacks", "chip.links")
NEVER_CHEAPER = ("chip_cost_usd", "system_cost_usd", "tdp_w", "peak_power_w")  # power: see SPLIT; peak_power_w = chips × TDP (power_w is the workload power: a faster chip may draw less)
# the thresholds' rules (exempt rows, the WAVES allowance) live in benchmarks/cliff_hunter.py: one definition


def _hunter():
    spec = importlib.util.spec_from_file_location("cliff_hunter", ROOT / "benchmarks" / "cliff_hunter.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def hunted():
    """Base and stepped metrics of every numeric knob: {knob: (live rows, relative step, stepped metrics)}."""
    from dse.model.arrays import DesignArrays
    from dse.model.knobs import BY_NAME

    h = _hunter()
    space = load_space(ROOT / "search_spaces" / "full.yaml")
    cols, numeric = h.sample(space, N_DESIGNS, seed=3)
    tech = default_technology()
    provider = h.mix_metrics(MIX)
    base = provider(DesignArrays.from_columns(cols, tech))
    out = {}
    for knob in numeric:
        new, step = h.step_column(cols[knob], BY_NAME[knob].type is int, STEP)
        live = h.active_rows(space, knob, cols[knob]) & (step > 0)
        new = np.where(live, new, np.asarray(cols[knob], float))
        out[knob] = (live, step, provider(DesignArrays.from_columns({**cols, knob: new}, tech)), new)
    return h, cols, numeric, base, out


def test_every_numeric_knob_of_the_space_is_stepped(hunted):
    _, _, numeric, _, out = hunted
    # ranges and numeric choices: cores, clock, SRAM, stacks, links, array rows/columns, chips
    assert {"chip.cores", "chip.clock_ghz", "chip.sram_mb", "chip.memory_stacks", "chip.links",
            "chip.array_rows", "chip.array_cols", "system.num_chips"} <= set(numeric)
    assert all(out[k][0].sum() > N_DESIGNS // 3 for k in numeric)


def test_no_small_step_buys_a_large_gain(hunted):
    h, cols, numeric, base, out = hunted
    offenders = []
    checked = 0
    for knob in numeric:
        live, step, stepped, new = out[knob]
        both = np.asarray(base["feasible"], bool) & np.asarray(stepped["feasible"], bool) & live
        for m in base:
            if m == "feasible" or base[m].dtype.kind not in "fiu":
                continue
            better = h.better_of(m, MIX)
            if better == "none":
                continue
            b, s = np.asarray(base[m], float), np.asarray(stepped[m], float)
            ok = both & (np.abs(b) > 1e-12) & ~h.exempt(base, stepped, m)
            g = np.where(ok, h.gain(b, s, better), 0.0)
            bad = ok & (g > h.allowed_gain(knob, m, step, ELASTICITY) + 1e-9)
            over = np.flatnonzero(bad)
            bad[over[h.residency_slope(h.mix_metrics(MIX), cols, knob, over, new, base, m, better, g, TECH)]] = False
            checked += int(ok.sum())
            for i in np.flatnonzero(bad)[:1]:
                offenders.append(f"{knob} +{step[i]:.1%} → {m} {b[i]:.4g} → {s[i]:.4g} ({g[i]:+.1%}); "
                                 f"design {({k: h._plain(v[i]) for k, v in cols.items()})}")
    assert not offenders, "\n".join(offenders[:10])
    assert checked > 5_000


@pytest.mark.parametrize("knob", GROWING)
def test_more_silicon_or_memory_never_lowers_cost_or_power(hunted, knob):
    _, cols, _, base, out = hunted
    live, _, stepped, _ = out[knob]
    both = np.asarray(base["feasible"], bool) & np.asarray(stepped["feasible"], bool) & live
    assert both.sum() > N_DESIGNS // 10
    resplit = base["num_dies"] != stepped["num_dies"]
    for m in NEVER_CHEAPER:
        rows = both & ~resplit if m in ("tdp_w", "peak_power_w") else both
        lower = rows & (np.asarray(stepped[m], float) < np.asarray(base[m], float) * (1 - 1e-9))
        i = np.flatnonzero(lower)
        assert not i.size, (knob, m, base[m][i[:3]], stepped[m][i[:3]],
                            {k: v[i[0]] for k, v in cols.items()} if i.size else None)


def test_residency_rule_explains_a_slope_and_not_a_step():
    """RESIDENCY exempts a gain of SRAM on streamed weights only when half the step buys about half of it."""
    h = _hunter()
    n = 2
    cols = {"chip.sram_mb": np.array([1000.0, 1000.0])}
    base = {"feasible": np.ones(n, bool), "s.tpot_ms": np.array([10.0, 10.0]),
            "s.weights": np.array(["weights-streamed", "sram-resident"], object)}
    new = np.array([1020.0, 1020.0])

    def slope(arr):  # time linear in SRAM: −0.05 ms per MB
        s = np.asarray(arr.knobs["chip.sram_mb"], float)
        return {"feasible": np.ones(len(s), bool), "s.tpot_ms": 10.0 - 0.05 * (s - 1000.0)}

    def step(arr):  # a cliff at 1005 MB
        s = np.asarray(arr.knobs["chip.sram_mb"], float)
        return {"feasible": np.ones(len(s), bool), "s.tpot_ms": np.where(s > 1005.0, 9.0, 10.0)}

    for provider, expect in ((slope, [True, False]), (step, [False, False])):
        after = provider(type("A", (), {"knobs": {"chip.sram_mb": new}})())
        g = h.gain(base["s.tpot_ms"], after["s.tpot_ms"], "min")
        assert (g > 0.1).all()  # +2 % of SRAM buys > 10 %: over the elasticity limit
        got = h.residency_slope(lambda a: provider(_Arr(a)), cols, "chip.sram_mb", np.arange(n), new, base,
                                "s.tpot_ms", "min", g, TECH)
        assert got.tolist() == expect


class _Arr:
    """The knob columns of a DesignArrays, for the fake providers above."""

    def __init__(self, arr):
        self.knobs = {"chip.sram_mb": np.asarray(arr.knobs["chip.sram_mb"], float)}
