"""Hugging Face `config.json` → ModelShape fields, per `model_type` (the keys each family publishes).

Supported: llama (Llama 2/3), mistral, mixtral, qwen2 (Qwen2/2.5), qwen3, qwen3_moe, deepseek_v2 /
deepseek_v3 (DeepSeek-V3/R1: multi-head latent attention, shared experts, dense first layers),
gpt_oss (alternating sliding-window / full attention, sinks, experts), gemma2, gemma3 / gemma3_text,
phi3. Key names and defaults follow the `transformers` configuration classes of each family.
"""

from __future__ import annotations

from typing import Any

from dse.config import suggest
from dse.errors import ConfigError

# hidden_act values → the shape's activation (gelu_pytorch_tanh / gelu_new are tanh-approximated GELU)
ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu",
               "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu", "relu": "relu"}

# model_type → (family notes for `source`, extra fixed fields). Biases and norms the configs do not
# state are properties of the architecture (transformers modeling_<type>.py).
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {},
    "mistral": {},
    "mixtral": {},
    "qwen2": {"attn_bias": True},            # q/k/v projections carry biases (Qwen2 modeling)
    "qwen3": {"qk_norm": True},
    "qwen3_moe": {"qk_norm": True},
    "deepseek_v2": {},
    "deepseek_v3": {"router_bias": True},    # e_score_correction_bias per routed expert
    "gpt_oss": {"sinks": True, "router_bias": True, "mlp_bias": True},
    "gemma2": {"norms_per_layer": 4, "tied_embeddings": True},
    "gemma3_text": {"norms_per_layer": 4, "tied_embeddings": True, "qk_norm": True},
    "phi3": {},
}
SUPPORTED = sorted([*FAMILIES, "gemma3"])


class _Reader:
    """Reads keys of one config mapping, remembering which shape field came from which key."""

    def __init__(self, cfg: dict, where: str, positions: dict, prefix: tuple, model_type: str):
        self.cfg, self.where, self.positions, self.prefix, self.mt = cfg, where, positions, prefix, model_type
        self.keymap: dict[str, tuple] = {}

    def _at(self, path: tuple) -> str:
        pos = self.positions.get(path) or self.positions.get(self.prefix) or self.positions.get(())
        return f"{self.where}:{pos[0]}:{pos[1]}" if pos else self.where

    def req(self, field: str, key: str) -> Any:
        """A required key (missing or null is an error naming the key)."""
        if self.cfg.get(key) is None:
            dotted = ".".join(str(p) for p in self.prefix + (key,))
            raise ConfigError([f"{self._at(self.prefix)}: {dotted}: required key is missing (model_type "
                               f"'{self.mt}' needs it)"])
        self.keymap[field] = self.prefix + (key,)
        return self.cfg[key]

    def opt(self, field: str, key: str, default: Any) -> Any:
        val = self.cfg.get(key)
        if val is None:
            return default
        self.keymap[field] = self.prefix + (key,)
        return val

    def bad(self, key: str, msg: str) -> ConfigError:
        dotted = ".".join(str(p) for p in self.prefix + (key,))
        return ConfigError([f"{self._at(self.prefix + (key,))}: {dotted}: {msg}"])


