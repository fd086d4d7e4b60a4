"""Hand-computed checks of the mechanisms behind the large-batch MoE rows (issue 11's `moe` regime)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dse.validate.measurements import load_measurements
from dse.workloads.modelfile import load_model_shape
from dse.workloads.transformer import GEMM_OUT_BYTES, build_llm_step


def _comm(step, name: str) -> float:
    sel = np.asarray(step.ops.name) == name
    assert sel.sum() == 1, name
    return float(np.asarray(step.ops.comm_bytes)[sel][0])


@pytest.mark.parametrize("prec, act_bytes", [("fp4,weights=nvfp4", 0.5), ("fp8", 1.0)])
def test_tp_collectives_move_16_bit_gemm_outputs_whatever_the_activation_format(prec, act_bytes):
    """Qwen3-235B-A22B decode at batch 64 on tp 8: the layer all-reduces sum the 16-bit outputs of the
    row-parallel O / down projections: 64 tokens x 4,096 hidden x 2 B = 524,288 B each, not 64 x 4,096 x the
    FP4 / FP8 activation bytes (131,072 / 262,144 B); the logits all-gather moves 64 x ceil(151,936 / 8) =
    64 x 18,992 logits at 2 B = 2,430,976 B. Fails on the activation-sized payloads."""
    s = load_measurements().models["Qwen3-235B-A22B"]  # defined beside the measurements that use it
    assert (s.hidden, s.vocab, s.active_experts) == (4096, 151936, 8)
    step = build_llm_step(s, "decode", 64, 1, 1500, tp=8, prec=prec)
    assert step.prec.act_bytes == act_bytes  # the GEMM inputs stay narrow
    assert GEMM_OUT_BYTES == 2.0
    assert _comm(step, "attn_allreduce") == 64 * 4096 * 2 == 524_288
    assert _comm(step, "mlp_allreduce") == 524_288
    assert _comm(step, "embed_allreduce") == 524_288
    assert _comm(step, "logits_allgather") == 64 * math.ceil(151936 / 8) * 2 == 2_430_976
    # with ep 2 (tp 4) each ep group holds 32 sequences: the all-reduces move 32 x 4,096 x 2 B; the dispatch
    # all-to-all sends the quantized GEMM inputs of 32 x 8 token-expert pairs, the combine their 16-bit outputs
    ep = build_llm_step(s, "decode", 64, 1, 1500, tp=4, ep=2, prec=prec)
    assert _comm(ep, "mlp_allreduce") == 32 * 4096 * 2
    assert _comm(ep, "moe_dispatch") == 32 * 8 * 4096 * act_bytes
    assert _comm(ep, "moe_combine") == 32 * 8 * 4096 * 2


def test_16_bit_activations_are_unchanged():
    """bf16 activations already move 2 B per value: the all-reduce of Llama-2-70B decode at batch 8, tp 8, is
    8 x 8,192 x 2 B = 131,072 B as before."""
    s = load_model_shape("Llama-2-70B")
    step = build_llm_step(s, "decode", 8, 1, 300, tp=8, prec="bf16")
    assert _comm(step, "attn_allreduce") == 8 * 8192 * 2 == 131_072


@pytest.mark.parametrize("prec", ["fp8", "fp4,weights=nvfp4", "bf16"])
def test_pipeline_stages_hand_over_the_16_bit_residual_stream(prec):
    """A pipeline hop carries the hidden state between layers, the residual stream that FP8/FP4 recipes keep
    in 16 bits: Llama-2-70B prefill of 4 x 512 tokens hands 2,048 x 8,192 x 2 B = 33,554,432 B to the next
    stage whatever the activation format (the step's boundary, and the mapping's hop size per token)."""
    from dse.evaluate.steps import Builders
    from dse.workloads.precision import parse_precision

    p = parse_precision(prec)
    s = load_model_shape("Llama-2-70B")
    step = build_llm_step(s, "prefill", 4, 512, 512, tp=1, prec=p)
    assert step.boundary_bytes == 4 * 512 * 8192 * 2 == 33_554_432
    assert Builders.hop_bytes(p) * Builders.hidden(s) == 8192 * 2
