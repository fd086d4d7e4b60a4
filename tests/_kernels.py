"""Running a function under one step-time path (`DSE_KERNEL` = numba / numpy / auto), chosen afresh for the call:
shared by the equivalence tests of the compiled kernels."""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

import numpy as np
import pytest

from dse.model import perf

# the equivalence tests compare the numba path with numpy's: without numba there is nothing to compare
needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba not installed")


def ndarray_fields(obj: Any) -> dict[str, np.ndarray]:
    """An object's array attributes by name (a result dataclass compared field by field)."""
    return {k: v for k, v in vars(obj).items() if isinstance(v, np.ndarray)}


def kernel_runner(monkeypatch) -> Callable[..., Any]:
    """`run(mode, fn, *args, **kw)`: `fn(*args, **kw)` with `DSE_KERNEL=mode`, the kernel choice reset before and
    after (the fixture that uses it resets it once more at teardown)."""
    def run(mode: str, fn: Callable[..., Any], *args, **kw) -> Any:
        monkeypatch.setenv(perf.KERNEL_ENV, mode)
        perf.reset_kernel()
        try:
            return fn(*args, **kw)
        finally:
            perf.reset_kernel()
    return run


def staged_kernel_runner(monkeypatch) -> Callable[..., Any]:
    """`run(mode, fn, *args, staged=False, **kw)` as `kernel_runner`'s; `staged=True` keeps the numpy mapping
    (dse.evaluate.mapping's LLM and CNN choice) with compiled step times."""
    from dse.evaluate import mapping

    run_in = kernel_runner(monkeypatch)

    def run(mode: str, fn: Callable[..., Any], *args, staged: bool = False, **kw) -> Any:
        with monkeypatch.context() as m:
            if staged:
                m.setattr(mapping, "compiled_kernel", lambda *a: None)
            return run_in(mode, fn, *args, **kw)
    return run


def assert_bit_equal(a: dict, b: dict, what: str) -> None:
    """Every column of `a` equals `b`'s bit for bit: same keys, shapes and dtypes; floats equal with the same sign
    of zero, NaN where NaN."""
    assert a.keys() == b.keys(), what
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape and x.dtype == y.dtype, (what, k, x.shape, y.shape, x.dtype, y.dtype)
        if x.dtype.kind == "f":
            same = ((x == y) & (np.signbit(x) == np.signbit(y))) | (np.isnan(x) & np.isnan(y))
        else:
            same = x == y
        assert same.all(), f"{what}: {k} differs at {np.flatnonzero(~same)[:5]}: {x[~same][:3]} vs {y[~same][:3]}"


def priced_only(values: np.ndarray, fixed_usd: np.ndarray) -> np.ndarray:
    """An I/O die cost field (`area._IoChoices` usd, escape, inv_yield, hull_inv_yield) as both paths define it: on a
    count a design may not take (fixed_usd ∞) the compiled path keeps its bounds (`area_kernel.io_tables`), so there
    only whether it is finite (finite values read as 0)."""
    off = (np.asarray(fixed_usd) == np.inf) & np.isfinite(values)
    return np.where(off, 0.0, values)


def io_choice_fields(io: Any) -> dict[str, np.ndarray]:
    """`ndarray_fields` of an `area._IoChoices`, its cost fields `priced_only`."""
    out = ndarray_fields(io)
    for k in ("usd", "escape", "inv_yield"):
        out[k] = priced_only(out[k], io.fixed_usd)
    out["hull_inv_yield"] = priced_only(out["hull_inv_yield"], io.hull_fixed_usd)
    return out
