"""Local-LLM devices of the catalog (issue 11): each new entry loads, is a feasible design within its node's
clock reach, and reproduces every published figure it records (peaks per precision, dense and 2:4, bandwidth,
capacity, SRAM); the GeForce tensor rates are the fp32-accumulate ones."""

from __future__ import annotations

import pytest

from dse.catalog import list_catalog, load_catalog_design, published
from dse.model.area import chip_area
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.model.voltage import max_clock_ratio

NEW = ["RTX-4090", "RTX-3090", "A10", "L4", "L40S", "Jetson-AGX-Orin-64GB", "M1-Max", "M1-Pro"]
TECH = default_technology()


def test_new_entries_are_in_the_catalog():
    assert set(NEW) <= set(list_catalog())
    tags = {n: set(load_catalog_design(n).tags or ()) for n in NEW}
    assert all(t & {"gddr", "lpddr"} for t in tags.values()), tags  # every new device streams from GDDR or LPDDR


@pytest.mark.parametrize("name", NEW)
def test_entry_reproduces_every_published_figure(name):
    """Every precision of `peak_tflops` and `peak_tflops_sparse` (2:4 counts 2x), bandwidth, capacity and SRAM
    within 3 % (the catalog's tolerance; the largest gap is L40S's 1.2 %: its 2.52 GHz boost clock, which
    reproduces its published FP32 rate, over its published tensor rate)."""
    d, pub = load_catalog_design(name), published(name)
    der = d.derived()
    assert pub["sources"] and all("recalled" in s for s in pub["sources"]), name
    for prec, want in pub.get("peak_tflops", {}).items():
        assert der["peak_tflops"][prec] == pytest.approx(want, rel=0.03), (name, prec)
    for prec, want in pub.get("peak_tflops_sparse", {}).items():
        assert d.chip.sparsity_2to4
        assert 2 * der["peak_tflops"][prec] == pytest.approx(want, rel=0.03), (name, prec, "sparse")
    for key in ("mem_bw_tbps", "mem_gb", "sram_mb"):
        if key in pub:
            assert der[key] == pytest.approx(pub[key], rel=0.03), (name, key)


def test_geforce_tensor_rates_are_fp32_accumulate_by_hand():
    """RTX 4090: 128 SMs x 256 fp16 MACs (fp32 accumulate) x 2 x 2.52 GHz = 165.2 TFLOPS, INT8 4x, INT4 8x;
    RTX 3090: 82 x 256 x 2 x 1.695 GHz = 71.2 TFLOPS; the datacenter A10 runs fp32 accumulate at the full rate:
    72 x 512 x 2 x 1.695 GHz = 125 TFLOPS, INT8 2x."""
    g4 = load_catalog_design("RTX-4090").derived()["peak_tflops"]
    assert g4["bf16"] == pytest.approx(128 * 256 * 2 * 2.52e9 / 1e12, rel=1e-9)
    assert (g4["int8"], g4["int4"]) == pytest.approx((4 * g4["bf16"], 8 * g4["bf16"]), rel=1e-9)
    assert load_catalog_design("RTX-3090").derived()["peak_tflops"]["bf16"] == pytest.approx(
        82 * 256 * 2 * 1.695e9 / 1e12, rel=1e-9)
    a10 = load_catalog_design("A10").derived()["peak_tflops"]
    assert a10["bf16"] == pytest.approx(72 * 512 * 2 * 1.695e9 / 1e12, rel=1e-9)
    assert a10["int8"] == pytest.approx(2 * a10["bf16"], rel=1e-9)


@pytest.mark.parametrize("name, fp16_acc_tflops", [("RTX-4090", 330.3), ("RTX-3090", 142)])
def test_geforce_cards_carry_the_full_tensor_hardware_at_half_rate(name, fp16_acc_tflops):
    """The GeForce arrays are the full tensor hardware (512 fp16 MACs per SM per clock, the published
    fp16-accumulate rate: 330.3 / 142 TFLOPS) running bf16 / fp16 at half of it (fp32 accumulate), so the
    die carries every MAC the chip has; the published rates come out of the speedups."""
    d = load_catalog_design(name)
    assert d.chip.array_rows * d.chip.array_cols == 512
    assert (d.chip.precision_speedup["bf16"], d.chip.precision_speedup["fp16"]) == (0.5, 0.5)
    arrays = 2 * d.chip.macs * d.chip.clock_ghz / 1e3
    assert arrays == pytest.approx(fp16_acc_tflops, rel=0.01)
    assert d.derived()["peak_tflops"]["fp16"] == pytest.approx(arrays / 2, rel=1e-9)


def test_rtx3090_and_a10_are_one_die():
    """RTX 3090 and A10 are both GA102 (84 SMs with their harvested ones, 512 fp16 MACs each, on n7 here):
    their modelled dies agree within 3 % (the rest: memory PHYs, FP32 lanes, L2)."""
    area = {}
    for name in ("RTX-3090", "A10"):
        arr = DesignArrays.from_designs([load_catalog_design(name)], TECH)
        area[name] = float(chip_area(arr).total_mm2[0])
    assert area["RTX-3090"] == pytest.approx(area["A10"], rel=0.03), area


def test_memories_by_hand():
    """Bus width x transfer rate: 384-bit GDDR6X at 21 Gb/s = 1,008 GB/s (4090), at 19.5 = 936 (3090); 192-bit
    GDDR6 at 12.5 = 300 (L4); 256-bit LPDDR5-6400 = 204.8 (Orin); lpddr5's table rate is one x64 package."""
    bw = lambda n: load_catalog_design(n).derived()["mem_bw_tbps"] * 1e3  # noqa: E731  GB/s
    assert bw("RTX-4090") == pytest.approx(384 * 21 / 8)
    assert bw("RTX-3090") == pytest.approx(384 * 19.5 / 8)
    assert bw("L4") == pytest.approx(192 * 12.5 / 8)
    assert bw("Jetson-AGX-Orin-64GB") == pytest.approx(256 * 6.4 / 8)
    assert TECH.memories["lpddr5"].bw_gbps_per_stack == pytest.approx(6400 * 64 / 8 / 1000)
    assert {load_catalog_design(n).chip.memory for n in ("M1-Max", "M1-Pro", "Jetson-AGX-Orin-64GB")} == {"lpddr5"}
    assert load_catalog_design("RTX-4090").chip.memory == "gddr6x" and load_catalog_design("L40S").chip.memory == "gddr6"


def test_new_entries_are_feasible_designs_within_their_nodes_reach():
    arr = DesignArrays.from_designs([load_catalog_design(n) for n in NEW], TECH)
    assert arr.valid.all(), arr.reason[~arr.valid]
    assert (arr.clock_over_nominal <= max_clock_ratio()).all()
