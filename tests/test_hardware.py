"""Designs: validation messages, flat round trip, derived figures, and the vectorized DesignArrays."""

from __future__ import annotations


import numpy as np
import pytest
from pydantic import ValidationError

from dse.config import load_yaml_model
from dse.errors import ConfigError
from dse.model.arrays import DesignArrays
from dse.model.hardware import ChipDesign, Design, SystemDesign, use_technology
from dse.model.technology import default_technology, load_technology

TECH = default_technology()


def chip(**kw) -> ChipDesign:
    base = dict(process_node="n5", cores=64, array_rows=128, array_cols=128, clock_ghz=1.2, sram_mb=128,
                memory="hbm3e", memory_stacks=4)
    base.update(kw)
    return ChipDesign(**base)


def test_peak_and_derived_figures():
    c = chip(precisions=["bf16", "fp8", "int4"])
    macs = 64 * 128 * 128
    assert c.macs == macs
    assert c.peak_tflops("bf16") == pytest.approx(2 * macs * 1.2e9 / 1e12)
    assert c.peak_tflops("fp8") == pytest.approx(2 * c.peak_tflops("bf16"))
    assert c.peak_tflops("int4") == pytest.approx(4 * c.peak_tflops("bf16"))
    assert c.peak_tflops("int8") == 0.0  # unsupported precision
    assert c.mem_bw_tbps == pytest.approx(4 * 1228.8 / 1000)
    assert c.mem_gb == pytest.approx(96)
    assert c.knee_flop_per_byte == pytest.approx(c.peak_tflops("bf16") / c.mem_bw_tbps)
    # SRAM bandwidth default: technology GB/s per MB × clock
    assert c.sram_bw_tbps == pytest.approx(128 * TECH.process_nodes["n5"].sram_gbps_per_mb * 1.2 / 1000)
    assert chip(sram_tbps=7.0).sram_bw_tbps == 7.0


def test_precision_speedup_override_and_memory_overrides():
    c = chip(precisions=["bf16", "int8"], precision_speedup={"int8": 4}, memory_gbps_per_stack=1000,
             memory_gb_per_stack=36)
    assert c.peak_tflops("int8") == pytest.approx(4 * c.peak_tflops("bf16"))
    assert c.mem_bw_tbps == pytest.approx(4.0) and c.mem_gb == pytest.approx(144)


@pytest.mark.parametrize("field,value,needle", [
    ("cores", 0, "greater than 0"),
    ("array_rows", -4, "greater than 0"),
    ("clock_ghz", 0, "greater than 0"),
    ("sram_mb", -1, "greater than or equal to 0"),
    ("process_node", "n6", "unknown process node 'n6'"),
    ("memory", "hbm5", "unknown memory 'hbm5'"),
    ("link", "nvlink9", "unknown link 'nvlink9'"),
    ("packaging", "cowos", "unknown packaging 'cowos'"),
    ("precisions", ["bf16", "fp6"], "unknown precision 'fp6'"),
    ("memory_stacks", 0, "needs memory_stacks >= 1"),
])
def test_validation_names_field_and_allowed(field, value, needle):
    with pytest.raises(ValidationError) as ei:
        chip(**{field: value})
    errs = ei.value.errors()
    assert errs[0]["loc"][0] == field
    assert needle in str(ei.value)


def test_unknown_name_lists_valid_choices():
    with pytest.raises(ValidationError) as ei:
        chip(process_node="n6")
    assert "valid: n16, n3, n4, n4p, n5, n7" in str(ei.value)


def test_memory_none_and_chiplet_rules():
    c = chip(memory="none", memory_stacks=0)
    assert c.mem_gb == 0 and c.mem_bw_tbps == 0
    with pytest.raises(ValidationError, match="allow_chiplets"):
        chip(allow_chiplets=False, dies=2)
    with pytest.raises(ValidationError, match="extra"):
        ChipDesign(sram_mbb=3)


def test_flat_round_trip():
    d = Design(name="x", tags=["a"], chip=chip(precision_speedup={"int8": 4}, precisions=["bf16", "int8"]),
               system=SystemDesign(num_chips=8, topology="ring"))
    flat = d.to_flat()
    assert flat["chip.cores"] == 64 and flat["system.num_chips"] == 8
    assert flat["chip.precision_speedup.int8"] == 4
    assert Design.from_flat(flat) == d
    with pytest.raises(ValidationError):
        Design.from_flat({**flat, "chip.coress": 3})


