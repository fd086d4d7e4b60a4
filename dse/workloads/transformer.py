"""Decoder-only transformer → operators for one prefill or decode step on one chip of a replica.

Layout of a replica: `tp` chips split every layer Megatron-style (column-parallel QKV / gate / up,
row-parallel O / down, two all-reduces per layer; heads and KV heads split by tp, KV heads replicated
when tp > kv_heads; vocab-parallel embedding and LM head). For MoE, `ep` groups of tp chips hold
E/ep experts each; attention and the dense parts run data-parallel over the ep groups (each holds
batch/ep sequences) and tokens travel to their experts by an all-to-all before and after the experts.
A replica therefore has tp·ep chips; pipeline stages come from `Step.stages(pp)`.
"""

from __future__ import annotations

import math

import numpy as np

from dse.errors import DseUserError
from dse.workloads.ops import GELU_FLOPS, RELU_FLOPS, ROPE_FLOPS, SILU_FLOPS, SOFTMAX_FLOPS, WIDE_BYTES, OpBuilder
from dse.workloads.precision import Precision, parse_precision
from dse.workloads.shapes import ModelShape
from dse.workloads.modelfile import load_model_shape
from dse.workloads.step import Step, peak_act_bytes

ACT_FLOPS = {"silu": SILU_FLOPS, "gelu": GELU_FLOPS, "relu": RELU_FLOPS}
NORM_PARAM_BYTES = 2.0  # norm gains/biases and linear biases are kept at 16 bits
# Bytes per value of a GEMM's OUTPUT as it leaves the kernel and travels: narrow formats (FP8, FP4, INT8) are
# GEMM *inputs*, quantized just before the GEMM (in the preceding norm / activation kernel); the GEMM accumulates
# in FP32 and writes BF16, and the residual stream stays 16-bit (Micikevicius et al. 2022, "FP8 Formats for Deep
# Learning", arXiv:2209.05433: FP8 for the inputs of matrix multiplies, their outputs and the other operations in
# higher precision; DeepSeek-V3, arXiv:2412.19437 §3.3: activations quantized to FP8 only where an FP8 GEMM reads
# them, the MoE combine kept in BF16). So a collective that reduces or gathers GEMM outputs moves 16-bit values
# whatever the activation format: the tensor-parallel all-reduces (partial sums of the row-parallel O / down
# projections), the vocab-parallel embedding's all-reduce, the logits all-gather and the MoE combine. Bounds:
# 2 (BF16/FP16); FP32 outputs (4) would double these payloads.
GEMM_OUT_BYTES = 2.0


# The MoE router (gate) GEMM keeps its weights, input and arithmetic at 16 bits (ops.WIDE_BYTES, `gemm(wide=True)`)
# whatever the precision of the rest of the model: it picks the experts from small logit differences, so
# quantization recipes keep it wide. DeepSeek-V3 (arXiv:2412.19437 §3.3.1) retains "the embedding module, the output
# head, MoE gating modules, normalization operators, and attention operators" in BF16/FP32 under its FP8 recipe, and
# its released FP8 checkpoint stores the gate weights in BF16; NVIDIA's TensorRT Model Optimizer (which produces the
# FP8 / NVFP4 checkpoints TensorRT-LLM runs) disables its quantizers on the router ("*router*", "*mlp.gate.*") and on
# lm_head by default (recalled from its default quantization config, not checked against its source here; the
# DeepSeek-V3 report is the primary source). So the router reads the 16-bit normed hidden state, and the token gather (`moe_permute`) reads
# the same 16-bit rows and writes them in the expert GEMMs' input format (quantizing on the way). Bounds: 2 bytes
# (BF16); 4 for an FP32 router.


# Bytes the router's top-k writes per pick: one 32-bit expert index and one 32-bit routing weight (the int32 ids and
# fp32 scales TensorRT-LLM's and vLLM's MoE routing kernels hand to the permutation); bounds 4-8 (16-bit weights).
TOPK_PICK_BYTES = 8.0


# Expert activation note. The experts' activation (SiLU(gate) x up, or the plain activation) runs as a kernel of its own between the two
# grouped GEMMs, over the permuted rows: it reads the up GEMM's 16-bit outputs (GEMM_OUT_BYTES: the GEMM accumulates
# in FP32 and writes BF16) and writes the down GEMM's input in the activation format (quantizing on the way). Not a
# GEMM epilogue as the dense MLP's gated activation is in the fusing stacks: MegaBlocks (arXiv:2211.15841 §3, Fig. 6)
# computes the expert layer as grouped / block-sparse GEMM, then the activation as a separate elementwise op on the
# block-sparse intermediate, then the second GEMM; vLLM's and SGLang's fused_moe run the first grouped GEMM into a
# 16-bit intermediate cache, then their silu_and_mul kernel, then (FP8) a per-token quantize, then the second
# grouped GEMM (vllm/model_executor/layers/fused_moe/fused_moe.py, recalled, not read here). Bound: a grouped-GEMM
# kernel with the gated activation and quantization in its epilogue (gate / up weight columns interleaved) removes
# this kernel and writes ffn narrow values instead of 2 ffn 16-bit ones; dse keeps the unfused form for every stack.


