"""Model shapes: parameter counts vs published counts, ResNet-50 MACs, name lookup."""

import pytest

from dse.errors import DseUserError
from dse.workloads.shapes import ModelShape, model_names
from dse.workloads.modelfile import load_model_shape

# Published parameter counts: Llama-2 paper / HF model cards (6.74B, 68.98B via config arithmetic as
# listed by HF), Llama-3 HF cards (8.03B, 70.55B), Llama-3.1-405B HF card (405.8B), Mixtral paper
# arXiv:2401.04088 (46.7B total, 12.9B active), GPT-J HF card (6,053,381,344 ≈ 6.05B),
# torchvision resnet50 (25,557,032), ViT-B/16 paper (86M; timm/HF count 86.6M with head).
PUBLISHED = {
    "Llama-2-7B": 6.74e9,
    "Llama-3-8B": 8.03e9,
    "Llama-2-70B": 68.98e9,
    "Llama-3-70B": 70.55e9,
    "Llama-3.1-405B": 405.8e9,
    "Mixtral-8x7B": 46.7e9,
    "GPT-J-6B": 6.05e9,
    "ResNet-50": 25.6e6,
    "ViT-B/16": 86.6e6,
    "ViT-L/16": 304.3e6,
    # Qwen2-72B HF card 72.7B; Qwen3-30B-A3B HF card 30.5B; DeepSeek-V3 671B (arXiv:2412.19437);
    # gpt-oss-120b 116.83B (OpenAI model card)
    "Qwen2-72B": 72.7e9,
    "Qwen3-30B-A3B": 30.5e9,
    "DeepSeek-V3": 671e9,
    "gpt-oss-120b": 116.83e9,  # timm vit_large_patch16_224 / HF google/vit-large-patch16-224: 304.3M
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_param_count_matches_published(name):
    shape = load_model_shape(name)
    assert shape.param_count() == pytest.approx(PUBLISHED[name], rel=0.01)
    assert shape.source


def test_mixtral_active_params():
    s = load_model_shape("Mixtral-8x7B")
    assert s.experts == 8 and s.active_experts == 2
    assert s.param_count(active=True) == pytest.approx(12.9e9, rel=0.01)


def test_resnet50_macs_per_image():
    s = load_model_shape("ResNet-50")
    assert s.macs_per_image() == pytest.approx(4.1e9, rel=0.03)
    convs = [layer for layer in s.cnn_layers if layer.op == "conv"]
    assert len(convs) == 53  # conv1 + 16 bottlenecks x 3 + 4 projection shortcuts
    assert [c.out_hw for c in convs if c.name.endswith("conv3")][-1] == 7


def test_shapes_from_public_configs():
    s = load_model_shape("Llama-3-70B")
    assert (s.hidden, s.layers, s.heads, s.kv_heads, s.head_dim, s.ffn, s.vocab) == \
        (8192, 80, 64, 8, 128, 28672, 128256)
    j = load_model_shape("GPT-J-6B")
    assert j.parallel_block and not j.gated_mlp and j.kv_heads == j.heads and j.rope_dim == 64
    v = load_model_shape("ViT-B/16")
    assert v.vision_tokens == 197


def test_unknown_model_suggests():
    with pytest.raises(DseUserError, match="did you mean 'Llama-3-8B'"):
        load_model_shape("llama-3-8")
    assert load_model_shape("llama-3-8b").name == "Llama-3-8B"
    assert "Mixtral-8x7B" in model_names()


def test_shape_rejects_unknown_fields():
    with pytest.raises(ValueError, match="hiden"):
        ModelShape.model_validate({"family": "llm", "source": "x", "hiden": 1})


def test_shapes_hashable():
    assert hash(load_model_shape("ResNet-50")) == hash(load_model_shape("ResNet-50"))
