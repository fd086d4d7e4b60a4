"""Pareto tools in pure numpy: non-dominated mask, non-domination rank, exact hypervolume, crowding distance.

Conventions: `Y` is an (n, m) array of objective values, `maximize` one bool per column. A row dominates
another when it is no worse in every objective and strictly better in one; exact duplicates do not
dominate each other, so all copies of a front point are kept. Rows with NaN or ±inf are excluded:
never on the front, ranked last, contributing nothing to hypervolume.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np

__all__ = ["nondominated_mask", "pareto_rank", "pareto_rank_finite", "hypervolume", "crowding_distance",
           "crowding_distance_finite", "crowding_distance_by_group", "to_minimization"]

_BLOCK = 64  # points compared all-against-all at the bottom of the 3-D divide and conquer
# up to this many rows (m >= 3), ranks come from one all-pairs domination matrix (n*n*m comparisons, ~1 ms at
# 400 rows) instead of peeling fronts with the divide and conquer, whose fixed cost per front dominates for an
# NSGA-II population (parents + offspring: a few hundred rows, ~10 fronts)
_SMALL_RANK = 400


def to_minimization(Y: np.ndarray, maximize: Sequence[bool] | bool | None = None) -> np.ndarray:
    """Return a float copy of `Y` (n×m) with maximised columns negated, so that smaller is better everywhere."""
    Z = np.array(Y, dtype=float, copy=True)
    if Z.ndim != 2:
        raise ValueError(f"objective matrix must be 2-D (n points × m objectives), got shape {Z.shape}")
    m = Z.shape[1]
    if maximize is None:
        flags = np.zeros(m, dtype=bool)
    elif isinstance(maximize, (bool, np.bool_)):
        flags = np.full(m, bool(maximize))
    else:
        flags = np.asarray(list(maximize), dtype=bool)
        if flags.shape != (m,):
            raise ValueError(f"maximize has {flags.size} entries but there are {m} objectives")
    if flags.any():
        Z[:, flags] *= -1.0
    return Z


def _dense_ranks(col: np.ndarray) -> np.ndarray:
    """Integer ranks 0..k-1 of a column with ties sharing a rank (order-preserving compression)."""
    _, inv = np.unique(col, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def _unique_rows(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of Z in lexicographic order, their per-column dense ranks, and each row's distinct index.

    Sorting one packed int64 key of column ranks is several times faster than a float lexsort.
    """
    R = np.column_stack([_dense_ranks(Z[:, j]) for j in range(Z.shape[1])])
    sizes = R.max(axis=0) + 1
    if float(np.prod(sizes.astype(float))) < 2.0**62:
        key = R[:, 0].copy()
        for j in range(1, Z.shape[1]):
            key = key * sizes[j] + R[:, j]
        order = np.argsort(key, kind="stable")
        skey = key[order]
        new = np.ones(len(Z), dtype=bool)
        new[1:] = skey[1:] != skey[:-1]
    else:
        order = np.lexsort(R.T[::-1])
        S = R[order]
        new = np.ones(len(Z), dtype=bool)
        new[1:] = np.any(S[1:] != S[:-1], axis=1)
    group = np.cumsum(new) - 1
    inverse = np.empty(len(Z), dtype=np.int64)
    inverse[order] = group
    first = order[new]
    return Z[first], R[first], inverse


def _nd_2d(U: np.ndarray) -> np.ndarray:
    """Mask of non-dominated rows among distinct, lexicographically sorted 2-D rows: O(n) after the sort."""
    y = U[:, 1]
    prev_min = np.minimum.accumulate(np.concatenate(([np.inf], y[:-1])))
    return y < prev_min  # distinct rows sorted by (x, y): dominated iff an earlier row has y' <= y