def gemm_out_bytes(act_bytes: float) -> float:
    """Bytes per value of a GEMM output or of the residual stream (what the tensor-parallel collectives reduce or
    gather and what a pipeline stage hands to the next): 16 bits (GEMM_OUT_BYTES) whatever the narrower
    activation format of the GEMM inputs."""
    return max(float(act_bytes), GEMM_OUT_BYTES)


def mean_decode_kv_len(prompt: int, output: int) -> float:
    """Mean KV length attended over the decode of `output` tokens: token t (1..output) attends
    prompt + t positions, whose mean is prompt + (output + 1) / 2."""
    return prompt + (output + 1) / 2.0


def expected_experts_touched(experts: int, active: int, tokens: float, skew: float = 0.0) -> float:
    """Expected distinct experts hit when `tokens` tokens each pick `active` of `experts`: uniform
    routing gives E·(1 − (1 − k/E)^tokens) (k at batch 1, all E at large batch); with `skew` > 0
    expert i is picked with probability min(1, k·p_i), p_i ∝ (i+1)^−skew (Zipf), so fewer distinct
    experts are read."""
    if skew <= 0:
        return experts * (1.0 - (1.0 - active / experts) ** tokens)
    q = _pick_probabilities(experts, active, skew)
    return float(np.sum(1.0 - (1.0 - q) ** tokens))


def _pick_probabilities(experts: int, active: int, skew: float) -> np.ndarray:
    """Per-token probability q_i that expert i is among the `active` distinct experts a token picks, with
    Zipf(skew) popularity p_i ∝ (i+1)^−skew: q_i = min(1, c·p_i) with c such that Σq = active (a token
    always picks `active` experts; an expert too popular to be missed is picked by every token and the
    picks it cannot take go to the others in proportion to popularity: inclusion probabilities
    proportional to size, capped at 1)."""
    p = (np.arange(experts) + 1.0) ** -skew  # descending
    k = min(active, experts)
    tail = np.cumsum(p[::-1])[::-1]  # tail[m] = Σ_{i≥m} p_i
    m = np.arange(k)
    c = (k - m) / tail[m]  # scale when the m most popular experts are capped at 1
    ok = c * p[m] <= 1.0 + 1e-12  # the first uncapped expert stays below 1 (always true at m = k-1)
    first = int(np.argmax(ok))
    q = np.minimum(1.0, c[first] * p)
    q[:first] = 1.0
    return q


def expected_max_binomial(n: float, p: float, chips: int) -> float:
    """E[max of `chips` independent Binomial(n, p)] = Σ_{j≥1} (1 − F(j−1)^chips), F the binomial CDF
    (exact sum over the support; n is rounded to an integer). The load of the most loaded of `chips`
    equal shares when each unit lands on a share with probability p."""
    n = int(round(n))
    if chips <= 1 or n <= 0 or p <= 0.0:
        return n * p
    if p >= 1.0:
        return float(n)
    j = np.arange(n + 1, dtype=float)
    lg = np.vectorize(math.lgamma)
    log_pmf = lg(n + 1.0) - lg(j + 1.0) - lg(n - j + 1.0) + j * math.log(p) + (n - j) * math.log1p(-p)
    cdf = np.minimum(np.cumsum(np.exp(log_pmf - log_pmf.max()) * math.exp(log_pmf.max())), 1.0)
    return float(np.sum(1.0 - cdf[:-1] ** chips))


# Above this many token-expert pairs per step the busiest chip's share is taken from the normal
# approximation of the binomial (mean + σ·E[max of `ep` standard normals]); the exact sum is O(pairs).
EXACT_PAIRS_MAX = 20000


