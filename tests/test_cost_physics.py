"""Cost physics without cliffs: harvested yield, known-good-die assembly, die-to-die split, memory PHY
shoreline and interposer limits, wafer-scale redundancy — hand-computed values, a Monte-Carlo check,
and monotonicity / step-size properties over 10⁴ random designs (vectorized)."""

from __future__ import annotations

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.model.area import area_for_perimeter_mm2, chip_area, design_area, perimeter_mm
from dse.model.arrays import DesignArrays
from dse.model.cost import chip_cost, design_cost, harvested_yield, negative_binomial_yield
from dse.model.fab import package_yield
from dse.model.hardware import ChipDesign, Design
from dse.model.knobs import BY_NAME, RESOURCE_KNOBS
from dse.model.power import chip_power
from dse.model.technology import default_technology
from _designs import random_designs

TECH = default_technology()
N_RANDOM = 10_000


# ------------------------------------------------------------------ fab formulas by hand
def test_harvested_yield_hand_computed():
    # A_nr 100 mm², array 700 mm², D0 0.1/cm², α 3: t = 8·0.1/3 = 0.26667, x = 7·0.1/3 = 0.23333
    nb = 1.26667 ** -3                      # 0.49204 = NB(800 mm²)
    r = 0.23333 / 1.26667                   # 0.18421
    t1 = 3 * r                              # Γ(4)/(Γ(3)·1!) = 3
    t2 = t1 * 4 / 2 * r                     # Γ(5)/(Γ(3)·2!) = 6
    assert harvested_yield(100, 700, 0, 0.1, 3) == pytest.approx(negative_binomial_yield(800, 0.1, 3), rel=1e-12)
    assert harvested_yield(100, 700, 0, 0.1, 3) == pytest.approx(nb, rel=1e-4)
    assert harvested_yield(100, 700, 1, 0.1, 3) == pytest.approx(nb * (1 + t1), rel=1e-4)   # 0.7639
    assert harvested_yield(100, 700, 2, 0.1, 3) == pytest.approx(nb * (1 + t1 + t2), rel=1e-4)  # 0.8641


def test_harvested_yield_matches_monte_carlo():
    rng = np.random.default_rng(7)
    d0, alpha, a_nr, a_arr = 0.2, 2.0, 1.5, 6.0  # cm²
    lam = rng.gamma(alpha, d0 / alpha, 400_000)
    nr_clean = rng.poisson(lam * a_nr) == 0
    k = rng.poisson(lam * a_arr)
    for s in (0, 1, 3, 8):
        mc = np.mean(nr_clean & (k <= s))
        assert harvested_yield(a_nr * 100, a_arr * 100, s, d0, alpha) == pytest.approx(mc, abs=0.004)


def test_many_spares_continuous_limit_agrees_with_the_exact_sum():
    # 60 expected defects in the array: the continuous form (s > 64) vs the exact sum at s = 64
    exact = harvested_yield(50, 30000, 64, 0.2, 3)
    cont = harvested_yield(50, 30000, 65, 0.2, 3)
    assert 0.5 < exact < cont < exact + 0.05


def test_package_yield_hand_computed():
    # 2 logic dies at Y 0.5 + 8 HBM stacks, bond 0.99, probe coverage 0.99:
    # escapes: 0.5/(0.5 + 0.5·0.01) = 0.990099 per die
    expect = 0.99 ** 10 * 0.990099 ** 2
    assert package_yield(2, 10, 0.5, 0.99, 0.99) == pytest.approx(expect, rel=1e-6)
    assert package_yield(8, 8, 0.5, 0.99, 0.99) < package_yield(2, 2, 0.5, 0.99, 0.99)


def test_perimeter_round_trip():
    for a in (50.0, 364.0, 829.0):
        p = perimeter_mm(a, 2.0, 33.0)
        assert area_for_perimeter_mm2(p, 2.0, 33.0) == pytest.approx(a, rel=1e-9)
    # 364 mm² at 2:1 = 27 × 13.5 mm → 81 mm; 829 mm² capped at 33 mm long → 2·(33 + 25.12) = 116.2 mm
    assert perimeter_mm(364.0, 2.0, 33.0) == pytest.approx(81.0, rel=1e-3)
    assert perimeter_mm(829.0, 2.0, 33.0) == pytest.approx(116.24, rel=1e-3)


