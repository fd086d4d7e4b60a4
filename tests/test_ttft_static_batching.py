"""TTFT under static batching is the prefill the throughput pays for: a request's first token comes once
its whole batch is prefilled, so TTFT grows with the batch and equals the replica's batch-prefill time
that the throughput formula spends (issue 11 item 10 / issue 13: the datacenter TTFT contradicted it)."""
from __future__ import annotations

import pytest

from dse.catalog import load_catalog_design
from dse.evaluate import evaluate
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.workloads.scenarios import adhoc_scenario, mix_of


def _row(batch: int) -> dict:
    tech = default_technology()
    sc = adhoc_scenario(model="Llama-3-8B", batch=batch, prompt_len=2048, output_len=256, max_chips=1)
    m = evaluate(DesignArrays.from_designs([load_catalog_design("H100-SXM")], tech), mix_of([sc], "t"), tech)
    return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in m.items() if k.startswith("adhoc.")}


def test_ttft_is_the_batch_prefill_the_throughput_pays_for():
    r = _row(32)
    assert r["adhoc.batch"] == 32 and r["adhoc.pp"] == 1
    out, tpot = 256, r["adhoc.tpot_ms"] * 1e-3
    replica = r["adhoc.tokens_per_s"] / r["adhoc.dp"]
    prefill_s = r["adhoc.batch"] * out / replica - out * tpot  # throughput = B·out / (prefill + out·tpot)
    assert r["adhoc.ttft_ms"] * 1e-3 == pytest.approx(prefill_s, rel=1e-6)


def test_ttft_grows_with_the_batch_and_is_one_prompt_at_batch_1():
    one, many = _row(1), _row(32)
    assert many["adhoc.ttft_ms"] > 10 * one["adhoc.ttft_ms"]
    # at batch 1 the batch prefill is one prompt: 2048 tokens of an 8B model at bf16 on H100 is ~ 2·8e9·2048 FLOP
    assert 0.05 < one["adhoc.ttft_ms"] / (2 * 8.0e9 * 2048 / 989e12 * 1e3) < 2.0
