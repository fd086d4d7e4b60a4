"""What `evaluate` keeps between calls (issue 15, per-call cost at small chunks: plan tables by scenario object, the
reasons' texts per plan table, per-scenario constants) changes no result: a chunk evaluated after others gives what
it gives with every such cache empty, to the bit, and the cached plan table is the one the value-keyed path builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dse.evaluate import evaluate, mapping, steps, table
from dse.evaluate.plans import scenario_batch
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.study.samplers import sample_space
from dse.study.space import load_space
from dse.workloads.modelfile import load_model_shape
from dse.workloads.scenarios import load_mix

TECH = default_technology()
FULL = Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"


def _clear() -> None:
    """Empty the caches `evaluate` keeps between calls."""
    for cache in (mapping._TEXTS, steps._PLAN_TABLE_KEYS, table._KEYS):
        cache.clear()
    for name in ("_SCENARIO_CONSTANTS", "_KERNEL_SCALARS"):
        getattr(mapping, name, {}).clear()


def _same(a: dict, b: dict) -> bool:
    assert list(a) == list(b)
    for k in a:
        x, y = a[k], b[k]
        assert x.dtype == y.dtype, k
        if x.dtype == object:
            assert list(x) == list(y), k
        else:
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k
    return True


@pytest.mark.parametrize("mix", ["balanced", "extended"])
def test_a_chunk_after_others_is_evaluated_as_alone(mix):
    cols = sample_space(load_space(FULL), 300, np.random.default_rng(15))
    chunks = [DesignArrays.from_columns({k: v[a:a + 100] for k, v in cols.items()}, TECH) for a in (0, 100, 200)]
    alone = []
    for arr in chunks:
        _clear()
        alone.append(evaluate(arr, mix, TECH))
    _clear()
    for arr, want in zip(chunks + chunks[::-1], alone + alone[::-1]):  # each after the others, twice
        assert _same(evaluate(arr, mix, TECH), want)
    assert any((r != "").sum() for r in (a["reason"] for a in alone))  # reasons were written (their texts cached)


def test_cached_plan_table_is_the_value_keyed_one():
    sc = next(e.scenario for e in load_mix("balanced").scenarios if e.scenario.kind != "cnn")
    shape, prec = load_model_shape(sc.model), sc.precision_spec()
    _clear()
    counts = np.array([8, 1, 64, 8, 4])
    t = steps.llm_plan_table(sc, shape, prec, counts)
    assert steps.llm_plan_table(sc, shape, prec, counts) is t  # the same object on the next call
    assert steps.llm_plan_table(sc, shape, prec, counts.astype(float)) is t  # float counts: the same counts
    key = steps._Key(sc)
    assert key.key == (int(sc.prompt_len), int(sc.output_len), scenario_batch(sc))
    seen = steps._TABLE_COUNTS[(shape, prec, None, None, key, None)]
    cover = min((s for s in seen if frozenset(counts.tolist()) <= s), key=len)
    built = steps._llm_plan_table(shape, prec, tuple(sorted(cover)), None, None, key, None)
    for f in ("tp", "pp", "ep", "micro_batch", "micro_batches", "w", "kv", "act"):
        assert np.array_equal(getattr(built, f), getattr(t, f)), f
