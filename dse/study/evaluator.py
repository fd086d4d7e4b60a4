"""Adapter between a study and the analytical model: knob columns → metric columns for one mix.

`ModelEvaluator` is small and picklable (it ships to Ray workers) and resolves the mix and technology
lazily in each process. Any object with `metric_names()` and `__call__(columns) -> dict` can stand in
for it (tests use a toy one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dse.evaluate import evaluate, metric_names
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology, load_technology
from dse.workloads.scenarios import load_mix


class ModelEvaluator:
    """Evaluate designs given as dotted knob columns with `dse.evaluate.evaluate` on `mix`."""

    def __init__(self, mix: str | dict[str, Any], *, base_dir: Path | str | None = None,
                 technology: Path | str | None = None):
        self.mix_spec = mix
        self.base_dir = str(base_dir) if base_dir is not None else None
        self.technology = str(technology) if technology is not None else None
        self._mix = None
        self._tech = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mix": None, "_tech": None}

    def mix(self) -> Any:
        if self._mix is None:

            spec = self.mix_spec
            if isinstance(spec, str) and spec.endswith((".yaml", ".yml")) and self.base_dir:
                p = Path(spec)
                spec = str(p if p.is_absolute() else Path(self.base_dir) / p)
            self._mix = load_mix(spec, base_dir=self.base_dir)
        return self._mix

    def tech(self) -> Any:
        if self._tech is None:

            self._tech = load_technology(Path(self.technology)) if self.technology else default_technology()
        return self._tech

    def metric_names(self) -> list[str]:

        return list(metric_names(self.mix()))

    def __call__(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:

        arr = DesignArrays.from_columns(columns, self.tech())
        return normalize(evaluate(arr, self.mix(), self.tech()), len(next(iter(columns.values()))))


def normalize(metrics: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """Every metric as an (n,) numpy array; `feasible` bool and `reason` str are always present."""
    out: dict[str, np.ndarray] = {}
    for k, v in metrics.items():
        a = np.asarray(v)
        if a.ndim == 0:
            a = np.full(n, a.item())
        out[k] = a
    if "feasible" not in out:
        out["feasible"] = np.ones(n, dtype=bool)
    out["feasible"] = out["feasible"].astype(bool)
    if "reason" not in out:
        out["reason"] = np.full(n, "", dtype=object)
    out["reason"] = np.asarray([str(r) for r in out["reason"]], dtype=object)
    return out
