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

from dse.errors import DseUserError
from dse.workloads.ops import GELU_FLOPS, RELU_FLOPS, ROPE_FLOPS, SILU_FLOPS, OpBuilder
from dse.workloads.precision import Precision, parse_precision
from dse.workloads.shapes import ModelShape, load_model_shape
from dse.workloads.step import Step, peak_act_bytes

ACT_FLOPS = {"silu": SILU_FLOPS, "gelu": GELU_FLOPS, "relu": RELU_FLOPS}
NORM_PARAM_BYTES = 2.0  # norm gains/biases and linear biases are kept at 16 bits


def mean_decode_kv_len(prompt: int, output: int) -> float:
    """Mean KV length attended over the decode of `output` tokens: token t (1..output) attends
    prompt + t positions, whose mean is prompt + (output + 1) / 2."""
    return prompt + (output + 1) / 2.0


def expected_experts_touched(experts: int, active: int, tokens: float) -> float:
    """Expected distinct experts hit when `tokens` tokens each pick `active` of `experts` (uniform
    routing): E·(1 − (1 − k/E)^tokens). At batch 1 that is k; at large batch all E."""
    return experts * (1.0 - (1.0 - active / experts) ** tokens)


class _Dims:
    """Per-chip dimensions of a layer after the tp / ep split."""

    def __init__(self, s: ModelShape, tp: int, ep: int):
        self.hq = math.ceil(s.heads / tp)
        self.hk = math.ceil(s.kv_heads / tp)  # ≥ 1: KV heads replicate when tp > kv_heads
        self.d = s.head_dim
        self.ffn = math.ceil((s.expert_ffn if s.is_moe else s.ffn) / tp)
        self.vocab = math.ceil(s.vocab / tp) if s.vocab else 0
        self.experts = math.ceil(s.experts / ep)
        self.mats = 3 if s.gated_mlp else 2


def _layer_weight_bytes(s: ModelShape, dm: _Dims, p: Precision) -> float:
    """This chip's weights of one layer (all local experts for MoE)."""
    qkv_n = (dm.hq + 2 * dm.hk) * dm.d
    attn = (s.hidden * qkv_n + dm.hq * dm.d * s.hidden) * p.weight_bytes
    attn += (qkv_n + s.hidden) * NORM_PARAM_BYTES if s.attn_bias else 0.0
    mlp = dm.mats * s.hidden * dm.ffn * p.weight_bytes
    mlp += ((dm.mats - 1) * dm.ffn + s.hidden) * NORM_PARAM_BYTES if s.mlp_bias else 0.0
    if s.is_moe:
        mlp = dm.experts * mlp + s.hidden * s.experts * p.weight_bytes  # + router (replicated)
    norms = s.norm_params() * NORM_PARAM_BYTES
    return attn + mlp + norms


def add_layer_ops(b: OpBuilder, s: ModelShape, dm: _Dims, *, batch: float, q_len: int, past: float,
                  tp: int, ep: int, causal: bool, flash: bool, replica_tokens: float,
                  kv_cache: bool = True) -> None:
    """Append one transformer layer's operators (inside `b.layers(n)`)."""
    p = b.prec
    T = batch * q_len
    ab = p.act_bytes
    b.norm("attn_norm", T, s.hidden, s.norm)
    b.gemm("qkv_proj", T, s.hidden, (dm.hq + 2 * dm.hk) * dm.d, bias=s.attn_bias)
    if s.rope_dim:
        b.elementwise("rope", T * (dm.hq + dm.hk) * s.rope_dim, inputs=1, flops_per=ROPE_FLOPS)
    b.attention("attn", batch=batch, heads=dm.hq, kv_heads=dm.hk, head_dim=dm.d, q_len=q_len,
                past_len=past, causal=causal, flash=flash, cache=kv_cache)
    b.gemm("o_proj", T, dm.hq * dm.d, s.hidden, bias=s.attn_bias)
    if not s.parallel_block:
        b.allreduce("attn_allreduce", T * s.hidden * ab, tp)
        b.elementwise("attn_residual", T * s.hidden)
        b.norm("mlp_norm", T, s.hidden, s.norm)
    act = ACT_FLOPS[s.activation]
    inputs = 2 if s.gated_mlp else 1
    up_n = (dm.mats - 1) * dm.ffn
    if not s.is_moe:
        b.gemm("mlp_up", T, s.hidden, up_n, bias=s.mlp_bias)
        b.act("mlp_act", T * dm.ffn, flops_per=act, inputs=inputs)
        b.gemm("mlp_down", T, dm.ffn, s.hidden, bias=s.mlp_bias)
    else:
        k, E = s.active_experts, s.experts
        b.gemm("router", T, s.hidden, E)
        b.softmax("router_topk", T, E)
        b.alltoall("moe_dispatch", T * k * s.hidden * ab, ep)
        touched = dm.experts * (1.0 - (1.0 - k / E) ** replica_tokens)
        te = T * k  # token-expert pairs arriving at this chip's experts (balanced routing)
        b.gemm("experts_up", te / touched, s.hidden, up_n, groups=touched, bias=s.mlp_bias)
        b.act("experts_act", te * dm.ffn, flops_per=act, inputs=inputs)
        b.gemm("experts_down", te / touched, dm.ffn, s.hidden, groups=touched, bias=s.mlp_bias)
        b.alltoall("moe_combine", T * k * s.hidden * ab, ep)
        b.elementwise("moe_weighted_sum", T * s.hidden, inputs=k, flops_per=2.0 * k)
    b.allreduce("mlp_allreduce", T * s.hidden * ab, tp)
    b.elementwise("mlp_residual", T * s.hidden, inputs=3 if s.parallel_block else 2)


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
    b.embed("embed", T, s.hidden, split=tp)
    b.allreduce("embed_allreduce", T * s.hidden * ab, tp)  # vocab-parallel embedding (Megatron)
    with b.layers(s.layers):
        add_layer_ops(b, s, dm, batch=bl, q_len=seq_len, past=past, tp=tp, ep=ep, causal=True,
                      flash=flash, replica_tokens=batch * seq_len)
    t_out = bl * (seq_len if phase == "decode" else 1)
    b.norm("final_norm", t_out, s.hidden, s.norm)
    b.gemm("lm_head", t_out, s.hidden, dm.vocab, bias=s.lm_head_bias)
    b.allgather("logits_allgather", t_out * dm.vocab * ab, tp)
    ops = b.table()

    layer_w = _layer_weight_bytes(s, dm, p)
    embed_w = dm.vocab * s.hidden * p.dense_weight_bytes
    head_w = s.hidden * NORM_PARAM_BYTES * (2 if s.norm == "layernorm" else 1)
    if not s.tied_embeddings:
        head_w += dm.vocab * s.hidden * p.weight_bytes
    layer_kv = bl * ctx * 2 * dm.hk * dm.d * p.kv_bytes
    return Step(
        ops=ops, layers=s.layers, phase=phase, batch=batch, prec=p, tp=tp, ep=ep,
        seq_len=seq_len, kv_len=kv_len,
        weight_bytes_per_chip=s.layers * layer_w + embed_w + head_w,
        kv_bytes_per_chip=s.layers * layer_kv,
        act_bytes_per_chip=peak_act_bytes(ops, resident=T * s.hidden * ab),
        tokens=float(batch * seq_len),
        layer_weight_bytes=layer_w, embed_weight_bytes=embed_w, head_weight_bytes=head_w,
        layer_kv_bytes=layer_kv, boundary_bytes=T * s.hidden * ab,
    )
