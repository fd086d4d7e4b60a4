"""`step_kernel._op_terms` then `_sums` (a step's time and energy: each operator's terms in pass 1b's vectorized loop,
operators run zero times giving +0.0 through a select instead of being skipped by a branch, then plain sums in
operator order) give the bits of the skipping loop they replaced, here in plain Python: on random rows where the
skipped operators carry NaN, ±inf, −0.0 and huge terms, and rows whose live terms are all −0.0 (the sums must stay
+0.0 as the skipping loop's do)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _kernels import needs_numba  # noqa: E402

pytestmark = needs_numba


def _reference(s, d, k, ops, kind, busy, comm, e_on, e_off, efl, gap, share, e_link, comm_elsewhere, want_e):
    """The skipping loop as it was (before 2026-12-02), operation by operation."""
    total = 0.0
    energy = 0.0
    for j in range(k):
        cnt = ops[4, s, j]
        if cnt == 0.0:
            continue
        ov = gap * ops[8, s, j]
        ov += share
        b, c = busy[j], comm[j]
        hi = b if (b >= c or b != b) else c
        total += (hi + ov) * cnt
        if want_e:
            pj = ops[0, s, j] * efl[d, int(ops[10, s, j])]
            pj += e_on[j]
            pj += e_off[j]
            if comm_elsewhere or kind[j] >= 2:
                pj += (ops[5, s, j] * 8) * e_link
            pj *= 1e-12
            energy += pj * cnt
    return total, energy


def _bits(x: float) -> int:
    return int(np.float64(x).view(np.int64))


def _terms_then_sums(s, d, k, ops, kind, busy, comm, e_on, e_off, efl, gap, share, e_link, comm_elsewhere, want_e):
    """The kernel's way: pass 1a's FLOP energy (an operator run zero times reads precision 0), pass 1b's
    `_op_terms` per operator, then `_sums`."""
    from dse.model.step_kernel import _op_terms, _sums

    t_term, e_term = np.empty(k), np.empty(k)
    for j in range(k):
        cnt = ops[4, s, j]
        flop_pj = ops[0, s, j] * efl[d, int(ops[10, s, j]) if cnt != 0.0 else 0]
        t_term[j], e_term[j] = _op_terms(cnt, busy[j], comm[j], gap, ops[8, s, j], share, flop_pj, e_on[j], e_off[j],
                                         (ops[5, s, j] * 8) * e_link, bool(comm_elsewhere or kind[j] >= 2))
    return _sums(k, t_term, e_term, want_e)


@pytest.mark.parametrize("seed", range(6))
def test_sums_equal_the_skipping_loop(seed):
    rng = np.random.default_rng(seed)
    rows, k, precs = 5, 16, 3
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e308, -1e308])
    ops = rng.uniform(-2.0, 3.0, (11, rows, k)) * 10.0 ** rng.integers(-3, 4, (11, rows, k))
    ops[10] = rng.integers(0, precs, (rows, k))
    ops[4] = np.where(rng.random((rows, k)) < 0.4, 0.0, rng.integers(1, 9, (rows, k)).astype(float))
    dead = ops[4] == 0.0
    for f in (0, 5, 8):  # what a skipped operator carries may be anything
        ops[f] = np.where(dead & (rng.random((rows, k)) < 0.5), rng.choice(specials, (rows, k)), ops[f])
    ops[10] = np.where(dead & (rng.random((rows, k)) < 0.5), np.nan, ops[10])  # (its precision is not read)
    kind = rng.integers(0, 5, k).astype(np.int64)
    efl = rng.uniform(0.1, 2.0, (4, precs))
    for s in range(rows):
        for want_e in (True, False):
            for comm_elsewhere in (True, False):
                busy, comm = rng.uniform(0.0, 1.0, k), rng.uniform(0.0, 1.0, k)
                e_on, e_off = rng.uniform(0.0, 5.0, k), rng.uniform(0.0, 5.0, k)
                for arr in (busy, comm, e_on, e_off):
                    arr[:] = np.where(dead[s] & (rng.random(k) < 0.5), rng.choice(specials, k), arr)
                args = (s, int(rng.integers(0, 4)), k, ops, kind, busy, comm, e_on, e_off, efl, 1e-6, 2e-7, 0.3,
                        comm_elsewhere, want_e)
                with np.errstate(all="ignore"):
                    got = _terms_then_sums(*args)
                    ref = _reference(*args)
                assert _bits(got[0]) == _bits(ref[0]) or (math.isnan(got[0]) and math.isnan(ref[0]))
                if want_e:
                    assert _bits(got[1]) == _bits(ref[1]) or (math.isnan(got[1]) and math.isnan(ref[1]))


def test_all_negative_zero_terms_sum_to_positive_zero():
    k = 8
    ops = np.zeros((11, 1, k))
    ops[4, 0, ::2] = 1.0  # live operators whose terms are −0.0; the others run zero times
    ops[0, 0, :] = -0.0
    busy, comm = np.full(k, -0.0), np.full(k, -0.0)
    e_on, e_off = np.full(k, -0.0), np.full(k, -0.0)
    efl = np.ones((1, 1))
    args = (0, 0, k, ops, np.ones(k, np.int64), busy, comm, e_on, e_off, efl, 0.0, -0.0, 0.0, False, True)
    got, ref = _terms_then_sums(*args), _reference(*args)
    assert [_bits(x) for x in got] == [_bits(x) for x in ref] == [0, 0]
