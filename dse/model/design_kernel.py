"""Compiled path of the design-level money, power and supply voltage: `cost.chip_cost`, `power.chip_power` and
`voltage`'s Newton solve of many designs in one numba pass each (one loop over the designs, scalars, no temporaries), the same arithmetic as their numpy code, term
by term in the order numpy evaluates it, so both give the same bits (tests/test_m128c_design_kernel.py compares).
The same for what the mapping reads of each design: `perf.HwView.from_arrays`' float fields (`hw_kernel`), the step
kernels' per-design constants (`constants_kernel`), `perf.compute_peak` (`peak_kernel`) and a pipeline hop's time
(`sendrecv_kernel`) (tests/test_m128g_hw_view.py, test_m128g_constants.py).

At a few hundred designs per call the numpy path's ~150 array passes cost more than the arithmetic they do (each
pass ~1 µs of call overhead); here a call costs the loop. The powers (yields, package yields) are libm's `pow`, taken
only where numpy's float64 power is libm's too (`area_kernel.numpy_pow_is_libm`), the logs of the voltage solve
where numpy's `log` is libm's (`numpy_log_is_libm`); a wafer-scale design's yield (its
continuous form, `fab.harvested_yield`) and any row of more than `fab.EXACT_SPARES_MAX` spares come from numpy.
Imported only on the compiled path (`dse.model.kernel`). The kernels take numpy's error model: a division by zero gives
±inf or NaN, as numpy's (numba's default would raise).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

# per-design inputs of `cost_kernel`, rows of one (len(COST_ROW), designs) float array: the geometry chip_area chose,
# the design's prices and defect densities, its I/O dies, what its system adds (chips, links, a switch), and the
# yield of the rows whose yield numpy takes (`given`: 1 there)
COST_ROW = ("ws", "dies", "die", "nonredundant", "array", "tolerated", "d0", "alpha", "memory_usd", "has_io", "io_n",
            "io_die", "io_critical", "d0_io", "alpha_io", "wafer_usd_io", "interposed", "stacks", "bond", "wafer_usd",
            "package_mm2", "pkg_usd", "chips", "links", "switch", "given", "given_y")
# what `cost_kernel` writes per design: `cost.CostBreakdown`'s fields, in this order
COST_OUT = ("dies_per_wafer", "yield_", "package_yield", "die_usd_each", "die_usd", "memory_usd", "package_usd",
            "scrap_usd", "test_usd", "io_die_usd", "chip_usd", "board_usd", "network_usd", "system_usd")
# per-design inputs of `power_kernel` (rows of one float array) beside the per-precision peaks and energies
POWER_ROW = ("e_flop", "macs", "clock", "vector_fpc", "operand", "array_rows", "array_cols", "sram_tbps",
             "sram_pj_per_byte", "mem_bw_tbps", "mem_pj_per_bit", "links", "link_gbps", "link_pj_per_bit", "dies",
             "d2d_pj_per_bit", "has_io", "static_w_per_mm2", "supply", "static_w_per_mm2_io", "io_n", "uncore_io",
             "total_mm2", "io_die_mm2", "spare_mm2", "pad_mm2", "mem_phy_mm2", "link_phy_mm2", "d2d_mm2",
             "io_critical_mm2", "tdp_cap_w", "chips")
# what `power_kernel` writes per design: `power.PowerBreakdown`'s numeric fields, in this order
POWER_OUT = ("compute_w", "vector_w", "sram_w", "memory_w", "link_w", "d2d_w", "static_w", "leakage_w", "peak_w",
             "tdp_w", "system_power_w", "power_density_w_per_mm2")


@njit(cache=True, inline="always", error_model="numpy")
def _mx(a, b):
    """np.maximum of two floats (NaN propagates; of equal ones the first)."""
    return a if (a >= b or a != a) else b


@njit(cache=True, inline="always", error_model="numpy")
def _mn(a, b):
    """np.minimum of two floats (NaN propagates; of equal ones the first)."""
    return a if (a <= b or a != a) else b


@njit(cache=True, inline="always", error_model="numpy")
def _dpw(die, c1, c2, scribe):
    """fab.dies_per_wafer of one die (c1 = π r², c2 = 2π r of the usable radius r)."""
    a = np.sqrt(die) + scribe
    a = a * a
    return _mx(c1 / a - c2 / np.sqrt(2 * a), 1.0)


@njit(cache=True, inline="always", error_model="numpy")
def _escape_ok(y, coverage):
    """fab.package_yield's share of probed-good dies that are good (test escapes at coverage c)."""
    return y / _mx(y + (1.0 - y) * (1.0 - coverage), 1e-300)


