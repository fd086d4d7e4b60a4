"""Plan evaluation and selection: the best plan per design × scenario under capacity and SLOs.

Plans come from `dse.evaluate.plans` (design-independent), their operator tables from
`dse.evaluate.steps`; here each plan is evaluated on every design that can hold it at once
(vectorized: step times per residency, energy, footprint, SLO checks) and the best per design is
kept by the scenario's goal. Pipeline parallelism changes only what fits on a chip, the
point-to-point hops and how many micro-batches are in flight, so it is applied arithmetically.

LLM serving model (static batching, one replica = tp × ep × pp chips, dp replicas; ep = expert
parallel for MoE models: experts spread over ep chips, attention data parallel over them):
- decode: mb ≤ pp micro-batches of `b` sequences each are in flight (batch B = mb·b; mb < pp leaves
  pipeline bubbles, e.g. batch 1 split over stages only for capacity); TPOT = all layers at
  micro-batch b + (pp-1) hops; a replica produces B tokens per TPOT.
- prefill: TTFT = one request's prompt through all stages; the static batch's B prompts are
  prefilled in chunks of ≤ PREFILL_CHUNK_TOKENS tokens (weights read once per chunk) that flow
  through the pp stages back to back: (chunks + pp − 1) × (chunk time / pp + hop).
- replica throughput = B·out / (prefill time + out·TPOT); system throughput = dp × replica.
- capacity per chip: the heaviest stage's weights + KV of B sequences × its layers / tp.
CNN: data parallel over all chips; latency = one batch through the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dse.evaluate.metrics import SCENARIO
from dse.evaluate.plans import Ladder, Plan, Rung, cnn_plans, llm_ladders
from dse.evaluate.steps import Builders, LlmSteps, cnn_footprint, llm_footprint, llm_steps
from dse.model.calibration import Calibration
from dse.model.perf import HwView, collective_time, op_energy_j, op_times
from dse.workloads.modelfile import load_model_shape

@dataclass
class StepEval:
    """A step evaluated on designs: time (s) and dynamic energy (J) per chip, for one residency."""

    time_s: np.ndarray
    energy_j: np.ndarray


@dataclass
class MappingResult:
    """Best plan per design for one scenario; arrays of shape (n,). `metrics` are registry metrics
    (`dse.evaluate.metrics`), `plans` the chosen plan's fields (tp, pp, ep, micro_batch,
    micro_batches, dp; 0 where infeasible)."""

    feasible: np.ndarray
    reason: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    plans: dict[str, np.ndarray] = field(default_factory=dict)

    def plan(self, i: int) -> Plan | None:
        """The plan scored for design `i`, or None when it has none."""
        if not self.feasible[i]:
            return None
        return Plan(**{k: int(v[i]) for k, v in self.plans.items()})


def residency(w, kv, act, sram_bytes, mem_bytes, cache=None):
    """Where the per-chip working set lives: (weights_resident, kv_resident, fits, resident_bytes).

    The resident shares are fractions in [0, 1]: the SRAM left after the activation buffers holds
    f = (sram − act) / w of the weights, then the KV cache in what remains; the rest streams from
    off-chip memory every step, so step time is continuous in `sram_mb`. What fits at all is decided
    all or nothing: off-chip memory must hold whatever is not wholly resident, and a chip with no
    off-chip memory must hold everything in SRAM. A hardware-managed cache (`cache` True) holds no
    share of a working set larger than itself: a step streams weights in the same order every time,
    and least-recently-used replacement evicts each line before its next use.
    """
    wres = w + act <= sram_bytes
    kres = wres & (w + kv + act <= sram_bytes)
    need_off = np.where(wres, 0.0, w) + np.where(kres, 0.0, kv)
    fits = np.where(mem_bytes > 0, need_off <= mem_bytes, w + kv + act <= sram_bytes)
    room = np.asarray(sram_bytes, float) - act
    part = 1.0 if cache is None else np.where(np.asarray(cache, bool), 0.0, 1.0)
    fw = np.where(wres, 1.0, part * np.clip(room / np.maximum(w, 1e-30), 0.0, 1.0))
    fk = np.where(kres, 1.0, np.where(wres, part * np.clip((room - w) / np.maximum(kv, 1e-30), 0.0, 1.0), 0.0))
    resident = fw * w + fk * kv
    return fw, fk, fits, resident


def residency_combo(fw: np.ndarray, fk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(combo, partial): the all-or-nothing residency `ComboCache` keys on (0 streamed, 1 weights,
    2 weights and KV resident) and where a resident share is fractional (timed per plan instead)."""
    combo = (fw >= 1.0).astype(int) + (fk >= 1.0).astype(int)
    partial = ((fw > 0) & (fw < 1)) | ((fk > 0) & (fk < 1))
    return combo, partial


