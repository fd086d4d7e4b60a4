"""Tests of dse.pareto: hand-computed cases, brute-force properties (hypothesis) and a moocore cross-check."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dse.pareto import crowding_distance, hypervolume, nondominated_mask, pareto_rank


def brute_mask(Z: np.ndarray) -> np.ndarray:
    """O(n²) reference (minimisation, finite rows only)."""
    le = (Z[None, :, :] <= Z[:, None, :]).all(axis=2)
    lt = (Z[None, :, :] < Z[:, None, :]).any(axis=2)
    return ~(le & lt).any(axis=1)


def brute_rank(Z: np.ndarray) -> np.ndarray:
    rank = np.full(len(Z), -1)
    left = np.arange(len(Z))
    r = 0
    while left.size:
        keep = brute_mask(Z[left])
        rank[left[keep]] = r
        left = left[~keep]
        r += 1
    return rank


def brute_hv(Z: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume by summing grid cells whose lower corner some point weakly dominates (minimisation)."""
    Z = Z[(Z < ref).all(axis=1)]
    if len(Z) == 0:
        return 0.0
    axes = [np.unique(np.append(Z[:, j], ref[j])) for j in range(Z.shape[1])]
    vol = 0.0
    for idx in itertools.product(*[range(len(a) - 1) for a in axes]):
        lo = np.array([axes[j][i] for j, i in enumerate(idx)])
        hi = np.array([axes[j][i + 1] for j, i in enumerate(idx)])
        if (Z <= lo).all(axis=1).any():
            vol += float(np.prod(hi - lo))
    return vol


# ----------------------------------------------------------------- hand-computed


def test_mask_small_2d_with_duplicates():
    Y = np.array([[1, 5], [2, 2], [3, 1], [4, 4], [2, 2], [1, 6]], dtype=float)
    assert nondominated_mask(Y, [False, False]).tolist() == [True, True, True, False, True, False]


def test_mask_maximize_flags():
    Y = np.array([[10.0, 1.0], [8.0, 0.5], [12.0, 3.0], [12.0, 2.0]])  # maximize throughput, minimize cost
    assert nondominated_mask(Y, [True, False]).tolist() == [True, True, False, True]
    assert nondominated_mask(Y, True).tolist() == [False, False, True, False]


def test_mask_3d_hand():
    Y = np.array([[1, 2, 3], [2, 1, 3], [3, 3, 1], [2, 2, 3], [1, 2, 3], [3, 3, 3]], dtype=float)
    assert nondominated_mask(Y).tolist() == [True, True, True, False, True, False]


def test_nonfinite_rows_excluded():
    Y = np.array([[np.nan, 0.0], [1.0, 1.0], [-np.inf, -np.inf], [2.0, 0.5], [np.inf, 0.0]])
    assert nondominated_mask(Y).tolist() == [False, True, False, True, False]
    assert pareto_rank(Y).tolist() == [1, 0, 1, 0, 1]
    assert hypervolume(Y, [3.0, 3.0]) == pytest.approx(2 * 2 + 1 * 0.5)
    cd = crowding_distance(Y)
    assert cd[0] == 0 and cd[2] == 0 and np.isinf(cd[1]) and np.isinf(cd[3])


def test_empty_and_single():
    assert nondominated_mask(np.zeros((0, 3))).shape == (0,)
    assert nondominated_mask(np.array([[1.0, 2.0, 3.0]])).tolist() == [True]
    assert hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0


def test_rank_hand():
    Y = np.array([[1, 1], [2, 2], [3, 3], [1, 3], [3, 1], [2, 2]], dtype=float)
    assert pareto_rank(Y).tolist() == [0, 1, 2, 1, 1, 1]


def test_hypervolume_box_and_staircase():
    assert hypervolume(np.array([[1.0, 2.0, 3.0]]), [2.0, 4.0, 7.0]) == pytest.approx(1 * 2 * 4)
    assert hypervolume(np.array([[1.0, 1.0, 1.0, 1.0]]), [3.0, 2.0, 2.0, 5.0]) == pytest.approx(2 * 1 * 1 * 4)
    stair = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.5, 3.5]])
    assert hypervolume(stair, [4.0, 4.0]) == pytest.approx(1 * 1 + 1 * 2 + 1 * 3)
    # two overlapping boxes in 3-D: 2·2·2 + 2·2·2 − 1·1·2 (overlap)
    two = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert hypervolume(two, [2.0, 2.0, 2.0]) == pytest.approx(4 + 4 - 2)


