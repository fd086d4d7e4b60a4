"""Compiled path of `dse.model.perf.step_times`: the same arithmetic, one instance at a time, in numba.

`perf.step_times` in numpy pushes each (instance × operator) element through ~60 array passes; here one
loop per instance walks its step's operators with scalars (no temporaries), term by term in the order
the numpy path evaluates them, so both give the same numbers (tests/test_model_speed_equiv.py compares
them to 1e-12, most instances to the bit). The per-design constants are prepared in numpy exactly as
the numpy path prepares them (`_design_table`); only the per-element arithmetic is compiled.

Importing this module imports numba (~0.4 s) and loads the compiled kernel from numba's cache (next to
this file, `cache=True`); `perf.step_times` imports it lazily and only when `kernel_mode()` says so,
so `dse --help` never pays for it. A missing numba or `DSE_KERNEL=numpy` keeps the numpy path.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dse.model.knobs import TOPOLOGY_CODE

# per-operator fields of a stacked table (`perf._OpStatic`), as rows of one float array (r, k) each
_OP = ("flops", "wn", "actn", "kvn", "count", "comm_bytes", "group", "cls", "kernel", "noncoll", "prec")
_MM = ("mm_m", "mm_n", "mm_k", "mm_groups", "mm_prec", "mm_sparse", "mm_conv")
# column classes: matrix, vector, collectives (perf.collective_time's kinds)
_COLKIND = {"allreduce": 2, "allgather": 3, "alltoall": 4, "sendrecv": 5}
# per-design constants (`_design_table`)
_HW = ("rows", "cols", "cores", "dyn", "sparsity", "vec_den", "gap", "mem_den", "ramp", "has_mem", "sram_bytes",
       "sram_den", "sram_bps", "d2d_share", "d2d_den", "link_bw", "link_lat", "topo", "coll_floor",
       "e_sram", "e_mem", "e_link", "lib_coll", "p2p")
_H = {f: i for i, f in enumerate(_HW)}
# calibration scalars
_CAL = ("compute_eff_max", "lowp_eff", "conv_eff", "knee_p", "launch_s", "comm_overlap", "step_overhead_s",
        "oneshot", "overlap_tokens", "d2d", "sparse", "comm_elsewhere")
_C = {f: i for i, f in enumerate(_CAL)}

RING, TORUS, SWITCH = TOPOLOGY_CODE["ring"], TOPOLOGY_CODE["torus2d"], TOPOLOGY_CODE["switch"]


def op_table(stack, fuse: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(operator fields (F, r, k), matrix fields (M, r, mm), per row (tokens, count_sum) (r, 2), column
    class (k,)) of a stacked `perf._OpStatic`, cached on it per fusion setting."""
    key = f"_kernel_table{fuse}"
    hit = getattr(stack, key, None)
    if hit is not None:
        return hit
    src = {"wn": f"wn{fuse}", "actn": f"actn{fuse}", "cls": f"cls{fuse}", "kernel": f"kernel{fuse}"}
    ops = np.ascontiguousarray(np.stack([np.asarray(getattr(stack, src.get(f, f)), float) for f in _OP]))
    mm = np.ascontiguousarray(np.stack([np.asarray(getattr(stack, f), float) for f in _MM]))
    rows = np.ascontiguousarray(np.concatenate([stack.tokens, stack.count_sum], axis=1).astype(float))
    kind = np.full(stack.k, 1, np.int64)
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
    and precisions (a mapping times the same designs in several stages), while `hw`'s fields are the same
    objects."""
    fields = tuple(getattr(hw, f) for f in hw.__dataclass_fields__)
    key = (id(cal), tuple(stack.mm_precs), tuple(stack.precs))
    kept = hw.__dict__.setdefault("_kernel_design", {})
    hit = kept.get(key)
    if hit is not None and hit[0] is cal and all(a is b for a, b in zip(hit[1], fields)):
        return hit[2]
    if len(kept) >= 4:
        kept.clear()
    out = _design_table(hw, cal, stack, precisions, compute_peak, sram_rate, fill_time_s, collective_class)
    kept[key] = (cal, fields, out)
    return out


def _design_table(hw, cal, stack, precisions, compute_peak, sram_rate, fill_time_s, collective_class):
    n = hw.n
    P = len(precisions)
    peak = np.zeros((n, P))
    narrow = np.zeros((n, P))
    for p in stack.mm_precs:
        pk, nw = compute_peak(hw, precisions[p])
        peak[:, p], narrow[:, p] = pk, nw
    efl = np.zeros((n, P))
    zero = np.zeros(n)
    for p in stack.precs:
        efl[:, p] = np.asarray(hw.energy_pj_per_flop.get(precisions[p], hw.energy_pj_per_flop.get("bf16", zero)), float)
    dyn, lib, p2p = collective_class(hw)
    stream = 1.0 if hw.mem_stream_eff is None else hw.mem_stream_eff
    vec = np.where(hw.vector_flops > 0, hw.vector_flops, hw.peak_flops["bf16"] / np.maximum(hw.rows, 1.0))
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
    table = np.empty((n, len(_HW)))
    for i, f in enumerate(_HW):
        table[:, i] = col[f]
    return table, peak, narrow, efl


def cal_table(cal, stack, overlap_tokens: float) -> np.ndarray:
    """The calibration's scalars (and the stack's flags) the kernel reads, in `_CAL` order."""
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
    cem, lowp, conv_eff, knee = cal[0], cal[1], cal[2], cal[3]
    launch_s, overlap_c, step_s, oneshot = cal[4], cal[5], cal[6], cal[7] > 0
    overlap_tokens, sparse, comm_elsewhere = cal[8], cal[10] > 0, cal[11] > 0
    inv_p = 1.0 / knee
    for i in range(row_of.shape[0]):
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
        wres = _mn(_mx(wres_in[i], 0.0), 1.0)
        kres = _mn(_mx(kres_in[i], 0.0), 1.0)
        sw, sk = 1.0 - wres, 1.0 - kres
        free_sram = _mx(sram_bytes - res_in[i], 0.0) if has_mem > 0 else np.inf
        tokens, count_sum = rowinfo[s, 0], rowinfo[s, 1]
        launches = 0.0
        gpu = 0.0
        want_sum = 0.0
        energy = 0.0
        # pass 1: every operator's roofs, collective time, kernel boundary (and its energy)
        for j in range(k):
            cnt = ops[4, s, j]
            if cnt == 0.0:  # a stacked table's padding (or an operator run zero times) adds exact zeros
                continue
            flops, w, act, kv = ops[0, s, j], ops[1, s, j], ops[2, s, j], ops[3, s, j]
            kj = kind[j]
            if same:
                c, cm, t_bw = compute[j], comm[j], comm_bw[j]
            else:
                c = 0.0
                if kj == 0:
                    prec = int(mm[4, s, j])
                    pk = peak[d, prec]
                    nw = narrow[d, prec] > 0
                    if sparse and mm[5, s, j] > 0 and not sparsity:
                        pk *= 0.5
                    m_, n_, k_, g_ = mm[0, s, j], mm[1, s, j], mm[2, s, j], mm[3, s, j]
                    feed = 0.0
                    if dyn:
                        util = _simt_util(m_ * n_, rows * cols, cores, g_, k_, split_k_min)
                    else:
                        util = _gemm_util(_mx(m_, rows), n_, rows, cols, cores, g_, k_, split_k_min)
                        bpv = 1.0 if nw else 2.0
                        feed = k_ * n_ * g_ * bpv / _mx(sram_bps, 1.0)
                    if mm[6, s, j] > 0:
                        eff = conv_eff
                    else:
                        eff = cem * (lowp if nw else 1.0)
                    c = _mx(flops / _mx(pk * util * eff, 1.0), feed)
                elif kj == 1:
                    c = flops / vec_den
                t_bw = 0.0
                t_lat = 0.0
                if kj >= 2:
                    sz = ops[5, s, j]
                    g = _mx(ops[6, s, j], 1.0)
                    if kj == 2:
                        vol, ring, tree = 2 * (g - 1) / g * sz, 2 * (g - 1), 2 * np.log2(g)
                    elif kj == 5:
                        vol, ring, tree = sz, 1.0, 1.0
                    else:
                        vol, ring, tree = (g - 1) / g * sz, g - 1, np.log2(g)
                    if topo == RING:
                        steps = ring
                    elif topo == TORUS:
                        steps = ring / _mx(np.sqrt(g), 1.0) * 2
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
                cm = t_bw + t_lat
            # memory bytes of the residency (perf._resident_times)
            act_off = _mx(act - free_sram, 0.0)
            off = sw * w
            off += sk * kv
            off += act_off
            off *= has_mem
            cls = ops[7, s, j]
            if cls == 0.0:
                streamed = 0.0
            elif cls == 1.0:
                streamed = sw
            elif cls == 2.0:
                streamed = sk
            else:
                streamed = _mx(sw, sk)
            if act_off != 0.0:  # (0 / act = 0 leaves the larger share)
                streamed = _mx(streamed, act_off / _mx(act, 1e-300))
            if off > 0:
                memory = off / mem_den
                memory += ramp * streamed
            else:  # (off / rate + ramp) · 0
                memory = off if off != off else 0.0
            on = wres * w
            on += kres * kv
            on += act - act_off
            through = on + off
            sram = through / sram_den
            if d2d_share > 0:
                sram = _mx(sram, d2d_share * through / d2d_den)
            roof = _mx(c, memory)
            if kj == 0:
                hi = _mx(roof, 1e-300)
                x = _power(c / hi, knee)
                x += _power(memory / hi, knee)
                roof = _power(x, inv_p) * hi
            b = _mx(roof, sram)
            kn = ops[8, s, j]
            ov = gap * kn
            compute[j], comm[j], comm_bw[j], busy[j], overhead[j], kern[j] = c, cm, t_bw, b, ov, kn
            if launch_s > 0:
                launches += kn * cnt
                gpu += (_mx(b, cm) + ov) * cnt
            want_sum += t_bw * cnt
            if want_e[i]:
                pj = flops * efl[d, int(ops[10, s, j])]
                part = off * 2.0
                part += on
                part *= e_sram
                pj += part
                part = off * 8
                part *= e_mem
                pj += part
                if comm_elsewhere or kj >= 2:
                    pj += (ops[5, s, j] * 8) * e_link
                pj *= 1e-12
                energy += pj * cnt
        # host launch queue: the host's excess over the GPU's time, spread over the kernels
        excess = 0.0
        if launch_s > 0:
            host = launch_s * launches if dyn else 0.0
            excess = _mx(host - gpu, 0.0) / _mx(launches, 1.0)
        frac = 0.0
        hide = overlap_c > 0 and tokens >= overlap_tokens
        if hide:
            want = overlap_c * want_sum
            room = 0.0
            for j in range(k):
                cnt = ops[4, s, j]
                if cnt == 0.0:
                    continue
                room += (busy[j] + (overhead[j] + excess * kern[j])) * cnt * ops[9, s, j]
            frac = _mn(want, room) / _mx(want, 1e-300) if want > 0 else 0.0
        share = step_s / _mx(count_sum, 1.0)
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
        e_out[i] = energy if want_e[i] else np.nan


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
    """Compile `step_kernel` for the argument types `perf.step_times` passes, and `spare_scan` for
    `fab.best_spares`' (or load them from the cache)."""
    i1, f1 = np.zeros(1, np.int64), np.zeros(1)
    io = np.ones((1, 1))
    spare_scan(np.ones((len(SPARE_ROW), 1)), i1.copy(), io, io.copy(), io.copy(), io.copy(), io.copy(), io.copy(),
               io.copy(), np.zeros((1, 1), np.int64), io.copy(), io.copy(), np.ones(1), 1.0, 1.0, 0.0, 1.0, 0.0,
               i1.copy(), f1.copy(), f1.copy(), f1.copy())
    step_kernel(i1, i1, f1, f1, f1, np.ones(1, bool), np.ones((len(_OP), 1, 1)), np.ones((len(_MM), 1, 1)),
                np.ones((1, 2)), i1.copy(), np.ones((1, len(_HW))), np.ones((1, 1)), np.zeros((1, 1)),
                np.zeros((1, 1)), np.ones(len(_CAL)), 256.0, np.empty(1), np.empty(1))
