"""Request-level serving metrics of a scenario that carries a `serving:` workload.

For each design's chosen plan (tp, pp, ep, dp) the operator model times four probe steps on one
replica — a decode step at batch 1 and at batch B with the workload's mean context, the same at 4×
the context, and a prefill chunk of C tokens — and `dse.serving.engine.fit_from_probes` turns them
into the continuous-batching engine's iteration-time coefficients. A pipelined replica is one engine
whose step is the whole model plus (pp − 1) hops (its micro-batches are not overlapped: a
conservative latency view). KV capacity: the share of the replica's off-chip memory left after the
weights that the software stack's runtime gives its KV cache (`Calibration.kv_room_bytes`; SRAM without
off-chip memory: all of it), over the KV bytes of one token; the stack's admission policy
(`kv_admission`) goes with it. `dse.serving.analytic` then gives the metrics
for dp replicas behind a random router.

The plan itself is chosen on the serving objective (`choose_plan`): the static mapping's best plan per
tp (at its preferred pipeline depth and at pp = 1) are the candidates, each is scored by its largest
arrival rate meeting the SLOs over the deployments the workload allows (`SCREEN_STEPS` halvings), all
designs at once, and each design keeps the candidate with the highest rate (ties: the static choice).
A prefill pool of its own chip design takes the candidate that prefills the most requests per chip
within the TTFT limits (`choose_prefill_plan`): each pool its own parallel plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import islice

import numpy as np

from dse.designs import load_design
from dse.evaluate.deployment import DEPLOYMENT_KNOBS
from dse.evaluate.mapping import ComboCache, MappingResult, evaluate_scenario
from dse.evaluate.metrics import SCENARIO
from dse.evaluate.plans import llm_ladders
from dse.evaluate.steps import PREFILL_CHUNK_TOKENS, Builders, stage_weight_bytes
from dse.evaluate.throttle import clocked, evaluate_capped, system_power_w
from dse.model.arrays import DesignArrays
from dse.model.cost import tco_usd_per_hour
from dse.model.calibration import Calibration
from dse.model.perf import HwView, collective_time
from dse.model.technology import Technology
from dse.units import MEMORY_GB_BYTES
from dse.serving.analytic import colocated, disaggregated, max_rate_rps, saturation_rate_rps, slo_met, summary
from dse.serving.engine import DisaggFleet, EngineCoeffs, fit_from_probes, with_context_parallel, with_speculation
from dse.workloads.modelfile import load_model_shape
from dse.workloads.serving import KvOffload, ServingWorkload

# decode batch of the large probes: the engine's max batch (the plan's batch), at least PROBE_MIN_BATCH,
# so the linear step is the operator model's secant between batch 1 and the batch the engine runs
# at under load (a MoE step reads more experts as the batch grows and saturates once all are read:
# a secant to a small batch would extrapolate that growth)
PROBE_MIN_BATCH = 2
# Operators whose work a prompt's tokens spread over the replica's expert-parallel group when they are
# dispatched (the routed experts); every other operator of a prefill chunk runs on the one attention-DP
# rank that holds the prompt's KV (`fit_engine`'s t_prefill_extra_s). Names of dse.workloads.transformer's
# MoE block (tests/test_serving_evaluate.py checks they exist).
EXPERT_COMPUTE_OPS = ("experts_up", "experts_act", "experts_down")
# halvings of the rate bracket when candidate plans are ranked by their largest rate in SLO: a relative
# precision of 2^-10 ≈ 0.1 % (plans closer than that rank by bracket order, i.e. nearly at random)
SCREEN_STEPS = 10


def fit_engine(shape, prec, hw: HwView, cal: Calibration, tp: int, pp: int, ep: int, batch: int, context: int,
               combo: np.ndarray | None = None, chunk: int = PREFILL_CHUNK_TOKENS,
               offload: KvOffload | None = None) -> EngineCoeffs:
    """The continuous-batching engine of one replica (tp × pp × ep chips) on every design of `hw`:
    four probe steps timed by the operator model (module docstring), fitted by `fit_from_probes`; with
    attention data parallelism (ep > 1) a prefill token's extra cost on the rank that holds its prompt.

    combo: residency per design (0 streamed, 1 weights SRAM-resident; default streamed);
    batch: the engine's max running sequences; context: the mean KV length of a decoding sequence;
    offload: a host tier for the prefix cache (each of the replica's chips brings its host memory and link)."""
    n = hw.n
    combo = np.zeros(n, int) if combo is None else np.asarray(combo, int)
    b = max(PROBE_MIN_BATCH, batch)
    probes = np.array([[1, 1, context], [b, b, b * context], [0, chunk, chunk], [b, b, 4 * b * context]], float)
    steps = [Builders.llm(shape, "decode", 1, 1, context, tp, prec, ep),
             Builders.llm(shape, "decode", b, 1, context, tp, prec, ep),
             Builders.llm(shape, "prefill", 1, chunk, chunk, tp, prec, ep),
             Builders.llm(shape, "decode", b, 1, 4 * context, tp, prec, ep)]
    def timed(ops):
        return ComboCache(ops, hw, cal).get(combo, np.arange(n)).time_s

    times = []
    for step, tokens in zip(steps, probes[:, 1]):
        hop = collective_time("sendrecv", np.array([tokens * Builders.hidden(shape) * Builders.hop_bytes(prec)]),
                              np.array([2.0]), hw, cal)[:, 0]
        times.append(timed(step.ops) + (pp - 1) * hop)
    # attention data parallel (ep > 1): the operator model spreads one prompt's chunk over the ep ranks;
    # it runs on one rank, whose rank-local operators take as long as if every rank had a chunk (the
    # step of ep chunks), while its tokens' routed experts are spread over the group (the one-chunk step)
    extra = {}
    if ep > 1:
        lone, full = steps[2].ops, Builders.llm(shape, "prefill", ep, chunk, chunk, tp, prec, ep).ops
        routed = np.isin(lone.name, EXPERT_COMPUTE_OPS), np.isin(full.name, EXPERT_COMPUTE_OPS)
        t_lone = timed(full.select(~routed[1])) + timed(lone.select(routed[0]))
        extra = {"t_prefill_extra_s": np.maximum(t_lone - timed(lone), 0.0) / chunk}
    kv_tok = Builders.kv_bytes(shape, 1, 1, tp, prec) * (-(-shape.layers // pp)) / shape.layers / ep
    # the runtime's share of the memory left after the weights (cal.kv_room_bytes); a chip without
    # off-chip memory holds its KV in the SRAM its compiled program leaves free
    w_stage = stage_weight_bytes(steps[1], pp)
    room = np.where(hw.mem_bytes > 0, cal.kv_room_bytes(hw.mem_bytes, w_stage), hw.sram_bytes - w_stage)
    kv_cap = np.maximum(np.floor(room / max(kv_tok, 1e-30)), 1).astype(np.int64)
    kv_replica, chips = kv_tok * tp * pp * ep, tp * pp * ep
    # context parallelism on these links: a chunk's KV (per chip) to the next rank; hop latency per layer
    ring_bw, ring_lat = collective_time("sendrecv", np.array([kv_tok * chunk]), np.array([2.0]), hw, cal, split=True)
    cp_costs = {"t_cp_token_s": ring_bw[:, 0] / chunk, "t_cp_hop_s": ring_lat[:, 0] * shape.layers}
    host = {} if offload is None else {
        "t_per_cached_token_s": kv_replica / (offload.link_gbps_per_chip * 1e9 * chips),
        "kv_host_capacity_tokens": int(offload.host_gb_per_chip * MEMORY_GB_BYTES * chips // max(kv_replica, 1e-30))}
    return fit_from_probes(probes, np.array(times), max_batch=max(batch, 1), chunk_tokens=chunk,
                           kv_capacity_tokens=kv_cap, kv_bytes_per_token=kv_replica,
                           kv_reserve=int(cal.kv_admission == "reserve"), **host, **cp_costs, **extra)


def mean_context(w: ServingWorkload) -> int:
    """Mean KV length of a decoding sequence: mean prompt plus half the mean output."""
    pv, pp_ = w.prompt_tokens.support()
    ov, po = w.output_tokens.support()
    return int(round(pv @ pp_ + (ov @ po) / 2))


def _concat(engines: list[EngineCoeffs]) -> EngineCoeffs:
    return EngineCoeffs(**{f: np.concatenate([getattr(e, f) for e in engines]) for f in EngineCoeffs.__dataclass_fields__})


def plan_engines(shape, prec, hw: HwView, cal: Calibration, res: MappingResult, w: ServingWorkload,
                 draft: bool = False) -> tuple[EngineCoeffs, np.ndarray, np.ndarray, EngineCoeffs | None]:
    """(engine, design indices, dp replicas, draft engine) of the feasible designs of `res`: one
    replica's engine per design, fitted per plan group (tp, pp, ep, probe batch, chunk: the plan's batch (probed
    at the power of two at or below it, the engine admitting the batch itself) and
    `PREFILL_CHUNK_TOKENS` unless a study sets `DEPLOYMENT_KNOBS` on `hw`) and concatenated group by
    group (entry j is design idx[j]); with `draft`, also the engine of a one-layer copy of the model (an MTP draft head) on the
    same chips, else None."""
    n = hw.n
    context = mean_context(w)
    plans = res.plans
    batch = plans["micro_batch"] * plans["micro_batches"]
    knobs = {k.name: np.asarray(hw.deployment[k.name], float) if k.name in hw.deployment else np.full(n, np.nan)
             for k in DEPLOYMENT_KNOBS}       # a study's deployment knobs (NaN: the mapping's choice)
    mb, ck = knobs["serving.max_batch"], knobs["serving.chunk_tokens"]
    # a mapped batch between two knots (filled to what the memory holds) is probed at the knot below it: the
    # engine's linear step extends over at most 2x, as the mapping's chord does, and designs share few probes
    knot = np.where(batch > 0, 1 << (np.log2(np.maximum(batch, 1)).astype(np.int64)), batch)
    probe = np.where(np.isfinite(mb), mb, knot).astype(np.int64)
    batch = np.where(np.isfinite(mb), mb, batch).astype(np.int64)
    chunks = np.where(np.isfinite(ck), ck, PREFILL_CHUNK_TOKENS).astype(np.int64)
    keys = np.stack([plans["tp"], plans["pp"], plans["ep"], probe, chunks], axis=1)
    combo = (np.asarray(res.metrics.get("weights", np.full(n, ""))) == "sram-resident").astype(int)
    one = shape.model_copy(update={"layers": 1, "dense_layers": 0}) if draft else None
    engines, drafts, order = [], [], []
    for key in np.unique(keys[res.feasible], axis=0):
        tp, pp, ep, b, chunk = (int(k) for k in key)
        idx = np.flatnonzero(res.feasible & np.all(keys == key, axis=1))
        sub = hw.take(idx)
        engines.append(replace(fit_engine(shape, prec, sub, cal, tp, pp, ep, b, context, combo[idx], chunk=chunk,
                                          offload=w.kv_offload), max_batch=np.maximum(batch[idx], 1)))
        if draft:
            drafts.append(replace(fit_engine(one, prec, sub, cal, tp, 1, ep, b, context, combo[idx], chunk=chunk),
                                  max_batch=np.maximum(batch[idx], 1)))
        order.append(idx)
    idx = np.concatenate(order)
    return (_concat(engines), idx, np.maximum(np.asarray(plans["dp"])[idx], 1),
            _concat(drafts) if draft else None)


@dataclass(frozen=True)
class PrefillPool:
    """A prefill pool of its own chip design, one row per decode design (arrays (n,)): one prefill
    replica's engine, whether the design can run the scenario at all, and a replica's chips, cost (its
    share of its system's cost) and power (its share of its system's power serving the scenario)."""

    engine: EngineCoeffs
    feasible: np.ndarray
    replica_chips: np.ndarray
    replica_cost_usd: np.ndarray
    replica_power_w: np.ndarray

    def rows(self, idx: np.ndarray) -> "PrefillPool":
        """The pool of rows `idx` (e.g. one fixed prefill design broadcast to every decode design)."""
        idx = np.asarray(idx, int)
        return PrefillPool(_rows(self.engine, idx), self.feasible[idx], self.replica_chips[idx],
                           self.replica_cost_usd[idx], self.replica_power_w[idx])


def prefill_arrays(scenario, tech: Technology) -> DesignArrays | None:
    """The fixed prefill design a scenario's `disaggregation.prefill_design` names (one row), or None."""
    w = getattr(scenario, "serving", None)
    name = None if w is None or w.disaggregation is None else w.disaggregation.prefill_design
    if name is None:
        return None
    key = (name, tech.model_dump_json())
    if key not in _PREFILL_DESIGNS:
        _PREFILL_DESIGNS[key] = DesignArrays.from_designs([load_design(name)], tech)
    return _PREFILL_DESIGNS[key]


_PREFILL_DESIGNS: dict[tuple[str, str], DesignArrays] = {}


def prefill_pool(scenario, hw: HwView, cost_usd: np.ndarray, feasible: np.ndarray, cal: Calibration) -> PrefillPool:
    """The prefill pool each design of `hw` (the prefill chips' systems) gives `scenario`: the plan that
    prefills the most requests per chip (`choose_prefill_plan`, its power cap enforced), one replica of
    that plan as the pool's engine (`plan_engines`); a replica's cost and power are its chips' share of
    the system's. Rows that cannot run the scenario are marked infeasible (their engine is a placeholder)."""
    w = scenario.serving
    sc = scenario.model_copy(update={"serving": w.model_copy(update={"disaggregation": None})})
    n = hw.n
    ok = np.flatnonzero(np.asarray(feasible, bool))
    fit = np.zeros(n, bool)
    chips, cost, power = np.ones(n, np.int64), np.zeros(n), np.zeros(n)
    engine = EngineCoeffs(1.0, 0.0, 0.0, 0.0, 1, 1, 1)
    engine = _rows(engine, np.zeros(n, int))
    if ok.size:
        sub = hw.take(ok)
        res, clock = evaluate_capped(lambda h: choose_prefill_plan(sc, h, cal), sub)
        watts = system_power_w(res, sub)
        eng, rows, _, _ = plan_engines(load_model_shape(sc.model), sc.precision_spec(), clocked(sub, clock), cal,
                                       res, w)
        at = ok[rows]
        fit[at] = True
        per = res.replica_chips[rows]
        share = per / np.asarray(sub.num_chips, float)[rows]
        chips[at] = per
        cost[at] = np.asarray(cost_usd, float)[at] * share
        power[at] = watts[rows] * share
        engine = EngineCoeffs(**{f: _put(getattr(engine, f), at, getattr(eng, f)) for f in EngineCoeffs.__dataclass_fields__})
    return PrefillPool(engine, fit, chips, cost, power)


def _put(a: np.ndarray, at: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = a.astype(np.result_type(a, v))
    out[at] = v
    return out


def candidate_forcings(scenario, shape, hw: HwView, force_tp: int | None = None,
                       force_pp: int | None = None) -> list[tuple[int, int | None]]:
    """(tp, pp) forcings whose static-best plans are the serving candidates: every tp of the scenario's
    plan ladders on these systems, with the pipeline depth the static mapping prefers (None) and with
    pp = 1 — a continuous-batching engine does not overlap micro-batches as a static batch does, so a
    pipeline the static model likes may serve worse than more replicas."""
    max_chips = int(getattr(scenario, "max_chips", None) or 1 << 30)
    chips = np.unique(np.minimum(hw.num_chips, max_chips))
    tps = sorted({lad.tp for lad in llm_ladders(scenario, shape, chips, force_tp, force_pp)})
    pps = [force_pp] if force_pp else [None, 1]
    return [(tp, pp) for tp in tps for pp in pps]


def _rows(e: EngineCoeffs, rows: np.ndarray) -> EngineCoeffs:
    return EngineCoeffs(**{f: getattr(e, f)[rows] for f in EngineCoeffs.__dataclass_fields__})


def _deployment(engine: EngineCoeffs, dp: np.ndarray, w: ServingWorkload, draft: EngineCoeffs | None, d: int):
    """build(rate) of the d-th deployment `deployments` yields for these engines."""
    return next(islice(deployments(engine, dp, w, draft), d, None))[1]


def screen_rates(engine: EngineCoeffs, dp: np.ndarray, w: ServingWorkload, group: np.ndarray, n: int,
                 draft: EngineCoeffs | None = None, steps: int = SCREEN_STEPS) -> np.ndarray:
    """Largest fleet rate meeting every SLO of each row over the deployments the workload allows
    (`deployments`), each by bisection from its saturation rate down to 2^-steps of that rate. A row
    whose bracket falls below the best rate already found in its group (the other plans and
    deployments of its design) stops there — it cannot win — and keeps its lower bound (branch and
    bound: only the likely winners are refined)."""
    rows = np.arange(engine.n)
    best_row = np.zeros(engine.n)
    for d in range(sum(1 for _ in deployments(engine, dp, w, draft))):
        def build(r, act=rows, d=d):
            return _deployment(_rows(engine, act), dp[act], w, None if draft is None else _rows(draft, act), d)(r)
        hi = saturation_rate_rps(build, engine.n, steps=steps)
        tol = hi * 2.0 ** -steps
        lo = np.zeros(engine.n)
        # a row that misses the SLOs at the resolution's smallest rate is done: its rate is 0
        hi = np.where(slo_met(build(tol), w), hi, tol)
        for _ in range(steps):
            best = np.zeros(n)
            np.maximum.at(best, group, np.maximum(lo, best_row))
            act = np.flatnonzero((hi > best[group]) & (hi - lo > tol))
            if not act.size:
                break
            mid = 0.5 * (lo[act] + hi[act])
            ok = slo_met(build(mid, act), w)
            lo[act] = np.where(ok, mid, lo[act])
            hi[act] = np.where(ok, hi[act], mid)
        best_row = np.maximum(best_row, lo)
    return best_row


_KEY_FIELDS = ("tp", "pp", "ep", "micro_batch", "micro_batches", "dp")


def choose_plan(scenario, hw: HwView, cal: Calibration, force_tp: int | None = None,
                force_pp: int | None = None) -> MappingResult:
    """The plan per design a scenario runs: the static mapping's best (`evaluate_scenario`) or, for an
    LLM scenario with a `serving:` workload, the candidate (`candidate_forcings`) with the largest
    arrival rate meeting the serving SLOs (module docstring); its static metrics come along."""
    def score(engine, dp, w, idx, n, draft, chips):
        return screen_rates(engine, dp, w, idx, n, draft)
    return _choose(scenario, hw, cal, score, force_tp, force_pp)


def choose_prefill_plan(scenario, hw: HwView, cal: Calibration) -> MappingResult:
    """The plan per design of a prefill pool: among the same candidates as `choose_plan`, the one whose
    replica, prefilling only (no decode, TTFT limits only), serves the largest arrival rate per chip —
    a pool's cost is its chips', and a phase of its own may want another parallelism than co-location
    (e.g. tensor-parallel attention for a lone prompt where co-location batches decode over attention-DP
    ranks). Decode is left to the decode pool (its engines at a vanishing load here)."""
    def score(engine, dp, w, idx, n, draft, chips):
        wt = w.model_copy(update={"tpot_ms": {}})
        # the KV link only delays decode (TPOT), which is not scored here: any value would do
        fleet = DisaggFleet(engine, engine, 1, UNBOUND_ENGINES, 1e9, 0.0)
        rate = max_rate_rps(lambda r: disaggregated(fleet, wt, r), wt, engine.n, steps=SCREEN_STEPS)
        return rate / np.maximum(chips, 1)
    return _choose(scenario, hw, cal, score)


# engines of a pool that never binds when the other pool is scored alone (`choose_prefill_plan`, the
# serving regime of dse validate): a million engines see a vanishing load (no physical meaning)
UNBOUND_ENGINES = 10 ** 6


def _choose(scenario, hw: HwView, cal: Calibration, score, force_tp: int | None = None,
            force_pp: int | None = None) -> MappingResult:
    """The candidate plan per design with the highest `score(engine, dp, w, design idx, n, draft, replica
    chips)` (rows: one replica engine per live candidate and design); ties and non-serving scenarios: the
    static mapping's choice."""
    base = evaluate_scenario(scenario, hw, cal, force_tp, force_pp)
    w = getattr(scenario, "serving", None)
    if w is None or scenario.kind == "cnn" or not base.feasible.any():
        return base
    shape, prec = load_model_shape(scenario.model), scenario.precision_spec()
    cands = [base] + [evaluate_scenario(scenario, hw, cal, tp, pp)
                      for tp, pp in candidate_forcings(scenario, shape, hw, force_tp, force_pp)]
    keys = np.stack([np.stack([c.plans[f] for f in _KEY_FIELDS], axis=1) for c in cands])   # (C, n, F)
    live = np.stack([c.feasible & base.feasible for c in cands])
    for c in range(1, len(cands)):      # a plan an earlier candidate already offers is not scored again
        live[c] &= ~(np.all(keys[:c] == keys[c][None], axis=2) & live[:c]).any(axis=0)
    spec = w.speculation is not None
    parts = [(c,) + plan_engines(shape, prec, hw, cal, MappingResult(live[c], res.reason, res.metrics, res.plans),
                                 w, draft=spec) for c, res in enumerate(cands) if live[c].any()]
    engine = _concat([p[1] for p in parts])
    idx = np.concatenate([p[2] for p in parts])
    dp = np.concatenate([p[3] for p in parts])
    cid = np.concatenate([np.full(len(p[2]), p[0]) for p in parts])
    draft = _concat([p[4] for p in parts]) if spec else None
    chips = np.array([int(cands[c].replica_chips[i]) for c, i in zip(cid, idx)], dtype=np.int64)
    rate = score(engine, dp, w, idx, hw.n, draft, chips)
    scores = np.full(live.shape, -np.inf)
    scores[cid, idx] = rate
    pick = np.argmax(scores, axis=0)     # first maximum: the static choice unless another serves more
    n = hw.n

    def take(arrays):
        return np.stack(arrays)[pick, np.arange(n)]
    return MappingResult(base.feasible, base.reason,
                         {k: take([c.metrics[k] for c in cands]) for k in base.metrics},
                         {k: take([c.plans[k] for c in cands]) for k in base.plans})


def own_split(share: float, dp: np.ndarray) -> np.ndarray:
    """Prefill replicas of a split of a design's own dp replicas at a prefill share: round(share·dp),
    at least 1 and leaving at least 1 to decode (dp − p)."""
    return np.clip(np.rint(share * dp), 1, np.maximum(dp - 1, 1)).astype(np.int64)


def pool_split(share: float, dp: np.ndarray, replica_chips: np.ndarray, pool_replica_chips: np.ndarray) -> np.ndarray:
    """Replicas of a prefill pool design prefilling for a design's dp decoding replicas of `replica_chips`
    chips each, at a prefill share of the fleet's chips: round(share / (1 − share) · dp · replica_chips /
    pool_replica_chips), at least 1. Chips, not replicas: when the pool's best plan per chip is a near tie of
    a wide and a narrow replica (tp8 / tp4), the narrow one gives twice the replicas, the same silicon and
    nearly the same pool, not half of it (a cliff at a near tie otherwise)."""
    chips = share / (1.0 - share) * np.asarray(dp) * np.asarray(replica_chips)
    return np.maximum(np.rint(chips / np.maximum(np.asarray(pool_replica_chips), 1)), 1).astype(np.int64)


def deployments(engine: EngineCoeffs, dp: np.ndarray, w: ServingWorkload, draft: EngineCoeffs | None = None,
                pool: PrefillPool | None = None, replica_chips: np.ndarray | None = None):
    """Yield (choice, build) for every deployment the workload lets the mapping try: co-location and
    each prefill share of the dp replicas (designs with dp < 2 stay co-located: their option repeats
    co-location), each without and with every speculative draft length, each with the prefix cache
    in device memory and — with `kv_offload` — in host memory (`prefix_cache_tier`), and — with
    `context_parallel` — co-located groups of cp replicas as one engine (`with_context_parallel`;
    designs whose dp is not a multiple of cp repeat co-location). choice: the registry columns that
    name the deployment (prefill_replicas (n,), spec_k, kv_offload, cp, prefill_chips) and what a separate
    prefill pool adds to the fleet (pool_cost_usd, pool_power_w); build(fleet rate) → latency model,
    for `dse.serving.analytic.summary`. With `pool` (rows aligned with `engine`), also each share as a
    fleet of the design's dp replicas (of `replica_chips` chips each) decoding and `pool_split` replicas of
    the pool's design prefilling, share / (1 − share) of the decoding chips (rows whose pool design cannot
    run the scenario repeat co-location)."""
    ks = [0] + (list(w.speculation.k) if w.speculation is not None and draft is not None else [])
    shares = list(w.disaggregation.prefill_shares) if w.disaggregation is not None else []
    n = engine.n
    tiers = [prefix_cache_tier(engine, w, host=False)] + ([prefix_cache_tier(engine, w, host=True)]
                                                          if w.kv_offload is not None else [])
    cps = list(w.context_parallel.cp) if w.context_parallel is not None else []
    for off, eng in enumerate(tiers):
        for k in ks:
            def spec(e, k=k):
                return e if k == 0 else with_speculation(
                    e, k, w.speculation.acceptance, draft.t_fixed_s,
                    draft.t_per_seq_s + draft.t_per_token_s + draft.t_per_kv_token_s * mean_context(w))
            dec = spec(eng)
            choice = {"prefill_replicas": np.zeros(n, np.int64), "spec_k": np.full(n, k),
                      "kv_offload": np.full(n, off), "cp": np.ones(n, np.int64),
                      "prefill_chips": np.zeros(n, np.int64), "pool_cost_usd": np.zeros(n), "pool_power_w": np.zeros(n)}
            yield choice, (lambda r, dec=dec: colocated(dec, w, r, dp))
            for cp in cps:     # groups of cp replicas as one context-parallel engine (co-located)
                ok = (dp >= cp) & (dp % cp == 0)
                grouped = spec(with_context_parallel(eng, cp))
                yield (choice | {"cp": np.where(ok, cp, 1)},
                       (lambda r, g=grouped, ok=ok, cp=cp, dec=dec: _either(
                           ok, colocated(g, w, r, np.maximum(dp // cp, 1)), colocated(dec, w, r, dp))))
            for f in shares:
                p = own_split(f, dp)
                fleet = DisaggFleet(eng, dec, p, np.maximum(dp - p, 1), w.disaggregation.link_gbps,
                                    w.disaggregation.link_latency_ms / 1e3)
                split = dp >= 2
                yield (choice | {"prefill_replicas": np.where(split, p, 0)},
                       (lambda r, fleet=fleet, dec=dec, split=split: _either(split, disaggregated(fleet, w, r),
                                                                          colocated(dec, w, r, dp))))
            if pool is None:
                continue
            pre = prefix_cache_tier(pool.engine, w, host=bool(off))
            for f in shares:    # the design's replicas decode; a pool of the prefill design prefills
                p = pool_split(f, dp, replica_chips, pool.replica_chips)
                fleet = DisaggFleet(pre, dec, p, dp, w.disaggregation.link_gbps, w.disaggregation.link_latency_ms / 1e3)
                on = pool.feasible
                yield (choice | {"prefill_replicas": np.where(on, p, 0), "prefill_chips": np.where(on, p * pool.replica_chips, 0),
                                 "pool_cost_usd": np.where(on, p * pool.replica_cost_usd, 0.0),
                                 "pool_power_w": np.where(on, p * pool.replica_power_w, 0.0)},
                       (lambda r, fleet=fleet, dec=dec, on=on: _either(on, disaggregated(fleet, w, r),
                                                                    colocated(dec, w, r, dp))))


def chosen_engine(engine: EngineCoeffs, w: ServingWorkload, draft: EngineCoeffs | None, kv_offload: np.ndarray,
                  cp: np.ndarray, spec_k: np.ndarray) -> EngineCoeffs:
    """The co-located engine of a chosen deployment per row, built as `deployments` builds it: the prefix
    cache in its tier (`kv_offload` 1 = host), cp replicas as one context-parallel engine, then the draft
    length `spec_k` (with the `draft` engine's costs)."""
    e = prefix_cache_tier(engine, w, host=False)
    if w.kv_offload is not None:
        e = _where(np.asarray(kv_offload) == 1, prefix_cache_tier(engine, w, host=True), e)
    cp = np.asarray(cp, np.int64)
    if (cp > 1).any():
        e = _where(cp > 1, with_context_parallel(e, np.maximum(cp, 1)), e)
    k = np.asarray(spec_k, np.int64)
    if draft is not None and (k > 0).any():
        e = _where(k > 0, with_speculation(e, k, w.speculation.acceptance, draft.t_fixed_s,
                                           draft.t_per_seq_s + draft.t_per_token_s
                                           + draft.t_per_kv_token_s * mean_context(w)), e)
    return e


def _where(mask: np.ndarray, a: EngineCoeffs, b: EngineCoeffs) -> EngineCoeffs:
    return EngineCoeffs(**{f: np.where(mask, getattr(a, f), getattr(b, f)) for f in EngineCoeffs.__dataclass_fields__})


def prefix_cache_tier(engine: EngineCoeffs, w: ServingWorkload, host: bool) -> EngineCoeffs:
    """The engine with the workload's prefix cache in device memory (its `prefix_cache_tokens` taken
    from the KV room; hits load nothing) or, with `host`, in host memory (the KV room intact; each
    hit brings its KV over the host link at the `t_per_cached_token_s` `fit_engine` set; where the
    host tier cannot hold the cache the KV room is 1 token: that deployment never serves)."""
    n = engine.n
    if host:
        fits = engine.kv_host_capacity_tokens >= w.prefix_cache_tokens
        return replace(engine, kv_capacity_tokens=np.where(fits, engine.kv_capacity_tokens, 1))
    return replace(engine, t_per_cached_token_s=np.zeros(n),
                   kv_capacity_tokens=np.maximum(engine.kv_capacity_tokens - w.prefix_cache_tokens, 1))


def _either(mask: np.ndarray, a, b):
    """A latency model that is `a` where mask and `b` elsewhere (per design)."""
    return _Select(mask, a, b)


class _Select:
    """Per-design choice between two latency models with the same interface."""

    def __init__(self, mask, a, b):
        self.mask, self.a, self.b = mask, a, b

    @property
    def saturated(self):
        return np.where(self.mask, self.a.saturated, self.b.saturated)

    def __getattr__(self, name):
        fa, fb = getattr(self.a, name), getattr(self.b, name)
        return lambda *args: np.where(self.mask, fa(*args), fb(*args))


def serving_metrics(scenario, shape, prec, hw: HwView, cal: Calibration, res: MappingResult,
                    w: ServingWorkload, pool: PrefillPool | None = None, system_cost_usd: np.ndarray | None = None,
                    tech: Technology | None = None) -> dict[str, np.ndarray]:
    """The registry's serving columns (n,) — those of `dse.serving.analytic.summary` that are
    per-scenario metrics, plus the deployment chosen — for the designs of `hw` with the plans of
    `res`; 0 where infeasible, and latencies 0 where the design is saturated at the offered rate
    (goodput 0 there too). Engines are fitted per plan group; each deployment the workload allows
    (`deployments`) is scored over all designs at once and each design keeps the one with the highest
    rate in SLO (ties: the lower p99 TPOT). With a separate prefill `pool` (rows of `hw`), deployments
    that add its replicas are scored by that rate per fleet TCO (`tco_usd_per_hour` of the system's
    `system_cost_usd` and power plus the pool's, on `tech`) relative to the system's alone — the same
    rate for every deployment without a pool — and fleet_cost_usd / fleet_power_w sum both pools."""
    out: dict[str, np.ndarray] = {}
    if not res.feasible.any():
        return out
    engine, idx, dp, draft = plan_engines(shape, prec, hw, cal, res, w, draft=w.speculation is not None)
    cost = np.zeros(engine.n) if system_cost_usd is None else np.asarray(system_cost_usd, float)[idx]
    power = np.asarray(res.metrics.get("power_w", np.zeros(hw.n)), float)[idx]
    tco = tco_usd_per_hour(cost, power, tech)
    best = None
    for choice, build in deployments(engine, dp, w, draft, None if pool is None else pool.rows(idx),
                                     res.replica_chips[idx]):
        s = summary(build, w, engine.n) | choice
        s["score"] = s["max_rate_rps"] * (tco / np.maximum(
            tco_usd_per_hour(cost + s["pool_cost_usd"], power + s["pool_power_w"], tech), 1e-30)
            if pool is not None else 1.0)
        if best is None:
            best = s
            continue
        tpot = np.where(np.isfinite(s["tpot_p99_ms"]), s["tpot_p99_ms"], np.inf)
        tpot_b = np.where(np.isfinite(best["tpot_p99_ms"]), best["tpot_p99_ms"], np.inf)
        tol = 1e-6 * np.maximum(best["score"], 1e-12)
        win = (s["score"] > best["score"] + tol) | (
            (np.abs(s["score"] - best["score"]) <= tol) & (tpot < tpot_b))
        best = {key: np.where(win, s[key], best[key]) for key in best}
    best["fleet_cost_usd"] = cost + best["pool_cost_usd"]
    best["fleet_power_w"] = power + best["pool_power_w"]
    for name, v in best.items():
        if name in SCENARIO and SCENARIO[name].numeric:
            v = np.asarray(v, float)
            out.setdefault(name, np.zeros(hw.n))[idx] = np.where(np.isfinite(v), v, 0.0)
    return out
