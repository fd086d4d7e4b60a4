"""Area / cost / power: calibration against public die sizes and cost estimates, hand-computed
dies-per-wafer and yield, and property tests over random designs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.catalog import load_catalog_design
from dse.model.area import chip_area, design_area
from dse.model.arrays import DesignArrays
from dse.model.cost import chip_cost, design_cost, dies_per_wafer, negative_binomial_yield, tco_usd_per_hour
from dse.model.hardware import ChipDesign, Design
from dse.model.power import chip_power, design_power
from dse.model.technology import default_technology

TECH = default_technology()


def test_a100_die_area_within_15pct():
    a = design_area(load_catalog_design("A100-SXM-80GB"))
    assert a["num_dies"] == 1
    assert a["die_mm2"] == pytest.approx(826, rel=0.15)  # GA100 826 mm² (LLMCompass die_area.csv)


def test_h100_die_area_within_15pct():
    a = design_area(load_catalog_design("H100-SXM"))
    assert a["num_dies"] == 1
    assert a["die_mm2"] == pytest.approx(814, rel=0.15)  # GH100 814 mm²


def test_h100_manufacturing_cost_within_40pct():
    c = design_cost(load_catalog_design("H100-SXM"))
    manufacturing = c["die_usd"] + c["memory_usd"] + c["package_usd"]
    assert manufacturing == pytest.approx(3320, rel=0.25)  # SiliconAnalysts ≈ $3,320
    assert c["memory_usd"] == pytest.approx(1400, rel=0.05)  # 80 GB × $17.5/GB (SA HBM $1.4k)


def test_dies_per_wafer_hand_computed():
    # 814 mm²: π·150²/814 = 70,685.8/814 = 86.84; π·300/√1628 = 942.48/40.35 = 23.36 → 63.48
    assert dies_per_wafer(814.0) == pytest.approx(63.48, rel=0.01)
    # 100 mm²: 706.86 − 942.48/14.142 = 706.86 − 66.64 = 640.2
    assert dies_per_wafer(100.0) == pytest.approx(640.2, rel=0.01)
    # 400 mm²: 176.71 − 942.48/28.28 = 176.71 − 33.32 = 143.4
    assert dies_per_wafer(400.0) == pytest.approx(143.4, rel=0.01)


def test_yield_hand_computed():
    # 814 mm² = 8.14 cm², D0 0.1/cm², α=3: (1 + 0.814/3)^-3 = 1.27133^-3 = 0.4866
    assert negative_binomial_yield(814.0, 0.1, 3) == pytest.approx(0.4866, rel=0.01)
    # α=10: (1 + 0.0814)^-10 = 0.4574
    assert negative_binomial_yield(814.0, 0.1, 10) == pytest.approx(0.4574, rel=0.01)
    # 400 mm², α=3: (1 + 0.4/3)^-3 = 1.13333^-3 = 0.6870
    assert negative_binomial_yield(400.0, 0.1, 3) == pytest.approx(0.6870, rel=0.01)


def test_h100_die_cost_from_formulas():
    c = design_cost(load_catalog_design("H100-SXM"))
    a = design_area(load_catalog_design("H100-SXM"))
    dpw = dies_per_wafer(a["die_mm2"])
    # harvested yield by hand: Σ_{k≤s} Γ(3+k)/(Γ(3)k!)·x^k/(1+t)^(3+k), D0 0.11/cm², α 3
    s = a["spare_cores"]
    t = a["die_mm2"] / 100 * 0.11 / 3
    x = a["array_mm2"] / 100 * 0.11 / 3
    y = sum(math.gamma(3 + k) / (2 * math.factorial(k)) * x ** k / (1 + t) ** (3 + k) for k in range(s + 1))
    assert a["nonredundant_mm2"] + a["array_mm2"] == pytest.approx(a["die_mm2"], rel=1e-9)  # no padding here
    assert c["yield_"] == pytest.approx(y, rel=1e-9)
    assert c["die_usd"] == pytest.approx(16988 / (dpw * y), rel=1e-9)


def test_reticle_split_and_infeasible_reasons():
    big = dict(process_node="n5", cores=160, array_rows=128, array_cols=128, sram_mb=256, memory="hbm3e",
               memory_stacks=8, packaging="cowos_l")
    auto = design_area(Design(chip=ChipDesign(**big)))
    assert auto["num_dies"] >= 2 and auto["die_mm2"] <= 858 and auto["d2d_mm2"] > 0 and auto["feasible"]
    no = design_area(Design(chip=ChipDesign(**big, allow_chiplets=False)))
    assert not no["feasible"] and "reticle" in no["reason"] and "chiplets are disabled" in no["reason"]
    few = design_area(Design(chip=ChipDesign(**big, dies=1)))
    assert not few["feasible"] and "reticle" in few["reason"]
    org = design_area(Design(chip=ChipDesign(process_node="n5", cores=8, memory="hbm3", memory_stacks=2,
                                             packaging="organic")))
    assert not org["feasible"] and "interposer" in org["reason"]
    huge = design_area(Design(chip=ChipDesign(process_node="n5", cores=256, memory="hbm3e", memory_stacks=24,
                                              packaging="cowos_s")))
    assert not huge["feasible"] and "cowos_s area" in huge["reason"] and "limit" in huge["reason"]


def test_wafer_scale_allows_beyond_reticle():
    a = design_area(load_catalog_design("Cerebras-WSE-3"))
    assert a["feasible"] and a["num_dies"] == 1 and a["die_mm2"] > 858
    assert a["die_mm2"] == pytest.approx(46225, rel=0.15)


def test_power_and_tco():
    p = design_power(load_catalog_design("H100-SXM"))
    assert p["tdp_w"] == pytest.approx(700, rel=0.25)  # published 700 W
    assert p["system_power_w"] == pytest.approx(8 * p["tdp_w"])
    capped = design_power(load_catalog_design("B200"))
    assert capped["tdp_w"] == 1000 and capped["peak_w"] >= 1000
    # $100k system, 10 kW: capex 100000/(1.5·8766) + 10·1.5·0.067 + 10000·10/(12·8766)
    expect = 100000 / (1.5 * 8766) + 10 * 1.5 * 0.067 + 10000 * 10 / (12 * 8766)
    assert float(tco_usd_per_hour(100000, 10000)) == pytest.approx(expect)


# ------------------------------------------------------------------ properties
NODES = ["n7", "n5", "n3", "n16"]
design_st = st.fixed_dictionaries({
    "chip.process_node": st.sampled_from(NODES),
    "chip.cores": st.integers(1, 256),
    "chip.array_rows": st.sampled_from([8, 16, 32, 64, 128]),
    "chip.array_cols": st.sampled_from([8, 16, 32, 64, 128]),
    "chip.clock_ghz": st.floats(0.3, 3.0),
    "chip.sram_mb": st.floats(0, 2048),
    "chip.sram_kind": st.sampled_from(["scratchpad", "cache"]),
    "chip.core_style": st.sampled_from(["systolic", "simt"]),
    "chip.memory": st.sampled_from(["hbm3", "hbm3e", "hbm4", "lpddr5x", "gddr7", "none"]),
    "chip.memory_stacks": st.integers(1, 8),
    "chip.links": st.integers(0, 18),
    "chip.packaging": st.sampled_from(["organic", "cowos_s", "cowos_l"]),
    "chip.dies": st.sampled_from([1, 2, 4]),
    "system.num_chips": st.sampled_from([1, 2, 8, 64]),
})


def _evaluate(cols: dict) -> tuple:
    arr = DesignArrays.from_columns({k: [v] for k, v in cols.items()}, TECH)
    area = chip_area(arr)
    return arr, area, chip_cost(arr, area), chip_power(arr, area)


@settings(max_examples=60, deadline=None)
@given(design_st, st.sampled_from(["chip.cores", "chip.array_rows", "chip.sram_mb"]))
def test_area_and_cost_grow_with_macs_and_sram(cols, knob):
    cols = dict(cols)
    if knob == "chip.sram_mb":
        cols[knob] = max(cols[knob], 1.0)
    bigger = {**cols, knob: cols[knob] * 2}
    _, a1, c1, p1 = _evaluate(cols)
    _, a2, c2, p2 = _evaluate(bigger)
    # equal only when the die is I/O-limited (padded to the edge its memory PHYs need)
    assert a2.total_mm2[0] > a1.total_mm2[0] or (a1.pad_mm2[0] > 0 and a2.total_mm2[0] == a1.total_mm2[0])
    # dies fixed: bigger dies never cost less (an I/O-padded die keeps its area: equal up to rounding)
    assert c2.chip_usd[0] >= c1.chip_usd[0] * (1 - 1e-12)
    assert p2.peak_w[0] >= p1.peak_w[0]  # never lower (equal when a cap or floor binds)


@settings(max_examples=60, deadline=None)
@given(st.floats(1, 5000), st.floats(1, 5000), st.floats(0.01, 0.5), st.sampled_from([1, 2, 3, 10]))
def test_yield_falls_with_area(a1, a2, d0, alpha):
    lo, hi = sorted((a1, a2))
    if hi - lo < 1e-6:
        return
    assert negative_binomial_yield(hi, d0, alpha) < negative_binomial_yield(lo, d0, alpha)
    assert dies_per_wafer(hi) <= dies_per_wafer(lo)


messy = st.fixed_dictionaries({
    "chip.cores": st.one_of(st.integers(-5, 4096), st.floats(allow_nan=True)),
    "chip.sram_mb": st.one_of(st.floats(-10, 1e5), st.just(float("nan"))),
    "chip.clock_ghz": st.floats(-1, 20),
    "chip.memory": st.sampled_from(["hbm3e", "none", "hbm7", "lpddr5x"]),
    "chip.memory_stacks": st.integers(-1, 40),
    "chip.process_node": st.sampled_from(NODES + ["n2"]),
    "chip.packaging": st.sampled_from(["organic", "cowos_s", "cowos_l", "wafer_scale", "glue"]),
    "chip.dies": st.one_of(st.none(), st.integers(0, 8)),
    "chip.allow_chiplets": st.booleans(),
    "chip.links": st.integers(-2, 64),
    "system.num_chips": st.integers(0, 1024),
})


@settings(max_examples=150, deadline=None)
@given(messy)
def test_no_nan_or_negative_and_reasons(cols):
    arr, area, cost, power = _evaluate(cols)
    figures = [*(getattr(area, k) for k in ("mac_mm2", "sram_mm2", "total_mm2", "die_mm2", "package_mm2")),
               *(getattr(cost, k) for k in cost.__dataclass_fields__),
               *(getattr(power, k) for k in power.__dataclass_fields__ if k != "reason"),
               arr.mem_bw_tbps, arr.knee_flop_per_byte, *arr.peak_tflops.values()]
    for f in figures:
        f = np.asarray(f, dtype=float)
        assert np.all(np.isfinite(f)) and np.all(f >= 0)
    feasible, reason = bool(area.feasible[0]), str(area.reason[0])
    assert feasible == (reason == "")
    assert bool(power.feasible[0]) == (str(power.reason[0]) == "")
    if not arr.valid[0]:
        assert not feasible


def test_power_density_over_the_cooling_limit_is_infeasible_with_a_reason():
    from dse.catalog import load_catalog_design
    from dse.evaluate import evaluate_design

    flat = load_catalog_design("TPU-v5e").to_flat()
    flat["chip.clock_ghz"] = 2.6   # the same small die clocked past what it can cool (within n5's reach, 2.61 GHz)
    hot = Design.from_flat(flat)
    cols = evaluate_design(hot, "vision")
    assert not cols["feasible"]
    assert "power density" in cols["reason"] and "W/mm²" in cols["reason"]
    assert cols["power_density_w_per_mm2"] > default_technology().thermal.max_power_density_w_per_mm2
    assert cols["vision_cnn.throughput"] == 0.0


def _split_variant(dies: int, io_node: str, sram_mb: float, kind: str) -> Design:
    d = load_catalog_design("H100-SXM").model_copy(deep=True)
    d.chip.dies, d.chip.allow_chiplets, d.chip.io_die_node = dies, True, io_node
    d.chip.sram_mb, d.chip.sram_kind = sram_mb, kind
    return d


@pytest.mark.parametrize("io_node", ["none", "n7"])
@pytest.mark.parametrize("kind", ["cache", "scratchpad"])
def test_a_split_costs_area_not_speed_even_for_a_cache_slower_than_memory(io_node, kind):
    """A split's die-to-die PHYs are sized for the traffic that crosses them, and SRAM passes every
    streamed byte (its ports at least the memory's rate: dse.model.perf.sram_rate), so a 2 MB cache or
    scratchpad behind 3.35 TB/s of HBM gets PHYs for the memory stream too. Splitting the H100 into two
    dies makes no scenario slower (it costs PHY area and crossing energy); before, with I/O dies, the
    PHYs were sized for the 2 MB cache alone and the split was up to ~6x slower at batch-1 decode."""
    from dse.evaluate import evaluate

    arr = DesignArrays.from_designs([_split_variant(n, io_node, 2.0, kind) for n in (1, 2)], TECH)
    a = chip_area(arr)
    assert a.num_dies.tolist() == [1, 2] and a.feasible.all()
    out = evaluate(arr, "balanced", TECH)
    times = [k for k in out if k.endswith((".tpot_ms", ".ttft_ms", ".latency_ms"))]
    assert times
    slower = {k: (float(out[k][0]), float(out[k][1])) for k in times if out[k][1] > out[k][0] * 1.01}
    assert not slower, slower
    assert a.d2d_tbps[1] >= 0.1 * 3.35  # at least the crossing share of the memory stream
    assert a.d2d_mm2[1] > a.d2d_mm2[0]  # the split pays in PHY area
