"""Technology library: sourced entries, override merging, and errors for bad overrides."""

from __future__ import annotations

import pytest

from dse.errors import ConfigError
from dse.model.technology import default_technology, load_technology


def test_required_tables_present():
    t = default_technology()
    assert {"n16", "n7", "n5", "n4", "n3"} <= set(t.process_nodes)
    assert {"hbm2e", "hbm3", "hbm3e", "hbm4", "lpddr5x", "gddr6x", "gddr7"} <= set(t.memories)
    assert {"nvlink3", "nvlink4", "nvlink5", "ici_v4", "ucie_std", "serdes_112g"} <= set(t.links)
    assert {"organic", "cowos_s", "cowos_l", "wafer_scale"} <= set(t.packaging)
    assert t.precision_speedup == {"bf16": 1, "fp16": 1, "fp8": 2, "int8": 2, "int4": 4, "fp4": 4}


def test_every_entry_names_a_source():
    t = default_technology()
    for table in (t.process_nodes, t.memories, t.links, t.packaging):
        for name, entry in table.items():
            assert len(entry.source.strip()) > 10, name
    for block in (t.wafer, t.system, t.tco):
        assert block.source.strip()


def test_reference_constants():
    t = default_technology()
    n5, n7 = t.process_nodes["n5"], t.process_nodes["n7"]
    assert n5.wafer_price_usd == 16988 and n7.wafer_price_usd == 9346  # ttm-cas / CSET
    assert n7.defect_density_per_cm2 == 0.09 and n5.defect_density_per_cm2 == 0.11
    assert all(nd.yield_alpha == 3 for nd in t.process_nodes.values())  # DESIGN.md §4 default
    assert all(nd.reticle_mm2 == 858 for nd in t.process_nodes.values())
    assert t.process_nodes["n4"].model_dump(exclude={"source"}) == n5.model_dump(exclude={"source"})
    assert t.tco.usd_per_kwh == 0.067 and t.tco.pue == 1.5
    # denser nodes are smaller per MAC and per MB of scratchpad (or equal: SRAM stalls at N3)
    order = ["n16", "n7", "n5", "n3"]
    macs = [t.process_nodes[k].mac_area_um2 for k in order]
    assert macs == sorted(macs, reverse=True)


def test_override_dict_deep_merges():
    t = load_technology({"process_nodes": {"n5": {"wafer_price_usd": 20000}},
                         "memories": {"hbm9": {"bw_gbps_per_stack": 4000, "capacity_gb_per_stack": 96,
                                               "usd_per_gb": 30, "pj_per_bit": 2, "phy_area_mm2_per_stack": 30,
                                               "needs_interposer": True, "footprint_mm2_per_stack": 121,
                                               "source": "what-if"}}})
    assert t.process_nodes["n5"].wafer_price_usd == 20000
    assert t.process_nodes["n5"].defect_density_per_cm2 == 0.11  # untouched field kept
    assert "hbm9" in t.memories and "hbm3" in t.memories
    assert default_technology().process_nodes["n5"].wafer_price_usd == 16988  # cache not mutated


def test_override_unknown_key_suggests(tmp_path):
    p = tmp_path / "tech.yaml"
    p.write_text("process_nodes:\n  n5:\n    wafer_price: 20000\n")
    with pytest.raises(ConfigError) as ei:
        load_technology(p)
    (line,) = ei.value.problems
    assert line.startswith(f"{p}:3:5: process_nodes.n5.wafer_price: unknown field")
    assert "did you mean `wafer_price_usd`?" in line


def test_override_bad_value_has_position(tmp_path):
    p = tmp_path / "tech.yaml"
    p.write_text("memories:\n  hbm3:\n    usd_per_gb: -1\n")
    with pytest.raises(ConfigError) as ei:
        load_technology(p)
    assert ei.value.problems[0].startswith(f"{p}:3:17: memories.hbm3.usd_per_gb:")


def test_override_new_entry_missing_fields(tmp_path):
    p = tmp_path / "tech.yaml"
    p.write_text("links:\n  mylink:\n    gbps_per_link: 100\n")
    with pytest.raises(ConfigError) as ei:
        load_technology(p)
    assert any("links.mylink.source: required field is missing" in pr for pr in ei.value.problems)