def busiest_expert_chip(experts: int, active: int, tokens: float, ep: int, skew: float) -> tuple[float, float]:
    """(token-expert pairs per token of the replica, distinct experts touched) on the busiest of `ep`
    chips, experts placed round-robin (expert i on chip i mod ep). A step runs at the pace of its most
    loaded chip, so this is the expected MAXIMUM over the ep chips, not the mean: with uniform routing
    each token-expert pair lands on a given chip with probability 1/ep (max of ep Binomial(tokens·k,
    1/ep)) and each of its E/ep experts is hit with probability 1 − (1 − k/E)^tokens (max of ep
    Binomial(E/ep, that)); at batch 1 with E = ep the busiest chip reads one expert where the mean is
    k/ep. Skewed routing loads the chip holding the hottest experts more: each chip's pairs are
    Binomial(tokens·k, its share of the picks) and the busiest is the expected maximum of those (the
    same statistics as uniform routing, which it becomes continuously as skew → 0; see _skewed_busiest).
    Uniform routing with equal expert counts per chip has the closed form below; unequal counts (E not a
    multiple of ep) load the chips holding one more expert more, which the general form counts."""
    if skew <= 0 and experts % ep == 0:
        per_chip = math.ceil(experts / ep)
        hit = 1.0 - (1.0 - active / experts) ** tokens
        touched = expected_max_binomial(per_chip, hit, ep)
        pairs = tokens * active
        if pairs <= EXACT_PAIRS_MAX:
            busiest = expected_max_binomial(pairs, 1.0 / ep, ep)
        else:
            z = _expected_max_std_normal(ep)
            busiest = pairs / ep + z * math.sqrt(pairs * (1.0 / ep) * (1.0 - 1.0 / ep))
        # the busiest chip's pairs spread over its E/ep experts: a second, pair-consistent estimate of
        # the experts it reads (exact where one token's k picks land on k different chips)
        touched = max(touched, per_chip * (1.0 - (1.0 - 1.0 / per_chip) ** busiest))
        return busiest / max(tokens, 1e-12), min(touched, float(per_chip))
    return _skewed_busiest(experts, active, tokens, ep, skew)


def _skewed_busiest(experts: int, active: int, tokens: float, ep: int, skew: float) -> tuple[float, float]:
    """busiest_expert_chip under Zipf(skew) popularity, experts round-robin over the ep chips (so the
    hottest experts sit on different chips). Chip c receives each of the tokens·Σq picks with probability
    m_c / Σq, m_c = Σ_{i on c} q_i: its pairs are Binomial(tokens·Σq, m_c / Σq) and the step waits for the
    expected maximum over the chips, which at skew → 0 is the uniform case's max of ep Binomial(tokens·k,
    1/ep) (no jump from the chips' sampling noise to a noiseless mean when skew leaves 0). Distinct experts
    read on the busiest chip: the larger of the expected maximum over the chips of Binomial(experts on c,
    their mean hit probability) and the busiest chip's pairs spread over its experts in proportion to q_i."""
    q = _pick_probabilities(experts, active, skew)
    chip = np.arange(experts) % ep
    load = np.bincount(chip, weights=q, minlength=ep)  # m_c: expected pairs per token on chip c
    n_loc = np.bincount(chip, minlength=ep).astype(float)
    picks = float(q.sum())
    pairs = tokens * picks
    busiest = _expected_max_binomials(np.full(ep, pairs), load / picks, EXACT_PAIRS_MAX)
    hit = 1.0 - (1.0 - q) ** tokens
    mean_hit = np.bincount(chip, weights=hit, minlength=ep) / np.maximum(n_loc, 1.0)
    touched = _expected_max_binomials(n_loc, mean_hit, math.inf)
    c = int(np.argmax(load))
    share = q[chip == c] / load[c]
    touched = max(touched, float(np.sum(1.0 - (1.0 - share) ** busiest)))
    return busiest / max(tokens, 1e-12), min(touched, float(n_loc.max()))


def _expected_max_binomials(n: np.ndarray, p: np.ndarray, exact_max: float) -> float:
    """E[max_c X_c] for independent X_c ~ Binomial(n_c, p_c) (n rounded to integers): the exact sum
    Σ_{j≥1} (1 − Π_c F_c(j−1)) while max n ≤ `exact_max`, else the normal approximation integrated on a
    grid, E[max] = a + ∫_a^b (1 − Π_c Φ((x − μ_c)/σ_c)) dx over the span [a, b] of ±10σ around the means.
    The exact sum counts the terms below the most loaded chip's μ − 12σ as 1 (its CDF there is < 1e-30)
    and stops at the largest μ + 12σ (every CDF is 1 within 1e-30 beyond), so it costs ~24σ terms."""
    from scipy.special import bdtr, ndtr  # deferred: scipy.special is only needed for MoE steps

    n = np.round(np.asarray(n, float))
    p = np.clip(np.asarray(p, float), 0.0, 1.0)
    mu, sd = n * p, np.sqrt(n * p * (1.0 - p))
    if n.max() <= exact_max:
        lo = int(max(0.0, math.floor(float(np.max(mu - 12.0 * sd - 1.0)))))
        hi = int(min(n.max(), math.ceil(float(np.max(mu + 12.0 * sd + 1.0)))))
        j = np.arange(lo, hi)[:, None]  # j - 1 of the sum; integer arguments (bdtr's float form is deprecated)
        ni = np.maximum(n, 1.0).astype(np.int64)[None, :]
        cdf = np.where(j >= n[None, :], 1.0, bdtr(np.minimum(j, ni), ni, p[None, :]))
        return float(lo + np.sum(1.0 - np.prod(cdf, axis=1)))
    a, b = float(np.min(mu - 10.0 * sd)), float(np.max(mu + 10.0 * sd))
    if b - a <= 0.0:
        return float(mu.max())
    x = np.linspace(a, b, 4001)
    z = (x[:, None] - mu[None, :]) / np.maximum(sd, 1e-300)[None, :]
    g = np.prod(np.where(sd[None, :] > 0, ndtr(z), (x[:, None] >= mu[None, :]).astype(float)), axis=1)
    return a + float(np.trapezoid(1.0 - g, x))


