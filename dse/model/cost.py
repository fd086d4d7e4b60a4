"""Manufacturing and system cost (DESIGN.md §4): known-good-die cost at the harvested yield of the
geometry `chip_area` chose, memory, 2.5D packaging with assembly scrap (bonds and test escapes), test,
chip, system, and TCO per hour. The fab formulas live in `dse.model.fab` (re-exported here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dse.model.area import AreaBreakdown, chip_area, io_dies_usd
from dse.model.arrays import DesignArrays, stack_rows
from dse.model.fab import (
    EXACT_SPARES_MAX,
    dies_per_wafer,
    harvested_yield,
    manufacturing_usd,
    negative_binomial_yield,
    package_yield,
)
from dse.model.hardware import Design, active_technology
from dse.model.kernel import compiled_kernel, kernel_module
from dse.model.knobs import TOPOLOGY_CODE
from dse.model.technology import Technology, default_technology

HOURS_PER_YEAR = 8766.0  # 365.25 days
__all__ = ["dies_per_wafer", "negative_binomial_yield", "harvested_yield", "CostBreakdown", "chip_cost",
           "tco_usd_per_hour", "design_cost"]


@dataclass
class CostBreakdown:
    """Per-design costs in USD (arrays): `die_usd` covers all dies of a chip, `die_usd_each` one KGD;
    `package_usd` includes `scrap_usd`, the dies, memory and package lost to failed assemblies."""

    dies_per_wafer: np.ndarray
    yield_: np.ndarray
    package_yield: np.ndarray
    die_usd_each: np.ndarray
    die_usd: np.ndarray
    memory_usd: np.ndarray
    package_usd: np.ndarray
    scrap_usd: np.ndarray
    test_usd: np.ndarray
    io_die_usd: np.ndarray   # known-good I/O dies with their test (in chip_usd; 0 without I/O dies)
    chip_usd: np.ndarray
    board_usd: np.ndarray
    network_usd: np.ndarray
    system_usd: np.ndarray

    def row(self, i: int) -> dict:
        return {k: float(getattr(self, k)[i]) for k in self.__dataclass_fields__}


def chip_cost(arr: DesignArrays, area: AreaBreakdown | None = None) -> CostBreakdown:
    """Known-good dies (harvested yield) + memory + package (+ assembly scrap) + test per chip;
    system = chips + board + network. Prices the geometry `chip_area` chose."""
    area = area or chip_area(arr)
    dk = design_kernel()
    if dk is not None:
        return _chip_cost_compiled(dk, arr, area)
    tech = arr.tech
    w = tech.wafer
    ws = arr.wafer_scale
    n = area.num_dies.astype(float)
    die = area.die_mm2
    dpw = np.where(ws, 1.0, dies_per_wafer(die, w.diameter_mm, w.scribe_mm, w.edge_exclusion_mm))
    y = harvested_yield(area.nonredundant_mm2, area.array_mm2, area.tolerated_defects,
                        arr.defect_density_per_cm2, arr.yield_alpha, continuous=ws)
    memory = arr.mem_gb * arr.mem_usd_per_gb
    n_io = area.num_io_dies.astype(float)
    io_usd, io_escape = io_dies_usd(arr, n_io, area.io_die_mm2, area.io_critical_mm2)
    bonded = n + np.where(arr.mem_needs_interposer & arr.has_memory & arr.pkg_is_interposer, arr.memory_stacks, 0.0) \
        + n_io
    y_pkg = package_yield(n, bonded, y, arr.pkg_assembly_yield_per_die, w.probe_coverage) * io_escape
    # the known-good I/O dies are bought parts scrapped with a failed package, as the memory
    m = manufacturing_usd(arr.wafer_price_usd, dpw, y, n, memory + io_usd, area.package_mm2, arr.pkg_usd_per_mm2,
                          y_pkg, w.test_cost_fraction)
    s = tech.system
    chips = arr.num_chips
    board = chips * s.board_usd_per_chip
    ports = chips * arr.links
    switched = (arr.topology == TOPOLOGY_CODE["switch"]) & (chips > 1)
    network = ports * s.link_usd_per_link + np.where(switched, ports * s.switch_usd_per_port, 0.0)
    system = chips * m["chip_usd"] + board + network
    return CostBreakdown(dies_per_wafer=dpw, yield_=y, package_yield=y_pkg, die_usd_each=m["die_usd_each"],
                         die_usd=m["die_usd"], memory_usd=memory, package_usd=m["package_usd"],
                         scrap_usd=m["scrap_usd"], test_usd=m["test_usd"], io_die_usd=io_usd, chip_usd=m["chip_usd"],
                         board_usd=board,
                         network_usd=network, system_usd=system)


def design_kernel():
    """dse.model.design_kernel (numba) when the compiled kernels are on (`kernel.compiled_kernel()`) and numpy's
    float64 power is libm's (`area_kernel.numpy_pow_is_libm`: the kernel's powers then give numpy's bits), else None:
    the numpy path."""
    if compiled_kernel() is None:
        return None
    return kernel_module("design_kernel") if kernel_module("area_kernel").numpy_pow_is_libm() else None


def _chip_cost_compiled(dk, arr: DesignArrays, area: AreaBreakdown) -> CostBreakdown:
    """`chip_cost` in one pass of `design_kernel.cost_kernel`: the same fields, to the bit. The yields of wafer-scale
    designs and of rows with more than EXACT_SPARES_MAX spares (`harvested_yield`'s continuous form) in numpy."""
    tech = arr.tech
    w, s = tech.wafer, tech.system
    ws = np.asarray(arr.wafer_scale, bool)
    spares = np.asarray(area.tolerated_defects, float)
    given = ws | (spares > EXACT_SPARES_MAX)
    given_y = np.zeros(arr.n)
    if np.count_nonzero(given):
        i = given.nonzero()[0]
        given_y[i] = harvested_yield(area.nonredundant_mm2[i], area.array_mm2[i], spares[i],
                                     arr.defect_density_per_cm2[i], arr.yield_alpha[i], continuous=ws[i])
    per = dict(ws=ws, dies=area.num_dies, die=area.die_mm2, nonredundant=area.nonredundant_mm2, array=area.array_mm2,
               tolerated=spares, d0=arr.defect_density_per_cm2, alpha=arr.yield_alpha,
               memory_usd=arr.mem_gb * arr.mem_usd_per_gb, has_io=arr.has_io_die, io_n=area.num_io_dies,
               io_die=area.io_die_mm2, io_critical=area.io_critical_mm2, d0_io=arr.defect_density_per_cm2_io,
               alpha_io=arr.yield_alpha_io, wafer_usd_io=arr.wafer_price_usd_io,
               interposed=arr.mem_needs_interposer & arr.has_memory & arr.pkg_is_interposer, stacks=arr.memory_stacks,
               bond=arr.pkg_assembly_yield_per_die, wafer_usd=arr.wafer_price_usd, package_mm2=area.package_mm2,
               pkg_usd=arr.pkg_usd_per_mm2, chips=arr.num_chips, links=arr.links,
               switch=arr.topology == TOPOLOGY_CODE["switch"], given=given, given_y=given_y)
    v = stack_rows([per[name] for name in dk.COST_ROW], arr.n)
    out = np.empty((len(dk.COST_OUT), arr.n))
    r = w.diameter_mm / 2.0 - w.edge_exclusion_mm  # dies_per_wafer's constants, evaluated as it does
    dk.cost_kernel(v, np.pi * r * r, np.pi * 2 * r, float(w.scribe_mm), float(w.probe_coverage),
                   float(w.test_cost_fraction), float(s.board_usd_per_chip), float(s.link_usd_per_link),
                   float(s.switch_usd_per_port), out)
    return CostBreakdown(**dict(zip(dk.COST_OUT, out)))


def tco_usd_per_hour(system_usd: ArrayLike, power_w: ArrayLike, tech: Technology | None = None, *,
                     usd_per_kwh: float | None = None, pue: float | None = None,
                     lifetime_years: float | None = None) -> np.ndarray:
    """Hourly TCO: capex over its lifetime + datacenter capex per W + energy·PUE·$/kWh (ReaLLM constants)."""

    t = (tech or default_technology()).tco
    kwh = t.usd_per_kwh if usd_per_kwh is None else usd_per_kwh
    pue_ = t.pue if pue is None else pue
    life = t.lifetime_years if lifetime_years is None else lifetime_years
    power_w = np.asarray(power_w, dtype=float)
    capex = np.asarray(system_usd, dtype=float) / (life * HOURS_PER_YEAR)
    dc = power_w * t.dc_capex_usd_per_w / (t.dc_lifetime_years * HOURS_PER_YEAR)
    energy = power_w / 1000.0 * pue_ * kwh
    return capex + dc + energy


def design_cost(design: Design, tech: Technology | None = None) -> dict[str, Any]:
    """One-design wrapper: the cost breakdown of a `Design` as a dict."""

    arr = DesignArrays.from_designs([design], tech or active_technology())
    return chip_cost(arr).row(0)
