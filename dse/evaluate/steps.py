"""Scenario → steps: the design-independent operator tables a plan runs, cached per shape.

The tables depend only on the scenario and the plan's (tp, ep, micro-batch), never on the design,
so they are built once and evaluated on every design at once.
"""

from __future__ import annotations

from dataclasses import dataclass
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


# Tokens per prefill chunk: TensorRT-LLM's default `max_num_tokens` (8192) bounds the tokens one
# engine step processes, so a large batch's prompts are prefilled a few requests at a time.
PREFILL_CHUNK_TOKENS = 8192


@dataclass(frozen=True)
class LlmSteps:
    """The steps one LLM plan runs on a chip of its replica: the TTFT prefill (one prompt), a decode
    step at the micro-batch, and a prefill chunk of `chunk_prompts` prompts (the TTFT step when 1)."""

    prefill: Step
    decode: Step
    chunk: Step
    chunk_prompts: int

    @property
    def act_bytes(self) -> float:
        """Peak activation buffer over the three steps (reserved next to resident weights)."""
        return max(self.decode.act_bytes_per_chip, self.prefill.act_bytes_per_chip, self.chunk.act_bytes_per_chip)


def llm_steps(scenario, shape, prec, tp: int, ep: int, micro_batch: int) -> LlmSteps:
    """The steps of a plan with this (tp, ep, micro-batch); shared by the mapping and the breakdown."""
    prompt, out_len = int(scenario.prompt_len), int(scenario.output_len)
    pre = Builders.llm(shape, "prefill", 1, prompt, prompt, tp, prec, ep)
    dec = Builders.llm(shape, "decode", micro_batch, 1, Builders.mean_kv(prompt, out_len), tp, prec, ep)
    # the batch's prompts are prefilled in chunks of at most PREFILL_CHUNK_TOKENS tokens
    pb = max(1, min(micro_batch, PREFILL_CHUNK_TOKENS // max(prompt, 1)))
    chunk = pre if pb == 1 else Builders.llm(shape, "prefill", pb, prompt, prompt, tp, prec, ep)
    return LlmSteps(pre, dec, chunk, pb)


def stage_weight_bytes(step: Step, pp: int) -> float:
    """Weights on one chip of the heaviest of `pp` pipeline stages (it also holds the embedding or head)."""
    if pp == 1:
        return float(step.weight_bytes_per_chip)
    layers_max = -(-step.layers // pp)
    return layers_max * step.layer_weight_bytes + max(step.embed_weight_bytes, step.head_weight_bytes)


def llm_footprint(scenario, shape, prec, steps: LlmSteps, plan) -> tuple[float, float, float]:
    """(weights, KV cache, activations) in bytes on one chip of the heaviest pipeline stage of `plan`:
    the KV of the whole batch for the full context, over that stage's layers, split by tp and ep."""
    dec = steps.decode
    w = stage_weight_bytes(dec, plan.pp)
    context = int(scenario.prompt_len) + int(scenario.output_len)
    kv = Builders.kv_bytes(shape, plan.batch, context, plan.tp, prec) * (-(-dec.layers // plan.pp)) \
        / dec.layers / plan.ep
    return w, kv, steps.act_bytes


def cnn_footprint(step: Step) -> tuple[float, float, float]:
    """(weights, KV cache = 0, activations) in bytes per chip of a CNN batch."""
    return step.weight_bytes_per_chip, 0.0, step.act_bytes_per_chip
