"""`Step`: the operators and memory footprint of one model step on one chip, and its pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dse.errors import DseUserError
from dse.workloads.ops import OpBuilder, OpTable
from dse.workloads.precision import Precision


@dataclass(frozen=True)
class Step:
    """One step (an LLM prefill or decode iteration, or a CNN batch) on ONE chip of a model replica.

    `ops` covers the whole step: per-layer operators appear once with `count` = layers on this chip
    (`layer=True`); embedding / head operators have count 1 (rows before the first layer row run on
    the first pipeline stage, rows after the last on the last). Byte fields are per chip:
    `weight_bytes_per_chip` = this chip's share of ALL weights (capacity, not bytes read per step),
    `kv_bytes_per_chip` = KV cache reserved for the full context, `act_bytes_per_chip` = peak live
    activation buffer. `tokens` = tokens produced (decode) or processed (prefill), or images (CNN),
    by the whole replica in this step.
    """

    ops: OpTable
    layers: int
    weight_bytes_per_chip: float
    kv_bytes_per_chip: float
    act_bytes_per_chip: float
    tokens: float
    phase: str
    batch: int
    prec: Precision
    tp: int = 1
    ep: int = 1
    pp: int = 1
    stage_index: int = 0
    seq_len: int = 0
    kv_len: float = 0.0
    # pieces needed to cut the step into pipeline stages
    layer_weight_bytes: float = 0.0   # one layer, this chip
    embed_weight_bytes: float = 0.0   # first stage only
    head_weight_bytes: float = 0.0    # last stage only
    layer_kv_bytes: float = 0.0       # KV cache of one layer, this chip
    boundary_bytes: float = 0.0       # activations handed to the next pipeline stage

    @property
    def chips(self) -> int:
        """Chips in one replica: tp · ep · pp."""
        return self.tp * self.ep * self.pp

    def total_flops(self) -> float:
        return self.ops.total_flops()

    def total_weight_bytes(self) -> float:
        """Weight bytes READ per step (MoE: only touched experts)."""
        return self.ops.total_weight_bytes()

    def total_kv_bytes(self) -> float:
        return self.ops.total_kv_bytes()

    def total_act_bytes(self) -> float:
        return self.ops.total_act_bytes()

    def total_comm_bytes(self) -> float:
        return self.ops.total_comm_bytes()

    # --- pipeline parallelism ----------------------------------------------------------------
    def stage_layers(self, pp: int) -> list[int]:
        """Layers per stage, balanced (the first `layers % pp` stages get one more)."""
        base, extra = divmod(self.layers, pp)
        return [base + (1 if i < extra else 0) for i in range(pp)]

    def stages(self, pp: int) -> list["Step"]:
        """This step cut into `pp` pipeline stages, each ending with a send of its output activations."""
        if pp == 1:
            return [self]
        if self.pp != 1:
            raise ValueError("stage() of an already staged step")
        if self.layers == 0:
            raise DseUserError("pipeline parallelism is not modelled for CNNs (their weights fit one chip): use dp")
        if self.layers < pp:
            raise DseUserError(f"cannot split {self.layers} layer(s) into {pp} pipeline stages")
        layer_rows = np.flatnonzero(self.ops.layer)
        first, last = layer_rows.min(), layer_rows.max()
        idx = np.arange(len(self.ops))
        out = []
        for i, n in enumerate(self.stage_layers(pp)):
            keep = self.ops.layer.copy()
            if i == 0:
                keep |= idx < first
            if i == pp - 1:
                keep |= idx > last
            ops = self.ops.select(keep)
            ops = ops.replace(count=np.where(ops.layer, n * ops.layer_share, ops.count))
            if i < pp - 1:
                b = OpBuilder(self.prec)
                b.sendrecv("pipeline.send", self.boundary_bytes)
                ops = OpTable.concat([ops, b.table()])
            w = n * self.layer_weight_bytes + (self.embed_weight_bytes if i == 0 else 0.0) \
                + (self.head_weight_bytes if i == pp - 1 else 0.0)
            out.append(replace(self, ops=ops, layers=n, weight_bytes_per_chip=w,
                               kv_bytes_per_chip=n * self.layer_kv_bytes, pp=pp, stage_index=i))
        return out

    def stage(self, pp: int, index: int | None = None) -> "Step":
        """One of `pp` stages; `index=None` picks the one holding the most weight bytes (the slowest
        stage when weights stream from memory; ties go to the later stage, which holds the LM head)."""
        st = self.stages(pp)
        if index is not None:
            return st[index]
        return max(reversed(st), key=lambda s: s.weight_bytes_per_chip + 1e-9 * s.total_flops())


def peak_act_bytes(ops: OpTable, resident: float = 0.0) -> float:
    """Largest input + output of any operator plus a resident buffer (e.g. the residual stream)."""
    live = ops.act_in_bytes + ops.act_out_bytes
    return float(live.max() if len(live) else 0.0) + resident
