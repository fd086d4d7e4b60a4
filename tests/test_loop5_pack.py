"""The columns a model process sends and receives (`pack_columns` / `unpack_columns`): the same columns, in the
same order, with their dtypes and values, whatever their kinds; anything but a dict goes through as it is."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dse.study.execution import EvalError, pack_columns, unpack_columns


def _round_trip(cols):
    return unpack_columns(pickle.loads(pickle.dumps(pack_columns(cols))))


def test_columns_of_every_kind_come_back_as_they_were():
    rng = np.random.default_rng(3)
    cols = {"b": rng.random(7), "s": np.array(list("abcdefg")), "flag": rng.random(7) < 0.5,
            "i": rng.integers(-5, 5, 7), "f32": rng.random(7).astype(np.float32), "a": rng.random(7),
            "o": np.array(["x", 1, None, [1, 2], "y", 2.5, True], dtype=object), "nan": np.full(7, np.nan),
            "two_d": rng.random((7, 2)), "u8": np.arange(7, dtype=np.uint8), "scalar": 3.0, "list": [1, 2, 3]}
    got = _round_trip(cols)
    assert list(got) == list(cols)
    for k, v in cols.items():
        g = got[k]
        if isinstance(v, np.ndarray):
            assert g.dtype == v.dtype and g.shape == v.shape, k
            assert np.array_equal(g, v, equal_nan=v.dtype.kind == "f") if v.dtype != object else list(g) == list(v)
        else:
            assert g == v, k


def test_a_number_column_is_its_own_array():
    """Columns of one dtype share a block; writing one row must not change another column."""
    got = _round_trip({"a": np.zeros(4), "b": np.ones(4)})
    got["a"][:] = 5.0
    assert np.array_equal(got["b"], np.ones(4))


def test_columns_of_other_lengths_are_not_stacked():
    cols = {"a": np.arange(3.0), "b": np.arange(5.0)}
    got = _round_trip(cols)
    assert np.array_equal(got["a"], cols["a"]) and np.array_equal(got["b"], cols["b"])


@pytest.mark.parametrize("value", [[1, 2], None, "text", EvalError("boom", transient=True)])
def test_anything_but_a_dict_goes_through(value):
    got = _round_trip(value)
    if isinstance(value, EvalError):
        assert isinstance(got, EvalError) and str(got) == "boom" and got.transient
    else:
        assert got == value


def test_no_columns():
    assert _round_trip({}) == {}


def test_batches_evaluated_together_get_their_own_rows():
    """In-process, the generations in flight are evaluated with one model call (`_evaluate_together`): each batch
    gets its rows of the results, chunk by chunk (an error chunk: that error), as if evaluated alone."""
    from types import SimpleNamespace

    from dse.study.runner import StudyRunner

    err = EvalError("boom")

    def evaluate(cols):  # three chunks: rows 0-3, an error on rows 4-5, rows 6-9
        x = cols["x"]
        assert len(x) == 10
        return [(slice(0, 4), {"y": x[0:4] * 2}), (slice(4, 6), err), (slice(6, 10), {"y": x[6:10] * 2})]

    jobs = [[{"x": np.arange(3.0)}, None], [{"x": np.arange(3.0, 10.0)}, None]]
    fake = SimpleNamespace(_together=list(jobs), _evaluate=evaluate)
    StudyRunner._evaluate_together(fake)
    assert fake._together == []
    (s0, r0), = jobs[0][1]
    assert s0 == slice(0, 3) and np.array_equal(r0["y"], [0.0, 2.0, 4.0])
    (s1, r1), (s2, r2), (s3, r3) = jobs[1][1]
    assert (s1, s2, s3) == (slice(0, 1), slice(1, 3), slice(3, 7))
    assert np.array_equal(r1["y"], [6.0]) and r2 is err and np.array_equal(r3["y"], [12.0, 14.0, 16.0, 18.0])


class _Big:
    """A pure toy model whose results are large (40 columns of the chunk's length)."""

    pure = True

    def __call__(self, cols):
        n = len(cols["x"])
        return {f"m{i}": np.full(n, float(i)) for i in range(40)}


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="the model process forks (Linux)")
def test_two_large_chunks_in_flight_do_not_wait_for_each_other():
    """The runner sends the next generation before it receives the last result; chunks and results larger than
    the socket's buffer must not block each other (the model process sends its results from a thread)."""
    import threading

    from dse.study.execution import ModelProcess

    mp = ModelProcess(_Big())
    try:
        n = 20_000  # chunk ~1.6 MB, result ~6.4 MB: both far beyond a socket buffer
        cols = {f"k{j}": np.arange(n, dtype=float) + j for j in range(9)} | {"x": np.arange(n, dtype=float)}
        got: list = []

        def parent() -> None:
            mp.submit(cols)
            mp.submit(cols)
            got.extend([mp.result(), mp.result()])

        t = threading.Thread(target=parent, daemon=True)
        t.start()
        t.join(120)
        assert not t.is_alive(), "the parent and the model process wait for each other"
        assert len(got) == 2 and all(np.array_equal(r["m7"], np.full(n, 7.0)) for r in got)
    finally:
        mp.close()
