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
                    "usd_per_mtok", "chips_used", "tp", "pp", "dp", "ep", "batch", "weights")
DESIGN_METRICS = ("die_area_mm2", "num_dies", "chip_cost_usd", "system_cost_usd", "tdp_w", "power_w",
                  "power_density_w_per_mm2",
                  "peak_tflops_bf16", "mem_bw_tbps", "mem_gb", "sram_mb", "knee_flop_per_byte")
MIX_METRICS = ("mix.throughput", "tco_usd_per_mtok", "feasible", "reason")
STRING_METRICS = ("reason", "weights")


class Builders:
    """Design-independent operator tables, cached per (scenario shape, tp, batch): the mapping's inputs."""

    @staticmethod
    @lru_cache(maxsize=4096)
    def llm(shape, phase, batch, seq_len, kv_len, tp, prec, ep=1):
        from dse.workloads.transformer import build_llm_step

        return build_llm_step(shape, phase, batch=batch, seq_len=seq_len, kv_len=kv_len, tp=tp, ep=ep, prec=prec)

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
    for part in (cost, power):
        extra_ok = getattr(part, "feasible", None)
        if extra_ok is not None:
            reason = np.where(feasible & ~np.asarray(extra_ok, bool), part.reason, reason).astype(object)
            feasible &= np.asarray(extra_ok, bool)
    cols["power_density_w_per_mm2"] = np.asarray(power.power_density_w_per_mm2, float)
    return hw, cols, feasible, reason


def evaluate_scenario(scenario, hw: HwView, cal: Calibration, force_tp: int | None = None,
                      force_pp: int | None = None) -> MappingResult:
    """Best mapping of one scenario on every design of `hw` (optionally with tp / pp forced)."""
    from dse.workloads.shapes import load_model_shape

    shape = load_model_shape(scenario.model)
    prec = scenario.precision_spec() if hasattr(scenario, "precision_spec") else scenario.precision
    if scenario.kind == "cnn":
        return map_cnn(scenario, shape, prec, hw, cal, Builders)
    return map_llm(scenario, shape, prec, hw, cal, Builders, force_tp=force_tp, force_pp=force_pp)


def _tco_usd_per_hour(system_usd, power_w, tech=None):
    from dse.model.cost import tco_usd_per_hour

    return tco_usd_per_hour(system_usd, power_w, tech)


def evaluate(arr, mix, tech=None, cal: Calibration | str | None = None,
             reference: dict[str, float] | None = None, force_tp: int | None = None,
             force_pp: int | None = None) -> dict[str, np.ndarray]:
    """All metrics of every design in `arr` (a DesignArrays) on `mix` (a Mix, or a built-in mix name)."""
    from dse.workloads.scenarios import load_mix

    if isinstance(mix, str):
        mix = load_mix(mix)
    if cal is None or isinstance(cal, str):
        cal = load_calibration(cal)
    hw, out, ok, reason = _hw_and_design_metrics(arr)
    n = hw.n
    per_hour = np.asarray(_tco_usd_per_hour(out["system_cost_usd"], out["power_w"], getattr(arr, "tech", tech)), float)
    ref = reference if reference is not None else reference_throughputs(mix, cal)
    log_sum = np.zeros(n)
    weight_sum = 0.0
    usd_mtok = np.zeros(n)
    llm_weight = 0.0
    for entry in mix.scenarios:
        sc, w = entry.scenario, float(entry.weight)
        idx = np.flatnonzero(ok)
        res = evaluate_scenario(sc, hw.take(idx), cal, force_tp, force_pp) if len(idx) else None
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


def evaluate_design(design, mix, *, software: str | None = None, tech=None, force_tp: int | None = None,
                    force_pp: int | None = None) -> dict:
    """Scalar convenience: the metrics of one `Design` as plain Python values."""
    from dse.model.arrays import DesignArrays
    from dse.model.technology import default_technology

    tech = tech or default_technology()
    cols = evaluate(DesignArrays.from_designs([design], tech), mix, tech, cal=software,
                    force_tp=force_tp, force_pp=force_pp)
    return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in cols.items()}


