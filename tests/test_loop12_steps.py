"""The study loop's cheaper steps (issue 15, session 42): survival's dense ranks of the violations without np.unique,
`pareto_rank` / `crowding_distance` of all-finite rows without copies, a fixed list knob's column filled at once, the
stepped knobs snapped with rint, the violated constraints' reasons numbered as first seen, and a generation whose
designs are all new taking its chunk's results as they are (the columns the result cache would give back)."""

from __future__ import annotations

import numpy as np
import pytest

from dse.pareto import crowding_distance, pareto_rank
from dse.study.samplers import survival_order

from _objectives import float_bits, tied_objectives  # noqa: E402
from dse.study.space import _const


def _rank_by_peeling(Z: np.ndarray) -> np.ndarray:
    """Non-domination rank by the definition (minimisation; non-finite rows one past the last rank)."""
    n = len(Z)
    rank = np.full(n, -1)
    fin = np.isfinite(Z).all(axis=1)
    left = set(np.flatnonzero(fin).tolist())
    r = 0
    while left:
        front = [i for i in left if not any((Z[k] <= Z[i]).all() and (Z[k] < Z[i]).any() for k in left)]
        rank[front] = r
        left -= set(front)
        r += 1
    rank[~fin] = r
    return rank


@pytest.mark.parametrize("seed", range(4))
def test_pareto_rank_small_finite_is_the_definition(seed):
    rng = np.random.default_rng(seed)
    for t in range(60):
        n, m = int(rng.integers(1, 40)), int(rng.integers(3, 5))
        Z = rng.integers(0, 4, (n, m)).astype(float)  # ties and duplicate rows
        if t % 3 == 0:
            Z[rng.random(n) < 0.2] = np.inf  # (the general path)
        assert pareto_rank(Z).tolist() == _rank_by_peeling(Z).tolist()
        flags = [True, False] + [False] * (m - 2)
        Zmax = Z.copy()
        Zmax[:, 0] *= -1.0
        assert pareto_rank(Zmax, flags).tolist() == _rank_by_peeling(Z).tolist()


@pytest.mark.parametrize("seed", range(4))
def test_crowding_of_finite_rows_is_that_beside_a_non_finite_row(seed):
    """All rows finite (no copy, the distances returned as computed) gives the bits the general path gives for the
    same rows next to a non-finite one (which gets 0)."""
    rng = np.random.default_rng(seed)
    for t in range(200):
        n, m = int(rng.integers(0, 30)), int(rng.integers(1, 4))
        F = tied_objectives(rng, t, n, m)
        both = np.vstack([F, np.full((1, m), np.nan)])
        want = crowding_distance(both)
        got = crowding_distance(F)
        assert want[-1] == 0.0
        assert got.dtype == np.float64 and np.array_equal(float_bits(got), float_bits(want[:-1]))
        assert np.array_equal(float_bits(crowding_distance(-F, True)), float_bits(got))


def test_survival_ranks_infeasible_rows_by_dense_violation():
    F = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0], [np.inf, 0.0, 0.0]])
    cv = np.array([0.0, 0.0, 3.0, 0.5, 3.0, 1.25, 0.0])
    order, rank, crowd = survival_order(F, cv)
    # feasible: rank 0 (row 0), 1 (row 1); infeasible by violation 0.5 < 1.25 < 3 = 3 (ties share a rank); failed last
    assert rank.tolist() == [0, 1, 4, 2, 4, 3, 5]
    assert order.tolist() == [0, 1, 3, 5, 2, 4, 6]
    assert crowd.tolist() == [np.inf, np.inf, 0.0, 0.0, 0.0, 0.0, 0.0]
    one = survival_order(F[2:3], cv[2:3])
    assert one[1].tolist() == [0] and one[0].tolist() == [0]


@pytest.mark.parametrize("value", [["bf16", "fp8"], ("a", 1), {"k": 2}])
def test_const_of_a_list_is_one_object_per_cell(value):
    col = _const(value, 5)
    assert col.dtype == object and col.shape == (5,)
    assert all(c is value for c in col)
    assert _const(value, 0).shape == (0,)
    assert _const(3, 4).tolist() == [3, 3, 3, 3] and _const("n5", 2).tolist() == ["n5", "n5"]


