"""The operator breakdown: per-operator roofline of one design on the plan its mapping scored.

For `dse roofline` and the dashboards: FLOPs, bytes, intensity, attainable TFLOP/s, bound and time
components per operator of each phase.
"""

from __future__ import annotations

import numpy as np

from dse.errors import DseUserError
from dse.evaluate.mapping import residency, timed_residency
from dse.evaluate.plans import Plan
from dse.evaluate.serving import choose_plan
from dse.evaluate.steps import Builders, cnn_footprint, llm_footprint, llm_steps
from dse.evaluate.table import design_metrics
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.perf import BOUNDS, TIME_FIELDS, op_times
from dse.model.technology import default_technology
from dse.workloads.cnn import pipeline_depth
from dse.workloads.modelfile import load_model_shape
from dse.workloads.step import Step


def plan_steps(scenario, shape, prec, plan: Plan) -> tuple[list[tuple[str, Step]], tuple[float, float, float]]:
    """The (phase, Step) pairs of `plan` and its per-chip footprint (weights, KV, activations), built
    by the same functions the mapping scored it with."""
    if scenario.kind == "cnn":
        step = Builders.cnn(shape, plan.batch, prec)
        return [("inference", step)], cnn_footprint(step)
    steps = llm_steps(scenario, shape, prec, plan.tp, plan.ep, plan.micro_batch)
    return [("prefill", steps.prefill), ("decode", steps.decode)], llm_footprint(scenario, shape, prec, steps, plan)


def operator_breakdown(design, scenario, *, software: str | None = None, phase: str | None = None,
                       tech=None) -> dict:
    """Per-operator roofline of one design on its best mapping of `scenario` (for `dse roofline` and
    the dashboards): FLOPs, bytes, intensity, attainable TFLOP/s, bound and time components per operator."""
    tech = tech or default_technology()
    cal = load_calibration(software)
    arr = DesignArrays.from_designs([design], tech)
    hw, _, ok, reason = design_metrics(arr)
    if not ok[0]:
        raise DseUserError(f"design is infeasible: {reason[0]}")
    res = choose_plan(scenario, hw, cal)
    if not res.feasible[0]:
        raise DseUserError(f"{scenario.name} cannot run on this design: {res.reason[0]}")
    plan = res.plan(0)
    shape = load_model_shape(scenario.model)
    prec = scenario.precision_spec() if hasattr(scenario, "precision_spec") else scenario.precision
    steps, (w, kv, act) = plan_steps(scenario, shape, prec, plan)
    # a layer-pipelined chip (chip.layer_pipeline) is timed as the mapping times it (map_cnn): its period is
    # one image's operators, and the plan's batch takes period × (batch + depth)
    pipelined = scenario.kind == "cnn" and hw.layer_pipeline is not None and bool(hw.layer_pipeline[0])
    if pipelined:
        one = Builders.cnn(shape, 1, prec)
        steps, (w, kv, act) = [("inference", one)], cnn_footprint(one)
    wres, kres, _, resident = residency(w, kv, act, hw.sram_bytes, hw.mem_bytes, hw.sram_cache)
    wres, kres, resident = timed_residency(scenario.kind, wres, kres, resident)
    rows, totals = [], {}
    for ph, step in steps:
        if phase and ph != phase:
            continue
        t = op_times(step.ops, hw, cal.for_phase(ph), wres, kres, resident)
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
            comp = {c: float(np.broadcast_to(getattr(t, c), t.total.shape)[0, i] * count[i])
                    for c in TIME_FIELDS.values()}
            b = BOUNDS[bounds[i]]  # OpTimes.bound: the operator's own overhead, not its share of the step's
            rows.append({
                "phase": ph, "name": str(step.ops.name[i]), "kind": str(step.ops.kind[i]),
                "count": float(count[i]), "flops": flops, "bytes": moved, "offchip_bytes": off, "sram_bytes": on,
                "intensity_flop_per_byte": flops / moved if moved > 0 else 0.0,
                "attainable_tflops": flops / time[i] / 1e12 if time[i] > 0 else 0.0,
                "time_s": float(time[i]), "share": float(time[i] / total) if total > 0 else 0.0, "bound": b,
                **{f"{c}_s": v for c, v in comp.items()},
            })
    pipeline = None
    if pipelined and "inference" in totals:
        # the period and the step as the mapping timed them (its step kernel; the table above is the per-operator
        # roofline of one image): latency = period × (batch + depth) + one inference launch
        depth = pipeline_depth(shape)
        step_ms = float(res.metrics["latency_ms"][0]) - cal.for_phase("inference").step_overhead_us * 1e-3
        pipeline = {"period_ms": step_ms / (plan.batch + depth), "depth": depth, "batch": plan.batch}
        totals["inference"] = step_ms
    prec_name = steps[0][1].ops.compute_precision[0] if len(steps[0][1].ops) else "bf16"
    peak = float(hw.peak_flops.get(str(prec_name), hw.peak_flops["bf16"])[0])
    if peak <= 0:  # an unsupported precision runs at the bf16 rate (dequantized), as in perf.op_times
        peak, prec_name = float(hw.peak_flops["bf16"][0]), "bf16"
    return {
        "design": design.name, "scenario": scenario.name, "mapping": plan.label(),
        "tp": plan.tp, "pp": plan.pp, "ep": plan.ep, "dp": plan.dp, "batch": plan.batch,
        "micro_batch": plan.micro_batch, "micro_batches": plan.micro_batches,
        "compute_precision": str(prec_name), "peak_tflops": peak / 1e12,
        "mem_bw_tbps": float(hw.mem_bw[0] / 1e12), "sram_bw_tbps": float(hw.sram_bw[0] / 1e12),
        "knee_flop_per_byte": peak / float(hw.mem_bw[0]) if hw.mem_bw[0] > 0 else 0.0,
        "sram_knee_flop_per_byte": peak / float(hw.sram_bw[0]) if hw.sram_bw[0] > 0 else 0.0,
        "weights": str(res.metrics["weights"][0]),
        "phase_time_ms": totals, "operators": rows, "layer_pipeline": pipeline,
    }