def _expected_max_std_normal(n: int) -> float:
    """E[max of n iid standard normals] by Blom's approximation Φ⁻¹((n − 0.375)/(n + 0.25))
    (Blom 1958), within 1 % of the exact value for n ≥ 2; 0 for n = 1."""
    if n <= 1:
        return 0.0
    from statistics import NormalDist

    return NormalDist().inv_cdf((n - 0.375) / (n + 0.25))


# Rows of one tile of a grouped expert GEMM: the kernel runs whole tiles, so each expert's tokens are padded
# to a multiple of the tile (MegaBlocks, arXiv:2211.15841 §3-4: expert batches padded to 128-row blocks;
# CUTLASS grouped-GEMM CTA tiles are 128 rows). Launches with few rows per expert use a smaller tile
# (autotuned tile tables keyed by the batch, down to the 16-row tensor-core MMA shape m16n8k16 of the
# PTX ISA); the tile is the power of two at or above the mean rows per expert, within these bounds. An autotuned
# table read for it: SGLang 0.5.23's Triton fused-MoE configs for 128 experts of N = 768 (Qwen3-30B-A3B at tp 1; H100 /
# H200, sglang/srt/layers/moe/moe_runner/triton_utils/configs/triton_3_7_1, triton_3_6_0) run BLOCK_SIZE_M 16 up to
# 128 tokens per launch, 32 at 256, 64 at 512, 128 from 1,024-1,536: this rule's tile or twice it
# (tests/test_moe_tiles.py).
MOE_TILE_MAX_ROWS = 128
MOE_TILE_MIN_ROWS = 16


def moe_tile_rows(mean_rows: float) -> int:
    """Tile rows a grouped expert GEMM runs with at `mean_rows` tokens per expert (see MOE_TILE_MAX_ROWS)."""
    pow2 = 1 << max(0, math.ceil(math.log2(max(mean_rows, 1.0)) - 1e-6))  # 16.0000002 rows -> 16, not 32
    return int(min(MOE_TILE_MAX_ROWS, max(MOE_TILE_MIN_ROWS, pow2)))


def padded_expert_rows(pairs: float, experts: int, tile: int) -> float:
    """Expected rows a grouped GEMM executes over `experts` experts when `pairs` token-expert pairs land
    uniformly on them: Σ_e E[ceil(X_e / tile) · tile] with X_e ~ Binomial(pairs, 1/experts), i.e.
    experts · tile · Σ_{j≥0} P(X > j·tile). At least `pairs`, at most pairs + one tile per expert hit."""
    from scipy.special import gammaln  # deferred: scipy.special is only needed for MoE steps

    n = int(round(pairs))
    if n <= 0:
        return 0.0
    if experts <= 1:
        return float(math.ceil(n / tile) * tile)
    p = 1.0 / experts
    mu, sd = n * p, math.sqrt(n * p * (1.0 - p))
    hi = min(n, int(mu + 12.0 * sd + 2 * tile))  # the pmf beyond is below 1e-30
    x = np.arange(hi + 1, dtype=float)
    log_pmf = gammaln(n + 1.0) - gammaln(x + 1.0) - gammaln(n - x + 1.0) + x * math.log(p) + (n - x) * math.log1p(-p)
    pmf = np.exp(log_pmf)
    tiles = np.ceil(x / tile)  # tiles an expert with x rows runs (0 for an expert no token picked)
    return float(experts * tile * np.sum(pmf * tiles))


class _Dims:
    """Per-chip dimensions of a layer after the tp / ep split."""

    def __init__(self, s: ModelShape, tp: int, ep: int):
        self.hq = math.ceil(s.heads / tp)
        self.hk = math.ceil(s.kv_heads / tp)  # ≥ 1: KV heads replicate when tp > kv_heads
        self.d = s.head_dim
        self.ffn = math.ceil((s.expert_ffn if s.is_moe else s.ffn) / tp)  # per expert for MoE
        self.dense_ffn = math.ceil(s.ffn / tp)                            # DeepSeek's dense first layers
        self.shared_ffn = math.ceil(s.shared_experts * s.expert_ffn / tp)
        self.vocab = math.ceil(s.vocab / tp) if s.vocab else 0
        self.experts = math.ceil(s.experts / ep)
        self.mats = 3 if s.gated_mlp else 2