def test_stepped_knobs_snap_to_the_grid_half_to_even(tmp_path):
    from _spaces import SPACE, study_body, write_study
    from dse.study.samplers import KnobCodec
    from dse.study.spec import load_study

    space = {**SPACE, "params": {**SPACE["params"], "chip.clock_ghz": {"low": 1.0, "high": 2.0, "step": 0.5}}}
    codec = KnobCodec(load_study(write_study(tmp_path, study_body("s", space))).space)
    names = [k.name for k in codec.knobs]
    j, c = names.index("chip.clock_ghz"), names.index("chip.cores")
    U = codec.to_scale(codec.random(np.random.default_rng(0), 4))
    U[:, j] = [1.25, 1.75, 1.2, 1.9]  # halfway steps go to the even step: (0.25 / 0.5 = 0.5 -> 0), (1.5 -> 2)
    U[:, c] = np.log(64.0)
    X = codec.from_scale(U)
    assert X[:, j].tolist() == [1.0, 2.0, 1.0, 2.0]
    assert X[:, c].tolist() == [64.0] * 4


def test_violation_reasons_per_row(tmp_path):
    """Each row violating the study's constraints names the ones it violates, in the study's order."""
    from _spaces import study_file
    from dse.study.runner import StudyRunner
    from dse.study.spec import load_study

    runner = StudyRunner(load_study(study_file(tmp_path, constraints=["tdp_w <= 400", "chip_cost_usd <= 100"])),
                         tmp_path / "r")
    n = 5
    metrics = {"feasible": np.array([True, True, True, True, False]),
               "reason": np.array(["", "", "", "", "too big"], dtype=object),
               "tdp_w": np.array([500.0, 100.0, 500.0, 100.0, 900.0]),
               "chip_cost_usd": np.array([200.0, 200.0, 50.0, 50.0, 10.0]),
               "local_llm.tpot_ms": np.ones(n), "system_cost_usd": np.ones(n), "mix.throughput": np.ones(n),
               "power_w": np.ones(n)}
    cols = {k: np.zeros(n) for k in runner.space.names}
    metrics = {k: metrics.get(k, np.ones(n)) for k in {*metrics, *runner.metrics}}
    sc = runner.score(cols, [(slice(0, n), metrics)], n)
    assert sc["reason"].tolist() == ["violates tdp_w <= 400; chip_cost_usd <= 100", "violates chip_cost_usd <= 100",
                                     "violates tdp_w <= 400", "", "too big"]
    assert sc["feasible"].tolist() == [False, False, False, True, False]


def test_new_designs_take_their_chunk_results(tmp_path):
    """A generation of new designs evaluated by one chunk in order: the chunk's results as they are, with the values
    and types the store gives back; a column whose type differs from the store's goes through the store (cast)."""
    from _spaces import study_file
    from dse.study.cache import Normalized, ResultCache
    from dse.study.runner import StudyRunner
    from dse.study.spec import load_study

    runner = StudyRunner(load_study(study_file(tmp_path)), tmp_path / "r")
    runner.cache = ResultCache()
    keys = [bytes([i]) * 8 for i in range(4)]
    r = Normalized({"a": np.array([1.5, 2.5, 3.5, 4.5]), "feasible": np.ones(4, bool),
                    "reason": np.array(["", "x", "", ""], dtype=object)})
    src = np.full(4, -1)
    got = runner._merge_cached(keys, src, np.arange(4), np.arange(4), [(slice(0, 4), r)])
    assert len(got) == 1 and got[0][0] == slice(0, 4) and got[0][1] is r
    back = runner.cache.gather(runner.cache.find(keys))
    assert all(np.array_equal(back[k], r[k]) and back[k].dtype == r[k].dtype for k in r)
    # the next chunk's column `a` comes as ints: the store keeps floats, and the batch gets them as the store has them
    keys2 = [bytes([10 + i]) * 8 for i in range(2)]
    r2 = Normalized({"a": np.array([7, 8]), "feasible": np.ones(2, bool), "reason": np.array(["", ""], dtype=object)})
    got2 = runner._merge_cached(keys2, np.full(2, -1), np.arange(2), np.arange(2), [(slice(0, 2), r2)])
    assert got2[0][1] is not r2 and got2[0][1]["a"].dtype == np.float64 and got2[0][1]["a"].tolist() == [7.0, 8.0]
    # a design repeated within the batch: merged as before (both rows the first copy's results)
    keys3 = [bytes([20]) * 8, bytes([20]) * 8]
    r3 = Normalized({"a": np.array([9.0]), "feasible": np.ones(1, bool), "reason": np.array([""], dtype=object)})
    got3 = runner._merge_cached(keys3, np.full(2, -1), np.array([0, 0]), np.array([0]), [(slice(0, 1), r3)])
    assert got3[0][1]["a"].tolist() == [9.0, 9.0]


