"""Model shapes (public configs) loaded from data/models.yaml, with parameter counting."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dse.errors import DseUserError

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
    hidden: int = 0
    layers: int = 0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0          # 0 = hidden / heads
    ffn: int = 0               # intermediate size (per expert for MoE)
    vocab: int = 0
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
    # vision fields
    image_size: int = 0
    patch_size: int = 0
    channels: int = 3
    num_classes: int = 0
    cnn_layers: tuple[CnnLayer, ...] = ()

    @model_validator(mode="after")
    def _check(self):
        if self.family in ("llm", "vit"):
            missing = [f for f in ("hidden", "layers", "heads", "ffn") if getattr(self, f) <= 0]
            if self.family == "llm" and self.vocab <= 0:
                missing.append("vocab")
            if self.family == "vit" and (self.image_size <= 0 or self.patch_size <= 0):
                missing.append("image_size/patch_size")
            if missing:
                raise ValueError(f"{self.family} model needs positive {', '.join(missing)}")
            if self.kv_heads <= 0:
                object.__setattr__(self, "kv_heads", self.heads)
            if self.head_dim <= 0:
                object.__setattr__(self, "head_dim", self.hidden // self.heads)
            if self.heads % self.kv_heads:
                raise ValueError("heads must be a multiple of kv_heads")
            if self.active_experts > self.experts:
                raise ValueError("active_experts must be <= experts")
        elif not self.cnn_layers:
            raise ValueError("cnn model needs cnn_layers")
        return self

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

    def attn_params(self) -> int:
        """Q, K, V, O projections (+ biases) of one layer."""
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        w = self.hidden * (q + 2 * kv) + q * self.hidden
        return w + ((q + 2 * kv) + self.hidden if self.attn_bias else 0)

    def expert_params(self) -> int:
        """One MLP (one expert for MoE)."""
        mats = 3 if self.gated_mlp else 2
        w = mats * self.hidden * self.ffn
        return w + ((self.ffn * (mats - 1)) + self.hidden if self.mlp_bias else 0)

    def norm_params(self) -> int:
        per = self.hidden * (2 if self.norm == "layernorm" else 1)
        return per * (1 if self.parallel_block else 2)

    def layer_params(self, active: bool = False) -> int:
        experts = self.active_experts if active else self.experts
        router = self.hidden * self.experts if self.is_moe else 0
        return self.attn_params() + experts * self.expert_params() + router + self.norm_params()

    def param_count(self, active: bool = False) -> int:
        """Parameters (active=True: those used per token, i.e. MoE active experts only)."""
        if self.family == "cnn":
            return sum(layer.params() for layer in self.cnn_layers)
        final_norm = self.hidden * (2 if self.norm == "layernorm" else 1)
        total = self.layers * self.layer_params(active) + final_norm
        if self.family == "vit":
            patch = self.channels * self.patch_size ** 2 * self.hidden + self.hidden
            pos_cls = (self.vision_tokens + 1) * self.hidden
            head = self.hidden * self.num_classes + self.num_classes
            return total + patch + pos_cls + head
        embed = self.vocab * self.hidden
        head = 0 if self.tied_embeddings else self.vocab * self.hidden + (self.vocab if self.lm_head_bias else 0)
        return total + embed + head

    def macs_per_image(self) -> int:
        """CNN multiply-accumulates per image (convs and FC)."""
        return sum(layer.macs() for layer in self.cnn_layers)


@lru_cache(maxsize=1)
def _raw() -> dict:
    import yaml

    return yaml.safe_load(DATA.read_text(encoding="utf-8"))["models"]


def model_names() -> list[str]:
    return list(_raw())


@lru_cache(maxsize=None)
def load_model_shape(name: str) -> ModelShape:
    """The built-in shape `name` (case-insensitive); unknown names raise DseUserError with a suggestion."""
    raw = _raw()
    key = next((k for k in raw if k.lower() == str(name).lower()), None)
    if key is None:
        from dse.config import suggest

        raise DseUserError(suggest(name, raw, what="model"))
    return ModelShape.model_validate({"name": key, **raw[key]})
