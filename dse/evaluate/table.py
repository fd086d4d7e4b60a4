"""Designs × mix → the metric table: design metrics, each scenario's best plan, the mix aggregates.

`evaluate(arr, mix)` returns one (n,) numpy column per metric of the registry (`dse.evaluate.metrics`),
in registry order and dtype. No NaN or inf: an infeasible design has zeros in its performance columns
and a reason string. Throughputs are scored against the mix's reference design, evaluated with the
same technology and calibration as the designs.
"""

from __future__ import annotations

import numpy as np

from dse.catalog import load_catalog_design
from dse.model.memo import by_identities, by_identity
from dse.evaluate.metrics import DESIGN, NUMPY_DTYPES, SCENARIO
from dse.evaluate.serving import choose_plan, prefill_arrays, prefill_pool, serving_metrics
from dse.evaluate.throttle import clocked, evaluate_capped, system_power_w
from dse.model.area import AreaBreakdown, chip_area
from dse.model.arrays import DesignArrays, kernel_column, stack_rows
from dse.model.calibration import Calibration, load_calibration
from dse.model.cost import HOURS_PER_YEAR, chip_cost, tco_usd_per_hour
from dse.model.heap import keep_heap
from dse.model.kernel import compiled_kernel, kernel_module
from dse.model.perf import HwView
from dse.model.power import chip_power
from dse.model.technology import Technology, default_technology
from dse.workloads.scenarios import Mix, load_mix
from dse.workloads.modelfile import load_model_shape


