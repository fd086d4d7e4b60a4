"""Running a function under one step-time path (`DSE_KERNEL` = numba / numpy / auto), chosen afresh for the call:
shared by the equivalence tests of the compiled kernels."""

from __future__ import annotations

from typing import Any, Callable

from dse.model import perf


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
