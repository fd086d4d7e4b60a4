"""Model shapes (public configs) loaded from data/models.yaml, with parameter counting."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dse.config import load_data_yaml

DATA = Path(__file__).parent / "data" / "models.yaml"


class CnnLayer(BaseModel):
    """One CNN layer at the model's input size; conv layers are followed by a (folded) BatchNorm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["conv", "maxpool", "avgpool", "fc"]
    name: str
    cin: int = Field(ge=1)
    cout: int = Field(ge=1)
    kernel: int = Field(1, ge=1)
    stride: int = Field(1, ge=1)
    out_hw: int = Field(ge=1)
    in_hw: int | None = None  # default out_hw * stride
    relu: bool = True         # ReLU after (conv only)
    residual: bool = False    # residual add before the ReLU (last conv of a bottleneck block)

    @property
    def input_hw(self) -> int:
        return self.in_hw if self.in_hw is not None else self.out_hw * self.stride

    def params(self) -> int:
        if self.op == "conv":
            return self.cin * self.cout * self.kernel ** 2 + 2 * self.cout  # + BN gamma/beta
        if self.op == "fc":
            return self.cin * self.cout + self.cout
        return 0

    def macs(self) -> int:
        if self.op in ("conv", "fc"):
            return self.out_hw ** 2 * self.cin * self.kernel ** 2 * self.cout
        return 0


