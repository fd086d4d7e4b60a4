"""Request-level serving metrics of a scenario that carries a `serving:` workload.

For each design's chosen plan (tp, pp, ep, dp) the operator model times four probe steps on one
replica — a decode step at batch 1 and at batch B with the workload's mean context, the same at 4×
the context, and a prefill chunk of C tokens — and `dse.serving.engine.fit_from_probes` turns them
into the continuous-batching engine's iteration-time coefficients. A pipelined replica is one engine
whose step is the whole model plus (pp − 1) hops (its micro-batches are not overlapped: a
conservative latency view). KV capacity: the replica's off-chip memory (or SRAM without it) left
after the weights, over the KV bytes of one token. `dse.serving.analytic` then gives the metrics
for dp replicas behind a random router.
"""

from __future__ import annotations

import numpy as np

from dse.evaluate.mapping import ComboCache, MappingResult
from dse.evaluate.metrics import SCENARIO
from dse.evaluate.steps import PREFILL_CHUNK_TOKENS, Builders, stage_weight_bytes
from dse.model.calibration import Calibration
from dse.model.perf import HwView, collective_time
from dse.serving.analytic import colocated_summary
from dse.serving.engine import EngineCoeffs, fit_from_probes
from dse.workloads.serving import ServingWorkload

# decode batch of the large probes: the engine's max batch (the plan's batch), at least PROBE_MIN_BATCH,
# so the linear step is the operator model's secant between batch 1 and the batch the engine runs
# at under load (a MoE step reads more experts as the batch grows and saturates once all are read:
# a secant to a small batch would extrapolate that growth)
PROBE_MIN_BATCH = 2


def fit_engine(shape, prec, hw: HwView, cal: Calibration, tp: int, pp: int, ep: int, batch: int, context: int,
               combo: np.ndarray | None = None, chunk: int = PREFILL_CHUNK_TOKENS) -> EngineCoeffs:
    """The continuous-batching engine of one replica (tp × pp × ep chips) on every design of `hw`:
    four probe steps timed by the operator model (module docstring), fitted by `fit_from_probes`.

    combo: residency per design (0 streamed, 1 weights SRAM-resident; default streamed);
    batch: the engine's max running sequences; context: the mean KV length of a decoding sequence."""
    n = hw.n
    combo = np.zeros(n, int) if combo is None else np.asarray(combo, int)
    b = max(PROBE_MIN_BATCH, batch)
    probes = np.array([[1, 1, context], [b, b, b * context], [0, chunk, chunk], [b, b, 4 * b * context]], float)
    steps = [Builders.llm(shape, "decode", 1, 1, context, tp, prec, ep),
             Builders.llm(shape, "decode", b, 1, context, tp, prec, ep),
             Builders.llm(shape, "prefill", 1, chunk, chunk, tp, prec, ep),
             Builders.llm(shape, "decode", b, 1, 4 * context, tp, prec, ep)]
    times = []
    for step, tokens in zip(steps, probes[:, 1]):
        t = ComboCache(step.ops, hw, cal).get(combo, np.arange(n)).time_s
        hop = collective_time("sendrecv", np.array([tokens * Builders.hidden(shape) * Builders.act_bytes(prec)]),
                              np.array([2.0]), hw, cal)[:, 0]
        times.append(t + (pp - 1) * hop)
    kv_tok = Builders.kv_bytes(shape, 1, 1, tp, prec) * (-(-shape.layers // pp)) / shape.layers / ep
    room = np.where(hw.mem_bytes > 0, hw.mem_bytes, hw.sram_bytes) - stage_weight_bytes(steps[1], pp)
    kv_cap = np.maximum(np.floor(room / max(kv_tok, 1e-30)), 1).astype(np.int64)
    return fit_from_probes(probes, np.array(times), max_batch=max(batch, 1), chunk_tokens=chunk,
                           kv_capacity_tokens=kv_cap, kv_bytes_per_token=kv_tok * tp * pp * ep)


def mean_context(w: ServingWorkload) -> int:
    """Mean KV length of a decoding sequence: mean prompt plus half the mean output."""
    pv, pp_ = w.prompt_tokens.support()
    ov, po = w.output_tokens.support()
    return int(round(pv @ pp_ + (ov @ po) / 2))


def _concat(engines: list[EngineCoeffs]) -> EngineCoeffs:
    return EngineCoeffs(**{f: np.concatenate([getattr(e, f) for e in engines]) for f in EngineCoeffs.__dataclass_fields__})


def serving_metrics(scenario, shape, prec, hw: HwView, cal: Calibration, res: MappingResult,
                    w: ServingWorkload) -> dict[str, np.ndarray]:
    """The registry's serving columns (n,) — those of `dse.serving.analytic.summary` that are
    per-scenario metrics — for the designs of `hw` with the plans of `res`; 0 where infeasible, and
    latencies 0 where the design is saturated at the offered rate (goodput 0 there too).
    Engines are fitted per plan group, then the analytical model runs once over all designs."""
    n = hw.n
    out: dict[str, np.ndarray] = {}
    if not res.feasible.any():
        return out
    context = mean_context(w)
    plans = res.plans
    keys = np.stack([plans["tp"], plans["pp"], plans["ep"], plans["micro_batch"] * plans["micro_batches"]], axis=1)
    combo = (np.asarray(res.metrics.get("weights", np.full(n, ""))) == "sram-resident").astype(int)
    engines, order = [], []
    for key in np.unique(keys[res.feasible], axis=0):
        tp, pp, ep, batch = (int(k) for k in key)
        idx = np.flatnonzero(res.feasible & np.all(keys == key, axis=1))
        engines.append(fit_engine(shape, prec, hw.take(idx), cal, tp, pp, ep, batch, context, combo[idx]))
        order.append(idx)
    idx = np.concatenate(order)
    s = colocated_summary(_concat(engines), w, replicas=np.maximum(plans["dp"][idx], 1))
    for name, v in s.items():
        if name in SCENARIO and SCENARIO[name].numeric:
            v = np.asarray(v, float)
            out.setdefault(name, np.zeros(n))[idx] = np.where(np.isfinite(v), v, 0.0)
    return out