@njit(cache=True, nogil=True, error_model="numpy")
def cost_kernel(v, c1, c2, scribe, coverage, test_fraction, board_usd, link_usd, switch_usd, out):
    """`cost.chip_cost` of every design (columns of `v`, rows `COST_ROW`) into `out` (rows `COST_OUT`): dies per wafer,
    harvested yield (`fab.harvested_yield`'s exact sum; `given_y` where `given`), the I/O dies (`area.io_dies_usd`),
    the package yield and `fab.manufacturing_usd`, then the system's chips, boards and network."""
    for d in range(v.shape[1]):
        ws, n, die = v[0, d] != 0, v[1, d], v[2, d]
        # fab.harvested_yield: P(no defect in the non-redundant area, at most `s` in the array)
        if v[25, d] != 0:
            y = v[26, d]
        else:
            a_nr, a_arr, s, d0, al = v[3, d] / 100.0, v[4, d] / 100.0, v[5, d], v[6, d], v[7, d]
            t = (a_nr + a_arr) * d0 / al
            r = a_arr * d0 / al / (1.0 + t)
            term = (1.0 + t) ** (-al)
            total = term
            k = 0
            while k + 1 <= s:  # (a NaN count adds no term)
                term = term * (al + k)
                term = term / (k + 1)
                term = term * r
                total = total + term
                k += 1
            y = total if total != total else (0.0 if not total > 0.0 else (total if total < 1.0 else 1.0))
        dpw = 1.0 if ws else _dpw(die, c1, c2, scribe)
        # area.io_dies_usd: the known-good I/O dies and the share of packages whose I/O dies are good
        n_io = v[10, d]
        io = v[9, d] != 0 and n_io > 0 and v[11, d] > 0
        if io:
            crit, io_die = v[12, d], v[11, d]
            y_io = (1.0 + crit / 100.0 * v[13, d] / v[14, d]) ** (-v[14, d])
            dpw_io = _dpw(io_die, c1, c2, scribe)
            io_usd = n_io * v[15, d] / (dpw_io * _mx(y_io, 1e-12)) * (1.0 + test_fraction)
            io_escape = _mx(_escape_ok(y_io, coverage) ** n_io, 1e-12)
        else:
            io_usd, io_escape = 0.0, 1.0
        bonded = n + (v[17, d] if v[16, d] != 0 else 0.0) + n_io
        y_pkg = _mx(v[18, d] ** bonded * _escape_ok(y, coverage) ** n, 1e-12) * io_escape
        # fab.manufacturing_usd
        memory = v[8, d]
        mem_all = memory + io_usd
        die_each = v[19, d] / (dpw * _mx(y, 1e-12))
        dies = die_each * n
        raw_pkg = v[20, d] * v[21, d]
        scrap = (raw_pkg + dies + mem_all) * (1.0 / y_pkg - 1.0)
        test = test_fraction * dies
        chip = dies + mem_all + raw_pkg + scrap + test
        chips = v[22, d]
        board = chips * board_usd
        ports = chips * v[23, d]
        network = ports * link_usd + (ports * switch_usd if (v[24, d] != 0 and chips > 1) else 0.0)
        out[0, d], out[1, d], out[2, d], out[3, d], out[4, d] = dpw, y, y_pkg, die_each, dies
        out[5, d], out[6, d], out[7, d], out[8, d], out[9, d] = memory, raw_pkg + scrap, scrap, test, io_usd
        out[10, d], out[11, d], out[12, d], out[13, d] = chip, board, network, chips * chip + board + network