def test_encoded_columns_reuse_layouts_by_dtype_shape_and_length():
    """`encode_columns` keys its layouts by each column's dtype and shape (or type and length): the same names with
    other rows, dtypes or row shapes get their own layout, and polars / big-endian columns are encoded as the plain
    arrays they hold (the bytes of the plain columns)."""
    import polars as pl

    from dse.runs.colpart import Coded, encode_columns, read_columns

    def back(data):
        return read_columns(encode_columns(data))

    a = {"x": np.array([1.0, 2.0]), "t": Coded(["a", "b"], np.array([1, 0], np.int32)), "k": [[1, 2], None]}
    b = {"x": np.array([3.0, 4.0, 5.0]), "t": Coded(["c"], np.zeros(3, np.int32)), "k": [None, None, [3]]}
    c = {"x": np.array([7, 8]), "t": Coded(["a", "b"], np.array([0, 0], np.int32)), "k": [[1], [2]]}
    d = {"x": np.array([[1.0, 2.0], [3.0, 4.0]]), "t": Coded(["z"], np.zeros(2, np.int32)), "k": [[0], [0]]}
    for data in (a, b, c, d, a, b, c, d):
        got = back(data)
        assert got.height == len(data["k"])
        assert np.array_equal(np.asarray(got["x"].to_list()), data["x"])
        assert got["t"].to_list() == [data["t"].values[i] for i in data["t"].codes]
        assert got["k"].to_list() == data["k"]
    assert back(c)["x"].dtype == pl.Int64 and back(a)["x"].dtype == pl.Float64
    plain = {"x": np.array([1.5, 2.5]), "y": np.array([1, 2])}
    odd = {"x": pl.Series("x", [1.5, 2.5]), "y": np.array([1, 2]).astype(">i8")}
    assert encode_columns(odd) == encode_columns(plain)
    assert encode_columns(odd) == encode_columns(plain)  # (again: nothing kept for the non-plain columns)
    with pytest.raises(Exception, match="different lengths"):
        encode_columns({"x": np.zeros(2), "y": np.zeros(3)})
    with pytest.raises(Exception, match="different lengths"):
        encode_columns({"x": np.zeros(2), "t": Coded(["a"], np.zeros(3, np.int32))})


def test_column_types_follow_each_chunk(tmp_path):
    """`_column_types` answers the last chunk's set of (metric, dtype) without hashing it, and a chunk whose dtypes or
    metrics differ gets its own types (strings as objects, ints and floats as they are)."""
    from _spaces import study_file
    from dse.study.runner import StudyRunner
    from dse.study.spec import load_study

    runner = StudyRunner(load_study(study_file(tmp_path)), tmp_path / "r")
    a = {"x": np.zeros(2), "k": np.zeros(2, np.int64), "s": np.array(["a", "b"])}
    b = {"x": np.zeros(2), "k": np.zeros(2), "s": np.array(["a", "b"], dtype=object)}
    c = {"x": np.zeros(2), "k": np.zeros(2)}
    ta, sa = runner._column_types(a)
    assert (ta["x"], ta["k"], ta["s"], sa) == (float, np.dtype(np.int64), object, False)
    assert runner._column_types(dict(a)) == (ta, sa)
    tb, sb = runner._column_types(b)
    assert (tb["k"], tb["s"], sb) == (float, object, True)  # (every column of its type already)
    tc, sc = runner._column_types(c)
    assert list(tc) == ["x", "k"] and sc
    assert runner._column_types(a) == (ta, sa) and runner._column_types(b) == (tb, sb)


@pytest.mark.parametrize("hint", [0, 5, 10_000])
def test_result_cache_keeps_first_rows_whatever_its_first_size(hint):
    """The store made for `rows` at once (a run's budget) or grown as rows come: the same rows found and gathered;
    a key added twice keeps its first row; another set of metrics stops the reuse."""
    from dse.study.cache import ResultCache

    rng = np.random.default_rng(hint)
    c = ResultCache(rows=hint)
    want: dict[bytes, float] = {}
    for b in range(30):
        n = int(rng.integers(1, 120))
        keys = [bytes([int(x)]) * 4 for x in rng.integers(0, 250, n)]
        vals = rng.random(n)
        c.add(keys, {"v": vals, "s": np.array([str(x) for x in vals], dtype=object)})
        for k, v in zip(keys, vals):
            want.setdefault(k, v)
    probe = list(want) + [b"none"]
    at = c.find(probe)
    assert at[-1] == -1 and (at[:-1] >= 0).all()
    got = c.gather(at[:-1])
    assert got["v"].tolist() == [want[k] for k in probe[:-1]]
    assert got["s"].tolist() == [str(want[k]) for k in probe[:-1]]
    cap = len(next(iter(c.store.values())))
    assert cap >= c.rows and (cap == 10_000 if hint == 10_000 else True)  # (made for the hint at once: no growth)
    c.add([b"new!"], {"v": np.ones(1)})  # another set of metrics: no reuse from now on
    assert c.full and (c.find(probe) == -1).all()
