"""Scenario → steps: the design-independent operator tables a plan runs, cached per shape.

The tables depend only on the scenario and the plan's (tp, ep, micro-batch), never on the design,
so they are built once and evaluated on every design at once.
"""

from __future__ import annotations

from functools import lru_cache

from dse.workloads.cnn import build_cnn_step
from dse.workloads.step import Step
from dse.workloads.transformer import build_llm_step, mean_decode_kv_len


class Builders:
    """Design-independent operator tables, cached per (scenario shape, tp, batch): the mapping's inputs."""

    @staticmethod
    @lru_cache(maxsize=4096)
    def llm(shape, phase: str, batch: int, seq_len: int, kv_len: int, tp: int, prec, ep: int = 1) -> Step:
        return build_llm_step(shape, phase, batch=batch, seq_len=seq_len, kv_len=kv_len, tp=tp, ep=ep, prec=prec)

    @staticmethod
    @lru_cache(maxsize=1024)
    def cnn(shape, batch: int, prec) -> Step:
        return build_cnn_step(shape, batch=batch, tp=1, prec=prec)

    @staticmethod
    def tp_ok(shape, tp: int) -> bool:
        return tp <= shape.heads

    @staticmethod
    def mean_kv(prompt: int, out_len: int) -> int:
        return int(round(mean_decode_kv_len(prompt, out_len)))

    @staticmethod
    def kv_bytes(shape, batch: int, context: int, tp: int, prec) -> float:
        """KV cache of `batch` sequences of `context` tokens over all layers, on one chip of the tp group
        (the shape owns the formula: MLA latents, sliding windows)."""
        return shape.kv_cache_bytes(batch, context, tp, prec.kv_bytes)

    @staticmethod
    def hidden(shape) -> int:
        return int(shape.hidden)

    @staticmethod
    def act_bytes(prec) -> float:
        return float(prec.act_bytes)
