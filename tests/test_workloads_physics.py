"""Op-table physics of the newer architectures: MLA, sliding windows, dense-first + shared experts,
per-tensor precision, routing skew (hand-computed values and properties)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dse.workloads.ops import mean_window_attended
from dse.workloads.precision import FORMATS, parse_precision, weight_format_precision
from dse.workloads.scenarios import adhoc_scenario
from dse.workloads.modelfile import load_model_shape
from dse.workloads.transformer import busiest_expert_chip, build_llm_step, expected_experts_touched

HF = Path(__file__).parent / "data" / "hf"
DSV3 = load_model_shape(HF / "deepseek-v3")
OSS = load_model_shape(HF / "gpt-oss-120b")


def _row(step, name):
    i = [str(n) for n in step.ops.name].index(name)
    return {k: v[i] for k, v in vars(step.ops).items() if isinstance(v, np.ndarray)}


def test_mla_decode_reads_the_latent_cache_once_for_all_heads():
    b, kv = 4, 1001.0
    st = build_llm_step(DSV3, "decode", batch=b, seq_len=1, kv_len=kv, tp=8, prec="fp8", context=2048)
    attn = _row(st, "attn.flash")
    # the cached 1000 tokens × (kv_lora_rank 512 + rope 64) × 1 byte, once (not per head, not K and V)
    assert attn["kv_read_bytes"] == b * 1000 * 576 * 1.0
    assert attn["kv_write_bytes"] == b * 1 * 576 * 1.0
    # absorbed: scores over 576 dims and context over 512 for 128/8 = 16 heads per chip, attended 1001
    assert attn["flops"] == pytest.approx(2 * b * 16 * 1001 * (576 + 512))
    assert st.kv_bytes_per_chip == DSV3.kv_cache_bytes(b, 2048, 8, 1.0) == b * 2048 * 61 * 576
    # the absorbed W_UK / W_UV read exactly kv_b_proj's weights
    assert _row(st, "q_absorb")["weight_bytes"] + _row(st, "v_absorb")["weight_bytes"] == 512 * 16 * (128 + 128)


def test_mla_prefill_expands_the_latent_and_writes_it():
    st = build_llm_step(DSV3, "prefill", batch=1, seq_len=512, tp=8, prec="bf16")
    assert _row(st, "kv_b_proj")["flops"] == 2 * 512 * 512 * 16 * 256
    assert _row(st, "mla_cache")["kv_write_bytes"] == 512 * 576 * 2
    assert _row(st, "attn.flash")["kv_read_bytes"] == 0 and _row(st, "attn.flash")["kv_write_bytes"] == 0


def test_dense_first_layers_and_shared_experts():
    st = build_llm_step(DSV3, "decode", batch=1, seq_len=1, kv_len=100, tp=1, prec="fp8")
    assert _row(st, "dense_mlp_up")["count"] == 3 and _row(st, "experts_up")["count"] == 58
    assert _row(st, "shared_up")["weight_bytes"] == 2 * 7168 * 2048  # gate + up of 1 shared expert, 1 B
    # all weights on one chip: ≈ parameters × 1 byte (norms and biases at 2 bytes)
    assert st.weight_bytes_per_chip == pytest.approx(DSV3.param_count(), rel=0.001)
    # pipeline stages keep the dense/MoE proportions: FLOPs add up
    stages = st.stages(4)
    assert sum(s.total_flops() for s in stages) == pytest.approx(st.total_flops(), rel=1e-12)


def test_mean_window_attended_matches_brute_force():
    for past, q, w in [(0, 10, 4), (3, 5, 6), (100, 1, 128), (0, 1000, 128), (5, 3, 100), (127, 4, 128)]:
        brute = np.mean([min(past + j + 1, w) for j in range(q)])
        assert mean_window_attended(past, q, w) == pytest.approx(brute)


def test_sliding_window_caps_kv_reads_and_capacity():
    st = build_llm_step(OSS, "decode", batch=2, seq_len=1, kv_len=8193, tp=1, prec="bf16", context=8192)
    full, swa = _row(st, "attn.flash"), _row(st, "attn_swa.flash")
    assert full["count"] == 18 and swa["count"] == 18
    per_tok = 2 * 8 * 64 * 2  # K and V, 8 KV heads of 64, 2 bytes
    assert full["kv_read_bytes"] == 2 * 8192 * per_tok
    assert swa["kv_read_bytes"] == 2 * 128 * per_tok  # the window, not the 8192-token past
    assert st.kv_bytes_per_chip == pytest.approx(2 * 8192 * 37440)


def test_per_tensor_precision_gpt_oss_mxfp4_experts():
    prec = parse_precision({"experts": "mxfp4"})  # 16-bit attention, embeddings, activations
    st = build_llm_step(OSS, "decode", batch=1, seq_len=1, kv_len=10, tp=1, prec=prec)
    expert_params = OSS.layers * OSS.experts * OSS.expert_params()
    rest = OSS.param_count() - expert_params
    hand = expert_params * 4.25 / 8 + rest * 2  # MXFP4: 4 bits + one 8-bit scale per 32
    assert st.weight_bytes_per_chip == pytest.approx(hand, rel=0.001)
    up = _row(st, "experts_up")
    assert up["compute_precision"] == "bf16"  # weight-only: dequantized to the 16-bit activations
    assert _row(st, "qkv_proj")["weight_bytes"] == 2880 * (64 + 16) * 64 * 2 + (64 + 16) * 64 * 2  # + 16-bit biases
    assert FORMATS["nvfp4"].bits_per_value == 4.5 and FORMATS["q4_0"].bits_per_value == 4.5


def test_int8_and_fp8_weight_formats_are_distinct():
    i8 = adhoc_scenario(model="Llama-3-8B", weight_format="int8", act_bits=None)
    f8 = adhoc_scenario(model="Llama-3-8B", weight_format="fp8", act_bits=None)
    assert i8.precision.compute_precision == "int8" and f8.precision.compute_precision == "fp8"
    w4 = weight_format_precision("int4")
    assert w4.act_bits == 16 and w4.compute_precision == "bf16" and w4.weight_bytes == 0.5


def test_routing_skew_reads_fewer_experts_and_loads_one_chip_more():
    E, k, tokens = 64, 4, 16
    uniform = expected_experts_touched(E, k, tokens)
    assert expected_experts_touched(E, k, tokens, skew=0.0) == uniform
    assert expected_experts_touched(E, k, tokens, skew=1.0) < uniform
    # uniform routing: the busiest of the 8 chips carries more than the mean k/8 pairs and uniform/8 experts
    # (expected maximum over the chips, see test_moe_physics.py), at most all its local experts
    pairs, touched = busiest_expert_chip(E, k, tokens, ep=8, skew=0.0)
    assert k / 8 < pairs <= k and uniform / 8 < touched <= E / 8
    assert busiest_expert_chip(E, k, tokens, ep=8, skew=1.0)[0] > k / 8
    mix = load_model_shape({"base": "Mixtral-8x7B", "routing_skew": 1.5})
    flat = build_llm_step("Mixtral-8x7B", "decode", batch=4, seq_len=1, kv_len=100, prec="bf16")
    hot = build_llm_step(mix, "decode", batch=4, seq_len=1, kv_len=100, prec="bf16")
    assert hot.total_weight_bytes() < flat.total_weight_bytes()
    hot_ep = build_llm_step(mix, "decode", batch=64, seq_len=1, kv_len=100, ep=8, prec="bf16")
    flat_ep = build_llm_step("Mixtral-8x7B", "decode", batch=64, seq_len=1, kv_len=100, ep=8, prec="bf16")
    assert hot_ep.total_flops() > flat_ep.total_flops()  # the busiest chip gets more token-expert pairs


def test_tied_embeddings_hold_one_table():
    g = load_model_shape(HF / "gemma-2-9b")
    st = build_llm_step(g, "decode", batch=1, seq_len=1, kv_len=10, prec="bf16")
    assert st.head_weight_bytes < 1e6 and st.embed_weight_bytes == g.vocab * g.hidden * 2


def test_per_tensor_precision_in_a_precision_string():
    p = parse_precision("bf16,experts=mxfp4")
    assert p.class_weight_bytes("experts") == 4.25 / 8 and p.class_weight_bytes("attn") == 2.0
    q = parse_precision("fp8,experts=nvfp4,shared_experts=nvfp4,kv_bits=8")
    assert q.class_weight_bytes("shared_experts") == 4.5 / 8 and q.kv_bits == 8
    assert q.class_compute_precision("experts") == "fp8"  # W4A8 runs on the fp8 path
    with pytest.raises(Exception, match="cannot read 'expert=mxfp4'"):
        parse_precision("bf16,expert=mxfp4")
    with pytest.raises(Exception, match="unknown weight format 'mxfp5'"):
        parse_precision("bf16,experts=mxfp5")
