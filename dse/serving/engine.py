"""A continuous-batching inference engine described by iteration-time coefficients, vectorized over designs.

One engine iteration (vLLM / TensorRT-LLM "in-flight batching" step) runs every decoding sequence
for one step plus up to a token budget of prefill chunks. Its time is linear in what it does:

    t_iter = t_fixed_s                      # weights streamed once per step, launch/sync overhead
           + t_per_seq_s     · decode_seqs  # per decoding sequence (sampling, per-sequence kernels)
           + t_per_token_s   · tokens       # per token processed (decode and prefill): GEMM FLOPs
           + t_per_kv_token_s· kv_tokens    # per KV-cache token read by attention (all sequences)

Each coefficient is an array over designs. `fit_from_probes` fills them from the operator model:
evaluate evaluates 2–4 probe steps per design (e.g. one decode step at batch 1 and at batch B, one
prefill chunk of C tokens, one mixed step) and solves for the coefficients by least squares, so the
linear form is the operator model's roofline linearised around the operating point.

Speculative decoding / multi-token prediction (`with_speculation`) and disaggregated prefill/decode
pools (`DisaggFleet`) are expressed at this level too, so the simulator and the analytical model
need no knowledge of the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np


def _arr(x, dtype=float) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=dtype))


def _coef(dtype: type = float, *, low: float = 0, high: float = np.inf, default: float | None = None):
    """An EngineCoeffs field: its dtype and its valid range [low, high), declared once beside it."""
    meta = {"dtype": np.int64 if dtype is int else float, "low": low, "high": high}
    if default is None:
        return field(metadata=meta)
    return field(default_factory=lambda: np.full(1, default, dtype=meta["dtype"]), metadata=meta)


@dataclass(frozen=True)
class EngineCoeffs:
    """Iteration-time coefficients and limits of one engine per design; every field has shape (n,).

    max_batch: running sequences (prefilling + decoding) at most (vLLM `max_num_seqs`).
    chunk_tokens: tokens processed per iteration at most, decode tokens included (vLLM
    `max_num_batched_tokens`); prompts longer than the remaining budget are prefilled in chunks.
    kv_capacity_tokens: paged KV cache in tokens (blocks of the workload's `kv_block_tokens`).
    kv_reserve: 1 = a request is admitted only when blocks for its prompt plus its whole output are
    free and holds them to the end (TensorRT-LLM GUARANTEED_NO_EVICT); 0 = admitted on its prompt's
    blocks, grows block by block, preempted when the cache is full (vLLM).
    kv_bytes_per_token: KV bytes of one token (all layers), for a disaggregated KV transfer.
    spec_k, spec_acceptance: speculative decoding (0 = off): k drafted tokens verified per step,
    each accepted with probability α; the draft's cost is already folded into t_fixed/t_per_seq.
    t_per_cached_token_s: time to bring one prefix-cached token's KV from the tier the prefix cache
    lives in (0: device memory, nothing to move; host memory: KV bytes over the host link); paid by
    the prefill of each request for its cached tokens, spread over its chunks by their tokens.
    kv_host_capacity_tokens: KV tokens the host tier can hold (0 = none), for the prefix cache.
    t_cp_token_s, t_cp_hop_s: what context parallelism costs on this replica's links
    (`with_context_parallel`): passing one token's KV to the next rank, and one latency-bound hop
    per layer summed over the layers.
    t_prefill_extra_s: time a prefill token costs beyond `t_per_token_s` (0 for most engines): on an
    attention-data-parallel replica a prompt's chunk runs its attention (and the rest of its rank-local
    layers) on the one rank that holds its KV while the other ranks wait at the expert all-to-all, so
    the step is as long as if every rank prefilled a chunk (`dse.evaluate.serving.fit_engine`).
    Charged on every prefill token: an upper bound where a step's chunks come from several prompts on
    different ranks.
    """

    t_fixed_s: np.ndarray = _coef()
    t_per_seq_s: np.ndarray = _coef()
    t_per_token_s: np.ndarray = _coef()
    t_per_kv_token_s: np.ndarray = _coef()
    max_batch: np.ndarray = _coef(int, low=1)
    chunk_tokens: np.ndarray = _coef(int, low=1)
    kv_capacity_tokens: np.ndarray = _coef(int, low=1)
    kv_bytes_per_token: np.ndarray = _coef(default=0)
    spec_k: np.ndarray = _coef(int, default=0)
    spec_acceptance: np.ndarray = _coef(high=1, default=0)
    t_per_cached_token_s: np.ndarray = _coef(default=0)
    kv_host_capacity_tokens: np.ndarray = _coef(int, default=0)
    t_cp_token_s: np.ndarray = _coef(default=0)
    t_cp_hop_s: np.ndarray = _coef(default=0)
    t_prefill_extra_s: np.ndarray = _coef(default=0)
    kv_reserve: np.ndarray = _coef(int, high=2, default=0)

    def __post_init__(self):
        fs = fields(self)
        vals = {f.name: _arr(getattr(self, f.name), f.metadata["dtype"]) for f in fs}
        n = max(v.size for v in vals.values())
        for f in fs:
            v, lo, hi = vals[f.name], f.metadata["low"], f.metadata["high"]
            if v.size not in (1, n):
                raise ValueError(f"EngineCoeffs.{f.name} has {v.size} entries, others {n}: give one per design")
            if not np.all(np.isfinite(v)) or np.any(v < lo) or np.any(v >= hi):
                raise ValueError(f"EngineCoeffs.{f.name} must be finite, ≥ {lo:g}"
                                 + (f" and < {hi:g}" if np.isfinite(hi) else "") + f", got {v.min():g}..{v.max():g}")
            object.__setattr__(self, f.name, np.broadcast_to(v, (n,)).copy())

    @property
    def n(self) -> int:
        return int(self.t_fixed_s.size)

    def iteration_time_s(self, decode_seqs, tokens, kv_tokens, prefill_tokens=0) -> np.ndarray:
        """t_iter of one step with `decode_seqs` decoding sequences, `tokens` processed (of which
        `prefill_tokens` are prompt tokens), `kv_tokens` read."""
        return (self.t_fixed_s + self.t_per_seq_s * decode_seqs + self.t_per_token_s * tokens
                + self.t_per_kv_token_s * kv_tokens + self.t_prefill_extra_s * prefill_tokens)

    def tokens_per_step(self) -> np.ndarray:
        """Expected tokens a decoding sequence gains per verification step: (1 − α^(k+1)) / (1 − α)."""
        a, k = self.spec_acceptance, self.spec_k
        return (1.0 - a ** (k + 1)) / (1.0 - a)

    def take(self, i: int) -> "EngineCoeffs":
        """The engine of design i alone (for the simulator, which runs one design at a time)."""
        return EngineCoeffs(**{f: getattr(self, f)[i:i + 1] for f in self.__dataclass_fields__})


# Probe steps (decode_seqs, tokens, kv_tokens) suggested for `fit_from_probes`: one decode step at
# batch 1 and at batch `b`, one prefill chunk of `c` tokens, one decode step at batch `b` with long
# contexts; the 4 unknowns are then determined exactly.
def default_probes(batch: int, chunk_tokens: int, context_tokens: int) -> np.ndarray:
    """(4, 3) probe table [decode_seqs, tokens, kv_tokens] around an operating point."""
    b, c, L = batch, chunk_tokens, context_tokens
    return np.array([[1, 1, L], [b, b, b * L], [0, c, c], [b, b, 4 * b * L]], dtype=float)


def fit_from_probes(probes: np.ndarray, times_s: np.ndarray, **limits) -> EngineCoeffs:
    """Least-squares coefficients from probe steps evaluated by the operator model.

    probes: (p, 3) rows [decode_seqs, tokens, kv_tokens], the same for every design;
    times_s: (p, n) the operator model's time of each probe step on each design;
    limits: the other EngineCoeffs fields (max_batch, chunk_tokens, kv_capacity_tokens, ...).
    Negative fitted coefficients (noise in a nearly flat direction) are clipped to 0.
    """
    p = np.asarray(probes, dtype=float)
    t = np.asarray(times_s, dtype=float)
    if t.ndim == 1:
        t = t[:, None]
    if p.shape[0] != t.shape[0] or p.shape[1] != 3:
        raise ValueError(f"probes must be (p, 3) and times (p, n); got {p.shape} and {t.shape}")
    a = np.column_stack([np.ones(p.shape[0]), p])
    x, *_ = np.linalg.lstsq(a, t, rcond=None)
    x = np.maximum(x, 0.0)
    return EngineCoeffs(t_fixed_s=x[0], t_per_seq_s=x[1], t_per_token_s=x[2], t_per_kv_token_s=x[3], **limits)


def with_speculation(engine: EngineCoeffs, k, acceptance, draft_t_fixed_s=0.0,
                     draft_t_per_seq_s=0.0) -> EngineCoeffs:
    """The engine running speculative decoding: k tokens drafted per step, verified in one target step.

    The target processes k+1 tokens per decoding sequence per step (the simulator and the analytical
    model charge t_per_token_s·(k+1) per sequence and count k+1 tokens against the chunk budget);
    a step yields (1 − α^(k+1))/(1 − α) tokens on average. The draft runs k sequential steps, each
    costing draft_t_fixed_s + draft_t_per_seq_s·decode_seqs (a small draft model: its own weights;
    MTP heads: a fraction of one layer), folded into t_fixed_s and t_per_seq_s. It pays off when the
    step is dominated by t_fixed_s (memory-bound decode: weights read once for k+1 tokens) and
    loses when it is dominated by t_per_token_s (compute-bound: k+1 tokens cost k+1 times as much).
    """
    k = _arr(k, np.int64)
    return replace(engine, t_fixed_s=engine.t_fixed_s + k * _arr(draft_t_fixed_s),
                   t_per_seq_s=engine.t_per_seq_s + k * _arr(draft_t_per_seq_s),
                   spec_k=np.broadcast_to(k, (engine.n,)).copy(),
                   spec_acceptance=np.broadcast_to(_arr(acceptance), (engine.n,)).copy())


def with_context_parallel(engine: EngineCoeffs, cp) -> EngineCoeffs:
    """cp replicas run as one context-parallel engine (ring attention, as in Meta's context-parallel
    long-context inference): a prompt's tokens and a decode batch's sequences are split over the cp
    ranks, each holding 1/cp of every sequence's KV — per-token, per-sequence and KV-read costs fall
    by cp, token budget, batch and KV room grow by cp; each rank still reads all weights every step
    (t_fixed unchanged), each token's KV passes (cp − 1)/cp of the ring (t_cp_token_s, charged on
    every token and not overlapped with compute: an upper bound) and a step pays (cp − 1) hops per
    layer (t_cp_hop_s: queries and partial outputs going round). cp = 1 returns the engine."""
    cp = _arr(cp, np.int64)
    f = cp.astype(float)
    return replace(engine, t_fixed_s=engine.t_fixed_s + (f - 1.0) * engine.t_cp_hop_s,
                   t_per_seq_s=engine.t_per_seq_s / f,
                   t_per_token_s=engine.t_per_token_s / f + (f - 1.0) / f * engine.t_cp_token_s,
                   t_prefill_extra_s=engine.t_prefill_extra_s / f,
                   t_per_kv_token_s=engine.t_per_kv_token_s / f,
                   max_batch=engine.max_batch * cp, chunk_tokens=engine.chunk_tokens * cp,
                   kv_capacity_tokens=engine.kv_capacity_tokens * cp,
                   kv_host_capacity_tokens=engine.kv_host_capacity_tokens * cp)


@dataclass(frozen=True)
class DisaggFleet:
    """Disaggregated serving: `prefill_engines` engines only prefill (and emit the first token), then
    the KV cache (kv_bytes_per_token × prompt) crosses a link of `link_gbps` GB/s after `link_latency_s`
    to one of `decode_engines` engines that only decode. Arrays of shape (n,); the two pools may be
    different designs. Requests are routed to engines of a pool uniformly at random (each engine
    then sees Poisson arrivals at rate / pool size)."""

    prefill: EngineCoeffs
    decode: EngineCoeffs
    prefill_engines: np.ndarray
    decode_engines: np.ndarray
    link_gbps: np.ndarray
    link_latency_s: np.ndarray

    def __post_init__(self):
        n = max(self.prefill.n, self.decode.n)
        for k in ("prefill_engines", "decode_engines"):
            v = _arr(getattr(self, k), np.int64)
            if np.any(v < 1):
                raise ValueError(f"DisaggFleet.{k} must be ≥ 1")
            object.__setattr__(self, k, np.broadcast_to(v, (n,)).copy())
        for k in ("link_gbps", "link_latency_s"):
            v = _arr(getattr(self, k))
            if np.any(v < 0) or (k == "link_gbps" and np.any(v <= 0)):
                raise ValueError(f"DisaggFleet.{k} must be > 0 (latency ≥ 0)")
            object.__setattr__(self, k, np.broadcast_to(v, (n,)).copy())

    def transfer_s(self, prompt_tokens) -> np.ndarray:
        """KV transfer time of a prompt of `prompt_tokens` (broadcasts over designs)."""
        return self.link_latency_s + self.prefill.kv_bytes_per_token * np.asarray(prompt_tokens) / (
            self.link_gbps * 1e9)
