"""Grouped expert GEMMs run whole tiles: each expert's tokens are padded to the tile (MoE physics, issue 11
item 9); hand-computed values and properties of the padded rows and the executed FLOPs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dse.workloads.modelfile import load_model_shape
from dse.workloads.transformer import (MOE_TILE_MAX_ROWS, MOE_TILE_MIN_ROWS, build_llm_step, moe_tile_rows,
                                       padded_expert_rows)


def test_tile_rows_hand_values():
    assert moe_tile_rows(1.0) == MOE_TILE_MIN_ROWS == 16
    assert moe_tile_rows(16.0) == 16
    assert moe_tile_rows(17.0) == 32
    assert moe_tile_rows(64.0) == 64
    assert moe_tile_rows(500.0) == MOE_TILE_MAX_ROWS == 128


def test_padded_rows_hand_values():
    # one expert: deterministic, ceil to whole tiles
    assert padded_expert_rows(128, 1, 128) == 128.0
    assert padded_expert_rows(129, 1, 128) == 256.0
    # one token-expert pair over 8 experts: exactly one expert runs one 16-row tile
    assert padded_expert_rows(1, 8, 16) == pytest.approx(16.0)
    # two pairs over 2 experts (X ~ Binomial(2, 1/2)), tile 16: E[#experts hit] = 2 * (1 - 1/4) = 1.5 tiles
    assert padded_expert_rows(2, 2, 16) == pytest.approx(1.5 * 16)
    # three pairs over 2 experts, tile 2: X in {0,1,2,3} w.p. 1/8, 3/8, 3/8, 1/8 -> tiles 0,1,1,2 -> E = 1
    # tile per expert -> 2 experts * 2 rows = 4 rows
    assert padded_expert_rows(3, 2, 2) == pytest.approx(4.0)


@settings(max_examples=60, deadline=None)
@given(pairs=st.integers(1, 200_000), experts=st.sampled_from([1, 8, 64, 128, 256]),
       tile=st.sampled_from([16, 32, 64, 128]))
def test_padding_bounds(pairs, experts, tile):
    """At least the real rows; at most one tile more per expert (no cliff larger than the tile step)."""
    rows = padded_expert_rows(pairs, experts, tile)
    assert rows >= pairs - 1e-6 * pairs
    assert rows <= pairs + experts * tile + 1e-6 * pairs


def test_padded_rows_never_shrink_with_more_tokens():
    for experts in (8, 128):
        prev = 0.0
        for pairs in list(range(1, 300)) + [1000, 4096, 8192, 65536]:
            tile = moe_tile_rows(pairs / experts)
            rows = padded_expert_rows(pairs, experts, tile)
            assert rows >= prev - 1e-9, (experts, pairs)
            prev = rows


def test_expert_gemm_flops_are_the_padded_rows():
    """Qwen3-30B-A3B prefill of one 8,000-token chunk on one chip: 64,000 token-expert pairs over 128
    experts (500 rows each on average, tile 128): the expert GEMMs execute the padded rows
    (FLOPs = 2 · rows · K · N), their activation bytes are those of the real rows."""
    s = load_model_shape("Qwen3-30B-A3B")
    step = build_llm_step(s, "prefill", batch=8, seq_len=1000, prec="fp8")
    names = list(step.ops.name)
    up, down = names.index("experts_up"), names.index("experts_down")
    pairs = 8 * 1000 * 8
    rows = padded_expert_rows(pairs, 128, 128)
    assert pairs < rows < pairs + 128 * 128
    assert float(step.ops.flops[up]) == pytest.approx(2.0 * rows * 2048 * 2 * 768)
    assert float(step.ops.flops[down]) == pytest.approx(2.0 * rows * 768 * 2048)
    assert float(step.ops.act_in_bytes[up]) == pytest.approx(pairs * 2048 * 1.0)
    # padding waste is the expected partial last tile: about half a tile per expert here
    waste = (rows - pairs) / 128
    assert 20 < waste < 108
    # the executed FLOPs never fall below the unpadded FLOPs of the routed tokens
    assert float(step.ops.flops[up]) >= 2.0 * pairs * 2048 * 2 * 768


def test_decode_pads_each_touched_expert_to_a_small_tile():
    """Batch 4 decode of Qwen3-30B-A3B: 32 pairs over 128 experts, ~29.7 experts hit once or twice:
    each runs one 16-row tile (the smallest), so executed rows ≈ 16 per touched expert."""
    s = load_model_shape("Qwen3-30B-A3B")
    step = build_llm_step(s, "decode", batch=4, seq_len=1, kv_len=512, prec="bf16")
    up = list(step.ops.name).index("experts_up")
    touched = 128 * (1 - (1 - 8 / 128) ** 4)
    rows_per_group = float(step.ops.flops[up]) / (2.0 * touched * 2048 * 2 * 768)
    # 32 pairs rarely put 17+ rows on one expert: one 16-row tile per expert hit
    assert rows_per_group == pytest.approx(16.0, rel=1e-6)
    assert math.isfinite(rows_per_group)
    assert np.isfinite(step.ops.flops).all()


@pytest.mark.parametrize("model,tp,ep", [("Qwen3-30B-A3B", 1, 1), ("Mixtral-8x7B", 2, 1), ("DeepSeek-V3", 1, 8)])
def test_step_expert_flops_never_shrink_with_the_batch(model, tp, ep):
    """More tokens in a step never execute fewer expert FLOPs, and the executed FLOPs stay within one tile
    per expert hit of the routed tokens' FLOPs (no cliff larger than the tile step)."""
    s = load_model_shape(model)
    prev = 0.0
    for batch in (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048):
        step = build_llm_step(s, "decode", batch=batch, seq_len=1, kv_len=512, tp=tp, ep=ep, prec="fp8")
        names = list(step.ops.name)
        up = names.index("experts_up")
        flops = float(step.ops.flops[up])
        assert flops >= prev * (1 - 1e-9), (model, batch)
        prev = flops
        groups = float(step.ops.flops[up]) / (2.0 * float(step.ops.m[up]) * float(step.ops.k[up]) * float(step.ops.n[up]))
        routed = float(step.ops.act_in_bytes[up]) / (float(step.ops.k[up]) * 1.0)  # rows of real tokens (fp8: 1 B)
        padded = flops / (2.0 * float(step.ops.k[up]) * float(step.ops.n[up]))
        assert routed - 1e-6 <= padded <= routed + groups * MOE_TILE_MAX_ROWS + 1e-6


