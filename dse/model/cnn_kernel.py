"""Compiled path of the CNN mapping (`dse.evaluate.mapping._map_cnn_block`, numba): every design's batches in one
call, the batch steps timed by `step_kernel._time_batch` (the per-instance arithmetic of `perf.step_times`' compiled
path; without the energy, which the choice does not read: the chosen batch's, or a chord's knots', comes from
`step_kernel._instance_energy`, the same bits), instead of the numpy path's (designs × batches) arrays, its staged `time_instances` calls and its bisection
over all designs at once.

The same numbers to the bit: the residency, capacity, SLO and score tests take the numpy path's expressions term
by term in its order (+, −, ×, ÷ and comparisons only), and each design's timed (design, batch) instances are the
numpy path's (a design's batches up to the first that misses the capacity or the SLO, then the chord's upper knot);
which of them share a `time_batch` call changes no instance's value. tests/test_cnn_kernel_equiv.py compares every
column on random designs and the CNN scenarios of the mixes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dse.model.step_kernel import _WORK, _instance_energy, _row_tables, _shares, _time_batch, time_batch

# the scenario's scalars: latency SLO in ms (0: none), largest batch, whether the goal is throughput (else latency),
# and the stack's per-inference launch (s) and the network's layer-pipeline depth in periods (`CnnPlanTable.depth`)
SCALARS = ("slo_ms", "max_batch", "goal_throughput", "launch_s", "depth")
# per design outputs: integers (whether it has a batch; the chosen batch; index of the first batch the design
# stopped at, -1: none; whether that batch fits) and floats (latency s, dynamic energy J and resident weight share
# of the chosen batch; the latency at the stop)
OUT_INT = ("feasible", "batch", "stop", "stop_fits")
OUT_FLOAT = ("lat", "energy", "share", "stop_lat")


@njit(cache=True, inline="always", error_model="numpy")
def _lat_ok(lat, slo):
    """`lat * 1e3 <= slo` where the scenario has a latency SLO (NaN misses it)."""
    return slo == 0.0 or lat * 1e3 <= slo


@njit(cache=True, nogil=True, error_model="numpy")  # (x / 0 gives ±inf or NaN, as in numpy, not an exception)
def map_cnn_kernel(batch, w, kv, act, sram, mem, chips, sc, ops, mm, rowinfo, kind, hwd, peak, narrow, efl, calv,
                   shift, pipe, one_foot, ops1, mm1, rowinfo1, kind1, hwd1, peak1, narrow1, efl1, calv1, shift1,
                   split_k_min, o_int, o_float):
    """`_map_cnn_block`'s choice per design: `batch`, `w`, `kv`, `act` per plan (growing batch); `sram`, `mem`
    bytes and `chips` per design; `sc` the `SCALARS`; the compiled tables of the batch steps (`perf.compiled_tables`:
    `ops` … `calv` and the row `shift`); whether a design is layer-pipelined (`pipe`), the footprint (w, kv, act) of
    one image and the compiled tables of its step (`ops1` … `shift1`, without the per-step cost). Writes `o_int`,
    `o_float`."""
    n, B = sram.shape[0], batch.shape[0]
    slo, max_b, goal_thr = sc[0], sc[1], sc[2] > 0
    ce = calv[11] > 0  # (links charged on every operator: `_time_batch`'s comm_elsewhere)
    launch_s, depth = sc[3], sc[4]
    k = max(ops.shape[2], ops1.shape[2])
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
    # `_time_batch`'s scratch and row tables for the batch steps, timed without their energy (`search`: the choice
    # is by latency alone; the chosen batch's energy comes from `_instance_energy` below)
    kb = ops.shape[2]
    work, coll = np.empty((len(_WORK), kb)), np.empty(kb, np.int64)
    clg, res_cols = np.zeros((2, ops.shape[1], kb)), np.empty(ops.shape[1], np.int64)
    pix = np.zeros((2, ops.shape[1], kb), np.int64)
    _row_tables(ops, mm, kind, clg, res_cols, pix)
    # the residency of every (design, batch): `mapping.residency` with `timed_residency("cnn")`
    for d in range(n):
        s_, m_ = sram[d], mem[d]
        r = True
        for b in range(B):
            wb, kb, ab = w[b], kv[b], act[b]
            wres, kres, fwb, fkb = _shares(wb, kb, ab, s_)
            if m_ > 0:
                w_off = 0.0 if wres else wb
                kv_off = 0.0 if kres else kb
                f = w_off + kv_off <= m_
            else:
                f = wb + kb + ab <= s_
            fw[d, b] = fwb
            res[d, b] = fwb * wb + fkb * kb
            fits[d, b] = f
            r = r and f
            reach[d, b] = r
        going[d] = not pipe[d]
    q_row = np.empty(n, np.int64)
    q_des = np.empty(n, np.int64)
    q_w, q_k, q_res = np.empty(n), np.ones(n), np.empty(n)
    q_want = np.ones(n, np.bool_)
    t_out, e_out = np.empty(n), np.empty(n)
    # a layer-pipelined chip (chip.layer_pipeline): one image's step at its own residency (`mapping._cnn_pipelined`)
    w1, kv1, a1 = one_foot[0], one_foot[1], one_foot[2]
    m = 0
    for d in range(n):
        if pipe[d]:
            _, _, fw1, fk1 = _shares(w1, kv1, a1, sram[d])
            q_row[m], q_des[m], q_w[m], q_res[m] = shift1[d], d, fw1, fw1 * w1 + fk1 * kv1
            m += 1
    if m:
        time_batch(m, q_row, q_des, q_w, q_k, q_res, q_want, ops1, mm1, rowinfo1, kind1, hwd1, peak1, narrow1, efl1,
                   calv1, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern)
    for i in range(m):  # b images take T·(b + depth), plus one launch; its weights where the pipeline keeps them
        d = q_des[i]
        for b in range(B):
            lat[d, b] = t_out[i] * (batch[b] + depth) + launch_s
            e_j[d, b] = e_out[i] * batch[b]
            fw[d, b] = q_w[i]
            tm[d, b] = True
    # the batches in growing order, each on the designs that passed every smaller one (capacity and SLO)
    for b in range(B):
        m = 0
        for d in range(n):
            if going[d] and reach[d, b]:
                q_row[m], q_des[m], q_w[m], q_res[m] = b + shift[d], d, fw[d, b], res[d, b]
                m += 1
        if m:
            _time_batch(m, q_row, q_des, q_w, q_k, q_res, q_want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl,
                        calv, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern, work, coll, clg,
                        res_cols, pix, True)
        for i in range(m):
            d = q_des[i]
            lat[d, b], tm[d, b] = t_out[i], True
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
        if tm[d, j] and not pipe[d]:  # (the search took no energy)
            e_j[d, j] = _instance_energy(ops, j + shift[d], d, fw[d, j], 1.0, res[d, j], hwd, efl, pix, kind, ce)
        o_float[d, 0], o_float[d, 1], o_float[d, 2] = lat[d, j], e_j[d, j], fw[d, j]
        o_float[d, 3] = lat[d, stop] if stop >= 0 else 0.0
        hi = last[d] + 1
        if feasible and hi < B and not tm[d, hi]:  # the chord's upper knot, not timed yet
            q_row[m], q_des[m], q_w[m], q_res[m] = hi + shift[d], d, fw[d, hi], res[d, hi]
            m += 1
    if m:
        _time_batch(m, q_row, q_des, q_w, q_k, q_res, q_want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl,
                    calv, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern, work, coll, clg,
                    res_cols, pix, True)
    for i in range(m):
        d = q_des[i]
        hi = last[d] + 1
        lat[d, hi], tm[d, hi] = t_out[i], True
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
                if not pipe[d]:  # (the search took no energy: the chord's knots')
                    for x in (lo, hi):
                        if tm[d, x]:
                            e_j[d, x] = _instance_energy(ops, x + shift[d], d, fw[d, x], 1.0, res[d, x], hwd, efl, pix,
                                                         kind, ce)
                o_int[d, 1] = a
                o_float[d, 0] = lx
                o_float[d, 1] = e_j[d, lo] + th * (e_j[d, hi] - e_j[d, lo])
                o_float[d, 2] = fw[d, lo] + th * (fw[d, hi] - fw[d, lo])


# the rows of a mapping's metric block (`mapping._NUMERIC` order) `cnn_result_kernel` writes, in its order
RESULT_METRICS = ("latency_ms", "images_per_s", "energy_j_per_unit", "chips_used", "batch", "throughput", "tp", "pp",
                  "dp", "ep")


@njit(cache=True, nogil=True, error_model="numpy")
def cnn_result_kernel(o_int, o_float, chips, static, rows, m, plans, code):
    """`mapping._cnn_result`'s numbers of every design from `map_cnn_kernel`'s choice (`o_int`, `o_float`), its chips
    (int) and static power (W): into `m` (rows `rows`: `RESULT_METRICS`), `plans` (tp, pp, ep, micro-batch,
    micro-batches, dp) and `code` (`mapping._weights_code`), all zero where a design has no batch: the same operations
    as the numpy code."""
    for d in range(o_int.shape[0]):
        if o_int[d, 0] == 0:
            code[d] = 0
            continue
        b, c = o_int[d, 1], chips[d]
        lat = o_float[d, 0]
        ips = c * b / lat
        m[rows[0], d] = lat * 1e3
        m[rows[1], d] = ips
        m[rows[2], d] = (o_float[d, 1] + static[d] * lat) / b
        m[rows[3], d] = c
        m[rows[4], d] = b
        m[rows[5], d] = ips
        m[rows[6], d], m[rows[7], d], m[rows[8], d], m[rows[9], d] = 1.0, 1.0, c, 1.0
        plans[0, d], plans[1, d], plans[2, d] = 1, 1, 1
        plans[3, d], plans[4, d], plans[5, d] = b, 1, c
        code[d] = 1 if o_float[d, 2] >= 1.0 else 2


def warm() -> None:
    """Compile `map_cnn_kernel` for the argument types `mapping._cnn_choose_compiled` passes (or load it from the
    cache), on one layer-pipelined design of two batches (the step tables' values as `step_kernel.warm` gives them)."""
    from dse.model.step_kernel import _CAL, _HW, _MM, _OP
    B, n = 2, 1
    one, z = np.ones, np.zeros

    def tables(rows):
        return (one((len(_OP), rows, 1)), one((len(_MM), rows, 1)), one((rows, 2)), z(1, np.int64),
                one((n, len(_HW))), one((n, 1)), z((n, 1)), z((n, 1)), one(len(_CAL)), z(n, np.int64))
    map_cnn_kernel(np.array([1, 2], np.int64), one(B), z(B), one(B), one(n), one(n), one(n), z(len(SCALARS)),
                   *tables(B), one(n, np.bool_), one(3), *tables(1), 256.0, z((n, len(OUT_INT)), np.int64),
                   z((n, len(OUT_FLOAT))))
    cnn_result_kernel(np.ones((n, len(OUT_INT)), np.int64), np.ones((n, len(OUT_FLOAT))), np.ones(n, np.int64), one(n),
                      np.arange(len(RESULT_METRICS), dtype=np.int64), z((len(RESULT_METRICS), n)),
                      z((6, n), np.int64), z(n, np.int64))
