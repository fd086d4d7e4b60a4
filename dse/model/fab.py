"""Fab economics (DESIGN.md §4): dies per wafer, clustered-defect yield with spare-core harvesting, and
the yield of a package assembled from known-good dies. Pure numpy over arrays of designs; area.py uses
it to pick the split and the spares, cost.py to price the chosen geometry."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from dse._lazy import lazy_function

gammainc = lazy_function("scipy.special", "gammainc")  # only the wafer-scale (continuous spares) branch needs it

EXACT_SPARES_MAX = 64  # above this many spares the defect count is treated as continuous (wafer-scale)
SPARE_CHOICES = tuple(range(EXACT_SPARES_MAX + 1))  # spare counts compared per die (ascending)
SCAN_ROWS = 2048  # rows per block of best_spares' (choices, rows) arrays: a few hundred kB per temporary


def dies_per_wafer(die_mm2: ArrayLike, diameter_mm: float = 300.0, scribe_mm: float = 0.0,
                   edge_mm: float = 0.0) -> np.ndarray:
    """Classic gross dies per wafer: π r²/A − π·2r/√(2A) (De Vries; ttm-cas `dies_per_wafer_area`).

    The second term models partial dies lost at the round edge. A scribe lane `s` grows each die to
    (√A + s)² and an edge exclusion `e` shrinks the usable radius (Chiplet Actuary's variant); both
    default to 0 so the formula is exactly DESIGN.md §4's. Never below 1 (one die always fits)."""
    a = (np.sqrt(np.asarray(die_mm2, dtype=float)) + scribe_mm) ** 2
    r = diameter_mm / 2.0 - edge_mm
    return np.maximum(np.pi * r * r / a - np.pi * 2 * r / np.sqrt(2 * a), 1.0)


def negative_binomial_yield(die_mm2: ArrayLike, d0_per_cm2: ArrayLike, alpha: ArrayLike) -> np.ndarray:
    """Y = (1 + A·D0/α)^−α with A in cm² (A mm² / 100) and D0 in defects/cm²."""
    a_cm2 = np.asarray(die_mm2, dtype=float) / 100.0
    return (1.0 + a_cm2 * np.asarray(d0_per_cm2) / np.asarray(alpha)) ** (-np.asarray(alpha, dtype=float))


def harvested_yield(nonredundant_mm2: ArrayLike, array_mm2: ArrayLike, spares: ArrayLike, d0_per_cm2: ArrayLike,
                    alpha: ArrayLike, continuous: bool = False) -> np.ndarray:
    """P(no defect in the non-redundant area and at most `spares` defects in the core array).

    Defect density is Gamma(α, D0/α)-distributed across dies (the negative-binomial model), defects are
    Poisson given it, and each defect in the array kills at most one core, so
    Y = Σ_{k≤s} Γ(α+k)/(Γ(α)·k!) · x^k / (1+t)^(α+k), t = (A_nr + A_arr)·D0/α, x = A_arr·D0/α.
    `spares = 0` is exactly `negative_binomial_yield` of the whole die. Above EXACT_SPARES_MAX spares, or
    where `continuous` (wafer-scale: thousands of spares, possibly fractional), the defect count is taken
    as its mean λ·A_arr: Y = NB(A_nr) · P(λ·A_arr ≤ s) with λ under the defect-free-A_nr tilted Gamma.
    Columns of designs (five of one shape) asked again with the same bits (chip_area's wafer-scale designs, then
    chip_cost's) take the last call's result (`_LAST_YIELD`): the same values, computed once."""
    args = (nonredundant_mm2, array_mm2, spares, d0_per_cm2, alpha)
    if not all(type(a) is np.ndarray and a.ndim == 1 and a.dtype == np.float64 for a in args) \
            or len({a.shape for a in args}) != 1:
        return _harvested_yield(*args, continuous)
    c = np.asarray(continuous, dtype=bool)
    if c.ndim == 0 or c.shape == args[0].shape:  # the mask as one flag where it is one (a scalar or uniform column)
        k = np.count_nonzero(c)
        cont = bool(c) if c.ndim == 0 else True if k == c.size else False if not k else c.copy()
    else:
        return _harvested_yield(*args, continuous)
    last = _LAST_YIELD[0]
    if last is not None and last[0][0].shape == args[0].shape \
            and (last[1] is cont if isinstance(cont, bool) else np.array_equal(last[1], cont)) \
            and all(a.tobytes() == b.tobytes() for a, b in zip(last[0], args)):  # (the bits; memcmp, not ufuncs)
        return last[2].copy()
    out = _harvested_yield(*args, continuous)
    _LAST_YIELD[0] = (tuple(a.copy() for a in args), cont, out.copy())
    return out


# the last `harvested_yield` of columns: (its five inputs, its continuous mask, its result), copies (one list slot:
# a thread replaces the whole entry at once)
_LAST_YIELD: list = [None]


def _harvested_yield(nonredundant_mm2: ArrayLike, array_mm2: ArrayLike, spares: ArrayLike, d0_per_cm2: ArrayLike,
                     alpha: ArrayLike, continuous: bool = False) -> np.ndarray:
    """`harvested_yield`, computed."""
    a_nr = np.asarray(nonredundant_mm2, dtype=float) / 100.0
    a_arr = np.asarray(array_mm2, dtype=float) / 100.0
    s = np.asarray(spares, dtype=float)
    d0 = np.asarray(d0_per_cm2, dtype=float)
    al = np.asarray(alpha, dtype=float)
    shapes = {x.shape for x in (a_nr, a_arr, s, d0, al)}
    if len(shapes) != 1:  # (one shape: the arrays as they are)
        a_nr, a_arr, s, d0, al = np.broadcast_arrays(a_nr, a_arr, s, d0, al)
    row = np.asarray(spares, dtype=float)
    big = (s > EXACT_SPARES_MAX) | np.asarray(continuous, dtype=bool)
    if s.size and np.count_nonzero(big) == big.size:
        total = np.zeros(s.shape)  # every element takes the continuous form below
    elif s.ndim and 1 < row.size == row.shape[-1] == s.shape[-1] and np.all(np.diff(row.ravel()) >= 0):
        # spares the same in every row and ascending along the last axis: one sum per row over the choices
        total = _ascending_sums(a_nr.T, a_arr.T, np.minimum(row.ravel(), EXACT_SPARES_MAX), d0.T, al.T).T
    elif s.ndim == 1 and s.size > 1 and not np.count_nonzero(np.isnan(s)):
        # one row per design: the exact designs sorted by their spares, each term computed only for those
        # still summing (the same operations in the same order as below, so equal to it to the bit); the
        # continuous ones take the form below
        exact = np.flatnonzero(~big)  # (spares ≤ EXACT_SPARES_MAX)
        o = exact[np.argsort(s[exact], kind="stable")]
        total = np.zeros(s.shape)
        total[o] = _ascending_sums(a_nr[o], a_arr[o], s[o], d0[o], al[o])
    else:
        t = (a_nr + a_arr) * d0 / al
        r = a_arr * d0 / al / (1.0 + t)
        term = (1.0 + t) ** (-al)
        exact = np.minimum(s, EXACT_SPARES_MAX)
        total = term.copy()
        for k in range(int(exact.max(initial=0))):
            term = term * (al + k) / (k + 1) * r
            total = total + np.where(k + 1 <= exact, term, 0.0)
    if np.count_nonzero(big):
        rate = al / np.maximum(d0, 1e-300) + a_nr  # tilted Gamma rate (per cm² of array)
        cont = negative_binomial_yield(a_nr * 100.0, d0, al) * gammainc(al, rate * s / np.maximum(a_arr, 1e-300))
        # never below the no-spare yield (the continuous form ignores that a few defects may all be survived)
        nb = (1.0 + (a_nr + a_arr) * d0 / al) ** (-al)
        total = np.where(big, np.maximum(cont, nb), total)
    return np.clip(total, 0.0, 1.0)


def _ascending_sums(a_nr_cm2: np.ndarray, a_arr_cm2: np.ndarray, spares: np.ndarray, d0: np.ndarray,
                    al: np.ndarray) -> np.ndarray:
    """`harvested_yield`'s sum (before clipping) for the spare counts `spares` (C,), ascending and each ≤
    EXACT_SPARES_MAX, along the first axis of the other inputs (areas in cm², broadcasting to (C, rows)).
    A term is computed only for the trailing choices still summing, in place on contiguous rows: the same
    operations in the same order as one call per spare count, so equal to it to the bit."""
    t = (a_nr_cm2 + a_arr_cm2) * d0 / al
    r = a_arr_cm2 * d0 / al / (1.0 + t)
    term = (1.0 + t) ** (-al)
    term = np.array(np.broadcast_to(term, np.broadcast_shapes(term.shape, r.shape)))
    total = term.copy()
    r = np.broadcast_to(r, term.shape)
    for k in range(int(spares.max(initial=0))):
        j = int(np.searchsorted(spares, k + 1))
        tj, al_k = term[j:], (al[j:] if np.ndim(al) and np.shape(al)[0] > 1 else al) + k
        np.multiply(tj, al_k, out=tj)
        np.divide(tj, k + 1, out=tj)
        np.multiply(tj, r[j:], out=tj)
        np.add(total[j:], tj, out=total[j:])
    return total


def best_spares(fixed_mm2: ArrayLike, core_mm2: ArrayLike, cores: ArrayLike, d0_per_cm2: ArrayLike, alpha: ArrayLike,
                max_spares: ArrayLike, max_die_mm2: ArrayLike, min_die_mm2: ArrayLike, diameter_mm: float,
                scribe_mm: float, edge_mm: float, usd_of=None, usd_terms: dict | None = None,
                kernel=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spare cores per die among SPARE_CHOICES ≤ `max_spares` whose die still fits `max_die_mm2` (no spare
    if none fits), minimising `usd_of(rows, die_mm2, yield, dpw)` (the chip's cost with that die, e.g.
    known-good dies + package + assembly scrap), or without it the wafer area per good die. `fixed_mm2` is
    the die without its core array, `cores` the (possibly fractional) cores it must deliver; a die smaller
    than `min_die_mm2` is padded to it (I/O-limited die: the filler adds wafer area, not critical area).
    Minimising the full cost (not a proxy) over a set of choices that only shrinks as the die grows is
    what keeps cost monotone in area. `usd_of` is called elementwise: `rows` (indices into the inputs) may
    come as a (1, rows) row vector that broadcasts against the other (choices, rows) arguments.
    `kernel` (dse.model.step_kernel, when the compiled path is on) with `usd_terms` (what `usd_of` reads per
    row, `step_kernel.SPARE_ROW[11:]`, the fields `step_kernel.SPARE_IO` per I/O die count (each (counts,
    columns); `io_cols`: each row's column, by default the row itself) and their envelope `hull`, `hull_iy`,
    `hull_fx`, and the scalars `coverage` and `test_fraction`; `usd_of` must then be that chip cost, as in
    `area._candidate`) scans the choices in `step_kernel.spare_scan` instead, with the same arithmetic. Returns (spares, die_mm2 incl. padding, yield, dpw)."""
    fixed, core, n_cores, d0, al, cap, max_die, min_die = (a.astype(float) for a in np.broadcast_arrays(
        fixed_mm2, core_mm2, cores, d0_per_cm2, alpha, max_spares, max_die_mm2, min_die_mm2))
    best_s = np.zeros_like(fixed)
    best_y = negative_binomial_yield(fixed + n_cores * core, d0, al)
    best_die = np.maximum(fixed + n_cores * core, min_die)
    best_dpw = dies_per_wafer(best_die, diameter_mm, scribe_mm, edge_mm)
    idx = np.flatnonzero(cap >= 1)  # rows that may carry spares
    compiled = kernel is not None and usd_of is not None and usd_terms is not None
    if usd_of is not None and not compiled:  # (the kernel prices the no-spare die itself)
        best_usd = np.full_like(fixed, np.inf)
        best_usd[idx] = usd_of(idx, best_die[idx], best_y[idx], best_dpw[idx])
    if not idx.size:
        return best_s, best_die, best_y, best_dpw
    # every spare choice of a block of rows at once, as (choices, rows) arrays (a choice's rows contiguous,
    # a block's temporaries cache-sized); the choices are then compared in ascending order exactly as a
    # one-choice-at-a-time scan would
    most = cap[idx].max()
    choices = np.array([s for s in SPARE_CHOICES[1:] if s <= most], float)
    if compiled:
        names = kernel.SPARE_ROW
        per = dict(fixed=fixed, core=core, cores=n_cores, d0=d0, alpha=al, cap=cap, max_die=max_die,
                   min_die=min_die, start_die=best_die, start_y=best_y, start_dpw=best_dpw)
        rowv = np.empty((len(names), idx.size))
        for k, name in enumerate(names):
            v = np.asarray(per[name] if name in per else usd_terms[name])
            rowv[k] = v[idx] if v.shape == fixed.shape else np.broadcast_to(v, fixed.shape)[idx]
        r = diameter_mm / 2.0 - edge_mm  # dies_per_wafer's constants, evaluated as it does
        pick = np.empty(idx.size, np.int64)
        die_k, y_k, dpw_k = np.empty(idx.size), np.empty(idx.size), np.empty(idx.size)
        io = [np.ascontiguousarray(usd_terms[k], dtype=float) for k in kernel.SPARE_IO]
        hull = np.ascontiguousarray(usd_terms["hull"], dtype=np.int64)
        hull_iy, hull_fx = (np.ascontiguousarray(usd_terms[k], dtype=float) for k in ("hull_iy", "hull_fx"))
        cols = usd_terms.get("io_cols")  # each row's column in the I/O die arrays (default: the row itself)
        kernel.spare_scan(rowv, (idx if cols is None else np.asarray(cols)[idx]).astype(np.int64), *io, hull, hull_iy, hull_fx, choices, np.pi * r * r,
                          np.pi * 2 * r, float(scribe_mm), float(usd_terms["coverage"]),
                          float(usd_terms["test_fraction"]), pick, die_k, y_k, dpw_k)
        won = pick >= 0
        j = idx[won]
        best_s[j], best_die[j], best_y[j], best_dpw[j] = choices[pick[won]], die_k[won], y_k[won], dpw_k[won]
        return best_s, best_die, best_y, best_dpw
    per_row = [x[idx] for x in (fixed, core, n_cores, d0, al, max_die, min_die, cap)]
    for start in range(0, idx.size, SCAN_ROWS):
        rows = idx[start:start + SCAN_ROWS]
        f, c, m, d, a, top, bottom, cp = (x[None, start:start + SCAN_ROWS] for x in per_row)
        array = (m + choices[:, None]) * c
        die = np.maximum(f + array, bottom)
        y = np.clip(_ascending_sums(f / 100.0, array / 100.0, choices, d, a), 0.0, 1.0)
        dpw = dies_per_wafer(die, diameter_mm, scribe_mm, edge_mm)
        ok = (die <= top) & (cp >= choices[:, None])
        if usd_of is not None:  # rows as a row vector: the per-row inputs broadcast over the choices
            usd = np.broadcast_to(usd_of(rows[None, :], die, y, dpw), die.shape)
            score = best_usd[rows]
        else:
            score = best_dpw[rows] * best_y[rows]
        pick = np.full(rows.size, -1)
        live = np.ones(rows.size, bool)
        for col in range(len(choices)):
            if usd_of is None:  # silicon per good die is unimodal in the spare count: stop once a step does not pay
                good = dpw[col] * y[col]
                better = live & ok[col] & (good > score * (1 + 1e-12))
                live = better
            else:
                good = usd[col]
                better = ok[col] & (good < score * (1 - 1e-12))
            score = np.where(better, good, score)
            pick[better] = col
        won = pick >= 0
        j, col = rows[won], pick[won]
        best_s[j], best_die[j], best_y[j], best_dpw[j] = choices[col], die[col, won], y[col, won], dpw[col, won]
    return best_s, best_die, best_y, best_dpw


def package_yield(logic_dies: ArrayLike, bonded_parts: ArrayLike, die_yield: ArrayLike, bond_yield: ArrayLike,
                  probe_coverage: ArrayLike) -> np.ndarray:
    """Share of assembled packages that work: every bonded part (logic dies and, on an interposer, memory
    stacks) bonds with `bond_yield`, and each logic die that passed wafer probe is good with probability
    Y / (Y + (1−Y)(1−c)) (known-good-die test escapes, coverage c)."""
    y = np.asarray(die_yield, dtype=float)
    escape_ok = y / np.maximum(y + (1.0 - y) * (1.0 - np.asarray(probe_coverage, dtype=float)), 1e-300)
    out = np.asarray(bond_yield, dtype=float) ** np.asarray(bonded_parts, dtype=float) \
        * escape_ok ** np.asarray(logic_dies, dtype=float)
    return np.maximum(out, 1e-12)  # finite for absurd part counts


def manufacturing_usd(wafer_usd: ArrayLike, dpw: ArrayLike, die_yield: ArrayLike, num_dies: ArrayLike,
                      memory_usd: ArrayLike, package_mm2: ArrayLike, pkg_usd_per_mm2: ArrayLike,
                      pkg_yield: ArrayLike, test_fraction: ArrayLike) -> dict[str, np.ndarray]:
    """Known-good dies + memory + package with assembly scrap + test, per chip (USD arrays).

    A failed package scraps its interposer, dies and memory (Chiplet Actuary chip-last scrap)."""
    die_each = wafer_usd / (dpw * np.maximum(die_yield, 1e-12))  # finite even for absurd dies
    dies = die_each * num_dies
    raw_pkg = package_mm2 * pkg_usd_per_mm2
    scrap = (raw_pkg + dies + memory_usd) * (1.0 / pkg_yield - 1.0)
    test = test_fraction * dies
    return {"die_usd_each": die_each, "die_usd": dies, "package_usd": raw_pkg + scrap, "scrap_usd": scrap,
            "test_usd": test, "chip_usd": dies + memory_usd + raw_pkg + scrap + test}