# BLOCK_SIZE_M by tokens per launch of SGLang 0.5.23's tuned Triton fused-MoE tables for 128 experts of N = 768
# (Qwen3-30B-A3B at tp 1), read from its PyPI wheel: sglang/srt/layers/moe/moe_runner/triton_utils/configs/
# triton_3_6_0/E=128,N=768,device_name=NVIDIA_H200.json and triton_3_7_1/E=128,N=768,device_name=NVIDIA_H100_80GB_HBM3.json
_SGLANG_BLOCK_M = {
    "H200": {1: 16, 2: 16, 4: 16, 8: 16, 16: 16, 24: 16, 32: 16, 48: 16, 64: 16, 96: 16, 128: 16, 256: 32, 512: 64,
             1024: 128, 1536: 128, 2048: 128, 3072: 128, 4096: 128},
    "H100": {1: 16, 2: 16, 4: 16, 8: 16, 16: 16, 24: 16, 32: 16, 48: 16, 64: 16, 96: 16, 128: 16, 256: 32, 512: 64,
             1024: 64, 1536: 128, 2048: 128, 3072: 128, 4096: 128},
}


@pytest.mark.parametrize("gpu", sorted(_SGLANG_BLOCK_M))
def test_tile_rows_against_an_autotuned_table(gpu):
    """dse's tile (the power of two at or above the mean rows per expert, 16-128) is the tuned kernel's tile or half
    of it at every batch of the table, equal at both ends (a few tokens per expert: the MMA's 16 rows; ~100 and more:
    128), with top-8 of 128 experts (tokens / 16 rows per expert)."""
    for tokens, block_m in _SGLANG_BLOCK_M[gpu].items():
        tile = moe_tile_rows(tokens * 8 / 128)
        assert block_m / 2 <= tile <= block_m, (gpu, tokens, tile, block_m)
        if tokens <= 128 or tokens >= 1536:
            assert tile == block_m, (gpu, tokens, tile, block_m)
    # the tile of the Qwen3-30B-A3B rows of dse/catalog/measurements.yaml: 1,474-1,603 tokens per decode step,
    # 8,000-8,192 per prefill chunk
    assert moe_tile_rows(1474 * 8 / 128) == moe_tile_rows(8192 * 8 / 128) == 128