def test_hypervolume_maximize_and_outside_ref():
    Y = np.array([[3.0, 1.0], [1.0, 3.0], [0.5, 0.5]])
    assert hypervolume(Y, [0.0, 0.0], maximize=[True, True]) == pytest.approx(3 + 3 - 1)
    assert hypervolume(np.array([[5.0, 0.0]]), [4.0, 4.0]) == 0.0  # not better than ref in x


def test_crowding_hand():
    Y = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    cd = crowding_distance(Y)
    assert np.isinf(cd[0]) and np.isinf(cd[3])
    assert cd[1] == pytest.approx(3 / 4 + 3 / 4)
    assert cd[2] == pytest.approx(3 / 4 + 3 / 4)


def test_bad_shapes():
    with pytest.raises(ValueError):
        nondominated_mask(np.zeros(3))
    with pytest.raises(ValueError):
        nondominated_mask(np.zeros((3, 2)), [True])
    with pytest.raises(ValueError):
        hypervolume(np.zeros((3, 2)), [1.0])


# ----------------------------------------------------------------- properties vs brute force

small_int_matrix = st.integers(1, 5).flatmap(
    lambda m: hnp.arrays(np.float64, st.tuples(st.integers(1, 80), st.just(m)), elements=st.integers(0, 6).map(float))
)


@settings(max_examples=150, deadline=None)
@given(small_int_matrix, st.data())
def test_mask_matches_brute(Y, data):
    maximize = data.draw(st.lists(st.booleans(), min_size=Y.shape[1], max_size=Y.shape[1]))
    Z = np.where(maximize, -Y, Y)
    assert nondominated_mask(Y, maximize).tolist() == brute_mask(Z).tolist()


@settings(max_examples=80, deadline=None)
@given(small_int_matrix)
def test_rank_matches_brute(Y):
    assert pareto_rank(Y).tolist() == brute_rank(Y).tolist()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda m: hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(m)), elements=st.integers(0, 5).map(float))
    )
)
def test_hypervolume_matches_grid(Y):
    ref = np.full(Y.shape[1], 5.0)
    assert hypervolume(Y, ref) == pytest.approx(brute_hv(Y, ref), rel=1e-12, abs=1e-12)


def test_3d_large_random_vs_brute():
    rng = np.random.default_rng(3)
    for n in (500, 3000):
        Y = np.round(rng.random((n, 3)), 2)  # many ties
        assert nondominated_mask(Y).tolist() == brute_mask(Y).tolist()


# ----------------------------------------------------------------- speed and moocore cross-check


def concave_front(n: int, m: int, rng: np.random.Generator, share: float = 0.1) -> np.ndarray:
    """`share` of the points on the unit sphere's positive orthant (minimisation front), the rest behind it."""
    S = np.abs(rng.standard_normal((n, m)))
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    k = int(n * share)
    S[k:] *= 1 + rng.random((n - k, 1))
    return S


def test_hypervolume_3d_1000_front():
    """Speed: benchmarks/pareto_speed.py; here only the value's bounds."""
    rng = np.random.default_rng(0)
    F = concave_front(1000, 3, rng, share=1.0)
    hv = hypervolume(F, [1.1, 1.1, 1.1])
    assert 0 < hv < 1.1**3


def test_mask_100k_3d():
    rng = np.random.default_rng(1)
    Y = concave_front(100_000, 3, rng)
    mask = nondominated_mask(Y)
    assert mask[:10_000].all() and mask.sum() < 12_000  # a few points just behind the sphere survive


def test_cross_check_moocore():
    moocore = pytest.importorskip("moocore")
    rng = np.random.default_rng(2)
    for m in (2, 3, 4):
        for Y in (rng.random((3000, m)), concave_front(3000, m, rng), np.round(rng.random((2000, m)), 1)):
            maximize = [bool(i % 2) for i in range(m)]
            ours = nondominated_mask(Y, maximize)
            theirs = moocore.is_nondominated(Y, maximise=maximize, keep_weakly=True)
            assert ours.tolist() == theirs.tolist()
            if m <= 3 or len(Y) <= 2000:
                ref = np.where(maximize, Y.min(axis=0) - 0.1, Y.max(axis=0) + 0.1)
                F = Y[ours][:300]
                assert hypervolume(F, ref, maximize) == pytest.approx(
                    moocore.hypervolume(F, ref=ref, maximise=maximize), rel=1e-9
                )
        Y = np.round(rng.random((2000, m)), 1)
        assert pareto_rank(Y).tolist() == moocore.pareto_rank(Y).tolist()


