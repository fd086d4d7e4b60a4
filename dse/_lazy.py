"""Lazy package exports (PEP 562): a package lists `{name: module}` and its names import on first use,
so importing the package stays cheap. Shared by dse, dse.evaluate and dse.serving."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str], *, eager: tuple[str, ...] = (),
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level `__getattr__` and `__dir__` of `package` for the names of `exports` (plus the
    `eager` names the package defines itself, listed by `__dir__`)."""
    names = sorted(exports) + list(eager)

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__


def lazy_function(module: str, name: str) -> Callable[..., Any]:
    """`module.name` imported on its first call: a heavy module (scipy.special, ~0.2–0.5 s) used only on
    some paths (wafer-scale yield, SLO percentiles) then costs nothing to a run that never calls it."""
    fn: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not fn:
            fn.append(getattr(importlib.import_module(module), name))
        return fn[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"`{module}.{name}`, imported on first call."
    return call
