"""The software stack's KV-cache room (Calibration.kv_room_bytes) and the serving engine built on it."""

import numpy as np
import pytest

from dse.evaluate.serving import fit_engine
from dse.evaluate.steps import Builders, stage_weight_bytes
from dse.model.calibration import load_calibration
from dse.validate.predict import hw_view
from dse.workloads.modelfile import load_model_shape
from dse.workloads.precision import parse_precision


def test_room_by_hand():
    """80 GB holding 35 GB of weights: TensorRT-LLM takes 0.9 of the 45 GB free (40.5 GB); vLLM 0.9 of all
    80 GB minus the weights (37 GB); the kernel class (no runtime) all of it."""
    assert load_calibration("tuned").kv_room_bytes(80e9, 35e9) == pytest.approx(40.5e9)
    assert load_calibration("graph").kv_room_bytes(80e9, 35e9) == pytest.approx(40.5e9)
    assert load_calibration("generic").kv_room_bytes(80e9, 35e9) == pytest.approx(37e9)
    assert load_calibration("kernel").kv_room_bytes(80e9, 35e9) == pytest.approx(45e9)
    assert load_calibration("generic").kv_room_bytes(80e9, 75e9) == 0.0


def test_room_grows_with_memory_and_shrinks_with_weights():
    cal = load_calibration("generic")
    mem = np.linspace(10e9, 200e9, 50)
    room = cal.kv_room_bytes(mem, 30e9)
    assert np.all(np.diff(room) >= 0)
    assert np.all(np.diff(cal.kv_room_bytes(80e9, np.linspace(0, 80e9, 50))) <= 0)


def test_engine_capacity_is_the_stacks_room_over_kv_per_token():
    """Llama-2-70B bf16 on one 8-chip H100 replica (tp 8): capacity = floor(room / KV bytes per token per
    chip), the room from the class; the tuned engine reserves, the generic one grows."""
    hw = hw_view("H100-SXM", 8)
    shape, prec = load_model_shape("Llama-2-70B"), parse_precision("bf16")
    step = Builders.llm(shape, "decode", 64, 1, 1024, 8, prec, 1)
    kv_tok = Builders.kv_bytes(shape, 1, 1, 8, prec)
    for cls, reserve in (("tuned", 1), ("generic", 0)):
        cal = load_calibration(cls)
        e = fit_engine(shape, prec, hw, cal, tp=8, pp=1, ep=1, batch=64, context=1024)
        room = cal.kv_room_bytes(hw.mem_bytes, stage_weight_bytes(step, 1))
        assert e.kv_capacity_tokens[0] == int(np.floor(room[0] / kv_tok))
        assert e.kv_reserve[0] == reserve
