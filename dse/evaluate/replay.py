"""Replay of what evaluate scores for a serving scenario: the engine of each design's chosen deployment,
for the simulator (tests, `dse validate`) and the dashboard's serving view to run again.

It repeats evaluate's steps for one scenario (design checks, the plan under the power cap, the clocked
hardware, the prefill pool) and applies the deployment `serving_metrics` chose — the prefix-cache tier,
context-parallel groups and draft length — to the replica engine, so that the analytical model on the
replayed engine gives the metrics evaluate stored.
"""

from __future__ import annotations

import numpy as np

from dse.evaluate.serving import (
    EngineCoeffs, chosen_engine, choose_plan, plan_engines, prefill_arrays, prefill_pool, serving_metrics)
from dse.evaluate.table import design_metrics
from dse.evaluate.throttle import clocked, evaluate_capped, system_power_w
from dse.model.arrays import DesignArrays
from dse.model.calibration import Calibration, load_calibration
from dse.workloads.modelfile import load_model_shape


def scenario_engines(arr: DesignArrays, scenario, cal: Calibration | None = None,
                     prefill: DesignArrays | None = None, deployment: dict[str, np.ndarray] | None = None
                     ) -> tuple[EngineCoeffs | None, np.ndarray, np.ndarray]:
    """(engine, design indices, engines in the fleet) of a serving scenario on the designs of `arr` that
    can run it: each design's replica engine with the prefix-cache tier, context parallelism (cp
    replicas as one engine, so dp // cp engines) and speculative draft length evaluate chose, at the
    clock its power cap allows. The co-located fleet of these engines is what evaluate scored unless it
    chose a disaggregated fleet (`prefill_replicas` > 0): then it is the co-located alternative.
    `prefill`, `deployment`: as for `dse.evaluate.evaluate` (a study's `prefill.*` and `serving.*` knobs)."""
    cal = cal or load_calibration()
    tech = arr.tech
    hw, cols, ok, _ = design_metrics(arr)
    hw.deployment = {k: np.broadcast_to(np.asarray(v, float), (hw.n,)) for k, v in (deployment or {}).items()}
    idx = np.flatnonzero(ok)
    w = scenario.serving
    if not idx.size:
        return None, np.zeros(0, int), np.zeros(0, int)
    res, clock = evaluate_capped(lambda h: choose_plan(scenario, h, cal), hw.take(idx))
    if not res.feasible.any():
        return None, np.zeros(0, int), np.zeros(0, int)
    res.metrics["power_w"] = system_power_w(res, hw.take(idx))
    sub = clocked(hw.take(idx), clock)
    pool = None
    parr = (prefill if prefill is not None else prefill_arrays(scenario, tech)) if w.disaggregation else None
    if parr is not None:
        phw, pcols, pok, _ = design_metrics(parr)
        pool = prefill_pool(scenario, phw, pcols["system_cost_usd"], pok, cal)
        pool = pool.rows(idx if phw.n == hw.n else np.zeros(len(idx), int))
    shape, prec = load_model_shape(scenario.model), scenario.precision_spec()
    chosen = serving_metrics(scenario, shape, prec, sub, cal, res, w, pool, cols["system_cost_usd"][idx], tech)
    engine, rows, dp, draft = plan_engines(shape, prec, sub, cal, res, w, draft=w.speculation is not None)
    pick = {k: np.asarray(chosen[k])[rows].astype(np.int64) for k in ("kv_offload", "cp", "spec_k")}
    return (chosen_engine(engine, w, draft, **pick), idx[rows], np.maximum(dp // pick["cp"], 1))
