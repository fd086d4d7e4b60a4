"""Off-chip memory capacities are binary (dse.units.MEMORY_GB_BYTES = 2^30, JEDEC): a chip's GB become bytes in
one place (DesignArrays.mem_bytes) and every capacity check, KV room and host tier uses them; rates stay decimal."""

import numpy as np
import pytest
import yaml

from dse.catalog import list_catalog, load_catalog_design, published
from dse.designs import load_design
from dse.evaluate.serving import fit_engine
from dse.model.arrays import DesignArrays
from dse.model.hardware import Design
from dse.model.calibration import load_calibration
from dse.model.perf import HwView
from dse.model.technology import default_technology
from dse.units import MEMORY_GB_BYTES
from dse.validate.predict import hw_view
from dse.workloads.modelfile import load_model_shape
from dse.workloads.precision import parse_precision
from dse.workloads.serving import KvOffload

GIB = 1024 ** 3


def _hw(design) -> HwView:
    return HwView.from_arrays(DesignArrays.from_designs([design], default_technology()))


def test_an_80_gb_chip_holds_80_gib():
    """H100 SXM: 5 stacks of 16 GB = 80 x 2^30 = 85,899,345,920 bytes (not 80e9), at 3.35 TB/s = 3.35e12 B/s."""
    assert MEMORY_GB_BYTES == 2 ** 30 == GIB
    hw = _hw(load_catalog_design("H100-SXM"))
    assert hw.mem_bytes[0] == 85_899_345_920
    assert hw.mem_bw[0] == pytest.approx(3.35e12, rel=0.02)  # a rate: decimal


def test_every_catalog_chip_holds_its_published_gib():
    """Each catalog chip with off-chip memory: bytes = the published GB x 2^30 (MI300X 8 x 24 GB = 192 GiB)."""
    seen = 0
    for name in list_catalog():
        design = load_catalog_design(name)
        pub = published(name).get("mem_gb")
        arr = DesignArrays.from_designs([design], default_technology())
        hw = HwView.from_arrays(arr)
        assert hw.mem_bytes[0] == arr.mem_bytes[0] == arr.mem_gb[0] * GIB
        if pub:
            assert hw.mem_bytes[0] == pytest.approx(pub * GIB, rel=0.01), name
            seen += 1
    assert seen >= 5


def test_kv_room_by_hand():
    """Llama-2-7B bf16 on one H100 under TensorRT-LLM (tuned: 0.9 of the memory free after the weights):
    weights 6,738,415,616 params x 2 B = 13,476,831,232 B (12.55 GiB); free 80 GiB - 12.55 GiB = 67.45 GiB
    = 72,422,514,688 B; room 0.9 x that = 65,180,263,219 B; KV 2 (K, V) x 32 layers x 4,096 x 2 B = 524,288 B per
    token, so 124,321 tokens (with 80e9 bytes it was 114,194: 8 % fewer)."""
    shape, prec = load_model_shape("Llama-2-7B"), parse_precision("bf16")
    hw, cal = hw_view("H100-SXM", 1), load_calibration("tuned")
    weights = 6_738_415_616 * 2
    assert weights / GIB == pytest.approx(12.551, abs=1e-3)
    free = 80 * GIB - weights
    assert free == 72_422_514_688
    room = 0.9 * free
    assert cal.kv_room_bytes(hw.mem_bytes, weights)[0] == pytest.approx(room)
    e = fit_engine(shape, prec, hw, cal, tp=1, pp=1, ep=1, batch=64, context=1024)
    assert e.kv_capacity_tokens[0] == int(room // 524_288) == 124_321


def test_host_offload_capacity_is_binary():
    """The prefix-cache host tier (DGX H100: 2 TB for 8 GPUs = 256 GB per GPU) holds 256 x 2^30 B per chip: Llama-2-7B
    bf16 (524,288 B of KV per token) keeps 524,288 tokens there per chip; its link (63 GB/s) is a decimal rate."""
    shape, prec = load_model_shape("Llama-2-7B"), parse_precision("bf16")
    hw, cal = hw_view("H100-SXM", 1), load_calibration("tuned")
    off = KvOffload(host_gb_per_chip=256.0, link_gbps_per_chip=63.0)
    e = fit_engine(shape, prec, hw, cal, tp=1, pp=1, ep=1, batch=64, context=1024, offload=off)
    assert int(np.asarray(e.kv_host_capacity_tokens).ravel()[0]) == 256 * GIB // 524_288 == 524_288
    assert float(np.asarray(e.t_per_cached_token_s).ravel()[0]) == pytest.approx(524_288 / 63e9)


def test_capacity_round_trip_through_a_design_file(tmp_path):
    """A design file's chip.memory_gb_per_stack (24 GB x 8 stacks) reads back as 192 GB = 192 x 2^30 bytes, and
    writing the loaded design out again and reading it gives the same bytes."""
    flat = load_catalog_design("MI300X").to_flat() | {"chip.memory_gb_per_stack": 24.0, "chip.memory_stacks": 8}
    first = tmp_path / "chip.yaml"
    first.write_text(yaml.safe_dump(Design.from_flat(flat).model_dump(mode="json", exclude_none=True)))
    d1 = load_design(str(first))
    second = tmp_path / "again.yaml"
    second.write_text(yaml.safe_dump(d1.model_dump(mode="json", exclude_none=True)))
    d2 = load_design(str(second))
    for d in (d1, d2):
        arr = DesignArrays.from_designs([d], default_technology())
        assert arr.mem_gb[0] == 192.0 and d.chip.mem_gb == 192.0
        assert _hw(d).mem_bytes[0] == 192 * GIB == 206_158_430_208


def test_more_gb_per_stack_never_less_room():
    """Capacity is monotone in the knob and exactly linear: +1 GB per stack on 5 stacks = +5 x 2^30 bytes."""
    flat = load_catalog_design("H100-SXM").to_flat()
    gbs = np.array([16.0, 16.5, 17.0, 24.0])
    arr = DesignArrays.from_designs([Design.from_flat(flat | {"chip.memory_gb_per_stack": g}) for g in gbs],
                                    default_technology())
    hw = HwView.from_arrays(arr)
    assert np.all(np.diff(hw.mem_bytes) > 0)
    assert np.allclose(np.diff(hw.mem_bytes), np.diff(gbs) * 5 * GIB)