@njit(cache=True, nogil=True, error_model="numpy")
def power_kernel(v, peak_tflops, energy, floor_fraction, vector_factor, operand_bytes, out):
    """`power.chip_power`'s watts of every design (columns of `v`, rows `POWER_ROW`, `e_flop` the energy of a FLOP of
    the technology's mac_energy anchor; `peak_tflops` and `energy` (precisions, designs) in the order of
    `DesignArrays.peak_tflops`) into `out` (rows `POWER_OUT`)."""
    P = peak_tflops.shape[0]
    for d in range(v.shape[1]):
        e_flop, macs, clock = v[0, d], v[1, d], v[2, d]
        compute = 0.0
        for p in range(P):  # the arrays at the peak of the precision that draws most (TFLOP/s × pJ = W)
            compute = _mx(compute, peak_tflops[p, d] * energy[p, d])
        vector = v[3, d] * clock * 1e9 * e_flop / v[4, d] * vector_factor * 1e-12
        rows, cols = _mx(v[5, d], 1.0), _mx(v[6, d], 1.0)
        feed = macs * clock * 1e9 * (1.0 / rows + 1.0 / cols) * operand_bytes / 1e12
        sram = _mn(v[7, d], feed) * v[8, d]
        mem_bw = v[9, d]
        memory = mem_bw * 8.0 * v[10, d]
        links, gbps = v[11, d], v[12, d]
        link = links * gbps * 2.0 * 8.0 * v[13, d] * 1e-3
        n = v[14, d]
        if v[16, d] != 0:
            d2d = (mem_bw * 8.0 + links * gbps * 2.0 * 8.0 * 1e-3) * v[15, d]
        elif n > 1:
            d2d = mem_bw * 8.0 * v[15, d] * (n - 1) / n
        else:
            d2d = 0.0
        # power.leaking_mm2 and power.io_leaking_mm2
        phy = (0.0 if v[16, d] != 0 else v[26, d] + v[27, d]) + v[28, d]
        io_n = v[20, d]
        leaking = _mx(v[22, d] - io_n * v[23, d] - v[24, d] - v[25, d] - phy, 0.0)
        u = v[21, d]
        leakage = v[17, d] * leaking * v[18, d] + v[19, d] * io_n * (v[29, d] * u / (1.0 + u))
        peak = _mx(compute, vector) + sram + memory + link + d2d + leakage
        cap = v[30, d]
        tdp = _mn(peak, cap) if cap > 0 else peak
        out[0, d], out[1, d], out[2, d], out[3, d], out[4, d], out[5, d] = compute, vector, sram, memory, link, d2d
        out[6, d] = _mx(leakage, floor_fraction * (peak - sram))
        out[7, d], out[8, d], out[9, d], out[10, d] = leakage, peak, tdp, tdp * v[31, d]
        out[11, d] = tdp / _mx(v[22, d], 1e-9)


# what `rows_kernel` writes per design: `DesignArrays.from_columns`' derived columns (`arrays._derived` computes the
# same in numpy), in this order
ROWS_OUT = ("clock_ghz", "macs", "vector_flops_per_cycle", "sram_mm2_per_mb", "sram_tbps", "memory_stacks",
            "mem_bw_tbps", "mem_gb", "links", "link_latency_us", "dies", "tdp_cap_w", "mma_operand_factor",
            "clock_over_nominal", "over", "supply_voltage_ratio", "voltage_energy_ratio", "sram_bank_energy_ratio",
            "sram_pj_per_byte", "peak_tflops_headline", "knee_flop_per_byte")


