"""One way to print a number for every command: money as `$126,035`, other values with their unit."""

from __future__ import annotations

import math


def money(usd: float) -> str:
    """US dollars as `$126,035` (4 significant digits below $100, e.g. `$10.86`, `$0.3693`)."""
    if not math.isfinite(usd):
        return f"{usd:g}"
    return f"${usd:,.0f}" if abs(usd) >= 100 else f"${usd:.4g}"


def number(x: float) -> str:
    """A plain number: thousands separators for large values, 4 significant digits otherwise."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if x == 0 or not math.isfinite(x):
        return "-" if x == 0 else f"{x:g}"
    if isinstance(x, int) or (abs(x) >= 1000 and abs(x) < 1e9):
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,}"
    return f"{x:.4g}" if abs(x) >= 1e-3 else f"{x:.3e}"


def value(x, unit: str = "") -> str:
    """`x` formatted for its unit: money when the unit is US$ (the metric registry's cost unit)."""
    if unit == "US$" and isinstance(x, (int, float)) and not isinstance(x, bool):
        return money(float(x))
    return number(x)


def with_unit(x, unit: str = "") -> str:
    """`x` and its unit, e.g. `5,322 W`, `$63,005`, `1.08 × reference`."""
    text = value(x, unit)
    return text if unit in ("", "US$", "fraction") or text == "-" else f"{text} {unit}"


def unit_of_column(column: str) -> str:
    """The unit of a results column from the metric registry ('' for knobs and unknown columns)."""
    from dse.evaluate.metrics import metric_info

    info = metric_info(column)
    return info.unit if info is not None else ""


def cell(x, column: str = "") -> str:
    """One table cell of a results column: money for US$ metrics, `number` for other numbers."""
    if isinstance(x, float) or (isinstance(x, int) and not isinstance(x, bool)):
        return value(x, unit_of_column(column))
    return str(x)


def fitting_columns(headers: list[str], rows: list[list[str]], width: int, keep: int) -> int:
    """How many leading columns fit in `width` terminal columns with every cell on one line (rich adds 3
    per column plus 1); at least `keep`. Headers may wrap, so they count by their longest word."""
    used = 1
    for i, h in enumerate(headers):
        w = max([len(r[i]) for r in rows] + [max((len(p) for p in h.split()), default=1)]) + 3
        if used + w > width and i >= keep:
            return i
        used += w
    return len(headers)
