"""`mapping._llm_result` takes the compiled choice's numbers in one pass (`design_kernel.llm_result_kernel`) and the
numpy choice's in numpy: on the same choice both give the same metrics, plans and reasons, to the bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dse.evaluate import evaluate, mapping
from dse.model import perf
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.study.samplers import sample_space
from dse.study.space import load_space
from dse.workloads.scenarios import load_mix

from _kernels import assert_bit_equal, kernel_runner, needs_numba  # noqa: E402

pytestmark = needs_numba

TECH = default_technology()
FULL = Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"


@pytest.fixture
def run(monkeypatch):
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


@pytest.mark.parametrize("mix,n", [("balanced", 300), ("extended", 128)])
def test_llm_result_kernel_gives_numpys_bits(run, monkeypatch, mix, n):
    arr = DesignArrays.from_columns(sample_space(load_space(FULL), n, np.random.default_rng(11)), TECH)
    calls = []
    real = mapping._plan_ints

    def counted(t):
        calls.append(t)
        return real(t)
    monkeypatch.setattr(mapping, "_plan_ints", counted)
    fast = run("numba", evaluate, arr, load_mix(mix), TECH)
    assert calls and all(real(t) is not None for t in calls)  # the kernel's pass was taken
    monkeypatch.setattr(mapping, "_plan_ints", lambda t: None)  # the same compiled choice, its numbers in numpy
    slow = run("numba", evaluate, arr, load_mix(mix), TECH)
    objects = [k for k, v in fast.items() if np.asarray(v).dtype == object]
    assert_bit_equal({k: v for k, v in fast.items() if k not in objects},
                     {k: v for k, v in slow.items() if k not in objects}, mix)
    assert all(list(fast[k]) == list(slow[k]) for k in objects)
    assert fast["feasible"].any() and not fast["feasible"].all()


def test_llm_result_metrics_are_columns_of_their_dtype(run):
    """The kernel's metrics and plans are (n,) columns of the registry's dtypes, zero where a design has no plan."""
    from dse.evaluate.mapping import evaluate_scenario, MappingResult
    from dse.evaluate.table import design_metrics
    from dse.model.calibration import load_calibration
    arr = DesignArrays.from_columns(sample_space(load_space(FULL), 64, np.random.default_rng(3)), TECH)
    hw, _, ok, _ = design_metrics(arr)
    sc = next(e.scenario for e in load_mix("balanced").scenarios if e.scenario.kind != "cnn")
    res: MappingResult = run("numba", evaluate_scenario, sc, hw.take(np.flatnonzero(ok)), load_calibration(None))
    m = int(ok.sum())
    for k, v in res.metrics.items():
        assert v.shape == (m,), k
    for k, v in res.plans.items():
        assert v.shape == (m,) and v.dtype == np.int64, k
        assert (v[~res.feasible] == 0).all(), k
    assert (res.metrics["latency_ms"][~res.feasible] == 0).all()
    assert np.array_equal(res.metrics["throughput"], res.metrics["tokens_per_s"])
