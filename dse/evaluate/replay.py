"""Replay of what evaluate scores for a serving scenario: the engines of each design's chosen deployment,
for the simulator (tests, `dse validate`) and the dashboard's serving view to run again.

It repeats evaluate's steps for one scenario (design checks, the plan under the power cap, the clocked
hardware, the prefill pool, the study's `serving.*` deployment knobs) and applies the deployment
`serving_metrics` chose — the prefix-cache tier, context-parallel groups, draft length and the
prefill/decode split (of the design's own replicas, or a pool of its own prefill design) — so that the
analytical model on the replayed fleet gives the metrics evaluate stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.evaluate.serving import (
    EngineCoeffs, _either, _rows, _where, chosen_engine, choose_plan, plan_engines, prefill_arrays, prefill_pool,
    prefix_cache_tier, serving_metrics)
from dse.evaluate.table import design_metrics
from dse.evaluate.throttle import clocked, evaluate_capped, system_power_w
from dse.model.arrays import DesignArrays
from dse.model.calibration import Calibration, load_calibration
from dse.serving import analytic as an
from dse.serving.engine import DisaggFleet
from dse.workloads.modelfile import load_model_shape
from dse.workloads.serving import ServingWorkload


@dataclass(frozen=True)
class ReplayedFleet:
    """The serving fleet evaluate chose, one row per design that can run the scenario (arrays (k,)).

    engine: the co-located engine, or the decode engine of a split (prefix-cache tier, cp, draft);
    idx: the design each row is (index into the replayed DesignArrays); engines: co-located engines
    in the fleet (dp // cp); prefill: one prefill replica's engine (the design's own replica in the
    prefix-cache tier, or its prefill pool design's replica; a placeholder where co-located);
    prefill_replicas: 0 = co-located; decode_replicas: the split's decode replicas (= engines when
    co-located); replica_chips / prefill_replica_chips: chips of one decode / prefill replica;
    pool_design: the prefill replicas are of the pool's own chip design (not the design's replicas);
    dp: the design's replicas (a split of its own replicas shares them; a pool adds to them)."""

    engine: EngineCoeffs
    idx: np.ndarray
    engines: np.ndarray
    prefill: EngineCoeffs
    prefill_replicas: np.ndarray
    decode_replicas: np.ndarray
    replica_chips: np.ndarray
    prefill_replica_chips: np.ndarray
    pool_design: np.ndarray
    dp: np.ndarray
    link_gbps: float              # the workload's KV link (0 without `disaggregation`: no split to build)
    link_latency_s: float

    @property
    def disaggregated(self) -> np.ndarray:
        return self.prefill_replicas > 0

    def fleet(self, prefill_replicas=None, decode_replicas=None) -> DisaggFleet:
        """The disaggregated fleet of these engines (the chosen split unless replicas are given)."""
        p = self.prefill_replicas if prefill_replicas is None else np.asarray(prefill_replicas)
        d = self.decode_replicas if decode_replicas is None else np.asarray(decode_replicas)
        return DisaggFleet(self.prefill, self.engine, np.maximum(p, 1), np.maximum(d, 1), self.link_gbps,
                           self.link_latency_s)

    def model(self, w: ServingWorkload, rate_rps):
        """The latency model of the chosen deployment per row at a fleet arrival rate (as evaluate built it)."""
        if not self.disaggregated.any():
            return an.colocated(self.engine, w, rate_rps, self.engines)
        return _either(self.disaggregated, an.disaggregated(self.fleet(), w, rate_rps),
                       an.colocated(self.engine, w, rate_rps, self.engines))


def replay(arr: DesignArrays, scenario, cal: Calibration | None = None, prefill: DesignArrays | None = None,
           deployment: dict[str, np.ndarray] | None = None) -> ReplayedFleet | None:
    """The fleet evaluate scores for a serving scenario on the designs of `arr` that can run it, at the
    clock its power cap allows; None when none can. `prefill`, `deployment`: as for
    `dse.evaluate.evaluate` (a study's `prefill.*` designs, one row or one per design, and `serving.*`
    knob columns; NaN = the mapping's choice)."""
    cal = cal or load_calibration()
    tech = arr.tech
    hw, cols, ok, _ = design_metrics(arr)
    hw.deployment = {k: np.broadcast_to(np.asarray(v, float), (hw.n,)) for k, v in (deployment or {}).items()}
    idx = np.flatnonzero(ok)
    w = scenario.serving
    if not idx.size:
        return None
    res, clock = evaluate_capped(lambda h: choose_plan(scenario, h, cal), hw.take(idx))
    if not res.feasible.any():
        return None
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
    dec = chosen_engine(engine, w, draft, **pick)
    p = np.asarray(chosen.get("prefill_replicas", np.zeros(sub.n)))[rows].astype(np.int64)
    on_pool = np.asarray(chosen.get("prefill_chips", np.zeros(sub.n)))[rows] > 0
    host = pick["kv_offload"] == 1
    own = prefix_cache_tier(engine, w, host=False)           # a split of the design's own replicas
    if w.kv_offload is not None:
        own = _where(host, prefix_cache_tier(engine, w, host=True), own)
    replica = res.replica_chips[rows]
    pre, pre_chips = own, replica.copy()
    if pool is not None:
        pe = _rows(pool.engine, rows)
        pe = _where(host, prefix_cache_tier(pe, w, host=True), prefix_cache_tier(pe, w, host=False))
        pre = _where(on_pool, pe, own)
        pre_chips = np.where(on_pool, pool.replica_chips[rows], replica)
    engines = np.maximum(dp // pick["cp"], 1)
    decode = np.where(p > 0, np.where(on_pool, dp, np.maximum(dp - p, 1)), engines)
    link = w.disaggregation
    return ReplayedFleet(dec, idx[rows], engines, pre, p, decode, replica, pre_chips, on_pool & (p > 0), dp,
                         link.link_gbps if link else 0.0, link.link_latency_ms / 1e3 if link else 0.0)


def scenario_engines(arr: DesignArrays, scenario, cal: Calibration | None = None,
                     prefill: DesignArrays | None = None, deployment: dict[str, np.ndarray] | None = None
                     ) -> tuple[EngineCoeffs | None, np.ndarray, np.ndarray]:
    """(engine, design indices, engines in the fleet) of `replay`: each design's co-located engine
    (prefix-cache tier, cp groups as one engine, draft length) and its dp // cp engines — what evaluate
    scored unless it chose a split (`replay(...).model` gives the chosen fleet either way)."""
    r = replay(arr, scenario, cal, prefill, deployment)
    if r is None:
        return None, np.zeros(0, int), np.zeros(0, int)
    return r.engine, r.idx, r.engines