@njit(cache=True, nogil=True, error_model="numpy")
def rows_kernel(san, raw, node, mem_i, n_mem, mem, link_i, n_link, link, is_cache, reg, speed, energy, bf16, sc, curve,
                out, peaks, e_out):
    """`arrays._derived` of every design (columns): `san` the sanitized knobs (cores, array rows, array cols, clock,
    SRAM MB, memory stacks, links), `raw` the knobs as given (vector FLOPs per cycle, SRAM TB/s, memory GB/s and GB per
    stack, link latency, dies, TDP), `node` the node table's (scratchpad and cache mm² per MB, their GB/s per MB,
    nominal clock, SRAM pJ per byte), `mem` / `link` their tables' rows (index `n_mem` / `n_link`: none), `speed` and
    `energy` (precision, design), `sc` the scalars (the clock's reach over nominal, the register operand factor, the
    SRAM bank's least and reference MB and exponent, the exponent's form, the dies' bounds), `curve` `voltage_curve`'s;
    into `out` (rows ROWS_OUT), `peaks` and `e_out`. The same operations per element as numpy's, in its order."""
    n = san.shape[1]
    P = speed.shape[0]
    reach_ratio, operand_f, min_bank, ref_bank, expo, form, lo_d, hi_d = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5], \
        sc[6], sc[7]
    for d in range(n):
        cores, rows, cols = san[0, d], san[1, d], san[2, d]
        clock = _mx(san[3, d], 1e-3)
        macs = cores * rows * cols
        vec = raw[0, d]
        vfpc = _mn(vec, 1e12) if (np.isfinite(vec) and vec >= 0) else 2.0 * cores * cols
        cache = is_cache[d]
        sram_mb = san[4, d]
        st = raw[1, d]
        sram_t = _mn(st, 1e9) if (np.isfinite(st) and st > 0) else sram_mb * (node[3, d] if cache else node[2, d]) \
            * clock / 1000.0
        has_mem = mem_i[d] < n_mem
        stacks = san[5, d] if has_mem else 0.0
        go, bo = raw[2, d], raw[3, d]
        gbps = (_mn(go, 1e9) if (np.isfinite(go) and go > 0) else mem[0, d]) if has_mem else 0.0
        gb = (_mn(bo, 1e9) if (np.isfinite(bo) and bo > 0) else mem[1, d]) if has_mem else 0.0
        mem_bw = stacks * gbps / 1000.0
        links = san[6, d] if link_i[d] < n_link else 0.0
        lo = raw[4, d]
        dies = raw[5, d]
        tdp = raw[6, d]
        operand = operand_f if reg[d] else 1.0
        nominal = node[4, d]
        con = clock / nominal
        out[0, d], out[1, d], out[2, d] = clock, macs, vfpc
        out[3, d] = node[1, d] if cache else node[0, d]
        out[4, d], out[5, d], out[6, d], out[7, d], out[8, d] = sram_t, stacks, mem_bw, stacks * gb, links
        out[9, d] = lo if (np.isfinite(lo) and lo >= 0) else link[4, d]
        out[10, d] = _mn(_mx(np.rint(dies), lo_d), hi_d) if (np.isfinite(dies) and dies >= 1) else 0.0
        out[11, d] = tdp if (np.isfinite(tdp) and tdp > 0) else 0.0
        out[12, d], out[13, d] = operand, con
        out[14, d] = 1.0 if clock > reach_ratio * nominal * (1.0 + 1e-9) else 0.0
        out[15, d] = _mx(con, 0.0)  # (voltage_ratio's argument; its value after the loop)
        top = -np.inf
        for p in range(P):
            pk = 2.0 * macs * clock * speed[p, d] / 1000.0
            peaks[p, d] = pk
            top = _mx(top, pk) if p else pk
        bf = peaks[bf16, d]
        out[19, d] = bf if bf > 0 else top
    voltage_curve(out[15].copy(), out[15], curve[0], curve[1], curve[2], curve[3], curve[4], curve[5], int(curve[6]),
                  curve[7])
    for d in range(n):
        supply = out[15, d]
        volt = supply * supply
        cores, sram_mb = san[0, d], san[4, d]
        x = sram_mb / _mx(cores, 1.0)
        bank = _mn(_mx(x, min_bank), ref_bank)
        b = bank / ref_bank
        if is_cache[d]:
            ratio = 1.0
        elif form == 0:
            ratio = np.sqrt(b)
        elif form == 1:
            ratio = b * b
        else:
            ratio = b ** expo
        out[16, d], out[17, d] = volt, ratio
        out[18, d] = node[5, d] * volt * ratio
        operand = out[12, d]
        for p in range(P):
            e_out[p, d] = energy[p, d] * operand * volt
        mem_bw = out[6, d]
        bw = mem_bw if mem_bw > 0 else out[4, d]
        out[20, d] = out[19, d] / bw if bw > 1e-9 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def llm_result_kernel(o_int, o_float, ci, cf, tab, out_len, rows, m, plans, code):
    """`mapping._llm_result`'s numbers of every design (rows of `o_int` / `o_float`, `step_kernel.map_llm_kernel`'s
    choice; `ci` the columns of its plan, dp, micro-batch and micro-batches, `cf` of its TPOT, TTFT, batch prefill,
    J per batch cycle, resident share and throughput), `tab` the plan table's tp, pp, ep and replica chips (rows) per
    plan: into `m` (rows `rows`: TTFT ms, TPOT ms, tokens/s, tokens/s per user, J per token, prefill share, chips
    used, tp, pp, dp, batch, ep, throughput, latency ms), `plans` (tp, pp, ep, micro-batch, micro-batches, dp) and
    `code` (`mapping._weights_code`), all zero where a design has no plan: the same operations as the numpy code."""
    for d in range(o_int.shape[0]):
        j = o_int[d, ci[0]]
        if j < 0:
            code[d] = 0
            continue
        dp, mb, mbs = o_int[d, ci[1]], o_int[d, ci[2]], o_int[d, ci[3]]
        tpot, ttft, pre, joules, share, thr = o_float[d, cf[0]], o_float[d, cf[1]], o_float[d, cf[2]], \
            o_float[d, cf[3]], o_float[d, cf[4]], o_float[d, cf[5]]
        c_batch = mb * mbs
        ttft_ms = ttft * 1e3
        tpot_ms = tpot * 1e3
        m[rows[0], d] = ttft_ms
        m[rows[1], d] = tpot_ms
        m[rows[2], d] = thr
        m[rows[3], d] = 1.0 / tpot
        m[rows[4], d] = joules / (c_batch * out_len)
        m[rows[5], d] = pre / (pre + out_len * tpot)
        m[rows[6], d] = dp * tab[3, j]
        m[rows[7], d] = tab[0, j]
        m[rows[8], d] = tab[1, j]
        m[rows[9], d] = dp
        m[rows[10], d] = c_batch
        m[rows[11], d] = tab[2, j]
        m[rows[12], d] = thr
        m[rows[13], d] = ttft_ms + tpot_ms * out_len
        plans[0, d], plans[1, d], plans[2, d] = tab[0, j], tab[1, j], tab[2, j]
        plans[3, d], plans[4, d], plans[5, d] = mb, mbs, dp
        code[d] = 1 if share >= 1.0 else 2


