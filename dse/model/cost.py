"""Manufacturing and system cost (DESIGN.md §4): dies per wafer, negative-binomial yield, known-good-die
cost, memory, 2.5D packaging with assembly scrap, test, chip, system, and TCO per hour."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.model.area import AreaBreakdown, chip_area
from dse.model.arrays import DesignArrays
from dse.model.knobs import TOPOLOGY_CODE
from dse.model.technology import Technology

HOURS_PER_YEAR = 8766.0  # 365.25 days


def dies_per_wafer(die_mm2, diameter_mm: float = 300.0, scribe_mm: float = 0.0, edge_mm: float = 0.0):
    """Classic gross dies per wafer: π r²/A − π·2r/√(2A) (De Vries; ttm-cas `dies_per_wafer_area`).

    The second term models partial dies lost at the round edge. A scribe lane `s` grows each die to
    (√A + s)² and an edge exclusion `e` shrinks the usable radius (Chiplet Actuary's variant); both
    default to 0 so the formula is exactly DESIGN.md §4's. Never below 1 (one die always fits)."""
    a = (np.sqrt(np.asarray(die_mm2, dtype=float)) + scribe_mm) ** 2
    r = diameter_mm / 2.0 - edge_mm
    return np.maximum(np.pi * r * r / a - np.pi * 2 * r / np.sqrt(2 * a), 1.0)


def negative_binomial_yield(die_mm2, d0_per_cm2, alpha):
    """Y = (1 + A·D0/α)^−α with A in cm² (A mm² / 100) and D0 in defects/cm²."""
    a_cm2 = np.asarray(die_mm2, dtype=float) / 100.0
    return (1.0 + a_cm2 * np.asarray(d0_per_cm2) / np.asarray(alpha)) ** (-np.asarray(alpha, dtype=float))


@dataclass
class CostBreakdown:
    """Per-design costs in USD (arrays): `die_usd` covers all dies of a chip, `die_usd_each` one KGD."""

    dies_per_wafer: np.ndarray
    yield_: np.ndarray
    die_usd_each: np.ndarray
    die_usd: np.ndarray
    memory_usd: np.ndarray
    package_usd: np.ndarray
    test_usd: np.ndarray
    chip_usd: np.ndarray
    board_usd: np.ndarray
    network_usd: np.ndarray
    system_usd: np.ndarray

    def row(self, i: int) -> dict:
        return {k: float(getattr(self, k)[i]) for k in self.__dataclass_fields__}


def chip_cost(arr: DesignArrays, area: AreaBreakdown | None = None) -> CostBreakdown:
    """Known-good-die + memory + package (+ assembly scrap) + test per chip; system = chips + board + network."""
    area = area or chip_area(arr)
    tech = arr.tech
    w = tech.wafer
    die = area.die_mm2
    ws = arr.wafer_scale
    dpw = np.where(ws, 1.0, dies_per_wafer(die, w.diameter_mm, w.scribe_mm, w.edge_exclusion_mm))
    # wafer-scale parts route around defects with spare cores (Cerebras): modelled as yield 1 (assumed)
    y = np.where(ws, 1.0, negative_binomial_yield(die, arr.defect_density_per_cm2, arr.yield_alpha))
    die_each = arr.wafer_price_usd / (dpw * y)
    dies_usd = die_each * area.num_dies
    memory = arr.mem_gb * arr.mem_usd_per_gb
    # assembly: each logic die bonds with yield y_a; a failed bond scraps the package and its parts
    y_asm = np.maximum(arr.pkg_assembly_yield_per_die ** area.num_dies, 1e-12)  # finite for absurd die counts
    raw_pkg = area.package_mm2 * arr.pkg_usd_per_mm2
    package = raw_pkg / y_asm + (dies_usd + memory) * (1.0 / y_asm - 1.0)
    test = w.test_cost_fraction * dies_usd
    chip = dies_usd + memory + package + test
    s = tech.system
    n = arr.num_chips
    board = n * s.board_usd_per_chip
    ports = n * arr.links
    network = ports * s.link_usd_per_link + np.where((arr.topology == TOPOLOGY_CODE["switch"]) & (n > 1), ports * s.switch_usd_per_port, 0.0)
    system = n * chip + board + network
    return CostBreakdown(dies_per_wafer=dpw, yield_=y, die_usd_each=die_each, die_usd=dies_usd, memory_usd=memory,
                         package_usd=package, test_usd=test, chip_usd=chip, board_usd=board, network_usd=network,
                         system_usd=system)


def tco_usd_per_hour(system_usd, power_w, tech: Technology | None = None, *, usd_per_kwh: float | None = None,
                     pue: float | None = None, lifetime_years: float | None = None):
    """Hourly TCO: capex over its lifetime + datacenter capex per W + energy·PUE·$/kWh (ReaLLM constants)."""
    from dse.model.technology import default_technology

    t = (tech or default_technology()).tco
    kwh = t.usd_per_kwh if usd_per_kwh is None else usd_per_kwh
    pue_ = t.pue if pue is None else pue
    life = t.lifetime_years if lifetime_years is None else lifetime_years
    power_w = np.asarray(power_w, dtype=float)
    capex = np.asarray(system_usd, dtype=float) / (life * HOURS_PER_YEAR)
    dc = power_w * t.dc_capex_usd_per_w / (t.dc_lifetime_years * HOURS_PER_YEAR)
    energy = power_w / 1000.0 * pue_ * kwh
    return capex + dc + energy


def design_cost(design, tech=None) -> dict:
    """One-design wrapper: the cost breakdown of a `Design` as a dict."""
    from dse.model.hardware import active_technology

    arr = DesignArrays.from_designs([design], tech or active_technology())
    return chip_cost(arr).row(0)
