"""`step_kernel._class_bases`: footprint classes of the same step, weights and activations share a base (the first
such class), which `map_llm_kernel` times once for a design that holds none of their KV on chip (the same resident
shares: `_fractions` gives fw from the weights and activations alone and fk = 0). Hand-built plan tables; the
kernel's outputs against the numpy mapping are tests/test_mapping_kernel_equiv.py's."""

from __future__ import annotations

import numpy as np

from _kernels import needs_numba  # noqa: E402


def _tables(roles):
    """(pl, pf) of plans given as ((dec step, dec cls), (pre step, pre cls), (chunk step, chunk cls), w, kv, act)."""
    from dse.model import step_kernel as sk
    pl = np.zeros((len(sk.PLAN_INT), len(roles)), np.int64)
    pf = np.zeros((3, len(roles)))
    for j, (dec, pre, chunk, w, kv, act) in enumerate(roles):
        for role, (step, cls) in enumerate((dec, pre, chunk)):
            pl[sk.P_DEC + role, j], pl[sk.P_DEC_CLS + role, j] = step, cls
        pf[:, j] = w, kv, act
    return pl, pf


@needs_numba
def test_classes_differing_only_in_kv_share_the_first_as_base():
    from dse.model import step_kernel as sk
    # plans 0 and 1 differ in KV only (one sequence vs a full pipeline of them): their classes pair up per role;
    # plan 2 has other activations (a larger micro-batch) on the same steps: its own classes
    pl, pf = _tables([((0, 0), (1, 1), (2, 2), 4e9, 1e8, 2e6),
                      ((0, 3), (1, 4), (2, 5), 4e9, 4e8, 2e6),
                      ((0, 6), (1, 7), (2, 8), 4e9, 8e8, 3e6)])
    bases = sk._class_bases.py_func(pl, pf, 3, 9)
    assert list(bases) == [0, 1, 2, 0, 1, 2, 6, 7, 8]


@needs_numba
def test_same_footprint_on_another_step_is_another_base():
    from dse.model import step_kernel as sk
    # the same (w, act) on different steps (the decode and the prefill chunk of one plan; another plan's decode on
    # a third step) never share; a class met twice keeps one base
    pl, pf = _tables([((0, 0), (1, 1), (0, 0), 1e9, 0.0, 5e5),
                      ((2, 2), (1, 3), (0, 4), 1e9, 7e7, 5e5)])
    bases = sk._class_bases.py_func(pl, pf, 3, 5)
    assert list(bases) == [0, 1, 2, 1, 0]


@needs_numba
def test_nan_footprints_never_share():
    from dse.model import step_kernel as sk
    pl, pf = _tables([((0, 0), (0, 1), (0, 2), np.nan, 0.0, 1.0),
                      ((0, 3), (0, 4), (0, 5), np.nan, 1.0, 1.0)])
    assert list(sk._class_bases.py_func(pl, pf, 1, 6)) == list(range(6))
