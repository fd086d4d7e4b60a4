"""The compiled LLM mapping (`step_kernel.map_llm_kernel`, taken by `mapping._map_llm_block` when the compiled
kernels are on) chooses the plans the numpy mapping chooses, with the same numbers to the bit.

The kernel walks each design's candidate plans one by one (rungs, pruning, chords by bisection, the first plan of
best score) where the numpy mapping stages (design, plan) pairs by rung level; both time each step with the same
per-instance arithmetic, so every column of `evaluate` must be equal, NaN = NaN and the sign of zero included,
and the reason strings too. Compared: both kernel paths against numpy end to end, and the compiled mapping against
the staged mapping with compiled step times (only the mapping differs), over mixes and software stacks that switch
the branches on (fixed batch, TTFT / TPOT / latency SLOs, the latency goal, a chip limit, forced tp / pp, KV room
of the whole memory, unfused epilogues, plugin layers on statically scheduled chips).
"""

from __future__ import annotations


import numpy as np
import pytest

from dse.evaluate import evaluate
from dse.evaluate.mapping import evaluate_scenario
from dse.evaluate.table import design_metrics
from dse.model import perf
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.technology import default_technology
from dse.workloads.scenarios import load_mix

from _kernels import assert_bit_equal, staged_kernel_runner, needs_numba  # noqa: E402
from test_model_speed_equiv import _columns, _variants  # noqa: E402

N = 60


@pytest.fixture
def mode(monkeypatch):
    """Run a function under DSE_KERNEL=kernel (the path chosen afresh); `staged` keeps the numpy mapping with
    compiled step times."""
    yield staged_kernel_runner(monkeypatch)
    perf.reset_kernel()


def _result_columns(r) -> dict:
    return {"feasible": r.feasible, "reason": r.reason, **{f"m.{k}": v for k, v in r.metrics.items()},
            **{f"plan.{k}": v for k, v in r.plans.items()}}


@needs_numba
@pytest.mark.parametrize("mix_name,software", [("balanced", None), ("variants", None), ("extended", None),
                                               ("balanced", "generic"), ("variants", "tuned")])
def test_compiled_mapping_equals_numpy_mapping_exactly(mode, mix_name, software):
    tech = default_technology()
    mix = _variants() if mix_name == "variants" else load_mix(mix_name)
    arr = DesignArrays.from_columns(_columns(N, seed=11 + len(mix_name)), tech)
    numpy_ = mode("numpy", evaluate, arr, mix, tech, cal=software)
    fused = mode("numba", evaluate, arr, mix, tech, cal=software)
    staged = mode("numba", evaluate, arr, mix, tech, cal=software, staged=True)
    assert 0 < numpy_["feasible"].sum() < N  # feasible designs and reasons both occur
    assert_bit_equal(numpy_, fused, f"{mix_name}/{software}: numba vs numpy")
    assert_bit_equal(staged, fused, f"{mix_name}/{software}: compiled vs staged mapping")


@needs_numba
@pytest.mark.parametrize("force", [{"force_tp": 2}, {"force_pp": 4}, {"force_tp": 1, "force_pp": 2}])
def test_compiled_mapping_equals_numpy_mapping_with_forced_parallelism(mode, force):
    tech = default_technology()
    hw, _, ok, _ = design_metrics(DesignArrays.from_columns(_columns(N, seed=3), tech))
    hw = hw.take(np.flatnonzero(ok))
    for software in (None, "generic"):
        cal = load_calibration(software)
        for entry in load_mix("balanced").scenarios:
            if entry.scenario.kind == "cnn":
                continue
            a = mode("numpy", evaluate_scenario, entry.scenario, hw, cal, **force)
            b = mode("numba", evaluate_scenario, entry.scenario, hw, cal, **force)
            assert_bit_equal(_result_columns(a), _result_columns(b), f"{entry.scenario.name} {force} {software}")


@needs_numba
def test_compiled_mapping_kv_room_of_the_whole_memory(mode):
    """A stack whose KV cache takes a share of the whole memory (`kv_memory_of: total`) and one of the memory
    the weights leave decide capacity differently; both paths agree under each."""
    tech = default_technology()
    hw, _, ok, _ = design_metrics(DesignArrays.from_columns(_columns(N, seed=5), tech))
    hw = hw.take(np.flatnonzero(ok))
    scenario = next(e.scenario for e in load_mix("balanced").scenarios if e.scenario.kind != "cnn")
    for update in ({"kv_memory_of": "total", "kv_memory_fraction": 0.5}, {"kv_memory_of": "free",
                                                                         "kv_memory_fraction": 0.3}):
        cal = load_calibration(None).model_copy(update=update)
        a = mode("numpy", evaluate_scenario, scenario, hw, cal)
        b = mode("numba", evaluate_scenario, scenario, hw, cal)
        assert (~a.feasible).any() and a.feasible.any()
        assert_bit_equal(_result_columns(a), _result_columns(b), f"{update}")


@needs_numba
def test_compiled_mapping_does_not_depend_on_call_mates(mode):
    """The compiled mapping walks designs in blocks of `step_kernel.KERNEL_DESIGNS` and times a block's rung level
    in one batch: a design's metrics must not depend on which designs share its call or its block (300 designs
    span several blocks; chunks of 1, 7 and 128 each start blocks elsewhere)."""
    from dse.model.step_kernel import KERNEL_DESIGNS
    tech = default_technology()
    n = max(300, KERNEL_DESIGNS + 44)
    cols = _columns(n, seed=21)
    mix = _variants()
    whole = mode("numba", evaluate, DesignArrays.from_columns(cols, tech), mix, tech)
    assert 0 < whole["feasible"].sum() < n
    for size in (1, 7, 128):
        if size == 1:  # (one design per call: a sample of them, the calls are slow)
            rows = range(0, n, 23)
            parts = [mode("numba", evaluate, DesignArrays.from_columns({k: v[i:i + 1] for k, v in cols.items()}, tech),
                          mix, tech) for i in rows]
            assert_bit_equal({k: whole[k][list(rows)] for k in whole},
                             {k: np.concatenate([p[k] for p in parts]) for k in whole}, "chunks of 1")
            continue
        parts = [mode("numba", evaluate, DesignArrays.from_columns({k: v[s:s + size] for k, v in cols.items()}, tech),
                      mix, tech) for s in range(0, n, size)]
        assert_bit_equal(whole, {k: np.concatenate([p[k] for p in parts]) for k in whole}, f"chunks of {size}")