def _phase_steps(scenario, shape, prec, tp: int, pp: int, batch: int, ep: int = 1):
    """The (phase, Step) pairs evaluated by the mapping for a chosen tp / pp / ep / batch."""
    if scenario.kind == "cnn":
        return [("inference", Builders.cnn(shape, batch, prec))]
    b = max(batch // pp, 1)
    prompt, out_len = int(scenario.prompt_len), int(scenario.output_len)
    return [("prefill", Builders.llm(shape, "prefill", 1, prompt, prompt, tp, prec, ep)),
            ("decode", Builders.llm(shape, "decode", b, 1, Builders.mean_kv(prompt, out_len), tp, prec, ep))]


def operator_breakdown(design, scenario, *, software: str | None = None, phase: str | None = None,
                       tech=None) -> dict:
    """Per-operator roofline of one design on its best mapping of `scenario` (for `dse roofline` and
    the dashboards): FLOPs, bytes, intensity, attainable TFLOP/s, bound and time components per operator."""
    from dse.errors import DseUserError
    from dse.model.arrays import DesignArrays
    from dse.model.mapping import residency, stage_weight_bytes
    from dse.model.perf import BOUNDS, op_times
    from dse.model.technology import default_technology
    from dse.workloads.shapes import load_model_shape

    tech = tech or default_technology()
    cal = load_calibration(software)
    arr = DesignArrays.from_designs([design], tech)
    hw, _, ok, reason = _hw_and_design_metrics(arr)
    if not ok[0]:
        raise DseUserError(f"design is infeasible: {reason[0]}")
    res = evaluate_scenario(scenario, hw, cal)
    if not res.feasible[0]:
        raise DseUserError(f"{scenario.name} cannot run on this design: {res.reason[0]}")
    tp, pp, batch, ep = (int(res.metrics[k][0]) for k in ("tp", "pp", "batch", "ep"))
    shape = load_model_shape(scenario.model)
    prec = scenario.precision_spec() if hasattr(scenario, "precision_spec") else scenario.precision
    steps = _phase_steps(scenario, shape, prec, tp, pp, batch, ep)
    rows, totals = [], {}
    for ph, step in steps:
        if phase and ph != phase:
            continue
        if scenario.kind == "cnn":
            w, kv = step.weight_bytes_per_chip, 0.0
        else:
            w = stage_weight_bytes(steps[-1][1], pp)
            kv = Builders.kv_bytes(shape, batch, scenario.prompt_len + scenario.output_len, tp, prec) \
                * (-(-shape.layers // pp)) / shape.layers / ep
        act = max(s.act_bytes_per_chip for _, s in steps)
        wres, kres, _, resident = residency(w, kv, act, hw.sram_bytes, hw.mem_bytes)
        t = op_times(step.ops, hw, cal, wres, kres, resident)
        count = np.asarray(step.ops.count, float)
        time = t.total[0] * count
        total = float(time.sum())
        totals[ph] = total * 1e3
        bounds = t.bound()[0]
        for i in range(len(step.ops)):
            flops = float(step.ops.flops[i] * count[i])
            off = float(t.offchip_bytes[0, i] * count[i])
            on = float(t.sram_bytes[0, i] * count[i])
            moved = off if off > 0 else on
            comp = {c: float(getattr(t, c)[0, i] * count[i]) for c in ("compute", "memory", "sram", "comm", "overhead")}
            b = BOUNDS[bounds[i]]
            if comp["overhead"] > max(comp["compute"], comp["memory"], comp["sram"], comp["comm"]):
                b = "overhead"
            rows.append({
                "phase": ph, "name": str(step.ops.name[i]), "kind": str(step.ops.kind[i]),
                "count": float(count[i]), "flops": flops, "bytes": moved, "offchip_bytes": off, "sram_bytes": on,
                "intensity_flop_per_byte": flops / moved if moved > 0 else 0.0,
                "attainable_tflops": flops / time[i] / 1e12 if time[i] > 0 else 0.0,
                "time_s": float(time[i]), "share": float(time[i] / total) if total > 0 else 0.0, "bound": b,
                **{f"{c}_s": v for c, v in comp.items()},
            })
    prec_name = steps[0][1].ops.compute_precision[0] if len(steps[0][1].ops) else "bf16"
    peak = float(hw.peak_flops.get(str(prec_name), hw.peak_flops["bf16"])[0])
    if peak <= 0:  # an unsupported precision runs at the bf16 rate (dequantized), as in perf.op_times
        peak, prec_name = float(hw.peak_flops["bf16"][0]), "bf16"
    return {
        "design": design.name, "scenario": scenario.name,
        "mapping": f"tp{tp} pp{pp}{f' ep{ep}' if ep > 1 else ''} dp{int(res.metrics['dp'][0])} batch {batch}",
        "ep": ep,
        "tp": tp, "pp": pp, "batch": batch, "compute_precision": str(prec_name),
        "peak_tflops": peak / 1e12,
        "mem_bw_tbps": float(hw.mem_bw[0] / 1e12), "sram_bw_tbps": float(hw.sram_bw[0] / 1e12),
        "knee_flop_per_byte": peak / float(hw.mem_bw[0]) if hw.mem_bw[0] > 0 else 0.0,
        "sram_knee_flop_per_byte": peak / float(hw.sram_bw[0]) if hw.sram_bw[0] > 0 else 0.0,
        "weights": str(res.metrics["weights"][0]),
        "phase_time_ms": totals, "operators": rows,
    }