def test_yaml_design_errors_name_file_and_field(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("name: t\nchip:\n  cores: 8\n  memory: hbm3\n  memory_stacks: 0\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Design)
    assert ei.value.problems[0].startswith(f"{p}:5:18: chip.memory_stacks:")


def test_custom_technology_names():
    tech = load_technology({"process_nodes": {"n2": {**TECH.process_nodes["n3"].model_dump(),
                                                     "source": "what-if N2"}}})
    with pytest.raises(ValidationError):
        chip(process_node="n2")
    with use_technology(tech):
        c = chip(process_node="n2")
        assert c.peak_tflops("bf16") > 0


# ---------------------------------------------------------------- DesignArrays
def test_arrays_flag_invalid_rows_without_dropping():
    cols = {"chip.cores": [64, -1, 32, 8.5], "chip.process_node": ["n5", "n5", "n6", "n7"],
            "chip.memory": ["hbm3", "hbm3", "none", "hbm3"], "chip.memory_stacks": [4, 4, 0, 0],
            "chip.sram_mb": [64, 64, 64, "lots"]}
    a = DesignArrays.from_columns(cols, TECH)
    assert a.n == 4
    assert a.valid.tolist() == [True, False, False, False]
    assert "chip.cores must be an integer in [1, 10,000,000] (got -1)" in a.reason[1]
    assert "unknown process node 'n6'" in a.reason[2] and "did you mean" in a.reason[2]
    assert "chip.cores" in a.reason[3] and "chip.sram_mb" in a.reason[3]
    assert "needs memory_stacks" in a.reason[3] or "memory_stacks" in a.reason[3]
    for arr in (a.macs, a.mem_bw_tbps, a.sram_tbps, a.knee_flop_per_byte, *a.peak_tflops.values()):
        assert np.all(np.isfinite(arr)) and np.all(arr >= 0)


def test_arrays_match_pydantic():
    designs = [Design(chip=chip(cores=c, memory=m, memory_stacks=s, precisions=p))
               for c, m, s, p in [(16, "hbm3", 2, ["bf16"]), (128, "lpddr5x", 8, ["bf16", "int8"]),
                                  (4, "none", 0, ["fp8"])]]
    a = DesignArrays.from_designs(designs, TECH)
    assert a.valid.all()
    for i, d in enumerate(designs):
        assert a.peak_tflops["bf16"][i] == pytest.approx(d.chip.peak_tflops("bf16"))
        assert a.mem_gb[i] == pytest.approx(d.chip.mem_gb)
    assert a.peak_tflops["bf16"][2] == 0 and a.peak_tflops["fp8"][2] > 0
    assert a.knee_flop_per_byte[2] > 0  # memory-less: knee against SRAM bandwidth


def test_arrays_convert_100k_designs():
    """100k designs convert without a per-row fallback (speed itself: benchmarks/model_speed.py)."""
    rng = np.random.default_rng(1)
    n = 100_000
    cols = {"chip.cores": rng.integers(1, 512, n), "chip.array_rows": rng.choice([32, 64, 128, 256], n),
            "chip.array_cols": rng.choice([32, 64, 128, 256], n), "chip.clock_ghz": rng.uniform(0.5, 2.0, n),  # within n7's reach (2.01 GHz)
            "chip.process_node": rng.choice(["n7", "n5", "n3"], n), "chip.sram_mb": rng.uniform(1, 1024, n),
            "chip.memory": rng.choice(["hbm3", "hbm3e", "lpddr5x"], n), "chip.memory_stacks": rng.integers(1, 9, n),
            "chip.precisions": rng.choice(["bf16,fp8", "bf16,fp8,int8,int4"], n),
            "system.num_chips": rng.choice([1, 8, 64], n), "system.topology": rng.choice(["ring", "switch"], n)}
    DesignArrays.from_columns({k: v[:10] for k, v in cols.items()}, TECH)  # warm up
    a = DesignArrays.from_columns(cols, TECH)
    assert a.n == n and a.valid.all()
    assert np.array_equal(a.macs, cols["chip.cores"] * cols["chip.array_rows"] * cols["chip.array_cols"])


def test_die_count_is_bounded_and_needs_cores():
    import numpy as np
    from pydantic import ValidationError

    from dse.catalog import load_catalog_design
    from dse.model.arrays import DesignArrays
    from dse.model.technology import default_technology

    flat = load_catalog_design("H100-SXM").to_flat()
    with pytest.raises(ValidationError):
        Design.from_flat({**flat, "chip.dies": 10_000})
    cols = {k: [v, v] for k, v in flat.items()}
    cols["chip.cores"] = [4, 4]
    cols["chip.dies"] = [2, 8]          # 8 dies for 4 cores
    arr = DesignArrays.from_columns(cols, default_technology())
    assert arr.valid[0] and not arr.valid[1]
    assert "chip.dies" in arr.reason[1]
    assert np.isfinite(arr.peak_tflops["bf16"]).all()


@pytest.mark.parametrize("field,value", [("cores", True), ("sram_mb", "64"), ("clock_ghz", "fast")])
def test_sizes_must_be_numbers_not_booleans_or_text(field, value):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="valid number"):
        ChipDesign(**{field: value})
