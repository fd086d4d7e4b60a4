"""Technology library: process nodes, memories, links and packaging as sourced constants.

The packaged data lives in `dse/model/data/technology.yaml`; `load_technology(override)` deep-merges a
user YAML (path or dict) over it and validates the result (extra keys are errors with suggestions).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PrivateAttr, model_validator

from dse.config import parse_yaml, suggest, validate_data
from dse.errors import ConfigError, DseUserError
from dse.model.ranges import Distribution, is_range, set_path, split_ranges

DATA_FILE = Path(__file__).parent / "data" / "technology.yaml"

Pos = Field(gt=0)
NonNeg = Field(ge=0)
Frac = Field(gt=0, le=1)

# MEMORY_GB_BYTES (bytes in one GB of off-chip memory capacity, 2^30) is declared in dse.units with its sources:
# the model, the workloads' summaries and the serving settings all read it from there.


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProcessNode(_Strict):
    """One process node: wafer economics, block densities and energies."""

    wafer_price_usd: float = Pos
    defect_density_per_cm2: float = NonNeg
    yield_alpha: float = Pos
    mac_area_um2: float = Pos
    simt_area_factor: float = Pos
    vector_area_um2_per_flop_cycle: float = NonNeg
    sram_mm2_per_mb_scratchpad: float = Pos
    sram_mm2_per_mb_cache: float = Pos
    sram_gbps_per_mb: float = Pos
    sram_gbps_per_mb_cache: float = Pos
    energy_pj_per_flop: dict[str, NonNegativeFloat]
    sram_pj_per_byte: float = NonNeg
    # Clock its energy figures hold at: the node's nominal voltage is reached there; a design's supply follows its
    # clock on the node's curve, so it pays (V/V_nom)² per operation, more above this clock, less below it
    # (dse.model.voltage)
    nominal_clock_ghz: float = Pos
    static_w_per_mm2: float = NonNeg
    uncore_fraction: float = NonNeg
    d2d_area_fraction: float = NonNeg
    d2d_pj_per_bit: float = NonNeg
    reticle_mm2: float = Pos
    source: str


class Memory(_Strict):
    """An off-chip memory technology, per stack (HBM) or per device/package (LPDDR, GDDR)."""

    bw_gbps_per_stack: float = Pos
    capacity_gb_per_stack: float = Pos  # GB of MEMORY_GB_BYTES (2^30) each
    usd_per_gb: float = NonNeg
    pj_per_bit: float = NonNeg
    phy_area_mm2_per_stack: float = NonNeg
    needs_interposer: bool
    footprint_mm2_per_stack: float = NonNeg
    # Fraction of the pin bandwidth a long sequential read sustains (refresh, bank/turnaround losses,
    # controller efficiency): the memory's own roof, before any software inefficiency.
    stream_efficiency: float = Field(0.9, gt=0, le=1)
    source: str


class Link(_Strict):
    """A chip-to-chip link: GB/s each way per link, energy, PHY area, latency."""

    gbps_per_link: float = Pos
    pj_per_bit: float = NonNeg
    phy_area_mm2: float = NonNeg
    latency_us: float = NonNeg
    # A network port driven by RDMA (RoCE / InfiniBand NICs): packets through a NIC's queue pairs, so a
    # collective runs in a library's steps with its software floor even on a statically scheduled chip (no
    # compiled, deterministic schedule across the network) and peers cannot load/store each other's memory
    # (no one-shot all-reduce). False: a scale-up link (NVLink, Infinity Fabric, ICI, deterministic C2C).
    rdma: bool = False
    source: str


class Packaging(_Strict):
    """Package technology: cost per mm² of interposer/substrate, bond yield per die placed on it (logic
    dies and, on an interposer, memory stacks), size limit, and the die-to-die PHY it supports."""

    usd_per_mm2: float = NonNeg
    assembly_yield_per_die: float = Frac
    max_interposer_mm2: float = Pos
    area_scale: float = Pos
    d2d_mm2_per_tbps: float = NonNeg
    d2d_tbps_per_mm: float = Pos
    source: str


class Wafer(_Strict):
    """Wafer geometry for dies-per-wafer, plus the test-cost overhead."""

    diameter_mm: float = Pos
    scribe_mm: float = NonNeg
    edge_exclusion_mm: float = NonNeg
    test_cost_fraction: float = NonNeg
    probe_coverage: float = Frac
    source: str


class Harvesting(_Strict):
    """Spare cores: a die of a `core_styles` style ships with `cores` good of `cores + spares` (chosen per
    die to minimise the cost per good die, up to `max_spare_cores_per_die`); wafer-scale parts carry a fixed
    spare fraction of tiles plus bypass fabric and a small non-redundant area that must be defect-free."""

    max_spare_cores_per_die: int = Field(ge=0, le=64)
    core_styles: list[Literal["systolic", "simt"]]
    wafer_scale_spare_fraction: float = NonNeg
    wafer_scale_nonredundant_fraction: float = Field(ge=0, le=1)
    wafer_scale_fabric_overhead: float = NonNeg
    wafer_scale_tile_mm2: float = Pos
    source: str


class Chiplets(_Strict):
    """Die-to-die bandwidth a split needs (per die, from the memory and SRAM traffic that crosses a die
    edge) and the largest die count the automatic split considers."""

    d2d_tbps_per_mem_tbps: float = NonNeg
    d2d_tbps_per_sram_tbps: float = NonNeg
    d2d_tbps_per_cache_tbps: float = NonNeg
    max_auto_dies: int = Field(ge=1, le=64)
    source: str


class Shoreline(_Strict):
    """Die edge available to memory and die-to-die PHYs: a die of area A may be at most `max_aspect`
    long and `reticle_long_mm` on its long side; `io_edge_fraction` of its perimeter may carry them."""

    io_edge_fraction: float = Frac
    max_aspect: float = Field(ge=1)
    reticle_long_mm: float = Pos
    phy_depth_mm: float = Pos
    memory_edge_mm_per_stack: dict[str, NonNegativeFloat]
    source: str


class SystemCosts(_Strict):
    """Per-chip board cost and per-link / per-switch-port costs of a multi-chip system."""

    board_usd_per_chip: float = NonNeg
    link_usd_per_link: float = NonNeg
    switch_usd_per_port: float = NonNeg
    source: str


class Tco(_Strict):
    """Total-cost-of-ownership constants."""

    usd_per_kwh: float = NonNeg
    pue: float = Field(ge=1)
    lifetime_years: float = Pos
    dc_capex_usd_per_w: float = NonNeg
    dc_lifetime_years: float = Pos
    source: str


class Thermal(_Strict):
    """Cooling limit: the heat flux a package can remove."""

    max_power_density_w_per_mm2: float = Pos
    source: str


class WaferFabric(_Strict):
    """The on-wafer mesh of a wafer-scale chip (`packaging: wafer_scale`; dse.model.perf.wafer_mesh): a 2-D mesh of
    one router per tile (`harvesting.wafer_scale_tile_mm2`) over the wafer (`packaging.wafer_scale.max_interposer_mm2`),
    `hop_cycles` clock cycles per router hop, `link_bytes_per_cycle` per link and direction."""

    hop_cycles: float = Pos
    link_bytes_per_cycle: float = Pos
    source: str


class SramBanks(_Strict):
    """Access energy of an SRAM against the size of the bank an operand comes from: wordlines, bitlines and the
    wires to the bank grow as √capacity, so a node's `sram_pj_per_byte` (large arrays) scales by
    min(1, (bank / reference_bank_mb)^exponent), the bank floored at `min_bank_mb`. A scratchpad's bank is its
    share per core (at-memory and per-core SRAM: the operand travels within the core's bank); a cache is shared
    by every core and pays the large-array figure."""

    reference_bank_mb: float = Pos
    min_bank_mb: float = Pos
    exponent: float = Field(gt=0, le=1)
    source: str


class MacPrecision(_Strict):
    """What a MAC of one precision computes: a `multiplier` kind (of `MacEnergy.multipliers`) over `bits`
    significand bits (the hidden one included) and an add into its `accumulator` (of `accumulators_pj`)."""

    multiplier: str
    bits: int = Field(ge=1, le=64)
    accumulator: str


class MacMultiplier(_Strict):
    """A multiplier's energy `pj` at a reference significand width `bits`."""

    bits: int = Field(ge=1, le=64)
    pj: float = Pos


class MacEnergy(_Strict):
    """Energy per MAC by operand width, one rule for every node: multiplier(bits) + accumulator add, the
    multiplier scaling as (bits / reference bits)^`multiplier_exponent` from its reference; a node's
    `energy_pj_per_flop` states the `anchor` precision and the rule gives the others (`ratio`)."""

    anchor: str
    multiplier_exponent: float = Field(ge=1, le=2)
    multipliers: dict[str, MacMultiplier]
    accumulators_pj: dict[str, NonNegativeFloat]
    precisions: dict[str, MacPrecision]
    source: str

    @model_validator(mode="after")
    def _known(self) -> "MacEnergy":
        if self.anchor not in self.precisions:
            raise ValueError(f"anchor {self.anchor!r} is not one of precisions {sorted(self.precisions)}")
        for name, prec in self.precisions.items():
            if prec.multiplier not in self.multipliers:
                raise ValueError(f"precisions.{name}.multiplier: {suggest(prec.multiplier, self.multipliers, 'multiplier')}")
            if prec.accumulator not in self.accumulators_pj:
                raise ValueError(f"precisions.{name}.accumulator: "
                                 f"{suggest(prec.accumulator, self.accumulators_pj, 'accumulator')}")
        return self

    def arithmetic_pj(self, precision: str) -> float:
        """Energy (pJ, at the rule's reference node) of one MAC of `precision`: multiply + accumulate."""
        p = self.precisions[precision]
        m = self.multipliers[p.multiplier]
        return m.pj * (p.bits / m.bits) ** self.multiplier_exponent + self.accumulators_pj[p.accumulator]

    def ratio(self, precision: str) -> float:
        """Energy of a MAC (or FLOP) of `precision` over one of the anchor precision."""
        return self.arithmetic_pj(precision) / self.arithmetic_pj(self.anchor)


class Technology(_Strict):
    """All technology tables; every entry carries a `source`."""

    precision_speedup: dict[str, PositiveFloat]
    mac_energy: MacEnergy
    wafer: Wafer
    system: SystemCosts
    tco: Tco
    thermal: Thermal = Field(default_factory=lambda: Thermal(
        max_power_density_w_per_mm2=1.5, source="assumed: ReaLLM max_power_density 1.1 W/mm² scaled for peak-activity TDP"))
    harvesting: Harvesting
    wafer_fabric: WaferFabric = Field(default_factory=lambda: WaferFabric(
        hop_cycles=1.0, link_bytes_per_cycle=4.0, source="technology.yaml wafer_fabric (the packaged default)"))
    sram_banks: SramBanks
    chiplets: Chiplets
    shoreline: Shoreline
    process_nodes: dict[str, ProcessNode]
    memories: dict[str, Memory]
    links: dict[str, Link]
    packaging: dict[str, Packaging]
    # Ranges (dse.model.ranges) stripped from the tables at load: the fields above hold nominal values.
    _ranges: tuple = PrivateAttr(default=())
    _raw: dict | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _energies_by_width(cls, data: Any) -> Any:
        """Each node's `energy_pj_per_flop` completed by `mac_energy` from its anchor precision: a precision the
        node states keeps its value (an override), every other precision of `precision_speedup` gets the
        anchor's × `MacEnergy.ratio`. A node without its anchor is an error."""
        if not isinstance(data, dict) or not isinstance(data.get("process_nodes"), dict) or "mac_energy" not in data:
            return data
        rule = data["mac_energy"]
        rule = rule if isinstance(rule, MacEnergy) else MacEnergy.model_validate(rule)
        precisions = list(data.get("precision_speedup") or rule.precisions)
        missing = [p for p in precisions if p not in rule.precisions]
        if rule.anchor not in precisions:
            raise ValueError(f"mac_energy.anchor {rule.anchor!r} must be a precision of precision_speedup")
        if missing:
            raise ValueError(f"mac_energy.precisions lacks {missing}: every precision of precision_speedup needs "
                             "its multiplier and accumulator")
        nodes = {}
        for name, node in data["process_nodes"].items():
            if not isinstance(node, dict) or not isinstance(node.get("energy_pj_per_flop"), dict):
                nodes[name] = node
                continue
            given = node["energy_pj_per_flop"]
            if rule.anchor not in given:
                raise ValueError(f"process_nodes.{name}.energy_pj_per_flop: needs its {rule.anchor} (mac_energy.anchor) "
                                 "energy, from which the rule gives the other precisions")
            anchor = float(given[rule.anchor])
            nodes[name] = {**node, "energy_pj_per_flop": {**{p: anchor * rule.ratio(p) for p in precisions}, **given}}
        return {**data, "process_nodes": nodes}

    def uncertain(self) -> list[tuple[tuple[str, ...], Distribution]]:
        """The uncertain constants: (path of keys, distribution) for every range in the loaded tables."""
        return list(self._ranges)

    def with_values(self, values: dict[tuple[str, ...], float]) -> "Technology":
        """A copy with the constants at `values` (path → number) set, validated; keeps the ranges."""
        raw = copy.deepcopy(self._raw if self._raw is not None else self.model_dump())
        for path, v in values.items():
            set_path(raw, path, float(v))
        tech = Technology.model_validate(raw)
        tech._ranges, tech._raw = self._ranges, raw
        return tech

    def memory_edge_mm(self, name: str) -> float:
        """Die edge one stack/device of memory `name` needs: the shoreline table, else the long side of its
        footprint (HBM-like 11.87:7.75), else its PHY area at `shoreline.phy_depth_mm`; 0 for 'none'."""
        if name in self.shoreline.memory_edge_mm_per_stack:
            return self.shoreline.memory_edge_mm_per_stack[name]
        mem = self.memories.get(name)
        if mem is None:
            return 0.0
        if mem.footprint_mm2_per_stack > 0:
            return (mem.footprint_mm2_per_stack * 11.87 / 7.75) ** 0.5
        return mem.phy_area_mm2_per_stack / self.shoreline.phy_depth_mm


def deep_merge(base: dict, over: dict) -> dict:
    """Recursively merge `over` onto a copy of `base` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not is_range(value):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@functools.lru_cache(maxsize=1)
def _default_raw() -> dict:
    data, _ = parse_yaml(DATA_FILE)
    return data


@functools.lru_cache(maxsize=1)
def default_technology() -> Technology:
    """The packaged technology library (cached)."""
    data, positions = parse_yaml(DATA_FILE)
    return _validated(data, str(DATA_FILE), positions)


def _validated(data: Any, where: str, positions: dict) -> Technology:
    """Validate raw tables whose numbers may be ranges: the Technology gets the nominal values and
    keeps the ranges aside (`Technology.uncertain()`)."""
    nominal, ranges = split_ranges(data, where)
    tech = validate_data(nominal, Technology, where=where, positions=positions, what="technology")
    tech._ranges, tech._raw = tuple(ranges), nominal
    return tech


def load_technology(override: Path | str | dict | None = None) -> Technology:
    """Packaged technology with `override` (YAML path or dict) deep-merged over it, validated."""
    if override is None:
        return default_technology()
    if isinstance(override, dict):
        user, positions, where = override, {}, "<technology override>"
    else:
        user, positions = parse_yaml(override)
        where = str(override)
        user = user or {}
    if not isinstance(user, dict):
        raise ConfigError([f"{where}:1:1: (top level): expected a mapping of technology tables"])
    merged = deep_merge(_default_raw(), user)
    return _validated(merged, where, positions)


def lookup(table: dict[str, Any], name: str, what: str) -> Any:
    """`table[name]` or a DseUserError with a did-you-mean suggestion."""
    try:
        return table[name]
    except KeyError:
        raise DseUserError(suggest(name, table, what)) from None
