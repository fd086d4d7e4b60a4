"""Vision models → operators for one inference batch on one chip: ResNet-50 (convs as implicit-im2col
GEMMs) and ViT (patch-embedding GEMM + transformer encoder layers)."""

from __future__ import annotations

import math

from dse.errors import DseUserError
from dse.workloads.ops import RELU_FLOPS, OpBuilder
from dse.workloads.precision import Precision, parse_precision
from dse.workloads.shapes import ModelShape
from dse.workloads.modelfile import load_model_shape
from dse.workloads.step import Step, peak_act_bytes
from dse.workloads.transformer import NORM_PARAM_BYTES, _Dims, _layer_weight_bytes, add_layer_ops

BIAS_BYTES = NORM_PARAM_BYTES  # folded-BN / linear biases kept at 16 bits


def build_cnn_step(shape: ModelShape | str, batch: int, tp: int = 1,
                   prec: Precision | str | dict | None = None, *, fused: bool = True) -> Step:
    """Operators of one batch of `batch` images on one chip of a `tp`-chip group.

    ResNet: conv + folded BN as GEMMs (M = batch·OH·OW, K = Cin·KH·KW, N = Cout), ReLU and residual
    adds as elementwise ops, pooling, FC. With `fused` (what inference compilers such as TensorRT do)
    ReLU / add run in the conv epilogue: their FLOPs count, but only the residual input is extra
    traffic. With tp > 1 each conv's output channels are split and the output all-gathered (crude:
    CNNs are normally run data parallel). ViT: the transformer layers are split Megatron-style.
    """
    s = load_model_shape(shape) if isinstance(shape, str) else shape
    p = parse_precision(prec)
    if batch < 1 or tp < 1:
        raise DseUserError("batch and tp must be >= 1")
    if s.family == "cnn":
        return _resnet(s, batch, tp, p, fused)
    if s.family == "vit":
        return _vit(s, batch, tp, p)
    raise DseUserError(f"build_cnn_step needs a cnn or vit model, got {s.name} ({s.family})")