def timed_residency(kind: str, wres: np.ndarray, kres: np.ndarray, resident: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights_resident, kv_resident, resident_bytes) a plan's steps are timed with, from `residency`.
    LLM steps are timed per residency combination with nothing else counted resident (`ComboCache`:
    activation buffers were reserved next to resident weights); CNN steps hold no KV cache and count
    their resident weights."""
    if kind == "cnn":
        return wres, np.ones(len(wres), bool), resident
    return wres, kres, np.zeros(len(wres))


def _eval(step_ops, hw: HwView, cal: Calibration, wres, kres, resident) -> StepEval:
    t = op_times(step_ops, hw, cal, wres, kres, resident)
    count = np.asarray(step_ops.count, dtype=float)[None, :]
    e = op_energy_j(step_ops, hw, t)
    return StepEval((t.total * count).sum(axis=1), (e * count).sum(axis=1))


def _eval_residencies(ops, hw, cal, wres, kres, resident) -> StepEval:
    """Evaluate `ops` under each design's own (possibly fractional) residency, in one vectorized call."""
    return _eval(compress_ops(ops), hw, cal, wres, kres, resident)


_KEY_COLS = ("kind", "flops", "weight_bytes", "act_in_bytes", "act_out_bytes", "kv_read_bytes",
             "kv_write_bytes", "m", "k", "n", "compute_precision", "comm_bytes", "group", "sparse")


def compress_ops(ops):
    """The same step with identical operators merged (their counts summed): repeated blocks such as
    ResNet bottlenecks are timed once. Step time and energy are unchanged; names are not kept."""
    cached = getattr(ops, "_compressed", None)
    if cached is not None:
        return cached
    names = np.asarray(ops.name).astype(str)
    conv = np.char.find(names, "conv") >= 0
    keys = [tuple(getattr(ops, c)[i] for c in _KEY_COLS) + (bool(conv[i]),) for i in range(len(names))]
    first: dict = {}
    inverse = np.empty(len(keys), int)
    for i, key in enumerate(keys):
        inverse[i] = first.setdefault(key, len(first))
    if len(first) == len(keys):
        out = ops
    else:
        rows = np.array([next(i for i in range(len(keys)) if inverse[i] == j) for j in range(len(first))])
        counts = np.bincount(inverse, weights=np.asarray(ops.count, float))
        out = ops.select(rows).replace(count=counts)
    try:
        object.__setattr__(ops, "_compressed", out)
    except (AttributeError, TypeError):
        pass
    return out


class ComboCache:
    """Step time and energy per design under each residency (0 streamed, 1 weights resident,
    2 weights and KV resident), computed once per design and residency on the designs that need it.

    Residency alone decides an operator's time: when weights are resident the activation buffers
    were reserved next to them, so how much else is resident does not matter.
    """

    def __init__(self, ops, hw: HwView, cal: Calibration):
        self.ops, self.hw, self.cal = compress_ops(ops), hw, cal
        self.time = np.full((3, hw.n), np.nan)
        self.energy = np.full((3, hw.n), np.nan)

    def prefetch(self, combo: np.ndarray, mask: np.ndarray) -> None:
        """Compute every (design, residency) in `mask` not computed yet, one vectorized call per residency."""
        for c in (0, 1, 2):
            need = mask & (combo == c)
            need &= np.isnan(self.time[c])
            if need.any():
                idx = np.flatnonzero(need)
                k = len(idx)
                r = _eval(self.ops, self.hw.take(idx), self.cal, np.full(k, c >= 1), np.full(k, c == 2), np.zeros(k))
                self.time[c, idx] = r.time_s
                self.energy[c, idx] = r.energy_j

    def get(self, combo: np.ndarray, idx: np.ndarray) -> StepEval:
        t = self.time[combo[idx], idx]
        if np.isnan(t).any():
            self.prefetch_idx(combo[idx], idx)
            t = self.time[combo[idx], idx]
        return StepEval(t, self.energy[combo[idx], idx])

    def prefetch_idx(self, combo_sel: np.ndarray, idx: np.ndarray) -> None:
        mask = np.zeros(self.hw.n, bool)
        full = np.zeros(self.hw.n, int)
        mask[idx] = True
        full[idx] = combo_sel
        self.prefetch(full, mask)


