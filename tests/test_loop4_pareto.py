"""The array forms of `_rank_small` and `crowding_distance_by_group` against the loop forms they replaced (kept
here as the reference): the same ranks and the same crowding distances to the bit, on random sets with ties,
duplicates and signed zeros."""

from __future__ import annotations

import numpy as np
import pytest

from dse.pareto import _rank_small, crowding_distance, crowding_distance_by_group, pareto_rank


def _rank_small_reference(Z: np.ndarray, max_rows: int | None) -> np.ndarray:
    n = len(Z)
    le = Z[None, :, 0] <= Z[:, None, 0]
    for j in range(1, Z.shape[1]):
        le &= Z[None, :, j] <= Z[:, None, j]
    dom = le & ~le.T
    count = np.count_nonzero(dom, axis=1)
    rank = np.full(n, -1, dtype=np.int64)
    current = count == 0
    r, done = 0, 0
    while current.any():
        rank[current] = r
        done += int(current.sum())
        r += 1
        if max_rows is not None and done >= max_rows:
            break
        count = count - np.count_nonzero(dom[:, current], axis=1)
        current = (count == 0) & (rank < 0)
    rank[rank < 0] = r
    return rank


def _crowding_by_group_reference(Y: np.ndarray, group: np.ndarray) -> np.ndarray:
    Z = np.asarray(Y, dtype=float)
    n, m = Z.shape
    group = np.asarray(group)
    dist = np.zeros(n)
    for j in range(m):
        order = np.lexsort((Z[:, j], group))
        v = Z[order, j]
        g = group[order]
        first = np.ones(n, dtype=bool)
        first[1:] = g[1:] != g[:-1]
        last = np.ones(n, dtype=bool)
        last[:-1] = g[1:] != g[:-1]
        start = np.flatnonzero(first)
        end = np.flatnonzero(last)
        span = np.repeat(v[end] - v[start], end - start + 1)
        d = np.zeros(n)
        inner = ~first & ~last
        at = np.flatnonzero(inner & (span > 0))
        d[at] = (v[at + 1] - v[at - 1]) / span[at]
        d[first | last] = np.inf
        dist[order] += d
    return dist


def _sets(seed: int):
    """Random objective sets: continuous, coarse grids (many ties), duplicated rows, signed zeros."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(0, 260))
        m = int(rng.integers(1, 5))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            Z = rng.normal(size=(n, m))
        elif kind == 1:
            Z = rng.integers(0, 4, size=(n, m)).astype(float)  # ties everywhere
        elif kind == 2:
            base = rng.normal(size=(max(n // 4, 1), m))
            Z = base[rng.integers(0, len(base), size=n)]  # duplicated rows
        else:
            Z = rng.choice([-1.0, -0.0, 0.0, 1.0, 2.5], size=(n, m))  # signed zeros
        yield rng, Z


@pytest.mark.parametrize("seed", range(6))
def test_rank_small_equals_reference(seed):
    for rng, Z in _sets(seed):
        if len(Z) == 0:
            continue
        for max_rows in (None, 1, int(rng.integers(1, len(Z) + 1)), len(Z)):
            assert np.array_equal(_rank_small(Z, max_rows), _rank_small_reference(Z, max_rows))


@pytest.mark.parametrize("seed", range(6))
def test_crowding_by_group_equals_reference(seed):
    for rng, Z in _sets(seed):
        n = len(Z)
        for group in (pareto_rank(Z) if n else np.zeros(0, np.int64), rng.integers(0, 5, size=n),
                      np.zeros(n, np.int64), np.arange(n)):
            got = crowding_distance_by_group(Z, group)
            want = _crowding_by_group_reference(Z, group)
            assert got.tobytes() == want.tobytes()  # to the bit (incl. inf and signed zeros)


def test_crowding_by_group_is_per_group_crowding():
    """Hand-checked case: two groups, each the crowding distance of its own rows."""
    Z = np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0], [3.0, 0.0], [5.0, 5.0], [6.0, 4.0], [7.0, 3.0]])
    group = np.array([0, 0, 0, 0, 1, 1, 1])
    got = crowding_distance_by_group(Z, group)
    assert np.array_equal(got[:4], crowding_distance(Z[:4]))
    assert np.array_equal(got[4:], crowding_distance(Z[4:]))
    assert got[1] == pytest.approx(2 / 3 + 2 / 3) and got[5] == pytest.approx(2.0)


class _StaircaseReference:
    """The 2-D staircase `_hv3` sweeps with, as it was (a term per point, summed by a generator)."""

    def __init__(self, rx: float, ry: float):
        self.rx, self.ry = rx, ry
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.area = 0.0

    def _term(self, i: int) -> float:
        nxt = self.xs[i + 1] if i + 1 < len(self.xs) else self.rx
        return (nxt - self.xs[i]) * (self.ry - self.ys[i])

    def insert(self, x: float, y: float) -> None:
        from bisect import bisect_left, bisect_right

        xs, ys = self.xs, self.ys
        j = bisect_right(xs, x) - 1
        if j >= 0 and ys[j] <= y:
            return
        lo = bisect_left(xs, x)
        hi = lo
        while hi < len(xs) and ys[hi] >= y:
            hi += 1
        first = max(lo - 1, 0)
        old = sum(self._term(i) for i in range(first, hi))
        del xs[lo:hi], ys[lo:hi]
        xs.insert(lo, x)
        ys.insert(lo, y)
        new = sum(self._term(i) for i in range(first, lo + 1))
        self.area += new - old


@pytest.mark.parametrize("seed", range(4))
def test_staircase_equals_reference(seed, monkeypatch):
    """The staircase's points after every insertion equal the reference's, its area too up to rounding (it adds
    the area only the new point dominates; the reference, the difference of the changed terms), and so
    `hypervolume` in 3-D."""
    import dse.pareto as pareto

    rng = np.random.default_rng(seed)
    for _ in range(30):
        n = int(rng.integers(1, 400))
        P = rng.random((n, 2)) if rng.random() < 0.5 else rng.integers(0, 6, size=(n, 2)) / 7.0  # ties
        a, b = pareto._Staircase(1.5, 1.25), _StaircaseReference(1.5, 1.25)
        for x, y in P.tolist():
            a.insert(x, y)
            b.insert(x, y)
            assert (a.xs, a.ys) == (b.xs, b.ys)
            assert a.area == pytest.approx(b.area, rel=1e-12, abs=1e-15)
        Y = rng.random((n, 3)) if rng.random() < 0.5 else rng.integers(0, 5, size=(n, 3)).astype(float)
        ref = [5.0, 5.0, 5.0]
        got = pareto.hypervolume(Y, ref)
        monkeypatch.setattr(pareto, "_Staircase", _StaircaseReference)
        want = pareto.hypervolume(Y, ref)
        monkeypatch.undo()
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
