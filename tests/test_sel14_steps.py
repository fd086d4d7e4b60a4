"""The study loop's cheaper steps (issue 15, session 44): the all-pairs ranks compared as 16-bit dense ranks, the
survival order without `pareto_rank`'s and `crowding_distance`'s checks, the crowding distance of every objective at
once, and the variation on the population's scale taken once,
each against a plain reference on inputs with ties, duplicate rows, signed zeros and non-finite values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dse.pareto import _crowding_finite, _rank_small, crowding_distance, pareto_rank
from dse.study.samplers import PM_ETA, SBX_ETA, ArrayNSGAII, survival_order

from _objectives import float_bits, tied_objectives  # noqa: E402
from test_loop6_loop import _datacenter_space  # noqa: E402


def _ranks(Z: np.ndarray, max_rows: int | None = None) -> np.ndarray:
    """Non-domination ranks by the definition (finite minimisation rows), fronts peeled until `max_rows` rows are
    ranked; the rest share the next rank."""
    n = len(Z)
    rank = np.full(n, -1)
    left = list(range(n))
    r = done = 0
    while left:
        if max_rows is not None and done >= max_rows:
            break
        front = [i for i in left if not any((Z[k] <= Z[i]).all() and (Z[k] < Z[i]).any() for k in left)]
        rank[front] = r
        done += len(front)
        left = [i for i in left if i not in front]
        r += 1
    rank[rank < 0] = r
    return rank


def _crowding(F: np.ndarray) -> np.ndarray:
    """Crowding distance of finite rows, one objective at a time (the loop `crowding_distance` ran)."""
    k, m = F.shape
    dist = np.zeros(k)
    if k <= 2:
        return np.full(k, np.inf)
    for j in range(m):
        order = np.argsort(F[:, j], kind="stable")
        v = F[order, j]
        span = v[-1] - v[0]
        d = np.zeros(k)
        d[0] = d[-1] = np.inf
        if span > 0:
            d[1:-1] = (v[2:] - v[:-2]) / span
        dist[order] += d
    return dist


def _survival(F: np.ndarray, cv: np.ndarray, keep: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NSGA-II survival order written plainly: feasible rows by rank, then crowding (per front; only the first
    front's when it alone holds `keep` rows), infeasible ones by dense rank of their violation, failed ones last."""
    n = len(F)
    ok = np.isfinite(F).all(axis=1) & np.isfinite(cv)
    feas = ok & (cv <= 0)
    rank = np.zeros(n, dtype=np.int64)
    crowd = np.zeros(n)
    top = 0
    fi = np.flatnonzero(feas)
    if fi.size:
        r = _ranks(F[fi], keep)
        rank[fi] = r
        fronts = [0] if keep is not None and (r == 0).sum() >= keep else sorted(set(r.tolist()))
        for f in fronts:
            rows = fi[r == f]
            crowd[rows] = _crowding(F[rows])
        top = int(r.max()) + 1
    inf_ = np.flatnonzero(ok & ~feas)
    values = sorted(set(cv[inf_].tolist()))
    for i in inf_:
        rank[i] = top + values.index(cv[i])
    top += len(values)
    rank[~ok] = top
    order = sorted(range(n), key=lambda i: (rank[i], -crowd[i], i))
    return np.array(order, dtype=np.int64), rank, crowd