# ------------------------------------------------------------------ catalog and named cases
def _variant(name: str, **chip) -> Design:
    flat = load_catalog_design(name).to_flat()
    flat.update({f"chip.{k}": v for k, v in chip.items()})
    return Design.from_flat(flat)


def test_h100_is_harvested_and_close_to_the_analyst_cost():
    a, c = design_area(load_catalog_design("H100-SXM")), design_cost(load_catalog_design("H100-SXM"))
    assert a["num_dies"] == 1 and a["spare_cores"] == 12                 # GH100 ships 132 of 144 SMs
    plain = negative_binomial_yield(a["die_mm2"], 0.11, 3)
    assert c["yield_"] > plain + 0.15                                    # spares lift yield well above NB
    # GH100 814 mm² also holds 10 MB of L2 and an HBM PHY that H100 SXM5 disables (≈ 40 mm²)
    assert a["die_mm2"] == pytest.approx(814 - 40, rel=0.03)
    assert c["chip_usd"] == pytest.approx(3320, rel=0.25)                # SiliconAnalysts COGS ≈ $3,320


def test_sm_area_is_calibrated_on_the_physical_dies():
    """A die shot measures every SM the die carries: the full GH100 (144 SMs, 60 MB L2, 6 HBM3 PHYs)
    comes out at its 814 mm², and the full GA100 (128 SMs, 48 MB L2, 6 HBM2e PHYs) at its 826 mm²."""
    gh100 = _variant("H100-SXM", cores=144, spare_cores=0, sram_mb=60, memory_stacks=6)
    ga100 = _variant("A100-SXM-80GB", cores=128, spare_cores=0, sram_mb=48, memory_stacks=6)
    assert design_area(gh100)["die_mm2"] == pytest.approx(814, rel=0.01)
    assert design_area(ga100)["die_mm2"] == pytest.approx(826, rel=0.03)


def test_automatic_harvesting_minimises_the_chip_cost():
    # left to the model, an H100-size die carries the spares that minimise its cost: a few SMs (NVIDIA's 12
    # also bin parts for clock and power, which a cost per good die does not see)
    auto = _variant("H100-SXM", spare_cores=None)
    a, c = design_area(auto), design_cost(auto)
    assert 2 <= a["spare_cores"] <= 8
    for s in range(0, 17):
        other = design_cost(_variant("H100-SXM", spare_cores=s))["chip_usd"]
        assert other >= c["chip_usd"] * (1 - 1e-12), s


def test_systolic_parts_carry_no_spares_and_wafer_scale_routes_around_defects():
    assert design_area(load_catalog_design("TPU-v4"))["spare_cores"] == 0
    a, c = design_area(load_catalog_design("Cerebras-WSE-3")), design_cost(load_catalog_design("Cerebras-WSE-3"))
    assert a["spare_cores"] == round(0.015 * 900_000)
    assert 0.85 < c["yield_"] < 1.0                                      # no longer 1 by assumption
    assert a["spare_mm2"] > 0.015 * 900_000 * a["core_mm2"]              # spares plus bypass fabric


def test_crossing_the_reticle_never_makes_a_chip_cheaper():
    # an H100 whose die count is left to the model: sweep L2 across the reticle
    costs, dies = [], []
    for mb in np.arange(40, 121, 1.0):
        d = _variant("H100-SXM", sram_mb=float(mb), dies=None)
        a, c = design_area(d), design_cost(d)
        assert a["feasible"], a["reason"]
        costs.append(c["chip_usd"])
        dies.append(a["num_dies"])
    assert np.all(np.diff(costs) >= -1e-9)
    assert max(np.diff(costs) / np.array(costs[:-1])) < 0.02              # and no jump either
    split = design_area(_variant("H100-SXM", sram_mb=120.0, dies=None))
    assert split["num_dies"] >= 2 and split["d2d_mm2"] > 0               # the split pays for its PHYs


