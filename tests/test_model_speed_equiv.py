"""The vectorized model gives every design the same metrics however the designs are batched.

The mapping evaluates every plan on every design of a call at once (shared step timings, blocks of
`BLOCK_DESIGNS`), so a design's result must not depend on which other designs share its call: one
call over N random designs equals chunks of 1, 7 and 128 (and blocks of 5), and the one-design
wrapper equals the batched call on catalog designs, to 1e-12 relative for every metric and mix.
"""

from __future__ import annotations

import numpy as np
import pytest

import dse.evaluate.mapping as mapping
from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import evaluate
from dse.evaluate.table import evaluate_design
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.workloads.scenarios import Mix, MixEntry, load_mix

N = 40


def _columns(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random designs over the main knobs (wide ranges, so capacity, SLO and residency cases all occur)."""
    rng = np.random.default_rng(seed)
    memory = rng.choice(["none", "lpddr5x", "gddr7", "hbm3", "hbm3e"], n)
    return {
        "chip.process_node": rng.choice(["n7", "n5", "n3"], n),
        "chip.core_style": rng.choice(["systolic", "simt"], n),
        "chip.cores": rng.integers(1, 600, n),
        "chip.array_rows": rng.choice([16, 64, 128, 256], n),
        "chip.array_cols": rng.choice([16, 64, 128, 256], n),
        "chip.clock_ghz": rng.uniform(0.5, 2.2, n),
        "chip.precisions": [["bf16", "fp8", "int8", "int4"]] * n,
        "chip.sram_mb": np.exp(rng.uniform(0, np.log(4096), n)),
        "chip.sram_kind": rng.choice(["scratchpad", "cache"], n),
        "chip.memory": memory,
        "chip.memory_stacks": np.where(memory == "none", 0, rng.integers(1, 9, n)),
        "chip.link": rng.choice(["nvlink4", "ici_v4", "serdes_112g"], n),
        "chip.links": rng.integers(1, 33, n),
        "chip.packaging": rng.choice(["organic", "cowos_s", "cowos_l"], n),
        "system.num_chips": rng.choice([1, 2, 4, 8, 16, 64, 256], n),
        "system.topology": rng.choice(["ring", "torus2d", "switch"], n),
    }


def _variants() -> Mix:
    """The balanced mix's scenarios with the other branches switched on: a fixed batch, TTFT and latency
    SLOs, the latency goal and a chip limit."""
    local, dc, cnn = (e.scenario for e in load_mix("balanced").scenarios)
    return Mix(name="variants", scenarios=(
        MixEntry(scenario=local.model_copy(update={"name": "fixed8", "batch": 8, "ttft_ms": 400.0})),
        MixEntry(scenario=dc.model_copy(update={"name": "dc_latency", "goal": "latency", "ttft_ms": 2000.0,
                                                "max_chips": 32})),
        MixEntry(scenario=cnn.model_copy(update={"name": "cnn_slo", "latency_ms": 5.0, "goal": "latency"})),
    ))


def _same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape, (what, k)
        if x.dtype.kind == "f":
            np.testing.assert_allclose(y, x, rtol=1e-12, atol=0.0, err_msg=f"{what}: {k}")
        else:
            assert (x == y).all(), f"{what}: {k} differs at {np.flatnonzero(x != y)[:5]}"


def _chunked(cols: dict, mix, tech, size: int) -> dict:
    parts = [evaluate(DesignArrays.from_columns({k: v[s:s + size] for k, v in cols.items()}, tech), mix, tech)
             for s in range(0, N, size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize("mix_name", ["balanced", "extended", "variants"])
def test_chunking_does_not_change_any_metric(mix_name, monkeypatch):
    tech = default_technology()
    mix = _variants() if mix_name == "variants" else load_mix(mix_name)
    cols = _columns(N, seed=len(mix_name))
    whole = evaluate(DesignArrays.from_columns(cols, tech), mix, tech)
    assert 0 < whole["feasible"].sum() < N  # both kinds of design occur, so the property has teeth
    for size in (1, 7, 128):
        _same(whole, _chunked(cols, mix, tech, size), f"{mix_name}, chunks of {size}")
    monkeypatch.setattr(mapping, "BLOCK_DESIGNS", 5)
    _same(whole, evaluate(DesignArrays.from_columns(cols, tech), mix, tech), f"{mix_name}, blocks of 5")


def test_one_design_wrapper_equals_batched_call():
    tech = default_technology()
    designs = [load_catalog_design(name) for name in list_catalog()]
    batched = evaluate(DesignArrays.from_designs(designs, tech), "balanced", tech)
    assert batched["feasible"].any()
    for i, d in enumerate(designs):
        one = evaluate_design(d, "balanced", tech=tech)
        _same({k: np.asarray(v)[i:i + 1] for k, v in batched.items()},
              {k: np.asarray([v]) for k, v in one.items()}, d.name)
