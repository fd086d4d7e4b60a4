"""Compiled path of `dse.model.perf.step_times`: the same arithmetic, one instance at a time, in numba.

`perf.step_times` in numpy pushes each (instance × operator) element through ~60 array passes; here one
loop per instance walks its step's operators with scalars (no temporaries), term by term in the order
the numpy path evaluates them, so both give the same numbers (tests/test_model_speed_equiv.py compares
them to 1e-12, most instances to the bit). The per-design constants are prepared in numpy exactly as
the numpy path prepares them (`design_table`); only the per-element arithmetic is compiled. `map_llm_kernel`
is the compiled path of the LLM mapping (`mapping._choose`): candidates, rung pruning, chords and the choice
per design, its step instances timed by the same loop (`time_batch`).

Importing this module imports numba (~0.4 s) and loads the compiled kernel from numba's cache (next to
this file, `cache=True`); `perf.step_times` imports it lazily and only when `kernel_mode()` says so,
so `dse --help` never pays for it. A missing numba or `DSE_KERNEL=numpy` keeps the numpy path.
"""

from __future__ import annotations

from operator import is_

import numpy as np
from numba import njit

from dse.model import design_kernel as _dk
from dse.model.knobs import TOPOLOGY_CODE
from dse.model.mesh import LADDER as _LADDER, LADDER_K as _LADDER_K, wafer_mesh_constants
from dse.model.memo import by_identities

# per-operator fields of a stacked table (`perf._OpStatic`), as rows of one float array (r, k) each
_OP = ("flops", "wn", "actn", "kvn", "count", "comm_bytes", "group", "cls", "kernel", "noncoll", "prec")
_MM = ("mm_m", "mm_n", "mm_k", "mm_groups", "mm_prec", "mm_sparse", "mm_conv")
# column classes: matrix, vector, collectives (perf.collective_time's kinds)
_COLKIND = {"allreduce": 2, "allgather": 3, "alltoall": 4, "sendrecv": 5}
# per-design constants (`design_table`)
_HW = ("rows", "cols", "cores", "dyn", "sparsity", "vec_den", "gap", "mem_den", "ramp", "has_mem", "sram_bytes",
       "sram_den", "sram_bps", "d2d_share", "d2d_den", "link_bw", "link_lat", "topo", "coll_floor",
       "e_sram", "e_mem", "e_link", "lib_coll", "p2p", "mesh_tiles", "mesh_hop", "mesh_fab")
_H = {f: i for i, f in enumerate(_HW)}
_MESH_HW = 3  # the last columns of _HW: a wafer-scale design's on-wafer mesh (perf.wafer_mesh_constants; 0 elsewhere)
_CONST_ROW = _dk.CONST_ROW
# calibration scalars
_CAL = ("compute_eff_max", "lowp_eff", "conv_eff", "knee_p", "launch_s", "comm_overlap", "step_overhead_s",
        "oneshot", "overlap_tokens", "d2d", "sparse", "comm_elsewhere")
_C = {f: i for i, f in enumerate(_CAL)}

# the operator tables' columns come in multiples of this (`op_table`): time_batch's residency and matrix passes
# vectorize over the operators 4 doubles wide (AVX2; LLVM picked 4 lanes on the 2-core Zen 3 this was measured on) and
# a remainder would run scalar (14 operators padded to 16, 6 matrix operators to 8: vector steps instead of scalar
# ones, 15 % and 7 % less CPU in time_batch / map_llm_kernel); 4, not 8, pads the 11- and 12-operator stacks to 12 and
# the 20-operator ones to 20 (map_cnn_kernel ~5 % less CPU, outputs the same)
OP_LANES = 4

RING, TORUS, SWITCH = TOPOLOGY_CODE["ring"], TOPOLOGY_CODE["torus2d"], TOPOLOGY_CODE["switch"]


