"""Die area (DESIGN.md §4): block areas from technology densities, spare cores, the chiplet split with
its die-to-die PHYs, the memory PHY shoreline, and the 2.5D interposer / package area with its size
limit. Optional I/O dies on another process node (`chip.io_die_node`, MI300X-style) carry the memory and
link PHYs; every byte of memory and link traffic then crosses a die-to-die PHY to them. Vectorized over
`DesignArrays`.

The split and the spares are design choices priced by `fab`: with `chip.dies` unset the chip takes the
cheapest die count (from the fewest dies that fit the reticle) that also fits the shoreline and the
package, and each die the spare cores that minimise the chip's cost (known-good dies, package, scrap). Cost is then a minimum over
choices whose costs all grow with area, so more silicon never makes a chip cheaper.

With the compiled kernels on (`dse.model.kernel`), the block areas, the I/O die choices and the split run in
`dse.model.area_kernel`: the same fields to the bit (the numpy path here is the reference and the fallback)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dse.model import fab
from dse.model.arrays import DesignArrays
from dse.model.hardware import Design, active_technology
from dse.model.kernel import compiled_kernel
from dse.model.knobs import BY_NAME
from dse.model.memo import by_identity
from dse.model.technology import Technology

UM2_PER_MM2 = 1e6
MAX_DIES = 64  # same bound as chip.dies (arrays.MAX_DIES)
SPLIT_ROWS = 65_536  # (design, die count) rows chip_area's split compares per call (~40 MB of temporaries)
JOIN_ROWS = 4_096  # up to this many designs chip_area prices n_lo and the further die counts in one call (< SPLIT_ROWS / 12)


@dataclass
class AreaBreakdown:
    """Per-design areas in mm² (arrays of shape (n,)); `die_mm2` is one die, `total_mm2` all dies."""

    mac_mm2: np.ndarray
    vector_mm2: np.ndarray
    sram_mm2: np.ndarray
    mem_phy_mm2: np.ndarray
    link_phy_mm2: np.ndarray
    uncore_mm2: np.ndarray
    spare_mm2: np.ndarray      # spare cores (with their uncore share and wafer-scale bypass fabric)
    d2d_mm2: np.ndarray        # die-to-die PHYs of all dies
    d2d_tbps: np.ndarray       # die-to-die PHY bandwidth of one die (0 on one die)
    pad_mm2: np.ndarray        # filler that gives an I/O-limited die the edge its PHYs need (all dies)
    total_mm2: np.ndarray
    die_mm2: np.ndarray
    num_dies: np.ndarray
    spare_cores: np.ndarray    # per chip (all dies)
    core_mm2: np.ndarray       # one core with its uncore share
    nonredundant_mm2: np.ndarray  # per die: critical area outside the core array (must be defect-free)
    array_mm2: np.ndarray      # per die: the core array incl. spares
    tolerated_defects: np.ndarray  # per die: defects the array survives (its spares; wafer-scale: spare tiles)
    shoreline_mm: np.ndarray   # die edge the memory and die-to-die PHYs need (all dies)
    shoreline_limit_mm: np.ndarray  # die edge available to them (all dies)
    package_mm2: np.ndarray  # interposer (2.5D), substrate (organic) or wafer (wafer-scale) area
    num_io_dies: np.ndarray    # I/O dies on chip.io_die_node (0: the PHYs sit on the compute dies)
    io_die_mm2: np.ndarray     # one I/O die incl. its filler (in total_mm2, not in die_mm2)
    io_critical_mm2: np.ndarray  # one I/O die without filler (its yield area; what of it leaks: power.io_leaking_mm2)
    feasible: np.ndarray
    reason: np.ndarray

    def row(self, i: int) -> dict:
        """Scalar dict of one design's areas."""
        out = {k: float(getattr(self, k)[i]) for k in self.__dataclass_fields__ if k not in ("feasible", "reason")}
        out["num_dies"] = int(self.num_dies[i])
        out["num_io_dies"] = int(self.num_io_dies[i])
        out["spare_cores"] = int(round(self.spare_cores[i]))
        out.update(feasible=bool(self.feasible[i]), reason=str(self.reason[i]))
        return out


