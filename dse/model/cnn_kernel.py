"""Compiled path of the CNN mapping (`dse.evaluate.mapping._map_cnn_block`, numba): every design's batches in one
call, the batch steps timed by `step_kernel.time_batch` (the per-instance arithmetic of `perf.step_times`' compiled
path), instead of the numpy path's (designs × batches) arrays, its staged `time_instances` calls and its bisection
over all designs at once.

The same numbers to the bit: the residency, capacity, SLO and score tests take the numpy path's expressions term
by term in its order (+, −, ×, ÷ and comparisons only), and each design's timed (design, batch) instances are the
numpy path's (a design's batches up to the first that misses the capacity or the SLO, then the chord's upper knot);
which of them share a `time_batch` call changes no instance's value. tests/test_cnn_kernel_equiv.py compares every
column on random designs and the CNN scenarios of the mixes. A layer-pipelined design's latencies (one image's step,
`CnnPlanTable.one`) are timed in numpy by the caller and passed in.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dse.model.step_kernel import _clip01, _mx, time_batch

# the scenario's scalars: latency SLO in ms (0: none), largest batch, whether the goal is throughput (else latency)
SCALARS = ("slo_ms", "max_batch", "goal_throughput")
# per design outputs: integers (whether it has a batch; the chosen batch; index of the first batch the design stopped at, -1:
# none; whether that batch fits) and floats (latency s, dynamic energy J and resident weight share of the chosen
# batch; the latency at the stop)
OUT_INT = ("feasible", "batch", "stop", "stop_fits")
OUT_FLOAT = ("lat", "energy", "share", "stop_lat")


@njit(cache=True, inline="always", error_model="numpy")
def _lat_ok(lat, slo):
    """`lat * 1e3 <= slo` where the scenario has a latency SLO (NaN misses it)."""
    return slo == 0.0 or lat * 1e3 <= slo


@njit(cache=True, nogil=True, error_model="numpy")  # (x / 0 gives ±inf or NaN, as in numpy, not an exception)
def map_cnn_kernel(batch, w, kv, act, sram, mem, chips, shift, pipe_of, pipe_lat, pipe_e, pipe_w, sc, ops, mm,
                   rowinfo, kind, hwd, peak, narrow, efl, calv, split_k_min, o_int, o_float):
    """`_map_cnn_block`'s choice per design: `batch`, `w`, `kv`, `act` per plan (growing batch); `sram`, `mem`
    bytes and `chips` per design; `shift` the row shift of `perf.compiled_tables`; `pipe_of` a layer-pipelined
    design's row of `pipe_lat`, `pipe_e` (its latency and energy per batch) and `pipe_w` (its weights' resident
    share), -1 for the others; `sc` the `SCALARS`; then the compiled step tables. Writes `o_int`, `o_float`."""
    n, B = sram.shape[0], batch.shape[0]
    slo, max_b, goal_thr = sc[0], sc[1], sc[2] > 0
    k = ops.shape[2]
    compute, comm, comm_bw = np.empty(k), np.empty(k), np.empty(k)
    busy, overhead, kern = np.empty(k), np.empty(k), np.empty(k)
    fw = np.empty((n, B))
    res = np.empty((n, B))
    fits = np.empty((n, B), np.bool_)
    reach = np.empty((n, B), np.bool_)
    lat = np.ones((n, B))
    e_j = np.zeros((n, B))
    tm = np.zeros((n, B), np.bool_)
    going = np.empty(n, np.bool_)
    # the residency of every (design, batch): `mapping.residency` with `timed_residency("cnn")`
    for d in range(n):
        s_, m_ = sram[d], mem[d]
        r = True
        for b in range(B):
            wb, kb, ab = w[b], kv[b], act[b]
            wres = wb + ab <= s_
            kres = wres and (wb + kb + ab <= s_)
            if m_ > 0:
                w_off = 0.0 if wres else wb
                kv_off = 0.0 if kres else kb
                f = w_off + kv_off <= m_
            else:
                f = wb + kb + ab <= s_
            room = s_ - ab
            fwb = 1.0 if wres else _clip01(room / _mx(wb, 1e-30))
            if kres:
                fkb = 1.0
            elif wres:
                fkb = _clip01((room - wb) / _mx(kb, 1e-30))
            else:
                fkb = 0.0
            fw[d, b] = fwb
            res[d, b] = fwb * wb + fkb * kb
            fits[d, b] = f
            r = r and f
            reach[d, b] = r
        p = pipe_of[d]
        going[d] = p < 0
        if p >= 0:  # a layer-pipelined design: timed by the caller, its weights where the pipeline keeps them
            for b in range(B):
                lat[d, b], e_j[d, b], fw[d, b], tm[d, b] = pipe_lat[p, b], pipe_e[p, b], pipe_w[p], True
    # the batches in growing order, each on the designs that passed every smaller one (capacity and SLO)
    q_row = np.empty(n, np.int64)
    q_des = np.empty(n, np.int64)
    q_w, q_k, q_res = np.empty(n), np.ones(n), np.empty(n)
    q_want = np.ones(n, np.bool_)
    t_out, e_out = np.empty(n), np.empty(n)
    for b in range(B):
        m = 0
        for d in range(n):
            if going[d] and reach[d, b]:
                q_row[m], q_des[m], q_w[m], q_res[m] = b + shift[d], d, fw[d, b], res[d, b]
                m += 1
        if m:
            time_batch(m, q_row, q_des, q_w, q_k, q_res, q_want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl,
                       calv, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern)
        for i in range(m):
            d = q_des[i]
            lat[d, b], e_j[d, b], tm[d, b] = t_out[i], e_out[i], True
        for d in range(n):
            going[d] = going[d] and fits[d, b] and _lat_ok(lat[d, b], slo)
    # per design: the first candidate of best score, the last candidate (a chord's lower knot) and the first stop
    best = np.empty(n, np.int64)
    best_sc = np.empty(n)
    last = np.empty(n, np.int64)
    m = 0
    for d in range(n):
        alive = True
        j, top, lst, stop = 0, -np.inf, -1, -1
        for b in range(B):
            ok = reach[d, b] and _lat_ok(lat[d, b], slo)
            cand = alive and ok and not (batch[b] > max_b)
            if cand:
                lst = b
                v = chips[d] * batch[b] / lat[d, b] if goal_thr else -lat[d, b]
                if v > top:  # (NaN never wins)
                    j, top = b, v
            passed = fits[d, b] and ok
            if alive and not passed and stop < 0:
                stop = b
            alive = alive and passed
        best[d], best_sc[d] = j, top
        last[d] = lst if lst >= 0 else B - 1
        feasible = top > -np.inf
        o_int[d, 0] = feasible
        o_int[d, 1] = batch[j]
        o_int[d, 2] = stop
        o_int[d, 3] = fits[d, stop] if stop >= 0 else False
        o_float[d, 0], o_float[d, 1], o_float[d, 2] = lat[d, j], e_j[d, j], fw[d, j]
        o_float[d, 3] = lat[d, stop] if stop >= 0 else 0.0
        hi = last[d] + 1
        if feasible and hi < B and not tm[d, hi]:  # the chord's upper knot, not timed yet
            q_row[m], q_des[m], q_w[m], q_res[m] = hi + shift[d], d, fw[d, hi], res[d, hi]
            m += 1
    if m:
        time_batch(m, q_row, q_des, q_w, q_k, q_res, q_want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl,
                   calv, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern)
    for i in range(m):
        d = q_des[i]
        hi = last[d] + 1
        lat[d, hi], e_j[d, hi], tm[d, hi] = t_out[i], e_out[i], True
    # the chord beyond each design's last good batch: the largest batch meeting the max, capacity and the SLO
    if B > 1:
        for d in range(n):
            lo = last[d]
            hi = lo + 1
            if not (best_sc[d] > -np.inf) or hi >= B:
                continue
            x_lo, x_hi = batch[lo], batch[hi]
            l_lo, l_hi, a_lo, a_hi, wl = lat[d, lo], lat[d, hi], act[lo], act[hi], w[lo]
            s_, m_ = sram[d], mem[d]
            a, z = x_lo, x_hi
            while z - a > 1:  # okx(a), not okx(z): `mapping._largest_ok`
                mid = (a + z) // 2
                th = (mid - x_lo) / (x_hi - x_lo)
                ax = a_lo + th * (a_hi - a_lo)
                wres = wl + ax <= s_
                if m_ > 0:
                    w_off = 0.0 if wres else wl
                    fit = w_off + 0.0 <= m_
                else:
                    fit = wl + 0.0 + ax <= s_
                lx = l_lo + th * (l_hi - l_lo)
                if mid <= max_b and fit and _lat_ok(lx, slo):
                    a = mid
                else:
                    z = mid
            if not a > x_lo:
                continue
            th = (a - x_lo) / (x_hi - x_lo)
            lx = l_lo + th * (l_hi - l_lo)
            v = chips[d] * a / lx if goal_thr else -lx
            if v > best_sc[d]:
                o_int[d, 1] = a
                o_float[d, 0] = lx
                o_float[d, 1] = e_j[d, lo] + th * (e_j[d, hi] - e_j[d, lo])
                o_float[d, 2] = fw[d, lo] + th * (fw[d, hi] - fw[d, lo])


def warm() -> None:
    """Compile `map_cnn_kernel` for the argument types `mapping._cnn_choose_compiled` passes (or load it from the
    cache), on one design of two batches (the step tables' values as `step_kernel.warm` gives them)."""
    from dse.model.step_kernel import _CAL, _HW, _MM, _OP
    B, n = 2, 1
    one, z = np.ones, np.zeros
    map_cnn_kernel(np.array([1, 2], np.int64), one(B), z(B), one(B), one(n), one(n), one(n), z(n, np.int64),
                   np.full(n, -1, np.int64), z((1, B)), z((1, B)), z(1), z(len(SCALARS)), one((len(_OP), B, 1)),
                   one((len(_MM), B, 1)), one((B, 2)), z(1, np.int64), one((n, len(_HW))), one((n, 1)), z((n, 1)),
                   z((n, 1)), one(len(_CAL)), 256.0, z((n, len(OUT_INT)), np.int64), z((n, len(OUT_FLOAT))))
