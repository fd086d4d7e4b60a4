"""The `graph` class (TensorRT-LLM's PyTorch flow, vLLM, SGLang with CUDA graphs) runs each tensor-parallel
all-reduce on the compute stream between the kernels that produce and consume it: nothing of it hides under
the GEMMs (dse/model/data/calibration.yaml `graph.comm_overlap`; the MoE TP8 rows of dse/catalog/measurements.yaml
were 6 of 7 over by 11-53 % while it hid 80 %)."""

from __future__ import annotations

import numpy as np
import pytest

from dse.evaluate.steps import Builders
from dse.model.calibration import load_calibration
from dse.model.perf import collective_time, op_times
from dse.validate.predict import hw_view
from dse.workloads.modelfile import load_model_shape
from dse.workloads.precision import parse_precision


def _tp8_prefill_times(cal):
    """Per-operator times of a 4 x 2,048-token Qwen3-30B-A3B prefill chunk at tp 8 on 8 x H100 (streamed)."""
    step = Builders.llm(load_model_shape("Qwen3-30B-A3B"), "prefill", 4, 2048, 2048, 8, parse_precision("fp8"))
    hw = hw_view("H100-SXM", 8)
    off = np.zeros(1, bool)
    return step.ops, hw, op_times(step.ops, hw, cal, off, off, np.zeros(1))


def test_graph_does_not_overlap_collectives():
    assert load_calibration("graph").comm_overlap == 0.0
    assert load_calibration("tuned").comm_overlap == 0.0


def test_graph_tp_allreduce_takes_its_whole_collective_time_in_a_prefill_chunk():
    """Each all-reduce of the chunk is charged its alpha-beta time by hand (collective_time), while a stack
    that hid 80 % of it would be charged less: the step is the sum of its kernels and its collectives."""
    cal = load_calibration("graph")
    ops, hw, t = _tp8_prefill_times(cal)
    coll = np.flatnonzero(np.asarray(ops.kind) == "allreduce")
    assert len(coll) >= 2  # after attention and after the MoE block
    for i in coll:
        expect = float(collective_time("allreduce", ops.comm_bytes[i], int(ops.group[i]), hw, cal)[0, 0])
        assert float(t.comm[0, i]) == pytest.approx(expect, rel=1e-9)
    hiding = cal.model_copy(update={"comm_overlap": 0.8})
    _, _, t_hid = _tp8_prefill_times(hiding)
    assert float(t_hid.comm[0, coll].sum()) < 0.5 * float(t.comm[0, coll].sum())
    cnt = np.asarray(ops.count, float)
    assert float((t.total[0] * cnt).sum()) > float((t_hid.total[0] * cnt).sum())
