"""build_llm_step: hand-computed FLOPs and bytes, tensor / expert / pipeline parallelism, precisions."""

import numpy as np
import pytest

from dse.errors import DseUserError
from dse.workloads.modelfile import load_model_shape
from dse.workloads.transformer import build_llm_step, expected_experts_touched, mean_decode_kv_len, padded_expert_rows

L7 = load_model_shape("Llama-2-7B")


def _rows(step, prefix):
    return np.array([str(n).startswith(prefix) for n in step.ops.name])


def test_mean_decode_kv_len():
    assert mean_decode_kv_len(512, 256) == pytest.approx(512 + 128.5)
    assert mean_decode_kv_len(10, 1) == 11


def test_llama2_7b_decode_batch1_by_hand():
    kv = 1024
    st = build_llm_step(L7, "decode", batch=1, seq_len=1, kv_len=kv, tp=1, ep=1, prec="bf16")
    embed = L7.vocab * L7.hidden
    linear = L7.param_count() - embed - L7.layers * L7.norm_params() - L7.hidden
    # weights streamed once per token: every linear weight at 2 bytes (+ one embedding row, norms)
    assert st.total_weight_bytes() == pytest.approx(2 * linear, rel=0.001)
    # FLOPs: 2 per weight + attention (QK^T and PV: 2 * 2 * hidden * kv per layer)
    attn = L7.layers * 4 * L7.hidden * kv
    assert st.total_flops() == pytest.approx(2 * linear + attn, rel=0.001)
    # KV: read the cached kv-1 tokens, write one token, K and V, every layer
    per_tok = L7.layers * 2 * L7.kv_heads * L7.head_dim * 2
    assert st.ops.total_kv_bytes() == pytest.approx(per_tok * kv, rel=1e-9)
    assert st.weight_bytes_per_chip == pytest.approx(2 * L7.param_count(), rel=0.001)
    assert st.tokens == 1 and st.layers == 32
    assert st.ops.count_kind("allreduce") == 0


def test_kv_bytes_formula():
    s = load_model_shape("Llama-3-70B")
    st = build_llm_step(s, "decode", 16, 1, 1500.5, tp=4, prec="fp8", context=2048 + 256)
    expect = 16 * (2048 + 256) * 80 * 2 * (8 / 4) * 128 * 1.0
    assert st.kv_bytes_per_chip == pytest.approx(expect)
    # tp beyond kv_heads replicates KV heads: one per chip
    st16 = build_llm_step(s, "decode", 16, 1, 1500.5, tp=16, prec="fp8", context=2304)
    assert st16.kv_bytes_per_chip == pytest.approx(16 * 2304 * 80 * 2 * 1 * 128)


def test_tensor_parallel_splits_weights_and_adds_allreduces():
    s = load_model_shape("Llama-3-70B")
    one = build_llm_step(s, "decode", 8, 1, 1000, tp=1, prec="bf16")
    eight = build_llm_step(s, "decode", 8, 1, 1000, tp=8, prec="bf16")
    assert eight.weight_bytes_per_chip == pytest.approx(one.weight_bytes_per_chip / 8, rel=0.002)
    assert eight.weight_bytes_per_chip > one.weight_bytes_per_chip / 8  # norms replicate
    layer_ar = eight.ops.layer & (eight.ops.kind == "allreduce")
    assert eight.ops.count[layer_ar].sum() == 2 * s.layers
    assert np.all(eight.ops.comm_bytes[layer_ar] == 8 * s.hidden * 2)
    assert np.all(eight.ops.group[layer_ar] == 8)
    assert one.ops.count_kind("allreduce") == 0
    assert eight.total_flops() == pytest.approx(one.total_flops() / 8, rel=0.01)


def test_gptj_parallel_block_single_allreduce():
    s = load_model_shape("GPT-J-6B")
    st = build_llm_step(s, "decode", 1, 1, 100, tp=2)
    layer_ar = st.ops.layer & (st.ops.kind == "allreduce")
    assert st.ops.count[layer_ar].sum() == s.layers
    assert not any(str(n).startswith("mlp_norm") for n in st.ops.name)


def test_moe_experts_read_at_most_once():
    s = load_model_shape("Mixtral-8x7B")
    expert_w = s.layers * s.experts * s.expert_params() * 2  # bf16 bytes of all experts
    def read(batch):
        st = build_llm_step(s, "decode", batch, 1, 512, prec="bf16")
        return st.ops.select(_rows(st, "experts_")).total_weight_bytes()
    assert read(1) == pytest.approx(expert_w * 2 / 8, rel=1e-6)
    assert read(256) == pytest.approx(expert_w, rel=1e-6)
    assert read(1) < read(4) < read(16) <= read(256)
    assert expected_experts_touched(8, 2, 1) == pytest.approx(2)


