"""Pick tensor / pipeline / data parallelism and batch per design × scenario under capacity and SLOs.

The operator tables depend only on the scenario and (tp, batch), not on the design, so they are built
once and evaluated on all designs at once. Pipeline parallelism changes only what fits on a chip,
the point-to-point hops and how many micro-batches are in flight, so it is applied arithmetically.

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

from dse.evaluate.steps import Builders
from dse.model.calibration import Calibration
from dse.model.perf import HwView, collective_time, op_energy_j, op_times
from dse.workloads.shapes import load_model_shape

TP_CHOICES = (1, 2, 4, 8, 16, 32, 64)
# Tokens per prefill chunk: TensorRT-LLM's default `max_num_tokens` (8192) bounds the tokens one
# engine step processes, so a large batch's prompts are prefilled a few requests at a time.
PREFILL_CHUNK_TOKENS = 8192
PP_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class StepEval:
    """A step evaluated on designs: time (s) and dynamic energy (J) per chip, for one residency."""

    time_s: np.ndarray
    energy_j: np.ndarray


@dataclass
class MappingResult:
    """Best mapping per design for one scenario; arrays of shape (n,)."""

    feasible: np.ndarray
    reason: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)


def _pow2_upto(limit: int, choices) -> list[int]:
    return [c for c in choices if c <= limit]


def batch_candidates(scenario) -> list[int]:
    """Batch sizes to try: the fixed batch, or powers of two up to the scenario's maximum."""
    fixed, max_b = scenario_batch(scenario)
    if fixed is not None:
        return [fixed]
    out = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if b <= max_b]
    if max_b not in out:
        out.append(max_b)
    return out


def micro_batch_candidates(scenario) -> list[int]:
    """Micro-batch sizes b to try for LLM decode (b × pp sequences are in flight)."""
    fixed, max_b = scenario_batch(scenario)
    top = fixed if fixed is not None else max_b
    return [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if b <= top and
            (fixed is None or fixed % b == 0)] + ([top] if top & (top - 1) else [])


def scenario_batch(scenario) -> tuple[int | None, int]:
    """(fixed batch or None, maximum batch) of a scenario's batch policy."""
    b = scenario.batch
    if isinstance(b, int):
        return b, b
    fixed = getattr(b, "fixed", None)
    if fixed:
        return int(fixed), int(fixed)
    return None, int(getattr(b, "max"))


