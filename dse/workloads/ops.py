"""Operator tables: one row per operator of a model step on one chip, as a struct of numpy arrays.

Conventions (read by dse.model.perf):
- Per-row quantities (`flops`, `*_bytes`, `comm_bytes`) are for ONE execution of the operator;
  `count` says how many times it runs per step (e.g. layers on this chip). Totals = sum(x * count).
- `flops` are the multiply-adds ×2 actually executed. With 2:4 sparsity, weight GEMMs list half of
  the dense FLOPs and `sparse=True`: a chip with sparse tensor cores runs them at its dense peak
  (NVIDIA's "2× sparse TFLOPS" is exactly that), a chip without must run the dense 2× the listed FLOPs.
- `m, k, n` are the shape of one GEMM instance (for array padding); batched GEMMs such as attention
  list the per-(batch, kv-head) instance and the FLOPs of all instances. 0 for non-GEMMs.
- `layer` marks operators repeated once per transformer layer (pipeline stages scale their count);
  `layer_share` is the fraction of layers a layer row applies to (1 for most; DeepSeek's dense first
  layers vs its MoE layers, gpt-oss's sliding vs full attention layers): count = layers · share.
- Collectives carry `comm_bytes` = message size per chip and `group` = chips in the collective.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, fields

import numpy as np

from dse.workloads.precision import Precision, _precision_of

# Bytes per value of a tensor kept at 16 bits (BF16) whatever the workload's precision (`OpBuilder.gemm(wide=True)`).
WIDE_BYTES = 2.0
ATTENTION_KINDS = frozenset({"attn_score", "attn_context", "attn_fused"})
# Lowest precision attention matmuls run at: no production attention kernel multiplies in 4 bits
# (FlashAttention-3 and TensorRT-LLM's FMHA go down to FP8, with an FP8 KV cache), so the score and
# context matmuls run at the wider of the activations, the KV cache and 8 bits.
ATTENTION_MIN_BITS = 8


def attention_precision(p: Precision) -> str:
    """Precision the attention matmuls (Q·K, P·V) run at: the wider of activations, KV cache and 8 bits."""
    return _precision_of(max(p.act_bits, p.kv_bits, ATTENTION_MIN_BITS), p.number)


KINDS = ("gemm", "attn_score", "attn_context", "attn_fused", "softmax", "norm", "act", "elementwise",
         "embed", "permute", "allreduce", "allgather", "alltoall", "sendrecv")
COLLECTIVES = ("allreduce", "allgather", "alltoall", "sendrecv")

# Vector-unit FLOPs per element (derivations, counting each arithmetic op once):
SOFTMAX_FLOPS = 5.0   # max, subtract, exp, sum, divide
RMSNORM_FLOPS = 4.0   # square, accumulate, scale by rsqrt, multiply by gamma
LAYERNORM_FLOPS = 7.0  # mean, subtract, square, accumulate, scale by rsqrt, gamma, beta
SILU_FLOPS = 4.0      # negate, exp, add 1, divide (x * sigmoid(x) folds the multiply into the divide)
GELU_FLOPS = 8.0      # tanh approximation: x^3, 2 mul-adds, tanh (~3), add, 2 muls
RELU_FLOPS = 1.0      # one compare/select
ROPE_FLOPS = 3.0      # per element of a rotated pair: 2 multiplies + 1 add


@dataclass
class OpTable:
    """Struct of arrays, one row per operator (columns as in docs/ARCHITECTURE.md plus `sparse`, `layer`)."""

    name: np.ndarray
    kind: np.ndarray
    count: np.ndarray
    flops: np.ndarray
    weight_bytes: np.ndarray
    act_in_bytes: np.ndarray
    act_out_bytes: np.ndarray
    kv_read_bytes: np.ndarray
    kv_write_bytes: np.ndarray
    m: np.ndarray
    k: np.ndarray
    n: np.ndarray
    compute_precision: np.ndarray
    comm_bytes: np.ndarray
    group: np.ndarray
    sparse: np.ndarray
    layer: np.ndarray
    layer_share: np.ndarray | None = None  # added column: None = 1.0 on every row

    def __post_init__(self):
        if self.layer_share is None:
            self.layer_share = np.ones(len(self.name), dtype=np.float64)

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: list[dict]) -> "OpTable":
        """Build from a list of row dicts (missing numeric fields are 0)."""
        cols = {}
        for f in fields(cls):
            kind = _DTYPES[f.name]
            vals = [r.get(f.name, _DEFAULTS[f.name]) for r in rows]
            cols[f.name] = np.array(vals, dtype=kind) if vals else np.zeros(0, dtype=kind)
        return cls(**cols)

    @classmethod
    def concat(cls, tables: list["OpTable"]) -> "OpTable":
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables]) for f in fields(cls)})

    def select(self, mask) -> "OpTable":
        """Rows where `mask` (bool array or index array) holds."""
        return OpTable(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def replace(self, **cols) -> "OpTable":
        """A copy with some columns replaced (e.g. `count=` for a pipeline stage)."""
        data = {f.name: getattr(self, f.name).copy() for f in fields(self)}
        for key, val in cols.items():
            data[key] = np.asarray(val, dtype=_DTYPES[key]) * np.ones(len(self), dtype=_DTYPES[key])
        return OpTable(**data)

    def __len__(self) -> int:
        return len(self.name)

    def rows(self) -> list[dict]:
        """One dict per operator (for display and debugging)."""
        def py(v):
            return v.item() if hasattr(v, "item") else v

        return [{f.name: py(getattr(self, f.name)[i]) for f in fields(self)} for i in range(len(self))]

    # --- totals over a step (weighted by count) --------------------------------------------
    def _total(self, col: np.ndarray) -> float:
        return float(np.sum(col * self.count))

    def total_flops(self) -> float:
        return self._total(self.flops)

    def total_weight_bytes(self) -> float:
        return self._total(self.weight_bytes)

    def total_act_bytes(self) -> float:
        return self._total(self.act_in_bytes + self.act_out_bytes)

    def total_kv_bytes(self) -> float:
        return self._total(self.kv_read_bytes + self.kv_write_bytes)

    def total_comm_bytes(self) -> float:
        return self._total(self.comm_bytes)

    def total_bytes(self) -> float:
        """Weights + activations + KV moved per step (excluding collectives)."""
        return self.total_weight_bytes() + self.total_act_bytes() + self.total_kv_bytes()

    def count_kind(self, kind: str) -> float:
        """Executions per step of operators of one kind (e.g. all-reduces)."""
        return float(np.sum(self.count[self.kind == kind]))


_DTYPES = {"name": object, "kind": object, "compute_precision": object, "count": np.float64,
           "flops": np.float64, "weight_bytes": np.float64, "act_in_bytes": np.float64,
           "act_out_bytes": np.float64, "kv_read_bytes": np.float64, "kv_write_bytes": np.float64,
           "m": np.int64, "k": np.int64, "n": np.int64, "comm_bytes": np.float64, "group": np.int64,
           "sparse": bool, "layer": bool, "layer_share": np.float64}
_DEFAULTS = {key: ("" if dt is object else (False if dt is bool else 0)) for key, dt in _DTYPES.items()}
_DEFAULTS["count"] = 1
_DEFAULTS["group"] = 1
_DEFAULTS["layer_share"] = 1.0


def mean_window_attended(past: float, q_len: int, window: int) -> float:
    """Mean positions a causal query attends under a sliding window: query j (0-based) of the q_len new
    tokens sees min(past + j + 1, window) positions."""
    if past + q_len <= window:
        return past + (q_len + 1) / 2.0
    if past + 1 >= window:
        return float(window)
    t = window - past - 1  # queries still inside the growing part
    return (t * past + t * (t + 1) / 2.0 + (q_len - t) * window) / q_len


def total_flops(t: OpTable) -> float:
    return t.total_flops()


def total_weight_bytes(t: OpTable) -> float:
    return t.total_weight_bytes()


def total_act_bytes(t: OpTable) -> float:
    return t.total_act_bytes()


def total_kv_bytes(t: OpTable) -> float:
    return t.total_kv_bytes()


def total_comm_bytes(t: OpTable) -> float:
    return t.total_comm_bytes()


class OpBuilder:
    """Appends operators at a precision; `with b.layers(n):` marks the ops inside as repeated n times."""

    def __init__(self, prec: Precision):
        self.prec = prec
        self._rows: list[dict] = []
        self._count = 1.0
        self._layer = False
        self._share = 1.0

    @contextmanager
    def layers(self, n: float):
        old = (self._count, self._layer)
        self._count, self._layer = float(n), True
        try:
            yield self
        finally:
            self._count, self._layer = old

    @contextmanager
    def share(self, fraction: float):
        """Inside `layers(n)`: operators that run in only `fraction` of the layers (count n · fraction)."""
        old = (self._count, self._share)
        self._count, self._share = self._count * fraction, fraction
        try:
            yield self
        finally:
            self._count, self._share = old

    def _add(self, name: str, kind: str, **vals) -> None:
        assert kind in KINDS, kind
        cp = attention_precision(self.prec) if kind in ATTENTION_KINDS else self.prec.compute_precision
        row = {"name": name, "kind": kind, "count": self._count, "layer": self._layer,
               "compute_precision": cp}
        if self._share != 1.0:
            row["layer_share"] = self._share
        row.update(vals)
        self._rows.append(row)

    def table(self) -> OpTable:
        return OpTable.from_rows(self._rows)

    # --- matrix operators --------------------------------------------------------------------
    def gemm(self, name: str, m: float, k: float, n: float, *, groups: float = 1.0,
             weights: bool = True, bias: bool = False, act_in_bytes: float | None = None,
             act_out_bytes: float | None = None, tensor: str | None = None, wide: bool = False) -> None:
        """`groups` independent (m×k)·(k×n) GEMMs; with `weights` the k×n operand is a weight read
        from memory (2:4 sparsity applies), otherwise both operands are activations. `tensor` names
        the weight's class (attn, mlp, experts, shared_experts, embed) for per-tensor precision.
        `act_in_bytes` / `act_out_bytes` replace the input / output bytes at the activation precision.
        `wide`: a GEMM every quantization recipe keeps at 16 bits (weights, input, output and arithmetic,
        never sparsified; the MoE router, see the router note in dse.workloads.transformer)."""
        p = self.prec
        sparse = weights and p.sparse and not wide
        flops = 2.0 * groups * m * k * n * (p.flop_scale if sparse else 1.0)
        wb = WIDE_BYTES if wide else p.class_weight_bytes(tensor) if tensor else p.weight_bytes
        ab = WIDE_BYTES if wide else p.act_bytes
        w = groups * k * n * wb if weights else 0.0
        if weights and bias:
            w += groups * n * 2.0  # biases kept at 16 bits
        a_in = groups * m * k * ab if act_in_bytes is None else act_in_bytes
        extra = {"compute_precision": p.class_compute_precision(tensor)} if tensor and weights else {}
        if wide:
            extra = {"compute_precision": "bf16"}
        a_out = groups * m * n * ab if act_out_bytes is None else act_out_bytes
        self._add(name, "gemm", flops=flops, weight_bytes=w, act_in_bytes=a_in,
                  act_out_bytes=a_out, m=math.ceil(m), k=math.ceil(k),
                  n=math.ceil(n), sparse=sparse, **extra)

    def conv(self, name: str, batch: int, cin: int, cout: int, kernel: int, stride: int,
             out_hw: int, in_hw: int | None = None) -> None:
        """Convolution as implicit-im2col GEMM: M = batch·OH·OW, K = Cin·KH·KW, N = Cout. Input bytes are
        the real input tensor (each pixel read once and reused across the kernel window), not the
        im2col matrix, which would be KH·KW/stride² times larger."""
        in_hw = in_hw if in_hw is not None else out_hw * stride
        in_bytes = batch * cin * in_hw * in_hw * self.prec.act_bytes
        self.gemm(name, batch * out_hw * out_hw, cin * kernel * kernel, cout, act_in_bytes=in_bytes)

    # --- attention ---------------------------------------------------------------------------
    def attention(self, name: str, *, batch: float, heads: int, kv_heads: int, head_dim: int,
                  q_len: int, past_len: float, causal: bool, flash: bool, cache: bool = True,
                  window: int = 0, v_dim: int | None = None, latent: bool = False,
                  cache_read: bool = True) -> None:
        """Attention of `q_len` new tokens over `past_len` cached + the new tokens, per chip.

        K/V of the past come from the KV cache (kv_read, counted once per kv head: GQA groups share
        them); K/V of the new tokens are written to the cache (kv_write) unless `cache` is False
        (encoders). Causal + flash skips the masked half (mean attended length past + (q+1)/2); an
        unfused kernel computes and materializes the full rectangle of scores.
        Flash-tile re-reads of K/V in long prefills are not counted.

        `window` > 0: sliding-window attention (each query sees at most `window` positions; the cache
        keeps and reads at most `window`). `v_dim`: value width when it differs from the q·k width
        `head_dim` (MLA). `latent`: MLA's absorbed decode — one shared latent of `head_dim` values per
        token (`kv_heads` = 1) serves as both K and V (`v_dim` = kv_lora_rank of it)."""
        if window or v_dim is not None or latent or not cache_read:
            self._attention_general(name, batch=batch, heads=heads, kv_heads=kv_heads, qk_dim=head_dim,
                                    v_dim=head_dim if v_dim is None else v_dim, q_len=q_len, past_len=past_len,
                                    causal=causal, flash=flash, cache=cache, window=window, latent=latent,
                                    cache_read=cache_read)
            return
        p = self.prec
        total_kv = past_len + q_len
        attended = past_len + (q_len + 1) / 2.0 if (causal and flash) else total_kv
        group = max(1, heads // max(1, kv_heads))
        mm = q_len * group  # one of batch·kv_heads GEMM instances: a GQA group's query heads stacked in M
        qk_flops = 2.0 * batch * heads * q_len * attended * head_dim
        kv_read = batch * past_len * kv_heads * head_dim * p.kv_bytes  # K or V each
        kv_write = 2.0 * batch * q_len * kv_heads * head_dim * p.kv_bytes if cache else 0.0
        new_kv_act = batch * q_len * kv_heads * head_dim * p.act_bytes  # new K or V as activation
        q_bytes = batch * q_len * heads * head_dim * p.act_bytes
        if flash:
            self._add(f"{name}.flash", "attn_fused", flops=2 * qk_flops, act_in_bytes=q_bytes + 2 * new_kv_act,
                      act_out_bytes=q_bytes, kv_read_bytes=2 * kv_read, kv_write_bytes=kv_write,
                      m=math.ceil(mm), k=head_dim, n=math.ceil(attended))
            # One kernel: scores and their softmax stay on chip. The softmax's vector work overlaps the
            # matmuls in flash kernels and is not listed (a separate row would add a launch overhead).
            return
        scores = batch * heads * q_len * attended * p.act_bytes
        self._add(f"{name}.score", "attn_score", flops=qk_flops, act_in_bytes=q_bytes + new_kv_act,
                  act_out_bytes=scores, kv_read_bytes=kv_read, kv_write_bytes=kv_write,
                  m=math.ceil(mm), k=head_dim, n=math.ceil(attended))
        self.softmax(f"{name}.softmax", batch * heads * q_len, attended)
        self._add(f"{name}.context", "attn_context", flops=qk_flops, act_in_bytes=scores + new_kv_act,
                  act_out_bytes=q_bytes, kv_read_bytes=kv_read, m=math.ceil(mm), k=math.ceil(attended),
                  n=head_dim)

    def _attention_general(self, name: str, *, batch: float, heads: int, kv_heads: int, qk_dim: int,
                           v_dim: int, q_len: int, past_len: float, causal: bool, flash: bool, cache: bool,
                           window: int, latent: bool, cache_read: bool = True) -> None:
        """`attention` with a sliding window, unequal q·k / v widths, or an MLA latent cache
        (`cache_read` False: past K/V arrive as activations, e.g. MLA prefill expands them)."""
        p = self.prec
        total_kv = past_len + q_len
        if window:
            past = min(past_len, float(window))  # cached positions any query of this step can still see
            attended = mean_window_attended(past_len, q_len, window) if causal else min(total_kv, window)
            if not flash:
                attended = min(total_kv, float(window) + q_len - 1)
        else:
            past = past_len
            attended = past_len + (q_len + 1) / 2.0 if (causal and flash) else total_kv
        group = max(1, heads // max(1, kv_heads))
        mm = q_len * group
        qk_flops = 2.0 * batch * heads * q_len * attended * qk_dim
        pv_flops = 2.0 * batch * heads * q_len * attended * v_dim
        # values per cached token per kv head: K (qk_dim) and V (v_dim), or one shared latent (qk_dim)
        per_token = qk_dim if latent else qk_dim + v_dim
        kv_read = batch * past * kv_heads * per_token * p.kv_bytes if cache_read else 0.0
        if not cache_read:  # the past K/V are inputs of this operator instead
            per_token_act = batch * past * kv_heads * per_token * p.act_bytes
        else:
            per_token_act = 0.0
        kv_write = batch * q_len * kv_heads * per_token * p.kv_bytes if cache else 0.0
        new_kv_act = batch * q_len * kv_heads * per_token * p.act_bytes + per_token_act
        q_bytes = batch * q_len * heads * qk_dim * p.act_bytes
        out_bytes = batch * q_len * heads * v_dim * p.act_bytes
        if flash:
            self._add(f"{name}.flash", "attn_fused", flops=qk_flops + pv_flops, act_in_bytes=q_bytes + new_kv_act,
                      act_out_bytes=out_bytes, kv_read_bytes=kv_read, kv_write_bytes=kv_write,
                      m=math.ceil(mm), k=qk_dim, n=math.ceil(attended))
            return
        scores = batch * heads * q_len * attended * p.act_bytes
        self._add(f"{name}.score", "attn_score", flops=qk_flops, act_in_bytes=q_bytes + new_kv_act / 2,
                  act_out_bytes=scores, kv_read_bytes=kv_read / 2, kv_write_bytes=kv_write,
                  m=math.ceil(mm), k=qk_dim, n=math.ceil(attended))
        self.softmax(f"{name}.softmax", batch * heads * q_len, attended)
        self._add(f"{name}.context", "attn_context", flops=pv_flops, act_in_bytes=scores + new_kv_act / 2,
                  act_out_bytes=out_bytes, kv_read_bytes=kv_read / 2, m=math.ceil(mm), k=math.ceil(attended),
                  n=v_dim)

    def kv_cache(self, name: str, *, read_bytes: float, write_bytes: float) -> None:
        """KV-cache traffic of an operator that is not an attention kernel (MLA prefill reads the
        cached latents that kv_b_proj expands and writes the new ones)."""
        self._add(name, "elementwise", kv_read_bytes=read_bytes, kv_write_bytes=write_bytes,
                  act_in_bytes=0.0, act_out_bytes=0.0)

    # --- vector operators --------------------------------------------------------------------
    def softmax(self, name: str, rows: float, cols: float) -> None:
        b = rows * cols * self.prec.act_bytes
        self._add(name, "softmax", flops=SOFTMAX_FLOPS * rows * cols, act_in_bytes=b, act_out_bytes=b)

    def norm(self, name: str, tokens: float, hidden: int, kind: str = "rmsnorm") -> None:
        per = RMSNORM_FLOPS if kind == "rmsnorm" else LAYERNORM_FLOPS
        nparams = hidden * (1 if kind == "rmsnorm" else 2)
        b = tokens * hidden * self.prec.act_bytes
        self._add(name, "norm", flops=per * tokens * hidden, weight_bytes=nparams * 2.0,  # 16-bit params
                  act_in_bytes=b, act_out_bytes=b)

    def act(self, name: str, elements: float, *, flops_per: float, inputs: int = 1) -> None:
        """Activation function over `elements` outputs; `inputs=2` for gated MLPs (act(gate) · up)."""
        b = elements * self.prec.act_bytes
        self._add(name, "act", flops=(flops_per + (inputs - 1)) * elements, act_in_bytes=inputs * b,
                  act_out_bytes=b)

    def elementwise(self, name: str, elements: float, *, inputs: int = 2, flops_per: float = 1.0) -> None:
        """Residual adds, scaling, pooling, rotary embedding: `inputs` tensors in, one out."""
        b = elements * self.prec.act_bytes
        self._add(name, "elementwise", flops=flops_per * elements, act_in_bytes=inputs * b, act_out_bytes=b)

    def vector(self, name: str, kind: str, *, flops: float, act_in_bytes: float = 0.0,
               act_out_bytes: float = 0.0) -> None:
        """Any vector-unit operator with explicit FLOPs and bytes (pooling, fused epilogues)."""
        self._add(name, kind, flops=flops, act_in_bytes=act_in_bytes, act_out_bytes=act_out_bytes)

    def permute(self, name: str, *, rows_in: float, rows_out: float, width: float, in_bytes: float,
                out_bytes: float, flops_per: float = 0.0, out_width: float | None = None) -> None:
        """A row kernel over expert-permuted rows that no GEMM epilogue can absorb (MoE token permutation: each
        token's row is copied to, or summed back from, the rows of the experts it was routed to; the experts'
        activation between their two grouped GEMMs): reads `rows_in` rows of `width` values at `in_bytes` each,
        writes `rows_out` rows of `out_width` (default `width`) values at `out_bytes`; `flops_per` per value read."""
        ow = width if out_width is None else out_width
        self._add(name, "permute", flops=flops_per * rows_in * width, act_in_bytes=rows_in * width * in_bytes,
                  act_out_bytes=rows_out * ow * out_bytes)

    def embed(self, name: str, tokens: float, hidden: int, split: int = 1, tensor: str | None = None) -> None:
        """Embedding lookup: reads one row per token (of this chip's vocab shard)."""
        wb = self.prec.class_weight_bytes(tensor, sparse_ok=False) if tensor else self.prec.dense_weight_bytes
        self._add(name, "embed", weight_bytes=tokens * hidden * wb / split,
                  act_out_bytes=tokens * hidden * self.prec.act_bytes)

    # --- collectives -------------------------------------------------------------------------
    def collective(self, name: str, kind: str, message_bytes: float, group: int) -> None:
        """A collective over `group` chips; `message_bytes` is the tensor size per chip."""
        assert kind in COLLECTIVES, kind
        if group > 1 or kind == "sendrecv":
            self._add(name, kind, comm_bytes=float(message_bytes), group=int(group))

    def allreduce(self, name: str, message_bytes: float, group: int) -> None:
        self.collective(name, "allreduce", message_bytes, group)

    def allgather(self, name: str, message_bytes: float, group: int) -> None:
        self.collective(name, "allgather", message_bytes, group)

    def alltoall(self, name: str, message_bytes: float, group: int) -> None:
        self.collective(name, "alltoall", message_bytes, group)

    def sendrecv(self, name: str, message_bytes: float) -> None:
        self.collective(name, "sendrecv", message_bytes, 2)
