"""Power at the workload and the clock throttle of a `tdp_w` cap (DESIGN.md §5.1).

A scenario's power is what its chosen plan does per second: the energy per output token or image (the
energy of every step's FLOPs, SRAM, off-chip and link traffic plus the chips' static power over the
step times, from `dse.evaluate.mapping`) times the units per second, plus the system's idle chips at
leakage. When a chip would draw more than its `tdp_w` cap, its clock drops to the factor f at which it
meets the cap (the rules are in `dse.model.power`: arrays / vector unit / SRAM ports ∝ f with the voltage
following the clock, memory and links not) and the scenario is mapped again on the slower chip, so throughput and
latency pay. f is the largest clock found (regula falsi: power rises with the clock) at which the chip
draws at most its cap, to within SOLVER_TOLERANCE of the cap, so the result is continuous in the cap
to that tolerance; no cap, or a cap the workload stays under, leaves the full-clock result untouched.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dse.evaluate.mapping import MappingResult
from dse.model.perf import HwView
from dse.model.power import MIN_CLOCK_FACTOR, clocked_static_w
from dse.model.voltage import throttle_energy_ratio

SOLVER_STEPS = 8           # regula falsi iterations at most (each maps the scenario again on the capped designs)
SOLVER_TOLERANCE = 1e-3    # stop when every capped chip draws within 0.1 % below its cap


def clocked(hw: HwView, f) -> HwView:
    """`hw` with each design's clock scaled by `f` (shape (n,)): peak FLOP/s, vector FLOP/s, SRAM
    bandwidth and the array clock ∝ f; energy per FLOP and per SRAM byte × (V'/V)² (`throttle_energy_ratio`,
    the voltage following the clock down the node's curve from the design's point); static power at f
    (`clocked_static_w`); memory, links as they are."""
    f = np.asarray(f, float)
    out = hw.take(np.arange(hw.n))
    r = hw.clock_over_nominal if hw.clock_over_nominal is not None else np.ones(hw.n)
    e = throttle_energy_ratio(f, r)  # (V'/V)²: the voltage follows the clock down (dse.model.voltage)
    out.energy_pj_per_flop = {k: v * e for k, v in hw.energy_pj_per_flop.items()}
    if hw.sram_pj_per_byte is not None:
        out.sram_pj_per_byte = hw.sram_pj_per_byte * e
    out.peak_flops = {k: v * f for k, v in hw.peak_flops.items()}
    out.vector_flops = hw.vector_flops * f
    out.sram_bw = hw.sram_bw * f
    out.clock_hz = (hw.clock_hz if hw.clock_hz is not None else np.full(hw.n, 1e9)) * f
    out.clock_over_nominal = r * f  # the throttled point on the node's curve
    if hw.static_w is not None:
        leak = hw.leakage_w if hw.leakage_w is not None else np.zeros(hw.n)
        out.static_w = clocked_static_w(hw.static_w, leak, f, r)
    return out


def used_chip_power_w(res: MappingResult) -> np.ndarray:
    """Average power (W) of one chip the chosen plan uses: energy per unit × units/s over its chips
    (0 where infeasible)."""
    m = res.metrics
    used = np.maximum(np.asarray(m["chips_used"], float), 1.0)
    return np.where(res.feasible, np.asarray(m["energy_j_per_unit"], float) * np.asarray(m["throughput"], float)
                    / used, 0.0)


def system_power_w(res: MappingResult, hw: HwView) -> np.ndarray:
    """Average power (W) of the whole system serving the scenario: the plan's chips at their workload
    power, the system's other chips idle at leakage (0 where infeasible)."""
    used = np.asarray(res.metrics["chips_used"], float)
    leak = hw.leakage_w if hw.leakage_w is not None else np.zeros(hw.n)
    idle = np.maximum(np.asarray(hw.num_chips, float) - used, 0.0) * leak
    return np.where(res.feasible, used_chip_power_w(res) * used + idle, 0.0)


def _merge(res: MappingResult, idx: np.ndarray, sub: MappingResult) -> None:
    """Write the rows of `sub` (designs `idx` of `res`) into `res`."""
    res.feasible[idx] = sub.feasible
    res.reason[idx] = sub.reason
    for k, v in sub.metrics.items():
        res.metrics[k][idx] = v
    for k, v in sub.plans.items():
        res.plans[k][idx] = v