@pytest.mark.parametrize("seed", range(6))
def test_rank_small_is_the_definition(seed):
    """16-bit dense ranks compare as the values do: ties, duplicate rows, signed zeros, huge and tiny values."""
    rng = np.random.default_rng(seed)
    for t in range(40):
        n, m = int(rng.integers(1, 60)), int(rng.integers(3, 5))
        Z = tied_objectives(rng, t, n, m)
        if t % 5 == 0:
            Z[rng.random((n, m)) < 0.2] = rng.choice([1e300, -1e300, 5e-324, -0.0])
        for max_rows in (None, 1, n // 3, n):
            assert _rank_small(Z, max_rows).tolist() == _ranks(Z, max_rows).tolist()
        assert pareto_rank(Z).tolist() == _ranks(Z).tolist()


def test_rank_small_of_the_most_rows():
    rng = np.random.default_rng(7)
    Z = rng.integers(0, 30, (400, 3)).astype(float)  # (400 rows: dense ranks up to 399 in int16)
    Z[:, 2] = -Z[:, 0] - Z[:, 1] + rng.integers(0, 3, 400)
    assert _rank_small(Z, None).tolist() == _ranks(Z).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_crowding_of_every_objective_at_once_is_one_at_a_time(seed):
    rng = np.random.default_rng(seed)
    for t in range(200):
        n, m = int(rng.integers(3, 40)), int(rng.integers(1, 5))
        F = tied_objectives(rng, t, n, m)
        if t % 7 == 0:
            F[:, -1] = 3.0  # an objective every row ties on (a range of 0)
        if t % 11 == 0:
            F[rng.random(n) < 0.3, 0] = 0.0  # 0.0 and -0.0 ties: gaps of -0.0
        want = _crowding(F)
        assert np.array_equal(float_bits(_crowding_finite(F)), float_bits(want))
        assert np.array_equal(float_bits(crowding_distance(F)), float_bits(want))


@pytest.mark.parametrize("seed", range(8))
def test_survival_order_is_the_plain_one(seed):
    """Order, ranks and crowding bit for bit, with `keep` or without, on populations with ties, duplicate rows, signed
    zeros, infeasible rows (tied violations), failed rows (NaN, inf in objectives or violation)."""
    rng = np.random.default_rng(seed)
    for t in range(60):
        n, m = int(rng.integers(1, 70)), int(rng.integers(2, 4)) if t % 4 else 3
        F = tied_objectives(rng, t, n, m)
        cv = np.where(rng.random(n) < 0.7, 0.0, rng.integers(1, 4, n) / 2.0)
        if t % 3 == 0:
            F[rng.random(n) < 0.1, int(rng.integers(0, m))] = rng.choice([np.nan, np.inf, -np.inf])
            cv[rng.random(n) < 0.05] = rng.choice([np.nan, np.inf])
        for keep in (None, 1, max(1, n // 4), n // 2 + 1, n):
            got = survival_order(F, cv, keep=keep)
            want = _survival(F, cv, keep)
            if keep is None:
                assert got[0].tolist() == want[0].tolist()
                assert got[1].tolist() == want[1].tolist()
                assert np.array_equal(float_bits(got[2]), float_bits(want[2]))
            else:  # the first `keep` rows of the order, their rank and crowding
                top = got[0][:keep]
                assert top.tolist() == want[0][:keep].tolist()
                assert got[1][top].tolist() == want[1][top].tolist()
                assert np.array_equal(float_bits(got[2][top]), float_bits(want[2][top]))


@pytest.mark.parametrize("seed", range(4))
def test_tournament_is_rank_then_crowding_then_first_drawn(seed):
    """The winners from the same draws: ties of rank and crowding go to the first drawn (inf crowding, signed
    zeros)."""
    ga = ArrayNSGAII(_datacenter_space(), population_size=50)
    rng = np.random.default_rng(seed)
    for t in range(50):
        k = int(rng.integers(1, 50))
        ga.X = np.zeros((k, ga.codec.width))
        ga.rank = rng.integers(0, 3, k)
        ga.crowd = rng.choice([0.0, -0.0, 0.5, 1.25, np.inf], k)
        a, b = np.random.default_rng(t), np.random.default_rng(t)
        got = ga._tournament(a, 300)
        x, y = b.integers(0, k, 300), b.integers(0, k, 300)
        wins = [(ga.rank[i], -ga.crowd[i]) <= (ga.rank[j], -ga.crowd[j]) for i, j in zip(x, y)]
        assert got.tolist() == np.where(wins, x, y).tolist()
        c = np.random.default_rng(t + 100)
        both = ga._tournaments(c, 120)
        c = np.random.default_rng(t + 100)
        assert [p.tolist() for p in both] == [ga._tournament(c, 120).tolist(), ga._tournament(c, 120).tolist()]


def _sbx_pm_session43(ga: ArrayNSGAII, rng: np.random.Generator, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """`ArrayNSGAII._sbx_pm` as session 43 left it (both parents scaled apart, the choices rounded after
    `from_scale`): the children must be these, bit for bit."""
    codec = ga.codec
    n, d = A.shape
    lo, hi, num = codec.scale_bounds()
    U, V = codec.to_scale(A), codec.to_scale(B)
    R = rng.random((5, n * d))
    pair = np.repeat(rng.random(n) < ga.crossover_prob, d)
    swap = pair & (R[0] < ga.swapping_prob)
    numf = np.tile(num, n)
    i = np.flatnonzero(swap & numf & (np.abs(U.ravel() - V.ravel()) > 1e-14))
    C = np.ascontiguousarray(U)
    flat = C.ravel()
    if i.size:
        u, v, j = flat[i], V.ravel()[i], i % d
        y1, y2, lo_i, hi_i = np.minimum(u, v), np.maximum(u, v), lo[j], hi[j]
        span = y2 - y1
        side = R[2, i] < 0.5
        e = SBX_ETA + 1.0
        beta = 1.0 + 2.0 * np.where(side, y1 - lo_i, hi_i - y2) / span
        alpha = 2.0 - beta ** -e
        ra = R[1, i] * alpha
        betaq = np.where(ra <= 1.0, ra, 1.0 / (2.0 - ra)) ** (1.0 / e)
        c = 0.5 * (y1 + y2) + np.where(side, -0.5, 0.5) * betaq * span
        flat[i] = np.minimum(np.maximum(c, lo_i), hi_i)
    k = np.flatnonzero(swap & ~numf)
    if k.size:
        flat[k] = V.ravel()[k]
    m = np.flatnonzero((R[3] < ga.mutation_prob) & ~np.isnan(flat))
    if m.size:
        x, r, j = flat[m], R[4, m], m % d
        lo_m, hi_m = lo[j], hi[j]
        width = hi_m - lo_m
        e = PM_ETA + 1.0
        dq = np.where(r < 0.5, (2 * r + (1 - 2 * r) * (1 - (x - lo_m) / width) ** e) ** (1.0 / e) - 1.0,
                      1.0 - (2 * (1 - r) + 2 * (r - 0.5) * (1 - (hi_m - x) / width) ** e) ** (1.0 / e))
        flat[m] = np.minimum(np.maximum(x + dq * width, lo_m), hi_m)
    X = codec.from_scale(C)
    cat = np.flatnonzero(~num)
    if cat.size:
        X[:, cat] = np.minimum(np.maximum(np.rint(X[:, cat]), 0.0), codec.choice_counts()[cat] - 1.0) + 0.0
    return X


@pytest.mark.parametrize("seed", range(6))
def test_variation_on_the_population_scale_is_bit_for_bit(seed):
    """Children bred from the population scaled once (its rows gathered per parent) are those of both parents scaled
    apart, bit for bit (log knobs, steps, ints, choices, a conditional knob's NaN), and so are `_sbx_pm`'s."""
    space = _datacenter_space()
    ga = ArrayNSGAII(space, population_size=40, mutation_prob=0.3 if seed % 2 else None)
    codec = ga.codec
    rng = np.random.default_rng(seed)
    P, _ = codec.canonical(codec.random(rng, 97), rng)
    p1, p2 = rng.integers(0, 97, 250), rng.integers(0, 97, 250)
    p2[::9] = p1[::9]  # identical parents: no crossover there
    want = _sbx_pm_session43(ga, np.random.default_rng(seed + 50), P[p1], P[p2])
    U = codec.to_scale(P)
    got = ga._vary(np.random.default_rng(seed + 50), U[p1], U[p2])
    assert np.array_equal(float_bits(got), float_bits(want))
    again = ga._sbx_pm(np.random.default_rng(seed + 50), P[p1], P[p2])
    assert np.array_equal(float_bits(again), float_bits(want))
    assert not math.isnan(float(np.nansum(got)))


def test_result_cache_by_blocks_is_a_dict_of_columns():
    """The store kept as one block per type: every column, its type and its gathered rows are those of one array per
    column (strings as objects, lists in object cells, a later batch's other types converted, growth past the first
    capacity, repeated keys keeping their first row)."""
    from dse.study.cache import ResultCache

    rng = np.random.default_rng(0)
    cache = ResultCache(rows=0)
    ref: dict[str, list] = {}
    index: dict[bytes, int] = {}
    rows = 0
    for b in range(30):
        n = int(rng.integers(1, 150))
        cols = {"y": rng.normal(size=n), "k": rng.integers(0, 9, n), "feasible": rng.random(n) < 0.5,
                "reason": np.array([str(i % 3) for i in range(n)]), "lists": np.empty(n, dtype=object),
                "z": rng.integers(0, 5, n).astype(float)}
        cols["lists"].fill([b, "x"])
        if b % 5 == 4:  # other types than the store's: converted as an assignment converts them
            cols["k"] = cols["k"].astype(np.int32)
            cols["z"] = cols["z"].astype(np.int64)
        keys = [bytes([i % 7, b % 4]) for i in range(n)]
        cache.add(keys, cols)
        for k, v in cols.items():
            ref.setdefault(k, []).extend(v.tolist())
        for i, key in enumerate(keys):
            index.setdefault(key, rows + i)
        rows += n
    assert cache.rows == rows and cache.index == index
    assert list(cache.store) == ["y", "k", "feasible", "reason", "lists", "z"]
    types = {"y": np.float64, "k": np.int64, "feasible": np.bool_, "reason": object, "lists": object, "z": np.float64}
    for k, col in cache.store.items():
        assert col.dtype == np.dtype(types[k]) and col[:rows].tolist() == ref[k], k
    at = rng.integers(0, rows, 77)
    got = cache.rows_of(at, ["z", "reason", "y"])
    assert list(got) == ["z", "reason", "y"]
    for k, v in got.items():
        assert v.dtype == cache.store[k].dtype and v.tolist() == [ref[k][i] for i in at]
    assert {k: v.tolist() for k, v in cache.gather(at).items()} == {k: [ref[k][i] for i in at] for k in ref}
    assert cache.same_types({k: v[:3] for k, v in cache.store.items()})
    assert not cache.same_types({"y": np.zeros(3, dtype=np.float32)})
    assert cache.same_types({"k": np.zeros(3, dtype=np.int64), "y": np.zeros(3)})  # (another order)


@pytest.mark.parametrize("n,m", [(1, 3), (2, 3), (7, 2), (150, 3), (401, 3), (900, 4)])
def test_public_finite_forms_equal_the_checked_ones(n, m):
    """`pareto_rank_finite` / `crowding_distance_finite` (what the sampler calls on finite rows) give `pareto_rank` /
    `crowding_distance`'s values bit for bit, on both sides of the all-pairs size and for sets of one or two rows."""
    from dse.pareto import crowding_distance_finite, pareto_rank_finite

    rng = np.random.default_rng(n * 10 + m)
    F = np.round(rng.normal(size=(n, m)), 1)  # (ties)
    for keep in (None, max(1, n // 3)):
        assert np.array_equal(pareto_rank_finite(F, max_rows=keep), pareto_rank(F, max_rows=keep))
    got, want = crowding_distance_finite(F), crowding_distance(F)
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
