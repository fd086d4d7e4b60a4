"""The compiled CNN mapping (`cnn_kernel.map_cnn_kernel`, taken by `mapping._map_cnn_block` when the compiled kernels
are on) chooses the batches the numpy mapping chooses, with the same numbers to the bit.

The kernel walks each design's batches in growing order and bisects its chord alone where the numpy mapping stages
(designs × batches) arrays and bisects all chords at once; both time each (design, batch) with the same per-instance
arithmetic, so every column of the mapping must be equal (NaN = NaN, the sign of zero and the reason strings
included). Compared on 2,400 random designs of search_spaces/full.yaml (layer-pipelined chips among them) for every
CNN scenario of the built-in mixes and variants that switch the other branches on (the latency goal, no SLO, a fixed
batch, a maximum batch between two knots, a chip limit), against the numpy mapping with compiled step times (only the
mapping differs) and against numpy end to end; a design's answer must not depend on the designs sharing its call.
"""

from __future__ import annotations


import numpy as np
import pytest

from dse.evaluate import evaluate
from dse.evaluate.mapping import evaluate_scenario
from dse.evaluate.steps import cnn_plan_table
from dse.evaluate.table import design_metrics
from dse.model import perf
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.technology import default_technology
from dse.workloads.modelfile import load_model_shape
from dse.workloads.scenarios import load_mix, mix_names, mix_of

from _designs import random_designs  # noqa: E402
from _kernels import assert_bit_equal, staged_kernel_runner, needs_numba  # noqa: E402

N = 2400


@pytest.fixture
def mode(monkeypatch):
    """Run a function under DSE_KERNEL=kernel (the path chosen afresh); `staged` keeps the numpy CNN mapping with
    compiled step times."""
    yield staged_kernel_runner(monkeypatch)
    perf.reset_kernel()


@pytest.fixture(scope="module")
def hw():
    """The designs that pass the design metrics, of N random full.yaml designs."""
    view, _, ok, _ = design_metrics(DesignArrays.from_columns(random_designs(N, seed=7), default_technology()))
    return view.take(np.flatnonzero(ok))


def _cnn_scenarios() -> list:
    """Every CNN scenario of the built-in mixes (once each), then variants of the first one."""
    seen: dict = {}
    for name in mix_names():
        for e in load_mix(name).scenarios:
            if e.scenario.kind == "cnn":
                seen.setdefault(e.scenario.name, e.scenario)
    base = next(iter(seen.values()))
    variants = [
        {"name": "latency_goal", "goal": "latency", "latency_ms": 5.0},
        {"name": "no_slo", "latency_ms": None},
        {"name": "fixed_batch", "batch": 8},
        {"name": "max_between_knots", "batch": base.batch.model_copy(update={"max": 48}), "latency_ms": 40.0},
        {"name": "chip_limit", "max_chips": 4, "latency_ms": 2.0},
    ]
    return [*seen.values(), *(base.model_copy(update=u) for u in variants)]


def _columns(r) -> dict:
    return {"feasible": r.feasible, "reason": r.reason, **{f"m.{k}": v for k, v in r.metrics.items()},
            **{f"plan.{k}": v for k, v in r.plans.items()}}


@needs_numba
@pytest.mark.parametrize("scenario", _cnn_scenarios(), ids=lambda s: s.name)
def test_compiled_cnn_mapping_equals_numpy_mapping_exactly(mode, hw, scenario):
    cal = load_calibration(None)
    fused = mode("numba", evaluate_scenario, scenario, hw, cal)
    staged = mode("numba", evaluate_scenario, scenario, hw, cal, staged=True)
    assert_bit_equal(_columns(staged), _columns(fused), f"{scenario.name}: compiled vs staged mapping")
    assert fused.feasible.any() and not fused.feasible.all()  # plans and reasons both occur
    assert (fused.metrics["weights"][fused.feasible] != "").all()


@needs_numba
def test_compiled_cnn_mapping_takes_every_branch(mode, hw):
    """The designs and scenarios above reach the branches the kernel has: layer-pipelined chips with a plan,
    batches on a chord (between two knots), both reasons (capacity and SLO) and designs with no batch at all."""
    cal = load_calibration(None)
    piped = chords = 0
    reasons: set[str] = set()
    for sc in _cnn_scenarios():
        r = mode("numba", evaluate_scenario, sc, hw, cal)
        knots = cnn_plan_table(sc, load_model_shape(sc.model), sc.precision_spec()).batch
        f = r.feasible
        piped += int((np.asarray(hw.layer_pipeline, bool) & f).sum())
        chords += int((f & ~np.isin(r.plans["micro_batch"], knots)).sum())
        reasons |= {s.split(" ")[0] for s in r.reason[~f]}
    assert piped > 0 and chords > 0
    assert {"weights", "latency"} <= reasons


@needs_numba
@pytest.mark.parametrize("software", [None, "generic"])
def test_compiled_cnn_mapping_equals_numpy_end_to_end(mode, software):
    """numba (kernel mapping, compiled step times) against numpy (numpy mapping and step times): every column of
    `evaluate` on the CNN scenarios of the mixes."""
    tech = default_technology()
    mix = mix_of(_cnn_scenarios()[:3], "cnn")
    arr = DesignArrays.from_columns(random_designs(400, seed=13), tech)
    numpy_ = mode("numpy", evaluate, arr, mix, tech, cal=software)
    fused = mode("numba", evaluate, arr, mix, tech, cal=software)
    assert 0 < numpy_["feasible"].sum() < arr.n
    assert_bit_equal(numpy_, fused, f"{software}: numba vs numpy")


@needs_numba
def test_compiled_cnn_mapping_does_not_depend_on_call_mates(mode, hw):
    """Chunks of 1, 7 and 128 designs give each design the answer it has in the whole block."""
    cal = load_calibration(None)
    sc = _cnn_scenarios()[0]
    sub = hw.take(np.arange(min(hw.n, 300)))
    whole = _columns(mode("numba", evaluate_scenario, sc, sub, cal))
    for size in (1, 7, 128):
        starts = range(0, sub.n, size if size > 1 else 37)
        parts = [_columns(mode("numba", evaluate_scenario, sc, sub.take(np.arange(s, min(s + size, sub.n))), cal))
                 for s in starts]
        rows = np.concatenate([np.arange(s, min(s + size, sub.n)) for s in starts])
        assert_bit_equal({k: v[rows] for k, v in whole.items()},
                         {k: np.concatenate([p[k] for p in parts]) for k in whole}, f"chunks of {size}")
