"""Evaluate many designs on a workload mix: area, cost, power and the best mapping per scenario.

`evaluate(arr, mix)` returns flat metric columns (numpy arrays of shape (n,)) named as in
docs/ARCHITECTURE.md: design-level (`system_cost_usd`, ...), per scenario (`<scenario>.tpot_ms`, ...)
and per mix (`mix.throughput`, `tco_usd_per_mtok`, `feasible`, `reason`). No NaN or inf: an
infeasible design has zeros in its performance columns and a reason string.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dse.model.calibration import Calibration, load_calibration
from dse.model.mapping import MappingResult, map_cnn, map_llm
from dse.model.perf import HwView

SCENARIO_METRICS = ("feasible", "reason", "throughput", "ttft_ms", "tpot_ms", "tokens_per_s",
                    "tokens_per_s_per_user", "images_per_s", "latency_ms", "energy_j_per_unit",
                    "usd_per_mtok", "chips_used", "tp", "pp", "dp", "batch", "weights")
DESIGN_METRICS = ("die_area_mm2", "num_dies", "chip_cost_usd", "system_cost_usd", "tdp_w", "power_w",
                  "peak_tflops_bf16", "mem_bw_tbps", "mem_gb", "sram_mb", "knee_flop_per_byte")
MIX_METRICS = ("mix.throughput", "tco_usd_per_mtok", "feasible", "reason")
STRING_METRICS = ("reason", "weights")


class Builders:
    """Design-independent operator tables, cached per (scenario shape, tp, batch): the mapping's inputs."""

    @staticmethod
    @lru_cache(maxsize=4096)
    def llm(shape, phase, batch, seq_len, kv_len, tp, prec):
        from dse.workloads.transformer import build_llm_step

        return build_llm_step(shape, phase, batch=batch, seq_len=seq_len, kv_len=kv_len, tp=tp, ep=1, prec=prec)

    @staticmethod
    @lru_cache(maxsize=1024)
    def cnn(shape, batch, prec):
        from dse.workloads.cnn import build_cnn_step

        return build_cnn_step(shape, batch=batch, tp=1, prec=prec)

    @staticmethod
    def tp_ok(shape, tp) -> bool:
        return tp <= shape.heads

    @staticmethod
    def mean_kv(prompt, out_len) -> int:
        from dse.workloads.transformer import mean_decode_kv_len

        return int(round(mean_decode_kv_len(prompt, out_len)))

    @staticmethod
    def kv_bytes(shape, batch, context, tp, prec) -> float:
        kv_heads_per_chip = max(shape.kv_heads / tp, 1.0)
        return batch * context * shape.layers * 2 * kv_heads_per_chip * shape.head_dim * prec.kv_bytes

    @staticmethod
    def hidden(shape) -> int:
        return int(shape.hidden)

    @staticmethod
    def act_bytes(prec) -> float:
        return float(prec.act_bytes)


