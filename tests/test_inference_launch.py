"""A CNN / vision forward pass pays its stack's per-inference launch (`inference_launch_us`), never an LLM
engine step's `step_overhead_us` (scheduling of in-flight sequences, KV bookkeeping, sampling)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dse.evaluate.mapping import map_cnn, residency
from dse.evaluate.steps import Builders
from dse.model.calibration import load_calibration
from dse.model.perf import op_times
from dse.validate.calibrate import BOUNDS, NOT_FITTED
from dse.validate.predict import hw_view
from dse.workloads.modelfile import load_model_shape
from dse.workloads.precision import parse_precision

SHAPE = load_model_shape("ResNet-50")
PREC = parse_precision("int8")


def _scenario(batch: int) -> SimpleNamespace:
    return SimpleNamespace(name="t", max_chips=1, latency_ms=None, slo=None, goal="latency", batch=batch)


def _latency_s(hw, cal, batch: int = 1) -> float:
    res = map_cnn(_scenario(batch), SHAPE, PREC, hw, cal, Builders)
    assert res.feasible[0] and int(res.metrics["batch"][0]) == batch
    return float(res.metrics["latency_ms"][0]) * 1e-3


def test_for_phase_swaps_only_the_per_step_cost():
    cal = load_calibration("tuned").model_copy(update={"step_overhead_us": 500.0, "inference_launch_us": 10.0})
    inf = cal.for_phase("inference")
    assert inf.step_overhead_us == 10.0
    assert inf.model_dump(exclude={"step_overhead_us"}) == cal.model_dump(exclude={"step_overhead_us"})
    assert cal.for_phase("decode") is cal and cal.for_phase("prefill") is cal


@pytest.mark.parametrize("chip", ["H100-SXM", "speedAI240-Slim"])
def test_cnn_batch1_latency_is_operators_plus_one_inference_launch(chip):
    """Hand sum: Σ count × operator time with no per-step share, plus the launch; the LLM step overhead
    (here an absurd 5 ms) never reaches the CNN pass."""
    hw = hw_view(chip, 1, (("chip.layer_pipeline", False),))  # layers one after another (tests/test_layer_pipeline.py)
    cal = load_calibration("tuned").model_copy(update={"step_overhead_us": 5000.0, "inference_launch_us": 37.0})
    step = Builders.cnn(SHAPE, 1, PREC)
    wres, kres, _, resident = residency(np.array([step.weight_bytes_per_chip]), np.array([0.0]),
                                        np.array([step.act_bytes_per_chip]), hw.sram_bytes, hw.mem_bytes,
                                        hw.sram_cache)
    bare = cal.model_copy(update={"step_overhead_us": 0.0})
    t = op_times(step.ops, hw, bare, wres, np.ones(1), resident)
    ops_s = float((t.total[0] * step.ops.count).sum())
    assert _latency_s(hw, cal) == pytest.approx(ops_s + 37e-6, rel=1e-9)


def test_inference_launch_adds_exactly_once_per_batch():
    hw = hw_view("H100-SXM", 1)
    cal = load_calibration("tuned")
    for b in (1, 8):
        lo = _latency_s(hw, cal.model_copy(update={"inference_launch_us": 0.0}), b)
        hi = _latency_s(hw, cal.model_copy(update={"inference_launch_us": 100.0}), b)
        assert hi - lo == pytest.approx(100e-6, rel=1e-6)
        # the LLM engine step's cost does not move a CNN batch at all
        assert _latency_s(hw, cal.model_copy(update={"step_overhead_us": 900.0}), b) == pytest.approx(
            _latency_s(hw, cal.model_copy(update={"step_overhead_us": 0.0}), b), rel=1e-12)


def test_inference_launch_is_sourced_bounded_and_not_fitted():
    lo, hi = BOUNDS["inference_launch_us"]
    assert lo == 0.0 and hi == 120.0  # at most the whole measured speedAI240 SingleStream query
    for cls in ("tuned", "generic", "kernel"):
        assert "inference_launch_us" in NOT_FITTED[cls]
        assert lo <= load_calibration(cls).inference_launch_us <= hi
    assert load_calibration("kernel").inference_launch_us == 0.0
    # the graph stack launches a CNN pass as tuned does (inherits it)
    assert load_calibration("graph").inference_launch_us == load_calibration("tuned").inference_launch_us