def _mla_attn_weights(s: ModelShape, dm: _Dims) -> float:
    """Weights of one MLA layer's attention on one chip (q_a / kv_a projections replicated over tp)."""
    qd = s.qk_nope_head_dim + s.qk_rope_head_dim
    q = (s.hidden * s.q_lora_rank + s.q_lora_rank * dm.hq * qd) if s.q_lora_rank else s.hidden * dm.hq * qd
    kv = s.hidden * (s.kv_lora_rank + s.qk_rope_head_dim) + s.kv_lora_rank * dm.hq * (s.qk_nope_head_dim + s.v_head_dim)
    return q + kv + dm.hq * s.v_head_dim * s.hidden


def _layer_weight_bytes(s: ModelShape, dm: _Dims, p: Precision) -> float:
    """This chip's weights of one layer (all local experts for MoE; the mean over dense and MoE
    layers when the first layers are dense)."""
    wa = p.class_weight_bytes("attn")
    if s.is_mla:
        attn = _mla_attn_weights(s, dm) * wa + (s.q_lora_rank + s.kv_lora_rank) * NORM_PARAM_BYTES
    else:
        qkv_n = (dm.hq + 2 * dm.hk) * dm.d
        attn = (s.hidden * qkv_n + dm.hq * dm.d * s.hidden) * wa
        attn += (qkv_n + s.hidden) * NORM_PARAM_BYTES if s.attn_bias else 0.0
        attn += ((2 * dm.d if s.qk_norm else 0) + (dm.hq if s.sinks else 0)) * NORM_PARAM_BYTES
    mlp = dm.mats * s.hidden * dm.ffn * p.class_weight_bytes("experts" if s.is_moe else "mlp")
    mlp += ((dm.mats - 1) * dm.ffn + s.hidden) * NORM_PARAM_BYTES if s.mlp_bias else 0.0
    if s.is_moe:
        mlp = dm.experts * mlp + s.hidden * s.experts * WIDE_BYTES  # + router (replicated, 16-bit)
        mlp += s.experts * NORM_PARAM_BYTES if s.router_bias else 0.0
        mlp += dm.mats * s.hidden * dm.shared_ffn * p.class_weight_bytes("shared_experts")
        if s.dense_layers:
            dense = dm.mats * s.hidden * dm.dense_ffn * p.class_weight_bytes("mlp")
            mlp = (s.moe_layers * mlp + s.dense_layers * dense) / s.layers
    norms = s.norm_params() * NORM_PARAM_BYTES
    return attn + mlp + norms


def _attention_ops(b: OpBuilder, s: ModelShape, dm: _Dims, *, batch: float, q_len: int, past: float,
                   causal: bool, flash: bool, kv_cache: bool) -> None:
    """Attention of a GQA/MHA layer; sliding-window layers get their own row (share of the layers)."""
    kw = dict(batch=batch, heads=dm.hq, kv_heads=dm.hk, head_dim=dm.d, q_len=q_len, past_len=past,
              causal=causal, flash=flash, cache=kv_cache)
    swa = s.window_layers
    if not swa:
        b.attention("attn", **kw)
    elif swa == s.layers:
        b.attention("attn", window=s.sliding_window, **kw)
    else:
        with b.share((s.layers - swa) / s.layers):
            b.attention("attn", **kw)
        with b.share(swa / s.layers):
            b.attention("attn_swa", window=s.sliding_window, **kw)