# per-design inputs of `constants_kernel`, rows of one float array: the `perf.HwView` fields `step_kernel.design_table`
# derives its constants from (the bools as 0 / 1; the clock in Hz, the memory's stream efficiency)
CONST_ROW = ("rows", "cols", "cores", "dataflow", "rdma", "sparsity", "vector_flops", "bf16", "fp16", "sram_bw",
             "mem_bw", "stream", "clock", "sram_bytes", "d2d_share", "d2d_bw", "link_bw", "link_lat", "topo", "e_sram",
             "e_mem", "e_link")


@njit(cache=True, nogil=True, error_model="numpy")
def constants_kernel(v, sc, out):
    """`step_kernel._design_constants` of every design (columns of `v`, rows CONST_ROW) into `out` (designs,
    `step_kernel._HW`): `sc` the calibration's scalars (compute_eff_max, kernel gap s, mem_eff_max, memory ramp s,
    sram_eff_max, link_eff, collective floor s) and whether any design splits its SRAM traffic over dies. The same
    operations per element as the numpy code (`perf._collective_class`, `compute_peak(hw, "bf16")`, `sram_rate`,
    `fill_time_s`), in its order."""
    eff, gap_s, mem_eff, ramp_s, sram_eff, link_eff, floor_s, d2d = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5], sc[6], \
        sc[7] != 0.0
    for d in range(v.shape[1]):
        rows, cols = v[0, d], v[1, d]
        dyn = v[3, d] == 0.0
        rdma = v[4, d] != 0.0
        lib = dyn or rdma
        vf = v[6, d]
        bf, fp = v[7, d], v[8, d]
        peak = fp if fp > 0 else bf  # compute_peak's bf16 fallbacks: fp16, then bf16 over it
        peak = bf if bf > 0 else peak
        vec = vf if vf > 0 else peak / _mx(rows, 1.0)
        mem_bw = v[10, d]
        mem = mem_bw * v[11, d] * mem_eff
        sram_bps = _mx(v[9, d] * sram_eff, mem)
        out[d, 0], out[d, 1], out[d, 2] = rows, cols, v[2, d]
        out[d, 3], out[d, 4] = 1.0 if dyn else 0.0, v[5, d]
        out[d, 5] = _mx(vec * eff, 1.0)
        out[d, 6] = gap_s if dyn else (rows + cols) / _mx(v[12, d], 1.0)
        out[d, 7] = _mx(mem, 1.0)
        out[d, 8] = ramp_s * (1.0 if dyn else 0.0)
        out[d, 9] = 1.0 if mem_bw > 0 else 0.0
        out[d, 10], out[d, 11], out[d, 12] = v[13, d], _mx(sram_bps, 1.0), sram_bps
        out[d, 13] = v[14, d] if d2d else 0.0
        out[d, 14] = _mx(v[15, d], 1.0) if d2d else 1.0
        out[d, 15], out[d, 16], out[d, 17] = _mx(v[16, d] * link_eff, 1.0), v[17, d], v[18, d]
        out[d, 18] = floor_s if lib else 0.0
        out[d, 19], out[d, 20], out[d, 21] = v[19, d], v[20, d], v[21, d]
        out[d, 22] = 1.0 if lib else 0.0
        out[d, 23] = 1.0 if (dyn and not rdma) else 0.0


# per-design inputs of `hw_kernel`, rows of one float array: the `arrays.DesignArrays` columns and `area.AreaBreakdown`
# fields `perf.HwView.from_arrays` scales (is_cache as 0 / 1)
VIEW_ROW = ("clock_ghz", "vector_flops_per_cycle", "array_rows", "array_cols", "cores", "mem_bw_tbps", "sram_tbps",
            "sram_mb", "link_gbps", "links", "link_latency_us", "is_cache", "dies", "d2d_tbps")