def stage_weight_bytes(step, pp: int) -> float:
    """Weights on one chip of the heaviest of `pp` pipeline stages (it also holds the embedding or head)."""
    if pp == 1:
        return float(step.weight_bytes_per_chip)
    layers_max = -(-step.layers // pp)
    return layers_max * step.layer_weight_bytes + max(step.embed_weight_bytes, step.head_weight_bytes)


def residency(w, kv, act, sram_bytes, mem_bytes):
    """Where the per-chip working set lives: (weights_resident, kv_resident, fits, resident_bytes).

    Weights are SRAM-resident when they fit with the activation buffers; the KV cache too when it
    also fits. Otherwise they stream from off-chip memory, which must then hold them; a chip with no
    off-chip memory must hold everything in SRAM.
    """
    wres = w + act <= sram_bytes
    kres = wres & (w + kv + act <= sram_bytes)
    need_off = np.where(wres, 0.0, w) + np.where(kres, 0.0, kv)
    fits = np.where(mem_bytes > 0, need_off <= mem_bytes, w + kv + act <= sram_bytes)
    resident = np.where(wres, w, 0.0) + np.where(kres, kv, 0.0)
    return wres, kres, fits, resident


def _eval(step_ops, hw: HwView, cal: Calibration, wres, kres, resident) -> StepEval:
    t = op_times(step_ops, hw, cal, wres, kres, resident)
    count = np.asarray(step_ops.count, dtype=float)[None, :]
    e = op_energy_j(step_ops, hw, t)
    return StepEval((t.total * count).sum(axis=1), (e * count).sum(axis=1))


def _eval_residencies(ops, hw, cal, wres, kres, resident) -> StepEval:
    """Evaluate `ops` under each design's own residency, once per distinct (wres, kres) combination."""
    out = StepEval(np.zeros(hw.n), np.zeros(hw.n))
    ops = compress_ops(ops)
    combo = wres.astype(int) * 2 + kres.astype(int)
    for c in np.unique(combo):
        sel = combo == c
        sub = hw.take(sel)
        r = _eval(ops, sub, cal, wres[sel], kres[sel], resident[sel])
        out.time_s[sel] = r.time_s
        out.energy_j[sel] = r.energy_j
    return out


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


def map_llm(scenario, shape, prec, hw: HwView, cal: Calibration, builders,
            force_tp: int | None = None, force_pp: int | None = None) -> MappingResult:
    """Best (tp, pp, dp, batch) for an LLM serving scenario on every design of `hw` (or a forced tp/pp)."""
    n = hw.n
    max_chips = int(getattr(scenario, "max_chips", None) or 1 << 30)
    chips_avail = np.minimum(hw.num_chips, max_chips)
    goal = getattr(scenario, "goal", "throughput")
    slo_tpot = getattr(scenario, "tpot_ms", None) or getattr(getattr(scenario, "slo", None), "tpot_ms", None)
    slo_ttft = getattr(scenario, "ttft_ms", None) or getattr(getattr(scenario, "slo", None), "ttft_ms", None)
    prompt, out_len = int(scenario.prompt_len), int(scenario.output_len)
    act_bytes = builders.act_bytes(prec)
    best_score = np.full(n, -np.inf)
    m = {k: np.zeros(n) for k in ("ttft_ms", "tpot_ms", "tokens_per_s", "tokens_per_s_per_user",
                                  "energy_j_per_unit", "chips_used", "tp", "pp", "dp", "ep", "batch")}
    bound = np.full(n, "", dtype=object)
    reason = np.full(n, "", dtype=object)
    feasible = np.zeros(n, bool)
    reason_kind = np.zeros(n, int)  # 0 none, 1 capacity, 2 SLO (an SLO reason outranks a capacity one)
    cap_chips = np.zeros(n, int)
    slo_gap = np.full(n, np.inf)
    slo_info = np.zeros((n, 5))
    cap_info = np.zeros((n, 5))
    max_tp = int(min(chips_avail.max(), max(TP_CHOICES)))
    tps = [force_tp] if force_tp else _pow2_upto(max_tp, TP_CHOICES)
    # expert parallelism for MoE models: experts spread over ep chips, attention data parallel over them
    eps = [1] + [e for e in (2, 4, 8, 16, 32, 64) if e <= getattr(shape, "experts", 1)]
    groups = [(tp, ep) for tp in tps for ep in eps if tp * ep <= max(int(chips_avail.max()), 1)]
    for tp, ep in groups:
        if not builders.tp_ok(shape, tp):
            continue
        grp = tp * ep
        sel_tp = chips_avail >= grp
        if not sel_tp.any():
            continue
        idx_tp = np.flatnonzero(sel_tp)
        hw_tp = hw.take(idx_tp)
        pre = builders.llm(shape, "prefill", 1, prompt, prompt, tp, prec, ep)
        fixed, max_b = scenario_batch(scenario)
        pre_cache = ComboCache(pre.ops, hw_tp, cal)
        chunk_cache: dict = {}
        hop_pre_all = collective_time("sendrecv", np.array([prompt * builders.hidden(shape) * act_bytes]),
                                      np.array([2.0]), hw_tp, cal)[:, 0]
        # TPOT and footprint never shrink as the micro-batch grows: a design with no plan that fits
        # and meets the SLOs at micro-batch b is not tried at larger ones
        alive = np.ones(len(idx_tp), bool)
        for b in micro_batch_candidates(scenario):
            if not alive.any():
                break
            still = np.zeros(len(idx_tp), bool)
            dec = builders.llm(shape, "decode", b, 1, builders.mean_kv(prompt, out_len), tp, prec, ep)
            # prefill of the batch's prompts runs in chunks of at most PREFILL_CHUNK_TOKENS tokens
            pb = max(1, min(b, PREFILL_CHUNK_TOKENS // max(prompt, 1)))
            if pb == 1 and pb not in chunk_cache:  # a one-prompt chunk is the TTFT step itself
                chunk_cache[1] = (pre, pre_cache, hop_pre_all)
            if pb not in chunk_cache:
                chunk = builders.llm(shape, "prefill", pb, prompt, prompt, tp, prec, ep)
                hop = collective_time("sendrecv", np.array([pb * prompt * builders.hidden(shape) * act_bytes]),
                                      np.array([2.0]), hw_tp, cal)[:, 0]
                chunk_cache[pb] = (chunk, ComboCache(chunk.ops, hw_tp, cal), hop)
            chunk, chunk_times, hop_chunk_all = chunk_cache[pb]
            chunks_per_microbatch = -(-b // pb)
            act = max(dec.act_bytes_per_chip, pre.act_bytes_per_chip, chunk.act_bytes_per_chip)
            # powers of two, plus "every chip in one pipeline" for each system size (e.g. 576 = 8 x 72)
            whole = {int(c) // grp for c in np.unique(chips_avail[idx_tp])}
            pps = [force_pp] if force_pp else sorted(
                pp for pp in set(PP_CHOICES) | whole
                if 1 <= pp <= max(1, int(chips_avail[idx_tp].max()) // grp) and pp <= dec.layers)
            plans = []
            for pp in pps:
                # mb micro-batches of b sequences are in flight (mb <= pp; mb < pp leaves bubbles)
                if fixed is not None:
                    if fixed % b or fixed // b > pp:
                        continue
                    mb = fixed // b
                else:
                    mb = min(pp, max_b // b)
                    if mb < 1:
                        continue
                total_b = b * mb
                ok = (chips_avail[idx_tp] >= grp * pp) & alive
                if not ok.any():
                    continue
                w = stage_weight_bytes(dec, pp)
                kv = builders.kv_bytes(shape, total_b, prompt + out_len, tp, prec) * (-(-dec.layers // pp)) \
                    / dec.layers / ep
                sram, mem = hw_tp.sram_bytes, hw_tp.mem_bytes
                wres, kres, fits, _ = residency(w, kv, act, sram, mem)
                cand = ok & fits
                if b == 1:
                    # capacity reason from the largest mapping that still does not fit
                    j = np.flatnonzero(ok & ~fits)
                    gi = idx_tp[j]
                    keep = ~feasible[gi] & (reason_kind[gi] <= 1) & (cap_chips[gi] <= grp * pp)
                    g = gi[keep]
                    cap_info[g] = np.stack([np.full(len(g), w), np.full(len(g), kv), np.full(len(g), tp),
                                            np.full(len(g), pp), np.full(len(g), ep)], axis=1)
                    reason_kind[g] = 1
                    cap_chips[g] = grp * pp
                if cand.any():
                    combo = wres.astype(int) + kres.astype(int)
                    plans.append((pp, mb, total_b, combo, np.flatnonzero(cand)))
            if not plans:
                if fixed is None:  # a fixed batch keeps its footprint: only the best-batch search stops early
                    alive &= still
                continue
            dec_cache = ComboCache(dec.ops, hw_tp, cal)
            all_combo = np.zeros(len(idx_tp), int)
            for c in (0, 1, 2):  # one vectorized call per residency over every pp's candidates
                mask = np.zeros(len(idx_tp), bool)
                for _, _, _, combo, cidx in plans:
                    mask[cidx[combo[cidx] == c]] = True
                all_combo[:] = c
                dec_cache.prefetch(all_combo, mask)
                pre_cache.prefetch(all_combo, mask)
                chunk_times.prefetch(all_combo, mask)
            hop_dec_all = collective_time("sendrecv", np.array([b * builders.hidden(shape) * act_bytes]),
                                          np.array([2.0]), hw_tp, cal)[:, 0]
            static_all = hw_tp.static_w if hw_tp.static_w is not None else np.zeros(len(idx_tp))
            for pp, mb, total_b, combo, cidx in plans:
                d = dec_cache.get(combo, cidx)
                p = pre_cache.get(combo, cidx)
                tpot = d.time_s + (pp - 1) * hop_dec_all[cidx]
                ttft = p.time_s + (pp - 1) * hop_pre_all[cidx]
                dp = chips_avail[idx_tp][cidx] // (grp * pp)
                # the batch's prefill chunks flow through the pp stages back to back
                n_chunks = mb * chunks_per_microbatch
                ch = chunk_times.get(combo, cidx)
                prefill_time = (n_chunks + pp - 1) * (ch.time_s / pp + (pp > 1) * hop_chunk_all[cidx])
                replica = total_b * out_len / (prefill_time + out_len * tpot)
                thr = dp * replica
                e_tok = grp * (mb * d.energy_j + pp * static_all[cidx] * tpot) / total_b
                slo_ok = np.ones(len(cidx), bool)
                if slo_tpot:
                    slo_ok &= tpot * 1e3 <= slo_tpot
                if slo_ttft:
                    slo_ok &= ttft * 1e3 <= slo_ttft
                gi = idx_tp[cidx]
                miss = ~slo_ok & ~feasible[gi]
                if miss.any():
                    # remember the closest miss; the reason string is written once at the end
                    gap = np.maximum(tpot / (slo_tpot * 1e-3) if slo_tpot else 0.0,
                                     ttft / (slo_ttft * 1e-3) if slo_ttft else 0.0)
                    closer = miss & (gap < slo_gap[gi])
                    g = gi[closer]
                    slo_gap[g] = gap[closer]
                    slo_info[g] = np.stack([tpot[closer], ttft[closer], np.full(closer.sum(), tp),
                                            np.full(closer.sum(), pp), np.full(closer.sum(), total_b)], axis=1)
                    reason_kind[g] = 2
                score = thr if goal == "throughput" else -tpot + 1e-12 * thr
                still[cidx[slo_ok]] = True
                better = slo_ok & (score > best_score[gi])
                g = gi[better]
                best_score[g] = score[better]
                feasible[g] = True
                m["ttft_ms"][g] = ttft[better] * 1e3
                m["tpot_ms"][g] = tpot[better] * 1e3
                m["tokens_per_s"][g] = thr[better]
                m["tokens_per_s_per_user"][g] = 1.0 / tpot[better]
                m["energy_j_per_unit"][g] = e_tok[better]
                m["chips_used"][g] = dp[better] * grp * pp
                m["tp"][g], m["pp"][g], m["dp"][g], m["batch"][g] = tp, pp, dp[better], total_b
                m["ep"][g] = ep
                bound[g] = np.where(combo[cidx][better] >= 1, "sram-resident", "weights-streamed")
            if fixed is None:  # a fixed batch keeps its footprint: only the best-batch search can stop early
                alive &= still
    reason[feasible] = ""
    for g in np.flatnonzero(~feasible & (reason_kind == 1)):
        w, kv, tp_, pp_, ep_ = cap_info[g]
        mem = hw.mem_bytes[g]
        where, cap = ("memory", mem) if mem > 0 else ("SRAM", hw.sram_bytes[g])
        reason[g] = (f"weights {_fmt_gb(w)} + KV {_fmt_gb(kv)} per chip > {where} {_fmt_gb(cap)} "
                     f"(tp={int(tp_)}, pp={int(pp_)}{f', ep={int(ep_)}' if ep_ > 1 else ''} on "
                     f"{int(tp_ * pp_ * ep_)} of {int(chips_avail[g])} chips)")
    for g in np.flatnonzero(~feasible & (reason_kind == 2)):
        t_pot, t_tft, tp_, pp_, b_ = slo_info[g]
        reason[g] = (f"SLO missed: TPOT {t_pot * 1e3:.3g} ms{f' (limit {slo_tpot:g})' if slo_tpot else ''}, "
                     f"TTFT {t_tft * 1e3:.3g} ms{f' (limit {slo_ttft:g})' if slo_ttft else ''} "
                     f"at best (tp={int(tp_)}, pp={int(pp_)}, batch {int(b_)})")
    reason[~feasible & (reason == "")] = "no feasible mapping (model does not fit on the available chips)"
    for k in m:
        m[k][~feasible] = 0.0
    m["throughput"] = m["tokens_per_s"].copy()
    m["images_per_s"] = np.zeros(n)
    m["latency_ms"] = m["ttft_ms"] + m["tpot_ms"] * out_len
    m["latency_ms"][~feasible] = 0.0
    m["weights"] = bound
    return MappingResult(feasible, reason, m)


def map_cnn(scenario, shape, prec, hw: HwView, cal: Calibration, builders) -> MappingResult:
    """Best batch for a CNN / vision scenario: data parallel over the chips, latency SLO per batch."""
    n = hw.n
    max_chips = int(getattr(scenario, "max_chips", None) or 1 << 30)
    chips_avail = np.minimum(hw.num_chips, max_chips)
    slo = getattr(scenario, "latency_ms", None) or getattr(getattr(scenario, "slo", None), "latency_ms", None)
    goal = getattr(scenario, "goal", "throughput")
    best = np.full(n, -np.inf)
    feasible = np.zeros(n, bool)
    reason = np.full(n, "", dtype=object)
    m = {k: np.zeros(n) for k in ("latency_ms", "images_per_s", "energy_j_per_unit", "chips_used", "batch")}
    weights = np.full(n, "", dtype=object)
    # latency and footprint never shrink with batch: a design that misses the SLO or capacity at
    # batch b is not tried at larger batches
    alive = np.ones(n, bool)
    for b in batch_candidates(scenario):
        step = builders.cnn(shape, b, prec)
        w, act = step.weight_bytes_per_chip, step.act_bytes_per_chip
        wres, _, fits, resident = residency(w, 0.0, act, hw.sram_bytes, hw.mem_bytes)
        for j in np.flatnonzero(alive & ~fits & ~feasible & (reason == "")):
            reason[j] = f"weights {_fmt_gb(w)} + activations {_fmt_gb(act)} > on-chip {_fmt_gb(hw.sram_bytes[j])} (batch {b})"
        alive &= fits
        if not alive.any():
            break
        idx = np.flatnonzero(alive)
        hw_c = hw.take(idx)
        kres = np.ones(len(idx), bool)
        r = _eval_residencies(step.ops, hw_c, cal, wres[idx], kres, resident[idx])
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
        weights[g] = np.where(wres[idx][better], "sram-resident", "weights-streamed")
    reason[~feasible & (reason == "")] = "no feasible batch"
    for k in m:
        m[k][~feasible] = 0.0
    m["throughput"] = m["images_per_s"].copy()
    for k in ("ttft_ms", "tpot_ms", "tokens_per_s", "tokens_per_s_per_user"):
        m[k] = np.zeros(n)
    m["tp"], m["pp"] = np.where(feasible, 1.0, 0.0), np.where(feasible, 1.0, 0.0)
    m["dp"] = m["chips_used"].copy()
    m["ep"] = np.where(feasible, 1.0, 0.0)
    m["weights"] = weights
    return MappingResult(feasible, reason, m)


def evaluate_scenario(scenario, hw: HwView, cal: Calibration, force_tp: int | None = None,
                      force_pp: int | None = None) -> MappingResult:
    """Best mapping of one scenario on every design of `hw` (optionally with tp / pp forced)."""
    shape = load_model_shape(scenario.model)
    prec = scenario.precision_spec() if hasattr(scenario, "precision_spec") else scenario.precision
    if scenario.kind == "cnn":
        return map_cnn(scenario, shape, prec, hw, cal, Builders)
    return map_llm(scenario, shape, prec, hw, cal, Builders, force_tp=force_tp, force_pp=force_pp)
