"""Per-call fixed costs at chunks of 128 (issue 15), without changing a bit: `evaluate`'s per-scenario system power and
sums in one compiled pass (`design_kernel.scenario_tail_kernel`) equal its numpy expressions, the CNN mapping's numbers in one
compiled pass (`cnn_kernel.cnn_result_kernel`) equal `_cnn_result`'s numpy ones, and the leaner numpy helpers
(`arrays.stack_rows`, `HwView.take`, the memories' stream efficiency by index, `_scenario_columns` with given
columns) equal what they replace."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dse.evaluate import evaluate, mapping, table
from dse.evaluate.metrics import SCENARIO
from dse.evaluate.table import design_metrics
from dse.evaluate.throttle import system_power_w
from dse.model import perf
from dse.model.arrays import DesignArrays, stack_rows
from dse.model.cost import tco_usd_per_hour
from dse.model.technology import default_technology
from dse.workloads.scenarios import load_mix

from _designs import random_designs  # noqa: E402
from _kernels import assert_bit_equal, kernel_runner, needs_numba  # noqa: E402

TECH = default_technology()


@pytest.fixture
def run(monkeypatch):
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


def _tail_numpy(feasible, chips_used, e_unit, thr, num_chips, leak, tokens, system_usd, w, ref, llm, power_sum,
                usd_mtok, log_sum):
    """`table.evaluate`'s numpy path of a non-serving scenario (`throttle.system_power_w`, then its sums), in place;
    the power and usd columns."""
    res = mapping.MappingResult(feasible, np.full(len(feasible), "", object),
                                {"chips_used": chips_used, "energy_j_per_unit": e_unit, "throughput": thr})
    power_w = system_power_w(res, SimpleNamespace(n=len(feasible), num_chips=num_chips, leakage_w=leak))
    power_sum += w * power_w
    per_hour = np.asarray(tco_usd_per_hour(system_usd, power_w, TECH), float)
    usd = None
    if llm:
        tok_per_h = np.maximum(tokens, 1e-30) * 3600.0
        usd = np.where(feasible, per_hour / tok_per_h * 1e6, 0.0)
        usd_mtok += w * usd
    ratio = np.where(feasible, thr / max(ref, 1e-30), 1.0)
    log_sum += w * np.log(np.maximum(ratio, 1e-300))
    return power_w, usd


def _awkward(rng, n: int, scale: float) -> np.ndarray:
    """Values of a column with zeros, signed zeros, NaN, infinities, tiny and huge values among ordinary ones."""
    v = rng.uniform(0.0, scale, n)
    pick = rng.uniform(size=n)
    for lo, hi, val in ((0.0, 0.05, 0.0), (0.05, 0.08, -0.0), (0.08, 0.11, np.nan), (0.11, 0.13, np.inf),
                        (0.13, 0.16, 1e-300), (0.16, 0.19, 1e300), (0.19, 0.21, -np.inf)):
        v = np.where((pick >= lo) & (pick < hi), val, v)
    return v


@needs_numba
@pytest.mark.parametrize("seed,n,llm,ref", [(0, 500, True, 123.4), (1, 500, False, 0.0), (2, 1, True, 1.0),
                                            (3, 128, True, np.inf), (4, 64, False, 7)])
def test_scenario_tail_kernel_equals_numpy_sums(run, seed, n, llm, ref):
    rng = np.random.default_rng(seed)
    feasible = rng.uniform(size=n) < 0.7
    e_unit, tokens, thr = _awkward(rng, n, 20.0), _awkward(rng, n, 1e5), _awkward(rng, n, 1e4)
    system_usd, leak = _awkward(rng, n, 1e7), _awkward(rng, n, 300.0)
    chips_used = np.where(rng.uniform(size=n) < 0.1, 0.0, rng.integers(1, 4096, n).astype(float))
    num_chips = np.maximum(rng.integers(1, 4096, n) + np.where(rng.uniform(size=n) < 0.5, 0, -64), 1)
    acc0 = [rng.uniform(-5, 5, n) for _ in range(3)]
    w = float(rng.uniform(0.1, 3.0))
    want = [a.copy() for a in acc0]
    with np.errstate(all="ignore"):
        want_power, want_usd = _tail_numpy(feasible, chips_used, e_unit, thr, num_chips, leak, tokens, system_usd, w,
                                           ref, llm, *want)
    from dse.model import design_kernel as dk
    # the tail is compiled only where numpy's float64 log is libm's (not where numpy takes it from a SIMD library,
    # AVX-512): there the kernel's log sum may differ from numpy's by an ulp, everything else is still to the bit
    libm = dk.numpy_log_is_libm()
    assert run("numba", table._tail_kernel) is (dk if libm else None)
    assert run("numpy", table._tail_kernel) is None
    got = [a.copy() for a in acc0]
    power, usd = np.full(n, -1.0), np.full(n, -1.0)
    with np.errstate(all="ignore"):
        dk.scenario_tail_kernel(feasible, chips_used, e_unit, thr, stack_rows([num_chips, leak], n), tokens, system_usd,
                                table._tail_scalars(w, ref, llm, TECH), power, usd, *got)
    assert_bit_equal(dict(zip("pu", want)), dict(zip("pu", got)), "sums")
    if libm:
        assert_bit_equal({"l": want[2]}, {"l": got[2]}, "log sum")
    else:
        np.testing.assert_allclose(got[2], want[2], rtol=1e-14, atol=1e-13)
    assert_bit_equal({"power": want_power}, {"power": power}, "system power")
    if llm:
        assert_bit_equal({"usd": want_usd}, {"usd": usd}, "usd per Mtok")
    else:
        assert (usd == -1.0).all()  # (a CNN scenario leaves the column as it is)


@needs_numba
@pytest.mark.parametrize("mix,chunk,capped", [("balanced", 128, False), ("datacenter", 37, False),
                                             ("extended", 500, False), ("balanced", 1, False), ("balanced", 128, True)])
def test_evaluate_with_the_tail_kernel_equals_numpy_tail(run, monkeypatch, mix, chunk, capped):
    """The whole table, compiled kernels on, with the per-scenario power and sums compiled or in numpy: every column
    the same (`capped`: TDP caps that throttle some designs' clocks, dse.evaluate.throttle)."""
    cols = random_designs(500, seed=31)
    if capped:
        cols["chip.tdp_w"] = np.random.default_rng(5).uniform(20.0, 800.0, 500)
    parts = [{k: v[s:s + chunk] for k, v in cols.items()} for s in range(0, 500 if chunk > 1 else 20, chunk)]

    def table_of(tail: bool) -> dict:
        with monkeypatch.context() as m:
            if not tail:
                m.setattr(table, "_tail_kernel", lambda: None)
            outs = [evaluate(DesignArrays.from_columns(p, TECH), mix, TECH) for p in parts]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    got = run("numba", table_of, True)
    want = run("numba", table_of, False)
    assert_bit_equal(got, want, f"{mix} at chunks of {chunk}")
    assert got["feasible"].any()
    if capped:  # (some designs throttled: a scenario's throughput below the same design's without its cap)
        del cols["chip.tdp_w"]
        parts = [{k: v[s:s + chunk] for k, v in cols.items()} for s in range(0, 500, chunk)]
        free = run("numba", table_of, True)
        thr = [k for k in got if k.endswith(".throughput") and not k.startswith("mix")]
        assert any((got[k] < free[k] * (1 - 1e-9)).any() for k in thr)


@needs_numba
def test_cnn_result_kernel_rows_are_its_metrics():
    from dse.model import cnn_kernel
    assert tuple(mapping._NUMERIC[j] for j in mapping._cnn_result_rows(cnn_kernel)) == cnn_kernel.RESULT_METRICS


@needs_numba
@pytest.mark.parametrize("seed", [0, 1])
def test_cnn_result_compiled_equals_numpy(run, seed):
    """`_cnn_result` of the compiled choice, by its kernel and by the numpy code (the choice's columns), the same."""
    hw, _, ok, _ = design_metrics(DesignArrays.from_columns(random_designs(800, seed=seed), TECH))
    hw = hw.take(np.flatnonzero(ok))
    sc = next(e.scenario for e in load_mix("balanced").scenarios if e.scenario.kind == "cnn")
    from dse.workloads.modelfile import load_model_shape
    t = mapping._cnn_table(sc, load_model_shape(sc.model), sc.precision_spec() if hasattr(sc, "precision_spec")
                           else sc.precision)
    cal = mapping._inference(table._calibration(None))
    chips = np.minimum(hw.num_chips, 1 << 30)
    slo = mapping._slo(sc, "latency_ms")
    ch = run("numba", mapping._cnn_choose_compiled, hw, sc, t, cal, chips, slo, table._calibration(None))
    assert ch.raw is not None and ch.feasible.any() and (~ch.feasible).any()
    got = mapping._cnn_result(hw, t, chips, slo, ch)
    ch.raw = None
    want = mapping._cnn_result(hw, t, chips, slo, ch)
    assert_bit_equal(got.metrics, want.metrics, "metrics")
    assert_bit_equal(got.plans, want.plans, "plans")
    assert np.array_equal(got.feasible, want.feasible) and list(got.reason) == list(want.reason)


def test_stack_rows_equals_row_writes():
    n = 5
    cols = [np.arange(n), np.array([True, False, True, True, False]), np.linspace(-1, 1, n), np.full(n, np.nan),
            np.arange(n, dtype=np.int32)]
    want = np.empty((len(cols), n))
    for k, c in enumerate(cols):
        want[k] = c
    got = stack_rows(cols, n)
    assert got.dtype == np.float64 and got.flags.c_contiguous
    assert np.array_equal(got, want, equal_nan=True)
    mixed = cols + [3.5]  # (a scalar: the row-by-row writes)
    want = np.vstack([want, np.full(n, 3.5)])
    assert np.array_equal(stack_rows(mixed, n), want, equal_nan=True)


def test_hw_take_equals_each_field_taken():
    arr = DesignArrays.from_columns(random_designs(60, seed=3), TECH)
    hw, _, _, _ = design_metrics(arr)
    for idx in (np.array([5, 1, 1, 40]), np.arange(60) % 7 == 0, np.array([], int)):
        sub = hw.take(idx)
        for f in perf.HwView.__dataclass_fields__:
            v, s = getattr(hw, f), getattr(sub, f)
            if v is None:
                assert s is None, f
            elif isinstance(v, dict):
                assert s.keys() == v.keys() and all(np.array_equal(s[k], v[k][idx]) for k in v), f
            else:
                assert np.array_equal(s, v[idx]) and s.dtype == v.dtype, f


def test_stream_efficiency_by_index_equals_by_name():
    cols = random_designs(300, seed=5)
    cols["chip.memory"] = np.where(np.arange(300) % 11 == 0, "none", cols["chip.memory"])
    cols["chip.memory"] = np.where(np.arange(300) % 13 == 0, "hbm9", cols["chip.memory"])  # (flagged, unknown)
    arr = DesignArrays.from_columns(cols, TECH)
    got = perf._memory_stream_efficiency(arr)
    arr.name_at = {}  # (the search of the names)
    want = perf._memory_stream_efficiency(arr)
    assert np.array_equal(got, want) and (want != 1.0).any() and (want == 1.0).any()


def test_scenario_columns_with_given_columns():
    n, idx = 9, np.array([1, 4, 8])
    ms = {"throughput": np.array([1.0, 2.0, 3.0]), "tp": np.array([1.9, 2.0, 4.0]),
          "weights": np.array(["a", "b", "c"], dtype=object)}
    given = {"feasible": np.arange(n) % 2 == 0, "reason": np.array([str(i) for i in range(n)], dtype=object)}
    got = table._scenario_columns(n, ms, idx, given)
    plain = table._scenario_columns(n, ms, idx)
    assert list(got) == list(SCENARIO) == list(plain)
    assert got["feasible"] is given["feasible"] and got["reason"] is given["reason"]
    for k in SCENARIO:
        if k not in given:
            assert got[k].dtype == plain[k].dtype and np.array_equal(got[k], plain[k]), k
    assert list(got["tp"]) == [0, 1, 0, 0, 2, 0, 0, 0, 4] and got["weights"][4] == "b"
