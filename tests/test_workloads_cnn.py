"""build_cnn_step: ResNet-50 convs as implicit-im2col GEMMs, ViT-B/16 encoder."""

import pytest

from dse.errors import DseUserError
from dse.workloads.cnn import build_cnn_step
from dse.workloads.modelfile import load_model_shape


def test_resnet50_flops_and_weights():
    s = load_model_shape("ResNet-50")
    st = build_cnn_step(s, batch=8, tp=1, prec="int8")
    gemm = st.ops.kind == "gemm"
    assert (st.ops.flops[gemm] * st.ops.count[gemm]).sum() == pytest.approx(8 * 2 * s.macs_per_image())
    assert st.total_flops() == pytest.approx(8 * 2 * 4.1e9, rel=0.03)
    # int8 weights: 1 byte per weight, read once per batch; folded-BN biases at 16 bits
    assert st.total_weight_bytes() == pytest.approx(s.param_count(), rel=0.01)
    assert st.weight_bytes_per_chip == pytest.approx(s.param_count(), rel=0.01)
    assert st.tokens == 8 and st.kv_bytes_per_chip == 0 and st.layers == 0
    assert set(st.ops.compute_precision) == {"int8"}


def test_resnet50_conv_shapes():
    st = build_cnn_step("ResNet-50", batch=2, prec="int8")
    rows = {r["name"]: r for r in st.ops.rows()}
    c1 = rows["conv1"]
    assert (c1["m"], c1["k"], c1["n"]) == (2 * 112 * 112, 3 * 49, 64)
    assert c1["act_in_bytes"] == 2 * 3 * 224 * 224  # real input, not the 147-wide im2col matrix
    c2 = rows["layer2.0.conv2"]  # the stride-2 3x3 conv of stage 2 (v1.5)
    assert (c2["m"], c2["k"], c2["n"]) == (2 * 28 * 28, 128 * 9, 128)
    assert c2["act_in_bytes"] == 2 * 128 * 56 * 56
    assert rows["fc"]["n"] == 1000
    assert "layer1.0.conv3.add_relu" in rows and "layer1.0.downsample.relu" not in rows


def test_unfused_epilogue_moves_more_bytes():
    fused = build_cnn_step("ResNet-50", 4, prec="int8")
    unfused = build_cnn_step("ResNet-50", 4, prec="int8", fused=False)
    assert unfused.total_act_bytes() > fused.total_act_bytes()
    assert unfused.total_flops() == fused.total_flops()


def test_resnet_tp_splits_channels():
    one = build_cnn_step("ResNet-50", 4, tp=1, prec="int8")
    two = build_cnn_step("ResNet-50", 4, tp=2, prec="int8")
    assert two.weight_bytes_per_chip == pytest.approx(one.weight_bytes_per_chip / 2, rel=0.01)
    assert two.ops.count_kind("allgather") > 0 and one.ops.count_kind("allgather") == 0
    with pytest.raises(DseUserError, match="pipeline"):
        one.stage(2)


def test_vit_b16():
    s = load_model_shape("ViT-B/16")
    st = build_cnn_step(s, batch=1, prec="bf16")
    # ~17.6 GMAC per 224x224 image (ViT paper, Table 6 / timm: 17.6 GFLOPs counted as MACs)
    assert st.total_flops() / 2 == pytest.approx(17.6e9, rel=0.03)
    assert st.weight_bytes_per_chip == pytest.approx(2 * s.param_count(), rel=0.01)
    qkv = [r for r in st.ops.rows() if r["name"] == "qkv_proj"][0]
    assert qkv["m"] == 197 and qkv["count"] == 12
    assert st.ops.total_kv_bytes() == 0 and st.layers == 12
    assert [x.layers for x in st.stages(2)] == [6, 6]


def test_cnn_builder_rejects_llm():
    with pytest.raises(DseUserError):
        build_cnn_step("Llama-3-8B", 1)


def test_cnn_and_vit_as_yaml_layers_as_data(tmp_path):
    from dse.errors import DseUserError
    from dse.workloads.modelfile import load_model_shape

    f = tmp_path / "tiny.yaml"
    f.write_text("family: cnn\nsource: test\nimage_size: 32\nnum_classes: 10\ncnn_layers:\n"
                 "  - {op: conv, name: c1, cin: 3, cout: 16, kernel: 3, stride: 1, out_hw: 32}\n"
                 "  - {op: fc, name: fc, cin: 16, cout: 10, out_hw: 1}\n")
    s = load_model_shape(f)
    assert s.name == "tiny" and s.param_count() == 3 * 16 * 9 + 2 * 16 + 16 * 10 + 10
    st = build_cnn_step(s, batch=2, prec="bf16")
    assert st.total_flops() >= 2 * 2 * (32 * 32 * 27 * 16 + 16 * 10)
    f.write_text(f.read_text().replace("cout: 16,", "cout: -16,"))
    with pytest.raises(DseUserError, match=r"tiny.yaml:6:\d+: cnn_layers.0.cout"):
        load_model_shape(f)
    vit384 = load_model_shape({"base": "ViT-B/16", "name": "ViT-B/16-384", "image_size": 384})
    assert vit384.vision_tokens == 24 * 24 + 1
    assert build_cnn_step(vit384, batch=1, prec="bf16").seq_len == 577
