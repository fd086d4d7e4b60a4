"""Reference catalog: every entry loads, and its derived peak / bandwidth / capacity match the datasheet."""

from __future__ import annotations

import pytest

from dse.catalog import list_catalog, load_catalog_design, published
from dse.errors import DseUserError
from dse.model.area import design_area

REQUIRED = {"A100-SXM-80GB", "H100-SXM", "H200-SXM", "B200", "MI300X", "TPU-v4", "TPU-v5e", "Groq-LPU",
            "Cerebras-WSE-3", "M2-Ultra",
            # devices of measurements_more.md §2 / §5 (issue 11), from recalled vendor specifications
            "speedAI240-Slim", "Inferentia2", "Jetson-AGX-Thor", "Arc-Pro-B60", "Gaudi2", "Cloud-AI100-Ultra"}


def test_catalog_has_required_entries():
    assert REQUIRED <= set(list_catalog())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_entry_matches_published(name):
    d = load_catalog_design(name)
    pub = published(name)
    assert pub["sources"], name
    derived = d.derived()
    head = pub["headline"]
    if head.endswith("_sparse"):
        prec = head.removesuffix("_sparse")
        assert d.chip.sparsity_2to4
        got, want = 2 * derived["peak_tflops"][prec], pub["peak_tflops_sparse"][prec]
    else:
        got, want = derived["peak_tflops"][head], pub["peak_tflops"][head]
    assert got == pytest.approx(want, rel=0.03), f"{name} {head}: {got:.1f} vs {want}"
    for key in ("mem_bw_tbps", "mem_gb"):
        assert derived[key] == pytest.approx(pub[key], rel=0.03, abs=1e-9), f"{name} {key}"
    if "sram_mb" in pub:
        assert derived["sram_mb"] == pytest.approx(pub["sram_mb"], rel=0.03)
    if "sram_tbps" in pub:
        assert derived["sram_tbps"] == pytest.approx(pub["sram_tbps"], rel=0.03)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_entry_is_feasible(name):
    a = design_area(load_catalog_design(name))
    assert a["feasible"], a["reason"]


def test_named_facts():
    assert load_catalog_design("H100-SXM").chip.peak_tflops("bf16") == pytest.approx(989.4, rel=0.001)
    a100 = load_catalog_design("A100-SXM-80GB").chip
    assert (a100.cores, a100.array_rows, a100.array_cols, a100.clock_ghz) == (108, 32, 32, 1.41)
    assert a100.core_style == "simt"
    groq = load_catalog_design("Groq-LPU").chip
    assert groq.memory == "none" and groq.sram_mb == 230 and groq.process_node == "n16"
    assert load_catalog_design("Cerebras-WSE-3").chip.packaging == "wafer_scale"
    assert load_catalog_design("M2-Ultra").chip.memory == "lpddr5"
    # the memories added for them: 6 x32 GDDR6 channels at 19 Gb/s = 456 GB/s; 4 x64 LPDDR4X at 4,266 MT/s
    b60 = load_catalog_design("Arc-Pro-B60")
    assert b60.chip.memory == "gddr6" and b60.derived()["mem_bw_tbps"] == pytest.approx(6 * 19 * 32 / 8 / 1000)
    assert load_catalog_design("Cloud-AI100-Ultra").chip.memory == "lpddr4x"
    slim = load_catalog_design("speedAI240-Slim").chip
    assert slim.memory == "none" and slim.sram_mb == 238  # the Slim card's LPDDR5 is disabled (MLPerf v4.1)


def test_unknown_name_suggests():
    with pytest.raises(DseUserError) as ei:
        load_catalog_design("H100-SMX")  # "H100" itself is an alias (issue 14.4)
    assert "did you mean 'H100-SXM'?" in str(ei.value)
    with pytest.raises(DseUserError):
        published("nope")
