"""chip.layer_pipeline: a CNN's layers each on their own region of the chip (at-memory / spatial dataflow), an
image streaming through them; b images take T·(b + depth) with T one image's work (hand sums below)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dse.evaluate.mapping import map_cnn, residency
from dse.evaluate.steps import Builders
from dse.model.calibration import load_calibration
from dse.model.perf import op_times
from dse.validate.predict import hw_view
from dse.workloads.cnn import pipeline_depth
from dse.workloads.modelfile import load_model_shape
from dse.workloads.precision import parse_precision

SHAPE = load_model_shape("ResNet-50")
PREC = parse_precision("fp8")
CAL = load_calibration("tuned")


def _run(hw, batch: int):
    sc = SimpleNamespace(name="t", max_chips=1, latency_ms=None, slo=None, goal="latency", batch=batch)
    res = map_cnn(sc, SHAPE, PREC, hw, CAL, Builders)
    assert res.feasible[0] and int(res.metrics["batch"][0]) == batch
    return res


def _one_image_s(hw) -> float:
    """Σ count × operator time of one image at batch 1, no per-step cost (the pipeline's period)."""
    step = Builders.cnn(SHAPE, 1, PREC)
    wres, _, _, resident = residency(np.array([step.weight_bytes_per_chip]), np.array([0.0]),
                                     np.array([step.act_bytes_per_chip]), hw.sram_bytes, hw.mem_bytes, hw.sram_cache)
    t = op_times(step.ops, hw, CAL.model_copy(update={"step_overhead_us": 0.0}), wres, np.ones(1), resident)
    return float((t.total[0] * step.ops.count).sum())


def test_resnet50_depth_is_the_hand_sum_of_row_fractions():
    # after conv1 (its input, the image, is all there), main path only (projection shortcuts run beside it):
    # maxpool 3x3 on 112 rows: 2/112; each bottleneck 1x1 / 3x3 / 1x1 needs 1 / 2 / 1 rows of its input:
    # layer1 3 x 4/56; layer2 block 0: 1/56 + 2/56 (stride 2) + 1/28, then 3 x 4/28; layer3 3/28 + 1/14, 5 x 4/14;
    # layer4 3/14 + 1/7, 2 x 4/7; global average pool 1, FC 1.
    hand = (2 / 112 + 3 * 4 / 56 + 3 / 56 + 1 / 28 + 3 * 4 / 28 + 3 / 28 + 1 / 14 + 5 * 4 / 14
            + 3 / 14 + 1 / 7 + 2 * 4 / 7 + 1 + 1)
    assert hand == pytest.approx(656 / 112)
    assert pipeline_depth("ResNet-50") == pytest.approx(hand, rel=1e-12)
    # ViT-B/16: 12 encoder layers, each waiting for all tokens of the previous one, and the head
    assert pipeline_depth("ViT-B/16") == pytest.approx(13.0)


@pytest.mark.parametrize("batch", [1, 4])
def test_pipelined_latency_is_period_times_batch_plus_depth_plus_launch(batch):
    hw = hw_view("speedAI240-Slim", 1)
    assert bool(hw.layer_pipeline[0])  # the catalog's at-memory chip
    period = _one_image_s(hw)
    res = _run(hw, batch)
    want = period * (batch + 656 / 112) + CAL.inference_launch_us * 1e-6
    assert float(res.metrics["latency_ms"][0]) * 1e-3 == pytest.approx(want, rel=1e-9)
    assert float(res.metrics["images_per_s"][0]) == pytest.approx(batch / want, rel=1e-9)
    # a chip with no off-chip memory holds its weights on chip: labelled by the pipeline's residency
    assert res.metrics["weights"][0] == "sram-resident"


def test_time_shared_chip_runs_the_layers_one_after_another():
    """The same chip without the knob: one batch-1 pass is its operators on the whole chip plus the launch, and
    the pipeline costs (1 + depth) periods instead of one."""
    pipe = hw_view("speedAI240-Slim", 1)
    shared = hw_view("speedAI240-Slim", 1, (("chip.layer_pipeline", False),))
    period = _one_image_s(shared)
    launch = CAL.inference_launch_us * 1e-6
    assert float(_run(shared, 1).metrics["latency_ms"][0]) * 1e-3 == pytest.approx(period + launch, rel=1e-9)
    assert float(_run(pipe, 1).metrics["latency_ms"][0]) * 1e-3 == pytest.approx(
        period * (1 + 656 / 112) + launch, rel=1e-9)


def test_only_statically_scheduled_chips_pipeline_layers():
    assert not hw_view("H100-SXM", 1, (("chip.layer_pipeline", True),)).layer_pipeline[0]
    assert not hw_view("Inferentia2", 1).layer_pipeline[0]


def test_more_sram_or_clock_never_slows_the_pipeline_and_small_steps_move_it_little():
    base = float(_run(hw_view("speedAI240-Slim", 1), 1).metrics["latency_ms"][0])
    for key, val in (("chip.sram_mb", 238 * 1.02), ("chip.clock_ghz", 1.34 * 1.02), ("chip.cores", 744)):
        up = float(_run(hw_view("speedAI240-Slim", 1, ((key, val),)), 1).metrics["latency_ms"][0])
        assert up <= base * (1 + 1e-12), key
        assert up >= base * 0.9, key  # a 2 % step is no cliff


def test_roofline_of_a_pipelined_chip_shows_one_image_and_the_mappings_step():
    """`dse roofline` (operator_breakdown) on a layer-pipelined chip: the operators of one image (the period's
    work), and the step the mapping timed, period × (batch + depth), with the launch on top = its latency."""
    from dse.catalog import load_catalog_design
    from dse.evaluate.mapping import evaluate_scenario
    from dse.evaluate.breakdown import operator_breakdown
    from dse.workloads.scenarios import load_scenario

    sc = load_scenario("vision_cnn")
    chip = load_catalog_design("speedAI240-Slim")
    info = operator_breakdown(chip, sc)
    pipe = info["layer_pipeline"]
    one = Builders.cnn(load_model_shape(sc.model), 1, sc.precision_spec())
    assert sum(r["flops"] for r in info["operators"]) == pytest.approx(float((one.ops.flops * one.ops.count).sum()))
    assert pipe["depth"] == pytest.approx(656 / 112) and pipe["batch"] == info["batch"]
    step_ms = info["phase_time_ms"]["inference"]
    assert step_ms == pytest.approx(pipe["period_ms"] * (pipe["batch"] + pipe["depth"]), rel=1e-12)
    cal = load_calibration(None)  # the default stack, as the breakdown's
    res = evaluate_scenario(sc, hw_view("speedAI240-Slim", 1), cal)
    launch_ms = cal.for_phase("inference").step_overhead_us * 1e-3
    assert int(res.metrics["batch"][0]) == pipe["batch"]
    assert step_ms + launch_ms == pytest.approx(float(res.metrics["latency_ms"][0]), rel=1e-9)
    assert operator_breakdown(load_catalog_design("H100-SXM"), sc)["layer_pipeline"] is None