def pipeline_depth(shape: ModelShape | str) -> float:
    """Periods an image waits in a line-buffered layer pipeline before its last layer starts: Σ over the
    layers after the first of the share of its input a layer needs before it can emit its first output.

    On a chip that runs every layer on its own region (chip.layer_pipeline), the regions are balanced so that
    each takes one period T per image, and a layer starts as soon as the input rows its kernel covers have
    arrived: a k×k conv ('same' padding) needs its first k − ⌊k/2⌋ input rows of H, a global pool or an FC
    the whole input. One image then takes T·(1 + depth); b images back to back T·(b + depth). The
    projection shortcut of a residual block (a conv with neither ReLU nor residual add) runs beside the
    block's main path, which is the longer one, and adds nothing. ResNet-50: 656/112 = 5.857 (hand sum in
    tests/test_layer_pipeline.py). ViT: attention needs every token of its input, so each encoder layer waits
    for the whole previous one (1 each), as does the head on the class token (1).
    """
    s = load_model_shape(shape) if isinstance(shape, str) else shape
    if s.family == "vit":
        return float(s.layers + 1)
    if s.family != "cnn":
        raise DseUserError(f"pipeline_depth needs a cnn or vit model, got {s.name} ({s.family})")
    depth = 0.0
    for layer in s.cnn_layers[1:]:
        if layer.op == "conv" and not layer.relu and not layer.residual:
            continue  # projection shortcut, beside the main path
        h = layer.input_hw
        if layer.op == "fc" or (layer.op == "avgpool" and layer.out_hw == 1):
            depth += 1.0
        else:
            depth += min(layer.kernel - layer.kernel // 2, h) / h
    return depth


def _resnet(s: ModelShape, batch: int, tp: int, p: Precision, fused: bool) -> Step:
    b = OpBuilder(p)
    ab = p.act_bytes
    weights = 0.0
    for layer in s.cnn_layers:
        out_elems = batch * layer.out_hw ** 2 * layer.cout
        in_bytes = batch * layer.input_hw ** 2 * layer.cin * ab
        if layer.op == "conv":
            cout = math.ceil(layer.cout / tp)
            b.conv(layer.name, batch, layer.cin, cout, layer.kernel, layer.stride, layer.out_hw,
                   in_hw=layer.input_hw)
            weights += layer.cin * layer.kernel ** 2 * cout * p.weight_bytes + cout * BIAS_BYTES
            b.allgather(f"{layer.name}.allgather", out_elems * ab / tp, tp)
            if layer.residual or layer.relu:
                inputs = 2 if layer.residual else 1
                flops = (RELU_FLOPS + (1.0 if layer.residual else 0.0)) * out_elems
                extra_in = out_elems * ab if layer.residual else 0.0  # the skip tensor
                if fused:
                    b.vector(f"{layer.name}.{'add_relu' if layer.residual else 'relu'}", "elementwise",
                             flops=flops, act_in_bytes=extra_in)
                else:
                    b.vector(f"{layer.name}.{'add_relu' if layer.residual else 'relu'}", "elementwise",
                             flops=flops, act_in_bytes=inputs * out_elems * ab, act_out_bytes=out_elems * ab)
        elif layer.op in ("maxpool", "avgpool"):
            per = layer.kernel ** 2 if layer.op == "maxpool" else 1.0  # avgpool: ~1 add per input
            n = out_elems * per if layer.op == "maxpool" else batch * layer.input_hw ** 2 * layer.cin
            b.vector(layer.name, "elementwise", flops=n, act_in_bytes=in_bytes, act_out_bytes=out_elems * ab)
        else:  # fc
            cout = math.ceil(layer.cout / tp)
            b.gemm(layer.name, batch, layer.cin, cout, bias=True)
            weights += layer.cin * cout * p.weight_bytes + cout * BIAS_BYTES
            b.allgather(f"{layer.name}.allgather", batch * layer.cout * ab / tp, tp)
    ops = b.table()
    return Step(ops=ops, layers=0, weight_bytes_per_chip=weights, kv_bytes_per_chip=0.0,
                act_bytes_per_chip=peak_act_bytes(ops, resident=float(ops.act_out_bytes.max())),
                tokens=float(batch), phase="inference", batch=batch, prec=p, tp=tp)


def _vit(s: ModelShape, batch: int, tp: int, p: Precision) -> Step:
    dm = _Dims(s, tp, 1)
    ab = p.act_bytes
    tokens = s.vision_tokens
    grid = s.image_size // s.patch_size
    b = OpBuilder(p)
    b.conv("patch_embed", batch, s.channels, s.hidden, s.patch_size, s.patch_size, grid,
           in_hw=s.image_size)
    b.elementwise("cls_pos_embed", batch * tokens * s.hidden)
    with b.layers(s.layers):
        add_layer_ops(b, s, dm, batch=batch, q_len=tokens, past=0.0, tp=tp, ep=1, causal=False,
                      flash=True, replica_tokens=batch * tokens, kv_cache=False)
    b.norm("final_norm", batch, s.hidden, s.norm)  # only the class token feeds the head
    b.gemm("head", batch, s.hidden, s.num_classes, bias=True)
    ops = b.table()
    layer_w = _layer_weight_bytes(s, dm, p)
    patch_w = s.channels * s.patch_size ** 2 * s.hidden * p.weight_bytes + s.hidden * BIAS_BYTES
    pos_w = (tokens + 1) * s.hidden * NORM_PARAM_BYTES
    head_w = (s.hidden * s.num_classes * p.weight_bytes + s.num_classes * BIAS_BYTES
              + 2 * s.hidden * NORM_PARAM_BYTES)
    return Step(ops=ops, layers=s.layers, weight_bytes_per_chip=s.layers * layer_w + patch_w + pos_w + head_w,
                kv_bytes_per_chip=0.0,
                act_bytes_per_chip=peak_act_bytes(ops, resident=batch * tokens * s.hidden * ab),
                tokens=float(batch), phase="inference", batch=batch, prec=p, tp=tp, seq_len=tokens,
                kv_len=float(tokens), layer_weight_bytes=layer_w, embed_weight_bytes=patch_w + pos_w,
                head_weight_bytes=head_w, boundary_bytes=batch * tokens * s.hidden * ab)
