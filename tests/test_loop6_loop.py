"""The study loop's faster parts (issue 15): SBX + polynomial mutation on the elements they change only, equal
to the element-by-element textbook operators for the same draws; `canonical`'s columns built by kind, equal to
the knob-by-knob ones; text knobs coded from the knob matrix, read back as their texts; batches evaluated
together, each getting its own rows; the model process's small results sent from its loop and large ones by
its thread, both giving the in-process results."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from dse.runs.colpart import Coded, frame_of
from dse.study import execution
from dse.study.execution import EvalError, evaluate_jointly
from dse.study.runner import StudyRunner
from dse.study.samplers import PM_ETA, SBX_ETA, ArrayNSGAII, KnobCodec
from dse.study.space import SearchSpace, SearchSpaceSpec
from dse.study.spec import load_study
from _spaces import SPACE, study_file


def _datacenter_space() -> SearchSpace:
    root = Path(__file__).resolve().parents[1]
    return SearchSpace(SearchSpaceSpec(**yaml.safe_load((root / "search_spaces" / "datacenter.yaml").read_text())))



def _pm(x: float, r: float, lo: float, hi: float) -> float:
    """Polynomial mutation of x in [lo, hi] by the draw r (Deb's bounded form, the textbook formula)."""
    w, p = hi - lo, 1.0 / (PM_ETA + 1.0)
    if r < 0.5:
        dq = (2 * r + (1 - 2 * r) * (1 - (x - lo) / w) ** (PM_ETA + 1)) ** p - 1.0
    else:
        dq = 1.0 - (2 * (1 - r) + 2 * (r - 0.5) * (1 - (hi - x) / w) ** (PM_ETA + 1)) ** p
    return min(max(x + dq * w, lo), hi)

def _sbx_pm_reference(ga: ArrayNSGAII, R: np.ndarray, P: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The children of parent rows A x B element by element, from the same uniform draws `R` (5 x n*d: crossover,
    SBX spread, SBX side, mutation, its spread) and `P` (n: the pair's crossover), by the textbook formulas:
    bounded SBX (Deb & Agrawal 1995; Deb's NSGA-II code), polynomial mutation (Deb & Goyal 1996), of a choice's
    index too (rounded to the nearest choice)."""
    codec = ga.codec
    lo, hi, num = codec.scale_bounds()
    counts = [len(k.dist.choices) if k.kind == "categorical" else 1 for k in codec.knobs]
    U, V = codec.to_scale(A), codec.to_scale(B)
    n, d = A.shape
    C = U.copy()
    for i in range(n):
        for j in range(d):
            e = i * d + j
            swap = P[i] < ga.crossover_prob and R[0, e] < ga.swapping_prob
            u, v = U[i, j], V[i, j]
            if num[j]:
                if swap and not (math.isnan(u) or math.isnan(v)) and abs(u - v) > 1e-14:
                    y1, y2 = min(u, v), max(u, v)
                    r = R[1, e]
                    if R[2, e] < 0.5:  # the child near the lower parent
                        beta = 1.0 + 2.0 * (y1 - lo[j]) / (y2 - y1)
                    else:
                        beta = 1.0 + 2.0 * (hi[j] - y2) / (y2 - y1)
                    alpha = 2.0 - beta ** -(SBX_ETA + 1.0)
                    if r <= 1.0 / alpha:
                        betaq = (r * alpha) ** (1.0 / (SBX_ETA + 1.0))
                    else:
                        betaq = (1.0 / (2.0 - r * alpha)) ** (1.0 / (SBX_ETA + 1.0))
                    c = 0.5 * (y1 + y2 - betaq * (y2 - y1)) if R[2, e] < 0.5 else 0.5 * (y1 + y2 + betaq * (y2 - y1))
                    C[i, j] = min(max(c, lo[j]), hi[j])
                if R[3, e] < ga.mutation_prob and not math.isnan(C[i, j]):
                    C[i, j] = _pm(C[i, j], R[4, e], lo[j], hi[j])
            else:  # a choice: uniform crossover, then polynomial mutation of its index on [-0.5, choices - 0.5]
                if swap:
                    C[i, j] = v
                if R[3, e] < ga.mutation_prob and not math.isnan(C[i, j]):
                    assert (lo[j], hi[j]) == (-0.5, counts[j] - 0.5)
                    C[i, j] = _pm(C[i, j], R[4, e], lo[j], hi[j])
    X = codec.from_scale(C)
    for i in range(n):
        for j in range(d):
            if not num[j] and not math.isnan(X[i, j]):
                X[i, j] = float(min(max(round(X[i, j]), 0), counts[j] - 1))  # the nearest choice (half to even)
    return X


@pytest.mark.parametrize("seed", range(4))
def test_sbx_pm_equals_the_element_wise_operators(seed):
    """Every child element as the textbook formulas give it from the same draws (numbers to rounding, choices
    exactly), on the datacenter space (log, stepped, int, float and categorical knobs, a conditional one)."""
    space = _datacenter_space()
    ga = ArrayNSGAII(space, population_size=40, mutation_prob=0.3)  # mutations on many elements
    codec = ga.codec
    rng = np.random.default_rng(seed)
    A, _ = codec.canonical(codec.random(rng, 60), rng)
    B, _ = codec.canonical(codec.random(rng, 60), rng)
    B[::7] = A[::7]  # identical parents: no crossover there
    n, d = A.shape
    replay = np.random.default_rng(100 + seed)
    R, P = replay.random((5, n * d)), replay.random(n)  # the draws `_sbx_pm` makes, in its order
    got = ga._sbx_pm(np.random.default_rng(100 + seed), A, B)
    want = _sbx_pm_reference(ga, R, P, A, B)
    assert np.allclose(got, want, rtol=1e-12, atol=0.0, equal_nan=True)
    cat = [j for j, k in enumerate(codec.knobs) if k.kind == "categorical"]
    assert np.array_equal(got[:, cat], want[:, cat], equal_nan=True)


def _canonical_knob_by_knob(codec: KnobCodec, X: np.ndarray) -> dict[str, np.ndarray]:
    """`canonical`'s columns as `_column` makes each, knob by knob (no value missing: no draws)."""
    cols = codec._fixed(len(X))
    for j, k in enumerate(codec.knobs):
        if k.when is not None:
            active = np.broadcast_to(np.asarray(k.when.truth(cols), dtype=bool), (len(X),))
            X[~active, j] = np.nan
        col = codec._column(j, X[:, j])
        off = np.isnan(X[:, j])
        if k.when is not None and off.any():
            col = np.where(off, k.neutral, col)
        cols[k.name] = col
    return cols


@pytest.mark.parametrize("space", ["datacenter", "tiny"])
def test_canonical_columns_by_kind_equal_the_knob_by_knob_ones(space):
    sp = _datacenter_space() if space == "datacenter" else SearchSpace(SearchSpaceSpec(**SPACE))
    codec = KnobCodec(sp)
    rng = np.random.default_rng(2)
    X, cols = codec.canonical(codec.random(rng, 300), rng)
    want = _canonical_knob_by_knob(codec, X.copy())
    assert list(cols) == list(sp.names)
    for name in sp.names:
        assert cols[name].dtype == want[name].dtype, name
        assert cols[name].tolist() == want[name].tolist(), name


def test_text_knobs_coded_from_the_knob_matrix_read_back_as_their_texts(tmp_path):
    """`_knob_codes`: a categorical knob's choice indices and a fixed text knob's one value, decoded, are the
    knob columns (what `dictionary` of the texts gives, as `frame_of` reads both)."""
    runner = StudyRunner(load_study(study_file(tmp_path, "c")), tmp_path / "run")
    codec = KnobCodec(runner.space)
    runner.codec = codec
    rng = np.random.default_rng(4)
    X, cols = codec.canonical(codec.random(rng, 50), rng)
    coded = runner._knob_codes(X, cols)
    assert {"chip.process_node", "chip.memory", "chip.packaging"} <= set(coded)
    for name, c in coded.items():
        assert isinstance(c, Coded)
        assert [c.values[i] for i in c.codes.tolist()] == cols[name].tolist(), name
    got = frame_of([coded, coded])
    want = frame_of([{k: cols[k] for k in coded}] * 2)
    assert got.equals(want)


def _toy(cols):
    x = np.asarray(cols["x"], dtype=float)
    return {"y": 2 * x, "feasible": x >= 0}


def test_batches_evaluated_together_each_get_their_rows():
    calls = []

    def evaluate(cols):
        calls.append(len(cols["x"]))
        n = len(cols["x"])
        return [(slice(0, n // 2), _toy({"x": cols["x"][: n // 2]})), (slice(n // 2, n), EvalError("boom"))]

    a, b = {"x": np.arange(5.0)}, {"x": np.arange(10.0, 13.0)}
    got = evaluate_jointly(evaluate, [a, b])
    assert calls == [8]  # one call for both
    (s0, r0), (s1, e0) = got[0]
    assert (s0, s1) == (slice(0, 4), slice(4, 5)) and r0["y"].tolist() == [0, 2, 4, 6] and isinstance(e0, EvalError)
    ((s2, e1),) = got[1]  # the failed chunk holds b's rows: all of them fail
    assert s2 == slice(0, 3) and e1 is e0
    assert evaluate_jointly(lambda c: [(slice(0, 5), _toy(c))], [a])[0][0][1]["y"].tolist() == [0, 2, 4, 6, 8]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the model process forks (Linux)")
@pytest.mark.parametrize("population", [8, 300])
def test_model_process_results_small_and_large_equal_in_process(tmp_path, monkeypatch, population):
    """A generation of 8 designs' results is sent from the model process's loop, one of ~300 (over
    DIRECT_SEND_BYTES) by its sender thread; either way the run equals the in-process one."""
    cfg = study_file(tmp_path, "p", sampler={"kind": "nsga2", "population_size": population},
                     budget={"trials": population * 4}, seed=9)
    out = {}
    for how in ("never", "always"):
        monkeypatch.setenv("DSE_MODEL_PROCESS", how)
        runner = StudyRunner(load_study(cfg), tmp_path / how)
        runner.run()
        out[how] = pl.read_parquet(tmp_path / how / "results.parquet").drop("datetime_start", "datetime_complete")
    assert runner.model_process is not None and runner.model_process.calls >= 1
    assert out["always"].equals(out["never"])
    assert sys.getswitchinterval() == pytest.approx(0.005)  # the run's shorter interval is restored


def test_a_large_result_does_not_fit_the_direct_send():
    """The thread path is the one a population of ~300 takes (so the test above exercises both paths)."""
    from multiprocessing.reduction import ForkingPickler

    cols = {f"m{i}": np.zeros(300) for i in range(40)}
    assert len(ForkingPickler.dumps((execution.pack_columns(cols), 0.0, 1))) > execution.DIRECT_SEND_BYTES


def test_an_empty_batch_is_evaluated_alone():
    got = evaluate_jointly(lambda c: [(slice(0, len(c["x"])), _toy(c))], [{"x": np.zeros(0)}, {"x": np.ones(2)}])
    assert got[0][0][0] == slice(0, 0) and got[1][0][1]["y"].tolist() == [2.0, 2.0]
