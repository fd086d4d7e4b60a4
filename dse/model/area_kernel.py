"""Compiled path of `dse.model.area.chip_area` (numba): the block areas and traffic (`area._blocks`, `blocks`), the I/O
die choices' dominance, lower envelope and hull (`area._io_choices`, `area._on_envelope`) and the automatic split (every die count's spare search, chip cost and
checks, `area._candidate` with `fab.best_spares`, compared count by count as `chip_area` does).

Every field these kernels return is the numpy path's to the bit: the geometry (dies, spares, padding, shoreline,
package) takes the numpy path's expressions term by term in its order (a product `a * b * c` as `(a * b) * c`,
`x ** 2` as `x * x` like numpy's square), with +, −, ×, ÷ and √ only, which IEEE rounds alike everywhere.
The costs that choose among die counts, spares and I/O dies take powers (yield model, package yield), which
numpy evaluates in its vectorised pow and the kernel in libm's or by repeated squaring: they differ by a few
rounding steps (≤ 8e-15 relative measured on 80,000 designs), so a comparison of two costs closer than
`TIE_ULPS`·(8 + n) ULP flags the design, and `split_scan` runs it again in its exact mode, every power taken
from a table of numpy's powers of the same arguments (`_tpow`, filled by `area._split_exact`): its costs are then
the numpy path's to the bit, and so are its choices (the numpy path itself only for a design that exact mode does
not settle in `area.EXACT_ROUNDS` runs). The I/O die choices take
numpy's powers (computed in numpy between the kernels, or in `io_tables` as libm's where numpy's are libm's:
`numpy_pow_is_libm`), so their fields are exact without that.
tests/test_area_kernel_equiv.py compares every field exactly on catalog chips, random designs and designs next
to the split and reticle thresholds.
The kernels take numba's numpy error model (a float division by zero gives IEEE's ±inf or NaN, as numpy does,
instead of a check before each division that raises ZeroDivisionError): the same bits wherever the Python model
raised nothing, ~15 % less time in `split_scan` at 10k designs.
The numpy path stays the reference and the fallback (`DSE_KERNEL=numpy`, no numba); `chip_area` takes this one
when `dse.model.kernel.compiled_kernel()` is on, like `perf.step_times`. Array-taking helpers are called once
per batch (or inlined), never per element.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, types
from numba.extending import overload

from dse.model.step_kernel import _mn, _mx


@njit(cache=True, inline="always", error_model="numpy")
def _area_for_perimeter(p, k_aspect, max_aspect, long_mm):
    """`area.area_for_perimeter_mm2` of one perimeter (`k_aspect` = √aspect + 1/√aspect, as it computes it)."""
    q = p / (2.0 * k_aspect)
    a = q * q
    if np.sqrt(max_aspect * a) > long_mm:
        return long_mm * _mx(p / 2.0 - long_mm, 0.0)
    return a


@njit(cache=True, inline="always", error_model="numpy")
def _dies_per_wafer(die, c1, c2, scribe):
    """`fab.dies_per_wafer` (c1 = π r², c2 = 2π r, as it evaluates them)."""
    q = np.sqrt(die) + scribe
    q = q * q
    return _mx(c1 / q - c2 / np.sqrt(2 * q), 1.0)


@njit(cache=True, nogil=True, error_model="numpy")
def io_geometry(has, has_io, first, io_logic, io_edge, d0, alpha, top, frac, k_aspect, max_aspect, long_mm,
                count, allowed, critical, die, io, base):
    """`area._io_choices` up to its powers, per count j = first + j of every design ((span, n) outputs in the
    numpy path's layout): the count (past the knob's bound: the bound, not allowed), each I/O die's critical
    area and its die padded to the perimeter its PHYs need, whether the die is priced (`io_dies_usd`'s mask)
    and the base 1 + A·D0/α of its negative-binomial yield."""
    span, n = count.shape
    for j in range(span):
        for d in range(n):
            h = has[d]
            c0 = first[d] + j
            ok = (h and c0 <= top) or (not h and c0 == 0)
            c = c0 if ok else (top if h else 0.0)
            safe = _mx(c, 1.0)
            crit = io_logic[d] / safe if h else 0.0
            pad = _area_for_perimeter(io_edge[d] / safe / frac, k_aspect, max_aspect, long_mm)
            dj = _mx(crit, pad) if h else 0.0
            count[j, d], allowed[j, d], critical[j, d], die[j, d] = c, ok, crit, dj
            io[j, d] = has_io[d] and c > 0 and dj > 0
            base[j, d] = 1.0 + crit / 100.0 * d0[d] / alpha[d]


@njit(cache=True, nogil=True, error_model="numpy")
def io_escape(y, coverage, escape_ok):
    """`fab.package_yield`'s share of good dies among those that passed probe (`y`: their yield), per element."""
    span, n = y.shape
    for j in range(span):
        for d in range(n):
            yj = y[j, d]
            escape_ok[j, d] = yj / _mx(yj + (1.0 - yj) * (1.0 - coverage), 1e-300)


@njit(cache=True, nogil=True, error_model="numpy")
def io_costs(count, allowed, critical, die, io, y, esc_pow, bond_pow, wafer_usd, reticle, pkg_usd, pkg_scale,
             c1, c2, scribe, test_fraction, t_count, t_die, t_critical, t_usd, t_escape, t_inv_yield, t_fixed,
             t_area):
    """The rest of `area._io_choices` before its envelope, from the numpy path's powers (`y` the yield, `esc_pow`
    the good share ** dies, `bond_pow` the bond yield ** dies): the known-good I/O dies' cost with their test,
    their test escapes, the package scrap factor (an element past the knob's bound, not allowed with the bound's
    count: the element before's fields, whose inputs it repeats; its powers are not read), the allowed counts
    (those whose die fits the I/O node's reticle, or the largest where none does), their fixed cost (∞ otherwise)
    and package area, then the dominance pruning: a count no cheaper in either term nor smaller in the package than
    an earlier one still finite takes an ∞ cost. Writes design-major (n, span) arrays `t_*` (each design's counts
    contiguous)."""
    span, n = count.shape
    for d0 in range(0, n, 64):  # blocks of designs: a block's rows of the inputs and outputs stay in the L1 cache
        _io_costs_block(d0, min(d0 + 64, n), count, allowed, critical, die, io, y, esc_pow, bond_pow, wafer_usd,
                        reticle, pkg_usd, pkg_scale, c1, c2, scribe, test_fraction, t_count, t_die, t_critical, t_usd,
                        t_escape, t_inv_yield, t_fixed, t_area)


@njit(cache=True, inline="always", error_model="numpy")
def _dominated(d, j, fj, ij, aj, t_inv_yield, t_fixed, t_area):
    """Whether an earlier count i < j of design `d` is no dearer in fixed cost (`fj`), inverse yield (`ij`) and area
    (`aj`) than count j: then j never wins (ties go to the fewer dies)."""
    for i in range(j):
        if t_fixed[d, i] <= fj and t_inv_yield[d, i] <= ij and t_area[d, i] <= aj:
            return True
    return False


@njit(cache=True, inline="always", error_model="numpy")
def _io_dominance(d, span, t_inv_yield, t_fixed, t_area):
    """Design `d`'s I/O-die counts that another count beats on fixed cost, inverse yield and area at once get an
    infinite fixed cost (∞ stays ∞)."""
    for j in range(1, span):
        fj = t_fixed[d, j]
        if fj != np.inf and _dominated(d, j, fj, t_inv_yield[d, j], t_area[d, j], t_inv_yield, t_fixed, t_area):
            t_fixed[d, j] = np.inf


@njit(cache=True, inline="always", error_model="numpy")
def _io_costs_block(d0, d1, count, allowed, critical, die, io, y, esc_pow, bond_pow, wafer_usd, reticle, pkg_usd,
                    pkg_scale, c1, c2, scribe, test_fraction, t_count, t_die, t_critical, t_usd, t_escape,
                    t_inv_yield, t_fixed, t_area):
    """`io_costs` on the designs d0 … d1 − 1."""
    span = count.shape[0]
    for j in range(span):  # elementwise
        for d in range(d0, d1):
            c, dj = count[j, d], die[j, d]
            if j > 0 and not allowed[j, d] and c != 0:  # past the knob's bound: the count before again (io_geometry)
                t_count[d, j], t_die[d, j], t_critical[d, j] = t_count[d, j - 1], t_die[d, j - 1], t_critical[d, j - 1]
                t_usd[d, j], t_escape[d, j] = t_usd[d, j - 1], t_escape[d, j - 1]
                t_inv_yield[d, j] = t_inv_yield[d, j - 1]
                t_area[d, j], t_fixed[d, j] = t_area[d, j - 1], t_fixed[d, j - 1]
                continue
            if io[j, d]:
                dpw = _dies_per_wafer(dj, c1, c2, scribe)
                u = c * wafer_usd[d] / (dpw * _mx(y[j, d], 1e-12)) * (1.0 + test_fraction)
                e = _mx(1.0 * esc_pow[j, d], 1e-12)
            else:
                u, e = 0.0, 1.0
            t_count[d, j], t_die[d, j], t_critical[d, j], t_usd[d, j], t_escape[d, j] = c, dj, critical[j, d], u, e
            iy = 1.0 / (bond_pow[j, d] * e)
            t_inv_yield[d, j] = iy
            t_area[d, j] = c * dj
            t_fixed[d, j] = (u + pkg_usd[d] * pkg_scale[d] * c * dj) * iy
    for d in range(d0, d1):  # per design: the allowed counts, then the dominance
        any_fit = False
        cmax = t_count[d, 0]
        for j in range(span):
            any_fit = any_fit or (allowed[j, d] and t_die[d, j] <= reticle[d])
            if j:
                cmax = _mx(cmax, t_count[d, j])
        for j in range(span):
            ok = allowed[j, d] and (t_die[d, j] <= reticle[d] if any_fit else t_count[d, j] == cmax)
            if not ok:
                t_fixed[d, j] = np.inf
        _io_dominance(d, span, t_inv_yield, t_fixed, t_area)


# `area._blocks`' per-design block areas and traffic, rows of one (len(BLOCK_OUT), designs) array written by `blocks`
BLOCK_OUT = ("mac", "vector", "sram", "mem_phy", "link_phy", "uncore", "logic", "core", "d2d_tbps", "d2d_phy", "d2d_edge",
             "mem_edge", "footprint", "io_tbps", "io_logic", "io_edge", "floor_usd")
# its per-design inputs (DesignArrays fields; those of `BLOCK_FLAGS` bool, the others float), in `blocks`' order
BLOCK_IN = ("macs", "mac_area_um2", "is_simt", "simt_area_factor", "vector_flops_per_cycle",
            "vector_area_um2_per_flop_cycle", "sram_mb", "sram_mm2_per_mb", "memory_stacks", "mem_phy_mm2_per_stack",
            "links", "link_phy_mm2", "has_io_die", "uncore_fraction", "cores", "is_cache", "sram_tbps", "mem_bw_tbps",
            "link_gbps", "uncore_fraction_io", "mem_needs_interposer", "has_memory", "mem_footprint_mm2_per_stack",
            "mem_gb", "mem_usd_per_gb", "wafer_price_usd", "pkg_usd_per_mm2", "pkg_area_scale")
BLOCK_FLAGS = frozenset({"is_simt", "has_io_die", "is_cache", "mem_needs_interposer", "has_memory"})
BLOCK_TYPES = tuple(np.dtype(bool) if k in BLOCK_FLAGS else np.dtype(np.float64) for k in BLOCK_IN)  # (their dtypes)


@njit(cache=True, nogil=True, error_model="numpy")
def blocks(macs, mac_area, is_simt, simt_factor, vflops, v_area, sram_mb, sram_mm2, stacks, phy_stack, links, phy_link,
           io, uf, cores, is_cache, sram_tbps, bw, link_gbps, uf_io, needs_interposer, has_memory, fp_stack, mem_gb,
           usd_gb, wafer_usd, pkg_usd, pkg_scale, mm2_per_tbps, tbps_per_mm, edge, k_mem, k_cache, k_sram, wafer_mm2,
           out, has):
    """`area._blocks`' arithmetic before its I/O die choices, element by element in the numpy path's order of
    operations (+, −, ×, ÷, np.where as a branch, np.maximum as `_mx`): the same bits. Writes the rows `BLOCK_OUT`
    of `out` and whether a design has I/O dies with PHYs on them (`has`: has_io_die and io_logic > 0)."""
    for d in range(out.shape[1]):
        mac = macs[d] * mac_area[d] * (simt_factor[d] if is_simt[d] else 1.0) / 1e6
        vector = vflops[d] * v_area[d] / 1e6
        sram = sram_mb[d] * sram_mm2[d]
        mem_phy = stacks[d] * phy_stack[d]
        link_phy = links[d] * phy_link[d]
        i = io[d]
        base = mac + vector + sram if i else mac + vector + sram + mem_phy + link_phy
        uncore = base * uf[d]
        core = (mac + vector) / _mx(cores[d], 1.0) * (1.0 + uf[d])
        per_sram = k_cache if is_cache[d] else k_sram
        port = _mx(sram_tbps[d], bw[d]) if i else sram_tbps[d]
        d2d_tbps = (0.0 if i else k_mem * bw[d]) + per_sram * port
        io_tbps = k_mem * bw[d] + links[d] * link_gbps[d] * 2.0 / 1000.0 if i else 0.0
        mem_edge = stacks[d] * edge[d]
        io_logic = (mem_phy + link_phy + io_tbps * mm2_per_tbps[d]) * (1.0 + uf_io[d]) if i else 0.0
        io_edge = mem_edge + io_tbps / tbps_per_mm[d]
        footprint = stacks[d] * fp_stack[d] if needs_interposer[d] and has_memory[d] else 0.0
        logic = base + uncore
        floor = mem_gb[d] * usd_gb[d] + wafer_usd[d] * logic / wafer_mm2 + pkg_usd[d] * pkg_scale[d] * (logic + footprint)
        out[0, d], out[1, d], out[2, d], out[3, d], out[4, d], out[5, d] = mac, vector, sram, mem_phy, link_phy, uncore
        out[6, d], out[7, d], out[8, d], out[9, d] = logic, core, d2d_tbps, d2d_tbps * mm2_per_tbps[d]
        out[10, d], out[11, d], out[12, d] = d2d_tbps / tbps_per_mm[d], 0.0 if i else mem_edge, footprint
        out[13, d], out[14, d], out[15, d], out[16, d] = io_tbps, io_logic, io_edge, floor
        has[d] = i and io_logic > 0


# per-design inputs of `io_tables`, columns of one (designs, len(IO_ROW)) float array (whether it has I/O dies, whether
# they are priced, the first count, the I/O dies' logic and edge, the I/O node's defect density and α, the bond yield,
# the I/O node's wafer price and reticle, the package's USD/mm² and area scale): `io_geometry`'s and `io_costs`' inputs
IO_ROW = ("has", "has_io", "first", "io_logic", "io_edge", "d0", "alpha", "bond", "wafer_usd", "reticle", "pkg_usd",
          "pkg_scale")


@njit(cache=True, nogil=True, error_model="numpy")
def io_tables(P, top, frac, k_aspect, max_aspect, long_mm, coverage, c1, c2, scribe, test_fraction, t_count, t_die,
              t_critical, t_usd, t_escape, t_inv_yield, t_fixed, t_area):
    """`io_geometry`, the powers `area._io_choices_compiled` takes in numpy, `io_escape` and `io_costs` in one pass
    per design, each power as libm's `pow` (`x ** k` of floats): for a numpy whose float64 power is libm's
    (`numpy_pow_is_libm`), the same bits as that path, element by element, in the same order of operations, on
    the counts a design may take (finite `t_fixed`) and its first. A further count that is not allowed, or that an
    earlier count dominates even against its costs' bounds at yield 1 (its known-good dies at no yield loss, its
    inverse package yield 1 / bond yield ** count), takes no power: its fixed cost is ∞ as in `io_costs`, its cost,
    escape and inverse yield those bounds (finite where `io_costs`' are; what no one reads: an ∞ line is never
    picked, the first count aside, where no count fits, nor on the envelope, and `io_hull` reads only whether its
    inverse yield is finite). The bond yield's powers of a design
    repeat over designs of the same packaging: each (bond, count) is taken once per call from a small table (`pow`
    of the same arguments, so the same bits). Takes the per-design inputs as the columns `IO_ROW` of one (n, 12)
    array `P` (a design's in one or two cache lines, as `split_scan`'s) and writes the design-major (n, span) `t_*`
    arrays `io_costs` writes."""
    n, span = t_count.shape
    CB = 8  # bond yields remembered
    KB = 65  # integral counts 0 … 64 remembered per bond yield
    cb_val = np.empty(CB)
    cb_pow = np.empty((CB, KB))
    cb_ok = np.zeros((CB, KB), np.bool_)
    cb_n = 0
    sane = 0.0 <= coverage <= 1.0 and 1.0 + test_fraction >= 0.0
    for d in range(n):
        h = (P[d, 0] != 0)
        b = P[d, 7]
        slot = -1
        for q in range(cb_n):
            if cb_val[q] == b:
                slot = q
                break
        if slot < 0 and b == b:
            slot = cb_n % CB
            if cb_n >= CB:  # (more bond yields than slots: the oldest slot is refilled)
                slot = d % CB
            else:
                cb_n += 1
            cb_val[slot] = b
            for kk in range(KB):
                cb_ok[slot, kk] = False
        # the bounds hold (the yield in [0, 1], so the escapes; no negative price) where these do
        bounded = sane and P[d, 6] > 0.0 and P[d, 8] >= 0.0 and P[d, 10] * P[d, 11] >= 0.0
        # every count's geometry, then the allowed counts (within the knob's bound, and whose die fits the I/O node's
        # reticle, or the largest where none does)
        # (a design without I/O dies may take only its first count, 0 dies: the others' fields are constants, below)
        sp = span if h or P[d, 2] != 0.0 else min(span, 1)
        any_fit = False
        for j in range(sp):
            c0 = P[d, 2] + j
            ok = (h and c0 <= top) or (not h and c0 == 0)
            c = c0 if ok else (top if h else 0.0)
            if j > 0 and not ok and c != 0:  # past the knob's bound: the count before again (as io_costs)
                t_count[d, j], t_die[d, j], t_critical[d, j] = t_count[d, j - 1], t_die[d, j - 1], t_critical[d, j - 1]
                t_area[d, j] = t_area[d, j - 1]
                continue
            safe = _mx(c, 1.0)
            crit = P[d, 3] / safe if h else 0.0
            pad = _area_for_perimeter(P[d, 4] / safe / frac, k_aspect, max_aspect, long_mm)
            dj = _mx(crit, pad) if h else 0.0
            t_count[d, j], t_die[d, j], t_critical[d, j], t_area[d, j] = c, dj, crit, c * dj
            any_fit = any_fit or (ok and dj <= P[d, 9])
        cmax = t_count[d, 0]
        for j in range(1, sp):
            cmax = _mx(cmax, t_count[d, j])
        for j in range(sp, span):  # no I/O dies, a further count: 0 dies (0 area), no cost, yield 1, not allowed
            t_count[d, j], t_die[d, j], t_critical[d, j], t_area[d, j] = 0.0, 0.0, 0.0, 0.0
            t_usd[d, j], t_escape[d, j], t_inv_yield[d, j], t_fixed[d, j] = 0.0, 1.0, 1.0, np.inf
        # each count's costs in count order, and whether an earlier count dominates it
        for j in range(sp):
            c0 = P[d, 2] + j
            ok = (h and c0 <= top) or (not h and c0 == 0)
            c, dj, crit = t_count[d, j], t_die[d, j], t_critical[d, j]
            if j > 0 and not ok and c != 0:
                t_usd[d, j], t_escape[d, j], t_inv_yield[d, j] = t_usd[d, j - 1], t_escape[d, j - 1], t_inv_yield[d, j - 1]
                t_fixed[d, j] = np.inf
                continue
            allowed = ok and (dj <= P[d, 9] if any_fit else c == cmax)
            if c != 0 and ok:
                kk = int(c)
                if slot >= 0 and kk == c and kk < KB:
                    if not cb_ok[slot, kk]:
                        cb_pow[slot, kk] = b ** c
                        cb_ok[slot, kk] = True
                    bond_pow = cb_pow[slot, kk]
                else:
                    bond_pow = b ** c
            else:
                bond_pow = 1.0
            io = (P[d, 1] != 0) and c > 0 and dj > 0
            pkg_c = P[d, 10] * P[d, 11] * c * dj
            if io:
                dpw = _dies_per_wafer(dj, c1, c2, scribe)
                base = 1.0 + crit / 100.0 * P[d, 5] / P[d, 6]
                if j > 0 and ok and bounded and base >= 1.0 and bond_pow >= 1e-280:
                    u = c * P[d, 8] / (dpw * 1.0) * (1.0 + test_fraction)
                    iy = 1.0 / bond_pow
                    if not allowed or _dominated(d, j, (u + pkg_c) * iy, iy, t_area[d, j], t_inv_yield, t_fixed,
                                                 t_area):
                        t_usd[d, j], t_escape[d, j], t_inv_yield[d, j], t_fixed[d, j] = u, 1.0, iy, np.inf
                        continue
                y = base ** (-P[d, 6]) if ok else 1.0
                esc_ok = y / _mx(y + (1.0 - y) * (1.0 - coverage), 1e-300)
                esc_pow = esc_ok ** c if ok else 1.0
                u = c * P[d, 8] / (dpw * _mx(y, 1e-12)) * (1.0 + test_fraction)
                e = _mx(1.0 * esc_pow, 1e-12)
            else:
                u, e = 0.0, 1.0
            t_usd[d, j], t_escape[d, j] = u, e
            iy = 1.0 / (bond_pow * e)
            t_inv_yield[d, j] = iy
            fj = (u + pkg_c) * iy if allowed else np.inf
            if fj != np.inf and _dominated(d, j, fj, iy, t_area[d, j], t_inv_yield, t_fixed, t_area):
                fj = np.inf
            t_fixed[d, j] = fj


@njit(cache=True, error_model="numpy")
def _libm_pow(x, k, out):
    """x ** k element by element (libm's `pow`, as `io_tables` takes it)."""
    for i in range(x.shape[0]):
        out[i] = x[i] ** k[i]


@functools.cache
def numpy_pow_is_libm() -> bool:
    """Whether numpy's float64 power gives libm's `pow` bits (numba's `x ** k` of floats): numpy calls libm's `pow`
    element by element unless it dispatches to a SIMD library (SVML on AVX-512 machines: ~5 % of results 1 ULP
    apart); checked once per process on 16,384 arguments of the kinds `io_tables` takes (yields near 1 and
    below, integral and fractional exponents, squares), where such a library differs on hundreds."""
    rng = np.random.default_rng(15)
    m = 4096
    x = np.concatenate([1.0 + rng.uniform(0.0, 4.0, m), rng.uniform(0.0, 1.0, m), rng.uniform(0.9, 1.0, m),
                        rng.uniform(0.0, 1e3, m)])
    k = np.concatenate([-rng.choice(np.array([1.0, 2.0, 2.5, 3.0, 4.0, 10.0]), m),
                        rng.integers(0, 65, m).astype(float), rng.uniform(-70.0, 70.0, m), np.full(m, 2.0)])
    out = np.empty_like(x)
    _libm_pow(x, k, out)
    return bool(np.array_equal(np.power(x, k).view(np.int64), out.view(np.int64)))


@njit(cache=True, nogil=True, error_model="numpy")
def io_hull(inv_yield, fixed, area, floor_usd, hull, hull_iy, hull_fx, hull_len, area_min):
    """The rest of `area._io_choices` on the counts any design may take, the first `used` (design-major (n, span)
    inputs; up to the last with a finite `fixed` on some design, at least one): which lines c ↦ c·inv_yield + fixed
    are on the lower envelope in c ≥ floor_usd (`area._on_envelope`, designs with two or more finite lines), their
    indices in count order then the others' (`hull`, (n, span): the counts past `used` last, never on it), inv_yield
    and fixed (∞ off the envelope) at them, how many there are, and the smallest package area of any count
    (`area_min`). Returns (used, the most envelope lines of a design, at least 1)."""
    n, K = fixed.shape
    used = 1
    for d in range(n):
        for j in range(K - 1, used - 1, -1):
            if np.isfinite(fixed[d, j]):
                used = j + 1
                break
    most = 1
    on = np.zeros(K, np.bool_)  # (past used: False)
    live = np.empty(used, np.bool_)
    keep = np.empty(used, np.bool_)
    for d in range(n):
        non = 0
        all_fin = True
        for j in range(used):
            on[j] = np.isfinite(fixed[d, j])
            non += on[j]
            all_fin = all_fin and np.isfinite(inv_yield[d, j])
        if non > 1:
            for j in range(used):
                live[j] = fixed[d, j] != np.inf or not all_fin
            for a in range(used):
                keep[a] = False
                if not on[a]:
                    continue
                hi, lo = np.inf, -np.inf
                lost = False
                for o in range(used):
                    if o == a or not live[o]:
                        continue
                    slope = inv_yield[d, a] - inv_yield[d, o]
                    gap = fixed[d, o] - fixed[d, a]
                    bound = gap / (slope if slope != 0 else 1.0)
                    if slope > 0:
                        hi = _mn(hi, bound)
                    elif slope < 0:
                        lo = _mx(lo, bound)
                    if (slope == 0 and (gap < 0 or (gap == 0 and o < a))) or gap != gap:
                        lost = True
                    # with every slope finite no bound is NaN but where the gap is (lost): hi only falls and lo
                    # only rises, so once the line is lost or below none of the others in c ≥ floor, it stays so
                    if all_fin and (lost or _mx(lo, floor_usd[d]) > hi):
                        break
                low = _mx(lo, floor_usd[d])
                keep[a] = low <= hi and not lost
            non = 0
            for j in range(used):
                on[j] = keep[j]
                non += on[j]
        hull_len[d] = non
        most = max(most, non)
        q = 0
        for j in range(used):
            if on[j]:
                hull[d, q] = j
                q += 1
        for j in range(K):
            if not on[j]:
                hull[d, q] = j
                q += 1
        for q in range(K):
            j = hull[d, q]
            hull_iy[d, q] = inv_yield[d, j]
            hull_fx[d, q] = fixed[d, j] if on[j] else np.inf
        m = area[d, 0]
        for j in range(1, used):
            m = _mn(m, area[d, j])
        area_min[d] = m
    return used, most


# per-design inputs of `split_scan`, columns of one (designs, len(SPLIT_ROW)) float array (a design's inputs in a
# few cache lines: as 32 rows of (designs,) its loads missed the cache, ~20 % of the scan): `area._Blocks`' fields
# (the split's die-to-die PHY per die, the I/O traffic, their area and edge per TB/s, the logic, one core),
# the design's own (reticle, memory stacks and USD, package limit, scale and USD/mm², wafer price, defect
# density and α, bond yield), whether memory sits on an interposer, the spares a die may carry (0: none) and
# the die counts compared (n_lo … n_hi where `scan`, else n_lo alone); a wafer-scale design's wafer as
# `area._wafer_scale` gives it (spares, wafer, yield, non-redundant area, tile array, tolerated defects)
SPLIT_ROW = ("has_io", "d2d_tbps", "io_tbps", "mm2_per_tbps", "cores", "logic", "core", "reticle", "mem_edge",
             "tbps_per_mm", "interposed", "stacks", "memory_usd", "pkg_max", "pkg_scale", "footprint", "pkg_usd",
             "wafer_usd", "d0", "alpha", "cap", "bond", "n_lo", "n_hi", "scan",
             "ws", "ws_spares", "ws_die", "ws_y", "ws_nr", "ws_array", "ws_tol")
# what `split_scan` writes per design (columns of a (designs, len(SPLIT_OUT)) array, likewise): `area._candidate`'s
# fields of the chosen die count, in this order
SPLIT_OUT = ("n", "spares", "tolerated", "die", "d2d", "nonredundant", "array", "pad", "need", "limit", "package",
             "reticle_ok", "shore_ok", "package_ok", "chip_usd", "io_n", "io_die", "io_critical")


# Costs here may differ from the numpy path's in the last bits (powers: numpy's vectorised pow and libm's are ~1 ULP
# apart on ~5 % of arguments, even integer exponents; repeated squaring adds a few roundings), never a geometric
# field. The chip cost's sensitivity to the yield grows with the die count n (known-good dies ∝ 1/y, the package's
# test escapes ∝ esc(y)^n), so two cost computations of a count of n dies may differ by ~(8 + n) times the
# roundings of the yield's sum (≤ 20 ULP): measured ≤ 8e-16 relative at n ≤ 4, 3e-15 at n ≤ 12, 8e-15 at
# n ≤ 64
# (60,000 random designs at 0.2x-5x defect densities). A comparison of two costs closer than TIE_ULPS·(8 + n)
# ULP (twice that bound; 1.8e-13 at n = 12) could fall the other way: `split_scan` flags the design and `area`
# runs it again in exact mode with numpy's powers (`_tpow`; designs next to a change of die count, spares or I/O
# dies: ~0.5 % of random designs, mostly spare counts whose cost gains decay past the scan's 1e-12).
TIE_ULPS = 40.0
EPS = float(np.finfo(float).eps)


@njit(cache=True, inline="always", error_model="numpy")
def _near(x, y, tie):
    """Whether the finite costs x and y are within `tie` (relative) of each other (a comparison of them is
    unsure)."""
    return abs(x - y) <= tie * abs(y) and np.isfinite(x) and np.isfinite(y)


@njit(cache=True, inline="always", error_model="numpy")
def _pow(x, k):
    """x ** k; for an integer k (the yield model's α, die and part counts) by repeated squaring: a few
    roundings (~1e-15 relative) from pow, several times faster. Only costs take it (see TIE_ULPS)."""
    if k != np.floor(k) or abs(k) > 1024.0:
        return x ** k
    e = int(abs(k))
    out = 1.0
    b = x
    while e > 0:
        if e & 1:
            out *= b
        b *= b
        e >>= 1
    return 1.0 / out if k < 0 else out


def _tpow(x, k, i, tb):
    """x ** k as `_pow` where `tb` is None; libm's `pow` where `tb` is a bool (True: numpy's power is libm's,
    `numpy_pow_is_libm`); else the next power of design i (its i-th row of the tables `tb` = (x,
    k, value, known, next slot, missed), split_scan's exact mode) taken from the table where the table holds
    numpy's power of these very x and k, else recorded there (slot and design marked missed: the caller computes
    them in numpy and runs the design again). Compiled per type of `tb` (`_tpow_impl`): the plain kernel carries
    no table code."""


@overload(_tpow, jit_options={"error_model": "numpy"})
def _tpow_impl(x, k, i, tb):
    if isinstance(tb, types.NoneType):
        return lambda x, k, i, tb: _pow(x, k)
    if isinstance(tb, types.Boolean):  # libm's pow (numpy's, where `numpy_pow_is_libm`)
        return lambda x, k, i, tb: x ** k

    def table(x, k, i, tb):
        pw_x, pw_k, pw_v, pw_ok, pw_n, pw_miss = tb
        q = pw_n[i]
        pw_n[i] = q + 1
        if q < pw_x.shape[1]:
            if pw_ok[i, q] and pw_x[i, q] == x and pw_k[i, q] == k:
                return pw_v[i, q]
            pw_x[i, q], pw_k[i, q], pw_ok[i, q] = x, k, False
        pw_miss[i] = True
        return _pow(x, k)
    return table


@njit(cache=True, inline="always", error_model="numpy")
def _io_pick(g, c, room, area_min, io_iy, io_fx, io_area, used, hull, hull_iy, hull_fx, hull_len, tie):
    """`area._IoChoices.pick` of design `g` for other costs `c` and package room `room`: the cheapest line of the
    envelope; where that count has no room and another has, the cheapest count that fits."""
    best = 0
    near = False
    best_usd = c * hull_iy[g, 0] + hull_fx[g, 0]
    for k in range(1, hull_len[g]):
        usd = c * hull_iy[g, k] + hull_fx[g, k]
        near = near or _near(usd, best_usd * (1 - 1e-12), tie)
        if usd < best_usd * (1 - 1e-12):
            best_usd, best = usd, k
    j = hull[g, best]
    if io_area[g, j] > room and area_min[g] <= room:
        j = 0
        best_usd = c * io_iy[g, 0] + (io_fx[g, 0] if io_area[g, 0] <= room else np.inf)
        for q in range(1, used):
            usd = c * io_iy[g, q]
            usd += io_fx[g, q] if io_area[g, q] <= room else np.inf
            near = near or _near(usd, best_usd * (1 - 1e-12), tie)
            if usd < best_usd * (1 - 1e-12):
                best_usd, j = usd, q
    return j, near


@njit(cache=True, inline="always", error_model="numpy")
def _io_floor(r, used, io_usd, io_esc, io_iy, io_fx, io_area, pkg_usd_mm2):
    """(least inverse yield, least fixed cost, whether they bound the chip's cost) of the I/O die counts design `r`'s
    picks may take (`_io_pick`: those priced, finite fixed cost, and its first where no count that fits is): a chip
    whose other parts cost c before assembly scrap costs (c·iy + fx) / (its other bonds' and test escapes' yield)
    with its count's (iy, fx), so at least (c·least iy + least fx) / that yield, where every count leaves the
    package yield above the 1e-12 floor of `fab.package_yield` (I/O escapes ≤ 1, bond yield ** count × escapes ≥
    1e-3; `split_scan` takes the other yield ≥ 1e-6)."""
    iy_lo = io_iy[r, 0]
    fx_lo = (io_usd[r, 0] + pkg_usd_mm2 * io_area[r, 0]) * iy_lo
    iy_hi, esc_hi = iy_lo, io_esc[r, 0]
    for q in range(1, used):
        if io_fx[r, q] < np.inf:
            iy_lo = _mn(iy_lo, io_iy[r, q])
            fx_lo = _mn(fx_lo, io_fx[r, q])
            iy_hi = _mx(iy_hi, io_iy[r, q])
            esc_hi = _mx(esc_hi, io_esc[r, q])
    tight = iy_lo > 0.0 and fx_lo >= 0.0 and iy_hi <= 1e3 and esc_hi <= 1.0
    return iy_lo, fx_lo, tight


@njit(cache=True, inline="always", error_model="numpy")
def _io_for(r, n, die, y, dpw, near, scale, foot, wafer, mem, pkg_usd, pkg_room, area_min, io_iy, io_fx, io_area, used,
            hull, hull_iy, hull_fx, hull_len, tie):
    """`split_scan`'s I/O die count for `n` dies of `die` mm² at yield `y` and `dpw` dies per wafer: the envelope's
    one line, else `_io_pick`'s; returns (count index, near, package cost area, dies' cost)."""
    package_c = scale * (n * die + foot)
    dies_c = wafer / (dpw * _mx(y, 1e-12)) * n
    room = pkg_room - n * die - foot
    j = hull[r, 0]
    if hull_len[r] > 1 or (io_area[r, j] > room and area_min[r] <= room):  # (else: the one line)
        j, nr = _io_pick(r, dies_c + mem + package_c * pkg_usd, room, area_min, io_iy, io_fx, io_area, used, hull,
                         hull_iy, hull_fx, hull_len, tie)
        near = near or nr
    return j, near, package_c, dies_c


@njit(cache=True, inline="always", error_model="numpy")
def _package_usd(r, j, n, y, package_c, dies_c, mem, coverage, bond_n, bond, bonded, i_r, tb, io_n, io_esc, io_die,
                 io_usd, scale, pkg_usd, test_fraction):
    """`split_scan`'s cost of a chip of `n` dies at yield `y` with I/O count `j` (`_io_for`): dies, memory, I/O dies
    and package over the package yield (bonds, test escapes), plus the dies' test."""
    esc = y / _mx(y + (1.0 - y) * (1.0 - coverage), 1e-300)
    bp = bond_n if io_n[r, j] == 0 else _tpow(bond, bonded + io_n[r, j], i_r, tb)
    y_pkg = _mx(bp * _tpow(esc, n, i_r, tb), 1e-12) * io_esc[r, j]
    raw = (package_c + scale * io_n[r, j] * io_die[r, j]) * pkg_usd
    return dies_c + (mem + io_usd[r, j]) + raw + (raw + dies_c + (mem + io_usd[r, j])) * (
        1.0 / y_pkg - 1.0) + test_fraction * dies_c


@njit(cache=True, inline="always", error_model="numpy")
def _tail_floor(n, logic, d2d, stacks, bond, wafer, mem, scale, foot, pkg_usd, iy_lo, fx_lo, c1, test_fraction, i_r,
                tb):
    """A bound below the chip's cost at n dies or more (n ≥ 2; -∞ where it does not hold), whatever the spares and
    I/O dies (`split_scan`, under its `tail` conditions): n' dies hold at least the logic and n' die-to-die PHYs,
    logic + n·d2d (each PHY's share of the I/O traffic shrinks as 1/n', the split's does not), a die that may win
    fits the reticle, so a wafer yields at most c1 / area of them and each at most 1, the package holds that area
    and the memory footprint, and the package yield stays below bond ** (n + stacks), above 1e-6 (the I/O dies at
    their least, `_io_floor`)."""
    total = logic + n * d2d
    silicon = wafer * total / c1
    bond_n = _tpow(bond, n + stacks, i_r, tb)
    if not bond_n >= 1e-6:
        return -np.inf
    return ((silicon + mem + scale * (total + foot) * pkg_usd) * iy_lo + fx_lo) / bond_n + test_fraction * silicon


@njit(cache=True, nogil=True, error_model="numpy")
def split_scan(v, rows, io_n, io_die, io_crit, io_usd, io_esc, io_iy, io_fx, io_area, used, area_min, hull,
               hull_iy, hull_fx, hull_len, choices, frac, k_aspect, max_aspect, long_mm, c1, c2, scribe, coverage,
               test_fraction, tie_ulps, out, unsure, tb):
    """`area.chip_area`'s choice of die count for the designs `rows` (spares not given; a wafer-scale one takes its
    wafer, `area._wafer_scale`): each
    count n_lo … n_hi (`area._candidate`: the die's fixed part and core array, its I/O-limited padding, the
    spare count that makes the chip cheapest within the reticle and the package (`fab.best_spares`, with
    `step_kernel.spare_scan`'s early stops), the chip's cost at the cheapest I/O die count, the perimeter,
    shoreline and package checks), then the first count that fits, or any strictly cheaper one that fits.
    Writes `SPLIT_OUT` of the chosen count to `out` (rows `rows`), and to `unsure` whether a comparison of
    two costs was within `tie_ulps`·(8 + n) ULP (TIE_ULPS; `area._split_exact` then runs the design again with
    the power tables `tb`, None in the plain run: see `_tpow`).
    The chip's cost at (die, yield) is `_io_for` and `_package_usd` (inlined) for the count without spares, each
    spare count and a count the spare scan did not price."""
    C = choices.shape[0]
    for i_r in range(rows.shape[0]):
        r = rows[i_r]
        io, d2d_tbps, io_tbps, mm2_per_tbps = v[r, 0] != 0, v[r, 1], v[r, 2], v[r, 3]
        cores, logic, core, reticle, mem_edge, tbps_per_mm = v[r, 4], v[r, 5], v[r, 6], v[r, 7], v[r, 8], v[r, 9]
        stacks = v[r, 11] if v[r, 10] != 0 else 0.0
        mem, pkg_max, scale, foot, pkg_usd = v[r, 12], v[r, 13], v[r, 14], v[r, 15], v[r, 16]
        wafer, d, a, cap, bond = v[r, 17], v[r, 18], v[r, 19], v[r, 20], v[r, 21]
        n_lo, n_hi = v[r, 22], (v[r, 23] if v[r, 24] != 0 else v[r, 22])
        is_ws = v[r, 25] != 0
        pkg_room = pkg_max / scale
        iy_lo, fx_lo, io_tight = _io_floor(r, used, io_usd, io_esc, io_iy, io_fx, io_area, pkg_usd * scale)
        # whether `_tail_floor` bounds the cost of every further count (no yield above 1 nor negative price, and a
        # die that fits its reticle has at most the wafer's area)
        tail = io_tight and not is_ws and core >= 0.0 and bond <= 1.0 and 0.0 <= coverage <= 1.0 and \
            test_fraction >= 0.0 and wafer >= 0.0 and pkg_usd >= 0.0 and scale >= 0.0 and reticle <= c1
        ok_best = near = False
        usd_best = 0.0
        n = n_lo
        while True:  # n_lo, then n_lo + 1 … n_hi
            tie = tie_ulps * (8.0 + n) * EPS
            split = n > 1
            d2d_die = (d2d_tbps if split else 0.0) + (io_tbps / n if io else 0.0)
            d2d = d2d_die * mm2_per_tbps
            if tail and ok_best and n != n_lo and _tail_floor(
                    n, logic, d2d, stacks, bond, wafer, mem, scale, foot, pkg_usd, iy_lo, fx_lo, c1, test_fraction,
                    i_r, tb) * (1.0 - 1e-9) >= usd_best:
                break  # no further count is strictly cheaper
            m = cores / n
            f = (logic - cores * core) / n + d2d
            need = mem_edge + (n * (d2d_die / tbps_per_mm) if (split or io) else 0.0)
            # the I/O-limited die's padding (area.area_for_perimeter_mm2 of its PHYs' edge, at most the reticle)
            p = need / n / frac
            q = p / (2.0 * k_aspect)
            pad = q * q
            if np.sqrt(max_aspect * pad) > long_mm:
                pad = long_mm * _mx(p / 2.0 - long_mm, 0.0)
            pad = _mn(pad, reticle)
            bonded = n + stacks
            top = _mn(reticle, (pkg_room - foot - area_min[r]) / n)
            if is_ws:  # wafer-scale: its wafer as area._wafer_scale gives it (no spare search, no split)
                die, y, dpw = v[r, 27], v[r, 28], 1.0
                spares_chip, tol, nonred, core_array = v[r, 26], v[r, 31], v[r, 29], v[r, 30]
                long_c, ret_c = np.inf, np.inf
                bond_n = _tpow(bond, bonded, i_r, tb)
                priced = False
            else:
                # fab.best_spares: the die without spares, then each spare count while it may still pay
                base = f + m * core
                die = _mx(base, pad)
                # a count past n_lo whose die without spares is over the reticle, or whose package with it and the I/O
                # dies' smallest area is over the limit, fails its checks whatever its spares and I/O dies (the die
                # only grows with its spares, rounding included): it never replaces the best count, and it is skipped
                skip = n != n_lo and core >= 0.0 and (die > reticle or scale * (n * die + foot + area_min[r]) > pkg_max)
                if not skip:
                    qd = np.sqrt(die) + scribe
                    qd = qd * qd
                    dpw = _mx(c1 / qd - c2 / np.sqrt(2 * qd), 1.0)
                    # a bound below the cost of any spare choice of this count (as in the spare scan below: the die
                    # only grows with its spares, the yield stays below that of a clean non-redundant area, the
                    # package yield below that of its other bonds): where it is not below the best count's cost by
                    # 1e-9, this count cannot be strictly cheaper, and it is skipped
                    a_nr = f / 100.0
                    y_inf = _mx(_tpow(1.0 + a_nr * d / a, -a, i_r, tb) * (1.0 + 1e-9), 1e-12)
                    bond_n = _tpow(bond, bonded, i_r, tb)
                    # the package yield at most: its bonds', the test escapes' at that yield where the I/O dies
                    # leave it room (`_io_floor`: then the I/O dies' lines c ↦ c·iy + fx are counted at their least)
                    z = bond_n * _tpow(y_inf / _mx(y_inf + (1.0 - y_inf) * (1.0 - coverage), 1e-300), n, i_r, tb)
                    if io_tight and z >= 1e-6:
                        k_c, k_f = iy_lo / z, fx_lo / z
                    else:
                        k_c, k_f = 1.0 / _mx(bond_n, 1e-12), 0.0
                    if ok_best and core >= 0.0:
                        dies_lo = wafer / (dpw * y_inf) * n
                        skip = ((dies_lo + mem + scale * (n * die + foot) * pkg_usd) * k_c + k_f
                                + test_fraction * dies_lo) * (1.0 - 1e-9) >= usd_best
                if skip:
                    n += 1.0
                    if not n <= n_hi:
                        break
                    continue
                y = _tpow(1.0 + base / 100.0 * d / a, -a, i_r, tb)
                spares = 0.0
                priced = cap >= 1  # (the scan prices the chosen spares: its cost and I/O die count are the chip's)
                if priced:
                    j, near, package_c, dies_c = _io_for(r, n, die, y, dpw, near, scale, foot, wafer, mem, pkg_usd,
                                                         pkg_room, area_min, io_iy, io_fx, io_area, used, hull, hull_iy,
                                                         hull_fx, hull_len, tie)
                    score = _package_usd(r, j, n, y, package_c, dies_c, mem, coverage, bond_n, bond, bonded, i_r, tb,
                                         io_n, io_esc, io_die, io_usd, scale, pkg_usd, test_fraction)
                    j_best = j
                    for col in range(C):
                        s = choices[col]
                        arr_s = (m + s) * core
                        die_s = _mx(f + arr_s, pad)
                        if not (die_s <= top and cap >= s):
                            if core >= 0.0:
                                break
                            continue
                        qd = np.sqrt(die_s) + scribe
                        qd = qd * qd
                        dpw_s = _mx(c1 / qd - c2 / np.sqrt(2 * qd), 1.0)
                        dies_lo = wafer / (dpw_s * y_inf) * n
                        lower = (dies_lo + mem + scale * (n * die_s + foot) * pkg_usd) * k_c + k_f \
                            + test_fraction * dies_lo
                        if lower * (1.0 - 1e-9) >= score and core >= 0.0:
                            break
                        a_arr = arr_s / 100.0
                        t = (a_nr + a_arr) * d / a
                        rr = a_arr * d / a / (1.0 + t)
                        term = _tpow(1.0 + t, -a, i_r, tb)
                        total = term
                        for k in range(int(s)):
                            term = term * (a + k)
                            term = term / (k + 1)
                            term = term * rr
                            total = total + term
                        y_s = _mn(_mx(total, 0.0), 1.0)
                        j, near, package_c, dies_c = _io_for(r, n, die_s, y_s, dpw_s, near, scale, foot, wafer, mem,
                                                             pkg_usd, pkg_room, area_min, io_iy, io_fx, io_area, used,
                                                             hull, hull_iy, hull_fx, hull_len, tie)
                        usd = _package_usd(r, j, n, y_s, package_c, dies_c, mem, coverage, bond_n, bond, bonded, i_r,
                                           tb, io_n, io_esc, io_die, io_usd, scale, pkg_usd, test_fraction)
                        near = near or _near(usd, score * (1 - 1e-12), tie)
                        if usd < score * (1 - 1e-12):
                            score, spares, die, y, dpw, j_best = usd, s, die_s, y_s, dpw_s, j
                spares_chip, tol, nonred, core_array = spares * n, spares, f, (m + spares) * core
                long_c, ret_c = long_mm, reticle
            # the chosen spares: perimeter, the chip's cost at its I/O die count (the spare scan's, where it priced
            # them), package and checks
            h = _mx(_mn(np.sqrt(max_aspect * die), long_c), np.sqrt(die))
            limit = frac * n * (2.0 * (h + die / _mx(h, 1e-12)))
            if priced:
                j, usd = j_best, score
            else:
                j, near, package_c, dies_c = _io_for(r, n, die, y, dpw, near, scale, foot, wafer, mem, pkg_usd,
                                                     pkg_room, area_min, io_iy, io_fx, io_area, used, hull, hull_iy,
                                                     hull_fx, hull_len, tie)
                usd = _package_usd(r, j, n, y, package_c, dies_c, mem, coverage, bond_n, bond, bonded, i_r, tb, io_n,
                                   io_esc, io_die, io_usd, scale, pkg_usd, test_fraction)
            cnt = io_n[r, j]
            package = scale * (n * die + foot + cnt * io_die[r, j])
            fits = die <= ret_c and need <= limit * (1 + 1e-9) and package <= pkg_max
            near = near or (n != n_lo and fits and ok_best and _near(usd, usd_best, tie))
            if n == n_lo or (fits and (not ok_best or usd < usd_best)):
                ok_best, usd_best = fits, usd
                out[r, 0], out[r, 1], out[r, 2], out[r, 3], out[r, 4] = n, spares_chip, tol, die, d2d * n
                out[r, 5], out[r, 6] = nonred, core_array
                out[r, 7], out[r, 8] = _mx(die - nonred - core_array, 0.0) * n, need
                out[r, 9], out[r, 10] = limit, package
                out[r, 11] = die <= ret_c
                out[r, 12] = need <= limit * (1 + 1e-9)
                out[r, 13] = package <= pkg_max
                out[r, 14], out[r, 15], out[r, 16], out[r, 17] = usd, cnt, io_die[r, j], io_crit[r, j]
            n += 1.0
            if not n <= n_hi:
                break
        unsure[r] = near


def warm() -> None:
    """Compile the kernels for the argument types `area` passes (or load them from numba's cache)."""
    f1, b1 = np.ones(1), np.ones(1, np.bool_)
    io, bio = np.ones((1, 1)), np.ones((1, 1), np.bool_)
    io_geometry(b1, b1.copy(), f1, f1, f1, f1, f1, 1.0, 0.5, 2.5, 2.0, 33.0, io.copy(), bio.copy(), io.copy(),
                io.copy(), bio.copy(), io.copy())
    io_escape(io, 0.9, io.copy())
    io_costs(io, bio, io.copy(), io.copy(), bio.copy(), io.copy(), io.copy(), io.copy(), f1, f1, f1, f1, 1.0, 1.0,
             0.0, 0.0, *(io.copy() for _ in range(8)))
    io_tables(np.ones((1, len(IO_ROW))), 1.0, 0.5, 2.5, 2.0, 33.0, 0.9, 1.0, 1.0, 0.0, 0.0,
              *(io.copy() for _ in range(8)))
    numpy_pow_is_libm()
    blocks(*(b1.copy() if k in BLOCK_FLAGS else f1.copy() for k in BLOCK_IN), f1.copy(), f1.copy(), f1.copy(), 0.5, 0.5,
           0.5, 70685.8, np.ones((len(BLOCK_OUT), 1)), b1.copy())
    io_hull(io, io.copy(), io.copy(), f1, np.zeros((1, 1), np.intp), io.copy(), io.copy(), np.zeros(1, np.intp),
            f1.copy())
    i0 = np.zeros(1, np.intp)
    for tb in (None, True, _pow_tables(1, 1)):  # the plain scan and its exact modes (`_tpow`) are compiled apart
        split_scan(np.ones((1, len(SPLIT_ROW))), i0, *(io.copy() for _ in range(8)), 1, f1.copy(),
                   np.zeros((1, 1), np.intp), io.copy(), io.copy(), np.ones(1, np.intp), np.ones(1), 0.5, 2.5, 2.0,
                   33.0, 1.0, 1.0, 0.0, 1.0, 0.0, TIE_ULPS, np.zeros((1, len(SPLIT_OUT))), np.zeros(1, np.bool_), tb)


def _pow_tables(rows: int, slots: int) -> tuple[np.ndarray, ...]:
    """Empty power tables of `split_scan`'s exact mode: (x, k, value, known, next slot, missed)."""
    return (np.zeros((rows, slots)), np.zeros((rows, slots)), np.zeros((rows, slots)),
            np.zeros((rows, slots), np.bool_), np.zeros(rows, np.intp), np.zeros(rows, np.bool_))