# what `hw_kernel` writes per design: `perf.HwView`'s float fields, in this order (then a row per precision of the
# peaks, then one per precision of the energies)
VIEW_OUT = ("clock_hz", "vector_flops", "rows", "cols", "cores", "mem_bw", "sram_bw", "sram_bytes", "link_bw",
            "link_latency_s", "static_w", "dies", "d2d_bw", "d2d_share")


@njit(cache=True, nogil=True, error_model="numpy")
def hw_kernel(v, peak_tflops, energy, e_row, s_row, bf16, fp16, fp16_peak, crossing, out):
    """`perf.HwView.from_arrays`' float fields of every design (columns of `v`, rows VIEW_ROW) into `out` (rows
    VIEW_OUT, then the peak FLOP/s of each precision of `peak_tflops`, then `perf.run_energy` of each of `energy`'s):
    `e_row` / `s_row` `perf._run_energy_table`'s rows, `bf16` / `fp16` the energy rows of those precisions and
    `fp16_peak` the peak row of fp16 (-1: none; a chip with fp16 pays an fp16 MAC for a bf16 FLOP), `crossing` the
    chiplets' SRAM traffic share across a die edge of a scratchpad. The same operations per element as numpy's."""
    F = len(VIEW_OUT)
    P, E, W = peak_tflops.shape[0], energy.shape[0], e_row.shape[1]
    ok = np.empty(P + 1, np.bool_)
    e = np.empty(E)
    for d in range(v.shape[1]):
        clock = v[0, d]
        out[0, d] = clock * 1e9
        out[1, d] = v[1, d] * clock * 1e9
        out[2, d], out[3, d], out[4, d] = v[2, d], v[3, d], v[4, d]
        out[5, d] = v[5, d] * 1e12
        out[6, d] = v[6, d] * 1e12
        out[7, d] = v[7, d] * 1e6
        out[8, d] = v[8, d] * 1e9 * v[9, d]
        out[9, d] = v[10, d] * 1e-6
        out[10, d] = 0.0
        dies = v[12, d]
        out[11, d] = dies
        out[12, d] = v[13, d] * 1e12 * dies
        cross = 1.0 if v[11, d] != 0.0 else crossing
        out[13, d] = cross * (dies - 1) / _mx(dies, 1.0) if dies > 1 else 0.0
        for p in range(P):
            pk = peak_tflops[p, d] * 1e12
            out[F + p, d] = pk
            ok[p] = pk > 0.0
        ok[P] = True
        for i in range(E):
            e[i] = energy[i, d]
        if bf16 >= 0 and fp16 >= 0 and fp16_peak >= 0 and ok[fp16_peak]:
            e[bf16] = e[fp16]
        for i in range(E):
            val = e[e_row[i, W - 1]]
            for w in range(W - 2, -1, -1):
                if ok[s_row[i, w]]:
                    val = e[e_row[i, w]]
            out[F + P + i, d] = val


@njit(cache=True, nogil=True, error_model="numpy")
def peak_kernel(bf16, pk, wide, peak, narrow):
    """`perf.compute_peak` of every design into `peak` / `narrow`: `bf16` its bf16 peak, `pk` the peaks of the
    precision's fallbacks the designs' table has, from the last to the first, `wide` whether each is a 16-bit float
    one (its use clears the narrow path). The same selections per element as numpy's."""
    for d in range(bf16.shape[0]):
        p = bf16[d]
        nar = False
        for q in range(pk.shape[0]):
            x = pk[q, d]
            use = x > 0
            if use:
                p = x
            nar = (nar and not use) if wide[q] else (nar or use)
        peak[d] = p
        narrow[d] = nar


@njit(cache=True, nogil=True, error_model="numpy")
def bounds_kernel(v, low, high, is_int, optional, rows, fill, s_int, s_low, s_high, ok, san):
    """`knobs.BoundsTable.in_bounds` of the rows of `v` into `ok` (the table's `low`, `high`, `is_int`, `optional`
    per row) and `arrays._sanitized` of its rows `rows` into `san` (a non-finite value its row's `fill`, then
    `BoundsTable.clip` by `s_int`, `s_low`, `s_high`); returns the count of values out of bounds, or -1 where a
    clip would meet a negative zero at a zero bound (whose sign numpy's clip picks by its code path: the caller
    clips in numpy then). The same comparisons and roundings per element as numpy's."""
    bad = 0
    for j in range(v.shape[0]):
        lo, hi, it, opt = low[j], high[j], is_int[j], optional[j]
        for d in range(v.shape[1]):
            x = v[j, d]
            g = np.isfinite(x) and (not it or np.rint(x) == x) and x >= lo and x <= hi
            if not g and opt and np.isnan(x):
                g = True
            ok[j, d] = g
            if not g:
                bad += 1
    for i in range(rows.shape[0]):
        lo, hi = s_low[i], s_high[i]
        if not lo <= hi:  # (numpy's clip would give `hi`)
            return -1
        for d in range(v.shape[1]):
            x = v[rows[i], d]
            if not np.isfinite(x):
                x = fill[i]
            if s_int[i]:
                x = np.rint(x)
            if x == 0.0 and math.copysign(1.0, x) < 0.0 and (lo == 0.0 or hi == 0.0):
                return -1
            san[i, d] = lo if x < lo else (hi if x > hi else x)
    return bad


