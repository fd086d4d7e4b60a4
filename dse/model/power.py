"""Power (DESIGN.md §4, physics v2 §5.1).

- TDP from peak activity: the MAC arrays at peak or the vector unit at peak, whichever draws more (a
  GEMM at peak leaves the vector pipes idle and a vector-bound kernel leaves the arrays idle: they
  share the cores' issue slots, so the TDP takes the larger, not the sum), the SRAM traffic that feeds
  the arrays at that rate (not every SRAM port at once), memory at full bandwidth, links saturated
  both ways, plus leakage of the powered logic and SRAM (`leaking_mm2`: a PHY's power is its energy per
  bit, so an idle chip's interfaces draw nothing); peak system power = chips × TDP. A design's `tdp_w`
  caps the TDP, and the chip then lowers its clock under a workload that would draw more
  (`dse.evaluate.throttle`).
- A running chip never drops to leakage: clock tree, control and leakage of a busy chip are
  `RUNNING_FLOOR_FRACTION` of its peak-activity power without the SRAM accesses (`static_w` below: an
  SRAM that is not read spends no access energy, so what its ports would draw at peak is no part of the
  floor); the mapping adds the energy of what each step does (FLOPs, SRAM bytes, off-chip bytes, link
  bits) over its time (`workload_power_w`).
- Above a power cap the clock drops and performance pays (`throttle`); the voltage drops with it, so each
  operation costs less (`dse.model.voltage`). A design pays (V/V_nom)² of its node's table on every FLOP and
  SRAM byte, its supply following its clock on the node's voltage-frequency curve: more above the node's
  nominal clock, less below it (`DesignArrays.voltage_energy_ratio`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.model.area import AreaBreakdown, chip_area
from dse.model.arrays import DesignArrays, stack_rows
from dse.model.hardware import active_technology
from dse.model.kernel import compiled_kernel, kernel_module
from dse.model.voltage import throttle_energy_ratio

VECTOR_ENERGY_FACTOR = 2.0  # assumed: a vector FLOP (fp32-class, register-file traffic) ≈ 2× an fp16 MAC FLOP
# Share of its peak-activity power (SRAM accesses aside, see chip_power) a running chip burns before the
# energy of its operations (clock tree at full clock, instruction issue of every busy core, leakage, DRAM
# refresh and I/O). Bounds 0.30-0.70: GenZ's power
# model (llm_perf_models.md §2.2) puts static at 30 % of TDP. Fitted: 0.56 minimises the log error of the
# 4 training rows of the `power` regime (GPU NVML power while serving Llama-3-8B, measurements_more.md
# §6 rows 6.13-6.15). The floor is not a stand-in for missing per-operation energy: batch-1 decode does
# almost no arithmetic, and measured watts minus dse's per-operation watts (14-16 % of the total) give a
# floor of 0.60 (H100), 0.53 (A100) and 0.56 (GH200) of (peak − SRAM) (tests/test_power_workload.py):
# a GPU at full clock with its SMs waiting on memory draws most of its power (clock tree, schedulers, PHYs,
# leakage). Not refitted with the register-sourced MMA's operand delivery (dse.model.arrays
# REGISTER_OPERAND_OVERHEAD, 2026-12-01), which raised the A100 rows: the same 4-row fit then gives 0.60.
RUNNING_FLOOR_FRACTION = 0.56
# Leakage follows the supply (chip_power): static power is V_DD·I_leak (Rabaey, Chandrakasan & Nikolić, "Digital Integrated
# Circuits", 2nd ed. 2003, §5.5, static power), and a node's `static_w_per_mm2` holds at its nominal supply (A100 at
# n7's nominal clock). A design whose supply follows its clock (dse.model.voltage) leaks V/V_nom of it, with I_leak
# held at its nominal value: below V_nom an upper bound (subthreshold current falls with V_DS through DIBL, gate
# leakage with V_GS), above it a lower bound. Cloud AI 100 at 0.83 GHz on n7 (V = 0.705 V_nom) leaks 0.705 of the
# table, MI300X at 2.1 GHz on n5 (V = 1.135 V_nom) 1.135 of it; GPUs at their node's nominal clock (A100, H100) are
# unchanged. A throttled chip keeps its design point's leakage (`clocked_static_w`: an upper bound).
# Bytes of SRAM operand traffic per MAC of an array running a GEMM at peak: every cycle a rows×cols
# array takes `rows` + `cols` new operands (output-/weight-stationary dataflow) of 2 bytes (bf16).
OPERAND_BYTES = 2.0


@dataclass
class PowerBreakdown:
    """Watts per chip (arrays); `peak_w` is the modelled peak-activity power, `tdp_w` min(peak, the
    design's `tdp_w` cap); `static_w` is the power of a running chip at full clock before any work (max
    of leakage and RUNNING_FLOOR_FRACTION × (peak − sram_w)); `leakage_w` the part of it that does not
    scale with the clock."""

    compute_w: np.ndarray
    vector_w: np.ndarray
    sram_w: np.ndarray
    memory_w: np.ndarray
    link_w: np.ndarray
    d2d_w: np.ndarray
    static_w: np.ndarray
    leakage_w: np.ndarray
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
    """Peak-activity power per chip. The arrays draw most at the peak of the precision whose rate × energy per
    FLOP is largest: energy per FLOP follows the operand width (technology mac_energy), not the rate."""
    area = area or chip_area(arr)
    if compiled_kernel() is not None:
        return _chip_power_compiled(arr, area)
    compute = np.zeros(arr.n)
    for p, tflops in arr.peak_tflops.items():  # 0 TFLOPS where the chip lacks the precision
        compute = np.maximum(compute, tflops * arr.energy_pj_per_flop[p])  # TFLOP/s × pJ = W
    # the vector unit's FMAs carry their own register traffic (VECTOR_ENERGY_FACTOR × a 16-bit MAC FLOP, the
    # technology's mac_energy anchor): the MAC's energy without a register-sourced MMA's operand delivery
    # (dse.model.arrays.REGISTER_OPERAND_OVERHEAD)
    e_flop = arr.energy_pj_per_flop[arr.tech.mac_energy.anchor]
    vector = arr.vector_flops_per_cycle * arr.clock_ghz * 1e9 * e_flop / arr.mma_operand_factor \
        * VECTOR_ENERGY_FACTOR * 1e-12
    # SRAM at the rate the arrays consume operands at peak (rows + cols operands per rows·cols MACs per
    # cycle), bounded by the ports' bandwidth: a GEMM does not read every bank at once
    rows = np.maximum(np.asarray(arr.array_rows, float), 1.0)
    cols = np.maximum(np.asarray(arr.array_cols, float), 1.0)
    feed_tbps = arr.macs * arr.clock_ghz * 1e9 * (1.0 / rows + 1.0 / cols) * OPERAND_BYTES / 1e12
    sram = np.minimum(arr.sram_tbps, feed_tbps) * arr.sram_pj_per_byte  # TB/s × pJ/B = W
    memory = arr.mem_bw_tbps * 8.0 * arr.mem_pj_per_bit
    link = arr.links * arr.link_gbps * 2.0 * 8.0 * arr.link_pj_per_bit * 1e-3  # GB/s both ways × pJ/bit
    # chiplets: assume memory traffic crosses a die-to-die boundary with probability (n−1)/n
    n = area.num_dies
    d2d = np.where(n > 1, arr.mem_bw_tbps * 8.0 * arr.d2d_pj_per_bit * (n - 1) / n, 0.0)
    # I/O dies: all memory traffic and both directions of the links cross to them
    io = arr.has_io_die
    d2d = np.where(io, (arr.mem_bw_tbps * 8.0 + arr.links * arr.link_gbps * 2.0 * 8.0 * 1e-3) * arr.d2d_pj_per_bit, d2d)
    # leakage of the powered logic and SRAM (`leaking_mm2`): fused-off spare cores are power-gated, filler
    # leaks nothing, and a PHY's power is its energy per bit (above, and the running floor below). The node's
    # figure holds at its nominal supply: the compute dies leak V/V_nom of it at the voltage of their clock
    # ("Leakage follows the supply" above), an I/O die at its own node's nominal supply
    leakage = arr.static_w_per_mm2 * leaking_mm2(arr, area) * arr.supply_voltage_ratio \
        + arr.static_w_per_mm2_io * area.num_io_dies * io_leaking_mm2(arr, area)
    peak = np.maximum(compute, vector) + sram + memory + link + d2d + leakage
    tdp = np.where(arr.tdp_cap_w > 0, np.minimum(peak, arr.tdp_cap_w), peak)
    # the running floor of the chip at its full clock: a cap does not change the chip, it lowers the
    # clock under load (dse.evaluate.throttle), which scales this floor's clocked part. It is a share of
    # what runs whether used or not (the arrays' clock tree and issue, memory refresh and PHYs, link lanes,
    # die-to-die PHYs, leakage), not of the SRAM's access energy: bitlines swing only when read, and the
    # workload pays each SRAM byte it moves (dse.model.perf.op_energy_j). On GPUs the SRAM term is ~1 %
    # of the peak (L2 bandwidth); on a wafer of SRAM-fed cores (WSE-3: 21 PB/s) it is 40 %.
    static = np.maximum(leakage, RUNNING_FLOOR_FRACTION * (peak - sram))
    # heat flux over all the chip's silicon; above the cooling limit the design cannot run at its TDP
    density = tdp / np.maximum(area.total_mm2, 1e-9)
    return _cooled(arr, dict(compute_w=compute, vector_w=vector, sram_w=sram, memory_w=memory, link_w=link, d2d_w=d2d,
                             static_w=static, leakage_w=leakage, peak_w=peak, tdp_w=tdp,
                             system_power_w=tdp * arr.num_chips, power_density_w_per_mm2=density))


def _cooled(arr: DesignArrays, watts: dict[str, np.ndarray]) -> PowerBreakdown:
    """The breakdown of `watts` (PowerBreakdown's numeric fields), each design feasible where its power density is
    within the cooling limit (a reason formatted for the rows over it only)."""
    density = watts["power_density_w_per_mm2"]
    limit = arr.tech.thermal.max_power_density_w_per_mm2
    ok = density <= limit
    reason = np.empty(np.shape(ok), dtype=object)  # formatted for the rows over the limit only
    reason.fill("")  # (empty + fill: np.full's array without its Python-level pass)
    bad = ~ok
    if np.count_nonzero(bad):  # ("%.2f" % x of a Python float: np.char.mod's text, without its array passes)
        tail = f" W/mm² > cooling limit {limit:g} W/mm²"
        reason[bad] = ["power density " + "%.2f" % x + tail for x in density[bad].tolist()]
    return PowerBreakdown(**watts, feasible=ok, reason=reason)


def _chip_power_compiled(arr: DesignArrays, area: AreaBreakdown) -> PowerBreakdown:
    """`chip_power` in one pass of `design_kernel.power_kernel` (no powers: its arithmetic gives numpy's bits)."""
    dk = kernel_module("design_kernel")
    per = dict(e_flop=arr.energy_pj_per_flop[arr.tech.mac_energy.anchor], macs=arr.macs, clock=arr.clock_ghz,
               vector_fpc=arr.vector_flops_per_cycle, operand=arr.mma_operand_factor, array_rows=arr.array_rows,
               array_cols=arr.array_cols, sram_tbps=arr.sram_tbps, sram_pj_per_byte=arr.sram_pj_per_byte,
               mem_bw_tbps=arr.mem_bw_tbps, mem_pj_per_bit=arr.mem_pj_per_bit, links=arr.links,
               link_gbps=arr.link_gbps, link_pj_per_bit=arr.link_pj_per_bit, dies=area.num_dies,
               d2d_pj_per_bit=arr.d2d_pj_per_bit, has_io=arr.has_io_die, static_w_per_mm2=arr.static_w_per_mm2,
               supply=arr.supply_voltage_ratio, static_w_per_mm2_io=arr.static_w_per_mm2_io, io_n=area.num_io_dies,
               uncore_io=arr.uncore_fraction_io, total_mm2=area.total_mm2, io_die_mm2=area.io_die_mm2,
               spare_mm2=area.spare_mm2, pad_mm2=area.pad_mm2, mem_phy_mm2=area.mem_phy_mm2,
               link_phy_mm2=area.link_phy_mm2, d2d_mm2=area.d2d_mm2, io_critical_mm2=area.io_critical_mm2,
               tdp_cap_w=arr.tdp_cap_w, chips=arr.num_chips)
    v = stack_rows([per[name] for name in dk.POWER_ROW], arr.n)
    peak = _rows(list(arr.peak_tflops.values()), arr.n)
    energy = _rows([arr.energy_pj_per_flop[p] for p in arr.peak_tflops], arr.n)
    out = np.empty((len(dk.POWER_OUT), arr.n))
    dk.power_kernel(v, peak, energy, RUNNING_FLOOR_FRACTION, VECTOR_ENERGY_FACTOR, OPERAND_BYTES, out)
    return _cooled(arr, dict(zip(dk.POWER_OUT, out)))


def _rows(cols: list, n: int) -> np.ndarray:
    """`cols` (scalars or columns) as the rows of one (len(cols), n) float64 array; columns of shape (n,) and dtype
    float64 (DesignArrays' per-precision rows) are stacked as they are, without a broadcast view each."""
    if all(type(c) is np.ndarray and c.dtype == np.float64 and c.shape == (n,) for c in cols):
        return np.array(cols).reshape(-1, n)
    return np.array([np.broadcast_to(np.asarray(x, float), (n,)) for x in cols]).reshape(-1, n)


def leaking_mm2(arr: DesignArrays, area: AreaBreakdown) -> np.ndarray:
    """Silicon of a chip's compute dies that leaks (mm²): its logic and SRAM, not its spare cores (fused off
    and power-gated), its filler (`pad_mm2`) nor its PHYs (memory and chip links on the compute dies, the
    die-to-die PHYs of a split or to the I/O dies). An interface's published energy per bit is its power
    over its bandwidth at full rate, the PHY's own static power (bias, clocking, leakage) included (UCIe
    0.25-0.6 pJ/b, Das Sharma, Hot Interconnects 2025; HBM 3-3.9 pJ/bit, ReaLLM; dse_and_cost.md §3.10-3.11):
    chip_power charges it per bit moved and, on a running chip, in the floor (a share of the PHYs' full-rate
    power), so leakage over the PHYs' area would count it twice. An idle chip's interfaces move no bits and
    draw nothing (the links' power-down states). Before, every PHY leaked: a 2-die split of an n5 chip with
    2 × 39 mm² of die-to-die PHYs made each of a 32-chip system's 31 idle chips leak 3.9 W more than the
    1-die chip tied with it on cost, a 9 % jump of local_llm system power at the tie."""
    phy = np.where(arr.has_io_die, 0.0, area.mem_phy_mm2 + area.link_phy_mm2) + area.d2d_mm2
    return np.maximum(area.total_mm2 - area.num_io_dies * area.io_die_mm2 - area.spare_mm2 - area.pad_mm2 - phy, 0.0)


def io_leaking_mm2(arr: DesignArrays, area: AreaBreakdown) -> np.ndarray:
    """Silicon of one I/O die that leaks (mm²): the uncore share of its critical area (the controllers and
    fabric beside its PHYs, `uncore_fraction_io`), not its PHYs (see `leaking_mm2`) nor its filler."""
    u = np.asarray(arr.uncore_fraction_io, float)
    return area.io_critical_mm2 * u / (1.0 + u)


def design_power(design, tech=None) -> dict:
    """One-design wrapper: the power breakdown of a `Design` as a dict."""

    arr = DesignArrays.from_designs([design], tech or active_technology())
    return chip_power(arr).row(0)


# Clock throttling under a power cap (`dse.evaluate.throttle` applies it; the rule lives here):
# - Dynamic power ∝ f·V², and the voltage follows the clock (dse.model.voltage: alpha-power law from the
#   design's point down to MIN_FRACTION of the node's nominal voltage): at clock factor x every operation (FLOP,
#   SRAM byte) costs throttle_energy_ratio(x, f/f_nom) = (V'/V)² of its full-clock energy, so dynamic power falls as x·(V'/V)², faster than
#   the clock. Off-chip memory and link energies are set by their own PHYs' rails and stay.
# - What the clock drives: the MAC arrays, the vector unit, the SRAM ports and the array fill/drain
#   (their rates ∝ f); off-chip memory, links and software overheads keep their rates. Each operator's
#   time is max(compute/f, SRAM/f, memory, collective) + overhead: its compute-bound part stretches by
#   1/f, its memory-bound part does not.
# - Static power: leakage is taken as independent of the clock (at the design's voltage: an upper bound, as
#   leakage falls with V); the rest of the running floor (clock tree, instruction issue) is dynamic, ∝ f·V².
MIN_CLOCK_FACTOR = 1e-3  # below 0.1 % of its clock a chip is taken as unable to meet the cap


def clocked_static_w(static_w, leakage_w, f, clock_over_nominal=1.0) -> np.ndarray:
    """Running-floor power at clock factor `f` of a design at `clock_over_nominal` of its node's nominal clock:
    leakage + (floor − leakage)·f·(V'/V)² (`dse.model.voltage.throttle_energy_ratio`)."""
    leak = np.asarray(leakage_w, float)
    f = np.asarray(f, float)
    return leak + np.maximum(np.asarray(static_w, float) - leak, 0.0) * f * throttle_energy_ratio(f, clock_over_nominal)


def workload_power_w(step_energy_j, step_time_s, static_w=None) -> np.ndarray:
    """Average power per chip (W) while a step repeats: its dynamic energy over its time, plus static
    power (leave `static_w` None when the energy already includes static power over the step)."""
    e = np.asarray(step_energy_j, float)
    t = np.maximum(np.asarray(step_time_s, float), 1e-30)
    p = e / t
    return p if static_w is None else p + np.asarray(static_w, float)