def evaluate_capped(evaluate: Callable[[HwView], MappingResult], hw: HwView
                    ) -> tuple[MappingResult, np.ndarray]:
    """(result, clock factor per design) of `evaluate(hw)` (a scenario's mapping) with each design's
    `power_cap_w` enforced by lowering its clock (module docstring). A cap the chip cannot meet even
    at MIN_CLOCK_FACTOR of its clock (leakage, memory and links alone exceed it) makes the scenario
    infeasible with that reason."""
    res = evaluate(hw)
    f = np.ones(hw.n)
    if hw.power_cap_w is None:
        return res, f
    cap = np.asarray(hw.power_cap_w, float)
    if not np.count_nonzero(cap > 0):  # no design capped: nothing to throttle (the power is not needed here)
        return res, f
    p = used_chip_power_w(res)
    idx = np.flatnonzero(res.feasible & (cap > 0) & (p > cap))
    if not len(idx):
        return res, f
    sub, c = hw.take(idx), cap[idx]

    def power_at(fs: np.ndarray, sel: np.ndarray | None = None) -> tuple[np.ndarray, MappingResult]:
        r = evaluate(clocked(sub if sel is None else sub.take(sel), fs))
        # a clock at which the scenario misses its SLOs draws nothing: the search moves up to the
        # clock the cap allows, and the final mapping says why it fails there
        return np.where(r.feasible, used_chip_power_w(r), 0.0), r

    # regula falsi (Illinois) on P(f) − cap over [MIN_CLOCK_FACTOR, 1]: lo always meets the cap
    lo, hi = np.full(len(idx), MIN_CLOCK_FACTOR), np.ones(len(idx))
    p_lo, r = power_at(lo)
    p_hi = p[idx].copy()
    reachable = p_lo <= c
    side = np.zeros(len(idx), int)
    g_lo, g_hi = p_lo - c, p_hi - c
    for _ in range(SOLVER_STEPS):
        # a design stops where it converged: its result must not depend on how long its chunk-mates iterate
        go = reachable & (p_lo < c * (1.0 - SOLVER_TOLERANCE))
        if not go.any():
            break
        x = np.clip(hi - g_hi * (hi - lo) / np.maximum(g_hi - g_lo, 1e-30), lo, hi)
        g = np.flatnonzero(go)  # only the designs still iterating are mapped again
        px = p_lo.copy()
        px[g], _ = power_at(x[g], g)
        gx = px - c
        above, below = (gx > 0) & go, (gx <= 0) & go  # a converged design keeps lo, hi and residuals
        # Illinois: halve the stale end's residual when the same end is kept twice
        g_lo = np.where(above & (side == 1), g_lo / 2.0, g_lo)
        g_hi = np.where(below & (side == -1), g_hi / 2.0, g_hi)
        hi, g_hi = np.where(above, x, hi), np.where(above, gx, g_hi)
        lo, p_lo = np.where(below, x, lo), np.where(below, px, p_lo)
        g_lo = np.where(below, gx, g_lo)
        side = np.where(above, 1, np.where(below, -1, side))
    fs = lo
    pf, r = power_at(fs)
    _merge(res, idx, r)
    f[idx] = fs
    bad = idx[~reachable]
    if len(bad):
        res.feasible[bad] = False
        floor = p_lo[~reachable]
        res.reason[bad] = [f"power cap {cc:.4g} W per chip is below what the chip draws at "
                           f"{MIN_CLOCK_FACTOR:.1%} of its clock ({fl:.4g} W: leakage, memory and links)"
                           for cc, fl in zip(c[~reachable], floor)]
        for k in res.metrics:
            res.metrics[k][bad] = "" if res.metrics[k].dtype == object else 0
        for k in res.plans:
            res.plans[k][bad] = 0
        f[bad] = 0.0
    # an SLO missed only because of the throttle says so
    slow = idx[~res.feasible[idx] & reachable & (res.reason[idx] != "")]
    for g in slow:
        if "SLO" in str(res.reason[g]):
            res.reason[g] = f"{res.reason[g]} (clock throttled to {f[g]:.1%} by the tdp_w cap)"
    return res, f
