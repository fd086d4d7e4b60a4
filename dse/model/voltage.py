"""Supply voltage against clock, and the energy of an operation at that voltage (issue 11, power at the workload).

Dynamic energy per operation is C·V² (Rabaey, Chandrakasan & Nikolić, "Digital Integrated Circuits", 2nd ed.
2003, §5.4: E = C_L·V_DD² per 0→1→0 transition), and the clock a circuit reaches at a supply V follows the
alpha-power law f ∝ (V − V_t)^α / V (Sakurai & Newton, IEEE JSSC 25(2), 1990: gate delay ∝ C·V / (V − V_t)^α).
A process node's energy table (`dse/model/data/technology.yaml`) holds at its nominal voltage V_nom, which
its reference parts reach at the node's `nominal_clock_ghz` f_nom:

- A design's supply follows its clock along the curve, V/V_nom = `voltage_ratio(f / f_nom)`, and every operation
  costs (V/V_nom)² of the table (`design_energy_ratio`): above f_nom it needs a higher voltage; below f_nom it
  runs at a lower one, floored at MIN_FRACTION. Below f_nom this is an upper bound on the energy of a design built
  for that clock: the same circuit reaches the lower clock at the lower supply (dynamic voltage-frequency scaling,
  what every chip's DVFS table does: e.g. Qualcomm sells the one Cloud AI 100 SoC from 15 W edge modules to its
  75 W card, recalled, not in the reference notes), and a design that targets the lower clock from the start may also spend the slack on smaller
  gates, higher-Vt cells or fewer pipeline registers, which lowers its energy further: on the energy-delay
  optimal curve every tuning variable (supply, threshold, sizing) trades energy for delay at the same
  marginal rate (Marković, Stojanović, Nikolić, Horowitz & Brodersen, "Methods for true energy-performance
  optimization", IEEE JSSC 39(8), 2004), so the supply-only curve lies on or above that optimum. (The model until
  2026-12-02 kept V_nom at or below f_nom, a looser upper bound: a lower clock then bought no energy per
  operation, and a wide, slow design no efficiency.)
- A chip that a `tdp_w` cap throttles to a clock factor x lowers its voltage along the same curve from its
  design point: V'/V = voltage_ratio(x·r) / voltage_ratio(r) with r = f / f_nom of the design
  (`throttle_energy_ratio`), never below MIN_FRACTION of V_nom: energy per operation falls as (V'/V)², power as
  x·(V'/V)², super-linearly in the clock (`dse.evaluate.throttle.clocked`).

Both are monotone: a higher clock never costs less energy per operation, and power rises with the clock.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dse.model.kernel import compiled_kernel, kernel_module

# Velocity-saturation index α of the alpha-power law: Sakurai & Newton (1990) fit α ≈ 1.2-1.3 for short-channel
# MOSFETs (2 for the long-channel square law). Bounds 1.1-2.0; 1.3 (the short-channel value).
ALPHA = 1.3
# Threshold voltage over the nominal supply: FinFET nodes N16-N3 run ~0.75-0.8 V nominal core supplies with
# ~0.25-0.35 V thresholds (standard-Vt cells; recalled, not in the reference notes). Bounds 0.3-0.5.
THRESHOLD_FRACTION = 0.4
# Lowest supply, as a fraction of nominal, that logic and SRAM arrays of a throttled chip run at: SRAM bitcell
# Vmin ≈ 0.5-0.6 V on N7/N5 high-density arrays without assist (recalled, not in the reference notes) against a
# 0.75 V nominal supply. Below it the clock still drops but the voltage does not: energy per operation stays
# at MIN_FRACTION² and power falls only linearly with the clock. Bounds 0.6-0.85.
MIN_FRACTION = 0.7
# Highest supply, as a fraction of nominal, a design may run at: consumer GPUs on TSMC N5/N4 boost to 2.5-2.7 GHz at
# up to ~1.05-1.1 V against a ~0.75 V nominal core supply (recalled, not in the reference notes); beyond it gate
# oxide wear-out and the power density end the curve. A clock above what the node reaches there
# (`max_clock_ratio` x f_nom, 1.43 x) is not a design point: `DesignArrays` marks it infeasible instead of charging
# (V/V_nom)² for a supply no part runs at. Bounds 1.3-1.5.
MAX_FRACTION = 1.45
_NEWTON_STEPS = 60          # at most; converges to round-off in a handful for clocks within 2x of nominal


def _delay_inverse(v: np.ndarray) -> np.ndarray:
    """(V − V_t)^α / V with V in units of V_nom: ∝ the clock a circuit reaches at supply V."""
    return np.maximum(v - THRESHOLD_FRACTION, 0.0) ** ALPHA / v


def voltage_ratio(f_ratio) -> np.ndarray:
    """V/V_nom at which a circuit that reaches f_nom at V_nom runs at `f_ratio`·f_nom (alpha-power law solved for
    V; increasing in f_ratio), never below MIN_FRACTION; exactly 1 at f_ratio = 1. A clock below `_floor_ratio()` is
    at the floor without a solve (its root lies below MIN_FRACTION)."""
    r = np.maximum(np.asarray(f_ratio, float), 0.0)
    dk = curve_kernel()
    if dk is not None:  # compiled: the same steps, row by row, in one pass
        out = np.empty(r.shape)
        dk.voltage_curve(r.reshape(-1), out.reshape(-1), *_curve_args())
        return out
    flat = r.reshape(-1)
    v = np.ones(flat.shape)
    low = flat < _floor_ratio()
    v[low] = MIN_FRACTION
    todo = ((flat != 1.0) & ~low).nonzero()[0]
    if todo.size:
        v[todo] = _solve(flat[todo])
    return np.maximum(v, MIN_FRACTION).reshape(r.shape)


def _floor_ratio() -> float:
    """A clock ratio below which the curve's voltage is below MIN_FRACTION with room to spare: the ratio the floor
    is reached at (g(MIN_FRACTION) / g(1), g = `_delay_inverse`), less 1e-9 of it. There the root is ~3e-10 below
    the floor, far more than `_solve`'s error (~1e-14 relative, from the left), so `voltage_ratio` gives the floor
    as it would after a solve. Computed once per value of the curve's constants."""
    return _per_curve(("floor", MIN_FRACTION), lambda: float(_delay_inverse(np.float64(MIN_FRACTION))
                                                       / _delay_inverse(np.float64(1.0))) * (1.0 - 1e-9))