def _nd_3d(U: np.ndarray, R: np.ndarray | None = None) -> np.ndarray:
    """Non-dominated rows among distinct lexicographically sorted 3-D rows, by offline divide and conquer.

    Any dominator of row i precedes it in lexicographic order, so i is dominated iff some earlier row j
    has y_j <= y_i and z_j <= z_i. Bottom blocks are compared all-against-all; above them, each level of a
    bottom-up merge answers "min z over the left half among rows with y <= y_i" for every right-half row
    with one sort and one running minimum over the whole array (segments kept apart by offsets).
    """
    n = len(U)
    y = R[:, 1] if R is not None else _dense_ranks(U[:, 1])
    z = R[:, 2] if R is not None else _dense_ranks(U[:, 2])
    # all-against-all within blocks of _BLOCK consecutive rows
    pad = (-n) % _BLOCK
    big = np.iinfo(np.int64).max // 4
    yb = np.concatenate((y, np.full(pad, big))).reshape(-1, _BLOCK)
    zb = np.concatenate((z, np.full(pad, big))).reshape(-1, _BLOCK)
    earlier = np.tri(_BLOCK, k=-1, dtype=bool)  # earlier[i, j]: j precedes i
    flat = np.zeros(yb.size, dtype=bool)
    for s in range(0, len(yb), 512):
        ys, zs = yb[s : s + 512], zb[s : s + 512]
        dom = (ys[:, None, :] <= ys[:, :, None]) & (zs[:, None, :] <= zs[:, :, None]) & earlier
        flat[s * _BLOCK : (s + len(ys)) * _BLOCK] = dom.any(axis=2).reshape(-1)
    dominated = flat[:n].copy()
    pos = np.arange(n, dtype=np.int64)
    order_y = np.lexsort((pos, y))  # rows by (y, position): ties put earlier rows first
    # z ranks may exceed n (ranks of a superset, as `pareto_rank` passes them while peeling fronts): the
    # sentinel and the segments' spacing come from the largest z, so that segments never mix
    top = int(z.max()) + 1 if n else 0
    h = _BLOCK
    while h < n:
        seg = order_y // (2 * h)
        if n // (2 * h) < 65536:
            seg = seg.astype(np.uint16)  # numpy radix-sorts 16-bit keys: O(n)
        level = order_y[np.argsort(seg, kind="stable")]  # by (segment, y, position)
        lseg = level // (2 * h)
        is_right = (level // h) % 2 == 1
        offset = lseg * (top + 1)
        vals = np.where(is_right, top, z[level]) - offset
        run = np.minimum.accumulate(vals)
        hit = is_right & (run <= z[level] - offset)
        dominated[level[hit]] = True
        h *= 2
    return ~dominated


def _nd_blockwise(U: np.ndarray, block: int = 256) -> np.ndarray:
    """Non-dominated rows among distinct lexicographically sorted rows (any m): block-wise filtering.

    Rows are taken in lexicographic order, so front rows found so far are never dominated by later rows;
    each block is filtered against the running front and then against itself. O(n·F·m).
    """
    n = len(U)
    keep = np.zeros(n, dtype=bool)
    front = np.empty((0, U.shape[1]))
    for s in range(0, n, block):
        B = U[s : s + block]
        alive = np.ones(len(B), dtype=bool)
        for f in range(0, len(front), 2048):
            F = front[f : f + 2048]
            idx = np.flatnonzero(alive)
            if idx.size == 0:
                break
            dom = np.all(F[None, :, :] <= B[idx, None, :], axis=2).any(axis=1)
            alive[idx[dom]] = False
        idx = np.flatnonzero(alive)
        if idx.size > 1:
            C = B[idx]
            le = np.all(C[None, :, :] <= C[:, None, :], axis=2)  # le[i, j]: j <= i everywhere
            np.fill_diagonal(le, False)  # rows are distinct, so <= everywhere means dominates
            alive[idx[le.any(axis=1)]] = False
        keep[s : s + len(B)] = alive
        front = np.concatenate((front, B[alive]))
    return keep


def _nd_sorted(U: np.ndarray, R: np.ndarray | None = None) -> np.ndarray:
    """Non-dominated mask of distinct, lexicographically sorted rows, by the fastest method for their m."""
    m = U.shape[1]
    if m == 1:
        return U[:, 0] == U[0, 0]
    if m == 2:
        return _nd_2d(U)
    if m == 3:
        return _nd_3d(U, R)
    return _nd_blockwise(U)


def _dominated_by_anchors(Z: np.ndarray, k: int = 8) -> np.ndarray:
    """Rows strictly dominated by one of a few good rows (argmins of positive weighted sums): a cheap,
    exact pre-filter that removes most rows of large sets before sorting."""
    n, m = Z.shape
    cols = [np.ascontiguousarray(Z[:, j]) for j in range(m)]
    lo = np.array([c.min() for c in cols])
    span = np.array([c.max() for c in cols]) - lo
    w = np.random.default_rng(12345).dirichlet(np.ones(m), size=k) + 1e-3
    w = w / np.where(span > 0, span, 1.0)  # weights on normalised objectives
    anchors = Z[np.unique(np.argmin(Z @ w.T, axis=0))]
    dom = np.zeros(n, dtype=bool)
    for a in anchors:
        ge = cols[0] >= a[0]
        gt = cols[0] > a[0]
        for j in range(1, m):
            ge &= cols[j] >= a[j]
            gt |= cols[j] > a[j]
        dom |= ge & gt
    return dom


def _nd_min(Z: np.ndarray) -> np.ndarray:
    """Non-dominated mask of a finite minimisation matrix (duplicates of a front point all kept)."""
    n, m = Z.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    if n >= 50_000 and m >= 2:
        out = np.zeros(n, dtype=bool)
        rest = np.flatnonzero(~_dominated_by_anchors(Z))
        U, R, inverse = _unique_rows(Z[rest])
        out[rest] = _nd_sorted(U, R)[inverse]
        return out
    U, R, inverse = _unique_rows(Z)
    return _nd_sorted(U, R)[inverse]


def nondominated_mask(Y: np.ndarray, maximize: Sequence[bool] | bool | None = None) -> np.ndarray:
    """Boolean mask of the rows of `Y` (n×m) not dominated by any other row; non-finite rows are False.

    O(n log n) for m ≤ 2, O(n log² n) for m = 3, block-wise O(n·front·m) for m ≥ 4.
    """
    Z = to_minimization(Y, maximize)
    finite = np.isfinite(Z).all(axis=1)
    out = np.zeros(len(Z), dtype=bool)
    if finite.any():
        out[finite] = _nd_min(Z[finite])
    return out


def _rank_2d(U: np.ndarray) -> np.ndarray:
    """Ranks of distinct lexicographically sorted 2-D rows in O(n log n): each row joins the first front
    whose lowest y so far is above its own y (fronts' lowest y values stay sorted)."""
    lowest: list[float] = []
    out = np.empty(len(U), dtype=np.int64)
    for i, y in enumerate(U[:, 1].tolist()):
        r = bisect_right(lowest, y)
        if r == len(lowest):
            lowest.append(y)
        else:
            lowest[r] = y
        out[i] = r
    return out


def pareto_rank(Y: np.ndarray, maximize: Sequence[bool] | bool | None = None, *,
                max_rows: int | None = None) -> np.ndarray:
    """Non-domination rank of each row: 0 for the front, 1 for the front of the rest, and so on.

    Rows with NaN/inf get one more than the largest finite rank. m = 2: O(n log n); m ≥ 3: front-by-front
    peeling (each front costs one `nondominated_mask`; 10⁵ uniform 3-D rows have ~1,700 fronts). With
    `max_rows`, peeling stops once that many rows are ranked and the rest share the next rank (enough for
    "top N" selections).
    """
    Z = to_minimization(Y, maximize)
    finite = np.isfinite(Z).all(axis=1)
    if Z.shape[1] >= 3 and 0 < len(Z) <= _SMALL_RANK and finite.all():  # (an NSGA-II population: no copy of Z)
        return _rank_small(Z, max_rows)
    rank = np.full(len(Z), -1, dtype=np.int64)
    if finite.any() and Z.shape[1] >= 3 and finite.sum() <= _SMALL_RANK:
        rank[finite] = _rank_small(Z[finite], max_rows)
    elif finite.any():
        U, R, inverse = _unique_rows(Z[finite])
        if U.shape[1] == 2:
            urank = _rank_2d(U)
        else:
            weight = np.bincount(inverse, minlength=len(U))
            urank = np.full(len(U), -1, dtype=np.int64)
            remaining = np.arange(len(U))
            r, done = 0, 0
            while remaining.size:
                if max_rows is not None and done >= max_rows:
                    urank[remaining] = r
                    break
                keep = _nd_sorted(U[remaining], R[remaining])  # a subset of sorted distinct rows stays sorted
                urank[remaining[keep]] = r
                done += int(weight[remaining[keep]].sum())
                remaining = remaining[~keep]
                r += 1
        rank[finite] = urank[inverse]
    rank[~finite] = rank.max() + 1 if finite.any() else 0
    return rank


def pareto_rank_finite(Z: np.ndarray, *, max_rows: int | None = None,
                       dense: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """`pareto_rank` of rows already to minimise and all finite (e.g. an NSGA-II population's feasible rows), without
    its checks and copy: the same ranks. With `dense`, (ranks, each objective's values as dense ranks (an m x n int16
    matrix, ties sharing one; None where the ranks were not computed from them)): the dense ranks of any subset of the
    rows order them as their values do, ties included, so that a stable sort of those small integers (a radix sort)
    is the stable sort of the values (`crowding_distance_finite`'s `order`)."""
    if Z.shape[1] >= 3 and 0 < len(Z) <= _SMALL_RANK:
        return _rank_small(Z, max_rows, dense)
    rank = pareto_rank(Z, max_rows=max_rows)
    return (rank, None) if dense else rank


_OBJECTIVE_ROWS: dict[int, np.ndarray] = {}


def _objective_rows(m: int) -> np.ndarray:
    """np.arange(m)[:, None], the row index of an m-objective matrix's transpose (kept per m; never written)."""
    got = _OBJECTIVE_ROWS.get(m)
    if got is None:
        got = _OBJECTIVE_ROWS[m] = np.arange(m)[:, None]
        got.flags.writeable = False
    return got


def _rank_small(Z: np.ndarray, max_rows: int | None,
                dense: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """`pareto_rank` of a few hundred finite rows (minimisation) from the all-pairs domination matrix: a front
    is the rows no unranked row dominates (Deb et al. 2002's fast non-dominated sort, as array operations). With
    `dense`, (ranks, the objectives' dense ranks) (`pareto_rank_finite`)."""
    got = _rank_small_of(Z, max_rows)
    return got if dense else got[0]


def _rank_small_of(Z: np.ndarray, max_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """`_rank_small`'s (ranks, dense ranks)."""
    n, m = Z.shape
    # each objective's values as dense ranks (ties share one; int16: n <= _SMALL_RANK), so that the n*n comparisons
    # compare 16-bit integers (a quarter of float64's cost) with the same outcomes
    ZT = np.ascontiguousarray(Z.T)
    order = ZT.argsort(axis=1)
    obj = _objective_rows(m)
    S = ZT[obj, order]
    step = np.zeros((m, n), dtype=np.int16)
    np.not_equal(S[:, 1:], S[:, :-1], out=step[:, 1:])
    R = np.empty((m, n), dtype=np.int16)
    R[obj, order] = step.cumsum(axis=1, dtype=np.int16)
    c = R[0]
    le = c[None, :] <= c[:, None]  # le[i, k]: row k is no worse than row i in every objective
    for j in range(1, m):
        c = R[j]
        le &= c[None, :] <= c[:, None]
    # dom[i, k]: row k dominates row i: no worse everywhere, and row i is not no worse everywhere (k is strictly
    # better somewhere; True > False); duplicates do not dominate each other. One matrix of comparisons, not two.
    # The first front is the rows nothing dominates; the next ones (needed only when it holds fewer than
    # `max_rows`) from counts: dom as float32 0/1, so that a front's dominations are one matrix-vector product
    # (every count is a whole number below 2**24, exact in float32 whatever the order of the sums)
    dom = le > le.T
    dominated = np.logical_or.reduce(dom, axis=1)
    done = n - int(np.count_nonzero(dominated))
    if done == n or (max_rows is not None and done >= max_rows):  # (most NSGA-II generations: one front enough)
        return dominated.astype(np.int64), R  # (the front 0, every other row 1)
    current = ~dominated
    rank = np.full(n, -1, dtype=np.int64)
    rank[current] = 0
    r = 1
    domf = dom.astype(np.float32)
    count = domf.sum(axis=1)
    while True:
        count = count - domf @ current.astype(np.float32)
        current = (count == 0) & (rank < 0)
        if not current.any():
            break
        rank[current] = r
        done += int(current.sum())
        r += 1
        if max_rows is not None and done >= max_rows:
            break
    rank[rank < 0] = r
    return rank, R


# ---------------------------------------------------------------- hypervolume


class _Staircase:
    """Mutually non-dominated 2-D points (x ascending, y descending) with the area they dominate up to a reference."""

    def __init__(self, rx: float, ry: float):
        self.rx, self.ry = rx, ry
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.area = 0.0

    def insert(self, x: float, y: float) -> None:
        """Add a point (strictly inside the reference box) and update the dominated area by the area only the new
        point dominates: from x to the next point's x under the previous point's height, then under each point
        it now dominates (those are removed)."""
        xs, ys = self.xs, self.ys
        j = bisect_right(xs, x) - 1
        if j >= 0 and ys[j] <= y:
            return  # weakly dominated: area unchanged
        lo = bisect_left(xs, x)
        n = len(xs)
        top = ys[lo - 1] if lo else self.ry  # the staircase's height just left of x
        hi = lo
        gain = 0.0
        while hi < n and ys[hi] >= y:  # points at x' >= x with y' >= y: dominated by the new point
            gain += (xs[hi] - (xs[hi - 1] if hi > lo else x)) * (top - y)
            top = ys[hi]
            hi += 1
        gain += ((xs[hi] if hi < n else self.rx) - (xs[hi - 1] if hi > lo else x)) * (top - y)
        xs[lo:hi] = [x]
        ys[lo:hi] = [y]
        self.area += gain


def _hv2(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume (minimisation) of points already strictly better than `ref`."""
    if len(P) == 0:
        return 0.0
    P = P[np.lexsort((P[:, 1], P[:, 0]))]
    ymin = np.minimum.accumulate(P[:, 1])
    keep = np.concatenate(([True], P[1:, 1] < ymin[:-1]))
    P = P[keep]
    x_next = np.concatenate((P[1:, 0], [ref[0]]))
    return float(np.sum((x_next - P[:, 0]) * (ref[1] - P[:, 1])))


def _hv3(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact 3-D hypervolume by sweeping the last objective and keeping a 2-D staircase: O(n·front)."""
    if len(P) == 0:
        return 0.0
    P = P[np.argsort(P[:, 2], kind="stable")]
    stair = _Staircase(float(ref[0]), float(ref[1]))
    z_next = np.concatenate((P[1:, 2], [ref[2]]))
    vol = 0.0
    for (x, y, z), zn in zip(P.tolist(), z_next.tolist()):
        stair.insert(x, y)
        vol += stair.area * (zn - z)
    return vol


def _hv_rec(P: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume in any dimension by slicing the last objective down to the 3-D sweep."""
    m = P.shape[1]
    if m == 1:
        return float(ref[0] - P[:, 0].min()) if len(P) else 0.0
    if m == 2:
        return _hv2(P, ref)
    if m == 3:
        return _hv3(P, ref)
    P = P[np.argsort(P[:, -1], kind="stable")]
    w_next = np.concatenate((P[1:, -1], [ref[-1]]))
    vol = 0.0
    for k in range(len(P)):
        width = w_next[k] - P[k, -1]
        if width > 0:
            head = P[: k + 1, :-1]
            head = head[_nd_min(head)] if len(head) > 1 else head
            vol += _hv_rec(head, ref[:-1]) * width
    return vol


def hypervolume(Y: np.ndarray, ref: Sequence[float], maximize: Sequence[bool] | bool | None = None) -> float:
    """Exact volume of objective space dominated by `Y` and bounded by the reference point `ref`.

    `ref` is in the same units and directions as `Y` (for a maximised objective it is a lower bound).
    Rows not strictly better than `ref` in every objective, and non-finite rows, contribute nothing.
    Exact for any m; intended for m ≤ 4 (a 1,000-point 3-D front takes a few milliseconds).
    """
    Z = to_minimization(Y, maximize)
    r = to_minimization(np.asarray(ref, dtype=float).reshape(1, -1), maximize)[0]
    if r.shape[0] != Z.shape[1]:
        raise ValueError(f"reference point has {r.shape[0]} values but there are {Z.shape[1]} objectives")
    if not np.isfinite(r).all():
        raise ValueError("reference point must be finite")
    ok = np.isfinite(Z).all(axis=1) & (Z < r).all(axis=1)
    P = Z[ok]
    if len(P) == 0:
        return 0.0
    P = np.unique(P[_nd_min(P)], axis=0)
    return float(_hv_rec(P, r))


def crowding_distance(Y: np.ndarray, maximize: Sequence[bool] | bool | None = None) -> np.ndarray:
    """NSGA-II crowding distance of each row within the set `Y` (usually one front): larger = more isolated.

    Per objective, boundary rows get inf and inner rows the gap between their neighbours over the
    objective's range; summed over objectives. Non-finite rows get 0 and are ignored as neighbours.
    """
    Z = to_minimization(Y, maximize)
    n, m = Z.shape
    out = np.zeros(n)
    finite = np.isfinite(Z).all(axis=1)
    every = bool(finite.all())
    F = Z if every else Z[finite]
    k = len(F)
    if k == 0:
        return out
    dist = crowding_distance_finite(F)
    if every:  # (every row finite: `dist` is the result)
        return dist
    out[finite] = dist
    return out


def crowding_distance_finite(F: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """`crowding_distance` of rows already to minimise and all finite, without its checks: the same values (inf for
    each row of a set of at most two). `order`: each objective's stable sort of the rows (m x k; e.g. of their dense
    ranks, `pareto_rank_finite`), when known."""
    return np.full(len(F), np.inf) if len(F) <= 2 else _crowding_finite(F, order)


def _crowding_finite(F: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """`crowding_distance` of more than two finite rows (minimisation), every objective at once: per objective a
    stable sort (`order`, if given), the boundary rows inf and each inner row the gap between its neighbours over the
    objective's range (0 when the range is 0), summed over the objectives in their order (the values and sums of one
    objective at a time, bit for bit: x + 0.0 is x for these non-negative gaps)."""
    k, m = F.shape
    ZT = np.ascontiguousarray(F.T)
    if order is None:
        order = np.argsort(ZT, axis=1, kind="stable")
    obj = _objective_rows(m)
    V = ZT[obj, order]
    span = V[:, -1:] - V[:, :1]
    d = np.zeros((m, k))
    np.divide(V[:, 2:] - V[:, :-2], span, out=d[:, 1:-1], where=span > 0)
    d[:, 0] = d[:, -1] = np.inf
    D = np.empty((m, k))
    D[obj, order] = d  # back to row order
    dist = D[0] + 0.0  # (as 0.0 + each objective's gaps in turn: a gap of -0.0, from -0.0 after 0.0, is 0.0)
    for j in range(1, m):  # summed over objectives in their order
        dist += D[j]
    return dist


def crowding_distance_by_group(Y: np.ndarray, group: np.ndarray) -> np.ndarray:
    """`crowding_distance` of each row within its group (e.g. its front), for every group at once: the same
    values as calling it per group on the rows in their order (rows of finite minimisation objectives)."""
    Z = np.asarray(Y, dtype=float)
    n, m = Z.shape
    group = np.asarray(group)
    dist = np.zeros(n)
    if n == 0:
        return dist
    # per objective (a row of Z.T): rows by group, then value, ties in row order (a stable sort by value, then a
    # stable sort by group); every objective's order then has the same groups in the same places. `flat`: each
    # sorted place's index into Z.T's elements
    ZT = np.ascontiguousarray(Z.T)
    off = (np.arange(m, dtype=np.int64) * n)[:, None]
    by_value = np.argsort(ZT, axis=1, kind="stable") + off
    flat = by_value.ravel()[(np.argsort(group[by_value - off], axis=1, kind="stable") + off).ravel()]
    V = ZT.ravel()[flat].reshape(m, n)
    g = np.sort(group, kind="stable")
    first = np.ones(n, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = g[1:] != g[:-1]
    start = np.flatnonzero(first)
    end = np.flatnonzero(last)
    span = np.repeat(V[:, end] - V[:, start], end - start + 1, axis=1)
    d = np.zeros((m, n))
    if n > 2:
        inner = (~first & ~last)[None, 1:-1] & (span[:, 1:-1] > 0)
        np.divide(V[:, 2:] - V[:, :-2], span[:, 1:-1], out=d[:, 1:-1], where=inner)
    d[:, first | last] = np.inf
    D = np.empty(m * n)
    D[flat] = d.ravel()  # back to row order
    D = D.reshape(m, n)
    for k in range(m):  # summed over objectives in their order
        dist += D[k]
    return dist  # a group of one or two rows is all boundary: inf, as crowding_distance gives
