"""Power (DESIGN.md §4): TDP from peak activity — every MAC busy at peak, SRAM and memory at full
bandwidth, links saturated both ways — plus static leakage; system power = chips × TDP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.model.area import AreaBreakdown, chip_area
from dse.model.arrays import DesignArrays

VECTOR_ENERGY_FACTOR = 2.0  # assumed: a vector FLOP (fp32-class, register-file traffic) ≈ 2× a bf16 MAC FLOP


@dataclass
class PowerBreakdown:
    """Watts per chip (arrays); `tdp_w` is min(model, the design's `tdp_w` cap)."""

    compute_w: np.ndarray
    vector_w: np.ndarray
    sram_w: np.ndarray
    memory_w: np.ndarray
    link_w: np.ndarray
    d2d_w: np.ndarray
    static_w: np.ndarray
    peak_w: np.ndarray
    tdp_w: np.ndarray
    system_power_w: np.ndarray
    power_density_w_per_mm2: np.ndarray
    feasible: np.ndarray
    reason: np.ndarray

    def row(self, i: int) -> dict:
        return {k: (str(v[i]) if k == "reason" else float(v[i]))
                for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__)}


def chip_power(arr: DesignArrays, area: AreaBreakdown | None = None) -> PowerBreakdown:
    """Peak-activity power per chip. Energy per FLOP falls with the precision multiplier, so the
    bf16 figure bounds the array's power at any precision."""
    area = area or chip_area(arr)
    e_flop = arr.energy_pj_per_flop["bf16"]
    flops_per_s = 2.0 * arr.macs * arr.clock_ghz * 1e9
    compute = flops_per_s * e_flop * 1e-12
    vector = arr.vector_flops_per_cycle * arr.clock_ghz * 1e9 * e_flop * VECTOR_ENERGY_FACTOR * 1e-12
    sram = arr.sram_tbps * arr.sram_pj_per_byte  # TB/s × pJ/B = W
    memory = arr.mem_bw_tbps * 8.0 * arr.mem_pj_per_bit
    link = arr.links * arr.link_gbps * 2.0 * 8.0 * arr.link_pj_per_bit * 1e-3  # GB/s both ways × pJ/bit
    # chiplets: assume memory traffic crosses a die-to-die boundary with probability (n−1)/n
    n = area.num_dies
    d2d = np.where(n > 1, arr.mem_bw_tbps * 8.0 * arr.d2d_pj_per_bit * (n - 1) / n, 0.0)
    static = arr.static_w_per_mm2 * area.total_mm2
    peak = compute + vector + sram + memory + link + d2d + static
    tdp = np.where(arr.tdp_cap_w > 0, np.minimum(peak, arr.tdp_cap_w), peak)
    # heat flux over all the chip's silicon; above the cooling limit the design cannot run at its TDP
    density = tdp / np.maximum(area.total_mm2, 1e-9)
    limit = arr.tech.thermal.max_power_density_w_per_mm2
    ok = density <= limit
    reason = np.where(ok, "", np.char.add(np.char.add("power density ", np.char.mod("%.2f", density)),
                                          f" W/mm² > cooling limit {limit:g} W/mm²")).astype(object)
    return PowerBreakdown(compute_w=compute, vector_w=vector, sram_w=sram, memory_w=memory, link_w=link,
                          d2d_w=d2d, static_w=static, peak_w=peak, tdp_w=tdp, system_power_w=tdp * arr.num_chips,
                          power_density_w_per_mm2=density, feasible=ok, reason=reason)


def design_power(design, tech=None) -> dict:
    """One-design wrapper: the power breakdown of a `Design` as a dict."""
    from dse.model.hardware import active_technology

    arr = DesignArrays.from_designs([design], tech or active_technology())
    return chip_power(arr).row(0)
