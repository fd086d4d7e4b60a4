"""The chiplet split at a cost tie, by hand (issue 11, the cliff hunter's seed-0 cliff of 2026-12-02).

An n5 SIMT chip (1 core of 256×128, 1,318.5 MB of scratchpad, 12 LPDDR5X, 54 UCIe-advanced links, CoWoS-L) in a
32-chip system: +2 % of clock moves the automatic split from 2 dies of 407 mm² to 1 die of 688 mm² at a near tie
in chip cost ($1,226.8 vs $1,231.3). The split's 126.6 mm² of extra silicon is its die-to-die PHYs (2 × 39.4 mm²,
sized for 1.25 × the memory's 0.82 TB/s + 0.1 × the SRAM's 487 TB/s per die) and the filler that gives each die
the edge those PHYs need (47.8 mm²); there is no per-die duplicated uncore (the uncore is a share of the logic)
and no spare core (1 core). The filler never leaked; the PHYs did, so each of the 31 idle chips drew 3.9 W more
on the 2-die side and local_llm's system power fell 9.3 % (1,348 → 1,223 W) for +2 % of clock. A PHY's power
is its energy per bit (dse.model.power.leaking_mm2): leakage is the logic and SRAM, the same on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest

from dse.evaluate import evaluate
from dse.model.area import chip_area
from dse.model.arrays import DesignArrays
from dse.model.cost import chip_cost
from dse.model.power import chip_power
from dse.model.technology import default_technology

TECH = default_technology()
DESIGN = {"chip.process_node": "n5", "chip.core_style": "simt", "chip.cores": 1, "chip.array_rows": 256,
          "chip.array_cols": 128, "chip.clock_ghz": 0.9573209840932837, "chip.sparsity_2to4": True,
          "chip.mma_operands": "registers", "chip.layer_pipeline": False, "chip.sram_mb": 1318.5313033167345,
          "chip.sram_kind": "scratchpad", "chip.memory": "lpddr5x", "chip.memory_stacks": 12, "chip.link": "ucie_adv",
          "chip.links": 54, "chip.packaging": "cowos_l", "chip.allow_chiplets": True, "chip.io_die_node": "none",
          "chip.io_dies": 1, "system.num_chips": 32, "system.topology": "ring"}
PRECISIONS = ["bf16", "fp8", "int8", "int4"]


def _arrays(design: dict, knob: str, values: list[float]) -> DesignArrays:
    n = len(values)
    cols = {k: np.array([v] * n) for k, v in design.items()}
    cols[knob] = np.array(values, dtype=float)
    cols["chip.precisions"] = np.empty(n, dtype=object)
    for i in range(n):
        cols["chip.precisions"][i] = list(PRECISIONS)
    return DesignArrays.from_columns(cols, TECH)


@pytest.fixture(scope="module")
def tie():
    clock = DESIGN["chip.clock_ghz"]
    arr = _arrays(DESIGN, "chip.clock_ghz", [clock, clock * 1.02])
    area = chip_area(arr)
    return arr, area, chip_cost(arr, area), chip_power(arr, area)


def test_the_split_flips_at_a_cost_tie_and_its_extra_silicon_is_phys_and_filler(tie):
    arr, area, cost, _ = tie
    assert area.num_dies.tolist() == [2, 1]
    assert cost.chip_usd[0] == pytest.approx(1226.8, abs=0.5)
    assert cost.chip_usd[1] == pytest.approx(1231.3, abs=0.5)
    # per die of the split: 1.25 × 0.8196 TB/s of LPDDR5X + 0.1 × 487.2 TB/s of SRAM ports = 49.75 TB/s,
    # at UCIe advanced's 0.792 mm² per TB/s (CoWoS-L): 39.4 mm² per die
    ch = TECH.chiplets
    mem, sram = float(arr.mem_bw_tbps[0]), float(arr.sram_tbps[0])
    assert mem == pytest.approx(12 * 0.0683, rel=1e-3)
    assert sram == pytest.approx(487.23, rel=1e-4)
    per_die = ch.d2d_tbps_per_mem_tbps * mem + ch.d2d_tbps_per_sram_tbps * sram
    assert per_die == pytest.approx(49.748, rel=1e-4)
    assert area.d2d_mm2[0] == pytest.approx(2 * per_die * TECH.packaging["cowos_l"].d2d_mm2_per_tbps, rel=1e-9)
    assert area.d2d_mm2[0] == pytest.approx(78.80, abs=0.01)
    # the rest is filler: each die padded to the perimeter its PHYs' edge needs (no spares, no duplicated uncore)
    assert area.spare_mm2 == pytest.approx([0.0, 0.0], abs=1e-9) and area.pad_mm2[1] == pytest.approx(0.0, abs=1e-9)
    assert area.total_mm2[0] - area.total_mm2[1] == pytest.approx(area.d2d_mm2[0] + area.pad_mm2[0], rel=1e-9)
    assert area.pad_mm2[0] == pytest.approx(47.75, abs=0.01)


def test_leakage_is_the_logic_and_sram_on_both_sides_of_the_tie(tie):
    """0.05 W/mm² (n5) × (MACs + vector + SRAM + uncore) = 0.05 × 608.9 mm² = 30.4 W at n5's nominal supply, × 0.7 on
    both sides (0.96 and 0.98 GHz are below what n5 reaches at its 0.7 V_nom floor: the supply sits at the floor,
    dse.model.power "Leakage follows the supply") = 21.3 W; before, the split's 78.8 mm² of PHYs leaked 3.9 W more
    (38.4 W vs 34.4 W, the 1-die chip's memory and link PHYs too, at V_nom)."""
    arr, area, _, power = tie
    logic = area.mac_mm2 + area.vector_mm2 + area.sram_mm2 + area.uncore_mm2
    assert logic[0] == pytest.approx(608.90, abs=0.01) and logic[1] == pytest.approx(logic[0], rel=1e-12)
    assert power.leakage_w == pytest.approx(0.05 * logic * 0.7, rel=1e-12)
    assert power.leakage_w[0] == pytest.approx(21.311, abs=0.001)
    # the split still draws more at peak: half its memory traffic crosses a die edge, at n5's 0.3 pJ/b
    # (UCIe advanced), 0.8196 TB/s × 8 × 0.3 pJ/b × 1/2 = 0.98 W, which the 1-die chip does not
    assert float(arr.d2d_pj_per_bit[0]) == 0.3
    assert power.d2d_w[0] == pytest.approx(0.8196e12 * 8 * 0.3e-12 * 0.5, rel=1e-3)
    assert power.d2d_w[1] == 0.0
    assert power.peak_w[0] - power.peak_w[1] == pytest.approx(
        power.d2d_w[0] + np.maximum(power.compute_w, power.vector_w) @ [1, -1] + power.sram_w @ [1, -1], rel=1e-9)


def test_system_power_is_continuous_across_the_tie(tie):
    """31 of the 32 chips idle at leakage: local_llm's system power moves by what the busy chip's die-to-die
    crossings and +2 % of clock change (< 1 %), not by 31 × the PHYs' leakage (−9.3 % before)."""
    arr, _, _, power = tie
    out = evaluate(arr, "balanced", TECH)
    assert out["local_llm.chips_used"].tolist() == [1, 1]
    assert out["local_llm.tp"].tolist() == [1, 1] and out["local_llm.batch"].tolist() == [1, 1]
    p = np.asarray(out["local_llm.power_w"], float)
    idle = 31 * power.leakage_w
    assert idle[0] == pytest.approx(idle[1], rel=1e-12)
    assert abs(p[1] / p[0] - 1.0) < 0.01


def test_a_wafer_with_io_dies_carries_its_die_to_die_phys():
    """A wafer-scale chip with I/O dies (n3 systolic wafer, 2 I/O dies on n5): one more link adds PHY
    bandwidth to the I/O dies, so the wafer grows by the die-to-die PHY area it adds (it did not: the PHYs
    were reported but not on the wafer, and leaving them out of leakage made one more link leak less)."""
    d = dict(DESIGN, **{"chip.process_node": "n3", "chip.core_style": "systolic", "chip.cores": 34,
                        "chip.array_rows": 128, "chip.array_cols": 256, "chip.clock_ghz": 1.8679,
                        "chip.sparsity_2to4": False, "chip.mma_operands": "shared", "chip.sram_mb": 214.83,
                        "chip.sram_kind": "cache", "chip.memory": "gddr7", "chip.memory_stacks": 4,
                        "chip.packaging": "wafer_scale", "chip.io_die_node": "n5", "chip.io_dies": 2,
                        "system.num_chips": 256, "system.topology": "torus2d"})
    arr = _arrays(d, "chip.links", [46, 47])
    area = chip_area(arr)
    assert area.num_dies.tolist() == [1, 1] and area.num_io_dies.tolist() == [2, 2]
    grew = area.d2d_mm2[1] - area.d2d_mm2[0]
    assert grew > 0.5
    assert area.die_mm2[1] - area.die_mm2[0] == pytest.approx(grew, rel=1e-9)
    power = chip_power(arr, area)
    assert power.leakage_w[1] > power.leakage_w[0]
