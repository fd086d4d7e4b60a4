"""Power physics (issue 11, item 7): power at the workload, the clock throttle of a `tdp_w` cap, TCO from
workload power, catalog TDPs against published figures."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import evaluate
from dse.evaluate.mapping import MappingResult, residency
from dse.evaluate.steps import llm_steps
from dse.evaluate.table import design_metrics
from dse.evaluate.throttle import clocked, system_power_w, used_chip_power_w
from dse.model.area import chip_area
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.cost import tco_usd_per_hour
from dse.model.perf import op_energy_j, op_times
from dse.model.power import chip_power, clocked_static_w
from dse.model.technology import default_technology
from dse.workloads.modelfile import load_model_shape
from dse.workloads.scenarios import load_mix
from _designs import random_designs

TECH = default_technology()


def _v2(clock_ghz: float, nominal_ghz: float) -> float:
    """(V/V_nom)² on the alpha-power law f ∝ (V − 0.4)^1.3 / V by bisection (independent of the model's Newton
    solve), floored at V = 0.7: the energy factor of a design at `clock_ghz` on a node nominal at `nominal_ghz`."""
    g = lambda v: (v - 0.4) ** 1.3 / v  # noqa: E731
    target, lo, hi = clock_ghz / nominal_ghz * g(1.0), 0.4 + 1e-12, 3.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) < target else (lo, mid)
    return max(0.5 * (lo + hi), 0.7) ** 2
CHIPS_YAML = __import__("pathlib").Path(__import__("dse.catalog", fromlist=["x"]).__file__).parent / "chips.yaml"

# ---- catalog TDP (peak-activity model) against the published TDP ---------------------------------

# Every catalog chip with a published TDP: its uncapped peak-activity power (every MAC, the SRAM feed,
# memory, links and leakage at once, `chip_power(...).peak_w` with no `tdp_w` cap) against the published figure
# its catalog entry records (`published.tdp_w`, source in `published.sources`), like with like
# (`published.tdp_basis`, BOUNDS): A100-B200, MI300X, Groq, Gaudi 2, the speedAI240 Slim and Cloud AI 100 publish
# a chip, module or card rating that covers what dse models (arrays, SRAM, memory, links, leakage): ±20 %.
# TPU v4's 192 W (`measured_max`) is the chip's largest power measured on production workloads (Google), a chip
# figure too. Two ratings cover more than dse models: Jetson AGX Thor's 130 W (`module`) is the whole module (a
# 14-core CPU cluster, video and vision engines, I/O besides the GPU and LPDDR5X that dse models), and Cerebras'
# ~23 kW (`system`) is the CS-3 system (power conversion, cooling, I/O besides the wafer): the model sits under
# them, not above 1.2x and not below half (the issue's "no point off by 2x"). Arc Pro B60's board power is
# published as a range (`tdp_w_min` to `tdp_w`: 120-200 W, board partners' power limits for the same 197 TOPS
# chip): the model within 0.8x its low end and 1.2x its high end.
BOUNDS = {None: (0.8, 1.2), "measured_max": (0.8, 1.2), "module": (0.5, 1.2), "system": (0.5, 1.2)}
# Cerebras' catalog entry counts 32 fp16 MACs per core so that dse's 2:4 sparsity factor reproduces the 125 PF
# sparse headline; the published compute is an 8-wide FP16 SIMD per core (Hot Chips 2024; 8x unstructured
# sparsity, see the entry). Its power is checked at the published compute (array 2x4 = 8 MACs per core): at the
# catalog's 32 the arrays draw 4x, which happens to land the wafer at 0.80x of the system figure (18.3 kW).
PUBLISHED_ARRAY = {"Cerebras-WSE-3": (2, 4)}
KNOWN_GAPS = {
    "Cerebras-WSE-3": "at the published 8 fp16 MACs per core (15.8 PF dense) the wafer draws 5.9 kW (arrays 3.6 kW "
                      "at (V/V_nom)^2 = 0.51 for 1.1 GHz on n5, SRAM feed 1.3 kW from 48 KB banks, leakage 0.87 kW "
                      "over 24,700 mm2 at 0.71 V_nom), 0.26x of the 23 kW CS-3 system: the area model has no per-core router and "
                      "control area (the wafer is 46,225 mm2; 21,500 mm2 of leaking, clocked silicon are missing), "
                      "and the system's power conversion, cooling and I/O are not modelled",
    # devices of measurements_more.md §5 / §2 (issue 11), TDPs recalled from vendor briefs (dse/catalog/chips.yaml);
    # measured 2026-12-03 with the model's n7 energy per FLOP (fp16 from GPUs and Graphcore, the other precisions by
    # operand width: technology mac_energy) and the node's voltage-frequency curve (dse.model.voltage). Cloud AI 100
    # Ultra passes since 2026-12-03 (pow3): 41 W per SoC vs 37.5 W (1.10x; was 53 W, 1.41x), its INT8 MAC at 0.15 of
    # an fp16 one (int32 accumulate) and its published FP16 rate (288 TFLOPS per card, a third of INT8; chips.yaml),
    # whose 72 TFLOPS x 0.32 pJ = 23 W now set its arrays' peak; either alone leaves it at 53 W
    "speedAI240-Slim": "at-memory compute: model 725 W (arrays 624 W at 2 PFLOPS FP8 x 0.312 pJ: n7's 0.65 pJ fp16 "
                       "FLOP x 0.523 for an FP8 MAC with its fp32 accumulate (technology mac_energy) x (V/V_nom)^2 = "
                       "0.92 at 1.34 GHz; vector 75 W; SRAM feed 62 W from its 326 KB banks; leakage 40 W) vs the 75 W "
                       "card (9.7x; 6.6x when an FP8 FLOP cost half a bf16-wide one, before 2026-12-03). The card's own "
                       "measurements bound it (measurements_more.md 6.11, tests/test_power_card_bounds.py): <= 133 W "
                       "per card under ResNet-50 Offline, where the model draws 583 W (running floor 372 W). UntetherAI "
                       "publishes ~30 TFLOPS/W FP8 (0.033 pJ/FLOP, recalled), 9x below the model's 0.312: an FP8 MAC "
                       "with a per-MAC fp32 add (Horowitz: 0.9 of its 1.05 pJ at 45 nm) cannot reach it; an FP8 MAC with "
                       "an int32-class add (0.12 of fp16; no source for UntetherAI's accumulator) would leave the 1 "
                       "PFLOPS bf16 peak (442 W) setting the chip's: 544 W, 7.3x. A quarter of n7's fp16 anchor for "
                       "every precision gives 257 W (3.4x). The SRAM is not the gap: its bank rule (technology sram_banks) already takes it "
                       "from 108 to 62 W. Checked 2026-12-02 (pow2): with the card's 75 W as chip.tdp_w, both "
                       "ResNet-50 rows land within 10 % only if the arrays cost ~1/3 of n7's old FP8 table per "
                       "operation (0.065 pJ); 2026-12-03 (pow3) at the rule's 0.312 pJ the 75 W cap throttles the "
                       "card to 0.12 / 0.18 of its clock: Offline -82 %, SingleStream +270 %",
    # local-LLM devices (dse/catalog/chips.yaml, dev2 2026-12-03), board powers recalled from vendor datasheets.
    # GeForce (dev3 2026-12-03): the full tensor arrays (512 fp16 MACs per SM per clock) run bf16 / fp16 at 0.5 of
    # their rate (fp32 accumulate, a product limit) and fp8 / int8 / int4 at 1 / 2 / 4x; the RT cores, raster, media
    # and display engines are not modelled (die 347 vs 608.5 mm2, 246 vs 628.4 on n7; 282 / 157 with half arrays)
    "RTX-4090": "model 283 W vs 450 W total graphics power (0.63x; 279 W with half arrays): the arrays' peak is "
                "the fp8 rate, 330.3 TFLOPS x 0.576 pJ = 190 W; the model's precisions have no fp16-accumulate mode "
                "(330.3 TFLOPS x 1.102 pJ = 364 W would give 456 W, 1.01x); RT cores / raster / media not modelled",
    "RTX-3090": "model 153 W vs 350 W total graphics power (0.44x; 148 W with half arrays): arrays 71.2 TFLOPS x "
                "1.173 pJ = 83 W (an fp16-accumulate mode, 142 TFLOPS, would give 236 W, 0.67x); on n7 (Samsung 8N "
                "is not in the technology library; 8N's energy per operation is higher)",
    # datacenter inference cards whose board limit sits under their headline clock's demand (the cards run
    # clock-limited under load); no measurement in the reference shows the cap binding (EXCEEDS_CAP needs one)
    "A10": "model 194 W vs 150 W maximum board power (1.29x) at the 1.695 GHz boost clock; no measurement shows "
           "the cap binding",
    "L4": "model 120 W vs 72 W maximum board power (1.67x) at the 2.04 GHz boost clock; no measurement shows the "
          "cap binding",
    "L40S": "model 514 W vs 350 W maximum board power (1.47x) at the 2.52 GHz boost clock; no measurement shows "
            "the cap binding",
}
# A chip whose published cap the reference's own measurements show binding under LLM load draws more than it
# at its headline clock, so its uncapped peak is held to that evidence instead of to ±20 %:
# MI300X (750 W): the MI325X control (the same CDNA 3 dies at the same 2.1 GHz peak with HBM3e and a 1,000 W
# cap, same vLLM/ROCm round) measures 1.25-1.30x MI300X's throughput (measurements_more.md rows 3.12/3.13,
# 1.5/1.6) where dse's timing gives 1.01x from the bandwidth and capacity (dse/validate/serving_measurements.yaml):
# MI300X runs clock-limited by its cap, i.e. its demand at full clock exceeds 750 W under that load. With the
# register-sourced MFMA's operand delivery (dse.model.arrays.REGISTER_OPERAND_OVERHEAD) the model's peak is
# 1.0 kW (1.34x) at the n5 table's energy, and at its 2.1 GHz peak engine clock, above the N5 family's nominal
# 1.83 GHz (H100), the chip runs at a higher voltage (dse.model.voltage: (V/V_nom)² = 1.29): 1.23 kW (1.64x);
# 1.27 kW (1.70x) since its FP8 MAC costs 0.523 of an fp16 one by operand width (technology mac_energy, 2026-12-03),
# at twice the rate.
# A peak inside 1.2x leaves the workload under the cap (tests/test_power_workload.py); the evidence bounds the
# demand from below only, and 2x is the "no point off by 2x" bound.
EXCEEDS_CAP = {"MI300X": (1.2, 2.0)}


def _published() -> dict[str, dict]:
    raw = yaml.safe_load(CHIPS_YAML.read_text())
    return {name: entry["published"] for name, entry in raw.items()
            if isinstance(entry, dict) and (entry.get("published") or {}).get("tdp_w")}


def _published_tdp() -> dict[str, float]:
    return {name: float(p["tdp_w"]) for name, p in _published().items()}


def _uncapped_peak_w(name: str) -> float:
    design = load_catalog_design(name).model_copy(deep=True)
    design.chip.tdp_w = None
    if name in PUBLISHED_ARRAY:
        design.chip.array_rows, design.chip.array_cols = PUBLISHED_ARRAY[name]
    arr = DesignArrays.from_designs([design], TECH)
    return float(chip_power(arr, chip_area(arr)).peak_w[0])


def _bounds_w(pub: dict, name: str) -> tuple[float, float]:
    """(lowest, highest) uncapped peak in W the published figure allows (module comment above)."""
    top = float(pub["tdp_w"])
    if name in EXCEEDS_CAP:
        lo, hi = EXCEEDS_CAP[name]
        return lo * top, hi * top
    lo, hi = BOUNDS[pub.get("tdp_basis")]
    return lo * float(pub.get("tdp_w_min", top)), hi * top


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[n]))
                                  if n in KNOWN_GAPS else n for n in sorted(_published_tdp())])
def test_uncapped_peak_within_20_percent_of_published(name):
    pub = _published()[name]
    assert pub.get("sources"), f"{name}: the published TDP needs its source"
    model = _uncapped_peak_w(name)
    lo, hi = _bounds_w(pub, name)
    assert lo <= model <= hi, f"{name}: uncapped peak {model:.0f} W vs published {lo:.0f}-{hi:.0f} W allowed"


def test_published_tdp_bounds_by_hand():
    """Arc Pro B60's 120-200 W range allows 96-240 W; Thor's 130 W module 65-156 W; WSE-3's 23 kW system
    11.5-27.6 kW; a chip rating (A100's 400 W) 320-480 W; MI300X's 750 W cap 900-1,500 W."""
    pub = _published()
    assert _bounds_w(pub["Arc-Pro-B60"], "Arc-Pro-B60") == pytest.approx((96.0, 240.0))
    assert _bounds_w(pub["Jetson-AGX-Thor"], "Jetson-AGX-Thor") == pytest.approx((65.0, 156.0))
    assert _bounds_w(pub["Cerebras-WSE-3"], "Cerebras-WSE-3") == pytest.approx((11500.0, 27600.0))
    assert _bounds_w(pub["A100-SXM-80GB"], "A100-SXM-80GB") == pytest.approx((320.0, 480.0))
    assert _bounds_w(pub["MI300X"], "MI300X") == pytest.approx((900.0, 1500.0))


def test_the_cap_never_changes_the_peak():
    """`tdp_w` caps the TDP, not the modelled peak-activity power: B200 with and without its 1,000 W cap."""
    arr = DesignArrays.from_designs([load_catalog_design("B200")], TECH)
    p = chip_power(arr, chip_area(arr))
    assert p.tdp_w[0] == 1000.0 and p.peak_w[0] == pytest.approx(_uncapped_peak_w("B200"), rel=1e-12)


def test_every_catalog_chip_with_a_published_tdp_is_checked():
    assert {"A100-SXM-80GB", "H100-SXM", "H200-SXM", "B200", "MI300X", "TPU-v4", "Groq-LPU",
            "Cerebras-WSE-3"} <= set(_published_tdp())
    assert {p.get("tdp_basis") for p in _published().values()} <= set(BOUNDS)
    assert set(_published_tdp()) <= set(list_catalog())


def test_peak_takes_the_larger_of_arrays_and_vector_unit():
    arr = DesignArrays.from_designs([load_catalog_design("H100-SXM")], TECH)
    p = chip_power(arr, chip_area(arr)).row(0)
    parts = max(p["compute_w"], p["vector_w"]) + p["sram_w"] + p["memory_w"] + p["link_w"] + p["d2d_w"] + p["leakage_w"]
    assert p["peak_w"] == pytest.approx(parts)
    assert p["vector_w"] > 0 and p["peak_w"] < parts + p["vector_w"]


def test_running_floor_leaves_out_the_sram_access_energy():
    """static = max(leakage, F·(peak − SRAM access power)): reading no SRAM spends no access energy, so a
    design with twice the SRAM bandwidth has a higher peak and the same floor (WSE-3 by hand)."""
    from dse.model.power import RUNNING_FLOOR_FRACTION
    base = load_catalog_design("Cerebras-WSE-3")
    wide = base.model_copy(deep=True)
    wide.chip.sram_tbps = 2 * base.chip.sram_tbps
    arr = DesignArrays.from_designs([base, wide], TECH)
    p = chip_power(arr, chip_area(arr))
    # 21 PB/s (below the arrays' feed) × 1.0 pJ/B (n5) × √(48.9 KB per core / 1 MB): a core reads its own bank,
    # at the voltage of its 1.1 GHz clock on n5 (nominal 1.83 GHz): V = 0.713 V_nom, 0.508 of the energy
    assert _v2(1.1, 1.83) == pytest.approx(0.508, abs=1e-3)
    assert p.sram_w[0] == pytest.approx(21000.0 * 1.0 * (44000.0 / 900000.0) ** 0.5 * _v2(1.1, 1.83), rel=1e-9)
    assert p.static_w[0] == pytest.approx(RUNNING_FLOOR_FRACTION * (p.peak_w[0] - p.sram_w[0]))
    assert p.peak_w[1] > p.peak_w[0] and p.static_w[1] == pytest.approx(p.static_w[0])


# ---- power at the workload -----------------------------------------------------------------------

def test_system_power_counts_used_chips_at_workload_power_and_idle_chips_at_leakage():
    res = MappingResult(feasible=np.array([True, False]), reason=np.array(["", "x"], object),
                        metrics={"chips_used": np.array([2.0, 0.0]), "energy_j_per_unit": np.array([2.0, 0.0]),
                                 "throughput": np.array([100.0, 0.0])})
    hw = design_metrics(DesignArrays.from_designs([load_catalog_design("H100-SXM")] * 2, TECH))[0]
    hw.leakage_w = np.array([10.0, 10.0])
    hw.num_chips = np.array([8, 8])
    # 2 J/token × 100 tokens/s = 200 W over 2 chips; 6 idle chips × 10 W
    assert used_chip_power_w(res).tolist() == [100.0, 0.0]
    assert system_power_w(res, hw).tolist() == [260.0, 0.0]


def test_workload_power_by_hand_h100_local_llm():
    """One H100, local_llm (batch 1): P = static + (E_prefill + out·E_decode) / (prefill + out·TPOT),
    each E and time summed over the step's operators (count × per-operator) outside the mapping."""
    design = load_catalog_design("H100-SXM").model_copy(deep=True)
    design.system.num_chips = 1
    arr = DesignArrays.from_designs([design], TECH)
    hw = design_metrics(arr)[0]
    out = evaluate(arr, "local", TECH)
    sc = load_mix("local").scenarios[0].scenario
    assert out["local_llm.batch"][0] == 1 and out["local_llm.tp"][0] == 1 and out["local_llm.pp"][0] == 1
    shape, prec, cal = load_model_shape(sc.model), sc.precision_spec(), load_calibration(None)
    steps = llm_steps(sc, shape, prec, 1, 1, 1)
    w, kv = steps.decode.weight_bytes_per_chip, shape.kv_cache_bytes(1, sc.prompt_len + sc.output_len, 1,
                                                                       prec.kv_bytes)
    fw, fk, fits, _ = residency(w, kv, steps.act_bytes, hw.sram_bytes, hw.mem_bytes, hw.sram_cache)
    assert fits[0]

    def step(s):
        t = op_times(s.ops, hw, cal, fw, fk, np.zeros(1))
        cnt = np.asarray(s.ops.count, float)
        return float((t.total[0] * cnt).sum()), float((op_energy_j(s.ops, hw, t)[0] * cnt).sum())

    t_pre, e_pre = step(steps.prefill)
    t_dec, e_dec = step(steps.decode)
    n_out = sc.output_len
    cycle = t_pre + n_out * t_dec
    static = chip_power(arr, chip_area(arr)).static_w[0]
    hand = static + (e_pre + n_out * e_dec) / cycle
    assert out["local_llm.tpot_ms"][0] == pytest.approx(t_dec * 1e3, rel=1e-9)
    assert out["local_llm.power_w"][0] == pytest.approx(hand, rel=1e-9)
    assert out["local_llm.energy_j_per_unit"][0] == pytest.approx(hand * cycle / n_out, rel=1e-9)
    assert out["power_w"][0] == pytest.approx(hand, rel=1e-9)  # one-scenario mix
    # a busy chip draws more than its running floor and less than its peak
    assert static < hand < out["tdp_w"][0]


def test_tco_follows_workload_power_not_peak():
    arr = DesignArrays.from_designs([load_catalog_design(n) for n in ("H100-SXM", "A100-SXM-80GB")], TECH)
    out = evaluate(arr, "balanced", TECH)
    for sc in ("local_llm", "datacenter_llm"):
        per_hour = tco_usd_per_hour(out["system_cost_usd"], out[f"{sc}.power_w"], TECH)
        expect = per_hour / (out[f"{sc}.tokens_per_s"] * 3600.0) * 1e6
        np.testing.assert_allclose(out[f"{sc}.usd_per_mtok"], expect, rtol=1e-12)
        assert (out[f"{sc}.power_w"] < out["peak_power_w"]).all()
    w = [1.0, 1.0, 1.0]
    mean = sum(wi * out[f"{s}.power_w"] for wi, s in zip(w, ("local_llm", "datacenter_llm", "vision_cnn"))) / 3
    np.testing.assert_allclose(out["power_w"], mean, rtol=1e-12)


# ---- the clock throttle of a tdp_w cap -----------------------------------------------------------

def test_clocked_scales_what_the_clock_drives_only():
    hw = design_metrics(DesignArrays.from_designs([load_catalog_design("H100-SXM")], TECH))[0]
    h = clocked(hw, np.array([0.5]))
    assert h.peak_flops["bf16"][0] == pytest.approx(0.5 * hw.peak_flops["bf16"][0])
    assert h.sram_bw[0] == pytest.approx(0.5 * hw.sram_bw[0]) and h.vector_flops[0] == pytest.approx(0.5 * hw.vector_flops[0])
    assert h.mem_bw[0] == hw.mem_bw[0] and h.link_bw[0] == hw.link_bw[0]
    # half the clock: the alpha-power law asks (0.5^(1/1.3)·0.6 + 0.4)-ish < 0.7 of the voltage, so the supply sits
    # at its floor, MIN_FRACTION = 0.7 of nominal: every FLOP and SRAM byte costs 0.49 of its full-clock energy
    assert h.energy_pj_per_flop["bf16"][0] == pytest.approx(0.49 * hw.energy_pj_per_flop["bf16"][0])
    assert h.sram_pj_per_byte[0] == pytest.approx(0.49 * hw.sram_pj_per_byte[0])
    assert h.mem_pj_per_bit[0] == hw.mem_pj_per_bit[0] and h.link_pj_per_bit[0] == hw.link_pj_per_bit[0]
    assert h.static_w[0] == pytest.approx(hw.leakage_w[0] + 0.5 * 0.49 * (hw.static_w[0] - hw.leakage_w[0]))
    assert clocked_static_w(300.0, 40.0, 1.0) == 300.0 and clocked_static_w(300.0, 40.0, 0.0) == 40.0


def _with_cap(cols: dict, caps) -> dict:
    out = {k: np.asarray(v) for k, v in cols.items()}
    out["chip.tdp_w"] = np.asarray(caps, float)
    return out


@pytest.fixture(scope="module")
def throttled():
    """12 random one-chip designs on the local mix (the first of the full space's that run it), uncapped
    and under caps at fractions of their uncapped workload power (designs × fractions evaluated at once)."""
    n = 12
    cols = random_designs(8 * n, 11, {"system.num_chips": 1})
    free = evaluate(DesignArrays.from_columns(cols, TECH), "local", TECH)
    runs = np.flatnonzero(free["feasible"] & (free["local_llm.power_w"] > 0))[:n]
    cols, free = ({k: np.asarray(v)[runs] for k, v in d.items()} for d in (cols, free))
    ok = free["feasible"] & (free["local_llm.power_w"] > 0)
    fracs = np.array([0.5, 0.7, 0.85, 0.9, 0.9009, 0.95, 1.02, 3.0])
    p0 = free["local_llm.power_w"]
    big = {k: np.concatenate([np.asarray(v)] * len(fracs)) for k, v in cols.items()}
    caps = np.concatenate([f * np.where(ok, p0, 1e3) for f in fracs])
    capped = evaluate(DesignArrays.from_columns(_with_cap(big, caps), TECH), "local", TECH)
    shape = (len(fracs), n)
    return free, ok, fracs, {k: np.asarray(v).reshape(shape) for k, v in capped.items()
                             if np.asarray(v).dtype != object}, caps.reshape(shape)


def test_cap_is_met_and_never_makes_things_faster(throttled):
    free, ok, fracs, capped, caps = throttled
    assert ok.sum() >= 6
    feas = capped["local_llm.feasible"] & ok[None, :]
    assert (capped["local_llm.power_w"][feas] <= caps[feas] * (1 + 1e-9)).all()
    for key, sign in (("local_llm.tokens_per_s", 1), ("local_llm.ttft_ms", -1), ("local_llm.tpot_ms", -1)):
        a, b = capped[key][:, ok], np.broadcast_to(free[key][ok], capped[key][:, ok].shape)
        f = feas[:, ok]
        assert (sign * (a[f] - b[f]) <= 1e-9 * np.abs(b[f])).all(), key
    # a cap above the workload's power changes nothing
    top = list(fracs).index(3.0)
    for key in ("local_llm.tokens_per_s", "local_llm.ttft_ms", "local_llm.power_w", "local_llm.energy_j_per_unit"):
        np.testing.assert_array_equal(capped[key][top, ok], free[key][ok])


def test_throttle_is_monotone_and_continuous_in_the_cap(throttled):
    free, ok, fracs, capped, caps = throttled
    thr = capped["local_llm.tokens_per_s"][:, ok]
    # more power allowed is never slower
    assert (np.diff(thr, axis=0) >= -1e-9 * thr[1:]).all()
    # a 0.1 % larger cap (0.9 → 0.9009 of the workload's power) moves throughput by well under 1 %
    i, j = list(fracs).index(0.9), list(fracs).index(0.9009)
    both = (thr[i] > 0) & (thr[j] > 0)
    assert both.sum() >= 4
    assert (np.abs(thr[j][both] / thr[i][both] - 1) < 0.01).all()
    # and a binding cap costs throughput
    low = list(fracs).index(0.5)
    assert (thr[low][thr[low] > 0] < free["local_llm.tokens_per_s"][ok][thr[low] > 0]).all()


def test_a_cap_below_leakage_is_infeasible_with_a_reason():
    design = load_catalog_design("H100-SXM").model_copy(deep=True)
    design.system.num_chips = 1
    design.chip.tdp_w = 5.0
    out = evaluate(DesignArrays.from_designs([design], TECH), "local", TECH)
    assert not out["feasible"][0]
    assert "power cap 5 W per chip is below" in out["local_llm.reason"][0]


# ---- call sites: dse validate and dse describe use the workload power and the throttle ----------

def test_validate_power_prediction_is_throttled_by_a_tdp_cap():
    from dse.validate.measurements import select
    from dse.validate.predict import predict

    cal = load_calibration(None)
    m = next(m for m, _ in select("all") if m.kind == "power" and m.hardware == "H100-SXM" and not m.overrides)
    free = predict(m, cal)
    cap = 0.75 * free
    capped = predict(m.model_copy(update={"overrides": {"chip.tdp_w": cap}}), cal)
    # the clock drops until the chip meets its cap (to the solver's tolerance, from below)
    assert cap * (1 - 2e-3) <= capped <= cap * (1 + 1e-9)
    # a cap above what the run draws changes nothing
    assert predict(m.model_copy(update={"overrides": {"chip.tdp_w": 2 * free}}), cal) == pytest.approx(free, rel=1e-12)


def test_describe_prices_tco_at_the_workload_power_of_the_mix():
    from dse.commands.hardware import describe_designs

    designs = [load_catalog_design("H100-SXM"), load_catalog_design("Groq-LPU")]
    rows = describe_designs(designs, TECH, mix="balanced")
    out = evaluate(DesignArrays.from_designs(designs, TECH), "balanced", TECH)
    h100, groq = rows
    assert h100["tco_power_w"] == pytest.approx(float(out["power_w"][0]), rel=1e-12)
    assert h100["tco_power_w"] < h100["power_w"]["system_power_w"]
    assert h100["tco_usd_per_hour"] == pytest.approx(
        float(tco_usd_per_hour(h100["cost_usd"]["system_usd"], h100["tco_power_w"], TECH)), rel=1e-12)
    assert "workload" in h100["tco_basis"]
    # Groq cannot run the balanced mix (no memory for local_llm's KV): TCO falls back to peak power, and says so
    assert out["power_w"][1] == 0 and groq["tco_power_w"] == pytest.approx(groq["power_w"]["system_power_w"])
    assert "peak" in groq["tco_basis"]


# ---- energy per FLOP follows the operand width, not the rate (technology mac_energy) ------------------

# Horowitz ISSCC 2014, 45 nm (dse_and_cost.md §3.11), by hand: fp16 MAC = fp16 mult 1.1 + fp32 add 0.9 = 2.0 pJ;
# int8 MAC = 8-bit mult 0.2 + int32 add 0.1 = 0.3 pJ (0.15 of fp16); bf16 = 1.1·(8/11)² + 0.9 (0.741);
# int4 / fp4 (E2M1 as 4-bit integers) = 0.2·(4/8)² + 0.1 = 0.15 pJ (0.075)
INT8_RATIO, BF16_RATIO, INT4_RATIO = 0.3 / 2.0, (1.1 * 64 / 121 + 0.9) / 2.0, 0.15 / 2.0


def test_groq_int8_energy_is_the_int8_mac_at_any_rate_by_hand():
    """Groq runs int8 at 4× its fp16 rate: each int8 FLOP still costs an 8-bit multiply and an int32 add (0.15 of
    n16's 0.70 pJ fp16 FLOP), so the int8 peak (750 TOPS) draws 0.6× the fp16 peak's (188 TFLOPS) arrays and the
    chip's compute power is its fp16 peak's."""
    arr = DesignArrays.from_designs([load_catalog_design("Groq-LPU")], TECH)
    e = {p: float(v[0]) for p, v in arr.energy_pj_per_flop.items()}
    assert e["fp16"] == pytest.approx(0.70) and e["int8"] == pytest.approx(0.70 * INT8_RATIO)
    assert e["bf16"] == pytest.approx(0.70 * BF16_RATIO)
    int8_w = arr.peak_tflops["int8"][0] * e["int8"]   # TFLOP/s × pJ = W
    fp16_w = arr.peak_tflops["fp16"][0] * e["fp16"]
    assert int8_w == pytest.approx(0.6 * fp16_w, rel=1e-9)
    assert chip_power(arr, chip_area(arr)).compute_w[0] == pytest.approx(fp16_w, rel=1e-12)


def test_energy_per_flop_does_not_follow_the_speedup():
    """A faster int8 path (16× instead of the default 2×) keeps the int8 MAC's energy, so its peak draws 8× the
    default's; int8 at the bf16 rate (TPU v4) costs the same int8 MAC; an operator of a precision the chip
    lacks pays the energy of the precision it runs on."""
    base = load_catalog_design("H100-SXM")
    fast = base.model_copy(deep=True)
    fast.chip.precision_speedup = {"int8": 16.0}
    arr = DesignArrays.from_designs([base, fast], TECH)
    e8 = arr.energy_pj_per_flop["int8"]
    assert e8.tolist() == pytest.approx([0.45 * INT8_RATIO] * 2)  # n4 fp16 0.45 pJ × 0.15
    p = chip_power(arr, chip_area(arr))
    assert p.compute_w[1] == pytest.approx(arr.peak_tflops["int8"][1] * e8[1])  # TFLOP/s × pJ = W
    assert arr.peak_tflops["int8"][1] == pytest.approx(8 * arr.peak_tflops["int8"][0])
    assert p.compute_w[1] > p.compute_w[0]
    tpu = DesignArrays.from_designs([load_catalog_design("TPU-v4")], TECH)  # int8 at the bf16 rate
    # at the voltage of TPU v4's 1.05 GHz on n7 (nominal 1.41 GHz)
    assert tpu.energy_pj_per_flop["int8"][0] == pytest.approx(0.65 * INT8_RATIO * _v2(1.05, 1.41), rel=1e-9)
    hw = design_metrics(DesignArrays.from_designs([load_catalog_design("A100-SXM-80GB")], TECH))[0]
    # A100's mma.sync is register-sourced (chip.mma_operands): its operand delivery, 30/110 of the MAC energy
    # no fp8: runs (and costs) a 16-bit FLOP, on A100's fp16-wide multiplier (perf.run_energy)
    assert hw.energy_pj_per_flop["fp8"][0] == pytest.approx(0.65 * (1 + 30 / 110))
    assert hw.energy_pj_per_flop["int4"][0] == pytest.approx(0.65 * INT4_RATIO * (1 + 30 / 110))  # int4 supported


def test_bf16_costs_its_8_bit_multiplier_with_or_without_fp16_by_hand():
    """TPU v4 (bf16, int8) multiplies 8-bit significands: its n7 bf16 FLOP costs (1.1·(8/11)² + 0.9)/2.0 of the
    table's 0.65 pJ fp16 FLOP (Horowitz 45 nm, multiplier ∝ significand², fp32 accumulate); giving it fp16 at the
    same rate adds the wider multiplier's FLOPs and raises its peak power, never lowers it."""
    base = load_catalog_design("TPU-v4").model_copy(deep=True)
    base.chip.tdp_w = None
    wide = base.model_copy(deep=True)
    wide.chip.precisions = ["bf16", "fp16", "int8"]
    arr = DesignArrays.from_designs([base, wide], TECH)
    assert BF16_RATIO == pytest.approx(0.7409, abs=1e-4)
    v2 = _v2(1.05, 1.41)  # TPU v4's 1.05 GHz below n7's nominal 1.41 GHz: 0.647 of the table
    assert v2 == pytest.approx(0.647, abs=1e-3)
    assert arr.energy_pj_per_flop["bf16"].tolist() == pytest.approx([0.65 * BF16_RATIO * v2] * 2, rel=1e-9)
    assert arr.energy_pj_per_flop["fp16"][1] == pytest.approx(0.65 * v2, rel=1e-9)
    p = chip_power(arr, chip_area(arr))
    assert p.compute_w[0] == pytest.approx(275e12 * 0.65 * BF16_RATIO * v2 * 1e-12, rel=0.01)  # 275 TFLOPS × pJ
    assert p.compute_w[1] == pytest.approx(p.compute_w[0] / BF16_RATIO, rel=1e-9)
    assert p.peak_w[1] > p.peak_w[0]


# ---- the voltage-frequency curve (dse.model.voltage) ------------------------------------------------

def test_alpha_power_law_by_hand():
    """f ∝ (V − V_t)^α / V with V_t = 0.4·V_nom, α = 1.3: at V = 1.2·V_nom the clock is
    (0.8^1.3 / 1.2) / 0.6^1.3 = 1.2113 of nominal; the solver inverts it, and the energy is V² = 1.44."""
    from dse.model.voltage import ALPHA, THRESHOLD_FRACTION, energy_ratio, voltage_ratio

    assert (ALPHA, THRESHOLD_FRACTION) == (1.3, 0.4)
    r = (0.8 ** 1.3 / 1.2) / 0.6 ** 1.3
    assert r == pytest.approx(1.2113, abs=1e-4)
    assert voltage_ratio(np.array([r]))[0] == pytest.approx(1.2, rel=1e-9)
    assert energy_ratio(np.array([r]))[0] == pytest.approx(1.44, rel=1e-9)
    # 0.9 of the clock: V = 0.9180 (0.5180^1.3 / 0.9180 = 0.9 · 0.6^1.3), above the 0.7 floor
    v = voltage_ratio(np.array([0.9]))[0]
    assert (v - 0.4) ** 1.3 / v == pytest.approx(0.9 * 0.6 ** 1.3, rel=1e-9) and v == pytest.approx(0.9181, abs=1e-4)
    assert voltage_ratio(np.array([1.0]))[0] == 1.0 and voltage_ratio(np.array([0.2]))[0] == 0.7


def test_voltage_curve_is_monotone_and_power_super_linear():
    """A higher clock never costs less energy per operation; dynamic power f·V² rises faster than f until the
    voltage floor, and exactly ∝ f below it."""
    from dse.model.voltage import MIN_FRACTION, energy_ratio

    x = np.linspace(0.02, 2.5, 5000)
    e = energy_ratio(x)
    assert (np.diff(e) >= 0).all() and (np.diff(x * e) > 0).all()
    above = x > 0.8  # the floor binds below ~0.62 of the clock
    assert (x[above] * e[above] < x[above] + 1e-12).sum() == (x[above] <= 1.0).sum()  # f·V² ≤ f below nominal
    assert e[x < 0.5] == pytest.approx(MIN_FRACTION ** 2)


def test_a_design_above_its_nodes_nominal_clock_pays_v_squared_by_hand():
    """H100 (n4, nominal 1.83 GHz) at its own clock keeps the table's 0.45 pJ; at 1.83 × 1.2113 GHz it runs at
    1.2 V_nom and pays 1.44× per FLOP and per SRAM byte; at 1.83 × 0.7378 GHz it runs at 0.8 V_nom
    ((0.4^1.3 / 0.8) / 0.6^1.3 = 0.7378) and pays 0.64× (dse.model.voltage). Its peak power rises with the clock,
    and faster than the clock."""
    base = load_catalog_design("H100-SXM").model_copy(deep=True)
    base.chip.tdp_w = None
    fast, slow = base.model_copy(deep=True), base.model_copy(deep=True)
    r = (0.8 ** 1.3 / 1.2) / 0.6 ** 1.3
    fast.chip.clock_ghz = 1.83 * r
    s = (0.4 ** 1.3 / 0.8) / 0.6 ** 1.3
    assert s == pytest.approx(0.7378, abs=1e-4)
    slow.chip.clock_ghz = 1.83 * s
    arr = DesignArrays.from_designs([base, fast, slow], TECH)
    e = arr.energy_pj_per_flop["fp16"]
    assert e[0] == pytest.approx(0.45) and e[1] == pytest.approx(0.45 * 1.44) and e[2] == pytest.approx(0.45 * 0.64)
    assert arr.sram_pj_per_byte.tolist() == pytest.approx([1.0, 1.44, 0.64])
    p = chip_power(arr, chip_area(arr))
    assert p.compute_w[1] == pytest.approx(p.compute_w[0] * r * 1.44)
    assert p.peak_w[2] < p.peak_w[0] < p.peak_w[1]


def test_tdp_cap_saves_power_super_linearly_in_the_clock():
    """Under a cap the throttled chip's arrays draw x·energy_ratio(x) of their full-clock power at clock factor x
    (`clocked`, Groq-LPU's int8 peak): less than x, so a cap costs less clock than with the voltage fixed."""
    from dse.model.voltage import energy_ratio

    hw = design_metrics(DesignArrays.from_designs([load_catalog_design("Groq-LPU")], TECH))[0]
    for x in (0.95, 0.8, 0.6):
        h = clocked(hw, np.array([x]))
        power_per_flop_rate = h.energy_pj_per_flop["int8"][0] * h.peak_flops["int8"][0]
        full = hw.energy_pj_per_flop["int8"][0] * hw.peak_flops["int8"][0]
        assert power_per_flop_rate == pytest.approx(full * x * float(energy_ratio(np.array([x]))[0]))
        assert power_per_flop_rate < full * x


# ---- SRAM access energy against the bank an operand comes from (technology sram_banks) --------------

def test_small_banks_cost_less_per_byte_by_hand():
    """Horowitz's √capacity law below 1 MB banks, floored at 8 KB: a scratchpad's bank is its share per core,
    a cache pays the large-array figure whatever its core count (n5: 1.0 pJ/B at H100's 1.83 GHz)."""
    sb = TECH.sram_banks
    assert (sb.reference_bank_mb, sb.min_bank_mb, sb.exponent) == (1.0, 0.008, 0.5)
    base = load_catalog_design("H100-SXM").model_copy(deep=True)  # 132 cores
    designs = []
    for kind, mb in (("cache", 50.0), ("scratchpad", 50.0), ("scratchpad", 33.0), ("scratchpad", 0.5)):
        d = base.model_copy(deep=True)
        d.chip.sram_kind, d.chip.sram_mb = kind, mb
        designs.append(d)
    arr = DesignArrays.from_designs(designs, TECH)
    e = arr.sram_pj_per_byte
    assert e[0] == pytest.approx(1.0)                       # cache: large-array figure
    assert e[1] == pytest.approx((50.0 / 132) ** 0.5)        # 379 KB per core: 0.615
    assert e[2] == pytest.approx(0.5)                        # 250 KB per core: half a 1 MB bank's energy
    assert e[3] == pytest.approx(0.008 ** 0.5)               # 3.8 KB per core: floored at 8 KB, 0.089
    # the Horowitz table itself: 8 KB, 32 KB, 1 MB at 10, 20, 100 pJ per 64-bit access, ×2 per ×4 of capacity
    assert (0.032 / 0.008) ** sb.exponent == pytest.approx(20.0 / 10.0)


def test_more_cores_never_lower_the_peak_of_an_sram_bound_scratchpad():
    """Smaller per-core banks make each SRAM byte cheaper, but the arrays that read them grow with the cores:
    at the arrays' smallest shape of the full space (16×16, 0.25 B of operands per MAC-cycle) the SRAM feed costs
    a fraction of the MAC energy, so the peak still rises with the core count (the cliff hunter's rule). A design
    whose fixed vector unit outdraws its arrays (WSE-3's 1.8 M FLOP/cycle) may see its peak fall by the SRAM saving
    when cores are added at the same SRAM and vector width: the added MACs are below the vector unit's peak."""
    base = load_catalog_design("Cerebras-WSE-3").model_copy(deep=True)
    base.chip.tdp_w = None
    designs = []
    for cores, rows in ((1000, 16), (1020, 16), (4000, 16), (1000, 4), (1020, 4)):
        d = base.model_copy(deep=True)
        d.chip.cores, d.chip.array_rows, d.chip.array_cols = cores, rows, 16
        d.chip.vector_flops_per_cycle = None  # the default vector unit (2 FLOP per array column), as in the full space
        # 400 MB: 0.4 MB banks at 1,000 cores, 0.1 MB at 4,000; 20 TB/s of ports, below the arrays' feed, so
        # the SRAM term is ports × pJ/B and falls as 1/√cores
        d.chip.sram_mb, d.chip.sram_tbps = 400.0, 20.0
        designs.append(d)
    arr = DesignArrays.from_designs(designs, TECH)
    pw = chip_power(arr, chip_area(arr))
    v2 = _v2(1.1, 1.83)  # WSE-3's 1.1 GHz on n5
    assert pw.sram_w.tolist() == pytest.approx([v2 * x for x in (20.0 * (0.4 / 1.0) ** 0.5, 20.0 * (400 / 1020) ** 0.5,
                                                20.0 * 0.1 ** 0.5, 20.0 * 0.4 ** 0.5, 20.0 * (400 / 1020) ** 0.5)])
    p = pw.peak_w
    assert pw.sram_w[1] < pw.sram_w[0] and p[0] < p[1] < p[2] and p[3] < p[4]


def test_voltage_of_a_row_does_not_depend_on_the_rows_beside_it():
    """The solver stops each row where it converged: a study evaluates designs in chunks, and a design's power
    must be the same whichever chunk it lands in (a resumed study compares equal to an uninterrupted one)."""
    from dse.model.voltage import voltage_ratio

    x = np.random.default_rng(1).uniform(0.05, 3.0, 2000)
    whole = voltage_ratio(x)
    assert (np.concatenate([voltage_ratio(x[i:i + 7]) for i in range(0, len(x), 7)]) == whole).all()
    assert all(voltage_ratio(np.array([xi]))[0] == wi for xi, wi in zip(x[:200], whole[:200]))


def test_a_lower_clock_runs_at_a_lower_voltage_and_the_throttle_floors_at_the_nodes():
    """Below its node's nominal clock a design runs at the voltage of its clock (DVFS; Marković et al. 2004: the
    energy-optimal design for that clock is no costlier): Cloud AI 100 at 0.83 GHz on n7 (1.41 GHz) runs at
    V = 0.705 V_nom, 0.497 of the table; throttled to 0.8 of that clock it reaches the node's 0.7 floor and stays
    there: energy per operation × 0.49 / 0.497, not × the curve's (V'/V)² from its own point. A design at 1.2113 f_nom (V = 1.2 V_nom) throttled
    to 1/1.2113 of its clock returns to V_nom: (1/1.2)² of its energy, not the (0.82)² the curve's slope at
    nominal would give."""
    from dse.model.voltage import throttle_energy_ratio

    arr = DesignArrays.from_designs([load_catalog_design("Cloud-AI100-Ultra")], TECH)
    assert arr.clock_over_nominal[0] == pytest.approx(0.83 / 1.41)
    v2 = _v2(0.83, 1.41)
    assert v2 == pytest.approx(0.497, abs=1e-3) and arr.voltage_energy_ratio[0] == pytest.approx(v2, rel=1e-9)
    assert arr.energy_pj_per_flop["int8"][0] == pytest.approx(0.65 * INT8_RATIO * v2, rel=1e-9)  # n7 int8 MAC
    hw = design_metrics(arr)[0]
    h = clocked(hw, np.array([0.8]))
    assert h.energy_pj_per_flop["int8"][0] == pytest.approx(hw.energy_pj_per_flop["int8"][0] * 0.49 / v2, rel=1e-9)
    assert h.clock_over_nominal[0] == pytest.approx(0.8 * 0.83 / 1.41)
    r = (0.8 ** 1.3 / 1.2) / 0.6 ** 1.3
    assert throttle_energy_ratio(np.array([1 / r]), r)[0] == pytest.approx(1 / 1.44, rel=1e-9)
    assert throttle_energy_ratio(np.array([1.0]), np.array([0.3, 1.0, 2.0])) == pytest.approx([1.0, 1.0, 1.0])


def test_lower_clock_never_costs_more_energy_per_operation_nor_more_peak_power():
    """Energy per FLOP and the uncapped peak rise with the clock over 0.3-2.5 GHz on every node (no cliff at the
    nominal clock: the curve is smooth through it)."""
    base = load_catalog_design("H100-SXM").model_copy(deep=True)
    base.chip.tdp_w = None
    clocks = np.linspace(0.3, 2.5, 221)
    designs = []
    for node in ("n16", "n7", "n5", "n4p", "n3"):
        for c in clocks:
            d = base.model_copy(deep=True)
            d.chip.process_node, d.chip.clock_ghz = node, float(c)
            designs.append(d)
    arr = DesignArrays.from_designs(designs, TECH)
    e = arr.energy_pj_per_flop["bf16"].reshape(5, -1)
    peak = chip_power(arr, chip_area(arr)).peak_w.reshape(5, -1)
    assert (np.diff(e, axis=1) >= -1e-15).all() and (np.diff(peak, axis=1) > 0).all()
    # smooth through f_nom: the energy's elasticity to the clock, d ln E / d ln f = 2 / (α·V/(V − V_t) − 1), stays
    # under 3 up to 1.5 f_nom (2.65 there, V = 1.55 V_nom), with no step where a design crosses its node's nominal
    elasticity = np.log(e[:, 1:] / e[:, :-1]) / np.log(clocks[1:] / clocks[:-1])
    nominal = np.array([TECH.process_nodes[n].nominal_clock_ghz for n in ("n16", "n7", "n5", "n4p", "n3")])
    below = clocks[None, 1:] <= 1.5 * nominal[:, None]
    assert (elasticity[below] < 3.0).all() and (elasticity >= 0).all()


def test_an_at_memory_chip_reads_its_operands_from_its_own_bank_by_hand():
    """speedAI240 Slim (729 banks of 238 MB / 729 = 326 KB, PEs beside each bank): its SRAM term is the arrays'
    operand feed at peak, 373,248 MACs × 1.34 GHz × (1/16 + 1/32) × 2 B = 93.8 TB/s (below its ports' 238 MB ×
    386 GB/s/MB × 1.34 = 123.1 TB/s), at n7's 1.25 pJ/B × √(0.326 MB / 1 MB) = 0.571 of it, at the voltage of
    1.34 GHz on n7 (nominal 1.41 GHz, (V/V_nom)² = 0.919): 61.5 W, where the large-array figure would give 107.7 W."""
    d = load_catalog_design("speedAI240-Slim").model_copy(deep=True)
    d.chip.tdp_w = None
    arr = DesignArrays.from_designs([d], TECH)
    p = chip_power(arr, chip_area(arr))
    feed_tbps = 729 * 16 * 32 * 1.34e9 * (1 / 16 + 1 / 32) * 2.0 / 1e12
    ports_tbps = 238.0 * 386.0 * 1.34 / 1000.0
    assert feed_tbps == pytest.approx(93.78, abs=0.01) and ports_tbps == pytest.approx(123.10, abs=0.01)
    bank = (238.0 / 729.0) ** 0.5
    assert bank == pytest.approx(0.5714, abs=1e-4) and arr.sram_bank_energy_ratio[0] == pytest.approx(bank, rel=1e-12)
    v2 = _v2(1.34, 1.41)
    assert v2 == pytest.approx(0.919, abs=1e-3)
    assert p.sram_w[0] == pytest.approx(feed_tbps * 1.25 * v2 * bank, rel=1e-9)
    assert p.sram_w[0] == pytest.approx(61.5, abs=0.1) and feed_tbps * 1.25 * v2 == pytest.approx(107.7, abs=0.1)


def test_the_bank_rule_leaves_caches_and_large_banks_at_the_nodes_figure():
    """Only small per-core scratchpad banks (< 1 MB per core) pay less per byte than the node's large-array figure:
    every catalog GPU (cache-kind SRAM) and every chip with >= 1 MB per core (TPU v4/v5e, Groq, Gaudi 2,
    Inferentia2, Cloud AI 100) keeps its power exactly as without the rule, so the rule moves neither the GPU
    power rows nor their TDP checks; WSE-3 (48.9 KB per core) and speedAI240 (326 KB per bank) are the two it moves."""
    moved = set()
    for name in list_catalog():
        design = load_catalog_design(name)
        arr = DesignArrays.from_designs([design], TECH)
        ratio = float(arr.sram_bank_energy_ratio[0])
        per_core_mb = design.chip.sram_mb / design.chip.cores
        if design.chip.sram_kind == "cache" or per_core_mb >= TECH.sram_banks.reference_bank_mb:
            assert ratio == 1.0, name
        else:
            assert ratio == pytest.approx(per_core_mb ** 0.5), name
            moved.add(name)
    assert moved == {"Cerebras-WSE-3", "speedAI240-Slim"}


def test_leakage_follows_the_supply_by_hand():
    """Static power is V·I_leak at the supply of the design's clock (dse.model.power, "Leakage follows the supply"):
    Cloud AI 100 at 0.83 GHz on n7 (nominal 1.41 GHz) runs at V = 0.705 V_nom, so its 196.8 mm² of logic and SRAM
    leak 0.05 W/mm² × 196.8 × 0.705 = 6.94 W (9.84 W at V_nom); A100 at n7's nominal clock leaks the table's 0.05 ×
    600.5 mm² = 30.0 W; MI300X at 2.1 GHz on n5 (nominal 1.83 GHz) runs at 1.135 V_nom: 0.05 × 1,172.1 × 1.135 =
    66.5 W. An I/O die keeps its own node's nominal supply: H100 with an n7 I/O die, clocked down to 1.2 GHz, leaks
    V(1.2/1.83) of its compute dies' figure and the whole of its I/O die's."""
    from dse.model.power import io_leaking_mm2, leaking_mm2

    names = ["Cloud-AI100-Ultra", "A100-SXM-80GB", "MI300X"]
    h100 = load_catalog_design("H100-SXM").model_copy(deep=True)
    h100.chip.io_die_node, h100.chip.clock_ghz = "n7", 1.2
    arr = DesignArrays.from_designs([load_catalog_design(n) for n in names] + [h100], TECH)
    area = chip_area(arr)
    p = chip_power(arr, area)
    logic = leaking_mm2(arr, area)
    v = [_v2(0.83, 1.41) ** 0.5, 1.0, _v2(2.1, 1.83) ** 0.5, _v2(1.2, 1.83) ** 0.5]
    assert v[0] == pytest.approx(0.705, abs=1e-3) and v[2] == pytest.approx(1.135, abs=1e-3)
    assert logic[:3] == pytest.approx([196.83, 600.47, 1172.08], abs=0.01)
    assert p.leakage_w[:3] == pytest.approx([0.05 * logic[i] * v[i] for i in range(3)], rel=1e-9)
    assert p.leakage_w[:3] == pytest.approx([6.94, 30.02, 66.54], abs=0.01)
    assert p.leakage_w[1] == 0.05 * logic[1]  # exactly the table at the nominal clock
    io = 0.05 * area.num_io_dies[3] * io_leaking_mm2(arr, area)[3]  # n7 I/O dies at n7's 0.05 W/mm², V_nom
    assert area.num_io_dies[3] >= 1 and io > 0
    assert p.leakage_w[3] == pytest.approx(0.05 * logic[3] * v[3] + io, rel=1e-9)
