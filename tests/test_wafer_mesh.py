"""The on-wafer mesh of wafer-scale chips (issue 11 item 6; dse.model.perf.wafer_mesh): hand-computed region
choices, the term wired into op_times, the compiled path equal to numpy's, more hardware never slower on random
wafer-scale designs, and Cerebras WSE-3's batch-1 decode labelled by its mesh.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.evaluate import evaluate, operator_breakdown
from dse.model import perf
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.perf import BOUNDS, op_times, wafer_mesh, wafer_mesh_constants
from dse.model.technology import default_technology
from dse.workloads.scenarios import load_mix, load_scenario

from _designs import random_designs
from _kernels import kernel_runner, needs_numba
from test_perf import gemv_table, hw as make_hw

TECH = default_technology()


def _mesh(local, trav, wkv, act, tiles=1024.0, hop=32e-9, fab=1.0 / (32 * 4 * 1e9), sram=1.0):
    extra, part, k = wafer_mesh(np.array([[local]]), np.array([[trav]]), np.array([[wkv]]), np.array([[act]]),
                                np.array([tiles]), np.array([hop]), np.array([fab]), np.array([sram]))
    return float(extra[0, 0]), float(part[0, 0]), int(k[0, 0])


def test_region_choice_by_hand():
    # A 32 x 32 mesh (1,024 routers) at 1 GHz, 1 cycle per hop: one traversal of the whole side is 32 ns; links of
    # 4 B/cycle, so the whole edge (32 links) passes 128 B/ns: fab = 1 / 128e9 s per byte.
    # A matrix operator (2 traversals: H = 64 ns at k = 0) with 1,280 B of activations (V = 10 ns through the whole
    # edge) and 4 ns of on-wafer work (local), its weights 1 % of the SRAM. On a region of 2^-k of the wafer its
    # time is max(work 4 * 2^k, stream 10 * 2^(k/2)) + hops 64 / 2^(k/2):
    #   k = 0: max( 4, 10    ) + 64    = 74.00 ns
    #   k = 1: max( 8, 14.14 ) + 45.25 = 59.40 ns
    #   k = 2: max(16, 20    ) + 32    = 52.00 ns   <- the least
    #   k = 3: max(32, 28.28 ) + 22.63 = 54.63 ns   (worse: the search stops)
    region, part, k = _mesh(4e-9, 2.0, 0.01, 1280.0)
    assert k == 2
    assert region == pytest.approx(52e-9, rel=1e-12)
    assert part == pytest.approx(52e-9, rel=1e-12)  # the hops (32) and the stream (20), which hides the work (16)
    # weights of 30 % of the SRAM: a quarter of the wafer cannot hold them, half can (k = 1)
    region, _, k = _mesh(4e-9, 2.0, 0.3, 1280.0)
    assert k == 1 and region == pytest.approx(10e-9 * math.sqrt(2) + 64e-9 / math.sqrt(2), rel=1e-12)
    # a mesh of 2 routers has no region smaller than half of it (one router)
    _, _, k = _mesh(4e-9, 2.0, 0.01, 1280.0, tiles=2.0)
    assert k == 1
    # no traversal (a collective, a fused epilogue): no region of its own
    assert _mesh(4e-9, 0.0, 0.01, 1280.0) == (0.0, 0.0, 0)
    # a long on-wafer task keeps the whole wafer: its work plus one broadcast and one reduction (64 ns)
    region, part, k = _mesh(1e-3, 2.0, 0.01, 1280.0)
    assert k == 0 and region == pytest.approx(1e-3 + 64e-9, rel=1e-12) and part == pytest.approx(74e-9, rel=1e-12)


def test_the_mesh_constants_follow_the_technology_and_the_clock():
    arr = DesignArrays.from_designs([load_catalog_design("Cerebras-WSE-3"), load_catalog_design("H100-SXM")], TECH)
    hw = perf.HwView.from_arrays(arr)
    tiles, hop, fab = wafer_mesh_constants(hw)
    # 46,225 mm2 / 0.05 mm2 per tile = 924,500 routers (WSE-3: 900k cores + spares); the H100 has no mesh
    assert tiles[0] == pytest.approx(46225 / 0.05) and tiles[1] == 0.0
    side = math.sqrt(46225 / 0.05)
    assert hop[0] == pytest.approx(side * 1.0 / 1.1e9, rel=1e-12)  # 1 cycle per hop at the catalog's 1.1 GHz
    assert fab[0] == pytest.approx(1.0 / (side * 4.0 * 1.1e9), rel=1e-12)
    assert hop[1] == 0.0 and fab[1] == 0.0


def test_op_times_adds_the_mesh_term_on_wafer_scale_rows_only():
    cal = load_calibration("tuned")
    base = make_hw(2, dataflow=True, cores=132, rows=32, cols=64)
    base = dataclasses.replace(base, clock_hz=np.full(2, 1e9))
    # the same two designs, the second given a 32 x 32 mesh at 1 GHz, 1 cycle per hop, 4 B per cycle
    wafer = dataclasses.replace(base, mesh_tiles=np.array([0.0, 1024.0]), mesh_hop_cycles=np.ones(2),
                                mesh_link_bytes=np.full(2, 4.0))
    ops = gemv_table(40e6)  # K = N = 8192: 128 output tiles of 64 on 132 cores, split-K 1 either way
    wres, kres, res = np.ones(2), np.ones(2), np.full(2, 40e6)
    t0 = op_times(ops, base, cal, wres, kres, res)
    t1 = op_times(ops, wafer, cal, wres, kres, res)
    assert t1.total[0, 0] == t0.total[0, 0]  # the design without a mesh is untouched, to the bit
    local = max(t0.compute[1, 0], t0.sram[1, 0])  # (resident weights: no memory roof, the busy time is this)
    act = 2 * 8192 + 2 * 8192
    region, part, k = _mesh(local, 2.0, 40e6 / 50e6, act, sram=1.0)
    assert region > local
    assert t1.total[1, 0] == pytest.approx(t0.total[1, 0] - local + region, rel=1e-12)
    assert t1.mesh[1, 0] == pytest.approx(part, rel=1e-12) and part > 0


def _wafer_designs(n: int, seed: int) -> dict:
    return random_designs(n, seed, pin={
        "chip.packaging": "wafer_scale", "chip.core_style": "systolic",
        "chip.cores": {"low": 2000, "high": 400000, "log": True, "type": "int"},
        "chip.array_rows": {"choices": [4, 8, 16, 32]}, "chip.array_cols": {"choices": [4, 8, 16, 32]},
        "chip.sram_mb": {"low": 2000, "high": 60000, "log": True},
        "chip.memory": "none", "chip.process_node": {"choices": ["n7", "n5", "n3"]},
        "chip.clock_ghz": {"low": 0.6, "high": 1.5}, "system.num_chips": {"choices": [1, 2, 4]},
    })


@needs_numba
def test_compiled_path_equals_numpy_on_wafer_scale_designs(monkeypatch):
    run = kernel_runner(monkeypatch)
    arr = DesignArrays.from_columns(_wafer_designs(300, 21), TECH)
    assert arr.wafer_scale.all()
    for mix in ("balanced", "extended"):
        a = run("numpy", evaluate, arr, load_mix(mix), TECH)
        b = run("numba", evaluate, arr, load_mix(mix), TECH)
        assert sum(np.asarray(a[f"{e.scenario.name}.feasible"]).sum() for e in load_mix(mix).scenarios) > 100
        for key in a:
            x, y = np.asarray(a[key]), np.asarray(b[key])
            if x.dtype.kind == "f":
                assert ((x == y) | (np.isnan(x) & np.isnan(y))).all(), key  # bit for bit
            else:
                assert (x == y).all(), key
    perf.reset_kernel()


PERTURB = {
    "cores x2": lambda c: {"chip.cores": c["chip.cores"] * 2},
    "SRAM x1.5 (same bandwidth)": lambda c: {"chip.sram_mb": c["chip.sram_mb"] * 1.5},
    "SRAM bandwidth x2": lambda c: {"chip.sram_tbps": c["chip.sram_tbps"] * 2.0},
    "clock x1.15": lambda c: {"chip.clock_ghz": c["chip.clock_ghz"] * 1.15},
}


@pytest.fixture(scope="module")
def wafer_base():
    cols = _wafer_designs(1500, 31)
    arr = DesignArrays.from_columns(cols, TECH)
    cols["chip.sram_tbps"] = np.asarray(arr.sram_tbps, float)
    cols["chip.tdp_w"] = np.full(len(cols["chip.sram_tbps"]), np.nan)
    return cols, evaluate(DesignArrays.from_columns(cols, TECH), "extended", TECH)


@pytest.mark.parametrize("what", list(PERTURB))
def test_more_wafer_hardware_is_never_slower(wafer_base, what):
    cols, m0 = wafer_base
    m1 = evaluate(DesignArrays.from_columns({**cols, **PERTURB[what](cols)}, TECH), "extended", TECH)
    checked = 0
    for e in load_mix("extended").scenarios:
        sc = e.scenario
        thr = getattr(sc, "goal", "throughput") == "throughput"
        metric = "throughput" if thr else ("tpot_ms" if sc.kind != "cnn" else "latency_ms")
        both = np.asarray(m0[f"{sc.name}.feasible"], bool) & np.asarray(m1[f"{sc.name}.feasible"], bool)
        a, b = np.asarray(m0[f"{sc.name}.{metric}"], float)[both], np.asarray(m1[f"{sc.name}.{metric}"], float)[both]
        worse = (b < a * (1 - 1e-9)) if thr else (b > a * (1 + 1e-9))
        assert not worse.any(), (what, sc.name, np.flatnonzero(both)[worse][:5], a[worse][:5], b[worse][:5])
        checked += int(both.sum())
    assert checked > 500


def test_wse3_batch1_decode_is_mesh_bound_and_near_the_published_rate():
    r = operator_breakdown(load_catalog_design("Cerebras-WSE-3"), load_scenario("local_llm"), software="kernel",
                           phase="decode")
    assert "mesh" in BOUNDS
    gemms = [o for o in r["operators"] if o["kind"] == "gemm"]
    assert gemms and all(o["bound"] == "mesh" for o in gemms)
    # the wafer's own time per token (no software step around it): tens of us, far below the 0.56 ms TPOT that
    # Cerebras published for its service (the rest is the serving stack's), far above the 17 us of 355 operators'
    # array fills that the model gave before the mesh
    wafer_us = r["phase_time_ms"]["decode"] * 1e3
    assert 40 < wafer_us < 200
    mesh_us = sum(o["mesh_s"] for o in r["operators"]) * 1e6
    assert mesh_us > 0.5 * wafer_us  # the mesh's hops and links are most of it


def test_the_kernel_cache_stamp_covers_the_ladder_of_regions(monkeypatch):
    """step_kernel reads mesh.LADDER as a global, which numba freezes into its cache: another ladder is another stamp."""
    from dse.model import kernel as K, mesh

    before = K.kernel_cache_stamp()
    monkeypatch.setattr(mesh, "LADDER", mesh.LADDER.copy())
    assert K.kernel_cache_stamp() == before
    monkeypatch.setattr(mesh, "LADDER", mesh.LADDER * 1.5)
    assert K.kernel_cache_stamp() != before
