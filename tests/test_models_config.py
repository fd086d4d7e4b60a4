"""Models from Hugging Face config.json files (tests/data/hf/, written from the published configs):
parameter counts vs published totals, KV bytes per token by hand, and clear errors for bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dse.errors import DseUserError
from dse.workloads.scenarios import load_mix, load_scenario
from dse.workloads.modelfile import load_model_shape

HF = Path(__file__).parent / "data" / "hf"

# Published totals. Llama-2 HF card 6.74B; Llama-3-70B HF 70.55B; Mistral-7B-v0.1 7.24B (Jiang et al.
# 2023); Mixtral 46.7B (arXiv:2401.04088); Qwen2-72B HF card 72.7B; Qwen2.5-7B HF card 7.61B; Qwen3-8B
# HF card 8.2B; Qwen3-30B-A3B HF card 30.5B; DeepSeek-V3 671B (arXiv:2412.19437, excluding the 14B MTP
# module); gpt-oss-120b 116.83B (OpenAI gpt-oss model card, Table 1); Gemma-2-9B 9.24B (HF); Gemma 3
# 27B: 1,416M embedding + 25,600M non-embedding (Gemma 3 report Table 1, vision encoder excluded);
# Phi-3-mini 3.8B (arXiv:2404.14219).
PUBLISHED = {
    "llama-2-7b": 6.74e9, "llama-3-70b": 70.55e9, "mistral-7b-v0.1": 7.24e9, "mixtral-8x7b": 46.7e9,
    "qwen2-72b": 72.7e9, "qwen2.5-7b": 7.61e9, "qwen3-8b": 8.2e9, "qwen3-30b-a3b": 30.5e9,
    "deepseek-v3": 671e9, "gpt-oss-120b": 116.83e9, "gemma-2-9b": 9.24e9, "gemma-3-27b": 27.016e9,
    "phi-3-mini-4k": 3.8e9,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_count_matches_published(name):
    shape = load_model_shape(HF / name / "config.json")
    assert shape.name == name
    assert shape.param_count() == pytest.approx(PUBLISHED[name], rel=0.01)


def test_active_params_of_moe_configs():
    # Qwen3-30B-A3B card: 3.3B activated; DeepSeek-V3: 37B activated (both rounded, hence 2 %);
    # gpt-oss-120b card: 5.13B active excluding the 0.58B input embedding (a lookup).
    q = load_model_shape(HF / "qwen3-30b-a3b")
    assert q.param_count(active=True) == pytest.approx(3.3e9, rel=0.02)
    d = load_model_shape(HF / "deepseek-v3" / "config.json")
    assert d.param_count(active=True) == pytest.approx(37e9, rel=0.02)
    g = load_model_shape(HF / "gpt-oss-120b" / "config.json")
    assert g.param_count(active=True) - g.vocab * g.hidden == pytest.approx(5.13e9, rel=0.01)


def test_family_specific_fields():
    d = load_model_shape(HF / "deepseek-v3" / "config.json")
    assert d.is_mla and (d.kv_lora_rank, d.qk_rope_head_dim, d.q_lora_rank) == (512, 64, 1536)
    assert (d.shared_experts, d.dense_layers, d.moe_layers, d.expert_ffn, d.ffn) == (1, 3, 58, 2048, 18432)
    g = load_model_shape(HF / "gpt-oss-120b" / "config.json")
    assert g.sinks and g.sliding_window == 128 and g.window_layers == 18 and (g.experts, g.active_experts) == (128, 4)
    assert load_model_shape(HF / "gemma-2-9b" / "config.json").window_layers == 21   # even layers of 42
    assert load_model_shape(HF / "gemma-3-27b" / "config.json").window_layers == 52  # 5 of every 6 of 62
    assert load_model_shape(HF / "mistral-7b-v0.1" / "config.json").window_layers == 32
    assert load_model_shape(HF / "qwen2-72b" / "config.json").sliding_window == 0    # use_sliding_window false
    assert load_model_shape(HF / "mixtral-8x7b" / "config.json").sliding_window == 0  # null
    assert load_model_shape(HF / "gemma-2-9b" / "config.json").tied_embeddings


def test_kv_bytes_per_token_by_hand():
    bf16 = 2.0
    # Llama-3-70B: 80 layers × (K + V) × 8 KV heads × 128 × 2 B = 327,680 B
    assert load_model_shape(HF / "llama-3-70b" / "config.json").kv_bytes_per_token() == 80 * 2 * 8 * 128 * bf16
    # Mixtral-8x7B: 32 × 2 × 8 × 128 × 2 = 131,072 B
    assert load_model_shape(HF / "mixtral-8x7b" / "config.json").kv_bytes_per_token() == 131072
    # DeepSeek-V3 (MLA): 61 layers × (kv_lora_rank 512 + rope 64) × 2 B = 70,272 B, on every tp chip
    d = load_model_shape(HF / "deepseek-v3" / "config.json")
    assert d.kv_bytes_per_token() == 61 * 576 * 2 == 70272
    assert d.kv_bytes_per_token(tp=8) == 70272
    # gpt-oss-120b: 18 full layers × 2 × 8 × 64 × 2 B = 36,864 B per token; the 18 sliding layers keep
    # at most 128 tokens: at 8192 tokens 36,864 + 36,864 × 128 / 8192 = 37,440 B per token
    g = load_model_shape(HF / "gpt-oss-120b" / "config.json")
    assert g.kv_bytes_per_token() == 18 * 2 * 8 * 64 * 2 == 36864
    assert g.kv_bytes_per_token(8192) == pytest.approx(36864 + 36864 * 128 / 8192)
    assert g.kv_cache_bytes(4, 100) == 4 * 100 * 36 * 2048  # shorter than the window: every layer keeps all
    # built-in models keep the formula the mapping used: batch · context · layers · 2 · max(kv/tp, 1) · d · bytes
    s = load_model_shape("Llama-3-70B")
    assert s.kv_cache_bytes(3, 1000, tp=16, kv_bytes=1.0) == 3 * 1000 * 80 * 2 * 1.0 * 128 * 1.0


def test_model_yaml_with_base_and_inline(tmp_path):
    f = tmp_path / "skewed.yaml"
    f.write_text("base: Mixtral-8x7B\nname: mixtral-hot\nrouting_skew: 1.2\n")
    s = load_model_shape(f)
    assert s.name == "mixtral-hot" and s.routing_skew == 1.2 and s.param_count() == load_model_shape(
        "mixtral-8x7b").param_count()
    inline = load_model_shape({"name": "tiny", "family": "llm", "hidden": 512, "layers": 4, "heads": 8,
                               "ffn": 1024, "vocab": 1000, "gated_mlp": True})
    assert inline.head_dim == 64 and inline.source == "<inline model>"


def test_model_anywhere_a_model_is_named(tmp_path):
    sc = load_scenario({"name": "q", "model": str(HF / "qwen3-30b-a3b" / "config.json"), "prompt_len": 8,
                        "output_len": 4})
    assert sc.kind == "llm" and sc.model.moe_ffn == 768
    mix_file = tmp_path / "m.yaml"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text("base: Llama-3-8B\nlayers: 2\n")
    mix_file.write_text("scenarios:\n  - scenario: {name: s, model: models/m.yaml, prompt_len: 8, output_len: 2}\n")
    mix = load_mix(str(mix_file))  # the model path is relative to the mix file's folder
    m = mix.scenario("s").model
    assert m.layers == 2 and m.name == "m"
    # a dumped scenario is self-contained: a user model dumps as its shape, a built-in as its name
    again = load_scenario(sc.model_dump())
    assert again == sc
    assert load_scenario("local_llm").model_dump()["model"] == "Llama-3-8B"


def _err(tmp_path, cfg: dict | str, name="config.json") -> str:
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg, indent=2))
    with pytest.raises(DseUserError) as exc:
        load_model_shape(p)
    msg = str(exc.value)
    assert str(p) in msg and "\n" not in msg, msg  # one line naming the file
    return msg


def _llama(**kw):
    cfg = json.loads((HF / "llama-2-7b" / "config.json").read_text())
    cfg.update(kw)
    return {k: v for k, v in cfg.items() if v is not None}


def _line(cfg: dict, key: str) -> int:
    return next(i for i, t in enumerate(json.dumps(cfg, indent=2).splitlines(), 1) if f'"{key}"' in t)


def test_bad_config_files_name_file_line_and_field(tmp_path):
    msg = _err(tmp_path, _llama(model_type="llamma"))
    assert "model_type" in msg and "did you mean 'llama'" in msg
    assert f":{_line(_llama(), 'model_type')}:" in msg
    msg = _err(tmp_path, _llama(num_attention_heads=None))
    assert "num_attention_heads: required key is missing" in msg
    msg = _err(tmp_path, _llama(hidden_size=-4096))
    assert "hidden_size" in msg and "greater than or equal to 0" in msg
    msg = _err(tmp_path, _llama(num_attention_heads=30))
    assert "num_attention_heads" in msg and "do not divide hidden size 4096" in msg
    assert f":{_line(_llama(), 'num_attention_heads')}:" in msg
    msg = _err(tmp_path, "family: llm\nhidden: 64\nlayers: 2\nheads: 4\nffn: 8\nvocab: 10\nexperts: 0\n", "m.yaml")
    assert "m.yaml:7:" in msg and "experts" in msg
    msg = _err(tmp_path, "family: llm\nhiden: 64\n", "m.yaml")
    assert "hiden: unknown field (did you mean `hidden`?)" in msg


def test_unknown_model_name_or_missing_file():
    with pytest.raises(DseUserError, match="did you mean 'Llama-3-8B'"):
        load_model_shape("llama-3-8")
    with pytest.raises(DseUserError, match="model file 'nowhere/config.json' not found"):
        load_model_shape("nowhere/config.json")


def _dse(*args):
    return subprocess.run([sys.executable, "-m", "dse", *args], capture_output=True, text=True, timeout=300)


def test_cli_models_and_evaluate_with_a_config_json(tmp_path):
    res = _dse("models", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["Mixtral-8x7B"]["params"] == load_model_shape("Mixtral-8x7B").param_count()
    res = _dse("models", "show", str(HF / "deepseek-v3"), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["kv_bytes_per_token"] == 70272 and info["weight_gb"]["mxfp4"]["bits_per_weight"] == 4.25
    res = _dse("evaluate", "H100-SXM", "--model", str(HF / "qwen3-30b-a3b" / "config.json"), "--batch", "1",
               "--weight-format", "int4", "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["metrics"]
    assert m["adhoc.feasible"] and m["adhoc.tpot_ms"] > 0
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(_llama(model_type="bert-ish")))
    res = _dse("evaluate", "H100-SXM", "--model", str(bad))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert str(bad) in res.stderr and "model_type" in res.stderr


def test_base_overrides_rederive_head_dim_and_kv_heads():
    s = load_model_shape({"base": "Llama-3-8B", "hidden": 2048, "heads": 16})
    assert (s.head_dim, s.kv_heads) == (128, 8)  # 2048 / 16; the base's explicit GQA kept
    t = load_model_shape({"base": "Llama-2-7B", "heads": 16})
    assert (t.head_dim, t.kv_heads) == (256, 16)


def test_cli_models_show_bad_file_exits_2(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("family: llm\nhidden: 100\nlayers: 2\nheads: 3\nffn: 8\nvocab: 10\n")
    res = _dse("models", "show", str(bad))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{bad}:4:" in res.stderr and "heads: 3 heads do not divide hidden size 100" in res.stderr


def test_models_summary_gb_are_memory_gb():
    """`dse models` prints weight and KV GB in the unit of memory capacities (2^30 B), so Llama-2-70B's bf16
    weights compare with an H100's 80 GB directly: 2 B x params / 2^30 by hand, and 128 GiB > 80."""
    from dse.workloads.summary import model_summary

    info = model_summary(load_model_shape("Llama-2-70B"), context=4096)
    params = info["params"]
    assert info["weight_gb"]["bf16"]["gb"] == pytest.approx(2 * params / 2 ** 30, rel=1e-12)
    assert 128 < info["weight_gb"]["bf16"]["gb"] < 129  # 68.98e9 parameters: 137.96e9 B = 128.5 GiB
    # KV of one 4,096-token sequence, 16-bit: 80 layers x 8 KV heads x 128 x 2 (K, V) x 2 B x 4,096 = 1.25 GiB
    assert info["kv_gb_at_context"] == pytest.approx(80 * 8 * 128 * 2 * 2 * 4096 / 2 ** 30, rel=1e-12)
