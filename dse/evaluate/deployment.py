"""Deployment knobs a study may search beside the design knobs (`serving.max_batch: {low: 16, high: 512}`),
each a registry `Knob` (name, unit, bounds) declared once here. evaluate(deployment=...) puts their
columns on the HwView (`HwView.deployment`) and `dse.evaluate.serving.plan_engines` fits the engine with
them. A light module (the knob registry only) so that search-space checks need not load the model.
"""

from __future__ import annotations

from dse.model.knobs import Knob

DEPLOYMENT_KNOBS: tuple[Knob, ...] = (
    Knob("serving.max_batch", int, None, "Max batch", "Running sequences one engine admits at most "
         "(vLLM max_num_seqs; prefilling and decoding).", "the chosen plan's batch (dse.evaluate.mapping)",
         unit="sequences", low=1, high=65536, bounds_source="sanity bound: 16× vLLM's largest documented setting",
         none_means="the chosen plan's batch"),
    Knob("serving.chunk_tokens", int, None, "Chunk size", "Tokens one engine iteration processes at most, "
         "decode included (vLLM max_num_batched_tokens): longer prompts are prefilled in chunks.",
         "dse.evaluate.steps.PREFILL_CHUNK_TOKENS", unit="tokens", low=16, high=1_048_576,
         bounds_source="sanity bound: a block of KV to a 1 M-token prompt in one step",
         none_means="the static mapping's prefill chunk (dse.evaluate.steps.PREFILL_CHUNK_TOKENS)"),
)
DEPLOYMENT_BY_NAME: dict[str, Knob] = {k.name: k for k in DEPLOYMENT_KNOBS}

# Prefix of a study's prefill-pool design knobs: the registry's design knobs searched a second time for
# the prefill pool of a disaggregated fleet (`prefill.chip.cores`; dse.study.knobs, the dashboard's replay)
POOL_PREFIX = "prefill."