def design_metrics(arr: DesignArrays, area: AreaBreakdown | None = None
                   ) -> tuple[HwView, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(HwView, design-level metric columns, feasible, reason) of every design of `arr` (`area`: its
    `chip_area`, when the caller has it). A design `arr` flags keeps `arr`'s reason: the area's own call does not word
    the checks it fails (`chip_area`'s word_flagged), its reasons are then those this returns."""
    own = area is None
    area = chip_area(arr, word_flagged=False) if own else area
    cost = chip_cost(arr, area)
    power = chip_power(arr, area)
    hw = HwView.from_arrays(arr, area)
    hw.static_w = np.asarray(power.static_w, float)
    hw.leakage_w = np.asarray(power.leakage_w, float)
    values = {
        "die_area_mm2": area.die_mm2,
        "num_dies": area.num_dies,
        "chip_cost_usd": cost.chip_usd,
        "system_cost_usd": cost.system_usd,
        "tdp_w": power.tdp_w,
        "peak_power_w": power.system_power_w,
        "power_density_w_per_mm2": power.power_density_w_per_mm2,
        "peak_tflops_bf16": arr.peak_tflops["bf16"],
        "mem_bw_tbps": arr.mem_bw_tbps,
        "mem_gb": arr.mem_gb,
        "sram_mb": arr.sram_mb,
        "knee_flop_per_byte": arr.knee_flop_per_byte,
    }
    cols = {name: m.cast(values[name]) for name, m in DESIGN.items()}
    feasible = np.asarray(arr.valid, bool) & np.asarray(area.feasible, bool)
    reason = (area.reason if own else np.where(np.asarray(arr.reason, object) != "", arr.reason, area.reason)
              ).astype(object)
    for part in (cost, power):
        extra_ok = getattr(part, "feasible", None)
        if extra_ok is not None:
            extra_ok = np.asarray(extra_ok, bool)
            fresh = feasible & ~extra_ok
            if np.count_nonzero(fresh):  # (else the reasons stay as they are)
                reason = np.where(fresh, part.reason, reason).astype(object)
            feasible &= extra_ok
    return hw, cols, feasible, reason


_BY_DTYPE: dict[str, tuple[str, ...]] = {}  # the scenario metrics of each dtype, in registry order
for _name, _m in SCENARIO.items():
    _BY_DTYPE[_m.dtype] = _BY_DTYPE.get(_m.dtype, ()) + (_name,)
assert set(_BY_DTYPE) <= {"float", "int", "bool", "str"}
_FLOAT, _INT = _BY_DTYPE.get("float", ()), _BY_DTYPE.get("int", ())
_OTHER = _BY_DTYPE.get("bool", ()) + _BY_DTYPE.get("str", ())
_NUMBERS = _FLOAT + _INT  # the rows of `_scenario_columns`' block: the float metrics, then the int ones
_INT_ROWS = slice(len(_FLOAT), len(_NUMBERS))
_CHIPS_ROW = _NUMBERS.index("chips_used")


# each scenario metric in registry order: (name, 0, j) row j of `_scenario_columns`' float block, (name, 1, j) row j of
# its int rows cast, (name, 2, 0) a bool or str column of its own
_SOURCES = tuple((name, 0, _FLOAT.index(name)) if name in _FLOAT else (name, 1, _INT.index(name)) if name in _INT
                 else (name, 2, 0) for name in SCENARIO)


def _scenario_columns(n: int, metrics: dict[str, np.ndarray] | None = None, idx: np.ndarray | None = None,
                      given: dict[str, np.ndarray] | None = None, block_out: list | None = None
                      ) -> dict[str, np.ndarray]:
    """Every scenario metric as an (n,) column of its dtype, in registry order: `metrics` (a mapping's, each of
    shape (len(idx),)) on rows `idx`, `Metric.empty` elsewhere. The numeric columns are the rows of one float block
    (one allocation instead of one per metric, per scenario and call), written at once (its metrics stacked, a missing
    one as zeros; metric by metric where one is not a column of len(idx): a scalar); the int metrics its last rows
    cast (as a write into an int column casts: truncated). `given`: bool or str columns the caller made whole (taken as
    they are). `block_out`: a list the float block is appended to (rows `_NUMBERS`, the int metrics before the cast)."""
    block = np.zeros((len(_NUMBERS), n))
    if metrics is not None and len(idx):
        zero = np.zeros(len(idx))
        try:
            rows = np.array([metrics.get(name, zero) for name in _NUMBERS], float)
        except (ValueError, TypeError):  # (ragged: a scalar among the columns)
            rows = None
        if rows is not None and rows.shape == (len(_NUMBERS), len(idx)):
            block[:, idx] = rows
        else:
            for j, name in enumerate(_NUMBERS):
                if name in metrics:  # (a metric missing keeps its zeros)
                    block[j, idx] = metrics[name]
    floats, ints = list(block), list(block[_INT_ROWS].astype(np.int64))  # (row views)
    if block_out is not None:
        block_out.append(block)
    out = {}
    for name, kind, j in _SOURCES:
        if kind == 0:
            out[name] = floats[j]
        elif kind == 1:
            out[name] = ints[j]
        elif given is not None and name in given:
            out[name] = given[name]
        else:
            col = out[name] = SCENARIO[name].empty(n)
            if metrics is not None and name in metrics:
                col[idx] = metrics[name]
    return out


_KEYS: dict[str, tuple[str, ...]] = {}  # scenario name → its output columns' names, in registry order


def _scenario_keys(name: str) -> tuple[str, ...]:
    """The output columns of scenario `name`: "<name>.<metric>" per scenario metric of the registry, in its order
    (formatted once per name)."""
    keys = _KEYS.get(name)
    if keys is None:
        if len(_KEYS) > 4096:
            _KEYS.clear()
        keys = _KEYS[name] = tuple(f"{name}.{key}" for key in SCENARIO)
    return keys


def _calibration(cal: Calibration | str | None) -> Calibration:
    return cal if isinstance(cal, Calibration) else load_calibration(cal)


def evaluate(arr: DesignArrays, mix: Mix | str, tech: Technology | None = None,
             cal: Calibration | str | None = None, reference: dict[str, float] | None = None,
             force_tp: int | None = None, force_pp: int | None = None,
             prefill: DesignArrays | None = None,
             deployment: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """All metrics of every design in `arr` on `mix` (a Mix, or a built-in mix name).

    `tech` defaults to the technology `arr` was built with; it prices the TCO and evaluates the
    reference design. `reference` overrides the reference throughput per scenario. `prefill`: one
    prefill-pool design per design (a study's `prefill.*` knobs) for serving scenarios with
    `disaggregation:` (else their `prefill_design`, if any; dse.evaluate.serving.prefill_pool).
    `deployment`: columns of `dse.evaluate.serving.DEPLOYMENT_KNOBS` (a study's `serving.*` knobs).
    """
    keep_heap()  # (once per process: the compiled kernels' per-call work arrays stay in the heap)
    if isinstance(mix, str):
        mix = load_mix(mix)
    cal = _calibration(cal)
    tech = tech or arr.tech
    hw, out, ok, reason = design_metrics(arr)
    n = hw.n
    hw.deployment = {k: np.broadcast_to(np.asarray(v, float), (n,)) for k, v in (deployment or {}).items()}
    ref = reference if reference is not None else _reference(mix, cal, tech)
    log_sum = np.zeros(n)
    weight_sum = 0.0
    usd_mtok = np.zeros(n)
    llm_weight = 0.0
    power_sum = np.zeros(n)
    idx = ok.nonzero()[0]
    sub = hw.take(idx) if len(idx) else None  # the designs every scenario maps
    tail = _tail_kernel()
    if tail is not None:  # (each design's chips and leakage W, as `system_power_w` reads them; out's system cost)
        chips_leak = stack_rows([hw.num_chips, np.zeros(n) if hw.leakage_w is None else hw.leakage_w], n)
        out["system_cost_usd"] = kernel_column(out["system_cost_usd"], n)
    for entry in mix.scenarios:
        sc, w = entry.scenario, float(entry.weight)
        res = clock = None
        fast = tail is not None and getattr(sc, "serving", None) is None  # (the sums in one compiled pass, below)
        if len(idx):
            res, clock = evaluate_capped(lambda h: choose_plan(sc, h, cal, force_tp, force_pp), sub)
            if not fast:  # (else the kernel's)
                res.metrics["power_w"] = system_power_w(res, sub)
        if res is not None and getattr(sc, "serving", None) is not None:
            pool = None
            parr = (prefill if prefill is not None else prefill_arrays(sc, tech)) if sc.serving.disaggregation else None
            if parr is not None:
                phw, pcols, pok, _ = design_metrics(parr)
                pool = prefill_pool(sc, phw, pcols["system_cost_usd"], pok, cal)
                pool = pool.rows(idx if phw.n == n else np.zeros(len(idx), int))
            res.metrics.update(serving_metrics(sc, load_model_shape(sc.model), sc.precision_spec(),
                                               clocked(sub, clock), cal, res, sc.serving, pool,
                                               out["system_cost_usd"][idx], tech))
        feasible, why = np.zeros(n, bool), reason.copy()  # (the scenario's feasible and reason columns)
        if res is not None:
            feasible[idx] = res.feasible
            why[idx] = np.where(res.feasible, "", res.reason)
        rows = [] if fast else None
        cols = _scenario_columns(n, None if res is None else res.metrics, idx, {"feasible": feasible, "reason": why},
                                 rows)
        if fast:  # the system's power (`system_power_w`, into the power_w column) and the sums, in one pass
            llm = sc.kind != "cnn"
            tail.scenario_tail_kernel(cols["feasible"], rows[0][_CHIPS_ROW], cols["energy_j_per_unit"],
                                      cols["throughput"], chips_leak, cols["tokens_per_s"], out["system_cost_usd"],
                                      _tail_scalars(w, ref.get(sc.name, 1.0), llm, tech), cols["power_w"],
                                      cols["usd_per_mtok"], power_sum, usd_mtok, log_sum)
            if llm:
                llm_weight += w
            weight_sum += w
            out.update(zip(_scenario_keys(sc.name), cols.values()))
            continue
        power_sum += w * cols["power_w"]
        # TCO at the power the system draws serving this scenario
        per_hour = np.asarray(tco_usd_per_hour(out["system_cost_usd"], cols["power_w"], tech), float)
        if sc.kind != "cnn":
            tok_per_h = np.maximum(cols["tokens_per_s"], 1e-30) * 3600.0
            cols["usd_per_mtok"] = np.where(cols["feasible"], per_hour / tok_per_h * 1e6, 0.0)
            if getattr(sc, "serving", None) is not None:   # output tokens/h at the largest rate in SLO, per fleet
                slo_tok_h = cols["max_rate_rps"] * sc.serving.output_tokens.mean() * 3600.0
                fleet_h = np.asarray(tco_usd_per_hour(cols["fleet_cost_usd"], cols["fleet_power_w"], tech), float)
                cols["usd_per_mtok_at_slo"] = np.where(cols["feasible"] & (slo_tok_h > 0),
                                                       fleet_h / np.maximum(slo_tok_h, 1e-30) * 1e6, 0.0)
                slo_tok_s = slo_tok_h / 3600.0
                it_kw = np.maximum(cols["fleet_power_w"], 1e-30) / 1e3
                cols["tokens_per_s_per_rack_kw_at_slo"] = np.where(cols["feasible"], slo_tok_s / it_kw, 0.0)
                cols["tokens_per_s_per_mw_at_slo"] = np.where(cols["feasible"],
                                                              slo_tok_s / (it_kw / 1e3 * tech.tco.pue), 0.0)
            usd_mtok += w * cols["usd_per_mtok"]
            llm_weight += w
        ratio = np.where(cols["feasible"], cols["throughput"] / max(ref.get(sc.name, 1.0), 1e-30), 1.0)
        log_sum += w * np.log(np.maximum(ratio, 1e-300))
        weight_sum += w
        out.update(zip(_scenario_keys(sc.name), cols.values()))
    all_ok = ok.copy()
    mix_reason = reason.copy()
    for entry in mix.scenarios:
        f = out[f"{entry.scenario.name}.feasible"]
        fresh = all_ok & ~f
        mix_reason[fresh] = [f"{entry.scenario.name}: {r}" for r in out[f"{entry.scenario.name}.reason"][fresh]]
        all_ok &= f
    out["mix.throughput"] = np.where(all_ok, np.exp(log_sum / max(weight_sum, 1e-30)), 0.0)
    out["tco_usd_per_mtok"] = np.where(all_ok & (llm_weight > 0), usd_mtok / max(llm_weight, 1e-30), 0.0)
    out["power_w"] = np.where(all_ok, power_sum / max(weight_sum, 1e-30), 0.0)
    out["feasible"] = all_ok
    out["reason"] = np.where(all_ok, "", mix_reason).astype(object)
    return out


def _tail_kernel():
    """dse.model.design_kernel where `evaluate` adds up a scenario's power, cost per token and throughput ratio in
    its `scenario_tail_kernel`: the compiled kernels on and numpy's float64 `log` libm's (the kernel's log then gives
    numpy's bits); else None (numpy, the same values)."""
    if compiled_kernel() is None:
        return None
    dk = kernel_module("design_kernel")
    return dk if dk.numpy_log_is_libm() else None


_TAIL_SCALARS: dict[tuple, np.ndarray] = {}  # (weight, reference, llm, id(tco)) → (the tco, `scenario_tail_kernel`'s sc)


def _tail_scalars(w: float, ref: float, llm: bool, tech: Technology) -> np.ndarray:
    """`design_kernel.TAIL` of a scenario: its weight, `max(ref, 1e-30)` (the divisor of its throughput ratio), whether
    it is priced per token, and `tco_usd_per_hour`'s constants of `tech` as it computes them (Python floats); once
    per scenario weight, reference and (frozen) TCO table."""
    t = (tech or default_technology()).tco
    key = (w, ref, llm, id(t))
    hit = _TAIL_SCALARS.get(key)
    if hit is None or hit[0] is not t:
        if len(_TAIL_SCALARS) > 256:
            _TAIL_SCALARS.clear()
        hit = _TAIL_SCALARS[key] = (t, np.array([w, max(ref, 1e-30), float(llm), t.lifetime_years * HOURS_PER_YEAR,
                                                 t.dc_capex_usd_per_w, t.dc_lifetime_years * HOURS_PER_YEAR, t.pue,
                                                 t.usd_per_kwh], float))
    return hit[1]


_REFERENCE_CACHE: dict[tuple[str, str, str, str], dict[str, float]] = {}
_JSON: dict[tuple[int, ...], tuple] = {}  # id → (frozen model, its JSON): the cache key without dumping per call


def _json(model) -> str:
    """`model.model_dump_json()` of a frozen pydantic model, dumped once per object."""
    return by_identity(_JSON, model, lambda m: m.model_dump_json())


def reference_throughputs(mix: Mix, cal: Calibration, tech: Technology | None = None) -> dict[str, float]:
    """Throughput of the mix's reference design (default H100-SXM) per scenario on `tech` (default:
    the built-in technology); 1.0 where it cannot run."""
    return dict(_reference(mix, cal, tech or default_technology()))


_REFERENCE_IDS: dict[tuple[int, ...], tuple] = {}  # ids of (mix, calibration, technology) → (them, their throughputs)


def _reference(mix: Mix, cal: Calibration, tech: Technology) -> dict[str, float]:
    """`reference_throughputs`' cached dict itself (read only), found by the (frozen) objects' identities first."""
    return by_identities(_REFERENCE_IDS, (mix, cal, tech), _reference_values)


def _reference_values(mix: Mix, cal: Calibration, tech: Technology) -> dict[str, float]:
    """`reference_throughputs` by the JSON of the mix, calibration and technology (equal objects share it)."""
    ref_name = getattr(mix, "reference_design", None) or "H100-SXM"
    key = (_json(mix), _json(cal), ref_name, _json(tech))
    if key not in _REFERENCE_CACHE:
        arr = DesignArrays.from_designs([load_catalog_design(ref_name)], tech)
        hw, _, _, _ = design_metrics(arr)
        vals = {}
        for entry in mix.scenarios:
            res, _ = evaluate_capped(lambda h, sc=entry.scenario: choose_plan(sc, h, cal), hw)
            thr = float(res.metrics["throughput"][0]) if res.feasible[0] else 0.0
            vals[entry.scenario.name] = thr if thr > 0 else 1.0
        _REFERENCE_CACHE[key] = vals
    return _REFERENCE_CACHE[key]


def evaluate_design(design, mix: Mix | str, *, software: str | None = None, tech: Technology | None = None,
                    force_tp: int | None = None, force_pp: int | None = None) -> dict:
    """Scalar convenience: the metrics of one `Design` as plain Python values."""
    tech = tech or default_technology()
    cols = evaluate(DesignArrays.from_designs([design], tech), mix, tech, cal=software,
                    force_tp=force_tp, force_pp=force_pp)
    return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in cols.items()}