def test_shoreline_limits_memory_stacks():
    # a ~364 mm² die cannot carry 12 HBM3e stacks (142 mm of PHY edge, 81 mm of perimeter)
    d = Design(chip=ChipDesign(process_node="n5", cores=48, array_rows=64, array_cols=64, sram_mb=80,
                               memory="hbm3e", memory_stacks=12, packaging="cowos_l", dies=1))
    a = design_area(d)
    assert not a["feasible"] and "shoreline" in a["reason"] and "12 × hbm3e" in a["reason"]
    few = design_area(Design(chip=d.chip.model_copy(update={"memory_stacks": 4})))
    assert few["feasible"], few["reason"]
    for name in ("H100-SXM", "H200-SXM", "B200", "MI300X", "TPU-v4", "TPU-v5e", "M2-Ultra"):
        a = design_area(load_catalog_design(name))
        assert a["feasible"] and a["shoreline_mm"] <= a["shoreline_limit_mm"], name


def test_io_limited_die_is_padded_not_cheaper():
    # a tiny compute die with 4 HBM stacks is padded to the area whose edge fits them
    d = Design(chip=ChipDesign(process_node="n5", cores=2, array_rows=32, array_cols=32, sram_mb=4,
                               memory="hbm3", memory_stacks=4, packaging="cowos_s", dies=1))
    a = design_area(d)
    assert a["feasible"] and a["pad_mm2"] > 0
    assert a["shoreline_mm"] == pytest.approx(a["shoreline_limit_mm"], rel=1e-6)


def test_interposer_limit_names_the_package():
    d = Design(chip=ChipDesign(process_node="n5", cores=256, memory="hbm3e", memory_stacks=24,
                               packaging="cowos_s"))
    a = design_area(d)
    assert not a["feasible"] and "cowos_s area" in a["reason"] and "limit" in a["reason"]


# ------------------------------------------------------------------ properties over random designs
def evaluate_cost(cols: dict) -> dict[str, np.ndarray]:
    arr = DesignArrays.from_columns(cols, TECH)
    area = chip_area(arr)
    cost = chip_cost(arr, area)
    power = chip_power(arr, area)
    return {"feasible": area.feasible, "peak_w": power.peak_w, "leakage_w": power.leakage_w, "chip_usd": cost.chip_usd, "system_usd": cost.system_usd,
            "die_usd_each": cost.die_usd_each, "die_mm2": area.die_mm2, "total_mm2": area.total_mm2,
            "num_dies": area.num_dies, "reason": area.reason, "reticle_mm2": arr.reticle_mm2,
            "spare_cores": area.spare_cores, "core_mm2": area.core_mm2, "package_mm2": area.package_mm2,
            "pkg_area_scale": arr.pkg_area_scale, "pkg_max_mm2": arr.pkg_max_interposer_mm2}


def step(cols: dict, knob: str, rel: float = 0.02) -> tuple[dict, np.ndarray]:
    """`cols` with `knob` stepped up by `rel` (integers by at least 1) and the relative step taken."""
    v = np.asarray(cols[knob], dtype=float)
    integer = BY_NAME[knob].type is int
    new = np.maximum(v + 1, np.round(v * (1 + rel))) if integer else v * (1 + rel)
    return {**cols, knob: new}, (new - v) / np.maximum(v, 1e-12)


# chip.io_dies is the fewest I/O dies (the count is a priced choice): a higher floor never makes a chip cheaper
GROWING_KNOBS = RESOURCE_KNOBS  # the knob registry's resource knobs (more of one buys hardware)


@pytest.fixture(scope="module")
def base():
    cols = random_designs(N_RANDOM, 0)
    return cols, evaluate_cost(cols)


@pytest.mark.parametrize("knob", GROWING_KNOBS)
def test_more_silicon_or_memory_never_makes_a_design_cheaper(base, knob):
    cols, b = base
    stepped, _ = step(cols, knob)
    s = evaluate_cost(stepped)
    both = b["feasible"] & s["feasible"]
    if knob == "chip.memory_stacks":
        both &= cols["chip.memory"] != "none"
    if knob == "chip.io_dies":
        both &= cols["chip.io_die_node"] != "none"
    assert both.sum() > N_RANDOM // 5
    for metric in ("chip_usd", "system_usd"):
        worse = both & (s[metric] < b[metric] * (1 - 1e-9))
        assert not worse.any(), _explain(cols, knob, b, s, metric, worse)