def op_table(stack, fuse: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(operator fields (F, r, k), matrix fields (M, r, mm), per row (tokens, count_sum) (r, 2), column
    class (k,)) of a stacked `perf._OpStatic`, cached on it per fusion setting."""
    key = f"_kernel_table{fuse}"
    hit = getattr(stack, key, None)
    if hit is not None:
        return hit
    src = {"wn": f"wn{fuse}", "actn": f"actn{fuse}", "cls": f"cls{fuse}", "kernel": f"kernel{fuse}"}
    # the columns padded to a multiple of OP_LANES with operators run zero times (count 0: timed, never summed), the
    # matrix fields' too (time_batch's matrix pass vectorizes over them)
    width = -(-stack.k // OP_LANES) * OP_LANES
    ops = np.zeros((len(_OP), stack.tokens.shape[0], width))
    for i, f in enumerate(_OP):
        ops[i, :, :stack.k] = np.asarray(getattr(stack, src.get(f, f)), float)
    mm_k = np.asarray(stack.mm_m).shape[1]  # the matrix operators' columns come first (perf.compiled_tables)
    mm = np.zeros((len(_MM), stack.tokens.shape[0], -(-mm_k // OP_LANES) * OP_LANES))
    for i, f in enumerate(_MM):
        mm[i, :, :mm_k] = np.asarray(getattr(stack, f), float)
    rows = np.ascontiguousarray(np.concatenate([stack.tokens, stack.count_sum], axis=1).astype(float))
    kind = np.full(width, 1, np.int64)
    mmc = stack.mm
    kind[mmc] = 0
    for c, cols in stack.coll.items():
        kind[cols] = _COLKIND[c]
    hit = (ops, mm, rows, kind)
    object.__setattr__(stack, key, hit)
    return hit


def design_table(hw, cal, stack, precisions: list[str], compute_peak, sram_rate, fill_time_s, collective_class) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(per-design constants (n, len(_HW)), peak FLOP/s, narrow path, pJ per FLOP (each (n, P) per
    precision index)): what `perf._busy_free`, `_resident_times` and `_energy_j` derive from `hw` before
    their per-element arithmetic, computed by the same numpy expressions. Kept on `hw` per calibration
    while `hw`'s fields are the same objects: the constants once, each precision's columns once (a mapping
    times the same designs in several stages, and every scenario of a mix on them, each with its precisions)."""
    kept = hw.__dict__.setdefault("_kernel_design", {})
    fields = tuple(hw.__dict__.values())  # every field (and this cache, the same dict on every call), in order
    hit = kept.get(id(cal))
    if hit is None or hit[0] is not cal or len(hit[1]) != len(fields) or not all(map(is_, hit[1], fields)):
        if len(kept) >= 4:
            kept.clear()
        hit = kept[id(cal)] = (cal, fields, _design_constants(hw, cal, compute_peak, sram_rate, fill_time_s,
                                                                    collective_class),
                               {}, {}, {})
    _, _, table, by_mm, by_prec, tables = hit
    key = (tuple(stack.mm_precs), tuple(stack.precs))
    out = tables.get(key)
    if out is None:
        n = hw.n
        P = len(precisions)
        peak = np.zeros((n, P))
        narrow = np.zeros((n, P))
        for p in stack.mm_precs:
            if p not in by_mm:
                by_mm[p] = compute_peak(hw, precisions[p])
            peak[:, p], narrow[:, p] = by_mm[p]
        efl = np.zeros((n, P))
        for p in stack.precs:
            if p not in by_prec:
                by_prec[p] = np.asarray(hw.energy_pj_per_flop.get(precisions[p], hw.energy_pj_per_flop.get(
                    "bf16", np.zeros(n))), float)
            efl[:, p] = by_prec[p]
        out = tables[key] = (table, peak, narrow, efl)
    return out


def _design_constants(hw, cal, compute_peak, sram_rate, fill_time_s, collective_class) -> np.ndarray:
    """The per-design constants of `design_table` (n, len(_HW)), which do not depend on the operators: in one
    compiled pass (`design_kernel.constants_kernel`) where `hw`'s fields are columns, else by `_constants_numpy`."""
    n = hw.n
    zero = np.zeros(n)
    peak = hw.peak_flops
    fields = (hw.rows, hw.cols, hw.cores, hw.dataflow, zero if hw.link_rdma is None else hw.link_rdma, hw.sparsity,
              hw.vector_flops, peak["bf16"], peak.get("fp16", peak["bf16"]), hw.sram_bw, hw.mem_bw,
              zero + 1.0 if hw.mem_stream_eff is None else hw.mem_stream_eff,
              zero + 1e9 if hw.clock_hz is None else hw.clock_hz,
              hw.sram_bytes, zero if hw.d2d_share is None else hw.d2d_share, zero if hw.d2d_bw is None else hw.d2d_bw,
              hw.link_bw, hw.link_latency_s, hw.topology, zero if hw.sram_pj_per_byte is None else hw.sram_pj_per_byte,
              zero if hw.mem_pj_per_bit is None else hw.mem_pj_per_bit,
              zero if hw.link_pj_per_bit is None else hw.link_pj_per_bit)
    try:  # (every field a column of n: one conversion)
        v = np.array(fields, float)
    except ValueError:  # (a scalar among them)
        v = None
    if v is None or v.shape != (len(_CONST_ROW), n):
        return _constants_numpy(hw, cal, compute_peak, sram_rate, fill_time_s, collective_class)
    d2d = hw.d2d_share is not None and bool(np.count_nonzero(hw.d2d_share > 0))
    sc = np.array([cal.compute_eff_max, cal.kernel_gap_us * 1e-6, cal.mem_eff_max, cal.mem_ramp_us * 1e-6,
                   cal.sram_eff_max, cal.link_eff, cal.collective_floor_us * 1e-6, d2d], float)
    out = np.empty((n, len(_HW)))
    _dk.constants_kernel(v, sc, out)  # (every column but the mesh's)
    out[:, len(_HW) - _MESH_HW:] = np.array(_mesh_constants(hw)).T
    return out


def _mesh_constants(hw) -> tuple:
    """The on-wafer mesh's per-design constants (`mesh.wafer_mesh_constants`: routers, one traversal of the whole side
    in s, s per byte through one whole edge); zeros without a wafer-scale design."""
    return wafer_mesh_constants(hw)


def _constants_numpy(hw, cal, compute_peak, sram_rate, fill_time_s, collective_class) -> np.ndarray:
    """`_design_constants` by numpy (the compiled pass's reference: tests/test_m128g_constants.py)."""
    n = hw.n
    zero = np.zeros(n)
    dyn, lib, p2p = collective_class(hw)
    stream = 1.0 if hw.mem_stream_eff is None else hw.mem_stream_eff
    vec = np.where(hw.vector_flops > 0, hw.vector_flops, compute_peak(hw, "bf16")[0] / np.maximum(hw.rows, 1.0))
    sram_bps = sram_rate(hw, cal)
    d2d = hw.d2d_share is not None and bool((hw.d2d_share > 0).any())
    col = {
        "rows": hw.rows, "cols": hw.cols, "cores": hw.cores, "dyn": dyn, "sparsity": hw.sparsity,
        "vec_den": np.maximum(vec * cal.compute_eff_max, 1.0),
        "gap": np.where(dyn, cal.kernel_gap_us * 1e-6, fill_time_s(hw)),
        "mem_den": np.maximum(hw.mem_bw * stream * cal.mem_eff_max, 1.0),
        "ramp": cal.mem_ramp_us * 1e-6 * dyn, "has_mem": hw.mem_bw > 0, "sram_bytes": hw.sram_bytes,
        "sram_den": np.maximum(sram_bps, 1.0), "sram_bps": sram_bps,
        "d2d_share": hw.d2d_share if d2d else zero, "d2d_den": np.maximum(hw.d2d_bw, 1.0) if d2d else zero + 1.0,
        "link_bw": np.maximum(hw.link_bw * cal.link_eff, 1.0), "link_lat": hw.link_latency_s,
        "topo": hw.topology, "coll_floor": np.where(lib, cal.collective_floor_us * 1e-6, 0.0),
        "e_sram": zero if hw.sram_pj_per_byte is None else hw.sram_pj_per_byte,
        "e_mem": zero if hw.mem_pj_per_bit is None else hw.mem_pj_per_bit,
        "e_link": zero if hw.link_pj_per_bit is None else hw.link_pj_per_bit,
        "lib_coll": lib, "p2p": p2p,
    }
    col["mesh_tiles"], col["mesh_hop"], col["mesh_fab"] = _mesh_constants(hw)
    try:  # (every constant a column: one conversion, one transpose)
        return np.ascontiguousarray(np.array([col[f] for f in _HW], float).T).reshape(n, len(_HW))
    except ValueError:  # (a constant broadcast from a scalar)
        table = np.empty((n, len(_HW)))
        for i, f in enumerate(_HW):
            table[:, i] = col[f]
        return table


_CAL_TABLES: dict[float, dict] = {}  # overlap tokens → ids of (calibration, stack) → (them, `cal_table`)


def cal_table(cal, stack, overlap_tokens: float) -> np.ndarray:
    """The calibration's scalars (and the stack's flags) the kernel reads, in `_CAL` order; once per (frozen)
    calibration, (cached, immutable) stack and `overlap_tokens` (callers copy it before they change a value)."""
    per = _CAL_TABLES.get(overlap_tokens)
    if per is None:
        if len(_CAL_TABLES) > 16:
            _CAL_TABLES.clear()
        per = _CAL_TABLES[overlap_tokens] = {}
    return by_identities(per, (cal, stack), lambda c, st: _cal_table(c, st, overlap_tokens))


def _cal_table(cal, stack, overlap_tokens: float) -> np.ndarray:
    """`cal_table`, computed."""
    d = {"compute_eff_max": cal.compute_eff_max, "lowp_eff": cal.lowp_eff, "conv_eff": cal.conv_eff,
         "knee_p": cal.knee_p, "launch_s": cal.launch_us * 1e-6 if cal.launch_us > 0 else 0.0,
         "comm_overlap": cal.comm_overlap if stack.coll else 0.0, "step_overhead_s": cal.step_overhead_us * 1e-6,
         "oneshot": float(cal.allreduce == "oneshot"), "overlap_tokens": overlap_tokens, "d2d": 0.0,
         "sparse": float(stack.sparse), "comm_elsewhere": float(stack.comm_elsewhere)}
    return np.array([float(d[f]) for f in _CAL])


@njit(cache=True, inline="always")
def _mx(a, b):
    """np.maximum of two floats (NaN propagates)."""
    return a if (a >= b or a != a) else b


@njit(cache=True, inline="always")
def _mn(a, b):
    """np.minimum of two floats (NaN propagates)."""
    return a if (a <= b or a != a) else b


@njit(cache=True, inline="always")
def _ceil_div(a, b):
    return np.ceil(a / _mx(b, 1.0))


@njit(cache=True, inline="always")
def _gemm_util(m, n, rows, cols, cores, n_gemms, k, split_k_min):
    """perf.gemm_utilization for one element (with K: split-K)."""
    m = _mx(m, 1.0)
    n = _mx(n, 1.0)
    tm = _ceil_div(m, rows)
    tn = _ceil_div(n, cols)
    pad = (m / (tm * rows)) * (n / (tn * cols))
    tiles = tm * tn * _mx(n_gemms, 1.0)
    split = _mx(_mn(np.floor(cores / tiles), np.floor(k / split_k_min)), 1.0)
    tiles = tiles * split
    waves = _ceil_div(tiles, cores)
    return pad * tiles / (waves * cores)


@njit(cache=True, inline="always")
def _simt_util(n, cols, cores, n_gemms, k, split_k_min):
    """`_gemm_util(1, n, 1, cols, ...)` without its exact unit steps (1 / 1 = 1, ceil(1) = 1, 1 · x = x):
    the M·N outputs of a GEMM spread over all lanes of a SIMT chip."""
    n = _mx(n, 1.0)
    tn = _ceil_div(n, cols)
    pad = n / (tn * cols)
    tiles = tn * _mx(n_gemms, 1.0)
    split = _mx(_mn(np.floor(cores / tiles), np.floor(k / split_k_min)), 1.0)
    tiles = tiles * split
    waves = _ceil_div(tiles, cores)
    return pad * tiles / (waves * cores)


@njit(cache=True, inline="always")
def _power(x, p):
    """x ** p as numpy evaluates it for a scalar exponent (square and square root exactly)."""
    if p == 2.0:
        return x * x
    if p == 0.5:
        return np.sqrt(x)
    if p == 1.0:
        return x
    return x ** p


@njit(cache=True, inline="always", error_model="numpy")
def _knee2(c, memory):
    """(roof, valid): the knee of p = 2 of a matrix kernel, ((c/hi)² + (memory/hi)²)^½ · hi with hi = max(c, memory)
    (perf's numpy path), in one division: with both roofs finite and hi >= 1e-300 the larger over hi is exactly 1,
    so (1 + (lo/hi)²)^½ · hi gives the same bits (hi itself when lo = 0: √1 · hi = hi); `valid` is False outside
    that range (the general formula's clamp of hi, inf or NaN). Branch-free, so that its loop vectorizes."""
    roof = _mx(c, memory)
    lo = memory if c >= memory else c
    x = lo / roof
    x = 1.0 + x * x
    bent = np.sqrt(x) * roof
    return (bent if lo != 0.0 else roof), (roof >= 1e-300 and roof < np.inf)


@njit(cache=True, inline="always", error_model="numpy")
def _bytes_split(w, kv, sw, sk, wres, kres, act_off, act_on, has_mem):
    """(bytes off chip, bytes on chip) of an operator's weights, KV and activations under the residency (wres, kres;
    their complements sw, sk): `_resident`'s byte terms in its order (`_resident_a`, `_instance_energy`)."""
    off = sw * w
    off += sk * kv
    off += act_off
    off *= has_mem
    on = wres * w
    on += kres * kv
    on += act_on
    return off, on


@njit(cache=True, inline="always", error_model="numpy")
def _op_time(busy, comm, gap, kernels, share, cnt):
    """An operator's time term, not masked: (max(busy, comm) + (gap · kernels + share)) · count, in the numpy path's
    order (`_op_terms`, `_lane`'s search and `_time_batch`'s knee and mesh passes share it)."""
    ov = gap * kernels
    ov += share
    return (_mx(busy, comm) + ov) * cnt


@njit(cache=True, inline="always", error_model="numpy")
def _byte_pj(off, on, e_sram, e_mem):
    """(on-chip pJ, off-chip pJ) of an operator's bytes off and on chip: (2 · off + on) at the SRAM's pJ per byte
    and 8 · off at the memory's, in the numpy path's order (`_lane` and `_instance_energy` share them)."""
    part = off * 2.0
    part += on
    e_on = part * e_sram
    part = off * 8
    return e_on, part * e_mem


@njit(cache=True, inline="always", error_model="numpy")
def _op_energy(cnt, flop_pj, e_on, e_off, link_pj, linked):
    """An operator's energy (J), not masked: (FLOPs' pJ + on-chip + off-chip pJ (+ link pJ where `linked`)) · 1e-12 ·
    count, in the numpy path's order (`_op_terms` and `_instance_energy` share it)."""
    pj = flop_pj + e_on
    pj += e_off
    pj = pj + link_pj if linked else pj
    pj *= 1e-12
    return pj * cnt


@njit(cache=True, inline="always", error_model="numpy")
def _resident_a(w, kv, cls, sw, sk, wres, kres, act_off, act_on, ratio, has_mem, mem_den, ramp, sram_den, d2d_share,
                d2d_den, d2d):
    """`_resident` with its activations' terms given (`_act_terms`: bytes off and on chip, and the share streamed
    for them, -inf for none), which do not depend on the residency: the same terms in the same order."""
    off, on = _bytes_split(w, kv, sw, sk, wres, kres, act_off, act_on, has_mem)
    streamed = 0.0 if cls == 0.0 else (sw if cls == 1.0 else (sk if cls == 2.0 else _mx(sw, sk)))
    streamed = _mx(streamed, ratio)  # (-inf: the share alone, as `_resident` leaves it for act_off = 0)
    memory = off / mem_den
    memory += ramp * streamed
    memory = memory if off > 0 else (off if off != off else 0.0)  # ((off / rate + ramp) · 0)
    through = on + off
    sram = through / sram_den
    if d2d:
        d2 = d2d_share * through / d2d_den
        sram = _mx(sram, d2) if d2d_share > 0 else sram
    return off, on, memory, sram


@njit(cache=True, inline="always", error_model="numpy")
def _act_terms(act, free_sram):
    """(bytes off chip, bytes on chip, the streamed share or -inf) of an operator's activations under `free_sram`:
    `_resident`'s activation terms, the same bits."""
    act_off = _mx(act - free_sram, 0.0)
    ratio = act_off / _mx(act, 1e-300)
    return act_off, act - act_off, (ratio if act_off != 0.0 else -np.inf)


@njit(cache=True, inline="always", error_model="numpy")
def _resident(w, act, kv, cls, sw, sk, wres, kres, free_sram, has_mem, mem_den, ramp, sram_den, d2d_share, d2d_den,
              d2d=True):
    """(bytes off chip, bytes on chip, memory time, SRAM time) of one operator under the residency (wres, kres; their
    complements sw, sk): perf._resident_times term by term, branch-free (selects), so that its loop vectorizes.
    `d2d` False (a literal: the caller's loop for a design of d2d_share 0) leaves out the die-to-die time, which a
    share of 0 never takes."""
    act_off, act_on, ratio = _act_terms(act, free_sram)
    return _resident_a(w, kv, cls, sw, sk, wres, kres, act_off, act_on, ratio, has_mem, mem_den, ramp, sram_den,
                       d2d_share, d2d_den, d2d)


@njit(cache=True, inline="always", error_model="numpy")
def _op_terms(cnt, busy, comm, gap, kernels, share, flop_pj, e_on, e_off, link_pj, linked):
    """(time s, energy J) of an operator's `cnt` instances in its step, each +0.0 for an operator run zero times (a
    select, not a branch, so that pass 1b's loop vectorizes; as a sum that starts at +0.0 is never -0.0 and x + 0.0
    is x for every other x, NaN and ±inf included, adding it is skipping it): the time (`_op_time`) and the energy
    (`_op_energy`), term by term in the order the numpy path takes them."""
    live = cnt != 0.0
    t = _op_time(busy, comm, gap, kernels, share, cnt)
    e = _op_energy(cnt, flop_pj, e_on, e_off, link_pj, linked)
    return (t if live else 0.0), (e if live else 0.0)


@njit(cache=True, inline="always", error_model="numpy")
def _sums(k, t_term, e_term, want_e):
    """`_time_batch`'s pass 1c without launch queue (launch_us 0) nor hidden collectives: the step's time and energy,
    the operators' terms (`_op_terms`) summed in operator order (plain adds: the loop is the sums' latency only)."""
    total = 0.0
    energy = 0.0
    if want_e:
        for j in range(k):
            total += t_term[j]
            energy += e_term[j]
    else:
        for j in range(k):
            total += t_term[j]
    return total, energy


@njit(cache=True, inline="always", error_model="numpy")
def _lane(ops, s, j, kj, c, comm, flop_pj, sw, sk, wres, kres, act_off, act_on, ratio, has_mem, mem_den, ramp, sram_den,
          d2d_share, d2d_den, square, gap, share, e_sram, e_mem, e_link, comm_elsewhere, d2d, energy):
    """Pass 1b of `_time_batch` for operator `j` of row `s`: (busy time, time term, energy term, 1 if its matrix roof
    needs the general knee), branch-free so that its loop vectorizes (the same terms in the same order; padding is
    evaluated and never summed). Its activations' terms (`act_off`, `act_on`, `ratio`) come from `_act_terms`.
    `energy` False (a literal: the caller's loop for a call that wants no energy, `_time_batch`'s search) leaves out
    the energy term (0.0): the time's terms are the same."""
    cnt = ops[4, s, j]
    w, kv = ops[1, s, j], ops[3, s, j]
    c = c if cnt != 0.0 else 0.0
    off, on, memory, sram = _resident_a(w, kv, ops[7, s, j], sw, sk, wres, kres, act_off, act_on, ratio, has_mem,
                                        mem_den, ramp, sram_den, d2d_share, d2d_den, d2d)
    roof = _mx(c, memory)
    bent, fast = _knee2(c, memory)  # (other knees, or roofs out of its range: after the loop)
    fast = square and fast
    roof = bent if (kj == 0 and fast) else roof
    slow = 1 if (kj == 0 and not fast and cnt != 0.0) else 0
    b = _mx(roof, sram)
    if not energy:  # (`_op_terms`' time alone)
        t = _op_time(b, comm, gap, ops[8, s, j], share, cnt)
        return b, (t if cnt != 0.0 else 0.0), 0.0, slow
    e_on, e_off = _byte_pj(off, on, e_sram, e_mem)
    t, e = _op_terms(cnt, b, comm, gap, ops[8, s, j], share, flop_pj, e_on, e_off, (ops[5, s, j] * 8) * e_link,
                     comm_elsewhere or kj >= 2)
    return b, t, e, slow


@njit(cache=True, inline="always")
def _row_tables(ops, mm, kind, clg, res_cols, pix):
    """Per row of the operator table, once per kernel call: the log2 of each collective's group size (its ring / tree
    steps) and a 2-D torus's first side 2^ceil(log2(g)/2) (`perf._torus_steps`) into `clg` (2, rows, k), libm's log2
    and exp2 of the same arguments as `_time_batch` took them per instance; and into `res_cols` (rows,) the columns
    whose roofs and terms may depend on the residency, [0, res_cols[s]) (a multiple of OP_LANES): past it every
    operator has no weights, no KV and streams nothing (class 0), so that under the same free SRAM its busy time and
    terms are the same bits whatever the residency (0 · share is 0 for a share in [0, 1]); and into `pix` (2, rows, k)
    the precision indices pass 1a gathers with, as integers: each operator's (0 for one run zero times: its precision
    is not read) and each matrix operator's (`mm`'s columns, the first ones)."""
    k = ops.shape[2]
    for s in range(ops.shape[1]):
        for j in range(k):
            pix[0, s, j] = int(ops[10, s, j]) if ops[4, s, j] != 0.0 else 0
        for j in range(mm.shape[2]):
            pix[1, s, j] = int(mm[4, s, j])
        last = -1
        for j in range(k):
            if kind[j] >= 2:
                lg = np.log2(_mx(ops[6, s, j], 1.0))
                clg[0, s, j] = lg
                clg[1, s, j] = np.exp2(np.ceil(lg / 2))
            if not (ops[1, s, j] == 0.0 and ops[3, s, j] == 0.0 and ops[7, s, j] == 0.0):
                last = j
        res_cols[s] = min(-(-(last + 1) // OP_LANES) * OP_LANES, k)


@njit(cache=True, nogil=True, error_model="numpy")
def time_batch(m, row_of, design_of, wres_in, kres_in, res_in, want_e, ops, mm, rowinfo, kind, hwd, peak, narrow,
               efl, cal, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern):
    """Time (s) and dynamic energy (J) per chip of the first `m` instances (see perf.step_times), with the caller's
    per-operator scratch arrays (`compute` ... `kern`, length k): the loop `step_kernel`, `map_llm_kernel` and
    `cnn_kernel` share. (One call per batch of instances: a call per instance would refcount its ~14 array
    arguments each time, which costs as much as the instance's arithmetic.)"""
    k = ops.shape[2]
    clg, res_cols = np.zeros((2, ops.shape[1], k)), np.empty(ops.shape[1], np.int64)
    pix = np.zeros((2, ops.shape[1], k), np.int64)
    _row_tables(ops, mm, kind, clg, res_cols, pix)
    _time_batch(m, row_of, design_of, wres_in, kres_in, res_in, want_e, ops, mm, rowinfo, kind, hwd, peak, narrow, efl,
                cal, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern, np.empty((len(_WORK), k)),
                np.empty(k, np.int64), clg, res_cols, pix)


# `_time_batch`'s per-operator scratch rows (its caller's, so that a call allocates nothing): each operator's time and
# energy terms (`_op_terms`), its FLOPs' energy (pJ, per step and design), the matrix operators' compute time,
# peak FLOP/s and narrow path, and its activations' bytes off and on chip and streamed share (`_act_terms`: per
# step and free SRAM, shared by the residencies of a step on a design)
_WORK = ("t_term", "e_term", "flop_pj", "mm_compute", "mm_peak", "mm_narrow", "act_off", "act_on", "act_ratio")


@njit(cache=True, nogil=True, error_model="numpy")
def _time_batch(m, row_of, design_of, wres_in, kres_in, res_in, want_e, ops, mm, rowinfo, kind, hwd, peak, narrow,
                efl, cal, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern, work, coll, clg,
                res_cols, pix, search=None):
    """`time_batch` with its scratch rows (`work`, (len(_WORK), k)), the collectives' columns (`coll`, (k,) int) and
    the row tables of `_row_tables` (`clg`, `res_cols`, `pix`). `search` given (not None; `map_llm_kernel`'s search,
    which chooses by time alone): no instance's energy (NaN, whatever `want_e`), its terms left out of pass 1b, the
    times the same bits (compiled apart: numba prunes the branches on `search is None`)."""
    k = ops.shape[2]
    cem, lowp, conv_eff, knee = cal[0], cal[1], cal[2], cal[3]
    launch_s, overlap_c, step_s, oneshot = cal[4], cal[5], cal[6], cal[7] > 0
    overlap_tokens, sparse, comm_elsewhere = cal[8], cal[10] > 0, cal[11] > 0
    inv_p = 1.0 / knee
    square = knee == 2.0
    t_term, e_term, flop_pj, mmc, pkv, nwv = work[0], work[1], work[2], work[3], work[4], work[5]
    a_off, a_on, a_rat = work[6], work[7], work[8]
    mmw = mm.shape[2]
    ncoll = 0
    for j in range(k):
        if kind[j] >= 2:
            coll[ncoll] = j
            ncoll += 1
    prev_free = np.nan
    for i in range(m):
        s = row_of[i]
        d = design_of[i]
        # the instance before timed the same step on the same design (another residency): its compute and
        # collective times, which do not depend on the residency, are kept
        same = i > 0 and s == row_of[i - 1] and d == design_of[i - 1]
        rows, cols, cores = hwd[d, 0], hwd[d, 1], hwd[d, 2]
        dyn, sparsity = hwd[d, 3] > 0, hwd[d, 4] > 0
        vec_den, gap, mem_den, ramp, has_mem = hwd[d, 5], hwd[d, 6], hwd[d, 7], hwd[d, 8], hwd[d, 9]
        sram_bytes, sram_den, sram_bps = hwd[d, 10], hwd[d, 11], hwd[d, 12]
        d2d_share, d2d_den = hwd[d, 13], hwd[d, 14]
        bw, lat, topo, floor_ = hwd[d, 15], hwd[d, 16], hwd[d, 17], hwd[d, 18]
        e_sram, e_mem, e_link = hwd[d, 19], hwd[d, 20], hwd[d, 21]
        lib_coll, p2p = hwd[d, 22] > 0, hwd[d, 23] > 0
        tiles = hwd[d, 24]
        wafer = tiles > 0
        skm = _mx(rows, 1.0) if wafer else split_k_min  # (perf.wafer_split_min)
        wres = _mn(_mx(wres_in[i], 0.0), 1.0)
        kres = _mn(_mx(kres_in[i], 0.0), 1.0)
        sw, sk = 1.0 - wres, 1.0 - kres
        free_sram = _mx(sram_bytes - res_in[i], 0.0) if has_mem > 0 else np.inf
        # the same step on the same design under the same free SRAM: pass 1b's columns past res_cols[s] are the
        # instance before's (`_row_tables`)
        kept = same and free_sram == prev_free
        width = res_cols[s] if kept else k
        prev_free = free_sram
        tokens, count_sum = rowinfo[s, 0], rowinfo[s, 1]
        launches = 0.0
        gpu = 0.0
        want_sum = 0.0
        joules = 0.0
        # pass 1a (a step new on this design): every operator's compute and collective times; the matrix and vector
        # operators' branch-free so that it vectorizes over the operators (an operator run zero times, or padding,
        # is evaluated and never read: pass 1b takes its compute time as 0)
        if not same:
            for j in range(mmw):  # (the gathers apart: a gather in the loop below keeps it from vectorizing)
                prec = pix[1, s, j]
                pkv[j], nwv[j] = peak[d, prec], narrow[d, prec]
            for j in range(k if search is None else 0):  # (an operator run zero times: its precision is not read)
                flop_pj[j] = ops[0, s, j] * efl[d, pix[0, s, j]]
            if dyn:
                for j in range(mmw):
                    pk = pkv[j]
                    nw = nwv[j] > 0
                    pk = pk * 0.5 if (sparse and mm[5, s, j] > 0 and not sparsity) else pk
                    m_, n_, k_, g_ = mm[0, s, j], mm[1, s, j], mm[2, s, j], mm[3, s, j]
                    util = _simt_util(m_ * n_, rows * cols, cores, g_, k_, skm)
                    eff = conv_eff if mm[6, s, j] > 0 else cem * (lowp if nw else 1.0)
                    mmc[j] = _mx(ops[0, s, j] / _mx(pk * util * eff, 1.0), 0.0)
            else:
                for j in range(mmw):
                    pk = pkv[j]
                    nw = nwv[j] > 0
                    pk = pk * 0.5 if (sparse and mm[5, s, j] > 0 and not sparsity) else pk
                    m_, n_, k_, g_ = mm[0, s, j], mm[1, s, j], mm[2, s, j], mm[3, s, j]
                    util = _gemm_util(_mx(m_, rows), n_, rows, cols, cores, g_, k_, skm)
                    bpv = 1.0 if nw else 2.0
                    feed = k_ * n_ * g_ * bpv / _mx(sram_bps, 1.0)
                    eff = conv_eff if mm[6, s, j] > 0 else cem * (lowp if nw else 1.0)
                    mmc[j] = _mx(ops[0, s, j] / _mx(pk * util * eff, 1.0), feed)
            for j in range(k):
                kj = kind[j]
                c = ops[0, s, j] / vec_den
                c = mmc[j] if kj == 0 else (c if kj == 1 else 0.0)
                compute[j], comm[j], comm_bw[j] = c, 0.0, 0.0
            for q in range(ncoll):
                j = coll[q]
                if ops[4, s, j] == 0.0:
                    continue
                kj = kind[j]
                t_bw = 0.0
                t_lat = 0.0
                sz = ops[5, s, j]
                g = _mx(ops[6, s, j], 1.0)
                if kj == 2:
                    vol, ring, tree = 2 * (g - 1) / g * sz, 2 * (g - 1), 2 * clg[0, s, j]
                elif kj == 5:
                    vol, ring, tree = sz, 1.0, 1.0
                else:
                    vol, ring, tree = (g - 1) / g * sz, g - 1, clg[0, s, j]
                if topo == RING:
                    steps = ring
                elif topo == TORUS:
                    # one ring phase per dimension of an a x b grid (perf._torus_steps); a send: one hop
                    ta = clg[1, s, j]
                    steps = 1.0 if kj == 5 else (2.0 if kj == 2 else 1.0) * (ta + g / ta - 2.0)
                else:
                    steps = ring if lib_coll else tree
                if oneshot and p2p and topo == SWITCH and kj == 2:
                    one_vol = (g - 1) * sz
                    if one_vol / bw + 2.0 * lat <= vol / bw + 4.0 * lat:
                        vol, steps = one_vol, 2.0
                    else:
                        steps = 4.0
                if g > 1:
                    t_bw = vol / bw
                    t_lat = steps * lat + floor_
                comm[j], comm_bw[j] = t_bw + t_lat, t_bw
        # pass 1b: every operator's roofs under the residency and its time and energy terms, branch-free so that LLVM
        # vectorizes it over the operators (the same terms in the same order; padding is evaluated and never summed)
        share = step_s / _mx(count_sum, 1.0)
        nslow = 0
        if not kept:  # the activations' terms, which only the step and the free SRAM set
            for j in range(k):
                a_off[j], a_on[j], a_rat[j] = _act_terms(ops[2, s, j], free_sram)
        # (two copies of the loop: a design without die-to-die traffic, most, skips its division per operator; a third
        # for a wafer-scale design keeps each operator's SRAM time for its mesh term below in the scratch row
        # `overhead`, free until pass 1c: computed before `_lane`, whose same terms LLVM then takes from it)
        if search is None:  # (else the same loops without the energy terms: `_lane`'s `energy`)
            if wafer:
                for j in range(width):
                    _, _, _, sr = _resident_a(ops[1, s, j], ops[3, s, j], ops[7, s, j], sw, sk, wres, kres,
                                              a_off[j], a_on[j], a_rat[j], has_mem, mem_den, ramp, sram_den,
                                              d2d_share, d2d_den, True)
                    b, t, e, slow = _lane(ops, s, j, kind[j], compute[j], comm[j], flop_pj[j], sw, sk, wres, kres,
                                          a_off[j], a_on[j], a_rat[j], has_mem, mem_den, ramp, sram_den, d2d_share,
                                          d2d_den, square, gap, share, e_sram, e_mem, e_link, comm_elsewhere, True,
                                          True)
                    busy[j], t_term[j], e_term[j], overhead[j] = b, t, e, sr
                    nslow += slow
            elif d2d_share > 0:
                for j in range(width):
                    b, t_term[j], e_term[j], slow = _lane(ops, s, j, kind[j], compute[j], comm[j], flop_pj[j], sw, sk,
                                                          wres, kres, a_off[j], a_on[j], a_rat[j], has_mem, mem_den,
                                                          ramp, sram_den, d2d_share, d2d_den, square, gap, share,
                                                          e_sram, e_mem, e_link, comm_elsewhere, True, True)
                    busy[j] = b
                    nslow += slow
            else:
                for j in range(width):
                    b, t_term[j], e_term[j], slow = _lane(ops, s, j, kind[j], compute[j], comm[j], flop_pj[j], sw, sk,
                                                          wres, kres, a_off[j], a_on[j], a_rat[j], has_mem, mem_den,
                                                          ramp, sram_den, d2d_share, d2d_den, square, gap, share,
                                                          e_sram, e_mem, e_link, comm_elsewhere, False, True)
                    busy[j] = b
                    nslow += slow
        else:
            if wafer:
                for j in range(width):
                    _, _, _, sr = _resident_a(ops[1, s, j], ops[3, s, j], ops[7, s, j], sw, sk, wres, kres,
                                              a_off[j], a_on[j], a_rat[j], has_mem, mem_den, ramp, sram_den,
                                              d2d_share, d2d_den, True)
                    b, t, e, slow = _lane(ops, s, j, kind[j], compute[j], comm[j], flop_pj[j], sw, sk, wres, kres,
                                          a_off[j], a_on[j], a_rat[j], has_mem, mem_den, ramp, sram_den, d2d_share,
                                          d2d_den, square, gap, share, e_sram, e_mem, e_link, comm_elsewhere, True,
                                          False)
                    busy[j], t_term[j], e_term[j], overhead[j] = b, t, e, sr
                    nslow += slow
            elif d2d_share > 0:
                for j in range(width):
                    b, t_term[j], e_term[j], slow = _lane(ops, s, j, kind[j], compute[j], comm[j], flop_pj[j], sw, sk,
                                                          wres, kres, a_off[j], a_on[j], a_rat[j], has_mem, mem_den,
                                                          ramp, sram_den, d2d_share, d2d_den, square, gap, share,
                                                          e_sram, e_mem, e_link, comm_elsewhere, True, False)
                    busy[j] = b
                    nslow += slow
            else:
                for j in range(width):
                    b, t_term[j], e_term[j], slow = _lane(ops, s, j, kind[j], compute[j], comm[j], flop_pj[j], sw, sk,
                                                          wres, kres, a_off[j], a_on[j], a_rat[j], has_mem, mem_den,
                                                          ramp, sram_den, d2d_share, d2d_den, square, gap, share,
                                                          e_sram, e_mem, e_link, comm_elsewhere, False, False)
                    busy[j] = b
                    nslow += slow
        for j in range(k if nslow > 0 else 0):  # pass 1b's matrix kernels under the general knee
            if ops[4, s, j] == 0.0 or kind[j] != 0:
                continue
            c = compute[j]
            _, _, memory, sram = _resident(ops[1, s, j], ops[2, s, j], ops[3, s, j], ops[7, s, j], sw, sk, wres, kres,
                                           free_sram, has_mem, mem_den, ramp, sram_den, d2d_share, d2d_den)
            roof = _mx(c, memory)
            if square and roof >= 1e-300 and roof < np.inf:
                continue
            hi = _mx(roof, 1e-300)
            x = _power(c / hi, knee)
            x += _power(memory / hi, knee)
            roof = _power(x, inv_p) * hi
            b = _mx(roof, sram)
            busy[j] = b
            t_term[j] = _op_time(b, comm[j], gap, ops[8, s, j], share, ops[4, s, j])  # (the operator is run)
        if wafer:
            # a wafer-scale design's operators on their regions of the on-wafer mesh (`mesh.wafer_mesh`, term by term in
            # its order): each run operator with a traversal (a kernel of its own, not a collective) takes at least its
            # region's time, busy = max(busy, region), and its time term again from it (`_op_terms`' time), for the
            # columns [0, width) (those past it are the instance before's). Written out here, not called: a call per
            # instance refcounts its array arguments (~1/4 of this pass). Its SRAM time is pass 1b's (`overhead`); the
            # ladder's rungs that hold at least one router (p · tiles ≥ 1 fails once and for good as p halves) are
            # counted once per instance, not tested per rung
            hop, fab = hwd[d, 25], hwd[d, 26]
            qt = 0
            while qt < _LADDER_K and _LADDER[0, qt] * tiles >= 1.0:
                qt += 1
            den = _mx(sram_bytes, 1.0)
            for j in range(width):
                cnt = ops[4, s, j]
                kj = kind[j]
                kn = ops[8, s, j]
                trav = kn * (2.0 if kj == 0 else 1.0) if kj <= 1 else 0.0
                if cnt == 0.0 or not trav > 0:
                    continue
                local = _mx(compute[j], overhead[j])
                h = trav * hop
                v = ops[2, s, j] * fab
                best = _mx(local, v) + h
                if best <= busy[j]:  # (the whole wafer's time is no more: no region's is, busy and the term stand)
                    continue
                lo = (ops[1, s, j] + ops[3, s, j]) / den
                for q in range(qt):
                    if not _LADDER[0, q] >= lo:
                        break
                    t = _mx(local * _LADDER[3, q], v * _LADDER[2, q]) + h * _LADDER[1, q]
                    if t < best:
                        best = t
                    else:
                        break
                b = _mx(busy[j], best)
                busy[j] = b
                t_term[j] = _op_time(b, comm[j], gap, kn, share, cnt)
        # pass 1c: the sums, operator by operator
        hide = overlap_c > 0 and tokens >= overlap_tokens
        if launch_s <= 0 and not hide:  # (the usual case) the step's time needs no other sum first: one pass
            # (`_sums`' loops written out: a call of it, inlined, increments and decrements its arrays' reference
            # counts once per instance)
            total = 0.0
            if search is None and want_e[i]:
                for j in range(k):
                    total += t_term[j]
                    joules += e_term[j]
                e_out[i] = joules
            else:
                for j in range(k):
                    total += t_term[j]
                e_out[i] = np.nan
            t_out[i] = total
            continue
        for j in range(k):
            cnt = ops[4, s, j]
            if cnt == 0.0:
                continue
            kn = ops[8, s, j]
            ov = gap * kn
            overhead[j], kern[j] = ov, kn
            if launch_s > 0:
                launches += kn * cnt
                gpu += (_mx(busy[j], comm[j]) + ov) * cnt
            want_sum += comm_bw[j] * cnt
            if search is None and want_e[i]:
                joules += e_term[j]
        # host launch queue: the host's excess over the GPU's time, spread over the kernels
        excess = 0.0
        if launch_s > 0:
            host = launch_s * launches if dyn else 0.0
            excess = _mx(host - gpu, 0.0) / _mx(launches, 1.0)
        frac = 0.0
        if hide:
            want = overlap_c * want_sum
            room = 0.0
            for j in range(k):
                cnt = ops[4, s, j]
                if cnt == 0.0:
                    continue
                room += (busy[j] + (overhead[j] + excess * kern[j])) * cnt * ops[9, s, j]
            frac = _mn(want, room) / _mx(want, 1e-300) if want > 0 else 0.0
        total = 0.0
        for j in range(k):
            cnt = ops[4, s, j]
            if cnt == 0.0:
                continue
            ov = overhead[j]
            if launch_s > 0:
                ov = ov + excess * kern[j]
            cm = comm[j]
            if hide:
                cm = cm - overlap_c * comm_bw[j] * frac
            ov += share
            total += (_mx(busy[j], cm) + ov) * cnt
        t_out[i] = total
        e_out[i] = joules if search is None and want_e[i] else np.nan


@njit(cache=True, nogil=True)
def step_kernel(row_of, design_of, wres_in, kres_in, res_in, want_e, ops, mm, rowinfo, kind, hwd, peak, narrow, efl,
                cal, split_k_min, t_out, e_out):
    """Time (s) and dynamic energy (J) per chip of each instance (see perf.step_times)."""
    k = ops.shape[2]
    compute = np.empty(k)
    comm = np.empty(k)
    comm_bw = np.empty(k)
    busy = np.empty(k)
    overhead = np.empty(k)
    kern = np.empty(k)
    time_batch(row_of.shape[0], row_of, design_of, wres_in, kres_in, res_in, want_e, ops, mm, rowinfo, kind, hwd,
               peak, narrow, efl, cal, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern)


# ---- the LLM mapping of a block of designs (dse.evaluate.mapping._map_llm_block) --------------------------------

# per-plan integer fields of an `LlmPlanTable` (rows of one (len(PLAN_INT), plans) int64 array); `tried` is 1
# where every design with the chips tries the plan's depth (`depth_any`, or a power of two of PP_CHOICES)
PLAN_INT = ("pp", "mb", "mbs", "grp", "replica", "dec", "pre", "chunk", "n_chunks", "hop_dec", "hop_pre",
            "hop_chunk", "nxt", "tried", "over", "first_rung", "dec_cls", "pre_cls", "chunk_cls")
_PI = {f: i for i, f in enumerate(PLAN_INT)}
(P_PP, P_MB, P_MBS, P_GRP, P_REPLICA, P_DEC, P_PRE, P_CHUNK, P_NCHUNKS, P_HOP_DEC, P_HOP_PRE, P_HOP_CHUNK, P_NXT,
 P_TRIED, P_OVER, P_FIRST_RUNG, P_DEC_CLS, P_PRE_CLS, P_CHUNK_CLS) = (_PI[f] for f in PLAN_INT)  # (names for numba)
assert P_PRE == P_DEC + 1 and P_CHUNK == P_DEC + 2 and P_PRE_CLS == P_DEC_CLS + 1 and P_CHUNK_CLS == P_DEC_CLS + 2
# per rung (rows of one (len(RUNG_INT), rungs) int64 array): its plans [first, end), the first rung of its ladder,
# whether the ladder prunes, and its level (position in its ladder)
RUNG_INT = ("first", "end", "start", "prune", "level")
# the scenario's and stack's scalars
PLAN_SCALARS = ("out_len", "slo_tpot_ms", "slo_ttft_ms", "max_batch", "goal_throughput", "kv_of_total",
                "kv_fraction", "chords")
# per design outputs: integers (plan, replicas, micro-batch, micro-batches, closest SLO miss's plan, largest
# plan that does not fit; -1: none) and floats (TPOT s, TTFT s, batch prefill s, J per batch cycle, resident
# share, throughput, the closest SLO miss's TPOT and TTFT s)
OUT_INT = ("plan", "dp", "micro_batch", "micro_batches", "close_plan", "largest")
OUT_FLOAT = ("tpot", "ttft", "pre", "joules", "share", "throughput", "close_tpot", "close_ttft")
# designs `map_llm_kernel` walks together: the instances a rung level of theirs needs are timed in one
# `time_batch` call (a call per design and rung would spend ~0.3 µs refcounting its arguments each); bounds its
# per-design tables (designs × (plans + memo keys)), which stay in the core's cache at 16 (~1 MB at 256 designs
# of 286 plans: ~1.3x slower on benchmarks/model_speed.py's LLM scenario)
KERNEL_DESIGNS = 16
# (`map_llm_kernel`'s helpers are inlined, `inline="always"`, for the same reason: a compiled call increments and
# decrements the reference count of each array argument, two atomic operations each, ~20 arrays per call, ~4 calls
# per rung level and block, one per design: ~7 % of the kernel's time on that scenario)


@njit(cache=True, inline="always")
def _fits(w, kv, act, sram, mem, wres, kres, kv_total, kv_frac):
    """mapping.fits_in of one (design, footprint) with the stack's KV room (`Calibration.kv_room_bytes`)."""
    if mem > 0:
        w_off = 0.0 if wres else w
        kv_off = 0.0 if kres else kv
        if kv_total:
            room = kv_frac * mem - w_off
        else:
            room = kv_frac * (mem - w_off)
        return w_off <= mem and kv_off <= _mx(room, 0.0)
    return w + kv + act <= sram


@njit(cache=True, inline="always")
def _clip01(x):
    """np.clip(x, 0, 1) of a float as numpy's clip loop evaluates it (NaN propagates; -0.0 gives 0.0)."""
    if x != x:
        return x
    x = x if x > 0.0 else 0.0
    return x if x < 1.0 else 1.0


@njit(cache=True, inline="always")
def _shares(w, kv, act, sram):
    """(weights wholly resident, weights and KV wholly resident, resident shares fw, fk): mapping.residency."""
    wres = w + act <= sram
    kres = wres and (w + kv + act <= sram)
    fw, fk = _fractions(w, kv, act, sram, wres, kres)
    return wres, kres, fw, fk


@njit(cache=True, inline="always")
def _fractions(w, kv, act, sram, wres, kres):
    """The resident shares (fw, fk) of `_shares` given its whole-residency flags."""
    room = sram - act
    fw = 1.0 if wres else _clip01(room / _mx(w, 1e-30))
    if kres:
        fk = 1.0
    elif wres:
        fk = _clip01((room - w) / _mx(kv, 1e-30))
    else:
        fk = 0.0
    return fw, fk


@njit(cache=True, inline="always")
def _residency_code(fw, fk):
    """The memo key's residency of resident shares (fw, fk): -1 for a fractional share, else the all-or-nothing
    residency (`mapping.residency_combo`: 0 none, 1 weights, 2 weights and KV)."""
    if (fw > 0 and fw < 1) or (fk > 0 and fk < 1):
        return -1
    return (1 if fw >= 1.0 else 0) + (1 if fk >= 1.0 else 0)


@njit(cache=True, inline="always")
def _memo_key(s, cls, code, n_steps):
    """A design's memo key of step `s` under a residency of `_residency_code` `code`: s·3 + code for an
    all-or-nothing residency, 3·n_steps + the footprint class `cls` for a fractional share."""
    return 3 * n_steps + cls if code < 0 else s * 3 + code


@njit(cache=True, inline="always")
def _slo_met(tp_, tt_, slo_tpot, slo_ttft):
    """The pair meets the scenario's TPOT and TTFT limits (ms; 0: none)."""
    ok = True
    if slo_tpot:
        ok = ok and tp_ * 1e3 <= slo_tpot
    if slo_ttft:
        ok = ok and tt_ * 1e3 <= slo_ttft
    return ok


@njit(cache=True, inline="always")
def _score(dp, batch, out_len, pre, tpot, goal_thr):
    """(throughput, the goal's score; NaN scores -inf): mapping._choose's choice."""
    thr = dp * (batch * out_len / (pre + out_len * tpot))
    score = thr if goal_thr else -tpot + 1e-12 * thr
    if score != score:
        score = -np.inf
    return thr, score


@njit(cache=True, inline="always")
def _queue(npairs, p_dl, p_j, fwv, fkv, p_x, d0, pl, shift_in, is_dec, n_steps, memo_state, q_row, q_des, q_key,
           q_wr, q_kr, q_want, order, tmp, cbase):
    """Queue the step instances the listed (local design, plan) pairs need, under the plans' resident shares (`fwv`,
    `fkv`), that are neither timed nor queued (`memo_state` 0 → 1), each design's in row order (the pairs come design
    by design): `time_batch` then shares a (row, design)'s compute times among its residencies; returns how many are
    queued. Each pair's memo
    keys of its decode, TTFT prefill and prefill chunk steps go to `p_x` (3, pairs). A fractional share with no KV
    resident takes its class's `cbase` (the same step and shares: one instance)."""
    m = 0
    seg = 0  # where the current design's instances start
    for p in range(npairs):
        dl, j = p_dl[p], p_j[p]
        fw, fk = fwv[dl, j], fkv[dl, j]
        if p > 0 and dl != p_dl[p - 1]:
            _sort_rows(seg, m, q_row, q_key, q_wr, q_kr, q_want, order, tmp)
            seg = m
        code = _residency_code(fw, fk)
        nokv = fk == 0.0
        for role in range(3):  # decode, TTFT prefill, prefill chunk (consecutive fields of PLAN_INT)
            s = pl[P_DEC + role, j]
            c = pl[P_DEC_CLS + role, j]
            x = _memo_key(s, cbase[c] if nokv else c, code, n_steps)
            p_x[role, p] = x
            if memo_state[dl, x] != 0:
                continue
            memo_state[dl, x] = 1
            if code < 0:  # a fractional share: timed with its own shares
                q_wr[m], q_kr[m] = fw, fk
            else:
                q_wr[m] = 1.0 if code >= 1 else 0.0
                q_kr[m] = 1.0 if code == 2 else 0.0
            q_row[m] = s + shift_in[d0 + dl]
            q_des[m] = d0 + dl
            q_key[m] = x
            q_want[m] = is_dec[s]
            m += 1
    _sort_rows(seg, m, q_row, q_key, q_wr, q_kr, q_want, order, tmp)
    return m


@njit(cache=True, inline="always", error_model="numpy")
def _instance_energy(ops, s, d, wres_in, kres_in, res_in, hwd, efl, pix, kind, comm_elsewhere):
    """Dynamic energy (J) of one step instance (row `s` on design `d` under the shares `wres_in`, `kres_in`, `res_in`
    bytes of SRAM held by others): `_time_batch`'s energy terms (`_lane`, `_op_terms`) and their sum, term by term in
    its order, the same bits; they take no time term, so no roof, division nor root."""
    wres = _mn(_mx(wres_in, 0.0), 1.0)
    kres = _mn(_mx(kres_in, 0.0), 1.0)
    sw, sk = 1.0 - wres, 1.0 - kres
    has_mem = hwd[d, 9]
    free_sram = _mx(hwd[d, 10] - res_in, 0.0) if has_mem > 0 else np.inf
    e_sram, e_mem, e_link = hwd[d, 19], hwd[d, 20], hwd[d, 21]
    joules = 0.0
    for j in range(ops.shape[2]):
        cnt = ops[4, s, j]
        w, kv = ops[1, s, j], ops[3, s, j]
        act_off, act_on, _ = _act_terms(ops[2, s, j], free_sram)  # (its streamed share unused: no time here)
        off, on = _bytes_split(w, kv, sw, sk, wres, kres, act_off, act_on, has_mem)
        flop_pj = ops[0, s, j] * efl[d, pix[0, s, j]]
        e_on, e_off = _byte_pj(off, on, e_sram, e_mem)
        e = _op_energy(cnt, flop_pj, e_on, e_off, (ops[5, s, j] * 8) * e_link, comm_elsewhere or kind[j] >= 2)
        joules += e if cnt != 0.0 else 0.0
    return joules


@njit(cache=True, inline="always")
def _pair_energies(npairs, p_dl, p_j, fwv, fkv, p_x, d0, pl, shift_in, is_dec, n_steps, memo_state, memo_e, cbase,
                   ops, hwd, efl, pix, kind, comm_elsewhere):
    """The energy of the decode and prefill chunk instances of the listed (local design, plan) pairs (each timed
    already, by `_queue`'s search, which took no energy) not known yet (`memo_state` 1 → 2) into `memo_e`, each
    under the shares `_queue` timed it with (`_instance_energy`: `_time_batch`'s bits; NaN where the step's energy
    is not wanted, as there); the pairs' memo keys of their three steps go to `p_x`, as `_queue` writes them. (A
    key's shares are the pair's: those of its residency code, or for a fractional share its footprint class's,
    whose plans have the same weights, KV and activations, hence shares on a design, `_shares`; `cbase`'s hold no
    KV, their weights' share set by the weights and activations alone.)"""
    for p in range(npairs):
        dl, j = p_dl[p], p_j[p]
        fw, fk = fwv[dl, j], fkv[dl, j]
        code = _residency_code(fw, fk)
        nokv = fk == 0.0
        for role in range(3):
            s = pl[P_DEC + role, j]
            c = pl[P_DEC_CLS + role, j]
            x = _memo_key(s, cbase[c] if nokv else c, code, n_steps)
            p_x[role, p] = x
            if role == 1 or memo_state[dl, x] == 2:
                continue
            memo_state[dl, x] = 2
            if code < 0:  # (as `_queue` takes them)
                wr, kr = fw, fk
            else:
                wr = 1.0 if code >= 1 else 0.0
                kr = 1.0 if code == 2 else 0.0
            memo_e[dl, x] = _instance_energy(ops, s + shift_in[d0 + dl], d0 + dl, wr, kr, 0.0, hwd, efl, pix, kind,
                                             comm_elsewhere) if is_dec[s] else np.nan


# `_sort_rows` packs a queue entry's (row, memo column) - or (row, position in its design's segment, at most its memo
# columns) - in one integer, the column in the low MEMO_KEY_BITS bits: a plan table's memo columns (3 per step and
# one per footprint class, `_memo_key`) must stay below 2^MEMO_KEY_BITS (dse.evaluate.mapping checks before a call)
MEMO_KEY_BITS = 20
_MEMO_MASK = (1 << MEMO_KEY_BITS) - 1


@njit(cache=True, inline="always")
def _sort_rows(a, b, q_row, q_key, q_wr, q_kr, q_want, order, tmp):
    """Sort queue entries [a, b) (one design's: their `q_des` is the same, left in place) by row, stably: an insertion
    sort of packed (row, position) keys in `order` (one integer moved per step instead of five fields), then the
    fields permuted through `tmp` (3, len); an ordered segment (two in three) is left as it is."""
    ordered = True
    for i in range(a + 1, b):
        ordered = ordered and q_row[i - 1] <= q_row[i]
    if ordered:
        return
    for i in range(a, b):
        key = (q_row[i] << MEMO_KEY_BITS) | (i - a)
        h = i - a
        while h > 0 and order[h - 1] > key:
            order[h] = order[h - 1]
            h -= 1
        order[h] = key
    for t in range(b - a):
        i = a + (order[t] & _MEMO_MASK)
        tmp[0, t], tmp[1, t], tmp[2, t] = q_wr[i], q_kr[i], 1.0 if q_want[i] else 0.0
        order[t] = (order[t] & ~_MEMO_MASK) | q_key[i]  # (row, memo column)
    for t in range(b - a):
        i = a + t
        q_row[i] = order[t] >> MEMO_KEY_BITS
        q_key[i] = order[t] & _MEMO_MASK
        q_wr[i], q_kr[i], q_want[i] = tmp[0, t], tmp[1, t], tmp[2, t] > 0


@njit(cache=True, inline="always")
def _memoize(m, q_des, q_key, d0, t_out, memo_t):
    """Keep the `m` timed instances' time under their memo keys: design `q_des` (block row q_des - d0), column
    `q_key` (its `memo_state`, 1 since `_queue`, stays; the search takes no energy: `_pair_energies`)."""
    for i in range(m):
        dl, x = q_des[i] - d0, q_key[i]
        memo_t[dl, x] = t_out[i]


@njit(cache=True, inline="always")
def _values(npairs, p_dl, p_j, p_x, d0, pl, static_in, hop, out_len, memo_t, memo_e, tpot, pre, ttft, jl, energy):
    """(TPOT, batch prefill, TTFT, J per batch cycle of a replica) of each listed pair into its cells of `tpot`, `pre`,
    `ttft`, `jl` (mapping._pair_times, term by term) from the memoized step times (memo keys `p_x`); `energy` False
    (a literal: the search, which has no energies) leaves `jl` as it is."""
    for p in range(npairs):
        dl, j = p_dl[p], p_j[p]
        d = d0 + dl
        d_t = memo_t[dl, p_x[0, p]]
        p_t = memo_t[dl, p_x[1, p]]
        ch_t = memo_t[dl, p_x[2, p]]
        pp = pl[P_PP, j]
        tp_ = d_t + (pp - 1) * hop[d, pl[P_HOP_DEC, j]]
        pre_ = (pl[P_NCHUNKS, j] + pp - 1) * (ch_t / pp + (1.0 if pp > 1 else 0.0) * hop[d, pl[P_HOP_CHUNK, j]])
        tt_ = _mx(p_t + (pp - 1) * hop[d, pl[P_HOP_PRE, j]], pre_)
        cycle = pre_ + out_len * tp_
        tpot[dl, j] = tp_
        pre[dl, j] = pre_
        ttft[dl, j] = tt_
        if energy:
            d_e, ch_e = memo_e[dl, p_x[0, p]], memo_e[dl, p_x[2, p]]
            jl[dl, j] = pl[P_GRP, j] * (pl[P_NCHUNKS, j] * ch_e + out_len * pl[P_MBS, j] * d_e +
                                        pp * static_in[d] * cycle)


@njit(cache=True, inline="always")
def _class_bases(pl, pf, n_steps, n_cls):
    """Per footprint class, the first class of the same step, weights and activations: a design that holds no KV of
    either on chip gives both the same resident shares (`_fractions`: fw from the weights and activations alone, fk
    0), hence the same instance; `_queue` times it once, under the first's memo key."""
    c_step, c_w, c_act = np.full(n_cls, -1, np.int64), np.empty(n_cls), np.empty(n_cls)
    for j in range(pl.shape[1]):
        for role in range(3):
            c = pl[P_DEC_CLS + role, j]
            c_step[c], c_w[c], c_act[c] = pl[P_DEC + role, j], pf[0, j], pf[2, j]
    cbase, later = np.empty(n_cls, np.int64), np.empty(n_cls, np.int64)
    head = np.full(n_steps, -1, np.int64)  # per step its classes so far, latest first (a list through `later`)
    for c in range(n_cls):
        cbase[c] = c
        s = c_step[c]
        if s < 0:
            continue
        y = head[s]
        while y >= 0:
            if c_w[y] == c_w[c] and c_act[y] == c_act[c]:
                cbase[c] = cbase[y]
                break
            y = later[y]
        later[c], head[s] = head[s], c
    return cbase


@njit(cache=True, nogil=True)
def map_llm_kernel(pl, pf, rungs, chips_in, sram_in, mem_in, static_in, hop, shift_in, is_dec, n_steps, n_cls, sc,
                   ops, mm, rowinfo, kind, hwd, peak, narrow, efl, cal, split_k_min, o_int, o_float):
    """The best plan of each design (mapping._choose): its candidate plans (tried and fitting), rung level by rung
    level with a pruning ladder's later rungs skipped once a rung has no plan meeting the SLOs, the chord beyond
    each last good knot of a column (bisection), the first plan of best score; and for the reasons the closest
    SLO miss and the largest micro-batch-1 plan that does not fit. Designs go in blocks of KERNEL_DESIGNS; each
    step instance a design needs is timed once (`time_batch`)."""
    n = chips_in.shape[0]
    P = pl.shape[1]
    R = rungs.shape[1]
    out_len = int(sc[0])
    slo_tpot, slo_ttft = sc[1], sc[2]
    max_b = int(sc[3])
    goal_thr, kv_total, kv_frac, chords = sc[4] > 0, sc[5] > 0, sc[6], sc[7] > 0
    k = ops.shape[2]
    compute, comm, comm_bw = np.empty(k), np.empty(k), np.empty(k)
    busy, overhead, kern = np.empty(k), np.empty(k), np.empty(k)
    work, coll = np.empty((len(_WORK), k)), np.empty(k, np.int64)
    clg, res_cols = np.zeros((2, ops.shape[1], k)), np.empty(ops.shape[1], np.int64)
    pix = np.zeros((2, ops.shape[1], k), np.int64)
    _row_tables(ops, mm, kind, clg, res_cols, pix)
    cbase = _class_bases(pl, pf, n_steps, n_cls)
    B = max(min(n, KERNEL_DESIGNS), 1)
    W = 3 * n_steps + n_cls
    memo_t, memo_e = np.empty((B, W)), np.empty((B, W))
    memo_state = np.zeros((B, W), np.int8)  # 0 not queued, 1 queued (then timed, by the end of the level), 2 its energy
    e_hi, e_th = np.empty(B, np.int64), np.empty(B)  # a chord's upper knot (-1: none) and share of the chosen batch
    q_row, q_des, q_key = np.empty(B * W, np.int64), np.empty(B * W, np.int64), np.empty(B * W, np.int64)
    q_wr, q_kr, q_want = np.empty(B * W), np.empty(B * W), np.empty(B * W, np.bool_)
    zeros, t_out, e_out = np.zeros(B * W), np.empty(B * W), np.empty(B * W)
    order, tmp = np.empty(B * W, np.int64), np.empty((3, B * W))  # `_sort_rows`' scratch
    p_dl, p_j = np.empty(B * P, np.int64), np.empty(B * P, np.int64)
    p_r = np.empty(B * P, np.int64)
    p_x = np.empty((3, B * P), np.int64)
    cand, off, good = np.zeros((B, P), np.bool_), np.zeros((B, P), np.bool_), np.zeros((B, P), np.bool_)
    fwv, fkv = np.zeros((B, P)), np.zeros((B, P))
    tpot, ttft, pre, jl = np.zeros((B, P)), np.zeros((B, P)), np.zeros((B, P)), np.zeros((B, P))
    dpv = np.zeros((B, P), np.int64)
    cl, ncl = np.empty((B, P), np.int64), np.zeros(B, np.int64)  # each design's candidates, in plan order
    # per plan j, how many of a design's candidates come before it: the candidates of plans [a, b) are
    # cl[cpos[a]:cpos[b]] (a rung's, without testing each of its plans)
    cpos = np.empty((B, P + 1), np.int64)
    rung_on, passed = np.zeros((B, R), np.bool_), np.zeros((B, R), np.bool_)
    levels = 0
    for r in range(R):
        levels = max(levels, rungs[4, r] + 1)
    # the rungs of each level, in rung order: lev_rungs[lev_start[lev]:lev_start[lev + 1]]
    lev_start = np.zeros(levels + 1, np.int64)
    for r in range(R):
        lev_start[rungs[4, r] + 1] += 1
    for lev in range(levels):
        lev_start[lev + 1] += lev_start[lev]
    lev_rungs = np.empty(R, np.int64)
    fill = lev_start[:levels].copy()
    for r in range(R):
        lev_rungs[fill[rungs[4, r]]] = r
        fill[rungs[4, r]] += 1
    # per replica count of the plans (ascending), the plans of at most that many replicas, in plan order
    rep_val = np.unique(pl[P_REPLICA])
    nrep = rep_val.shape[0]
    rep_plans, rep_len = np.empty((nrep, P), np.int64), np.zeros(nrep, np.int64)
    rep_of = np.searchsorted(rep_val, pl[P_REPLICA])  # each plan's replica count, as an index of rep_val
    dp_of = np.empty((B, nrep), np.int64)  # a block design's chips // each replica count (one division each)
    for t in range(nrep):
        for j in range(P):
            if pl[P_REPLICA, j] <= rep_val[t]:
                rep_plans[t, rep_len[t]] = j
                rep_len[t] += 1
    for d0 in range(0, n, B):
        nb = min(B, n - d0)
        memo_state[:] = 0
        # candidates: the plans a design tries that fit, with their resident shares
        for dl in range(nb):
            d = d0 + dl
            chips, sram, mem = chips_in[d], sram_in[d], mem_in[d]
            largest, largest_key = -1, -1
            ncl[dl] = 0
            for j in range(P):
                cand[dl, j] = off[dl, j] = good[dl, j] = False
            t = -1  # the plans of at most `chips` replicas
            while t + 1 < nrep and rep_val[t + 1] <= chips:
                t += 1
            for u in range(t + 1):  # (the replica counts of the plans it may try)
                dp_of[dl, u] = chips // rep_val[u]
            for q in range(rep_len[t] if t >= 0 else 0):
                j = rep_plans[t, q]
                if not (pl[P_TRIED, j] > 0 or pl[P_PP, j] == chips // pl[P_GRP, j]):
                    continue
                w, kv, act = pf[0, j], pf[1, j], pf[2, j]
                wres = w + act <= sram  # (`_shares`, its shares only for the plans that fit)
                kres = wres and (w + kv + act <= sram)
                if not _fits(w, kv, act, sram, mem, wres, kres, kv_total, kv_frac):
                    key = pl[P_REPLICA, j] * P + j
                    if pl[P_FIRST_RUNG, j] > 0 and key > largest_key:
                        largest, largest_key = j, key
                    continue
                cand[dl, j] = True
                fwv[dl, j], fkv[dl, j] = _fractions(w, kv, act, sram, wres, kres)
                cl[dl, ncl[dl]] = j
                ncl[dl] += 1
            o_int[d, 5] = largest
            c = 0
            for j in range(P):
                cpos[dl, j] = c
                c += 1 if cand[dl, j] else 0
            cpos[dl, P] = c
        # rung level by rung level: a pruning ladder's rung is offered while every earlier rung of it passed
        for lev in range(levels):
            npairs = 0
            for dl in range(nb):
                for q in range(lev_start[lev], lev_start[lev + 1]):
                    r = lev_rungs[q]
                    on = lev == 0 or rungs[3, r] == 0 or (rung_on[dl, r - 1] and passed[dl, r - 1])
                    rung_on[dl, r] = on
                    passed[dl, r] = False
                    if not on:
                        continue
                    for q_ in range(cpos[dl, rungs[0, r]], cpos[dl, rungs[1, r]]):
                        j = cl[dl, q_]
                        p_dl[npairs], p_j[npairs], p_r[npairs] = dl, j, r
                        npairs += 1
            m = _queue(npairs, p_dl, p_j, fwv, fkv, p_x, d0, pl, shift_in, is_dec, n_steps, memo_state, q_row, q_des,
                       q_key, q_wr, q_kr, q_want, order, tmp, cbase)
            if m:  # (each design's instances in row order: a row's residencies on a design share its compute times)
                _time_batch(m, q_row, q_des, q_wr, q_kr, zeros, q_want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl,
                            cal, split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern, work, coll,
                            clg, res_cols, pix, True)
            _memoize(m, q_des, q_key, d0, t_out, memo_t)
            _values(npairs, p_dl, p_j, p_x, d0, pl, static_in, hop, out_len, memo_t, memo_e, tpot, pre, ttft, jl,
                    False)
            for p in range(npairs):
                dl, j = p_dl[p], p_j[p]
                dpv[dl, j] = dp_of[dl, rep_of[j]]  # (chips // replicas)
                off[dl, j] = True
                ok = _slo_met(tpot[dl, j], ttft[dl, j], slo_tpot, slo_ttft) and pl[P_OVER, j] == 0
                good[dl, j] = ok
                if ok:
                    passed[dl, p_r[p]] = True
        # the chords' upper knots not timed yet (they do not fit, or their rung was not offered): timed now with
        # their own resident shares, kept in the plan's columns (read only as a chord's end)
        npairs = 0
        for dl in range(nb if chords else 0):
            sram = sram_in[d0 + dl]
            for q in range(ncl[dl]):  # (only a candidate is good)
                lo = cl[dl, q]
                hi = pl[P_NXT, lo]
                if not good[dl, lo] or hi < 0 or (cand[dl, hi] and off[dl, hi]):
                    continue
                _, _, ufw, ufk = _shares(pf[0, hi], pf[1, hi], pf[2, hi], sram)
                fwv[dl, hi], fkv[dl, hi] = ufw, ufk
                p_dl[npairs], p_j[npairs] = dl, hi
                npairs += 1
        m = _queue(npairs, p_dl, p_j, fwv, fkv, p_x, d0, pl, shift_in, is_dec, n_steps, memo_state, q_row, q_des,
                   q_key, q_wr, q_kr, q_want, order, tmp, cbase)
        if m:
            _time_batch(m, q_row, q_des, q_wr, q_kr, zeros, q_want, ops, mm, rowinfo, kind, hwd, peak, narrow, efl, cal,
                        split_k_min, t_out, e_out, compute, comm, comm_bw, busy, overhead, kern, work, coll, clg,
                        res_cols, pix, True)
        _memoize(m, q_des, q_key, d0, t_out, memo_t)
        _values(npairs, p_dl, p_j, p_x, d0, pl, static_in, hop, out_len, memo_t, memo_e, tpot, pre, ttft, jl, False)
        # each design's choice by time alone, then the energy of its chosen plan (J per batch cycle; a chord's: of
        # both its knots) from its decode and prefill chunk instances' energies (the search takes none:
        # `_time_batch`'s `search`)
        npairs = 0
        for dl in range(nb):
            hi, th = _choose_one(dl, d0 + dl, cl[dl], ncl[dl], pl, pf, cand, off, good, fwv, fkv, tpot, ttft, pre, dpv,
                                 sram_in[d0 + dl], mem_in[d0 + dl], out_len, slo_tpot, slo_ttft, max_b, goal_thr,
                                 kv_total, kv_frac, chords, o_int, o_float)
            e_hi[dl], e_th[dl] = hi, th
            if o_int[d0 + dl, 0] >= 0:
                p_dl[npairs], p_j[npairs] = dl, o_int[d0 + dl, 0]
                npairs += 1
                if hi >= 0:
                    p_dl[npairs], p_j[npairs] = dl, hi
                    npairs += 1
        _pair_energies(npairs, p_dl, p_j, fwv, fkv, p_x, d0, pl, shift_in, is_dec, n_steps, memo_state, memo_e, cbase,
                       ops, hwd, efl, pix, kind, cal[11] > 0)
        _values(npairs, p_dl, p_j, p_x, d0, pl, static_in, hop, out_len, memo_t, memo_e, tpot, pre, ttft, jl, True)
        for dl in range(nb):
            d = d0 + dl
            lo = o_int[d, 0]
            if lo < 0:
                continue
            hi = e_hi[dl]
            o_float[d, 3] = jl[dl, lo] if hi < 0 else jl[dl, lo] + e_th[dl] * (jl[dl, hi] - jl[dl, lo])


@njit(cache=True, inline="always")
def _choose_one(dl, d, cl, nc, pl, pf, cand, off, good, fwv, fkv, tpot, ttft, pre, dpv, sram, mem, out_len, slo_tpot,
                slo_ttft, max_b, goal_thr, kv_total, kv_frac, chords, o_int, o_float):
    """Design `d`'s (row `dl` of the block's tables) best plan among its good plans in plan order, then the chords
    in the order of their lower knots (the first of best score), into its output rows; without one, the closest
    SLO miss among its offered plans (the first of least relative gap). `cl[:nc]`: its candidates in plan order
    (only a candidate is good or offered). Its J per batch cycle (column "joules") is left 0: the caller writes it
    from the energies of the plan chosen, whose chord's upper knot (-1: a knot chosen) and share of the way to it
    this returns."""
    best_score = -np.inf
    b_j, b_dp, b_b, b_mbs = -1, 0, 0, 0
    b_tpot = b_ttft = b_pre = b_share = b_thr = b_th = 0.0
    b_hi = -1
    for q in range(nc):
        j = cl[q]
        if good[dl, j]:
            thr, score = _score(dpv[dl, j], pl[P_MB, j] * pl[P_MBS, j], out_len, pre[dl, j], tpot[dl, j], goal_thr)
            if score > best_score:
                best_score, b_j, b_dp, b_b, b_mbs = score, j, dpv[dl, j], pl[P_MB, j], pl[P_MBS, j]
                b_tpot, b_ttft, b_pre, b_thr = tpot[dl, j], ttft[dl, j], pre[dl, j], thr
                b_share = fwv[dl, j] + fkv[dl, j]
    for q in range(nc if chords else 0):
        lo = cl[q]
        hi = pl[P_NXT, lo]
        if not good[dl, lo] or hi < 0 or (cand[dl, hi] and good[dl, hi]):
            continue
        # the chord from the last good knot `lo` of its column to the next knot `hi`: the batch grows by one
        # micro-batch in flight while b = 1, else by one sequence per micro-batch (mapping._chords)
        by_mb = pl[P_MB, hi] == pl[P_MB, lo]
        x_lo = pl[P_MBS, lo] if by_mb else pl[P_MB, lo]
        x_hi = pl[P_MBS, hi] if by_mb else pl[P_MB, hi]
        other = pl[P_MB, lo] if by_mb else pl[P_MBS, lo]
        w = pf[0, lo]
        t_lo, t_hi, tt_lo, tt_hi = tpot[dl, lo], tpot[dl, hi], ttft[dl, lo], ttft[dl, hi]
        a, z = x_lo, x_hi
        while z - a > 1:  # mapping._largest_ok: the largest x in [x_lo, x_hi) the chord allows
            mid = (a + z) // 2
            th = (mid - x_lo) / (x_hi - x_lo)
            kvx = pf[1, lo] + th * (pf[1, hi] - pf[1, lo])
            actx = pf[2, lo] + th * (pf[2, hi] - pf[2, lo])
            wres = w + actx <= sram
            kres = wres and (w + kvx + actx <= sram)
            if (mid * other <= max_b) and _fits(w, kvx, actx, sram, mem, wres, kres, kv_total, kv_frac) and \
                    _slo_met(t_lo + th * (t_hi - t_lo), tt_lo + th * (tt_hi - tt_lo), slo_tpot, slo_ttft):
                a = mid
            else:
                z = mid
        if a <= x_lo:
            continue
        th = (a - x_lo) / (x_hi - x_lo)
        c_tpot = t_lo + th * (t_hi - t_lo)
        c_pre = pre[dl, lo] + th * (pre[dl, hi] - pre[dl, lo])
        c_b = pl[P_MB, lo] if by_mb else a
        c_mbs = a if by_mb else pl[P_MBS, lo]
        thr, score = _score(dpv[dl, lo], c_b * c_mbs, out_len, c_pre, c_tpot, goal_thr)
        if score > best_score:
            best_score, b_j, b_dp, b_b, b_mbs = score, lo, dpv[dl, lo], c_b, c_mbs
            b_tpot, b_pre, b_thr = c_tpot, c_pre, thr
            b_ttft = tt_lo + th * (tt_hi - tt_lo)
            b_hi, b_th = hi, th
            s_lo = fwv[dl, lo] + fkv[dl, lo]
            b_share = s_lo + th * (fwv[dl, hi] + fkv[dl, hi] - s_lo)
    o_int[d, 0], o_int[d, 1], o_int[d, 2], o_int[d, 3] = b_j, b_dp, b_b, b_mbs
    o_float[d, 0], o_float[d, 1], o_float[d, 2], o_float[d, 3] = b_tpot, b_ttft, b_pre, 0.0
    o_float[d, 4], o_float[d, 5] = b_share, b_thr
    close, close_score = -1, -np.inf
    for q in range(nc if b_j < 0 else 0):
        j = cl[q]
        if not off[dl, j] or good[dl, j] or pl[P_OVER, j] > 0:
            continue
        g1 = tpot[dl, j] / (slo_tpot * 1e-3) if slo_tpot else 0.0
        g2 = ttft[dl, j] / (slo_ttft * 1e-3) if slo_ttft else 0.0
        gap = _mx(g1, g2)
        score = -gap if gap < np.inf else -np.inf
        if score > close_score:
            close, close_score = j, score
    o_int[d, 4] = close
    if close >= 0:
        o_float[d, 6], o_float[d, 7] = tpot[dl, close], ttft[dl, close]
    return b_hi, b_th


# per-row inputs of `spare_scan`, rows of one (len(SPARE_ROW), rows) float array: the die (`fab.best_spares`:
# the no-spare die, yield and dies per wafer start the scan) and the chip's cost terms that do not depend on the
# spare count (`area._candidate`'s chip_usd: `n` dies, memory USD, the package's room left to the I/O dies is
# `pkg_room` − n × die − footprint, bonded parts without the I/O dies, the smallest I/O dies' package area and
# how many envelope lines of the I/O die counts the row has)
SPARE_ROW = ("fixed", "core", "cores", "d0", "alpha", "cap", "max_die", "min_die", "start_die", "start_y",
             "start_dpw", "n", "wafer_usd", "memory_usd", "pkg_scale", "footprint", "pkg_room", "pkg_usd_per_mm2",
             "bonded", "bond_yield", "io_area_min", "hull_len")
# per I/O die count j of a design (`area._IoChoices`' fields, each (counts, designs)), in this order
SPARE_IO = ("count", "die", "usd", "escape", "inv_yield", "fixed_usd", "area")


@njit(cache=True, inline="always")
def _chip_usd(v, r, g, die, y, dpw, io_n, io_die, io_usd, io_esc, io_iy, io_fx, io_area, hull, hull_iy, hull_fx,
              coverage, test_fraction):
    """`area._candidate`'s chip_usd of row `r` (inputs `v`, design `g` of the I/O die arrays) with dies of
    `die`, yield `y`, `dpw` per wafer: the cheapest I/O die count (`_IoChoices.pick`: the envelope line
    cheapest at the chip's other costs, or where that count has no room in the package and some count has,
    the cheapest count that fits, `_IoChoices._scan`), the package yield, then known-good dies + memory and
    I/O dies + package + scrap + test (`fab.package_yield`, `fab.manufacturing_usd`)."""
    n, wafer, mem, scale, foot = v[11, r], v[12, r], v[13, r], v[14, r], v[15, r]
    pkg_room, pkg_usd, bonded, bond, area_min, hull_len = v[16, r], v[17, r], v[18, r], v[19, r], v[20, r], v[21, r]
    package_c = scale * (n * die + foot)
    dies_c = wafer / (dpw * _mx(y, 1e-12)) * n
    room = pkg_room - n * die - foot
    c = dies_c + mem + package_c * pkg_usd
    best = 0
    best_usd = c * hull_iy[0, g] + hull_fx[0, g]
    for k in range(1, hull.shape[0]):
        if hull_len <= k:
            break
        usd = c * hull_iy[k, g] + hull_fx[k, g]
        if usd < best_usd * (1 - 1e-12):
            best_usd, best = usd, k
    j = hull[best, g]
    if io_area[j, g] > room and area_min <= room:
        j = 0
        best_usd = c * io_iy[0, g] + (io_fx[0, g] if io_area[0, g] <= room else np.inf)
        for q in range(1, io_iy.shape[0]):
            usd = c * io_iy[q, g]
            usd += io_fx[q, g] if io_area[q, g] <= room else np.inf
            if usd < best_usd * (1 - 1e-12):
                best_usd, j = usd, q
    cnt = io_n[j, g]
    esc = y / _mx(y + (1.0 - y) * (1.0 - coverage), 1e-300)
    y_pkg = _mx(bond ** (bonded + cnt) * esc ** n, 1e-12) * io_esc[j, g]
    memory = mem + io_usd[j, g]
    raw = (package_c + scale * cnt * io_die[j, g]) * pkg_usd
    dies = wafer / (dpw * _mx(y, 1e-12)) * n
    scrap = (raw + dies + memory) * (1.0 / y_pkg - 1.0)
    return dies + memory + raw + scrap + test_fraction * dies


@njit(cache=True, nogil=True)
def spare_scan(rowv, design, io_n, io_die, io_usd, io_esc, io_iy, io_fx, io_area, hull, hull_iy, hull_fx, choices,
               dpw_c1, dpw_c2, scribe, coverage, test_fraction, pick, die_out, y_out, dpw_out):
    """`fab.best_spares`' scan over the spare `choices` (ascending) of each row (`design[r]`: its column in the
    I/O die arrays) with `usd_of` = `_chip_usd`, term by term as the numpy path evaluates them: the harvested
    yield's sum (`fab._ascending_sums`, then clipped), `fab.dies_per_wafer` (its constants π r² and 2π r as
    `dpw_c1`, `dpw_c2`) and the chip cost; a choice wins if it fits and is cheaper than the best so far (first
    the no-spare die) by 1e-12 relative. Writes the winning column (-1: none) and its die, yield and dpw."""
    R = rowv.shape[1]
    C = choices.shape[0]
    for r in range(R):
        g = design[r]
        f, c, m, d, a = rowv[0, r], rowv[1, r], rowv[2, r], rowv[3, r], rowv[4, r]
        cap, top, bottom = rowv[5, r], rowv[6, r], rowv[7, r]
        n, wafer, mem, scale, foot = rowv[11, r], rowv[12, r], rowv[13, r], rowv[14, r], rowv[15, r]
        pkg_usd, bonded, bond = rowv[17, r], rowv[18, r], rowv[19, r]
        score = _chip_usd(rowv, r, g, rowv[8, r], rowv[9, r], rowv[10, r], io_n, io_die, io_usd, io_esc, io_iy,
                          io_fx, io_area, hull, hull_iy, hull_fx, coverage, test_fraction)
        a_nr = f / 100.0
        # bounds that end the scan early without changing its result: the die only grows with the spares
        # (so it stays past `top` once there), and a choice's cost is at least its cost with the yield at
        # its limit for unbounded spares (y_inf: a clean non-redundant area), no I/O dies and the package
        # yield at that of its other bonds (inv_pkg: test escapes <= 1, bond yields <= 1), which only grows
        # with the die: once that bound is not below the best cost, no later choice can win (1e-9: rounding
        # of the bound against the cost)
        y_inf = _mx((1.0 + a_nr * d / a) ** (-a) * (1.0 + 1e-9), 1e-12)
        inv_pkg = 1.0 / _mx(bond ** bonded, 1e-12)
        best = -1
        best_die = best_y = best_dpw = 0.0
        for col in range(C):
            s = choices[col]
            array = (m + s) * c
            die = _mx(f + array, bottom)
            if not (die <= top and cap >= s):
                if c >= 0.0:
                    break
                continue
            q = np.sqrt(die) + scribe
            q = q * q
            dpw = _mx(dpw_c1 / q - dpw_c2 / np.sqrt(2 * q), 1.0)
            dies_lo = wafer / (dpw * y_inf) * n
            if ((dies_lo + mem + scale * (n * die + foot) * pkg_usd) * inv_pkg + test_fraction * dies_lo) \
                    * (1.0 - 1e-9) >= score and c >= 0.0:
                break  # (dies per wafer never grow with the die: π r²/A − 2π r/√(2A) falls until it is < 1)
            # harvested yield: Σ_{k<=s} of the negative-binomial terms
            a_arr = array / 100.0
            t = (a_nr + a_arr) * d / a
            rr = a_arr * d / a / (1.0 + t)
            term = (1.0 + t) ** (-a)
            total = term
            for k in range(int(s)):
                term = term * (a + k)
                term = term / (k + 1)
                term = term * rr
                total = total + term
            y = _mn(_mx(total, 0.0), 1.0)
            usd = _chip_usd(rowv, r, g, die, y, dpw, io_n, io_die, io_usd, io_esc, io_iy, io_fx, io_area, hull,
                            hull_iy, hull_fx, coverage, test_fraction)
            if usd < score * (1 - 1e-12):
                score, best, best_die, best_y, best_dpw = usd, col, die, y, dpw
        pick[r] = best
        if best >= 0:
            die_out[r], y_out[r], dpw_out[r] = best_die, best_y, best_dpw


def warm() -> None:
    """Compile `step_kernel` for the argument types `perf.step_times` passes, `map_llm_kernel` for
    `mapping._choose_compiled`'s and `spare_scan` for `fab.best_spares`' (or load them from the cache)."""
    i1, f1 = np.zeros(1, np.int64), np.zeros(1)
    io = np.ones((1, 1))
    spare_scan(np.ones((len(SPARE_ROW), 1)), i1.copy(), io, io.copy(), io.copy(), io.copy(), io.copy(), io.copy(),
               io.copy(), np.zeros((1, 1), np.int64), io.copy(), io.copy(), np.ones(1), 1.0, 1.0, 0.0, 1.0, 0.0,
               i1.copy(), f1.copy(), f1.copy(), f1.copy())
    step_kernel(i1, i1, f1, f1, f1, np.ones(1, bool), np.ones((len(_OP), 1, 1)), np.ones((len(_MM), 1, 1)),
                np.ones((1, 2)), i1.copy(), np.ones((1, len(_HW))), np.ones((1, 1)), np.zeros((1, 1)),
                np.zeros((1, 1)), np.ones(len(_CAL)), 256.0, np.empty(1), np.empty(1))
    pl = np.zeros((len(PLAN_INT), 1), np.int64)
    pl[_PI["replica"]] = 2  # (a plan no design of one chip tries)
    map_llm_kernel(pl, np.ones((3, 1)), np.array([[0], [1], [0], [0], [0]], np.int64), np.ones(1, np.int64),
                   f1.copy(), f1.copy(), f1.copy(), np.zeros((1, 1)), i1.copy(), np.ones(1, bool), 1, 1,
                   np.zeros(len(PLAN_SCALARS)), np.ones((len(_OP), 1, 1)), np.ones((len(_MM), 1, 1)), np.ones((1, 2)),
                   i1.copy(), np.ones((1, len(_HW))), np.ones((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)),
                   np.ones(len(_CAL)), 256.0, np.zeros((1, len(OUT_INT)), np.int64), np.zeros((1, len(OUT_FLOAT))))