def _fmt_gb(x: float) -> str:
    return f"{x / 1e9:.3g} GB" if x >= 1e8 else f"{x / 1e6:.3g} MB"


# ---- plan evaluation: times, energy and SLO checks of one plan on many designs --------------------

@dataclass
class LlmPlanEval:
    """One LLM plan on the designs `cidx` (indices into its group's designs) that can hold it."""

    plan: Plan
    cidx: np.ndarray
    combo: np.ndarray       # residency per design of the group: 0 streamed, 1 weights, 2 weights + KV
    tpot: np.ndarray        # s per output token (one decode step through all stages)
    ttft: np.ndarray        # s to the first token: the whole (static) batch prefilled through all stages
    prefill_s: np.ndarray   # s to prefill the replica's whole batch
    dp: np.ndarray          # replicas
    throughput: np.ndarray  # tokens/s of the system
    energy: np.ndarray      # J per output token
    slo_ok: np.ndarray


class _LlmGroup:
    """What the plans of one (tp, ep) ladder share on the designs with at least tp·ep chips: the TTFT
    prefill step and its per-residency times, prefill chunks, pipeline hop times."""

    def __init__(self, scenario, shape, prec, hw: HwView, cal: Calibration, chips_avail: np.ndarray,
                 ladder: Ladder):
        self.scenario, self.shape, self.prec, self.cal = scenario, shape, prec, cal
        self.grp = ladder.tp * ladder.ep
        self.idx = np.flatnonzero(chips_avail >= self.grp)
        self.hw = hw.take(self.idx)
        self.chips = chips_avail[self.idx]
        self.prompt, self.out_len = int(scenario.prompt_len), int(scenario.output_len)
        self.hidden, self.act = Builders.hidden(shape), Builders.act_bytes(prec)
        self.pre = Builders.llm(shape, "prefill", 1, self.prompt, self.prompt, ladder.tp, prec, ladder.ep)
        self.pre_cache = ComboCache(self.pre.ops, self.hw, cal)
        self.hop_pre = self.hop(self.prompt)
        self.chunks: dict[int, tuple[ComboCache, np.ndarray]] = {}

    def hop(self, tokens: int) -> np.ndarray:
        """Time to hand `tokens` tokens' activations to the next pipeline stage, per design."""
        return collective_time("sendrecv", np.array([tokens * self.hidden * self.act]), np.array([2.0]),
                               self.hw, self.cal)[:, 0]

    def chunk(self, steps: LlmSteps) -> tuple[ComboCache, np.ndarray]:
        if steps.chunk_prompts not in self.chunks:
            if steps.chunk_prompts == 1:  # a one-prompt chunk is the TTFT step itself
                self.chunks[1] = (self.pre_cache, self.hop_pre)
            else:
                self.chunks[steps.chunk_prompts] = (ComboCache(steps.chunk.ops, self.hw, self.cal),
                                                    self.hop(steps.chunk_prompts * self.prompt))
        return self.chunks[steps.chunk_prompts]

    def capacity(self, steps: LlmSteps, plan: Plan, alive: np.ndarray):
        """(footprint, chips_ok, fits, combo) of `plan` on the group's designs still `alive`."""
        w, kv, act = llm_footprint(self.scenario, self.shape, self.prec, steps, plan)
        ok = (self.chips >= self.grp * plan.pp) & alive
        fw, fk, fits, _ = residency(w, kv, act, self.hw.sram_bytes, self.hw.mem_bytes, self.hw.sram_cache)
        return (w, kv), ok, fits, (fw, fk)

    def evaluate_rung(self, rung: Rung, steps: LlmSteps, cands: list[tuple[Plan, tuple, np.ndarray]]) -> list[LlmPlanEval]:
        """Times of every (plan, residency, candidate designs) of one rung: one vectorized call per
        all-or-nothing residency (cached), plus one per plan for the designs with a fractional share."""
        dec_cache = ComboCache(steps.decode.ops, self.hw, self.cal)
        chunk_cache, hop_chunk = self.chunk(steps)
        all_combo = np.zeros(len(self.idx), int)
        split = [(plan, *residency_combo(*fr), fr, cidx) for plan, fr, cidx in cands]
        for c in (0, 1, 2):
            mask = np.zeros(len(self.idx), bool)
            for _, combo, partial, _, cidx in split:
                mask[cidx[(combo[cidx] == c) & ~partial[cidx]]] = True
            all_combo[:] = c
            dec_cache.prefetch(all_combo, mask)
            self.pre_cache.prefetch(all_combo, mask)
            chunk_cache.prefetch(all_combo, mask)
        hop_dec = self.hop(rung.micro_batch)
        static = self.hw.static_w if self.hw.static_w is not None else np.zeros(len(self.idx))
        out = []
        for plan, combo, partial, (fw, fk), cidx in split:
            whole = cidx[~partial[cidx]]
            part = cidx[partial[cidx]]
            evals = []
            for cache in (dec_cache, self.pre_cache, chunk_cache):
                ev = StepEval(np.zeros(len(cidx)), np.zeros(len(cidx)))
                if len(whole):
                    r = cache.get(combo, whole)
                    ev.time_s[~partial[cidx]], ev.energy_j[~partial[cidx]] = r.time_s, r.energy_j
                if len(part):
                    r = _eval(cache.ops, self.hw.take(part), self.cal, fw[part], fk[part], np.zeros(len(part)))
                    ev.time_s[partial[cidx]], ev.energy_j[partial[cidx]] = r.time_s, r.energy_j
                evals.append(ev)
            d, p, ch = evals
            combo = fw + fk  # resident level for the bound label (>= 1: weights wholly resident)
            out.append(self.plan_times(plan, steps, combo, cidx, d, p, ch, hop_dec[cidx], hop_chunk[cidx],
                                       static[cidx]))
        return out

    def plan_times(self, plan: Plan, steps: LlmSteps, combo, cidx, d: StepEval, p: StepEval, ch: StepEval,
                   hop_dec, hop_chunk, static) -> LlmPlanEval:
        """The time function of static-batched pipeline serving (module docstring)."""
        pp, mb, total_b = plan.pp, plan.micro_batches, plan.batch
        tpot = d.time_s + (pp - 1) * hop_dec
        dp = self.chips[cidx] // (self.grp * pp)
        # the batch's prefill chunks flow through the pp stages back to back
        n_chunks = mb * -(-plan.micro_batch // steps.chunk_prompts)
        prefill_time = (n_chunks + pp - 1) * (ch.time_s / pp + (pp > 1) * hop_chunk)
        # static batching: a request's first token comes once its whole batch is prefilled (the same prefill
        # the throughput pays for); at batch 1 this is one prompt through all stages on an idle system
        ttft = np.maximum(p.time_s + (pp - 1) * self.hop_pre[cidx], prefill_time)
        replica = total_b * self.out_len / (prefill_time + self.out_len * tpot)
        thr = dp * replica
        e_tok = self.grp * (mb * d.energy_j + pp * static * tpot) / total_b
        slo_tpot, slo_ttft = _slo(self.scenario, "tpot_ms"), _slo(self.scenario, "ttft_ms")
        slo_ok = np.ones(len(cidx), bool)
        if slo_tpot:
            slo_ok &= tpot * 1e3 <= slo_tpot
        if slo_ttft:
            slo_ok &= ttft * 1e3 <= slo_ttft
        return LlmPlanEval(plan, cidx, combo, tpot, ttft, prefill_time, dp, thr, e_tok, slo_ok)


def _numeric_metrics(n: int) -> dict[str, np.ndarray]:
    """A zero column per numeric per-scenario metric of the registry: what a mapping fills."""
    return {k: np.zeros(n) for k, metric in SCENARIO.items() if metric.numeric}


def _slo(scenario, name: str):
    return getattr(scenario, name, None) or getattr(getattr(scenario, "slo", None), name, None)


# ---- selection: the best plan per design by the scenario's goal, and why a design has none ---------

_PLAN_FIELDS = ("tp", "pp", "ep", "micro_batch", "micro_batches", "dp")


class _LlmSelection:
    """Best plan per design so far, and the closest capacity or SLO miss of designs without one."""

    def __init__(self, scenario, hw: HwView, chips_avail: np.ndarray):
        n = hw.n
        self.scenario, self.hw, self.chips_avail = scenario, hw, chips_avail
        self.goal = getattr(scenario, "goal", "throughput")
        self.slo_tpot, self.slo_ttft = _slo(scenario, "tpot_ms"), _slo(scenario, "ttft_ms")
        self.best_score = np.full(n, -np.inf)
        self.m = _numeric_metrics(n)
        self.plans = {k: np.zeros(n, np.int64) for k in _PLAN_FIELDS}
        self.bound = np.full(n, "", dtype=object)
        self.feasible = np.zeros(n, bool)
        self.reason_kind = np.zeros(n, int)  # 0 none, 1 capacity, 2 SLO (an SLO reason outranks a capacity one)
        self.cap_chips = np.zeros(n, int)
        self.slo_gap = np.full(n, np.inf)
        self.slo_info = np.zeros((n, 5))
        self.cap_info = np.zeros((n, 5))

    def note_capacity(self, gi: np.ndarray, plan: Plan, w: float, kv: float) -> None:
        """Designs `gi` cannot hold `plan`: remember the largest such plan for the reason."""
        chips = plan.replica_chips
        keep = ~self.feasible[gi] & (self.reason_kind[gi] <= 1) & (self.cap_chips[gi] <= chips)
        g = gi[keep]
        self.cap_info[g] = np.stack([np.full(len(g), w), np.full(len(g), kv), np.full(len(g), plan.tp),
                                     np.full(len(g), plan.pp), np.full(len(g), plan.ep)], axis=1)
        self.reason_kind[g] = 1
        self.cap_chips[g] = chips

    def offer(self, gi: np.ndarray, ev: LlmPlanEval) -> None:
        """Designs `gi` (global indices of `ev.cidx`) can run `ev.plan`: keep it where it scores best."""
        plan, tpot, ttft, thr = ev.plan, ev.tpot, ev.ttft, ev.throughput
        miss = ~ev.slo_ok & ~self.feasible[gi]
        if miss.any():
            # remember the closest miss; the reason string is written once at the end
            gap = np.maximum(tpot / (self.slo_tpot * 1e-3) if self.slo_tpot else 0.0,
                             ttft / (self.slo_ttft * 1e-3) if self.slo_ttft else 0.0)
            closer = miss & (gap < self.slo_gap[gi])
            g = gi[closer]
            k = int(closer.sum())
            self.slo_gap[g] = gap[closer]
            self.slo_info[g] = np.stack([tpot[closer], ttft[closer], np.full(k, plan.tp),
                                         np.full(k, plan.pp), np.full(k, plan.batch)], axis=1)
            self.reason_kind[g] = 2
        score = thr if self.goal == "throughput" else -tpot + 1e-12 * thr
        better = ev.slo_ok & (score > self.best_score[gi])
        g = gi[better]
        self.best_score[g] = score[better]
        self.feasible[g] = True
        m = self.m
        m["ttft_ms"][g] = ttft[better] * 1e3
        m["tpot_ms"][g] = tpot[better] * 1e3
        m["tokens_per_s"][g] = thr[better]
        m["tokens_per_s_per_user"][g] = 1.0 / tpot[better]
        m["energy_j_per_unit"][g] = ev.energy[better]
        busy = ev.prefill_s[better] + int(self.scenario.output_len) * tpot[better]
        m["prefill_share"][g] = ev.prefill_s[better] / busy
        m["chips_used"][g] = ev.dp[better] * plan.replica_chips
        m["tp"][g], m["pp"][g], m["dp"][g], m["batch"][g] = plan.tp, plan.pp, ev.dp[better], plan.batch
        m["ep"][g] = plan.ep
        for f in _PLAN_FIELDS:
            self.plans[f][g] = getattr(plan, f) if f != "dp" else ev.dp[better]
        self.bound[g] = np.where(ev.combo[ev.cidx][better] >= 1, "sram-resident", "weights-streamed")

    def result(self) -> MappingResult:
        n, feasible, hw = self.hw.n, self.feasible, self.hw
        reason = np.full(n, "", dtype=object)
        for g in np.flatnonzero(~feasible & (self.reason_kind == 1)):
            w, kv, tp_, pp_, ep_ = self.cap_info[g]
            mem = hw.mem_bytes[g]
            where, cap = ("memory", mem) if mem > 0 else ("SRAM", hw.sram_bytes[g])
            reason[g] = (f"weights {_fmt_gb(w)} + KV {_fmt_gb(kv)} per chip > {where} {_fmt_gb(cap)} "
                         f"(tp={int(tp_)}, pp={int(pp_)}{f', ep={int(ep_)}' if ep_ > 1 else ''} on "
                         f"{int(tp_ * pp_ * ep_)} of {int(self.chips_avail[g])} chips)")
        slo_tpot, slo_ttft = self.slo_tpot, self.slo_ttft
        for g in np.flatnonzero(~feasible & (self.reason_kind == 2)):
            t_pot, t_tft, tp_, pp_, b_ = self.slo_info[g]
            reason[g] = (f"SLO missed: TPOT {t_pot * 1e3:.3g} ms{f' (limit {slo_tpot:g})' if slo_tpot else ''}, "
                         f"TTFT {t_tft * 1e3:.3g} ms{f' (limit {slo_ttft:g})' if slo_ttft else ''} "
                         f"at best (tp={int(tp_)}, pp={int(pp_)}, batch {int(b_)})")
        reason[~feasible & (reason == "")] = "no feasible mapping (model does not fit on the available chips)"
        m = self.m
        for k in m:
            m[k][~feasible] = 0.0
        for f in _PLAN_FIELDS:
            self.plans[f][~feasible] = 0
        out_len = int(self.scenario.output_len)
        m["throughput"] = m["tokens_per_s"].copy()
        m["latency_ms"] = m["ttft_ms"] + m["tpot_ms"] * out_len
        m["latency_ms"][~feasible] = 0.0
        m["weights"] = self.bound
        return MappingResult(feasible, reason, m, self.plans)


def map_llm(scenario, shape, prec, hw: HwView, cal: Calibration, builders=Builders,
            force_tp: int | None = None, force_pp: int | None = None) -> MappingResult:
    """Best plan (tp, pp, ep, dp, micro-batches) for an LLM serving scenario on every design of `hw`
    (or a forced tp / pp): enumerate the plans, evaluate them rung by rung on the designs that can
    hold them, keep the best per design. `builders` is kept for callers; the steps come from
    `dse.evaluate.steps`."""
    max_chips = int(getattr(scenario, "max_chips", None) or 1 << 30)
    chips_avail = np.minimum(hw.num_chips, max_chips)
    sel = _LlmSelection(scenario, hw, chips_avail)
    for ladder in llm_ladders(scenario, shape, np.unique(chips_avail), force_tp, force_pp):
        group = _LlmGroup(scenario, shape, prec, hw, cal, chips_avail, ladder)
        alive = np.ones(len(group.idx), bool)
        for rung in ladder.rungs:
            if not alive.any():
                break
            still = np.zeros(len(group.idx), bool)
            steps = llm_steps(scenario, shape, prec, rung.tp, rung.ep, rung.micro_batch)
            cands = []
            for plan in rung.plans:
                (w, kv), ok, fits, combo = group.capacity(steps, plan, alive)
                if not ok.any():
                    continue
                if rung.micro_batch == 1:  # capacity reason from the largest plan that still does not fit
                    sel.note_capacity(group.idx[np.flatnonzero(ok & ~fits)], plan, w, kv)
                cand = ok & fits
                if cand.any():
                    cands.append((plan, combo, np.flatnonzero(cand)))
            for ev in group.evaluate_rung(rung, steps, cands) if cands else []:
                still[ev.cidx[ev.slo_ok]] = True
                sel.offer(group.idx[ev.cidx], ev)
            if ladder.prune:
                alive &= still
    return sel.result()


def map_cnn(scenario, shape, prec, hw: HwView, cal: Calibration, builders=Builders) -> MappingResult:
    """Best batch for a CNN / vision scenario: data parallel over the chips, latency SLO per batch."""
    n = hw.n
    max_chips = int(getattr(scenario, "max_chips", None) or 1 << 30)
    chips_avail = np.minimum(hw.num_chips, max_chips)
    slo = _slo(scenario, "latency_ms")
    goal = getattr(scenario, "goal", "throughput")
    best = np.full(n, -np.inf)
    feasible = np.zeros(n, bool)
    reason = np.full(n, "", dtype=object)
    m = _numeric_metrics(n)
    plans = {k: np.zeros(n, np.int64) for k in _PLAN_FIELDS}
    weights = np.full(n, "", dtype=object)
    # latency and footprint never shrink with batch: a design that misses the SLO or capacity at
    # batch b is not tried at larger batches
    alive = np.ones(n, bool)
    for plan in cnn_plans(scenario):
        b = plan.batch
        step = Builders.cnn(shape, b, prec)
        w, kv, act = cnn_footprint(step)
        wres, kres, fits, resident = residency(w, kv, act, hw.sram_bytes, hw.mem_bytes, hw.sram_cache)
        wres, kres, resident = timed_residency("cnn", wres, kres, resident)
        for j in np.flatnonzero(alive & ~fits & ~feasible & (reason == "")):
            reason[j] = f"weights {_fmt_gb(w)} + activations {_fmt_gb(act)} > on-chip {_fmt_gb(hw.sram_bytes[j])} (batch {b})"
        alive &= fits
        if not alive.any():
            break
        idx = np.flatnonzero(alive)
        hw_c = hw.take(idx)
        r = _eval_residencies(step.ops, hw_c, cal, wres[idx], kres[idx], resident[idx])
        lat = r.time_s
        thr = chips_avail[idx] * b / lat
        static = hw_c.static_w if hw_c.static_w is not None else np.zeros(len(idx))
        e_img = (r.energy_j + static * lat) / b
        ok = np.ones(len(idx), bool) if not slo else lat * 1e3 <= slo
        for j in np.flatnonzero(~ok):
            if not feasible[idx[j]]:
                reason[idx[j]] = f"latency {lat[j] * 1e3:.3g} ms > SLO {slo:g} ms even at batch {b}"
        alive[idx[~ok]] = False
        score = thr if goal == "throughput" else -lat
        better = ok & (score > best[idx])
        g = idx[better]
        best[g] = score[better]
        feasible[g] = True
        reason[g] = ""
        m["latency_ms"][g] = lat[better] * 1e3
        m["images_per_s"][g] = thr[better]
        m["energy_j_per_unit"][g] = e_img[better]
        m["chips_used"][g] = chips_avail[idx][better]
        m["batch"][g] = b
        for f in _PLAN_FIELDS:
            plans[f][g] = getattr(plan, f) if f != "dp" else chips_avail[idx][better]
        weights[g] = np.where(wres[idx][better] >= 1.0, "sram-resident", "weights-streamed")
    reason[~feasible & (reason == "")] = "no feasible batch"
    for k in m:
        m[k][~feasible] = 0.0
    for f in _PLAN_FIELDS:
        plans[f][~feasible] = 0
    m["throughput"] = m["images_per_s"].copy()
    m["tp"], m["pp"] = np.where(feasible, 1.0, 0.0), np.where(feasible, 1.0, 0.0)
    m["dp"] = m["chips_used"].copy()
    m["ep"] = np.where(feasible, 1.0, 0.0)
    m["weights"] = weights
    return MappingResult(feasible, reason, m, plans)


def evaluate_scenario(scenario, hw: HwView, cal: Calibration, force_tp: int | None = None,
                      force_pp: int | None = None) -> MappingResult:
    """Best plan of one scenario on every design of `hw` (optionally with tp / pp forced)."""
    shape = load_model_shape(scenario.model)
    prec = scenario.precision_spec() if hasattr(scenario, "precision_spec") else scenario.precision
    if scenario.kind == "cnn":
        return map_cnn(scenario, shape, prec, hw, cal)
    return map_llm(scenario, shape, prec, hw, cal, force_tp=force_tp, force_pp=force_pp)
