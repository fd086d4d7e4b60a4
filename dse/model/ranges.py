"""Uncertain technology constants: a number in a technology table may be a value, a `{low, high}` range
(uniform) or a named distribution, each with its source.

`split_ranges(raw)` walks a raw technology mapping, replaces every range by its nominal value (so the
validated `Technology` holds exactly the numbers the model used before ranges existed) and returns the
ranges separately as `(path, Distribution)`. Paths are tuples of keys (`("process_nodes", "n5",
"wafer_price_usd")`). Sampling goes through uniform variates `u` in (0, 1) (inverse CDF), so a caller
can use common random numbers and stratified samples. Pure numpy + pydantic; no other dse import but
the error type.

Forms (in technology.yaml or an override):
    wafer_price_usd: 16988                                          # a plain value
    wafer_price_usd: {low: 14000, high: 20000}                      # uniform, nominal = midpoint
    wafer_price_usd: {value: 16988, low: 14000, high: 20000, source: "..."}   # uniform, nominal = value
    wafer_price_usd: {dist: triangular, low: 14000, mode: 16988, high: 20000} # nominal = mode
    usd_per_kwh: {dist: lognormal, median: 0.067, sigma: 0.3}       # nominal = median
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from dse.errors import ConfigError

Path_ = tuple[str, ...]
RANGE_KEYS = frozenset({"dist", "value", "low", "high", "mode", "median", "sigma", "source"})


class Distribution(BaseModel):
    """One uncertain constant: its distribution, nominal value and source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dist: Literal["uniform", "triangular", "lognormal"] = "uniform"
    value: float | None = None
    low: float | None = None
    high: float | None = None
    mode: float | None = None
    median: float | None = None
    sigma: float | None = None
    source: str = ""

    @model_validator(mode="after")
    def _check(self) -> "Distribution":
        if self.dist in ("uniform", "triangular"):
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.dist} range needs low and high")
            if self.low > self.high:
                raise ValueError(f"low={self.low:g} is above high={self.high:g}")
            if self.dist == "triangular" and self.mode is None and self.value is None:
                raise ValueError("a triangular range needs mode (or value)")
        else:
            if self.median is None and self.value is None:
                raise ValueError("a lognormal range needs median (or value)")
            if self.sigma is None or self.sigma < 0:
                raise ValueError("a lognormal range needs sigma >= 0 (the standard deviation of ln x)")
            if (self.median if self.median is not None else self.value) <= 0:
                raise ValueError("a lognormal range needs a positive median")
        nom = self.nominal
        if self.low is not None and self.high is not None and not (self.low <= nom <= self.high):
            raise ValueError(f"nominal {nom:g} lies outside [{self.low:g}, {self.high:g}]")
        return self

    @property
    def nominal(self) -> float:
        """The value the model uses when not sampling (value, else mode / median / midpoint)."""
        if self.value is not None:
            return float(self.value)
        if self.dist == "triangular":
            return float(self.mode)
        if self.dist == "lognormal":
            return float(self.median)
        return 0.5 * (float(self.low) + float(self.high))

    @property
    def collapsed(self) -> bool:
        """True when every sample equals the nominal value."""
        if self.dist == "lognormal":
            return self.sigma == 0 and (self.median is None or self.median == self.nominal)
        return self.low == self.high

    def bounds(self) -> tuple[float, float]:
        """(low, high) for finite differences: the range ends, or p10/p90 of a lognormal."""
        if self.dist == "lognormal":
            med = self.median if self.median is not None else self.value
            return float(med * math.exp(-1.2815515655446004 * self.sigma)), float(med * math.exp(1.2815515655446004 * self.sigma))
        return float(self.low), float(self.high)

    def sample(self, u: np.ndarray) -> np.ndarray:
        """Values at uniform variates `u` in (0, 1) by the inverse CDF (a collapsed range: the nominal)."""
        u = np.asarray(u, float)
        if self.collapsed:
            return np.full(u.shape, self.nominal)
        if self.dist == "uniform":
            return self.low + u * (self.high - self.low)
        if self.dist == "triangular":
            a, b = float(self.low), float(self.high)
            c = float(self.mode if self.mode is not None else self.value)
            f = (c - a) / (b - a)
            return np.where(u < f, a + np.sqrt(u * (b - a) * (c - a)), b - np.sqrt((1 - u) * (b - a) * (b - c)))
        med = float(self.median if self.median is not None else self.value)
        return med * np.exp(self.sigma * _norm_ppf(u))


def _norm_ppf(u: np.ndarray) -> np.ndarray:
    """Standard normal quantile (Acklam's rational approximation, |rel. error| < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    u = np.clip(np.asarray(u, float), 1e-15, 1 - 1e-15)
    out = np.empty_like(u)
    lo, hi = u < 0.02425, u > 1 - 0.02425
    mid = ~(lo | hi)
    q = u[mid] - 0.5
    r = q * q
    out[mid] = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1))
    for mask, sign in ((lo, 1.0), (hi, -1.0)):
        qq = np.sqrt(-2 * np.log(np.where(sign > 0, u[mask], 1 - u[mask])))
        out[mask] = sign * ((((((c[0] * qq + c[1]) * qq + c[2]) * qq + c[3]) * qq + c[4]) * qq + c[5])
                            / ((((d[0] * qq + d[1]) * qq + d[2]) * qq + d[3]) * qq + 1))
    return out


def is_range(node: Any) -> bool:
    return isinstance(node, dict) and bool(node) and ("dist" in node or ("low" in node and "high" in node)) \
        and all(isinstance(k, str) for k in node)


def split_ranges(raw: Any, where: str = "<technology>") -> tuple[Any, list[tuple[Path_, Distribution]]]:
    """(raw with every range replaced by its nominal value, [(path, Distribution), …]) — a bad range is a
    ConfigError naming the file and the dotted path."""

    found: list[tuple[Path_, Distribution]] = []
    problems: list[str] = []

    def walk(node: Any, path: Path_) -> Any:
        if is_range(node):
            extra = sorted(set(node) - RANGE_KEYS)
            if extra:
                problems.append(f"{where}: {'.'.join(path)}: unknown range key(s) {extra} "
                                f"(expected some of {sorted(RANGE_KEYS)})")
                return node
            try:
                d = Distribution.model_validate(node)
            except ValidationError as e:
                msg = "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors())
                problems.append(f"{where}: {'.'.join(path)}: {msg} (fix the range or give a plain number)")
                return node
            found.append((path, d))
            return d.nominal
        if isinstance(node, dict):
            return {k: walk(v, path + (str(k),)) for k, v in node.items()}
        return node

    out = walk(raw, ())
    if problems:
        raise ConfigError(problems)
    return out, found


def set_path(raw: dict, path: Path_, value: Any) -> None:
    """Set `raw[path[0]][path[1]]… = value` in place."""
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


__all__ = ["Distribution", "is_range", "split_ranges", "set_path", "RANGE_KEYS"]
