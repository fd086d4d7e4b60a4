"""`map_llm_kernel`'s and `map_cnn_kernel`'s searches time their step instances without their energy (`_time_batch`'s
`search`: the plan is chosen by time alone) and take the energy of the chosen plan's instances afterwards from
`_instance_energy`. Both
must give `time_batch`'s bits: the same times with and without the energy terms, and the same energy as the full
pass, on random operator tables and designs that switch its branches on (die-to-die traffic, wafer-scale meshes,
no off-chip memory, operators run zero times, a launch queue and hidden collectives: the general sum)."""

from __future__ import annotations

import numpy as np
import pytest

from _kernels import needs_numba

pytestmark = needs_numba


def _tables(rng, rows: int, k: int, n: int, P: int = 3):
    from dse.model import step_kernel as sk
    ops = np.zeros((len(sk._OP), rows, k))
    ops[0] = rng.uniform(0.0, 1e12, (rows, k))                      # flops
    ops[1] = rng.uniform(0.0, 4e9, (rows, k)) * (rng.random((rows, k)) < 0.7)  # weights
    ops[2] = rng.uniform(0.0, 2e9, (rows, k))                       # activations
    ops[3] = rng.uniform(0.0, 3e9, (rows, k)) * (rng.random((rows, k)) < 0.5)  # KV
    ops[4] = rng.integers(0, 4, (rows, k)).astype(float)            # count (0: run zero times)
    ops[5] = rng.uniform(0.0, 1e8, (rows, k))                       # collective bytes
    ops[6] = rng.integers(1, 9, (rows, k)).astype(float)            # group
    ops[7] = rng.integers(0, 4, (rows, k)).astype(float)            # class
    ops[8] = rng.integers(1, 5, (rows, k)).astype(float)            # kernels
    ops[9] = rng.random((rows, k))                                  # non-collective share
    ops[10] = rng.integers(0, P, (rows, k)).astype(float)           # precision
    mmw = 4
    mm = np.zeros((len(sk._MM), rows, mmw))
    mm[0:3] = rng.uniform(1.0, 8192.0, (3, rows, mmw))
    mm[3] = rng.integers(1, 4, (rows, mmw))
    mm[4] = rng.integers(0, P, (rows, mmw))
    mm[5] = rng.random((rows, mmw)) < 0.3
    mm[6] = rng.random((rows, mmw)) < 0.2
    kind = np.array([0] * mmw + [1] * (k - mmw - 2) + [2, 5], np.int64)
    rowinfo = np.stack([rng.uniform(1.0, 4096.0, rows), ops[4].sum(axis=1)], axis=1)
    hwd = np.zeros((n, len(sk._HW)))
    H = sk._H
    hwd[:, H["rows"]] = rng.choice([16.0, 128.0, 256.0], n)
    hwd[:, H["cols"]] = rng.choice([16.0, 128.0, 256.0], n)
    hwd[:, H["cores"]] = rng.integers(1, 1000, n)
    hwd[:, H["dyn"]] = rng.random(n) < 0.5
    hwd[:, H["sparsity"]] = rng.random(n) < 0.5
    for f in ("vec_den", "mem_den", "sram_den", "sram_bps", "d2d_den", "link_bw"):
        hwd[:, H[f]] = rng.uniform(1e10, 1e13, n)
    hwd[:, H["gap"]] = rng.uniform(0.0, 1e-5, n)
    hwd[:, H["ramp"]] = rng.uniform(0.0, 1e-4, n)
    hwd[:, H["has_mem"]] = rng.random(n) < 0.8
    hwd[:, H["sram_bytes"]] = rng.uniform(1e6, 2e10, n)
    hwd[:, H["d2d_share"]] = rng.uniform(0.0, 1.0, n) * (rng.random(n) < 0.4)
    hwd[:, H["link_lat"]] = rng.uniform(0.0, 1e-5, n)
    hwd[:, H["topo"]] = rng.choice([float(sk.RING), float(sk.TORUS), float(sk.SWITCH)], n)
    hwd[:, H["coll_floor"]] = rng.uniform(0.0, 1e-6, n)
    for f in ("e_sram", "e_mem", "e_link"):
        hwd[:, H[f]] = rng.uniform(0.0, 30.0, n)
    hwd[:, H["lib_coll"]] = rng.random(n) < 0.5
    hwd[:, H["p2p"]] = rng.random(n) < 0.5
    wafer = rng.random(n) < 0.3
    hwd[:, H["mesh_tiles"]] = np.where(wafer, rng.uniform(1e3, 1e6, n), 0.0)
    hwd[:, H["mesh_hop"]] = np.where(wafer, rng.uniform(1e-7, 1e-5, n), 0.0)
    hwd[:, H["mesh_fab"]] = np.where(wafer, rng.uniform(1e-14, 1e-11, n), 0.0)
    peak = rng.uniform(1e12, 1e15, (n, P))
    narrow = (rng.random((n, P)) < 0.5).astype(float)
    efl = rng.uniform(0.1, 2.0, (n, P))
    return ops, mm, rowinfo, kind, hwd, peak, narrow, efl


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_search_times_and_instance_energy_are_time_batchs(seed, general):
    from dse.model import step_kernel as sk
    rng = np.random.default_rng(seed)
    rows, k, n, m = 7, 12, 40, 600
    ops, mm, rowinfo, kind, hwd, peak, narrow, efl = _tables(rng, rows, k, n)
    cal = np.array([0.8, 0.9, 0.7, 2.0, 0.0, 0.0, 1e-6, 1.0, 64.0, 1.0, 1.0, 0.0])
    if general:  # a launch queue and hidden collectives (the general pass 1c), links charged on every operator
        cal[sk._C["launch_s"]], cal[sk._C["comm_overlap"]], cal[sk._C["comm_elsewhere"]] = 4e-6, 0.5, 1.0
    # instances in runs of the same (row, design) under several residencies (all-or-nothing and fractional shares)
    row_of = np.repeat(rng.integers(0, rows, m // 3), 3)
    design_of = np.repeat(rng.integers(0, n, m // 3), 3)
    wres = rng.choice([0.0, 1.0, 0.25, 0.7], m)
    kres = np.where(wres == 1.0, rng.choice([0.0, 1.0, 0.5], m), 0.0)
    want = rng.random(m) < 0.8
    zeros = np.zeros(m)
    scratch = lambda: [np.empty(k) for _ in range(6)]  # noqa: E731
    t_full, e_full = np.empty(m), np.empty(m)
    sk.time_batch(m, row_of, design_of, wres, kres, zeros, want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl, cal,
                  256.0, t_full, e_full, *scratch())
    # the search's pass (no energy) through `_time_batch` itself
    clg, res_cols = np.zeros((2, rows, k)), np.empty(rows, np.int64)
    pix = np.zeros((2, rows, k), np.int64)
    sk._row_tables(ops, mm, kind, clg, res_cols, pix)
    t_s, e_s = np.empty(m), np.empty(m)
    sk._time_batch(m, row_of, design_of, wres, kres, zeros, want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl, cal,
                   256.0, t_s, e_s, *scratch(), np.empty((len(sk._WORK), k)), np.empty(k, np.int64), clg, res_cols, pix,
                   True)
    assert np.isfinite(t_full).all() and np.array_equal(t_s.view(np.int64), t_full.view(np.int64))
    assert np.isnan(e_s).all()
    got = np.array([sk._instance_energy(ops, row_of[i], design_of[i], wres[i], kres[i], 0.0, hwd, efl, pix, kind,
                                        cal[sk._C["comm_elsewhere"]] > 0) for i in range(m)])
    assert np.isfinite(got).all() and (got > 0).any()
    assert np.array_equal(got[want].view(np.int64), e_full[want].view(np.int64))
    assert np.isnan(e_full[~want]).all()
    # SRAM held by others (the CNN mapping's resident bytes): fewer activations on chip, the same bits again
    res = rng.uniform(0.0, 2e10, m) * (rng.random(m) < 0.7)
    sk.time_batch(m, row_of, design_of, wres, kres, res, want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl, cal,
                  256.0, t_full, e_full, *scratch())
    got_r = np.array([sk._instance_energy(ops, row_of[i], design_of[i], wres[i], kres[i], res[i], hwd, efl, pix, kind,
                                          cal[sk._C["comm_elsewhere"]] > 0) for i in range(m)])
    assert np.array_equal(got_r[want].view(np.int64), e_full[want].view(np.int64))
    assert not np.array_equal(got_r, got)