def _mla_ops(b: OpBuilder, s: ModelShape, dm: _Dims, *, batch: float, q_len: int, past: float,
             causal: bool, flash: bool, absorbed: bool) -> None:
    """Multi-head latent attention (DeepSeek-V2 arXiv:2405.04434 §2.1; V3 arXiv:2412.19437 §2.1).

    The cache holds one latent c_KV (kv_lora_rank) + the shared rotary key (qk_rope_head_dim) per token
    and layer. Decode (`absorbed`) folds W_UK into the query and W_UV after attention, so attention
    runs over the latent as MQA (one KV "head" of kv_lora + rope values, K and V share it). Prefill
    expands the latent into per-head K and V with W_UKV (kv_b_proj) and runs ordinary attention.
    """
    p = b.prec
    T = batch * q_len
    nope, rope, v, r = s.qk_nope_head_dim, s.qk_rope_head_dim, s.v_head_dim, s.kv_lora_rank
    if s.q_lora_rank:
        b.gemm("q_a_proj", T, s.hidden, s.q_lora_rank, tensor="attn")
        b.norm("q_a_norm", T, s.q_lora_rank, "rmsnorm")
        b.gemm("q_b_proj", T, s.q_lora_rank, dm.hq * (nope + rope), tensor="attn")
    else:
        b.gemm("q_proj", T, s.hidden, dm.hq * (nope + rope), tensor="attn")
    b.gemm("kv_a_proj", T, s.hidden, r + rope, tensor="attn")
    b.norm("kv_a_norm", T, r, "rmsnorm")
    b.elementwise("rope", T * (dm.hq + 1) * rope, inputs=1, flops_per=ROPE_FLOPS)
    if absorbed:
        b.gemm("q_absorb", T, nope, r, groups=dm.hq, tensor="attn")  # q_nope · W_UK per head
        b.attention("attn", batch=batch, heads=dm.hq, kv_heads=1, head_dim=r + rope, v_dim=r, q_len=q_len,
                    past_len=past, causal=causal, flash=flash, latent=True)
        b.gemm("v_absorb", T, r, v, groups=dm.hq, tensor="attn")     # latent context · W_UV per head
    else:
        lat = (r + rope) * p.kv_bytes
        b.kv_cache("mla_cache", read_bytes=batch * past * lat, write_bytes=T * lat)
        b.gemm("kv_b_proj", batch * (past + q_len), r, dm.hq * (nope + v), tensor="attn")
        b.attention("attn", batch=batch, heads=dm.hq, kv_heads=dm.hq, head_dim=nope + rope, v_dim=v,
                    q_len=q_len, past_len=past, causal=causal, flash=flash, cache=False, cache_read=False)
    b.gemm("o_proj", T, dm.hq * v, s.hidden, tensor="attn")


def add_layer_ops(b: OpBuilder, s: ModelShape, dm: _Dims, *, batch: float, q_len: int, past: float,
                  tp: int, ep: int, causal: bool, flash: bool, replica_tokens: float,
                  kv_cache: bool = True, absorbed: bool = True) -> None:
    """Append one transformer layer's operators (inside `b.layers(n)`); `absorbed`: MLA decode form."""
    p = b.prec
    T = batch * q_len
    ab = p.act_bytes
    rb = gemm_out_bytes(ab)  # the all-reduces sum 16-bit GEMM outputs
    b.norm("attn_norm", T, s.hidden, s.norm)
    if s.is_mla:
        _mla_ops(b, s, dm, batch=batch, q_len=q_len, past=past, causal=causal, flash=flash, absorbed=absorbed)
    else:
        b.gemm("qkv_proj", T, s.hidden, (dm.hq + 2 * dm.hk) * dm.d, bias=s.attn_bias, tensor="attn")
        if s.qk_norm:
            b.norm("qk_norm", T * (dm.hq + dm.hk), dm.d, "rmsnorm")
        if s.rope_dim:
            b.elementwise("rope", T * (dm.hq + dm.hk) * s.rope_dim, inputs=1, flops_per=ROPE_FLOPS)
        _attention_ops(b, s, dm, batch=batch, q_len=q_len, past=past, causal=causal, flash=flash,
                       kv_cache=kv_cache)
        b.gemm("o_proj", T, dm.hq * dm.d, s.hidden, bias=s.attn_bias, tensor="attn")
    if not s.parallel_block:
        b.allreduce("attn_allreduce", T * s.hidden * rb, tp)
        b.elementwise("attn_residual", T * s.hidden)
        b.norm("mlp_norm", T, s.hidden, s.norm)
    act = ACT_FLOPS[s.activation]
    inputs = 2 if s.gated_mlp else 1
    up_n = (dm.mats - 1) * dm.ffn
    if not s.is_moe:
        b.gemm("mlp_up", T, s.hidden, up_n, bias=s.mlp_bias, tensor="mlp")
        b.act("mlp_act", T * dm.ffn, flops_per=act, inputs=inputs)
        b.gemm("mlp_down", T, dm.ffn, s.hidden, bias=s.mlp_bias, tensor="mlp")
    else:
        if s.dense_layers:
            with b.share(s.dense_layers / s.layers):
                b.gemm("dense_mlp_up", T, s.hidden, (dm.mats - 1) * dm.dense_ffn, tensor="mlp")
                b.act("dense_mlp_act", T * dm.dense_ffn, flops_per=act, inputs=inputs)
                b.gemm("dense_mlp_down", T, dm.dense_ffn, s.hidden, tensor="mlp")
            with b.share(s.moe_layers / s.layers):
                _moe_ops(b, s, dm, T=T, ep=ep, replica_tokens=replica_tokens, act=act, inputs=inputs, up_n=up_n)
        else:
            _moe_ops(b, s, dm, T=T, ep=ep, replica_tokens=replica_tokens, act=act, inputs=inputs, up_n=up_n)
    b.allreduce("mlp_allreduce", T * s.hidden * rb, tp)
    b.elementwise("mlp_residual", T * s.hidden, inputs=3 if s.parallel_block else 2)