def _hw_and_design_metrics(arr) -> tuple[HwView, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    from dse.model.area import chip_area
    from dse.model.cost import chip_cost
    from dse.model.power import chip_power

    area = chip_area(arr)
    cost = chip_cost(arr, area)
    power = chip_power(arr, area)
    hw = HwView.from_arrays(arr)
    if getattr(power, "static_w", None) is not None:
        hw.static_w = np.asarray(power.static_w, float)
    cols = {
        "die_area_mm2": np.asarray(area.die_mm2, float),
        "num_dies": np.asarray(area.num_dies, float),
        "chip_cost_usd": np.asarray(cost.chip_usd, float),
        "system_cost_usd": np.asarray(cost.system_usd, float),
        "tdp_w": np.asarray(power.tdp_w, float),
        "power_w": np.asarray(power.system_power_w, float),
        "peak_tflops_bf16": np.asarray(arr.peak_tflops["bf16"], float),
        "mem_bw_tbps": np.asarray(arr.mem_bw_tbps, float),
        "mem_gb": np.asarray(arr.mem_gb, float),
        "sram_mb": np.asarray(arr.sram_mb, float),
        "knee_flop_per_byte": np.asarray(arr.knee_flop_per_byte, float),
    }
    feasible = np.asarray(arr.valid, bool) & np.asarray(area.feasible, bool)
    reason = np.where(np.asarray(arr.reason, object) != "", arr.reason, area.reason).astype(object)
    extra_ok = getattr(cost, "feasible", None)
    if extra_ok is not None:
        reason = np.where(feasible & ~np.asarray(extra_ok, bool), cost.reason, reason).astype(object)
        feasible &= np.asarray(extra_ok, bool)
    return hw, cols, feasible, reason


def evaluate_scenario(scenario, hw: HwView, cal: Calibration) -> MappingResult:
    """Best mapping of one scenario on every design of `hw`."""
    from dse.workloads.shapes import load_model_shape

    shape = load_model_shape(scenario.model)
    prec = scenario.precision_spec() if hasattr(scenario, "precision_spec") else scenario.precision
    if scenario.kind == "cnn":
        return map_cnn(scenario, shape, prec, hw, cal, Builders)
    return map_llm(scenario, shape, prec, hw, cal, Builders)


def _tco_usd_per_hour(system_usd, power_w):
    from dse.model.cost import tco_usd_per_hour

    return tco_usd_per_hour(system_usd, power_w)


def evaluate(arr, mix, tech=None, cal: Calibration | str | None = None,
             reference: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """All metrics of every design in `arr` (a DesignArrays) on `mix` (a Mix, or a built-in mix name)."""
    from dse.workloads.scenarios import load_mix

    if isinstance(mix, str):
        mix = load_mix(mix)
    if cal is None or isinstance(cal, str):
        cal = load_calibration(cal)
    hw, out, ok, reason = _hw_and_design_metrics(arr)
    n = hw.n
    per_hour = np.asarray(_tco_usd_per_hour(out["system_cost_usd"], out["power_w"]), float)
    ref = reference if reference is not None else reference_throughputs(mix, cal)
    log_sum = np.zeros(n)
    weight_sum = 0.0
    usd_mtok = np.zeros(n)
    llm_weight = 0.0
    for entry in mix.scenarios:
        sc, w = entry.scenario, float(entry.weight)
        idx = np.flatnonzero(ok)
        res = evaluate_scenario(sc, hw.take(idx), cal) if len(idx) else None
        cols = {}
        for key in SCENARIO_METRICS:
            cols[key] = np.full(n, "", object) if key in STRING_METRICS else np.zeros(n)
        cols["feasible"] = np.zeros(n, bool)
        cols["reason"][:] = reason
        if res is not None:
            for key, val in res.metrics.items():
                if key in cols:
                    cols[key][idx] = val
            cols["feasible"][idx] = res.feasible
            cols["reason"][idx] = np.where(res.feasible, "", res.reason)
        thr = cols["throughput"]
        if sc.kind != "cnn":
            tok_per_h = np.maximum(cols["tokens_per_s"], 1e-30) * 3600.0
            cols["usd_per_mtok"] = np.where(cols["feasible"], per_hour / tok_per_h * 1e6, 0.0)
            usd_mtok += w * cols["usd_per_mtok"]
            llm_weight += w
        ratio = np.where(cols["feasible"], thr / max(ref.get(sc.name, 1.0), 1e-30), 1.0)
        log_sum += w * np.log(np.maximum(ratio, 1e-300))
        weight_sum += w
        for key, val in cols.items():
            out[f"{sc.name}.{key}"] = val
    all_ok = ok.copy()
    mix_reason = reason.copy()
    for entry in mix.scenarios:
        f = out[f"{entry.scenario.name}.feasible"]
        fresh = all_ok & ~f
        mix_reason[fresh] = [f"{entry.scenario.name}: {r}" for r in out[f"{entry.scenario.name}.reason"][fresh]]
        all_ok &= f
    out["mix.throughput"] = np.where(all_ok, np.exp(log_sum / max(weight_sum, 1e-30)), 0.0)
    out["tco_usd_per_mtok"] = np.where(all_ok & (llm_weight > 0), usd_mtok / max(llm_weight, 1e-30), 0.0)
    out["feasible"] = all_ok
    out["reason"] = np.where(all_ok, "", mix_reason).astype(object)
    return out


_REFERENCE_CACHE: dict[tuple[str, str, str], dict[str, float]] = {}


def reference_throughputs(mix, cal: Calibration) -> dict[str, float]:
    """Throughput of the mix's reference design (default H100-SXM) per scenario; 1.0 where it cannot run."""
    from dse.catalog import load_catalog_design
    from dse.model.arrays import DesignArrays
    from dse.model.technology import default_technology

    ref_name = getattr(mix, "reference_design", None) or "H100-SXM"
    key = (mix.model_dump_json(), cal.model_dump_json(), ref_name)
    if key not in _REFERENCE_CACHE:
        arr = DesignArrays.from_designs([load_catalog_design(ref_name)], default_technology())
        hw, _, _, _ = _hw_and_design_metrics(arr)
        vals = {}
        for entry in mix.scenarios:
            res = evaluate_scenario(entry.scenario, hw, cal)
            thr = float(res.metrics["throughput"][0]) if res.feasible[0] else 0.0
            vals[entry.scenario.name] = thr if thr > 0 else 1.0
        _REFERENCE_CACHE[key] = vals
    return dict(_REFERENCE_CACHE[key])


def metric_names(mix) -> list[str]:
    """Every metric column `evaluate` returns for `mix` (what objectives and constraints may name)."""
    from dse.workloads.scenarios import load_mix

    if isinstance(mix, str):
        mix = load_mix(mix)
    names = list(DESIGN_METRICS)
    for entry in mix.scenarios:
        names += [f"{entry.scenario.name}.{k}" for k in SCENARIO_METRICS]
    names += [m for m in MIX_METRICS if m not in names]
    return names