class ModelShape(BaseModel):
    """Shape of an LLM (decoder), a vision transformer (vit) or a CNN; `source` names the public config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    family: Literal["llm", "vit", "cnn"]
    source: str
    # transformer fields
    hidden: int = Field(0, ge=0)
    layers: int = Field(0, ge=0)
    heads: int = Field(0, ge=0)
    kv_heads: int = Field(0, ge=0)
    head_dim: int = Field(0, ge=0)   # 0 = hidden / heads (which must then divide)
    ffn: int = Field(0, ge=0)        # intermediate size of a dense MLP (and of each expert unless moe_ffn)
    vocab: int = Field(0, ge=0)
    gated_mlp: bool = False
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    activation: Literal["silu", "gelu", "relu"] = "silu"
    tied_embeddings: bool = False
    parallel_block: bool = False   # GPT-J: attention and MLP read the same normed input, outputs summed
    position: Literal["rope", "learned"] = "rope"
    rotary_dim: int = 0            # 0 = full head_dim (when position == rope)
    attn_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    experts: int = Field(1, ge=1)
    active_experts: int = Field(1, ge=1)
    # mixture of experts beyond Mixtral (DeepSeek-V3 config.json: moe_intermediate_size,
    # n_shared_experts, first_k_dense_replace; Qwen3-MoE: moe_intermediate_size)
    moe_ffn: int = Field(0, ge=0)          # intermediate size of each routed / shared expert; 0 = ffn
    shared_experts: int = Field(0, ge=0)   # experts every token passes through (DeepSeek)
    dense_layers: int = Field(0, ge=0)     # the first k layers have a dense MLP of width ffn
    router_bias: bool = False
    # Scale: SGLang's EPLB-alone speedups on DeepSeek-V3 (measurements_more.md row 4.6: 1.49x prefill at EP32,
    # 2.54x decode at EP72), read as the busiest / mean chip load without a load balancer, correspond to
    # 0.40-0.44 (tests/test_moe_physics.py); with a balancer (EPLB) the load is near uniform
    routing_skew: float = Field(0.0, ge=0.0, description="Zipf exponent of expert popularity; 0 = uniform")
    # multi-head latent attention (DeepSeek-V2/V3 config.json): the KV cache holds one latent of
    # kv_lora_rank + qk_rope_head_dim values per token and layer, shared by all heads
    q_lora_rank: int = Field(0, ge=0)
    kv_lora_rank: int = Field(0, ge=0)     # > 0 = MLA
    qk_rope_head_dim: int = Field(0, ge=0)
    qk_nope_head_dim: int = Field(0, ge=0)
    v_head_dim: int = Field(0, ge=0)
    # attention variants
    sliding_window: int = Field(0, ge=0)   # tokens a sliding-window layer attends (0 = none)
    sliding_layers: int = Field(0, ge=0)   # layers with the window (0 with a window = every layer)
    sinks: bool = False                    # learned per-head attention-sink logits (gpt-oss)
    qk_norm: bool = False                  # per-head RMSNorm of q and k (Qwen3, Gemma 3)
    norms_per_layer: int = Field(0, ge=0)  # 0 = 2 (1 for a parallel block); Gemma 2/3 have 4
    # vision fields
    image_size: int = 0
    patch_size: int = 0
    channels: int = 3
    num_classes: int = 0
    cnn_layers: tuple[CnnLayer, ...] = ()

    @model_validator(mode="after")
    def _check(self):
        """Consistency checks; each message starts with the field to fix ("field: problem")."""
        if self.family in ("llm", "vit"):
            for f in ("hidden", "layers", "heads", "ffn") + (("vocab",) if self.family == "llm" else ()):
                if getattr(self, f) <= 0 and not (f == "ffn" and self.moe_ffn > 0):
                    raise ValueError(f"{f}: a {self.family} model needs a positive {f}")
            if self.family == "vit" and (self.image_size <= 0 or self.patch_size <= 0):
                raise ValueError("image_size: a vit model needs positive image_size and patch_size")
            if self.kv_heads <= 0:
                object.__setattr__(self, "kv_heads", self.heads)
            if self.head_dim <= 0:
                if self.hidden % self.heads:
                    raise ValueError(f"heads: {self.heads} heads do not divide hidden size {self.hidden} "
                                     "(give head_dim explicitly if the model's heads are not hidden / heads wide)")
                object.__setattr__(self, "head_dim", self.hidden // self.heads)
            if self.heads % self.kv_heads:
                raise ValueError(f"kv_heads: {self.heads} heads are not a multiple of {self.kv_heads} kv_heads")
            if self.active_experts > self.experts:
                raise ValueError(f"active_experts: {self.active_experts} > {self.experts} experts")
            if self.dense_layers > self.layers:
                raise ValueError(f"dense_layers: {self.dense_layers} > {self.layers} layers")
            if self.sliding_layers > self.layers:
                raise ValueError(f"sliding_layers: {self.sliding_layers} > {self.layers} layers")
            if self.sliding_layers and not self.sliding_window:
                raise ValueError("sliding_window: sliding_layers needs a sliding_window")
            if self.kv_lora_rank and not (self.qk_nope_head_dim and self.qk_rope_head_dim and self.v_head_dim):
                raise ValueError("qk_nope_head_dim: multi-head latent attention (kv_lora_rank > 0) needs "
                                 "qk_nope_head_dim, qk_rope_head_dim and v_head_dim")
            if (self.moe_ffn or self.shared_experts or self.dense_layers) and not self.is_moe:
                raise ValueError("experts: moe_ffn, shared_experts and dense_layers need experts > 1")
        elif not self.cnn_layers:
            raise ValueError("cnn_layers: a cnn model needs cnn_layers")
        return self

    def __str__(self) -> str:
        return self.name or f"<{self.family} model>"

    # --- derived ---------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def vision_tokens(self) -> int:
        """ViT sequence length: patches + the class token (197 for ViT-B/16 at 224²)."""
        return (self.image_size // self.patch_size) ** 2 + 1

    @property
    def rope_dim(self) -> int:
        if self.position != "rope":
            return 0
        return self.rotary_dim or self.head_dim

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank > 0

    @property
    def expert_ffn(self) -> int:
        """Intermediate size of one routed or shared expert."""
        return self.moe_ffn or self.ffn

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts (all but the first `dense_layers`)."""
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def window_layers(self) -> int:
        """Layers with sliding-window attention (all layers when a window is given without a count)."""
        if not self.sliding_window:
            return 0
        return self.sliding_layers or self.layers

    def attn_params(self) -> int:
        """Q, K, V, O projections (+ biases, q/k norms, sinks) of one layer."""
        if self.is_mla:
            h, qd = self.heads, self.qk_nope_head_dim + self.qk_rope_head_dim
            q = (self.hidden * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * h * qd
                 if self.q_lora_rank else self.hidden * h * qd)
            kv = (self.hidden * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
                  + self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim))
            return q + kv + h * self.v_head_dim * self.hidden
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        w = self.hidden * (q + 2 * kv) + q * self.hidden
        w += 2 * self.head_dim if self.qk_norm else 0
        w += self.heads if self.sinks else 0
        return w + ((q + 2 * kv) + self.hidden if self.attn_bias else 0)

    def mlp_params(self, width: int) -> int:
        """One MLP of intermediate size `width` (+ biases)."""
        mats = 3 if self.gated_mlp else 2
        w = mats * self.hidden * width
        return w + ((width * (mats - 1)) + self.hidden if self.mlp_bias else 0)

    def expert_params(self) -> int:
        """One MLP (one routed expert for MoE)."""
        return self.mlp_params(self.expert_ffn if self.is_moe else self.ffn)

    def norm_params(self) -> int:
        per = self.hidden * (2 if self.norm == "layernorm" else 1)
        return per * (self.norms_per_layer or (1 if self.parallel_block else 2))

    def router_params(self) -> int:
        return self.hidden * self.experts + (self.experts if self.router_bias else 0) if self.is_moe else 0

    def layer_params(self, active: bool = False) -> int:
        """One MoE layer (or one layer of a dense model)."""
        experts = self.active_experts if active else self.experts
        shared = self.shared_experts * self.expert_params()
        return self.attn_params() + experts * self.expert_params() + shared + self.router_params() \
            + self.norm_params()

    def dense_layer_params(self) -> int:
        """One of the first `dense_layers` layers of an MoE model (a dense MLP of width ffn)."""
        return self.attn_params() + self.mlp_params(self.ffn) + self.norm_params()

    def embed_params(self) -> int:
        """Input embedding plus the LM head (0 extra when tied)."""
        embed = self.vocab * self.hidden
        head = 0 if self.tied_embeddings else self.vocab * self.hidden + (self.vocab if self.lm_head_bias else 0)
        return embed + head

    def param_count(self, active: bool = False) -> int:
        """Parameters (active=True: those used per token, i.e. MoE active experts only)."""
        if self.family == "cnn":
            return sum(layer.params() for layer in self.cnn_layers)
        final_norm = self.hidden * (2 if self.norm == "layernorm" else 1)
        total = (self.layers - self.dense_layers) * self.layer_params(active) + final_norm
        total += self.dense_layers * self.dense_layer_params()
        if self.family == "vit":
            patch = self.channels * self.patch_size ** 2 * self.hidden + self.hidden
            pos_cls = (self.vision_tokens + 1) * self.hidden
            head = self.hidden * self.num_classes + self.num_classes
            return total + patch + pos_cls + head
        return total + self.embed_params()

    def kv_values_per_token(self, tp: int = 1) -> float:
        """KV-cache values one layer stores per token on one of `tp` chips: 2·kv_heads·head_dim
        (KV heads split by tp, replicated when tp > kv_heads), or the MLA latent
        kv_lora_rank + qk_rope_head_dim (shared by all heads, replicated on every tp chip)."""
        if self.is_mla:
            return float(self.kv_lora_rank + self.qk_rope_head_dim)
        return 2 * max(self.kv_heads / tp, 1.0) * self.head_dim

    def kv_cache_bytes(self, batch: float, context: float, tp: int = 1, kv_bytes: float = 2.0) -> float:
        """KV-cache bytes on one of `tp` chips for `batch` sequences of `context` tokens, all layers:
        the one source of truth for capacity (sliding-window layers keep at most `sliding_window`
        tokens; MLA keeps one latent per token and layer). `kv_bytes` = bytes per stored value."""
        if self.family != "llm":
            return 0.0
        swa = self.window_layers
        if not self.is_mla and not swa:  # the plain formula, kept in this order (bit-identical numbers)
            kv_heads_per_chip = max(self.kv_heads / tp, 1.0)
            return batch * context * self.layers * 2 * kv_heads_per_chip * self.head_dim * kv_bytes
        per = self.kv_values_per_token(tp) * kv_bytes
        full = self.layers - swa
        return batch * per * (full * context + swa * min(context, self.sliding_window))

    def kv_bytes_per_token(self, context: float | None = None, tp: int = 1, kv_bytes: float = 2.0) -> float:
        """KV-cache bytes per token of one sequence, all layers (at `context` tokens when sliding-window
        layers cap their cache; None = the uncapped rate of a very long context)."""
        if context is None:
            full = self.layers - self.window_layers
            return self.kv_values_per_token(tp) * kv_bytes * full if self.family == "llm" else 0.0
        return self.kv_cache_bytes(1, context, tp, kv_bytes) / context

    def macs_per_image(self) -> int:
        """CNN multiply-accumulates per image (convs and FC)."""
        return sum(layer.macs() for layer in self.cnn_layers)


@lru_cache(maxsize=1)
def _raw() -> dict:

    return load_data_yaml(DATA)["models"]


def model_names() -> list[str]:
    return list(_raw())


def builtin_name(name: str) -> str | None:
    """The built-in model called `name` (case-insensitive), or None."""
    return next((k for k in _raw() if k.lower() == str(name).lower()), None)


@lru_cache(maxsize=None)
def builtin_shape(key: str) -> ModelShape:
    """The built-in model `key` (an exact key of data/models.yaml; see `builtin_name`)."""
    return ModelShape.model_validate({"name": key, **_raw()[key]})


MODEL_FILE_SUFFIXES = (".yaml", ".yml", ".json")