def _name_index(names: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each row's position in the sorted str array `keys`, len(keys) where its name is not there."""
    s = np.asarray(names).astype(str, copy=False)
    if not len(keys):
        return np.zeros(len(s), np.intp)
    pos = np.minimum(np.searchsorted(keys, s), len(keys) - 1)
    return np.where(keys[pos] == s, pos, len(keys))


@dataclass(frozen=True)
class _NameTable:
    """A technology value of each name of a str knob: by the row's index in the knob's allowed names
    (`DesignArrays.name_at`) and, for a name from_columns does not know, by the name itself."""

    knob: str
    keys: np.ndarray      # the names the value is defined for, sorted
    values: np.ndarray    # value per key + the value of any other name
    at_values: np.ndarray  # value per allowed name of the knob + that of any other name (index len(allowed))

    @property
    def allowed(self) -> int:
        """How many names the knob allows (`name_at` of any other name)."""
        return len(self.at_values) - 1

    def of(self, arr: DesignArrays) -> np.ndarray:
        """The value of each row's name."""
        at = arr.name_at[self.knob]
        out = self.at_values[at]
        unknown = at == self.allowed
        if unknown.any():
            out[unknown] = self.values[_name_index(arr.names[self.knob][unknown], self.keys)]
        return out


_TECH_NAMES: dict[tuple[int, ...], tuple] = {}  # id(technology) → (it, `_tech_names` of it)


def _tech_names(tech: Technology) -> dict[str, _NameTable]:
    """Per technology value `_blocks` reads by a name knob, its `_NameTable`, once per (frozen) technology object:
    the packaging's die-to-die PHY area and edge rate, each memory's edge per stack (`Technology.memory_edge_mm`,
    0 for a name it does not know) and whether a core style harvests spares."""
    return by_identity(_TECH_NAMES, tech, _make_tech_names, limit=16)


def _make_tech_names(tech: Technology) -> dict[str, _NameTable]:
    def table(knob, names, value, missing):
        keys = sorted(set(names))
        known = set(keys)
        return _NameTable(knob, np.array(keys, dtype=str), np.array([value(k) for k in keys] + [missing]),
                          np.array([value(k) if k in known else missing for k in BY_NAME[knob].allowed(tech)]
                                   + [missing]))
    pkgs = tech.packaging
    first = next(iter(pkgs.values()))
    out = {"d2d_mm2_per_tbps": table("chip.packaging", pkgs, lambda k: float(pkgs[k].d2d_mm2_per_tbps),
                                     float(first.d2d_mm2_per_tbps)),
           "d2d_tbps_per_mm": table("chip.packaging", pkgs, lambda k: float(pkgs[k].d2d_tbps_per_mm),
                                    float(first.d2d_tbps_per_mm)),
           "memory_edge_mm": table("chip.memory", [*tech.memories, *tech.shoreline.memory_edge_mm_per_stack],
                                   lambda k: float(tech.memory_edge_mm(k)), 0.0),
           "harvests": table("chip.core_style", tech.harvesting.core_styles, lambda k: True, False)}
    return out


def _interposer_text(memory: str, packaging: str) -> str:
    """Why a chip whose memory needs an interposer cannot take its packaging."""
    return f"memory {memory} needs a 2.5D interposer (cowos_s or cowos_l), packaging is {packaging}"


_INTERPOSER_TEXTS: dict[tuple[int, ...], tuple] = {}  # id(technology) → (it, `_interposer_texts` of it)


def _interposer_texts(tech: Technology) -> np.ndarray:
    """`_interposer_text` of each (memory, packaging) pair of allowed names, by their indices (`DesignArrays.name_at`),
    None where either is another name (index: the allowed names' count); once per (frozen) technology object."""
    def make(t: Technology) -> np.ndarray:
        mems, pkgs = BY_NAME["chip.memory"].allowed(t), BY_NAME["chip.packaging"].allowed(t)
        out = np.full((len(mems) + 1, len(pkgs) + 1), None, dtype=object)
        for a, m in enumerate(mems):
            for b, p in enumerate(pkgs):
                out[a, b] = _interposer_text(m, p)
        return out
    return by_identity(_INTERPOSER_TEXTS, tech, make, limit=16)


def perimeter_mm(die_mm2: ArrayLike, max_aspect: ArrayLike, long_mm: ArrayLike) -> np.ndarray:
    """Largest perimeter of a rectangle of area A no longer than `long_mm` nor `max_aspect`:1."""
    a = np.asarray(die_mm2, dtype=float)
    h = np.minimum(np.sqrt(max_aspect * a), long_mm)
    h = np.maximum(h, np.sqrt(a))  # beyond the reticle (wafer-scale): a square
    return 2.0 * (h + a / np.maximum(h, 1e-12))


def area_for_perimeter_mm2(perimeter: ArrayLike, max_aspect: ArrayLike, long_mm: ArrayLike) -> np.ndarray:
    """Smallest die area whose largest perimeter (see `perimeter_mm`) reaches `perimeter`."""
    p = np.asarray(perimeter, dtype=float)
    k = np.sqrt(max_aspect) + 1.0 / np.sqrt(max_aspect)
    a = (p / (2.0 * k)) ** 2  # max_aspect:1 rectangle
    long_side = np.sqrt(max_aspect * a) > long_mm
    return np.where(long_side, long_mm * np.maximum(p / 2.0 - long_mm, 0.0), a)


@dataclass
class _Blocks:
    """Per-chip block areas without spares, and the quantities every die-count candidate shares."""

    mac: np.ndarray
    vector: np.ndarray
    sram: np.ndarray
    mem_phy: np.ndarray
    link_phy: np.ndarray
    uncore: np.ndarray
    logic: np.ndarray
    core: np.ndarray
    d2d_tbps: np.ndarray   # per die of a split
    d2d_phy: np.ndarray    # per die of a split
    d2d_edge: np.ndarray   # per die of a split
    mem_edge: np.ndarray   # whole chip
    footprint: np.ndarray
    harvests: np.ndarray   # core style that carries spare cores
    spares_given: np.ndarray  # chip.spare_cores per chip (NaN: automatic)
    io_tbps: np.ndarray    # compute <-> I/O dies traffic (whole chip; 0 without I/O dies)
    mm2_per_tbps: np.ndarray
    tbps_per_mm: np.ndarray
    io: "_IoChoices"       # the I/O die counts a chip may take (chip.io_dies is the fewest)
    io_cols: np.ndarray | None = None  # each row's column in `io` (None: the row itself; see _take_blocks)


def io_dies_usd(arr: DesignArrays, n_io: np.ndarray, die_mm2: np.ndarray, critical_mm2: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(cost of the known-good I/O dies with their test, share of packages whose I/O dies are good) of
    `n_io` I/O dies of `die_mm2` (critical area `critical_mm2`) on the chip's I/O node; (0, 1) without."""
    w = arr.tech.wafer
    io = arr.has_io_die & (n_io > 0) & (np.asarray(die_mm2) > 0)
    y = np.where(io, fab.negative_binomial_yield(critical_mm2, arr.defect_density_per_cm2_io, arr.yield_alpha_io), 1.0)
    dpw = fab.dies_per_wafer(np.where(io, die_mm2, 1.0), w.diameter_mm, w.scribe_mm, w.edge_exclusion_mm)
    usd = np.where(io, n_io * arr.wafer_price_usd_io / (dpw * np.maximum(y, 1e-12)) * (1.0 + w.test_cost_fraction), 0.0)
    escape = fab.package_yield(np.where(io, n_io, 0.0), 0.0, y, 1.0, w.probe_coverage)
    return usd, np.where(io, escape, 1.0)


@dataclass
class _IoChoices:
    """The I/O die counts a chip may take, (J, n) arrays over candidates j: from chip.io_dies up to the
    knob's bound (a design without I/O dies has one candidate, 0 dies). The count is a priced choice like
    the split: a designer takes the cheapest count from the fewest allowed, so more I/O dies (a higher
    floor) never make a chip cheaper, while one big I/O-limited die padded to the perimeter its PHYs need
    (its filler grows as the square of that edge) may cost more than two smaller ones. The costs (usd, escape,
    inv_yield) of a count past a design's first that it may not take (fixed_usd ∞) may be bounds of them in the
    compiled path (`area_kernel.io_tables`): no pick reads them."""

    count: np.ndarray      # I/O dies
    die: np.ndarray        # one I/O die incl. filler
    critical: np.ndarray   # one I/O die without filler
    usd: np.ndarray        # known-good I/O dies with their test, whole chip
    escape: np.ndarray     # share of packages whose I/O dies are good (test escapes)
    inv_yield: np.ndarray  # 1 / (bond yield of the I/O dies × their escapes): the package scrap they add
    fixed_usd: np.ndarray  # (I/O dies + their package area) × inv_yield; ∞ for a count not allowed
    area: np.ndarray       # package area of the I/O dies (count × die)
    hull: np.ndarray       # (K, n) indices j of the counts on the lower envelope of compute_usd ↦ cost, in order
    hull_inv_yield: np.ndarray  # inv_yield at hull
    hull_fixed_usd: np.ndarray  # fixed_usd at hull (∞ past a design's last)
    hull_len: np.ndarray   # (1, n): envelope lines of each design
    area_min: np.ndarray | None = None  # (n,): the smallest package area of any count (area.min(axis=0))
    design_major: tuple | None = None  # the compiled path's (n, counts) arrays behind the fields (split_scan's)

    def pick(self, rows, compute_usd: np.ndarray, room_mm2: np.ndarray) -> np.ndarray:
        """Index j of the cheapest count for chips whose other parts cost `compute_usd` before assembly
        scrap (dies, memory, their package area) and leave `room_mm2` of the package to the I/O dies: the
        chip costs (compute_usd + I/O parts) / (package yield of the rest × that of the I/O dies) + test,
        so the count minimises compute_usd·inv_yield + fixed_usd among the counts that fit the room (all
        counts where none does: the package check then fails). `rows` indexes the designs (broadcasting
        against `compute_usd`)."""
        # the cheapest count on the lower envelope of the lines (those with no room are rare: scanned again)
        j = self.hull[self._hull_scan(rows, compute_usd), rows]
        shape = np.broadcast_shapes(np.shape(compute_usd), np.shape(room_mm2), np.shape(rows))
        j = np.broadcast_to(j, shape).copy()
        # where no count fits the package the cheapest of all stays (its package check fails)
        bad = np.broadcast_to((self.area[j, rows] > room_mm2) & (self.area_min[rows] <= room_mm2), shape)
        if bad.any():
            r = np.broadcast_to(rows, shape)[bad]
            usd, room = np.broadcast_to(compute_usd, shape)[bad], np.broadcast_to(room_mm2, shape)[bad]
            fits = self.area[:, r] <= room
            j[bad] = self._scan(usd, self.inv_yield[:, r], np.where(fits, self.fixed_usd[:, r], np.inf))
        return j

    def _hull_scan(self, rows, compute_usd: np.ndarray) -> np.ndarray:
        """Index into `hull` of the cheapest envelope line at `compute_usd` (last axis: designs `rows`): every
        line on every design (past a design's last line `hull_fixed_usd` is ∞, so those never win)."""
        r = np.ravel(rows)
        shape = np.broadcast_shapes(np.shape(compute_usd), np.shape(rows))
        if not r.size:
            return np.zeros(shape, dtype=np.intp)
        c = np.broadcast_to(compute_usd, shape).reshape(-1, r.size)
        best = np.zeros(c.shape, dtype=np.intp)
        lens = self.hull_len[0, r]
        lines = int(lens.max())
        if lines <= 1:
            return best.reshape(shape)
        # designs by falling line count: line j is scanned on the leading `more[j]` designs only (it is at +inf,
        # never cheaper, on the others); most designs have one or two lines
        order = np.argsort(-lens, kind="stable")
        more = len(lens) - np.cumsum(np.bincount(lens, minlength=lines))
        ro = r[order]
        c = c[:, order]
        iy, fx = self.hull_inv_yield[:lines, ro], self.hull_fixed_usd[:lines, ro]
        best_usd = c * iy[0] + fx[0]
        found = np.zeros(c.shape, dtype=np.intp)
        for j in range(1, lines):
            m = int(more[j])
            usd = c[:, :m] * iy[j, :m] + fx[j, :m]
            better = usd < best_usd[:, :m] * (1 - 1e-12)
            np.copyto(best_usd[:, :m], usd, where=better)
            found[:, :m][better] = j
        best[:, order] = found
        return best.reshape(shape)

    @staticmethod
    def _scan(compute_usd: np.ndarray, iy: np.ndarray, fx: np.ndarray) -> np.ndarray:
        best = np.zeros(np.broadcast_shapes(np.shape(compute_usd), iy.shape[1:]), dtype=np.intp)
        best_usd = compute_usd * iy[0] + fx[0]
        usd = np.empty_like(best_usd)
        for j in range(1, iy.shape[0]):
            np.multiply(compute_usd, iy[j], out=usd)
            usd += fx[j]
            better = usd < best_usd * (1 - 1e-12)
            np.copyto(best_usd, usd, where=better)
            best[better] = j
        return best

    def chosen(self, rows, compute_usd: np.ndarray, room_mm2: np.ndarray) -> dict[str, np.ndarray]:
        """`at(pick(rows, compute_usd, room_mm2), rows)`; with a single candidate (no design of the set
        has a choice: e.g. none has I/O dies) that candidate's fields at `rows` (broadcasting like them)."""
        if self.count.shape[0] == 1:  # pick can only return 0: skip the scan and the 2-D gathers
            return {k: getattr(self, k)[0][rows] for k in ("count", "die", "critical", "usd", "escape")}
        return self.at(self.pick(rows, compute_usd, room_mm2), rows)

    def at(self, j: np.ndarray, rows) -> dict[str, np.ndarray]:
        """The candidates' fields at index `j` (shape of `j`) of designs `rows`."""
        return {k: getattr(self, k)[j, rows] for k in ("count", "die", "critical", "usd", "escape")}


def area_kernel():
    """dse.model.area_kernel (numba) when the compiled kernels are on (`kernel.compiled_kernel()`), else None:
    the numpy path."""
    if compiled_kernel() is None:
        return None
    from dse.model import area_kernel as ak
    return ak


def _io_choices(arr: DesignArrays, has: np.ndarray, io_logic: np.ndarray, io_edge: np.ndarray,
                floor_usd: np.ndarray) -> _IoChoices:
    """I/O die candidates of every design: chip.io_dies … the knob's upper bound dies sharing the PHYs
    (critical area io_logic) and the die edge their memory sites and die-to-die PHYs need (io_edge), each
    die padded to that perimeter share; counts whose die exceeds the I/O node's reticle are not allowed
    (if none fits, the largest count is kept and chip_area flags it). `floor_usd`: a lower bound of what
    the rest of the chip costs before scrap (`_IoChoices.pick`'s compute_usd)."""
    sh = arr.tech.shoreline
    top = float(BY_NAME["chip.io_dies"].high)
    first = np.where(has, np.minimum(np.maximum(np.asarray(arr.io_dies, float), 1.0), top), 0.0)  # (np.clip's bits)
    span = int(top - first[has].min()) + 1 if has.any() else 1
    ak = area_kernel()
    if ak is not None:  # in the compiled kernels, with the powers in numpy (the same fields, to the bit)
        return _io_choices_compiled(ak, arr, has, first, span, top, io_logic, io_edge, floor_usd)
    count = first[None, :] + np.arange(span, dtype=float)[:, None]
    allowed = has[None, :] & (count <= top) | (~has[None, :] & (count == 0))
    count = np.where(allowed, count, np.where(has, top, 0.0)[None, :])
    safe = np.maximum(count, 1.0)
    critical = np.where(has, io_logic / safe, 0.0)
    # uncapped: a die past the reticle is not allowed (flagged by chip_area when no count fits)
    pad = area_for_perimeter_mm2(io_edge / safe / sh.io_edge_fraction, sh.max_aspect, sh.reticle_long_mm)
    die = np.where(has, np.maximum(critical, pad), 0.0)
    usd, escape = io_dies_usd(arr, count, die, critical)
    fits = die <= arr.reticle_mm2_io
    allowed &= np.where((allowed & fits).any(axis=0), fits, count == count.max(axis=0))
    inv_yield = 1.0 / (arr.pkg_assembly_yield_per_die ** count * escape)
    fixed = np.where(allowed, (usd + arr.pkg_usd_per_mm2 * arr.pkg_area_scale * count * die) * inv_yield, np.inf)
    # a count no cheaper in either term nor smaller in the package than a smaller allowed count never wins
    # (ties go to the fewer dies): drop it, and the trailing candidates no design needs
    area = count * die
    for j in range(1, span):
        dominated = ((fixed[:j] <= fixed[j]) & (inv_yield[:j] <= inv_yield[j]) & (area[:j] <= area[j])).any(axis=0)
        fixed[j] = np.where(dominated, np.inf, fixed[j])
    used = int(np.flatnonzero(np.isfinite(fixed).any(axis=1)).max(initial=0)) + 1
    count, die, critical, usd, escape, inv_yield, fixed, area = (
        x[:used] for x in (count, die, critical, usd, escape, inv_yield, fixed, area))
    # the lines c ↦ c·inv_yield + fixed_usd (c ≥ floor_usd) that are the lowest somewhere (the others can
    # only win where a package has no room for the lower ones): each line's interval of c where it is
    # below all others must meet c ≥ floor_usd (ties keep the fewer dies)
    on = np.isfinite(fixed)
    multi = np.flatnonzero(on.sum(axis=0) > 1)
    if multi.size:
        on[:, multi] = _on_envelope(inv_yield[:, multi], fixed[:, multi], floor_usd[multi], on[:, multi])
    order = np.argsort(~on, axis=0, kind="stable")  # per design: its envelope counts first, in count order
    k = max(int(on.sum(axis=0).max(initial=1)), 1)
    hull = order[:k]
    cols = np.arange(fixed.shape[1])
    hull_fixed = np.where(np.take_along_axis(on, hull, axis=0), fixed[hull, cols], np.inf)
    return _IoChoices(count=count, die=die, critical=critical, usd=usd, escape=escape, inv_yield=inv_yield,
                      fixed_usd=fixed, area=area, hull=hull, hull_inv_yield=inv_yield[hull, cols],
                      hull_fixed_usd=hull_fixed, hull_len=on.sum(axis=0, keepdims=True), area_min=area.min(axis=0))


def _io_choices_compiled(ak, arr: DesignArrays, has: np.ndarray, first: np.ndarray, span: int, top: float,
                         io_logic: np.ndarray, io_edge: np.ndarray, floor_usd: np.ndarray) -> _IoChoices:
    """`_io_choices` in the compiled kernels (dse.model.area_kernel): the elementwise arithmetic, the allowed
    counts, the dominance, the envelope and the hull there, the powers (yield, test escapes, bond yield) in
    numpy on arrays of the numpy path's shapes, so every field is the numpy path's to the bit; where numpy's power
    is libm's (`area_kernel.numpy_pow_is_libm`: the same bits from the kernel's `x ** k`) the tables in one kernel
    pass, the powers there too (`area_kernel.io_tables`, ~2x faster at 10k designs). The fields are (counts,
    designs) views of design-major arrays."""
    sh, w = arr.tech.shoreline, arr.tech.wafer
    n = len(has)
    flt = [np.ascontiguousarray(x, dtype=float) for x in (first, io_logic, io_edge, arr.defect_density_per_cm2_io,
                                                          arr.yield_alpha_io)]
    r = w.diameter_mm / 2.0 - w.edge_exclusion_mm  # fab.dies_per_wafer's constants, evaluated as it does
    k_aspect = np.sqrt(sh.max_aspect) + 1.0 / np.sqrt(sh.max_aspect)  # (area_for_perimeter_mm2's)
    if ak.numpy_pow_is_libm():  # numpy's powers are libm's: all of it in one kernel pass, the powers there too
        out = [np.empty((n, span)) for _ in range(8)]
        rows = np.empty((len(ak.IO_ROW), n))  # (the kernel takes them design-major: one transpose of the rows)
        for k, x in enumerate((has, arr.has_io_die, *flt, arr.pkg_assembly_yield_per_die, arr.wafer_price_usd_io,
                               arr.reticle_mm2_io, arr.pkg_usd_per_mm2, arr.pkg_area_scale)):
            rows[k] = x
        ak.io_tables(np.ascontiguousarray(rows.T), top, float(sh.io_edge_fraction), float(k_aspect),
                     float(sh.max_aspect), float(sh.reticle_long_mm), float(w.probe_coverage), np.pi * r * r,
                     np.pi * 2 * r, float(w.scribe_mm), float(w.test_cost_fraction), *out)
        return _io_hull(ak, out, floor_usd)
    count, critical, die, base = (np.empty((span, n)) for _ in range(4))
    allowed, io = np.empty((span, n), bool), np.empty((span, n), bool)
    ak.io_geometry(np.ascontiguousarray(has, dtype=bool), np.ascontiguousarray(arr.has_io_die, dtype=bool), *flt,
                   top, float(sh.io_edge_fraction), float(k_aspect), float(sh.max_aspect), float(sh.reticle_long_mm),
                   count, allowed, critical, die, io, base)
    # the powers as io_dies_usd (fab.negative_binomial_yield, fab.package_yield) and _io_choices take them, each
    # element's power of the same x and exponent, on the elements io_costs reads: a count past the knob's bound
    # repeats the bound's count (io_geometry: the same inputs, so io_costs copies that element's fields), and an
    # element without I/O dies (or with 0 dies) takes x ** 0 = 1 (below IO_POWERS_PICKED elements, where picking
    # them costs more than it saves, every element's power as before)
    escape_ok = np.empty((span, n))
    if span * n < IO_POWERS_PICKED:
        y = np.where(io, base ** (-np.asarray(arr.yield_alpha_io, dtype=float)), 1.0)
        ak.io_escape(y, float(w.probe_coverage), escape_ok)
        esc_pow = escape_ok ** np.where(io, count, 0.0)
        bond_pow = arr.pkg_assembly_yield_per_die ** count
    else:
        y, esc_pow, bond_pow = np.ones((span, n)), np.ones((span, n)), np.ones((span, n))
        at = np.flatnonzero(io & allowed)
        col = at % n
        cnt = count.ravel()
        y.ravel()[at] = base.ravel()[at] ** (-np.asarray(arr.yield_alpha_io, dtype=float))[col]
        ak.io_escape(y, float(w.probe_coverage), escape_ok)
        esc_pow.ravel()[at] = escape_ok.ravel()[at] ** cnt[at]
        at = np.flatnonzero((count != 0) & allowed)
        bond_pow.ravel()[at] = np.broadcast_to(np.asarray(arr.pkg_assembly_yield_per_die, dtype=float), (n,))[
            at % n] ** cnt[at]
    out = [np.empty((n, span)) for _ in range(8)]
    ak.io_costs(count, allowed, critical, die, io, y, esc_pow, np.ascontiguousarray(bond_pow, dtype=float),
                *(np.ascontiguousarray(x, dtype=float) for x in (arr.wafer_price_usd_io, arr.reticle_mm2_io,
                                                                 arr.pkg_usd_per_mm2, arr.pkg_area_scale)),
                np.pi * r * r, np.pi * 2 * r, float(w.scribe_mm), float(w.test_cost_fraction), *out)
    return _io_hull(ak, out, floor_usd)


def _io_hull(ak, out: list[np.ndarray], floor_usd: np.ndarray) -> _IoChoices:
    """`_io_choices_compiled`'s choices from its design-major tables `out` (`area_kernel.io_costs`' fields): the
    counts any design may take, the envelope and the hull (`area_kernel.io_hull`)."""
    n, span = out[0].shape
    t_count, t_die, t_critical, t_usd, t_escape, t_inv_yield, t_fixed, t_area = out
    hull = np.empty((n, span), np.intp)
    hull_iy, hull_fx = np.empty((n, span)), np.empty((n, span))
    hull_len, area_min = np.empty((1, n), np.intp), np.empty(n)
    used, k = ak.io_hull(t_inv_yield, t_fixed, t_area, np.ascontiguousarray(floor_usd, dtype=float), hull, hull_iy,
                         hull_fx, hull_len[0], area_min)
    return _IoChoices(count=t_count[:, :used].T, die=t_die[:, :used].T, critical=t_critical[:, :used].T,
                      usd=t_usd[:, :used].T, escape=t_escape[:, :used].T, inv_yield=t_inv_yield[:, :used].T,
                      fixed_usd=t_fixed[:, :used].T, area=t_area[:, :used].T, hull=hull[:, :k].T,
                      hull_inv_yield=hull_iy[:, :k].T, hull_fixed_usd=hull_fx[:, :k].T, hull_len=hull_len,
                      area_min=area_min, design_major=(out, hull, hull_iy, hull_fx, used))


IO_POWERS_PICKED = 1 << 14  # (counts × designs) elements from which `_io_choices_compiled` picks the powers it reads
ENVELOPE_ELEMENTS = 1 << 16  # (line, line, design) elements `_on_envelope` compares in one pass at most


def _on_envelope(iy: np.ndarray, fx: np.ndarray, floor_usd: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Which allowed lines c ↦ c·iy + fx ((lines, designs) arrays; `on`: allowed) are below all other lines
    somewhere in c ≥ floor_usd, ties keeping the earlier line: every line a against every other line o, as
    (a, o, designs) arrays. A line at +∞ bounds no other when the design's slopes are finite, so each design
    compares only its other lines (packed first, in line order; designs grouped by how many they have)."""
    used, m = iy.shape
    live = (fx != np.inf) | ~np.isfinite(iy).all(axis=0)
    k = live.sum(axis=0)
    pack = np.argsort(~live, axis=0, kind="stable")  # per design: its live lines first, in line order
    keep = np.zeros_like(on)
    top = 1
    while top < used:
        top *= 2
    lo = 0
    for size in sorted({min(2 ** e, used) for e in range(1, top.bit_length())} | {used}):
        group = np.flatnonzero((k > lo) & (k <= size))
        lo = size
        step = max(1, ENVELOPE_ELEMENTS // (size * size))
        for start in range(0, group.size, step):
            cols = group[start:start + step]
            lines = pack[:size, cols]  # (a, designs): original line indices
            at = (lines, cols[None, :])
            iy_c, fx_c = iy[at], fx[at]
            with np.errstate(invalid="ignore", divide="ignore"):
                slope = iy_c[:, None, :] - iy_c[None, :, :]
                gap = fx_c[None, :, :] - fx_c[:, None, :]  # line a is at most line o where c·slope ≤ gap
                bound = gap / np.where(slope != 0, slope, 1.0)
            other = ~np.eye(size, dtype=bool)[:, :, None]
            hi = np.where(other & (slope > 0), bound, np.inf).min(axis=1)
            low = np.maximum(np.where(other & (slope < 0), bound, -np.inf).max(axis=1), floor_usd[cols])
            earlier = lines[None, :, :] < lines[:, None, :]
            lost = (other & (slope == 0) & ((gap < 0) | ((gap == 0) & earlier)) | np.isnan(gap) & other).any(axis=1)
            keep[at] = on[at] & (low <= hi) & ~lost
    return keep


def _blocks(arr: DesignArrays) -> _Blocks:
    ak = area_kernel()
    if ak is not None:
        ins = [getattr(arr, k) for k in ak.BLOCK_IN]
        shape = (arr.n,)
        if all(type(x) is np.ndarray and x.shape == shape and x.dtype == t and x.flags.carray
               for x, t in zip(ins, ak.BLOCK_TYPES)):  # (else numpy's casts and layouts: its path)
            return _blocks_compiled(ak, arr, ins)
    tech = arr.tech
    mac = arr.macs * arr.mac_area_um2 * np.where(arr.is_simt, arr.simt_area_factor, 1.0) / UM2_PER_MM2
    vector = arr.vector_flops_per_cycle * arr.vector_area_um2_per_flop_cycle / UM2_PER_MM2
    sram = arr.sram_mb * arr.sram_mm2_per_mb
    mem_phy = arr.memory_stacks * arr.mem_phy_mm2_per_stack
    link_phy = arr.links * arr.link_phy_mm2
    io = arr.has_io_die
    # with I/O dies the memory and link PHYs (and their controllers) sit on them, not on the compute dies
    base = np.where(io, mac + vector + sram, mac + vector + sram + mem_phy + link_phy)
    uncore = base * arr.uncore_fraction
    core = (mac + vector) / np.maximum(arr.cores, 1.0) * (1.0 + arr.uncore_fraction)
    ch = tech.chiplets
    # a cache interleaves its addresses over all dies (more of its traffic crosses than a scratchpad's)
    per_sram = np.where(arr.is_cache, ch.d2d_tbps_per_cache_tbps, ch.d2d_tbps_per_sram_tbps)
    # per die of a split: its memory share (none with I/O dies: memory traffic goes to them) and SRAM share.
    # SRAM is the landing buffer of every streamed byte (dse.model.perf.sram_rate: its ports pass at least
    # the memory stream), so its crossing share is of its port traffic, max(SRAM, memory bandwidth); without
    # I/O dies the memory share above already carries the streamed bytes across, with them it does not (a
    # tiny cache behind an I/O die's memory had a PHY sized for the cache alone: a 2-die split was 6x
    # slower at batch-1 decode than the 1-die chip with 20 % more cores, i.e. a cliff at the split)
    port_tbps = np.where(io, np.maximum(arr.sram_tbps, arr.mem_bw_tbps), arr.sram_tbps)
    d2d_tbps = np.where(io, 0.0, ch.d2d_tbps_per_mem_tbps * arr.mem_bw_tbps) + per_sram * port_tbps
    # with I/O dies every byte of memory traffic and both directions of the links cross to them, over
    # PHYs sized as a split's memory share (B200 NV-HBI 10 TB/s for 8 TB/s of HBM3e)
    io_tbps = np.where(io, ch.d2d_tbps_per_mem_tbps * arr.mem_bw_tbps + arr.links * arr.link_gbps * 2.0 / 1000.0, 0.0)
    names = _tech_names(tech)
    mm2_per_tbps = names["d2d_mm2_per_tbps"].of(arr)
    tbps_per_mm = names["d2d_tbps_per_mm"].of(arr)
    edge = names["memory_edge_mm"].of(arr)
    hbm = arr.mem_needs_interposer & arr.has_memory
    mem_edge = arr.memory_stacks * edge
    # I/O dies (chip.io_dies of them on chip.io_die_node): the memory and link PHYs + their side of the
    # compute links, with the I/O node's uncore share; each padded up to the perimeter its memory sites and
    # die-to-die PHYs need (an I/O-limited die: the filler adds wafer area, not critical area)
    io_logic = np.where(io, (mem_phy + link_phy + io_tbps * mm2_per_tbps) * (1.0 + arr.uncore_fraction_io), 0.0)
    io_edge = mem_edge + io_tbps / tbps_per_mm
    # what the rest of the chip costs at least: its memory, the package under its logic and memory, and the
    # wafer area of its logic at perfect yield and no edge loss
    footprint = np.where(hbm, arr.memory_stacks * arr.mem_footprint_mm2_per_stack, 0.0)
    wafer_mm2 = np.pi * (tech.wafer.diameter_mm / 2) ** 2
    floor_usd = arr.mem_gb * arr.mem_usd_per_gb + arr.wafer_price_usd * (base + uncore) / wafer_mm2 \
        + arr.pkg_usd_per_mm2 * arr.pkg_area_scale * (base + uncore + footprint)
    # no PHYs (no memory, no links): no I/O die
    io_choices = _io_choices(arr, io & (io_logic > 0), io_logic, io_edge, floor_usd)
    return _Blocks(mac=mac, vector=vector, sram=sram, mem_phy=mem_phy, link_phy=link_phy, uncore=uncore,
                   logic=base + uncore, core=core, d2d_tbps=d2d_tbps, d2d_phy=d2d_tbps * mm2_per_tbps, d2d_edge=d2d_tbps / tbps_per_mm,
                   mem_edge=np.where(io, 0.0, mem_edge),
                   footprint=footprint,
                   harvests=names["harvests"].of(arr).astype(bool),
                   spares_given=arr.knobs["chip.spare_cores"], io_tbps=io_tbps, mm2_per_tbps=mm2_per_tbps,
                   tbps_per_mm=tbps_per_mm, io=io_choices)


def _blocks_compiled(ak, arr: DesignArrays, ins: list[np.ndarray]) -> _Blocks:
    """`_blocks` with its arithmetic in one compiled pass (`area_kernel.blocks`: the same bits): one call instead of
    ~30 numpy passes, ~3 temporaries each (at a chunk of 128 designs each pass costs ~1.5 us whatever its size)."""
    tech = arr.tech
    names = _tech_names(tech)
    mm2_per_tbps = names["d2d_mm2_per_tbps"].of(arr)
    tbps_per_mm = names["d2d_tbps_per_mm"].of(arr)
    edge = names["memory_edge_mm"].of(arr)
    ch = tech.chiplets
    out = np.empty((len(ak.BLOCK_OUT), arr.n))
    has = np.empty(arr.n, dtype=bool)
    ak.blocks(*ins, *(np.ascontiguousarray(x, dtype=float) for x in (mm2_per_tbps, tbps_per_mm, edge)), float(ch.d2d_tbps_per_mem_tbps), float(ch.d2d_tbps_per_cache_tbps),
        float(ch.d2d_tbps_per_sram_tbps), float(np.pi * (tech.wafer.diameter_mm / 2) ** 2), out, has)
    f = dict(zip(ak.BLOCK_OUT, out))
    io_choices = _io_choices(arr, has, f["io_logic"], f["io_edge"], f["floor_usd"])
    return _Blocks(mac=f["mac"], vector=f["vector"], sram=f["sram"], mem_phy=f["mem_phy"], link_phy=f["link_phy"],
                   uncore=f["uncore"], logic=f["logic"], core=f["core"], d2d_tbps=f["d2d_tbps"], d2d_phy=f["d2d_phy"],
                   d2d_edge=f["d2d_edge"], mem_edge=f["mem_edge"], footprint=f["footprint"],
                   harvests=names["harvests"].of(arr).astype(bool), spares_given=arr.knobs["chip.spare_cores"],
                   io_tbps=f["io_tbps"], mm2_per_tbps=mm2_per_tbps, tbps_per_mm=tbps_per_mm, io=io_choices)


class _Rows:
    """Rows `idx` of a DesignArrays, gathered per field on first use (`_candidate` reads a few dozen of its
    fields: a full `take` of the replicated rows of every die count would copy them all)."""

    def __init__(self, arr: DesignArrays, idx: np.ndarray):
        self._arr, self._idx, self.n, self.tech = arr, idx, len(idx), arr.tech

    def __getattr__(self, name: str):
        v = getattr(self._arr, name)
        v = v[self._idx] if isinstance(v, np.ndarray) else v
        setattr(self, name, v)
        return v


def _take_blocks(b: _Blocks, idx: np.ndarray) -> _Blocks:
    """Rows `idx` of `b`; the I/O die choices stay as they are, read through `io_cols` (rows repeat per die
    count: copying their (counts, rows) arrays would cost more than the split itself)."""
    cols = idx if b.io_cols is None else b.io_cols[idx]
    return _Blocks(**{k: v[idx] for k, v in vars(b).items() if k not in ("io", "io_cols")}, io=b.io, io_cols=cols)


def _candidate(arr: DesignArrays, b: _Blocks, n: np.ndarray, compiled: bool = True) -> dict[str, np.ndarray]:
    """Geometry, checks and manufacturing cost of every design split into `n` dies (an array); `compiled`
    False keeps the spare search in numpy whatever `compiled_kernel()` says."""
    tech = arr.tech
    w, hv, sh = tech.wafer, tech.harvesting, tech.shoreline
    ws = arr.wafer_scale
    split = n > 1
    io = arr.has_io_die
    # per die: the split's PHY and, with I/O dies, this die's share of the traffic to them
    d2d_tbps_die = np.where(split, b.d2d_tbps, 0.0) + np.where(io, b.io_tbps / n, 0.0)
    d2d = d2d_tbps_die * b.mm2_per_tbps
    cores_per_die = arr.cores / n
    fixed = (b.logic - arr.cores * b.core) / n + d2d  # per die: everything but the core array
    reticle = np.where(ws, np.inf, arr.reticle_mm2)
    # I/O-limited die: memory and die-to-die PHYs need io_edge_fraction of the perimeter; a smaller die is
    # padded up to the area with that perimeter (at most the reticle; beyond it the shoreline check fails)
    need = b.mem_edge + np.where(split | io, n * (d2d_tbps_die / b.tbps_per_mm), 0.0)
    pad = np.minimum(area_for_perimeter_mm2(need / n / sh.io_edge_fraction, sh.max_aspect, sh.reticle_long_mm),
                     arr.reticle_mm2)
    pad = np.where(ws, 0.0, pad)
    interposed = arr.mem_needs_interposer & arr.has_memory & arr.pkg_is_interposer
    bonded = n + np.where(interposed, arr.memory_stacks, 0.0)  # without the I/O dies (their count is chosen)
    memory_usd = arr.mem_gb * arr.mem_usd_per_gb
    cols = np.arange(arr.n) if b.io_cols is None else b.io_cols  # each row's column in b.io

    def chip_usd(i, die_i, y_i, dpw_i, full=False):
        # the chip's manufacturing cost with dies of `die_i` on rows `i`, at the cheapest I/O die count; the
        # known-good I/O dies are bought parts scrapped with the package, as the memory
        package_c = arr.pkg_area_scale[i] * (n[i] * die_i + b.footprint[i])
        dies_c = arr.wafer_price_usd[i] / (dpw_i * np.maximum(y_i, 1e-12)) * n[i]
        room = arr.pkg_max_interposer_mm2[i] / arr.pkg_area_scale[i] - n[i] * die_i - b.footprint[i]
        io = b.io.chosen(cols[i], dies_c + memory_usd[i] + package_c * arr.pkg_usd_per_mm2[i], room)
        y_pkg = fab.package_yield(n[i], bonded[i] + io["count"], y_i, arr.pkg_assembly_yield_per_die[i],
                                  w.probe_coverage) * io["escape"]
        money = fab.manufacturing_usd(arr.wafer_price_usd[i], dpw_i, y_i, n[i], memory_usd[i] + io["usd"],
                                      package_c + arr.pkg_area_scale[i] * io["count"] * io["die"],
                                      arr.pkg_usd_per_mm2[i], y_pkg, w.test_cost_fraction)
        return (money, io) if full else money["chip_usd"]

    # a spare must leave the die within the reticle and the package within its limit (with the I/O dies at
    # their smallest package area): a spare that breaks the package would reject the whole split
    io_area_min = b.io.area_min[cols]
    pkg_die = (arr.pkg_max_interposer_mm2 / arr.pkg_area_scale - b.footprint - io_area_min) / n
    kernel = compiled_kernel() if compiled else None
    terms = None
    if kernel is not None:  # chip_usd's terms that do not depend on the die, and the I/O die counts, for the kernel
        io = b.io
        terms = dict(n=n, wafer_usd=arr.wafer_price_usd, memory_usd=memory_usd, pkg_scale=arr.pkg_area_scale,
                     footprint=b.footprint, pkg_room=arr.pkg_max_interposer_mm2 / arr.pkg_area_scale,
                     pkg_usd_per_mm2=arr.pkg_usd_per_mm2, bonded=bonded, bond_yield=arr.pkg_assembly_yield_per_die,
                     io_area_min=io_area_min, hull_len=io.hull_len[0][cols], io_cols=cols,
                     hull=io.hull, hull_iy=io.hull_inv_yield, hull_fx=io.hull_fixed_usd, coverage=w.probe_coverage,
                     test_fraction=w.test_cost_fraction, **{k: getattr(io, k) for k in kernel.SPARE_IO})
    spares, die, y, dpw = fab.best_spares(fixed, b.core, cores_per_die, arr.defect_density_per_cm2, arr.yield_alpha,
                                          np.where(b.harvests & ~ws, hv.max_spare_cores_per_die, 0),
                                          np.where(ws, reticle, np.minimum(reticle, pkg_die)), pad,
                                          w.diameter_mm, w.scribe_mm, w.edge_exclusion_mm, usd_of=chip_usd,
                                          usd_terms=terms, kernel=kernel)
    given = np.isfinite(b.spares_given)
    if (given & ~ws).any():  # chip.spare_cores set: that many spares, spread over the dies
        i = np.flatnonzero(given & ~ws)
        s_i = b.spares_given[i] / n[i]
        array_i = (cores_per_die[i] + s_i) * b.core[i]
        spares[i] = s_i
        die[i] = np.maximum(fixed[i] + array_i, pad[i])
        y[i] = fab.harvested_yield(fixed[i], array_i, s_i, arr.defect_density_per_cm2[i], arr.yield_alpha[i])
        dpw[i] = fab.dies_per_wafer(die[i], w.diameter_mm, w.scribe_mm, w.edge_exclusion_mm)
    nonredundant, core_array, tolerated = fixed, (cores_per_die + spares) * b.core, spares
    if ws.any():
        i = np.flatnonzero(ws)
        w_spares, ws_die, ws_y, ws_nr, ws_array, ws_tolerated = _wafer_scale(arr, b, i, d2d[i])
        spares, die, y, dpw, nonredundant, core_array, tolerated = (
            x.astype(float, copy=True) for x in (spares, die, y, dpw, nonredundant, core_array, tolerated))
        spares[i], die[i], y[i], dpw[i] = w_spares, ws_die, ws_y, 1.0
        nonredundant[i], core_array[i], tolerated[i] = ws_nr, ws_array, ws_tolerated

    perim = perimeter_mm(die, sh.max_aspect, np.where(ws, np.inf, sh.reticle_long_mm))
    limit = sh.io_edge_fraction * n * perim
    money, io = chip_usd(np.arange(arr.n), die, y, dpw, full=True)
    package = arr.pkg_area_scale * (n * die + b.footprint + io["count"] * io["die"])
    return dict(n=n.astype(float), spares=spares * np.where(ws, 1.0, n), tolerated=tolerated, die=die, d2d=d2d * n,
                nonredundant=nonredundant, array=core_array, pad=np.maximum(die - nonredundant - core_array, 0.0) * n,
                need=need, limit=limit, package=package, reticle_ok=die <= reticle,
                shore_ok=need <= limit * (1 + 1e-9), package_ok=package <= arr.pkg_max_interposer_mm2,
                chip_usd=money["chip_usd"], io_n=io["count"], io_die=io["die"], io_critical=io["critical"])


def _wafer_scale(arr: DesignArrays, b: _Blocks, i: np.ndarray, d2d_i: np.ndarray) -> tuple[np.ndarray, ...]:
    """(spare tiles' cores, wafer area, yield, non-redundant area, tile array, tolerated defects) of the
    wafer-scale designs `i` (their die-to-die PHYs to the I/O dies `d2d_i`): a spare fraction of tiles (the
    technology's, or chip.spare_cores / cores) plus bypass fabric; a small non-redundant area must be clean."""
    hv = arr.tech.harvesting
    given = np.isfinite(b.spares_given[i])
    cores, core = arr.cores[i], b.core[i]
    f = np.where(given, b.spares_given[i] / cores, hv.wafer_scale_spare_fraction)
    # the wafer carries its die-to-die PHYs to the I/O dies too (as a die of a split does: `fixed`)
    ws_die = b.logic[i] - cores * core + cores * (1.0 + f) * core * (1.0 + hv.wafer_scale_fabric_overhead) + d2d_i
    ws_nr = hv.wafer_scale_nonredundant_fraction * ws_die
    ws_tolerated = f / (1.0 + f) * (ws_die - ws_nr) / hv.wafer_scale_tile_mm2  # spare tiles, any core size
    ws_y = fab.harvested_yield(ws_nr, ws_die - ws_nr, ws_tolerated, arr.defect_density_per_cm2[i],
                               arr.yield_alpha[i], continuous=True)
    return f * cores, ws_die, ws_y, ws_nr, ws_die - ws_nr, ws_tolerated


def _further_counts(blk: np.ndarray, n_lo: np.ndarray, n_hi: np.ndarray, extras: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(extra index, position in `blk`) of every further die count n_lo + extra ≤ n_hi of the rows `blk`,
    extra-major: each extra's rows contiguous, in row order."""
    live = n_lo[blk][None, :] + extras[:, None] <= n_hi[blk][None, :]  # (extra, rows)
    return np.nonzero(live)


def _split(arr: DesignArrays, b: _Blocks, n_lo: np.ndarray, n_hi: np.ndarray, auto: np.ndarray,
           compiled: bool = True) -> dict[str, np.ndarray]:
    """`_candidate`'s fields of the die count each design takes: n_lo, or on the rows that split automatically
    (`auto`) the first of n_lo … n_hi that fits, then any strictly cheaper one that fits (`compiled`: as
    `_candidate`'s)."""
    top = arr.tech.chiplets.max_auto_dies
    # the automatic split compares n_lo … max_auto_dies dies on the rows that may split: every further count of
    # every row in one `_candidate` call (rows are independent), then compared count by count in ascending order:
    # the first count that fits, then any strictly cheaper one (in blocks of rows: at most SPLIT_ROWS replicated
    # rows per call bound its temporaries). On a small chunk (JOIN_ROWS) the n_lo candidates of all rows join
    # that call: a `_candidate` call costs ~0.8 ms whatever its size, of the ~5 ms of a 128-design chip_area
    idx = np.flatnonzero(auto & (n_lo < n_hi))
    extras = np.arange(1, top)
    step = max(1, SPLIT_ROWS // max(len(extras), 1))
    blocks = [idx[start:start + step] for start in range(0, idx.size, step)]
    further = [_further_counts(blk, n_lo, n_hi, extras) for blk in blocks]
    joined = len(blocks) == 1 and arr.n <= JOIN_ROWS
    if joined:
        e_of, pos = further[0]
        rows = np.concatenate([np.arange(arr.n), blocks[0][pos]])
        counts = np.concatenate([n_lo, n_lo[rows[arr.n:]] + extras[e_of]])
        both = _candidate(_Rows(arr, rows), _take_blocks(b, rows), counts, compiled)
        best = {k: v[:arr.n] for k, v in both.items()}
        joined_cand = {k: v[arr.n:] for k, v in both.items()}
    else:
        best = _candidate(arr, b, n_lo, compiled)
    best_ok = best["reticle_ok"] & best["shore_ok"] & best["package_ok"]
    for blk, (e_of, pos) in zip(blocks, further):
        if joined:
            cand = joined_cand
        else:
            rep = blk[pos]
            cand = _candidate(_Rows(arr, rep), _take_blocks(b, rep), n_lo[rep] + extras[e_of], compiled)
        fits = cand["reticle_ok"] & cand["shore_ok"] & cand["package_ok"]
        # the scan keeps, per row of the block, the index of its best candidate so far (-1: n_lo's) and
        # that candidate's cost; the fields are gathered once at the end, on the rows that changed
        usd_all = cand["chip_usd"]
        pick = np.full(blk.size, -1, dtype=np.intp)
        best_usd = best["chip_usd"][blk]
        sub_ok = best_ok[blk]
        bounds = np.searchsorted(e_of, np.arange(len(extras) + 1))
        for a, z in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            if a == z:
                continue
            p, usd = pos[a:z], usd_all[a:z]
            take = fits[a:z] & (~sub_ok[p] | (usd < best_usd[p]))
            p = p[take]
            pick[p] = np.flatnonzero(take) + a
            best_usd[p] = usd[take]
            sub_ok[p] = True
        won = np.flatnonzero(pick >= 0)
        if won.size:
            rows, sel = blk[won], pick[won]
            for k, v in cand.items():
                best[k][rows] = v[sel]
    return best


def _design_major(io: _IoChoices) -> tuple:
    """`_IoChoices.design_major` of choices the numpy path built: its fields as (n, counts) arrays."""
    dm = tuple(np.ascontiguousarray(getattr(io, k).T, dtype=float) for k in (
        "count", "die", "critical", "usd", "escape", "inv_yield", "fixed_usd", "area"))
    return (dm, np.ascontiguousarray(io.hull.T, dtype=np.intp), np.ascontiguousarray(io.hull_inv_yield.T, dtype=float),
            np.ascontiguousarray(io.hull_fixed_usd.T, dtype=float), io.count.shape[0])


WAFER_ROWS = ("ws_spares", "ws_die", "ws_y", "ws_nr", "ws_array", "ws_tol")  # `_wafer_scale`'s outputs in split_scan's rows


@functools.lru_cache(maxsize=16)
def _spare_choices(most: float) -> np.ndarray:
    """The spare counts per die `split_scan` compares (fab.SPARE_CHOICES past 0, up to `most`), once per bound (the
    kernel only reads it)."""
    return np.array([s for s in fab.SPARE_CHOICES[1:] if s <= most], float)


def _split_compiled(ak, arr: DesignArrays, b: _Blocks, n_lo: np.ndarray, n_hi: np.ndarray, auto: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """`_split` in the compiled kernel (dse.model.area_kernel.split_scan; a wafer-scale design's wafer from
    `_wafer_scale`) on every design but those whose spares are given (their yields may take
    `fab.harvested_yield`'s continuous form): `_split` in numpy on those rows. Where two costs the kernel compared
    were within `area_kernel.TIE_ULPS` (its powers may round otherwise than numpy's) `_split_exact` runs the
    kernel again with numpy's powers (numpy's `_split` where that does not settle). The same fields, to the bit."""
    ws = arr.wafer_scale
    hv, sh, w = arr.tech.harvesting, arr.tech.shoreline, arr.tech.wafer
    other = ~ws & np.isfinite(b.spares_given)
    per = dict(has_io=arr.has_io_die, d2d_tbps=b.d2d_tbps, io_tbps=b.io_tbps, mm2_per_tbps=b.mm2_per_tbps,
               cores=arr.cores, logic=b.logic, core=b.core, reticle=arr.reticle_mm2, mem_edge=b.mem_edge,
               tbps_per_mm=b.tbps_per_mm, interposed=arr.mem_needs_interposer & arr.has_memory & arr.pkg_is_interposer,
               stacks=arr.memory_stacks, memory_usd=arr.mem_gb * arr.mem_usd_per_gb,
               pkg_max=arr.pkg_max_interposer_mm2, pkg_scale=arr.pkg_area_scale, footprint=b.footprint,
               pkg_usd=arr.pkg_usd_per_mm2, wafer_usd=arr.wafer_price_usd, d0=arr.defect_density_per_cm2,
               alpha=arr.yield_alpha, cap=np.where(b.harvests & ~ws, hv.max_spare_cores_per_die, 0),
               bond=arr.pkg_assembly_yield_per_die, n_lo=n_lo, n_hi=n_hi, scan=auto & (n_lo < n_hi), ws=ws)
    v = np.empty((len(ak.SPLIT_ROW), arr.n))
    for k, name in enumerate(ak.SPLIT_ROW):
        if name in per:
            v[k] = per[name]
        else:  # a wafer-scale design's wafer (WAFER_ROWS), 0 on the others
            v[k].fill(0.0)
    if ws.any():  # the wafer in numpy (its yield takes fab.harvested_yield's continuous form), as _candidate's
        i = np.flatnonzero(ws)
        n_i = n_lo[i]
        d2d_i = (np.where(n_i > 1, b.d2d_tbps[i], 0.0) + np.where(arr.has_io_die[i], b.io_tbps[i] / n_i, 0.0)
                 ) * b.mm2_per_tbps[i]
        for name, x in zip(WAFER_ROWS, _wafer_scale(arr, b, i, d2d_i)):
            v[ak.SPLIT_ROW.index(name), i] = x
    v = np.ascontiguousarray(v.T)  # (the kernel's layout: each design's inputs together; numpy transposes in blocks)
    io = b.io
    out = np.empty((arr.n, len(ak.SPLIT_OUT)))
    unsure = np.zeros(arr.n, bool)
    r = w.diameter_mm / 2.0 - w.edge_exclusion_mm  # fab.dies_per_wafer's constants, evaluated as it does
    choices = _spare_choices(float(hv.max_spare_cores_per_die))
    (t_count, t_die, t_critical, t_usd, t_escape, t_inv_yield, t_fixed, t_area), hull, hull_iy, hull_fx, used = \
        io.design_major if io.design_major is not None and b.io_cols is None else _design_major(io)
    args = (t_count, t_die, t_critical, t_usd, t_escape, t_inv_yield, t_fixed, t_area, used,
            np.ascontiguousarray(io.area_min, dtype=float), hull, hull_iy, hull_fx,
            np.ascontiguousarray(io.hull_len[0], dtype=np.intp), choices, float(sh.io_edge_fraction),
            float(np.sqrt(sh.max_aspect) + 1.0 / np.sqrt(sh.max_aspect)), float(sh.max_aspect),
            float(sh.reticle_long_mm), np.pi * r * r, np.pi * 2 * r, float(w.scribe_mm), float(w.probe_coverage),
            float(w.test_cost_fraction), ak.TIE_ULPS, out, unsure)
    ak.split_scan(v, np.flatnonzero(~other), *args, None)
    unsure = _split_exact(ak, v, np.flatnonzero(unsure), args)
    best = dict(zip(ak.SPLIT_OUT, np.ascontiguousarray(out.T)))
    for k in ("reticle_ok", "shore_ok", "package_ok"):
        best[k] = best[k] != 0
    rows = np.flatnonzero(other | unsure)  # (unsure: not settled by _split_exact, numpy decides)
    if rows.size:
        sub = _split(_Rows(arr, rows), _take_blocks(b, rows), n_lo[rows], n_hi[rows], auto[rows], compiled=False)
        for k, x in sub.items():
            best[k][rows] = x
    return best


EXACT_ROUNDS = 6  # runs of split_scan's exact mode per call at most (each settles the powers a run missed)
EXACT_SLOTS = 768  # powers per design in the first tables of split_scan's exact mode (grown to what a run used; up to
# ~700 measured on random designs, 200 on average)


def _split_exact(ak, v: np.ndarray, rows: np.ndarray, args: tuple) -> np.ndarray:
    """`split_scan` again on the designs `rows` where it compared two costs within its powers' rounding, each
    power taken as numpy computes it (`area_kernel._tpow`: a run records the powers it lacks, numpy computes
    them, the next run uses them) until a run needs no new one: then every cost is the numpy path's to the bit
    and so is every choice. Where numpy's power is libm's (`area_kernel.numpy_pow_is_libm`): one run, each power
    libm's. Returns (over all designs) those not settled in EXACT_ROUNDS runs (numpy decides)."""
    left = np.zeros(v.shape[0], bool)
    if not rows.size:
        return left
    sub = np.zeros(v.shape[0], bool)  # (split_scan's unsure flags of this mode: not needed)
    if ak.numpy_pow_is_libm():  # numpy's powers are libm's: one run, each power libm's (numpy's of the same x, k)
        ak.split_scan(v, rows, *args[:-1], sub, True)
        return left
    tb = ak._pow_tables(rows.size, EXACT_SLOTS)
    live = np.arange(rows.size)  # (into rows) the designs whose last run lacked a power: run again
    for _ in range(EXACT_ROUNDS):
        t = tuple(x[live] for x in tb[:4]) + (np.zeros(live.size, np.intp), np.zeros(live.size, bool))
        ak.split_scan(v, rows[live], *args[:-1], sub, t)
        pw_x, pw_k, pw_v, pw_ok, pw_n, pw_miss = t
        if pw_n.max() > pw_x.shape[1]:  # more powers than slots: larger tables, the known ones kept
            big = ak._pow_tables(rows.size, int(pw_n.max()))
            for a, b in zip(big[:4], tb[:4]):
                a[:, :b.shape[1]] = b
            tb = big
            continue
        need = ~pw_ok & (np.arange(pw_x.shape[1]) < pw_n[:, None])
        pw_v[need] = pw_x[need] ** pw_k[need]
        pw_ok[need] = True
        for a, b in zip(tb[:4], t[:4]):
            a[live] = b
        live = live[pw_miss]
        if not live.size:
            return left
    left[rows[live]] = True
    return left


def chip_area(arr: DesignArrays, dies_between: tuple[ArrayLike, ArrayLike] | None = None, *,
              word_flagged: bool = True) -> AreaBreakdown:
    """Block areas → die-count candidates (spares per die) → cheapest feasible split → package area.

    `dies_between` = (lo, hi) per row limits the automatic split to lo … hi dies (within the counts it
    compares): for callers that proved the cheapest feasible count lies there and one there fits (or that
    none fits anywhere), e.g. Monte-Carlo samples (dse.uncertainty.montecarlo); the result is then the same.
    `word_flagged` False: a row `arr` flags already (a non-empty `arr.reason`) keeps that reason alone, without the
    texts of the checks here that it fails (it is infeasible all the same): for callers that read those rows'
    reasons from `arr` (`dse.evaluate.table.design_metrics`), which then need not word them."""
    b = _blocks(arr)
    ws = arr.wafer_scale
    given = arr.dies >= 1
    auto = ~ws & ~given & arr.allow_chiplets
    n_lo = np.where(ws, 1.0, np.where(given, arr.dies, np.where(
        auto, np.minimum(np.maximum(np.ceil(b.logic / arr.reticle_mm2), 1.0), MAX_DIES), 1.0)))  # (np.clip's bits)
    top = arr.tech.chiplets.max_auto_dies
    n_hi = np.full(arr.n, float(top))  # the automatic split compares n_lo … n_hi dies
    if dies_between is not None:
        lo, hi = (np.asarray(x, dtype=float) for x in dies_between)
        n_lo = np.where(auto, np.clip(lo, n_lo, np.maximum(n_lo, top)), n_lo)
        n_hi = np.where(auto, np.clip(hi, n_lo, top), n_hi)
    ak = area_kernel()
    c = _split(arr, b, n_lo, n_hi, auto) if ak is None else _split_compiled(ak, arr, b, n_lo, n_hi, auto)
    n_dies, die = c["n"], c["die"]

    # the checks, then the texts of the rows they flag (`word_flagged` False: not of those `arr` flags already)
    reticle = arr.reticle_mm2
    too_big = ~ws & ~c["reticle_ok"]
    # chip.dies > 1 without chip.allow_chiplets is a knob rule (dse.model.knobs.RULES), flagged in DesignArrays
    no_interposer = arr.mem_needs_interposer & arr.has_memory & ~arr.pkg_is_interposer
    shore_bad = ~c["shore_ok"]
    io_n, io_die, io_critical = c["io_n"], c["io_die"], c["io_critical"]
    io_big = arr.has_io_die & (io_die > arr.reticle_mm2_io)
    over = ~c["package_ok"]
    why = _Reasons(arr, too_big | no_interposer | shore_bad | io_big | over, word_flagged)
    given = np.asarray(arr.dies) > 0
    why.values(why.rows(too_big & ~arr.allow_chiplets), die, "die {} mm² exceeds the {} mm² reticle and chiplets "
               "are disabled (set chip.allow_chiplets: true)", reticle)
    why.values(why.rows(too_big & arr.allow_chiplets & given), die, "die {} mm² exceeds the {} mm² reticle "
               "with the given chip.dies (use more dies or leave dies unset)", reticle)
    why.values(why.rows(too_big & arr.allow_chiplets & ~given), die, "die {} mm² exceeds the {} mm² reticle "
               "and no automatic split fits the reticle, the die edge and the package at once (the other "
               "reasons say which limit; use less silicon or another packaging)", reticle)
    i = why.rows(no_interposer)
    if i.size:  # the text of each (memory, packaging) pair of allowed names from a table per technology
        text = _interposer_texts(arr.tech)[arr.name_at["chip.memory"][i], arr.name_at["chip.packaging"][i]]
        other = np.flatnonzero(text == None)  # noqa: E711 (a name not allowed: its text per row)
        for k in other.tolist():
            text[k] = _interposer_text(arr.names["chip.memory"][i[k]], arr.names["chip.packaging"][i[k]])
        why.add(i, text)
    frac = arr.tech.shoreline.io_edge_fraction
    i = why.rows(shore_bad)
    if i.size:
        stacks, nds, pct = arr.memory_stacks[i], n_dies[i], f"{frac:.0%}"
        why.add(i, [(f"memory PHY shoreline: {st_} × {mem} {'and die-to-die PHYs ' if nd > 1 else ''}need " if st > 0
                     else "die-to-die PHY shoreline: the die-to-die PHYs need ") +
                    f"{need} mm of die edge, {nd_} die(s) of {dm} mm² offer {lim} mm ({pct} of the "
                    f"perimeter; use {'fewer stacks, a larger die or more dies' if st > 0 else 'fewer, larger dies'})"
                    for st, st_, mem, nd, nd_, need, dm, lim in zip(
                        stacks.tolist(), _whole(stacks), arr.names["chip.memory"][i].tolist(), nds.tolist(),
                        _whole(nds), _whole(c["need"][i]), _whole(die[i]), _whole(c["limit"][i]))])
    i = why.rows(io_big)
    why.add(i, [f"I/O die {io_die[k]:.0f} mm² (PHYs {io_critical[k]:.0f} mm², padded to the edge its memory and "
                f"die-to-die PHYs need) exceeds the {arr.reticle_mm2_io[k]:.0f} mm² reticle even with "
                f"{io_n[k]:.0f} I/O dies, the most chip.io_dies allows (use fewer memory stacks or links)"
                for k in i.tolist()])
    package = c["package"]
    footprint = b.footprint
    total = n_dies * die + io_n * io_die
    i = why.rows(over)
    ends = _package_ends(arr, i) if i.size >= TEXT_ARRAYS_FROM else None
    if ends is not None:  # each packaging's words once
        why.add(i, [f"{h}{p} mm² (dies {t} + memory footprint {fp}{e}" for h, p, t, fp, e in zip(
            ends[0], _whole(package[i]), _whole(total[i]), _whole(footprint[i]), ends[1])])
    elif i.size:
        why.add(i, [f"{pk} area {p} mm² (dies {t} + memory footprint {fp}, ×{sc}) exceeds its {mx} mm² limit"
                    for pk, p, t, fp, sc, mx in zip(arr.names["chip.packaging"][i].tolist(), _whole(package[i]),
                                                    _whole(total[i]), _whole(footprint[i]),
                                                    _each_text(arr.pkg_area_scale[i], "g"),
                                                    _whole(arr.pkg_max_interposer_mm2[i]))])
    feasible, reason = why.flagged(arr)
    spare_mm2 = n_dies * die - b.logic - c["d2d"] - c["pad"]
    return AreaBreakdown(mac_mm2=b.mac, vector_mm2=b.vector, sram_mm2=b.sram, mem_phy_mm2=b.mem_phy,
                         link_phy_mm2=b.link_phy, uncore_mm2=b.uncore, spare_mm2=np.maximum(spare_mm2, 0.0),
                         d2d_mm2=c["d2d"], d2d_tbps=np.where(n_dies > 1, b.d2d_tbps, 0.0), total_mm2=total, die_mm2=die, num_dies=n_dies.astype(np.int64),
                         pad_mm2=c["pad"], spare_cores=c["spares"], core_mm2=b.core,
                         nonredundant_mm2=c["nonredundant"], array_mm2=c["array"],
                         tolerated_defects=c["tolerated"],
                         shoreline_mm=c["need"], shoreline_limit_mm=c["limit"], package_mm2=package,
                         num_io_dies=io_n.astype(np.int64), io_die_mm2=io_die, io_critical_mm2=io_critical,
                         feasible=feasible, reason=reason)


def _package_ends(arr: DesignArrays, i: np.ndarray) -> tuple[list[str], list[str]] | None:
    """The package text's words before its area and after the memory footprint, f"{packaging} area " and
    f", ×{scale:g}) exceeds its {limit:.0f} mm² limit", of each row `i`: formatted once per packaging where its rows
    share their scale and limit to the bit (the technology's); None where a row's do not, or its packaging is a name
    the technology does not allow (then they are formatted per row)."""
    at = arr.name_at["chip.packaging"][i]
    u, first, inv = np.unique(at, return_index=True, return_inverse=True)
    if u[-1] >= _tech_names(arr.tech)["d2d_mm2_per_tbps"].allowed:  # (the packaging knob's table)
        return None
    sc = np.ascontiguousarray(arr.pkg_area_scale[i], dtype=float)
    mx = np.ascontiguousarray(arr.pkg_max_interposer_mm2[i], dtype=float)
    f = first[inv.ravel()]
    if not (np.array_equal(sc.view(np.int64), sc[f].view(np.int64))
            and np.array_equal(mx.view(np.int64), mx[f].view(np.int64))):
        return None
    heads = np.array([f"{pk} area " for pk in arr.names["chip.packaging"][i[first]].tolist()], dtype=object)
    tails = np.array([f", ×{s}) exceeds its {m} mm² limit" for s, m in zip(_each_text(sc[first], "g"),
                                                                            _whole(mx[first]))], dtype=object)
    return heads[inv.ravel()].tolist(), tails[inv.ravel()].tolist()


def split_costs(arr: DesignArrays, *, priced: bool = True, geometry: bool = True,
                dies: ArrayLike | None = None, spares: float | None = None) -> dict[str, np.ndarray]:
    """What the automatic split compares, per die count n = 1 … max_auto_dies (rows of (counts, designs)
    arrays; `dies`: only that count per row, one row): with `priced`, `chip_usd` of the cheapest spare
    choice at `arr`'s prices and defect densities (`spares`: of that many spares per die) and whether that
    choice fits (`ok`; `reticle_ok`: the reticle alone, what a spare choice must fit); with `geometry`,
    whether any spare choice could fit (`may_fit`: the reticle and the package with no spares, the
    shoreline with the most, as a die only grows with its spares), whether every spare choice the search
    may take fits (`always_fits`: the reticle and the shoreline with none, the package with the most; the
    search takes a count's cheapest choice, then checks it) and the most spares per die the search
    may add (`spares_max`, (designs,): 0 = the geometry of a count does not depend on prices or defect
    densities). For callers that bound the split under other prices and defect densities
    (dse.uncertainty.montecarlo); chip_area is unchanged."""
    b = _blocks(arr)
    most = np.where(b.harvests & ~arr.wafer_scale, arr.tech.harvesting.max_spare_cores_per_die, 0.0)
    fixed = {**vars(b), "harvests": np.zeros(arr.n, bool)}  # no spare search: the given spares
    counts = [np.asarray(dies, dtype=float)] if dies is not None else [
        np.full(arr.n, float(n)) for n in range(1, arr.tech.chiplets.max_auto_dies + 1)]
    out: dict[str, list] = {k: [] for k in ("chip_usd", "ok", "reticle_ok", "may_fit", "always_fits")}
    for n in counts:
        if priced:
            c = _candidate(arr, b if spares is None else _Blocks(**{**fixed, "spares_given": spares * n}), n)
            out["chip_usd"].append(c["chip_usd"])
            out["ok"].append(c["reticle_ok"] & c["shore_ok"] & c["package_ok"])
            out["reticle_ok"].append(c["reticle_ok"])
        if geometry:
            bare = _candidate(arr, _Blocks(**{**fixed, "spares_given": np.zeros(arr.n)}), n)
            full = _candidate(arr, _Blocks(**{**fixed, "spares_given": most * n}), n)
            out["may_fit"].append(bare["reticle_ok"] & bare["package_ok"] & full["shore_ok"])
            out["always_fits"].append(bare["reticle_ok"] & bare["shore_ok"] & full["package_ok"])
    res = {k: np.array(v) for k, v in out.items() if v}
    if geometry:
        res["spares_max"] = most
    return res


class _Reasons:
    """A call's infeasibility texts, gathered per check as (rows, texts) and flagged at once (`flagged`): a row that
    several checks flag gets their texts joined with '; ' after the reason it had, in the checks' order, as flagging
    each in turn with `_Flags.flag` would. `bad`: every row a check flags (infeasible, worded or not); with
    `word_flagged` False the rows `arr` flags already are not worded (`rows`)."""

    def __init__(self, arr: DesignArrays, bad: np.ndarray, word_flagged: bool = True):
        self.n = arr.n
        self.bad = bad
        self.parts: list[tuple[np.ndarray, Any]] = []
        self.word = None  # rows to word (None: every row)
        if not word_flagged:
            i = np.flatnonzero(bad)
            had = np.asarray(arr.reason, dtype=object)[i].astype(bool)  # (a str's truth: not "")
            if np.count_nonzero(had):  # (the checks' rows are rows of `bad`: word those without a reason)
                self.word = np.array(bad, dtype=bool)
                self.word[i[had]] = False

    def rows(self, mask: np.ndarray) -> np.ndarray:
        """The rows of `mask` (a subset of `bad`) to word, ascending."""
        return np.flatnonzero(mask if self.word is None else mask & self.word)

    def add(self, rows: np.ndarray, texts: list[str] | np.ndarray) -> None:
        """Word the rows `rows` (ascending) with their `texts`, one non-empty text per row."""
        if len(rows):
            self.parts.append((rows, texts))

    def values(self, rows: np.ndarray, value: np.ndarray, fmt: str, limit: np.ndarray) -> None:
        """Word the rows `rows` with `fmt` ("{}" twice) of their `value` and `limit` as whole numbers (`_whole`)."""
        if rows.size:
            pre, mid, post = fmt.split("{}")
            self.add(rows, [f"{pre}{v}{mid}{lim}{post}" for v, lim in zip(_whole(value[rows]), _whole(limit[rows]))])

    def flagged(self, arr: DesignArrays) -> tuple[np.ndarray, np.ndarray]:
        """(feasible, reason) of every row: `arr`'s, the rows `bad` infeasible, each worded row's texts joined after
        the reason it had (f-strings, per row where two texts meet)."""
        valid = np.array(arr.valid, dtype=bool)
        reason = np.array(arr.reason, dtype=object)
        if np.count_nonzero(self.bad):
            valid[self.bad] = False
        if not self.parts:
            return valid, reason
        if sum(len(rows) for rows, _ in self.parts) > JOINS_IN_DICT:
            idx, msgs = self._joined_arrays()
        else:
            idx, msgs = self._joined_dict()
        if self.word is None:  # the reasons the rows had first (else no worded row had one)
            prior = reason[idx]
            had = np.flatnonzero(prior.astype(bool))  # (a str's truth: not "")
            for p, o in zip(had.tolist(), prior[had].tolist()):
                msgs[p] = f"{o}; {msgs[p]}"
        reason[idx] = msgs
        return valid, reason

    def _joined_dict(self) -> tuple[np.ndarray, list[str]]:
        """(the rows with texts, their texts joined in the checks' order): per text in a dict (few texts: no numpy
        pass per check)."""
        rows, texts = self.parts[0]
        joined = dict(zip(rows.tolist(), texts.tolist() if isinstance(texts, np.ndarray) else texts))
        for rows, texts in self.parts[1:]:
            for r, t in zip(rows.tolist(), texts.tolist() if isinstance(texts, np.ndarray) else texts):
                o = joined.get(r)
                joined[r] = t if o is None else f"{o}; {t}"
        return np.fromiter(joined, dtype=np.intp, count=len(joined)), list(joined.values())

    def _joined_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """`_joined_dict` by whole checks (many texts; the rows ascending, an object array of texts): each check's
        texts written into an object array at once, joined per row only where an earlier check wrote one."""
        hit = np.zeros(self.n, dtype=bool)
        msgs = np.empty(self.n, dtype=object)
        for rows, texts in self.parts:
            again = np.flatnonzero(hit[rows])
            if again.size:
                texts = texts.tolist() if isinstance(texts, np.ndarray) else list(texts)
                for p, o in zip(again.tolist(), msgs[rows[again]].tolist()):
                    texts[p] = f"{o}; {texts[p]}"
            msgs[rows] = texts
            hit[rows] = True
        idx = np.flatnonzero(hit)
        return idx, msgs[idx]


JOINS_IN_DICT = 1024  # texts up to which `_Reasons.flagged` joins them in a dict (~35 % faster at a chunk of 128
# designs, ~40 % slower at 10k than by whole checks)


TEXT_ARRAYS_FROM = 256  # values from which `_whole` and `_each_text` take numpy's path (its fixed cost pays there)


def _whole(x: ArrayLike) -> list:
    """Each value of `x` as an object whose text is f"{v:.0f}": an int where its digits are that text (numpy's
    rint rounds half to even on the exact value, as the format does; |v| < 2**53 and not −0), else that text
    (−0, ±inf, NaN). Formatting an int costs a fraction of a float's with a precision, and chip_area words the
    reasons of thousands of infeasible designs per call."""
    x = np.asarray(x, dtype=float)
    if x.size < TEXT_ARRAYS_FROM:  # (round: the format's number from 0.5 to 2**53, half to even; ~3x cheaper)
        return [round(v) if 0.5 <= v < 9007199254740992.0 else f"{v:.0f}" for v in x.tolist()]
    r = np.rint(x)
    ok = (np.abs(r) < 2.0 ** 53) & ~((r == 0) & np.signbit(r))
    out = np.where(ok, r, 0.0).astype(np.int64).tolist()
    if not ok.all():
        for i in np.flatnonzero(~ok).tolist():
            out[i] = f"{x[i].item():.0f}"
    return out


def _each_text(x: ArrayLike, spec: str) -> list[str]:
    """f"{v:{spec}}" of each value of `x`, formatted once per distinct value (a technology constant per row); zeros
    one by one (−0 and 0 are one value to np.unique, not to the format)."""
    x = np.asarray(x, dtype=float)
    if x.size < TEXT_ARRAYS_FROM:
        return [format(v, spec) for v in x.tolist()]
    u, inv = np.unique(x, return_inverse=True)
    text = np.array([format(v, spec) for v in u.tolist()] or [""], dtype=object)[inv.ravel()]
    for i in np.flatnonzero(x == 0).tolist():
        text[i] = format(x[i].item(), spec)
    return text.tolist()


def design_area(design: Design, tech: Technology | None = None) -> dict[str, Any]:
    """One-design wrapper: the area breakdown of a `Design` as a dict."""

    arr = DesignArrays.from_designs([design], tech or active_technology())
    return chip_area(arr).row(0)
