"""Precision byte counts and the operator builder."""

import numpy as np
import pytest

from dse.errors import DseUserError
from dse.workloads.ops import OpBuilder, OpTable, total_flops, total_weight_bytes
from dse.workloads.precision import Precision, parse_precision


def test_bytes_per_value():
    assert parse_precision("bf16").weight_bytes == 2.0
    assert parse_precision("int4").weight_bytes == 0.5 and parse_precision("int4").act_bytes == 2.0
    # MX: 8-bit shared scale per 32 values -> 4 + 8/32 bits
    assert parse_precision("mxfp4").weight_bytes == pytest.approx(4.25 / 8)
    # 2:4 keeps half the values, each with 2 bits of index metadata
    assert parse_precision("bf16+2:4").weight_bytes == pytest.approx(0.5 * 18 / 8)
    assert parse_precision("bf16+2:4").dense_weight_bytes == 2.0


def test_compute_precision_rules():
    assert parse_precision("fp8").compute_precision == "fp8"
    assert parse_precision("int4").compute_precision == "bf16"      # weight-only quantization
    assert parse_precision("int8").compute_precision == "int8"
    assert parse_precision("w4a8").compute_precision == "int8"
    assert parse_precision("mxfp4").compute_precision == "fp4"
    assert Precision(weight_bits=4, act_bits=4, number="int").compute_precision == "int4"


def test_unknown_precision():
    with pytest.raises(DseUserError, match="did you mean 'fp8'"):
        parse_precision("fp9")


def test_gemm_counts():
    b = OpBuilder(parse_precision("bf16"))
    b.gemm("g", 4, 64, 32)
    t = b.table()
    assert t.flops[0] == 2 * 4 * 64 * 32
    assert t.weight_bytes[0] == 64 * 32 * 2
    assert t.act_in_bytes[0] == 4 * 64 * 2 and t.act_out_bytes[0] == 4 * 32 * 2
    assert (t.m[0], t.k[0], t.n[0]) == (4, 64, 32)


def test_sparse_gemm_halves_flops_and_flags():
    b = OpBuilder(parse_precision("int8+2:4"))
    b.gemm("g", 4, 64, 32)
    b.gemm("qk", 4, 64, 32, weights=False)
    t = b.table()
    assert t.flops[0] == 64 * 32 * 4 and t.sparse[0]
    assert t.flops[1] == 2 * 64 * 32 * 4 and not t.sparse[1]
    assert t.weight_bytes[0] == pytest.approx(64 * 32 * 0.5 * (8 + 2) / 8)


def test_conv_counts_real_input_not_im2col():
    b = OpBuilder(parse_precision("int8"))
    b.conv("c", batch=2, cin=64, cout=128, kernel=3, stride=1, out_hw=56)
    t = b.table()
    assert (t.m[0], t.k[0], t.n[0]) == (2 * 56 * 56, 64 * 9, 128)
    assert t.act_in_bytes[0] == 2 * 64 * 56 * 56  # not 9x that
    assert t.flops[0] == 2 * 2 * 56 * 56 * 64 * 9 * 128


def test_attention_flash_vs_unfused():
    p = parse_precision("bf16")
    kw = dict(batch=1, heads=8, kv_heads=2, head_dim=64, q_len=128, past_len=0, causal=True)
    f, u = OpBuilder(p), OpBuilder(p)
    f.attention("a", flash=True, **kw)
    u.attention("a", flash=False, **kw)
    tf, tu = f.table(), u.table()
    assert list(tf.kind) == ["attn_fused"]
    assert list(tu.kind) == ["attn_score", "softmax", "attn_context"]
    # causal flash skips the masked half; scores never leave the chip
    mm = tu.kind != "softmax"
    assert total_flops(tf) == pytest.approx(0.5 * float(tu.flops[mm].sum()) * (129 / 128), rel=1e-9)
    assert tf.act_out_bytes[0] == 128 * 8 * 64 * 2
    assert tu.act_out_bytes[0] == 8 * 128 * 128 * 2
    assert tf.m[0] == 128 * 4  # GQA: 4 query heads per kv head stacked in M


def test_counts_weight_totals_and_collectives():
    b = OpBuilder(parse_precision("bf16"))
    with b.layers(10):
        b.gemm("g", 1, 8, 8)
        b.allreduce("ar", 100, group=4)
    b.allreduce("skipped", 100, group=1)
    t = b.table()
    assert len(t) == 2 and t.layer.all()
    assert total_weight_bytes(t) == 10 * 8 * 8 * 2
    assert t.count_kind("allreduce") == 10 and t.total_comm_bytes() == 1000
    both = OpTable.concat([t, t])
    assert len(both) == 4 and np.all(both.count == 10)
