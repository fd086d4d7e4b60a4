"""What the model keeps between calls never leaks into a result: the mapping's step memo (arrays pooled per
thread between blocks, `mapping._StepMemo`) and the compiled kernel's per-design constants kept on a HwView
(`step_kernel.design_table`) give the same numbers as fresh ones, whatever was evaluated before."""

from __future__ import annotations

import numpy as np

import dse.evaluate.mapping as mapping
from dse.evaluate.mapping import evaluate_scenario
from dse.evaluate.table import design_metrics
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.technology import default_technology
from dse.workloads.scenarios import load_mix

from test_model_speed_equiv import _columns


def _hw(n: int, seed: int):
    hw, _, ok, _ = design_metrics(DesignArrays.from_columns(_columns(n, seed), default_technology()))
    return hw.take(np.flatnonzero(ok))


def _same(a, b) -> None:
    assert np.array_equal(a.feasible, b.feasible)
    assert list(a.reason) == list(b.reason)
    for k in a.metrics:
        x, y = np.asarray(a.metrics[k]), np.asarray(b.metrics[k])
        assert np.array_equal(x, y) if x.dtype == object else np.array_equal(x, y, equal_nan=True), k
    for k in a.plans:
        assert np.array_equal(a.plans[k], b.plans[k]), k


def test_pooled_step_memo_matches_a_fresh_one(monkeypatch):
    """A block after a larger one (its memo's slot array a view of the larger block's, whose keys were
    cleared on release) equals the same block with a fresh array (the pool disabled)."""
    cal = load_calibration(None)
    sc = next(e.scenario for e in load_mix("balanced").scenarios if e.scenario.kind != "cnn")
    small, large = _hw(12, 3), _hw(60, 4)
    evaluate_scenario(sc, large, cal)
    pooled = evaluate_scenario(sc, small, cal)
    pooled_again = evaluate_scenario(sc, small, cal)
    monkeypatch.setattr(mapping, "MEMO_POOL_KEYS", -1)  # never pooled: fresh arrays per block
    mapping._MEMO_POOL.slot = None
    fresh = evaluate_scenario(sc, small, cal)
    _same(pooled, fresh)
    _same(pooled_again, fresh)


def test_kept_design_constants_follow_the_hw_fields():
    """A HwView whose field is replaced after a call is timed with the new field (the kept per-design
    constants are keyed on the fields' identities), as a fresh view with that field is."""
    cal = load_calibration(None)
    sc = next(e.scenario for e in load_mix("balanced").scenarios if e.scenario.kind != "cnn")
    hw = _hw(30, 5)
    before = evaluate_scenario(sc, hw, cal)
    hw.mem_bw = hw.mem_bw * 0.5
    after = evaluate_scenario(sc, hw, cal)
    fresh = evaluate_scenario(sc, hw.take(np.arange(hw.n)), cal)
    _same(after, fresh)
    moved = before.metrics["tpot_ms"] != after.metrics["tpot_ms"]
    assert moved.any()