def _moe_ops(b: OpBuilder, s: ModelShape, dm: _Dims, *, T: float, ep: int, replica_tokens: float,
             act: float, inputs: int, up_n: int) -> None:
    """Router, token permutation, all-to-all dispatch, the routed experts of the busiest chip, shared
    experts, combine, un-permutation.

    Grouped expert GEMMs need each expert's tokens in contiguous rows: a gather copies every token's row
    to its k experts' rows (in the expert GEMMs' input format), and after the experts a scatter-reduce
    sums each token's k expert outputs back into its row with the router weights (MegaBlocks,
    arXiv:2211.15841 §3: gather / grouped GEMM / scatter; the same permute and finalize kernels run in
    every MoE serving stack). Neither is a GEMM epilogue: a token's k rows live in k different experts'
    tiles. The expert outputs are written and read at 16 bits (the combine's precision, `gemm_out_bytes`),
    and so are the up GEMM's, which the experts' activation reads as a kernel of its own (the expert activation note)."""
    ab = b.prec.act_bytes
    cb = gemm_out_bytes(ab)  # the combine moves the experts' 16-bit outputs
    k, E = s.active_experts, s.experts
    b.gemm("router", T, s.hidden, E, wide=True)  # 16-bit weights, input and arithmetic (see the router note above)
    # softmax + top-k over the 16-bit logits: each token keeps k picks, a 32-bit expert index and a 32-bit weight each
    b.vector("router_topk", "softmax", flops=SOFTMAX_FLOPS * T * E, act_in_bytes=T * E * WIDE_BYTES,
             act_out_bytes=T * k * TOPK_PICK_BYTES)
    # the gather reads the router's 16-bit input rows and writes each token's k copies in the experts' input format
    b.permute("moe_permute", rows_in=T, rows_out=T * k, width=s.hidden, in_bytes=WIDE_BYTES, out_bytes=ab)
    b.alltoall("moe_dispatch", T * k * s.hidden * ab, ep)
    if s.routing_skew > 0 or ep > 1:  # the step waits for the most loaded of the ep chips
        pairs_per_token, touched = busiest_expert_chip(E, k, replica_tokens, ep, s.routing_skew)
        te = replica_tokens * pairs_per_token  # token-expert pairs at the busiest chip's experts
    else:
        touched = dm.experts * (1.0 - (1.0 - k / E) ** replica_tokens)
        te = T * k  # token-expert pairs arriving at this chip's experts (balanced routing)
    # executed rows per expert hit: its tokens padded to whole tiles (the bytes are those of the real rows);
    # the padded total over the chip's experts divided by the experts the same binomial hits
    n_loc, n_pairs = dm.experts, round(te)
    hit = n_loc * (1.0 - (1.0 - 1.0 / n_loc) ** n_pairs) if n_loc > 1 else float(n_pairs > 0)
    rows = padded_expert_rows(te, n_loc, moe_tile_rows(te / max(touched, 1e-12))) / max(hit, 1e-12)
    rows = max(rows, te / max(touched, 1e-12))
    # the up (gate + up) grouped GEMM writes its 16-bit outputs; the activation is a kernel of its own over the
    # permuted rows, reading them and writing the down GEMM's input format (the expert activation note above)
    b.gemm("experts_up", rows, s.hidden, up_n, groups=touched, bias=s.mlp_bias, tensor="experts",
           act_in_bytes=te * s.hidden * ab, act_out_bytes=te * up_n * cb)
    b.permute("experts_act", rows_in=te, rows_out=te, width=up_n, out_width=dm.ffn, in_bytes=cb, out_bytes=ab,
              flops_per=(act + inputs - 1) * dm.ffn / up_n)
    b.gemm("experts_down", rows, dm.ffn, s.hidden, groups=touched, bias=s.mlp_bias, tensor="experts",
           act_in_bytes=te * dm.ffn * ab, act_out_bytes=te * s.hidden * cb)
    if s.shared_experts:  # every token, tensor parallel like a dense MLP
        b.gemm("shared_up", T, s.hidden, (dm.mats - 1) * dm.shared_ffn, tensor="shared_experts")
        b.act("shared_act", T * dm.shared_ffn, flops_per=act, inputs=inputs)
        b.gemm("shared_down", T, dm.shared_ffn, s.hidden, tensor="shared_experts")
    # the combine returns each token's k expert outputs for the weighted sum at 16 bits whatever the
    # activation format (DeepSeek-V3, arXiv:2412.19437 §3.3: dispatch in FP8, combine kept in BF16)
    b.alltoall("moe_combine", T * k * s.hidden * cb, ep)
    # weighted sum of each token's k expert outputs (multiply and add per value read)
    b.permute("moe_unpermute", rows_in=T * k, rows_out=T, width=s.hidden, in_bytes=cb, out_bytes=ab, flops_per=2.0)