def shape_fields(cfg: dict, where: str, positions: dict) -> tuple[dict, dict[str, tuple]]:
    """ModelShape fields from a Hugging Face config and a map field → key path (for error positions)."""
    mt = cfg.get("model_type")
    prefix: tuple = ()
    if mt == "gemma3":  # multimodal wrapper: the language model is in text_config (vision tower ignored)
        text = cfg.get("text_config")
        if not isinstance(text, dict):
            raise _Reader(cfg, where, positions, (), mt).bad("text_config", "required mapping is missing "
                                                             "(model_type 'gemma3' keeps the language model there)")
        cfg, prefix, mt = {"model_type": "gemma3_text", **text}, ("text_config",), "gemma3_text"
    if mt not in FAMILIES:

        r = _Reader(cfg, where, positions, (), str(mt))
        raise r.bad("model_type", suggest(str(mt), SUPPORTED, what="model_type") + "; or write the shape "
                    "as a model YAML (see `dse models show Llama-3-8B`)")
    r = _Reader(cfg, where, positions, prefix, mt)
    f: dict[str, Any] = {"family": "llm", "source": f"{where} (Hugging Face config.json, model_type {mt})",
                         "gated_mlp": True, "norm": "rmsnorm"}
    f.update(FAMILIES[mt])
    f["hidden"] = r.req("hidden", "hidden_size")
    f["layers"] = r.req("layers", "num_hidden_layers")
    f["heads"] = r.req("heads", "num_attention_heads")
    f["kv_heads"] = r.opt("kv_heads", "num_key_value_heads", f["heads"])
    f["head_dim"] = r.opt("head_dim", "head_dim", 0)
    f["vocab"] = r.req("vocab", "vocab_size")
    act_key = "hidden_activation" if mt.startswith("gemma") and "hidden_activation" in cfg else "hidden_act"
    act = r.opt("activation", act_key, "gelu_pytorch_tanh" if mt.startswith("gemma") else "silu")
    if act not in ACTIVATIONS:

        raise r.bad(act_key, suggest(str(act), ACTIVATIONS, what="activation"))
    f["activation"] = ACTIVATIONS[act]
    f["tied_embeddings"] = bool(r.opt("tied_embeddings", "tie_word_embeddings", f.get("tied_embeddings", False)))
    f["attn_bias"] = bool(r.opt("attn_bias", "attention_bias", f.get("attn_bias", False)))
    f["mlp_bias"] = bool(r.opt("mlp_bias", "mlp_bias", f.get("mlp_bias", False)))

    if mt in ("mixtral", "gpt_oss"):
        f["ffn"] = r.req("ffn", "intermediate_size")
        f["experts"] = r.req("experts", "num_local_experts")
        f["active_experts"] = r.opt("active_experts", "num_experts_per_tok", None) \
            or r.req("active_experts", "experts_per_token")
    elif mt == "qwen3_moe":
        f["ffn"] = r.opt("ffn", "intermediate_size", 0)
        f["moe_ffn"] = r.req("moe_ffn", "moe_intermediate_size")
        f["experts"] = r.req("experts", "num_experts")
        f["active_experts"] = r.req("active_experts", "num_experts_per_tok")
        if r.opt("dense_layers", "mlp_only_layers", []) or r.opt("dense_layers", "decoder_sparse_step", 1) != 1:
            raise r.bad("mlp_only_layers", "dense layers between MoE layers are not modelled "
                        "(use mlp_only_layers: [] and decoder_sparse_step: 1)")
    elif mt in ("deepseek_v2", "deepseek_v3"):
        f["ffn"] = r.req("ffn", "intermediate_size")
        f["moe_ffn"] = r.req("moe_ffn", "moe_intermediate_size")
        f["experts"] = r.req("experts", "n_routed_experts")
        f["active_experts"] = r.req("active_experts", "num_experts_per_tok")
        f["shared_experts"] = r.opt("shared_experts", "n_shared_experts", 0)
        f["dense_layers"] = r.opt("dense_layers", "first_k_dense_replace", 0)
        if r.opt("dense_layers", "moe_layer_freq", 1) != 1:
            raise r.bad("moe_layer_freq", "only moe_layer_freq: 1 is modelled")
        f["q_lora_rank"] = r.opt("q_lora_rank", "q_lora_rank", 0)  # null = full-rank q projection (V2-Lite)
        f["kv_lora_rank"] = r.req("kv_lora_rank", "kv_lora_rank")
        f["qk_rope_head_dim"] = r.req("qk_rope_head_dim", "qk_rope_head_dim")
        f["qk_nope_head_dim"] = r.req("qk_nope_head_dim", "qk_nope_head_dim")
        f["v_head_dim"] = r.req("v_head_dim", "v_head_dim")
    else:
        f["ffn"] = r.req("ffn", "intermediate_size")

    # sliding-window attention: which layers use it
    window = r.opt("sliding_window", "sliding_window", 0) or 0
    types = r.opt("sliding_layers", "layer_types", None)
    if mt == "qwen2" or mt.startswith("qwen3"):
        if not r.opt("sliding_window", "use_sliding_window", False):
            window = 0
    if window and types:
        if not isinstance(types, list) or len(types) != f["layers"]:
            raise r.bad("layer_types", f"expected a list of {f['layers']} entries (one per layer)")
        f["sliding_layers"] = sum(1 for t in types if t == "sliding_attention")
        if not f["sliding_layers"]:
            window = 0
    elif window and mt == "gemma2":  # even layers slide (Gemma2DecoderLayer: not layer_idx % 2)
        f["sliding_layers"] = (f["layers"] + 1) // 2
    elif window and mt == "gemma3_text":  # (layer_idx + 1) % sliding_window_pattern != 0 slides
        pattern = r.opt("sliding_layers", "sliding_window_pattern", 6)
        f["sliding_layers"] = sum(1 for i in range(f["layers"]) if (i + 1) % pattern)
    elif window and mt == "gpt_oss":  # alternating, starting with a sliding layer
        f["sliding_layers"] = (f["layers"] + 1) // 2
    if window:
        f["sliding_window"] = window
    return f, r.keymap
