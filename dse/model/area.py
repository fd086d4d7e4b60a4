"""Die area (DESIGN.md §4): block areas from technology densities, reticle limit, chiplet split,
and the 2.5D interposer / package area with its size limit. Vectorized over `DesignArrays`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.model.arrays import DesignArrays, _Flags

UM2_PER_MM2 = 1e6


@dataclass
class AreaBreakdown:
    """Per-design areas in mm² (arrays of shape (n,)); `die_mm2` is one die, `total_mm2` all dies."""

    mac_mm2: np.ndarray
    vector_mm2: np.ndarray
    sram_mm2: np.ndarray
    mem_phy_mm2: np.ndarray
    link_phy_mm2: np.ndarray
    uncore_mm2: np.ndarray
    d2d_mm2: np.ndarray
    total_mm2: np.ndarray
    die_mm2: np.ndarray
    num_dies: np.ndarray
    package_mm2: np.ndarray  # interposer (2.5D), substrate (organic) or wafer (wafer-scale) area
    feasible: np.ndarray
    reason: np.ndarray

    def row(self, i: int) -> dict:
        """Scalar dict of one design's areas."""
        out = {k: float(getattr(self, k)[i]) for k in self.__dataclass_fields__ if k not in ("feasible", "reason")}
        out["num_dies"] = int(self.num_dies[i])
        out.update(feasible=bool(self.feasible[i]), reason=str(self.reason[i]))
        return out


def chip_area(arr: DesignArrays) -> AreaBreakdown:
    """Block areas → logic area → dies (automatic chiplet split at the reticle) → package area."""
    mac = arr.macs * arr.mac_area_um2 * np.where(arr.is_simt, arr.simt_area_factor, 1.0) / UM2_PER_MM2
    vector = arr.vector_flops_per_cycle * arr.vector_area_um2_per_flop_cycle / UM2_PER_MM2
    sram = arr.sram_mb * arr.sram_mm2_per_mb
    mem_phy = arr.memory_stacks * arr.mem_phy_mm2_per_stack
    link_phy = arr.links * arr.link_phy_mm2
    base = mac + vector + sram + mem_phy + link_phy
    uncore = base * arr.uncore_fraction
    logic = base + uncore

    flags = _Flags(arr.n)
    flags.valid[:] = arr.valid
    flags.reason[:] = arr.reason
    reticle = arr.reticle_mm2
    ws = arr.wafer_scale
    given = arr.dies >= 1
    # automatic split: smallest n with logic·(1+d2d)/n ≤ reticle (d2d overhead only when n > 1)
    auto_n = np.where(logic <= reticle, 1.0, np.ceil(logic * (1 + arr.d2d_area_fraction) / reticle))
    n_dies = np.where(ws, 1.0, np.where(given, arr.dies, np.where(arr.allow_chiplets, auto_n, 1.0)))
    d2d = np.where(n_dies > 1, logic * arr.d2d_area_fraction, 0.0)
    total = logic + d2d
    die = total / n_dies

    too_big = ~ws & (die > reticle)
    no_chiplets = too_big & ~arr.allow_chiplets
    _flag_values(flags, no_chiplets, die, "die {:.0f} mm² exceeds the {:.0f} mm² reticle and chiplets are disabled "
                 "(set chip.allow_chiplets: true)", reticle)
    _flag_values(flags, too_big & arr.allow_chiplets, die, "die {:.0f} mm² exceeds the {:.0f} mm² reticle with "
                 "the given chip.dies (use more dies or leave dies unset)", reticle)

    # chip.dies > 1 without chip.allow_chiplets is a knob rule (dse.model.knobs.RULES), flagged in DesignArrays
    hbm = arr.mem_needs_interposer & arr.has_memory
    flags.flag(hbm & ~arr.pkg_is_interposer, _per_row(
        arr, hbm & ~arr.pkg_is_interposer,
        lambda i: f"memory {arr.names['chip.memory'][i]} needs a 2.5D interposer (cowos_s or cowos_l), "
                  f"packaging is {arr.names['chip.packaging'][i]}"))
    footprint = np.where(hbm, arr.memory_stacks * arr.mem_footprint_mm2_per_stack, 0.0)
    package = arr.pkg_area_scale * (total + footprint)
    over = package > arr.pkg_max_interposer_mm2
    flags.flag(over, _per_row(
        arr, over, lambda i: f"{arr.names['chip.packaging'][i]} area {package[i]:.0f} mm² (dies {total[i]:.0f} + "
                             f"memory footprint {footprint[i]:.0f}, ×{arr.pkg_area_scale[i]:g}) exceeds its "
                             f"{arr.pkg_max_interposer_mm2[i]:.0f} mm² limit"))
    return AreaBreakdown(mac_mm2=mac, vector_mm2=vector, sram_mm2=sram, mem_phy_mm2=mem_phy,
                         link_phy_mm2=link_phy, uncore_mm2=uncore, d2d_mm2=d2d, total_mm2=total, die_mm2=die,
                         num_dies=n_dies.astype(np.int64), package_mm2=package, feasible=flags.valid,
                         reason=flags.reason)


def _per_row(arr: DesignArrays, mask: np.ndarray, fmt) -> np.ndarray:
    msgs = np.full(arr.n, "", dtype=object)
    for i in np.flatnonzero(mask):  # only the infeasible rows are formatted
        msgs[i] = fmt(i)
    return msgs


def _flag_values(flags: _Flags, mask: np.ndarray, value: np.ndarray, fmt: str, limit: np.ndarray) -> None:
    if mask.any():
        msgs = np.full(len(mask), "", dtype=object)
        for i in np.flatnonzero(mask):
            msgs[i] = fmt.format(value[i], limit[i])
        flags.flag(mask, msgs)


def design_area(design, tech=None) -> dict:
    """One-design wrapper: the area breakdown of a `Design` as a dict."""
    from dse.model.hardware import active_technology

    arr = DesignArrays.from_designs([design], tech or active_technology())
    return chip_area(arr).row(0)