def build_llm_step(shape: ModelShape | str, phase: str, batch: int, seq_len: int,
                   kv_len: float | None = None, tp: int = 1, ep: int = 1,
                   prec: Precision | str | dict | None = None, flash: bool = True, *,
                   context: float | None = None) -> Step:
    """Operators of one step on one chip.

    phase "prefill": `seq_len` prompt tokens per sequence (M = batch·seq_len), logits for the last
    token only. phase "decode": `seq_len` new tokens per sequence (normally 1, M = batch).
    `kv_len` = KV length attended by the last new token, including the new tokens (prefill of a fresh
    prompt: seq_len; decode: `mean_decode_kv_len(prompt, output)`); the cached prefix read from
    memory is kv_len − seq_len. `context` = tokens per sequence whose KV is reserved for the capacity
    check (default kv_len; pass prompt + output for serving).
    """
    s = load_model_shape(shape) if isinstance(shape, str) else shape
    p = parse_precision(prec)
    if s.family != "llm":
        raise DseUserError(f"build_llm_step needs an llm model, got {s.name} ({s.family})")
    if phase not in ("prefill", "decode"):
        raise DseUserError(f"unknown phase '{phase}' (valid: prefill, decode)")
    if batch < 1 or seq_len < 1 or tp < 1 or ep < 1:
        raise DseUserError("batch, seq_len, tp and ep must be >= 1")
    if ep > 1 and not s.is_moe:
        raise DseUserError(f"expert parallelism (ep={ep}) needs a mixture-of-experts model; {s.name} is dense")
    if ep > s.experts:
        raise DseUserError(f"ep={ep} > {s.experts} experts of {s.name}")
    kv_len = float(seq_len if kv_len is None else kv_len)
    past = max(kv_len - seq_len, 0.0)
    ctx = float(context if context is not None else max(kv_len, seq_len))
    dm = _Dims(s, tp, ep)
    bl = batch / ep  # sequences per ep group (attention is data parallel across ep)
    T = bl * seq_len
    ab = p.act_bytes

    b = OpBuilder(p)
    b.embed("embed", T, s.hidden, split=tp, tensor="embed")
    b.allreduce("embed_allreduce", T * s.hidden * gemm_out_bytes(ab), tp)  # vocab-parallel embedding (Megatron)
    with b.layers(s.layers):
        add_layer_ops(b, s, dm, batch=bl, q_len=seq_len, past=past, tp=tp, ep=ep, causal=True,
                      flash=flash, replica_tokens=batch * seq_len, absorbed=phase == "decode")
    t_out = bl * (seq_len if phase == "decode" else 1)
    b.norm("final_norm", t_out, s.hidden, s.norm)
    b.gemm("lm_head", t_out, s.hidden, dm.vocab, bias=s.lm_head_bias, tensor="embed")
    b.allgather("logits_allgather", t_out * dm.vocab * gemm_out_bytes(ab), tp)
    ops = b.table()

    layer_w = _layer_weight_bytes(s, dm, p)
    embed_w = dm.vocab * s.hidden * p.class_weight_bytes("embed", sparse_ok=False)
    head_w = s.hidden * NORM_PARAM_BYTES * (2 if s.norm == "layernorm" else 1)
    if not s.tied_embeddings:
        head_w += dm.vocab * s.hidden * p.class_weight_bytes("embed")
    if s.is_mla or s.window_layers:  # the shape owns the formula (latent / window-capped cache)
        layer_kv = s.kv_cache_bytes(bl, ctx, tp, p.kv_bytes) / s.layers
    else:
        layer_kv = bl * ctx * 2 * dm.hk * dm.d * p.kv_bytes
    return Step(
        ops=ops, layers=s.layers, phase=phase, batch=batch, prec=p, tp=tp, ep=ep,
        seq_len=seq_len, kv_len=kv_len,
        weight_bytes_per_chip=s.layers * layer_w + embed_w + head_w,
        kv_bytes_per_chip=s.layers * layer_kv,
        act_bytes_per_chip=peak_act_bytes(ops, resident=T * s.hidden * ab),
        tokens=float(batch * seq_len),
        layer_weight_bytes=layer_w, embed_weight_bytes=embed_w, head_weight_bytes=head_w,
        layer_kv_bytes=layer_kv, boundary_bytes=T * s.hidden * gemm_out_bytes(ab),
    )
