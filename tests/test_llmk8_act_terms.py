"""step_kernel._act_terms / _resident_a: an operator's activation terms taken once per step and free SRAM give the
residency terms `_resident` gave with them inline, bit for bit (the old formula, written out here)."""

import itertools

import numpy as np
import pytest

pytest.importorskip("numba")
from dse.model import step_kernel as sk  # noqa: E402


def _mx(a, b):
    return a if (a >= b or a != a) else b


def _old_resident(w, act, kv, cls, sw, skv, wres, kres, free_sram, has_mem, mem_den, ramp, sram_den, d2d_share,
                  d2d_den):
    """`_resident` before the split: the activations' terms inline."""
    with np.errstate(all="ignore"):
        w, act, kv, free_sram = (np.float64(x) for x in (w, act, kv, free_sram))
        act_off = _mx(act - free_sram, np.float64(0.0))
        off = sw * w
        off += skv * kv
        off += act_off
        off *= has_mem
        streamed = 0.0 if cls == 0.0 else (sw if cls == 1.0 else (skv if cls == 2.0 else _mx(sw, skv)))
        ratio = act_off / _mx(act, np.float64(1e-300))
        streamed = _mx(streamed, ratio) if act_off != 0.0 else streamed
        memory = off / mem_den
        memory += ramp * streamed
        memory = memory if off > 0 else (off if off != off else 0.0)
        on = wres * w
        on += kres * kv
        on += act - act_off
        through = on + off
        sram = through / sram_den
        d2 = d2d_share * through / d2d_den
        sram = _mx(sram, d2) if d2d_share > 0 else sram
        return float(off), float(on), float(memory), float(sram)


def _bits(t):
    return np.array(t, np.float64).view(np.int64).tolist()


@pytest.mark.parametrize("act, free_sram", list(itertools.product(
    [0.0, 3.0, 5.0e6, np.inf, np.nan], [0.0, 4.0, 1.0e7, np.inf])))
def test_split_resident_terms_are_the_inline_ones(act, free_sram):
    a_off, a_on, ratio = sk._act_terms(act, free_sram)
    for w, kv, cls, wres, kres, has_mem, d2d_share in itertools.product(
            [0.0, 7.0e6], [0.0, 2.5e5], [0.0, 1.0, 2.0, 3.0], [0.0, 0.4, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.3]):
        args = (w, act, kv, cls, 1.0 - wres, 1.0 - kres, wres, kres, free_sram, has_mem, 2.0e12, 1.0e-6, 8.0e12,
                d2d_share, 1.0e12)
        want = _old_resident(*args)
        assert _bits(sk._resident(*args)) == _bits(want)
        got = sk._resident_a(w, kv, cls, 1.0 - wres, 1.0 - kres, wres, kres, a_off, a_on, ratio, has_mem, 2.0e12,
                             1.0e-6, 8.0e12, d2d_share, 1.0e12, True)
        assert _bits(got) == _bits(want)


def test_act_terms_by_hand():
    assert sk._act_terms(10.0, 4.0) == (6.0, 4.0, 0.6)  # 6 bytes spill, 4 stay, 6/10 streamed
    off, on, ratio = sk._act_terms(3.0, 4.0)  # all fit: nothing off chip, no streamed share
    assert (off, on, ratio) == (0.0, 3.0, -np.inf)
