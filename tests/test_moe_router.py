"""The MoE router stays at 16 bits whatever the model's precision (DeepSeek-V3 §3.3.1 keeps the gating modules in
BF16/FP32; TensorRT Model Optimizer leaves router and lm_head unquantized): hand-computed bytes, FLOPs and the
precision the router GEMM runs at, and the weights a chip holds for it."""

from __future__ import annotations

import pytest

from dse.workloads.modelfile import load_model_shape
from dse.workloads.ops import OpBuilder
from dse.workloads.precision import parse_precision
from dse.workloads.transformer import build_llm_step


def _row(step, name):
    return list(step.ops.name).index(name)


@pytest.mark.parametrize("prec", ["fp4,weights=nvfp4", "fp8", "bf16", "fp8+2:4"])
def test_router_is_sixteen_bit_in_every_precision(prec):
    """Qwen3-30B-A3B (hidden 2,048, 128 experts) decode at batch 64 on one chip: the router reads 2,048 x 128
    weights and the 64 tokens' 2,048 values at 2 bytes each, writes 64 x 128 logits at 2 bytes, runs 2 x 64 x
    2,048 x 128 FLOPs (never halved by 2:4 sparsity) in bf16."""
    s = load_model_shape("Qwen3-30B-A3B")
    step = build_llm_step(s, "decode", batch=64, seq_len=1, kv_len=1024, tp=1, prec=prec)
    ops, r = step.ops, _row(step, "router")
    assert float(ops.weight_bytes[r]) == pytest.approx(2048 * 128 * 2.0)
    assert float(ops.act_in_bytes[r]) == pytest.approx(64 * 2048 * 2.0)
    assert float(ops.act_out_bytes[r]) == pytest.approx(64 * 128 * 2.0)
    assert float(ops.flops[r]) == pytest.approx(2.0 * 64 * 2048 * 128)
    assert str(ops.compute_precision[r]) == "bf16"
    assert not bool(ops.sparse[r])
    # softmax + top-k: reads the 64 x 128 16-bit logits, writes 8 picks per token (int32 index + fp32 weight)
    t = _row(step, "router_topk")
    assert float(ops.act_in_bytes[t]) == pytest.approx(64 * 128 * 2.0)
    assert float(ops.act_out_bytes[t]) == pytest.approx(64 * 8 * 8.0)
    assert float(ops.flops[t]) == pytest.approx(5.0 * 64 * 128)


def test_router_weights_in_the_chip_footprint():
    """A chip's layer weights count the router at 2 bytes per weight in every format: Qwen3-30B-A3B's layer at fp8
    minus at NVFP4 (4 + 8/16 bits = 0.5625 B) is the quantized weights only, (1 - 0.5625) B x (QKV 2,048 x 5,120 +
    O 4,096 x 2,048 + 128 experts x 3 x 2,048 x 768); the router's 2,048 x 128 and the norms cancel."""
    s = load_model_shape("Qwen3-30B-A3B")
    fp4 = build_llm_step(s, "decode", batch=8, seq_len=1, kv_len=1024, tp=1, prec="fp4,weights=nvfp4")
    fp8 = build_llm_step(s, "decode", batch=8, seq_len=1, kv_len=1024, tp=1, prec="fp8")
    quantized = 2048 * 5120 + 4096 * 2048 + 128 * 3 * 2048 * 768
    assert fp8.layer_weight_bytes - fp4.layer_weight_bytes == pytest.approx(quantized * (1.0 - 0.5625), rel=1e-12)


def test_wide_gemm_hand_values_and_default_unchanged():
    """OpBuilder.gemm(wide=True): weights, input, output at 2 B and bf16 arithmetic at any precision; without it a
    GEMM follows the precision (fp8: 1-byte weights and activations, fp8 arithmetic)."""
    b = OpBuilder(parse_precision("fp8"))
    b.gemm("w", 4, 8, 16, wide=True)
    b.gemm("n", 4, 8, 16)
    t = b.table()
    assert [float(x) for x in t.weight_bytes] == [8 * 16 * 2.0, 8 * 16 * 1.0]
    assert [float(x) for x in t.act_in_bytes] == [4 * 8 * 2.0, 4 * 8 * 1.0]
    assert [float(x) for x in t.act_out_bytes] == [4 * 16 * 2.0, 4 * 16 * 1.0]
    assert [str(x) for x in t.compute_precision] == ["bf16", "fp8"]