@pytest.mark.parametrize("knob", GROWING_KNOBS)
def test_more_silicon_or_memory_never_lowers_peak_power(base, knob):
    """Over 10⁴ random designs: more MACs, SRAM, stacks, links or I/O dies never lower the chip's
    peak-activity power nor its leakage, on the same die count (a different split moves die-to-die traffic and PHYs; the
    power of a split is tests/test_cliffs.py's SPLIT threshold)."""
    cols, b = base
    stepped, _ = step(cols, knob)
    s = evaluate_cost(stepped)
    same = b["feasible"] & s["feasible"] & (b["num_dies"] == s["num_dies"])
    if knob == "chip.memory_stacks":
        same &= cols["chip.memory"] != "none"
    if knob == "chip.io_dies":
        same &= cols["chip.io_die_node"] != "none"
    assert same.sum() > N_RANDOM // 5
    for metric in ("peak_w", "leakage_w"):
        worse = same & (s[metric] < b[metric] * (1 - 1e-9))
        assert not worse.any(), _explain(cols, knob, b, s, metric, worse)


def test_cost_per_good_die_never_falls_with_die_area(base):
    cols, b = base
    stepped, _ = step(cols, "chip.sram_mb", 0.05)
    s = evaluate_cost(stepped)
    # the same split and harvesting on a bigger die: the cost per good die may not fall (where the spare
    # count changes, the cheaper chip may carry more spares and a cheaper good die: the chip cost, which
    # picks them, never falls: test_more_silicon_or_memory_never_makes_a_design_cheaper)
    same = b["feasible"] & s["feasible"] & (b["num_dies"] == s["num_dies"]) & (b["spare_cores"] == s["spare_cores"])
    assert same.sum() > N_RANDOM // 3
    worse = same & (s["die_usd_each"] < b["die_usd_each"] * (1 - 1e-9)) & (s["die_mm2"] >= b["die_mm2"])
    assert not worse.any(), _explain(cols, "chip.sram_mb", b, s, "die_usd_each", worse)


# Documented physical thresholds where a small step may move chip cost by more than 5× its relative size
# (always upward: the monotonicity test above forbids any fall):
# - the step makes the design infeasible (reticle with chiplets disabled, shoreline, interposer limit);
# - a hard limit forces another split: the die reaches the reticle or the package its interposer limit
#   and the die count changes (the split is priced as a choice, so the jump is the extra PHY, package and
#   assembly of the forced one);
# - the stepped die is at the reticle, or the package at its area limit, and the spare cores that still fit
#   shrink (a big die at D0 0.2/cm² loses much of its yield with each spare it can no longer carry; a core of a
#   few-core die is large);
# - integer knobs whose smallest step (+1) is a large relative change (1 → 2 stacks is +100 %): the bound
#   scales with the step actually taken.
ELASTICITY = 5.0  # a +2 % step may move cost by at most 10 %


@pytest.mark.parametrize("knob", GROWING_KNOBS)
def test_small_steps_make_small_cost_changes(base, knob):
    cols, b = base
    stepped, rel = step(cols, knob)
    s = evaluate_cost(stepped)
    both = b["feasible"] & s["feasible"]
    change = np.abs(s["chip_usd"] / b["chip_usd"] - 1.0)
    up = s["chip_usd"] >= b["chip_usd"]
    # the spares fell because the stepped die has no room left under the reticle for another core, or the
    # package none under its area limit for another core on every die (dse/model/area.py: "a spare must leave
    # the die within the reticle and the package within its limit"); e.g. design 33 of seed 0 (n3 simt, 799
    # cores, 11 gddr7, 4 n7 I/O dies, organic package at ~10,000 mm²) steps to 815 cores with 7 spares instead
    # of 21, chip cost +15 %: a physical threshold, and the cost goes up, never down
    fewer = s["spare_cores"] < b["spare_cores"]
    reticle = s["die_mm2"] + s["core_mm2"] > s["reticle_mm2"]
    package = s["package_mm2"] + s["pkg_area_scale"] * s["num_dies"] * s["core_mm2"] > s["pkg_max_mm2"]
    squeezed = fewer & (reticle | package)
    threshold = up & ((s["num_dies"] != b["num_dies"]) | squeezed)
    bad = both & ~threshold & (change > ELASTICITY * rel + 1e-9)
    assert not bad.any(), _explain(cols, knob, b, s, "chip_usd", bad)