@njit(cache=True, nogil=True, error_model="numpy")
def sendrecv_kernel(nbytes, group, link_bw, link_eff, latency, lib, floor_s, out):
    """`perf.collective_time("sendrecv", nbytes, group, hw, cal)` of every design (rows of `out`) and transfer
    (columns): over more than one chip the bytes at the links' rate (at least 1 B/s) plus the hop's latency and a
    library's floor (`lib`), else 0; the same operations per element as numpy's."""
    for d in range(out.shape[0]):
        bw = _mx(link_bw[d] * link_eff, 1.0)
        lat = latency[d] + (floor_s if lib[d] else 0.0)
        for h in range(out.shape[1]):
            out[d, h] = nbytes[h] / bw + lat if _mx(group[h], 1.0) > 1 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def voltage_curve(r, out, floor, g1, vt, alpha, inv_alpha, v_floor, steps, tol):
    """`voltage.voltage_ratio` of each clock ratio of `r` (≥ 0) into `out`: `v_floor` below `floor`, 1 at 1, else
    `voltage._solve`'s Newton iterations from its start (at most `steps`, until a step is below `tol` of its value),
    never below `v_floor`: the same operations per row, so numpy's values where its float64 `log` and power are
    libm's (`numpy_log_is_libm`, `area_kernel.numpy_pow_is_libm`)."""
    v_min = vt + 1e-12
    for i in range(r.shape[0]):
        x = r[i]
        if x < floor:
            v = v_floor
        elif x == 1.0:
            v = 1.0
        else:
            x = _mx(x, 1e-12)
            lt = np.log(x * g1)
            v = 1.0 if x >= 1.0 else vt + (x * g1 * vt) ** inv_alpha
            for _ in range(steps):
                d = v - vt
                h = alpha * np.log(d) - np.log(v) - lt
                step = h / (alpha / d - 1.0 / v)
                v = _mx(v - step, v_min)
                if not np.abs(step) >= tol * v:
                    break
        out[i] = _mx(v, v_floor)


# scalars of `scenario_tail_kernel`: the scenario's weight in the mix, its reference throughput (`max(ref, 1e-30)`),
# whether it is an LLM scenario (a cost per token), then the TCO's (`cost.tco_usd_per_hour`): the capex lifetime in
# hours, the datacenter's capex per W and its lifetime in hours, the PUE and the price of a kWh
TAIL = ("weight", "ref", "llm", "life_h", "dc_usd_per_w", "dc_life_h", "pue", "usd_per_kwh")


@njit(cache=True, nogil=True, error_model="numpy")
def scenario_tail_kernel(feasible, chips_used, e_unit, thr, chips_leak, tokens, system_usd, sc, power_w, usd_out,
                         power_sum, usd_mtok, log_sum):
    """What `table.evaluate` computes of one (non-serving) scenario per design after its mapping, in numpy's order term
    by term: the system's power (`throttle.system_power_w`: the plan's chips at their workload power, the system's
    other chips at leakage; `chips_leak` the design's chips and leakage W, rows) into `power_w`, 0 where infeasible;
    the mix's power (`power_sum += w · power_w`), for an LLM scenario its $ per million tokens at the TCO of that
    power (into `usd_out`, 0 where infeasible; `usd_mtok += w · usd`) and the log of its throughput over the
    reference's (`log_sum += w · log(max(ratio, 1e-300))`, ratio 1 where infeasible). `sc`: the `TAIL` scalars."""
    w, ref, llm = sc[0], sc[1], sc[2] != 0.0
    life_h, dc_a, dc_b, pue, kwh = sc[3], sc[4], sc[5], sc[6], sc[7]
    for d in range(feasible.shape[0]):
        ok = feasible[d]
        p = 0.0
        if ok:
            used = chips_used[d]
            p = e_unit[d] * thr[d] / _mx(used, 1.0) * used + _mx(chips_leak[0, d] - used, 0.0) * chips_leak[1, d]
        power_w[d] = p
        power_sum[d] += w * p
        if llm:
            per_hour = system_usd[d] / life_h + p * dc_a / dc_b + p / 1000.0 * pue * kwh
            u = per_hour / (_mx(tokens[d], 1e-30) * 3600.0) * 1e6 if ok else 0.0
            usd_out[d] = u
            usd_mtok[d] += w * u
        ratio = thr[d] / ref if ok else 1.0
        log_sum[d] += w * np.log(_mx(ratio, 1e-300))


