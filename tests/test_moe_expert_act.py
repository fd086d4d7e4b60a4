"""The experts' activation runs as a kernel of its own between the two grouped GEMMs (MegaBlocks arXiv:2211.15841
§3: grouped GEMM, activation, grouped GEMM; vLLM / SGLang fused_moe: intermediate cache, silu_and_mul, second GEMM):
the up GEMM writes its outputs at 16 bits, the activation reads them and writes the down GEMM's input format.
Hand-computed bytes and FLOPs of one MoE layer, and the row is never folded into a GEMM epilogue by a fusing stack."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model.calibration import load_calibration
from dse.model.perf import op_times
from dse.validate.predict import hw_view
from dse.workloads.modelfile import load_model_shape
from dse.workloads.transformer import build_llm_step


def _row(step, name):
    return list(step.ops.name).index(name)


@pytest.mark.parametrize("prec,ab", [("fp8", 1.0), ("fp4,weights=nvfp4", 0.5), ("bf16", 2.0)])
def test_expert_activation_bytes_by_hand(prec, ab):
    """Qwen3-30B-A3B (hidden 2,048, 128 experts of ffn 768, top-8, gated) prefill of one 1,024-token prompt on one
    chip: 1,024 x 8 = 8,192 token-expert pairs. The up GEMM writes 8,192 x (2 x 768) values at 2 bytes =
    25,165,824 B whatever the format; the activation reads those and writes 8,192 x 768 values in the activation
    format (fp8 6,291,456 B; fp4 3,145,728 B; bf16 12,582,912 B) and runs (SiLU 4 + the gate multiply 1) FLOPs per
    output value = 5 x 8,192 x 768 = 31,457,280."""
    s = load_model_shape("Qwen3-30B-A3B")
    step = build_llm_step(s, "prefill", batch=1, seq_len=1024, kv_len=1024, tp=1, prec=prec)
    ops = step.ops
    up, act = _row(step, "experts_up"), _row(step, "experts_act")
    assert float(ops.act_out_bytes[up]) == pytest.approx(8192 * 1536 * 2.0)
    assert float(ops.act_in_bytes[up]) == pytest.approx(8192 * 2048 * ab)  # the permuted rows in the GEMM's format
    assert str(ops.kind[act]) == "permute"
    assert float(ops.act_in_bytes[act]) == pytest.approx(8192 * 1536 * 2.0)
    assert float(ops.act_out_bytes[act]) == pytest.approx(8192 * 768 * ab)
    assert float(ops.flops[act]) == pytest.approx(5.0 * 8192 * 768)
    # the down GEMM reads what the activation wrote
    down = _row(step, "experts_down")
    assert float(ops.act_in_bytes[down]) == pytest.approx(float(ops.act_out_bytes[act]))


def test_moe_layer_activation_traffic_by_hand():
    """Every activation byte of one Qwen3-30B-A3B MoE block at fp8, decode at batch 64 on one chip (T = 64 tokens,
    512 pairs): router in 64 x 2,048 x 2 + out 64 x 128 x 2; top-k in 64 x 128 x 2 + out 512 x 8; gather in
    64 x 2,048 x 2 + out 512 x 2,048 x 1; up in 512 x 2,048 x 1 + out 512 x 1,536 x 2; activation in 512 x 1,536 x 2
    + out 512 x 768 x 1; down in 512 x 768 x 1 + out 512 x 2,048 x 2; scatter-reduce in 512 x 2,048 x 2 + out
    64 x 2,048 x 1."""
    s = load_model_shape("Qwen3-30B-A3B")
    step = build_llm_step(s, "decode", batch=64, seq_len=1, kv_len=1024, tp=1, prec="fp8")
    ops = step.ops
    names = ["router", "router_topk", "moe_permute", "experts_up", "experts_act", "experts_down", "moe_unpermute"]
    got = sum(float(ops.act_in_bytes[_row(step, n)] + ops.act_out_bytes[_row(step, n)]) for n in names)
    want = (64 * 2048 * 2 + 64 * 128 * 2) + (64 * 128 * 2 + 512 * 8) + (64 * 2048 * 2 + 512 * 2048 * 1) \
        + (512 * 2048 * 1 + 512 * 1536 * 2) + (512 * 1536 * 2 + 512 * 768 * 1) + (512 * 768 * 1 + 512 * 2048 * 2) \
        + (512 * 2048 * 2 + 64 * 2048 * 1)
    assert got == pytest.approx(want)


@pytest.mark.parametrize("cls", ["graph", "tuned", "generic"])
def test_expert_activation_is_never_an_epilogue(cls):
    """A fusing stack folds the dense MLP's activation into the GEMM epilogue (its bytes vanish) but not the
    experts' one: on a B200 the experts_act row of a 1,024-token prefill moves its 25.2 MB in + 6.3 MB out
    (on chip or off) and pays a kernel boundary; under graph the dense Llama-3-8B's mlp_act moves nothing (fused),
    under generic (eager) it is a kernel too. Checked on the operator model as the mapping times it."""
    s = load_model_shape("Qwen3-30B-A3B")
    step = build_llm_step(s, "prefill", batch=1, seq_len=1024, kv_len=1024, tp=1, prec="fp8")
    hw = hw_view("B200", 1)
    cal = load_calibration(cls)
    off = np.zeros(1)
    t = op_times(step.ops, hw, cal, off, off, off)
    a = _row(step, "experts_act")
    moved = float(t.offchip_bytes[0, a] + t.sram_bytes[0, a])
    assert moved == pytest.approx(8192 * 1536 * 2.0 + 8192 * 768 * 1.0, rel=1e-9)
    assert float(t.overhead[0, a]) > 0.0
    assert float(t.total[0, a]) > 0.0
    dense = build_llm_step(load_model_shape("Llama-3-8B"), "prefill", batch=1, seq_len=1024, kv_len=1024, tp=1,
                           prec="fp8")
    td = op_times(dense.ops, hw, cal, off, off, off)
    d = _row(dense, "mlp_act")
    fused = float(td.offchip_bytes[0, d] + td.sram_bytes[0, d]) == 0.0
    assert fused == (cls == "graph")