def _explain(cols, knob, b, s, metric, mask) -> str:
    i = int(np.flatnonzero(mask)[0])
    design = {k: (v[i] if isinstance(v, np.ndarray) else v) for k, v in cols.items()}
    return (f"{mask.sum()} designs; e.g. {knob} step: {metric} {b[metric][i]:.2f} -> {s[metric][i]:.2f}, dies "
            f"{b['num_dies'][i]} -> {s['num_dies'][i]}, die {b['die_mm2'][i]:.0f} -> {s['die_mm2'][i]:.0f} mm²; {design}")


def test_spare_cores_knob_overrides_the_automatic_choice():
    auto = design_area(_variant("H100-SXM", spare_cores=None))
    none = _variant("H100-SXM", spare_cores=0)
    a0, c0 = design_area(none), design_cost(none)
    assert a0["spare_cores"] == 0 and a0["die_mm2"] < auto["die_mm2"]
    assert c0["yield_"] == pytest.approx(negative_binomial_yield(a0["die_mm2"], 0.11, 3), rel=1e-12)
    same = _variant("H100-SXM", spare_cores=auto["spare_cores"])
    assert design_cost(same)["chip_usd"] == pytest.approx(design_cost(_variant("H100-SXM", spare_cores=None))["chip_usd"])
    # more spares than fit under the reticle on one die: infeasible with the reticle named
    big = design_area(_variant("H100-SXM", spare_cores=40))
    assert not big["feasible"] and "reticle" in big["reason"]
    # spread over two dies of a split, and honoured on a systolic chip too
    two = design_area(_variant("B200", spare_cores=10))
    assert two["spare_cores"] == 10 and two["num_dies"] == 2
    assert design_area(_variant("TPU-v4", spare_cores=1))["spare_cores"] == 1
    # wafer-scale without spare tiles loses (nearly) every wafer
    ws = design_cost(_variant("Cerebras-WSE-3", spare_cores=0))
    assert ws["yield_"] < 0.01 and ws["chip_usd"] > 1e6


# ------------------------------------------------------------------ I/O dies on another node (chip.io_die_node)
def _with_io(name: str, node: str, io_dies: int = 1):
    d = load_catalog_design(name).model_copy(deep=True)
    d.chip.io_die_node = node
    d.chip.io_dies = io_dies
    return d