@njit(cache=True, error_model="numpy")
def _libm_log(x, out):
    for i in range(x.shape[0]):
        out[i] = np.log(x[i])


@functools.cache
def numpy_log_is_libm() -> bool:
    """Whether numpy's float64 `log` gives libm's bits (numba's `np.log` of a float): numpy calls libm's `log` unless it
    dispatches to a SIMD library (on AVX-512 machines); checked once per process on 16,384 arguments of the kinds
    `voltage_curve` takes (supply voltages over nominal and their overdrive above the threshold, 1e-12 … 2)."""
    rng = np.random.default_rng(11)
    m = 4096
    x = np.concatenate([rng.uniform(0.3, 1.6, m), rng.uniform(1e-12, 1.2, m), 10.0 ** rng.uniform(-12.0, 0.3, m),
                        rng.uniform(0.69, 1.46, m)])
    out = np.empty_like(x)
    _libm_log(x, out)
    return bool(np.array_equal(np.log(x).view(np.int64), out.view(np.int64)))


def warm() -> None:
    """Compile the kernels for the argument types `cost`, `power`, `arrays` and `mapping` pass (or load them from
    numba's cache)."""
    cost_kernel(np.ones((len(COST_ROW), 1)), 1.0, 1.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, np.zeros((len(COST_OUT), 1)))
    power_kernel(np.ones((len(POWER_ROW), 1)), np.ones((1, 1)), np.ones((1, 1)), 0.5, 2.0, 2.0,
                 np.zeros((len(POWER_OUT), 1)))
    voltage_curve(np.full(1, 1.2), np.empty(1), 0.5, 0.5, 0.4, 1.3, 1.0 / 1.3, 0.7, 60, 1e-14)
    one, z, i = np.ones((1, 1)), np.zeros(1, np.int64), np.zeros(4, np.int64)
    rows_kernel(np.ones((7, 1)), np.ones((7, 1)), np.ones((6, 1)), z, 1, np.ones((7, 1)), z, 1, np.ones((5, 1)),
                np.zeros(1, np.bool_), np.zeros(1, np.bool_), one, one, 0, np.ones(8), np.array([0.5, 0.5, 0.4, 1.3, 1 / 1.3, 0.7, 60, 1e-14]),
                np.empty((len(ROWS_OUT), 1)), np.empty((1, 1)), np.empty((1, 1)))
    llm_result_kernel(np.zeros((1, 6), np.int64), np.zeros((1, 8)), i, np.zeros(6, np.int64), np.ones((4, 1), np.int64),
                      1, np.zeros(14, np.int64), np.zeros((33, 1)), np.zeros((6, 1), np.int64), np.zeros(1, np.int64))
    constants_kernel(np.ones((len(CONST_ROW), 1)), np.ones(8), np.empty((1, 24)))
    hw_kernel(np.ones((len(VIEW_ROW), 1)), np.ones((1, 1)), np.ones((1, 1)), np.zeros((1, 2), np.int64),
              np.zeros((1, 2), np.int64), 0, -1, -1, 0.5, np.empty((len(VIEW_OUT) + 2, 1)))
    peak_kernel(np.ones(1), np.ones((1, 1)), np.zeros(1, np.bool_), np.empty(1), np.empty(1, np.bool_))
    bounds_kernel(np.ones((1, 1)), np.zeros(1), np.ones(1), np.zeros(1, np.bool_), np.zeros(1, np.bool_),
                  np.zeros(1, np.int64), np.ones(1), np.zeros(1, np.bool_), np.zeros(1), np.ones(1),
                  np.empty((1, 1), np.bool_), np.empty((1, 1)))
    sendrecv_kernel(np.ones(1), np.full(1, 2.0), np.ones(1), 0.9, np.ones(1), np.zeros(1, np.bool_), 1e-6,
                    np.empty((1, 1)))
    z1 = np.zeros(1)
    scenario_tail_kernel(np.ones(1, np.bool_), z1, z1, z1, np.ones((2, 1)), z1, z1, np.ones(len(TAIL)), np.empty(1),
                         np.empty(1), np.zeros(1), np.zeros(1), np.zeros(1))
    numpy_log_is_libm()