def test_moe_flops_use_active_experts_and_ep():
    s = load_model_shape("Mixtral-8x7B")
    st = build_llm_step(s, "decode", 64, 1, 512, prec="fp8")
    ex = st.ops.select(_rows(st, "experts_"))
    gemm = ex.kind == "gemm"
    executed = float(np.sum(ex.flops[gemm] * ex.count[gemm]))
    # the routed tokens' FLOPs are a lower bound; the grouped GEMMs run each expert's 64 * 2 / 8 = 16 rows
    # on average padded to whole 16-row tiles (MoE tile padding, tests/test_moe_tiles.py)
    assert executed >= 64 * 2 * 2 * s.expert_params() * s.layers
    assert executed == pytest.approx(padded_expert_rows(64 * 2, 8, 16) * 2 * s.expert_params() * s.layers, rel=1e-6)
    ep = build_llm_step(s, "decode", 64, 1, 512, ep=4, prec="fp8")
    assert ep.ops.count_kind("alltoall") == 2 * s.layers
    assert ep.total_flops() < st.total_flops() / 2
    with pytest.raises(DseUserError, match="mixture-of-experts"):
        build_llm_step(L7, "decode", 1, 1, 10, ep=2)


def test_int4_weights_quarter_of_bf16():
    s = load_model_shape("Llama-3-8B")
    bf = build_llm_step(s, "decode", 1, 1, 600, prec="bf16")
    q4 = build_llm_step(s, "decode", 1, 1, 600, prec="int4")
    assert q4.weight_bytes_per_chip == pytest.approx(bf.weight_bytes_per_chip / 4, rel=0.001)
    assert q4.total_weight_bytes() == pytest.approx(bf.total_weight_bytes() / 4, rel=0.001)
    assert q4.total_kv_bytes() == bf.total_kv_bytes()  # 16-bit KV in both
    assert set(q4.ops.compute_precision) == {"bf16"}


def test_sparsity_halves_weights_plus_metadata_and_flops():
    s = load_model_shape("Llama-3-8B")
    dense = build_llm_step(s, "decode", 1, 1, 8, prec="fp8")
    sparse = build_llm_step(s, "decode", 1, 1, 8, prec="fp8+2:4")
    g = dense.ops.kind == "gemm"
    ratio = 0.5 * (8 + 2) / 8
    assert np.allclose(sparse.ops.weight_bytes[g], dense.ops.weight_bytes[g] * ratio)
    assert np.allclose(sparse.ops.flops[g], dense.ops.flops[g] / 2)
    assert sparse.ops.sparse[g].all() and not dense.ops.sparse.any()


def test_prefill_logits_last_token_only_and_causal():
    s = load_model_shape("Llama-3-8B")
    st = build_llm_step(s, "prefill", 2, 2048, 2048, prec="bf16")
    head = _rows(st, "lm_head")
    assert st.ops.m[head][0] == 2 and st.tokens == 2 * 2048
    qkv = _rows(st, "qkv_proj")
    assert st.ops.m[qkv][0] == 2 * 2048
    assert st.ops.total_kv_bytes() == pytest.approx(2 * 2048 * 32 * 2 * 8 * 128 * 2)  # writes only
    flash = st.ops.select(st.ops.kind == "attn_fused")
    unfused = build_llm_step(s, "prefill", 2, 2048, 2048, prec="bf16", flash=False)
    score = unfused.ops.select(unfused.ops.kind == "attn_score")
    assert flash.flops[0] == pytest.approx(score.flops[0] * 2049 / 2048, rel=1e-9)  # = 2 x half


def test_pipeline_stages_partition_the_step():
    s = load_model_shape("Llama-2-70B")
    st = build_llm_step(s, "decode", 4, 1, 300, tp=2, prec="fp8", context=400)
    stages = st.stages(3)
    assert [x.layers for x in stages] == [27, 27, 26]
    assert sum(x.weight_bytes_per_chip for x in stages) == pytest.approx(st.weight_bytes_per_chip)
    assert sum(x.kv_bytes_per_chip for x in stages) == pytest.approx(st.kv_bytes_per_chip)
    assert sum(x.total_flops() for x in stages) == pytest.approx(st.total_flops())
    assert [x.ops.count_kind("sendrecv") for x in stages] == [1, 1, 0]
    assert stages[0].ops.comm_bytes[stages[0].ops.kind == "sendrecv"][0] == 4 * s.hidden * 2.0  # 16-bit residual stream
    assert "lm_head" in set(stages[2].ops.name) and "lm_head" not in set(stages[0].ops.name)
    assert st.stage(3).stage_index in (0, 2) and st.stage(1) is st


def test_bad_inputs():
    with pytest.raises(DseUserError):
        build_llm_step(L7, "train", 1, 1, 1)
    with pytest.raises(DseUserError):
        build_llm_step(load_model_shape("ResNet-50"), "decode", 1, 1, 1)