def test_io_die_hand_computed_h100_with_n7_io_dies():
    """H100 with its 5 HBM3 and 18 NVLink4 PHYs on n7 I/O dies: the I/O dies hold the PHYs, the PHY of their
    link to the compute die (every memory byte and both link directions) and the n7 uncore share, each padded
    to its share of the perimeter the HBM sites and die-to-die PHY need; known-good cost priced at n7. The
    count is the cheapest from chip.io_dies up: one I/O die would be padded to ~4x its PHY area (the filler
    grows as the square of the edge), so the chip takes several."""
    base = design_area(load_catalog_design("H100-SXM"))
    d = _with_io("H100-SXM", "n7")
    a, c = design_area(d), design_cost(d)
    assert a["feasible"], a["reason"]
    io_tbps = 1.25 * 3.35 + 18 * 25.0 * 2 / 1000  # d2d_tbps_per_mem_tbps × HBM + NVLink both ways = 5.0875
    phys = 5 * 16.6 + 18 * 0.965                  # HBM3 PHY per stack, NVLink4 PHY per link
    critical = (phys + io_tbps * 0.792) * 1.165   # + UCIe-advanced PHY (CoWoS-S), n7 uncore 0.165
    edge = 5 * 11.87 + io_tbps / 1.3              # HBM sites + die-to-die edge (1.3 TB/s per mm)
    k = np.sqrt(2.0) + 1.0 / np.sqrt(2.0)         # a 2:1 die (max_aspect) of that perimeter / 0.65

    def pad(m):
        return (edge / m / 0.65 / (2.0 * k)) ** 2
    assert np.sqrt(2.0 * pad(1)) < 33.0           # its long side is within the reticle's
    assert pad(1) > 3.5 * critical                 # one I/O die is mostly filler
    m = a["num_io_dies"]
    assert 1 < m <= 16
    assert a["io_critical_mm2"] == pytest.approx(critical / m, rel=1e-9)
    assert a["io_die_mm2"] == pytest.approx(max(critical / m, pad(m)), rel=1e-9)
    die = a["io_die_mm2"]
    y = (1 + critical / m / 100 * 0.09 / 3) ** -3  # n7 D0 0.09/cm², α 3, critical area only (filler is blank)
    dpw = np.pi * 150 ** 2 / die - np.pi * 300 / np.sqrt(2 * die)
    assert c["io_die_usd"] == pytest.approx(m * 9346 / (dpw * y) * 1.01, rel=1e-9)
    # chip.io_dies is the fewest: any floor up to the chosen count gives the same chip, a higher floor
    # never a cheaper one
    usd = [design_cost(_with_io("H100-SXM", "n7", j))["chip_usd"] for j in range(1, m + 3)]
    assert usd[:m] == pytest.approx([c["chip_usd"]] * m, rel=1e-12)
    assert all(later >= earlier * (1 - 1e-12) for earlier, later in zip(usd, usd[1:]))
    assert usd[m] > c["chip_usd"]
    # the compute die loses the PHYs and their uncore share and gains its side of the die-to-die link
    assert base["spare_cores"] == a["spare_cores"] == 12  # fixed by the catalog (chip.spare_cores)
    assert a["die_mm2"] == pytest.approx(base["die_mm2"] - phys * 1.165 + io_tbps * 0.792, rel=1e-9)
    assert a["total_mm2"] == pytest.approx(a["die_mm2"] + m * a["io_die_mm2"], rel=1e-9)
    # its shoreline is the die-to-die PHY alone: the HBM sites are on the I/O dies
    assert a["shoreline_mm"] == pytest.approx(io_tbps / 1.3, rel=1e-9)


def test_io_die_costs_its_die_bond_and_crossing_energy():
    """An I/O die is bought, bonded and scrapped with the package, its die-to-die crossing of every memory
    byte costs energy, and it leaks at its node; none of it appears without one."""
    from dse.model.power import design_power

    h = load_catalog_design("H100-SXM")
    d = _with_io("H100-SXM", "n7")
    c0, c1 = design_cost(h), design_cost(d)
    p0, p1 = design_power(h), design_power(d)
    assert c0["io_die_usd"] == 0 and c1["io_die_usd"] > 0
    assert c1["package_yield"] < c0["package_yield"]  # one more bonded part and its test escapes
    assert p0["d2d_w"] == 0
    # 3.35 TB/s of HBM and 0.9 TB/s of NVLink cross at n4's 0.3 pJ/bit
    assert p1["d2d_w"] == pytest.approx((3.35 + 0.9) * 8 * 0.3, rel=1e-9)


def test_io_dies_too_big_for_the_reticle_take_more_dies():
    """An I/O die past its node's reticle is not a count the chip may take: it takes more I/O dies, and is
    flagged only when no allowed count fits."""
    d = load_catalog_design("B200").model_copy(deep=True)
    d.chip.memory_stacks = 24
    d.chip.memory_gb_per_stack = 8  # 192 GB
    d.chip.io_die_node = "n7"
    d.chip.packaging = "cowos_l"
    a = design_area(d)
    assert "I/O die" not in a["reason"] and a["num_io_dies"] > 1
    assert a["io_die_mm2"] <= 858
    d.chip.memory_stacks = 600  # far more memory PHY edge than 16 reticle-sized I/O dies offer
    a = design_area(d)
    assert not a["feasible"] and "I/O die" in a["reason"] and "16 I/O dies" in a["reason"]


def test_no_memory_and_no_automatic_split_reasons_name_what_they_mean():
    """A memory-less design too big for any automatic split: the reasons say so (not 'the given chip.dies',
    which the design did not give, nor '0 × none' memory PHYs)."""
    arr = DesignArrays.from_designs([Design.model_validate({"chip": {"memory": "none", "sram_mb": 4000}})], TECH)
    reason = chip_area(arr).reason[0]
    assert "no automatic split fits" in reason and "given chip.dies" not in reason
    assert "die-to-die PHY shoreline" in reason and "× none" not in reason