_PER_CURVE: dict[tuple, float] = {}  # (which value, the curve's constants) → a value derived from them


def _per_curve(which: tuple, compute: Callable[[], float]) -> float:
    """The value `which` of the curve (its name and the constants it reads besides ALPHA and THRESHOLD_FRACTION),
    computed by `compute` once per value of the curve's constants (tests may change them)."""
    key = (*which, ALPHA, THRESHOLD_FRACTION)
    got = _PER_CURVE.get(key)
    if got is None:
        got = _PER_CURVE[key] = compute()
    return got


def _solve(r: np.ndarray) -> np.ndarray:
    """Root of h(V) = α·ln(V − V_t) − ln V − ln(r·g(1)) by Newton from its left: h rises and is concave in V
    (h' = α/(V − V_t) − 1/V > 0, h'' < 0), so from a point left of the root each step lands left of it and
    closer (monotone convergence). Start: V = 1 for r ≥ 1; below, V_t + (r·g(1)·V_t)^(1/α) (the root satisfies
    (V − V_t)^α = r·g(1)·V > r·g(1)·V_t)."""
    vt, g1 = THRESHOLD_FRACTION, _g1()
    r = np.maximum(r, 1e-12)
    log_target = np.log(r * g1)
    v = np.where(r >= 1.0, 1.0, vt + (r * g1 * vt) ** (1.0 / ALPHA))
    # a row stops where it converged: its value must not depend on which rows share its call (a study's chunks);
    # the rows still iterating (`at`, all at first) are stepped alone
    at, vl, lt = None, v, log_target
    for _ in range(_NEWTON_STEPS if r.size else 0):
        d = vl - vt
        h = ALPHA * np.log(d) - np.log(vl) - lt
        step = h / (ALPHA / d - 1.0 / vl)
        vl = np.maximum(vl - step, vt + 1e-12)
        live = np.abs(step) >= 1e-14 * vl
        if at is None:
            v = vl
        else:
            v[at] = vl
        if not live.all():
            if at is None:
                at = np.flatnonzero(live)  # (v keeps the buffer; vl is a new array from here)
            else:
                at = at[live]
            if not len(at):
                break
            vl, lt = vl[live], lt[live]
    return v


def curve_kernel():
    """dse.model.design_kernel when the compiled kernels are on (`kernel.compiled_kernel()`) and numpy's float64 `log` and
    power are libm's (its `voltage_curve` then gives numpy's bits), else None: `voltage_ratio` in numpy."""
    if compiled_kernel() is None:
        return None
    ak, dk = kernel_module("area_kernel"), kernel_module("design_kernel")
    return dk if dk.numpy_log_is_libm() and ak.numpy_pow_is_libm() else None


def _curve_args() -> tuple:
    """The curve's arguments of `design_kernel.voltage_curve` after the ratios and the output: the floor ratio, g(1),
    V_t, α, 1/α, the voltage floor, the Newton steps, the tolerance."""
    return _floor_ratio(), _g1(), THRESHOLD_FRACTION, ALPHA, 1.0 / ALPHA, MIN_FRACTION, _NEWTON_STEPS, 1e-14


def curve_constants() -> np.ndarray:
    """`_curve_args` as one float64 array (`design_kernel.rows_kernel` takes them so), as `voltage_ratio` passes them."""
    return np.array(_curve_args(), float)


def _g1() -> float:
    """`_delay_inverse` at V_nom (V = 1), once per value of the curve's constants."""
    return _per_curve(("g1",), lambda: float(_delay_inverse(np.float64(1.0))))


def max_clock_ratio() -> float:
    """The clock, over the node's nominal one, that a circuit reaches at the highest supply (MAX_FRACTION); once
    per value of the curve's constants."""
    return _per_curve(("max", MAX_FRACTION), lambda: float(_delay_inverse(np.float64(MAX_FRACTION))
                                                         / _delay_inverse(np.float64(1.0))))


def energy_ratio(f_ratio) -> np.ndarray:
    """Energy per operation at `f_ratio`·f_nom over its energy at f_nom: (V/V_nom)²."""
    return voltage_ratio(f_ratio) ** 2


def design_energy_ratio(clock_ghz, nominal_clock_ghz) -> np.ndarray:
    """Energy per operation of a design at `clock_ghz` over its node table's (at V_nom, f_nom): (V/V_nom)² on the
    node's curve, above 1 over the nominal clock, below 1 (down to MIN_FRACTION²) under it (module docstring)."""
    return energy_ratio(np.asarray(clock_ghz, float) / np.asarray(nominal_clock_ghz, float))


def throttle_energy_ratio(f, clock_over_nominal=1.0) -> np.ndarray:
    """Energy per operation of a design at clock r·f_nom (`clock_over_nominal`) throttled to `f` of its clock, over
    its energy at its own clock: (V(f·r)/V(r))² on the node's curve (1 at f = 1; its voltage floor is the node's,
    MIN_FRACTION of V_nom, however low the design's own point)."""
    r = np.asarray(clock_over_nominal, float)
    return energy_ratio(np.asarray(f, float) * r) / energy_ratio(r)