def test_large_sets_with_ties_use_the_prefilter_exactly():
    """≥ 50,000 rows go through the anchor pre-filter; results must equal the plain path on a subset."""
    from dse.pareto import _unique_rows, _nd_sorted

    rng = np.random.default_rng(9)
    for m in (2, 3, 4):
        Y = np.round(rng.random((60_000, m)), 2)
        Y[:100] = Y[100:200]  # exact duplicates
        fast = nondominated_mask(Y)
        U, R, inv = _unique_rows(Y)
        plain = _nd_sorted(U, R)[inv]
        assert fast.tolist() == plain.tolist()
        assert fast[:100].tolist() == fast[100:200].tolist()


def test_rank_max_rows_stops_early():
    rng = np.random.default_rng(4)
    Y = rng.random((3000, 3))
    full = pareto_rank(Y)
    part = pareto_rank(Y, max_rows=100)
    k = part.max()
    assert (part[full < k] == full[full < k]).all() and (part[full >= k] == k).all()
    assert (full < k).sum() >= 100


@pytest.mark.parametrize("m", [3, 4])
@pytest.mark.parametrize("max_rows", [None, 1, 50, 150])
def test_small_rank_matches_front_peeling(monkeypatch, m, max_rows):
    """The all-pairs rank of small sets (NSGA-II populations) equals the divide-and-conquer front peeling,
    duplicates, ties and non-finite rows included, and so does the `max_rows` cut."""
    import dse.pareto as P

    rng = np.random.default_rng(m * 100 + (max_rows or 0))
    Y = rng.integers(0, 6, size=(300, m)).astype(float)  # coarse values: many ties and duplicates
    Y[::37] = np.nan
    Y[5] = Y[6]
    small = P.pareto_rank(Y, [True] + [False] * (m - 1), max_rows=max_rows)
    monkeypatch.setattr(P, "_SMALL_RANK", 0)
    assert np.array_equal(small, P.pareto_rank(Y, [True] + [False] * (m - 1), max_rows=max_rows))


def test_crowding_by_group_is_crowding_per_group():
    """`crowding_distance_by_group` gives, bit for bit, `crowding_distance` of each group's rows (groups of one,
    two and many rows, ties, a group with zero span in an objective)."""
    from dse.pareto import crowding_distance_by_group

    rng = np.random.default_rng(4)
    Y = rng.integers(0, 20, size=(200, 3)).astype(float) * 0.37
    group = rng.integers(0, 12, 200)
    group[group == 11] = 40  # a lone group label far away
    Y[group == 3, 1] = 5.0  # zero span in one objective
    group[0], group[1] = 50, 50  # a group of two
    want = np.zeros(200)
    for g in np.unique(group):
        want[group == g] = crowding_distance(Y[group == g])
    got = crowding_distance_by_group(Y, group)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("small", [True, False])
def test_rank_of_continuous_3d_sets_is_brute_force(monkeypatch, small):
    """Ranks of a 3-objective set with distinct values (300 rows: fronts peeled as subsets, whose rank ties
    come from the whole set) are those of the definition: one more than the largest rank among a row's
    dominators. (Front peeling used to mix divide-and-conquer segments when a subset's z ranks exceeded
    its size, ranking some rows one front too low.)"""
    import dse.pareto as P

    if not small:
        monkeypatch.setattr(P, "_SMALL_RANK", 0)
    rng = np.random.default_rng(11)
    Z = rng.random((300, 3)) * [1.0, 10.0, 100.0]
    rank = P.pareto_rank(Z)
    dom = (Z[None, :, :] <= Z[:, None, :]).all(axis=2) & (Z[None, :, :] < Z[:, None, :]).any(axis=2)
    want = np.full(300, -1)
    for _ in range(300):  # fixed point of rank = 1 + max rank of dominators
        for i in range(300):
            d = np.flatnonzero(dom[i])
            want[i] = 0 if d.size == 0 else want[d].max() + 1
    assert np.array_equal(rank, want)
