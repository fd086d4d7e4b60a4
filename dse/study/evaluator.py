"""Adapter between a study and the analytical model: knob columns → metric columns for one mix.

`ModelEvaluator` is small and picklable (it ships to Ray workers) and resolves the mix and technology
lazily in each process. Any object with `metric_names()` and `__call__(columns) -> dict` can stand in
for it (tests use a toy one). A study with `uncertainty:` whose objectives or constraints read robust
columns (`p90.system_cost_usd`, `prob.<name>`) gets a Monte-Carlo evaluation of every batch and those
columns beside the nominal metrics (dse.uncertainty.robust).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dse.evaluate import evaluate, metric_names
from dse.evaluate.deployment import DEPLOYMENT_BY_NAME
from dse.evaluate.table import reference_throughputs
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.technology import default_technology, load_technology
from dse.study.cache import Normalized
from dse.study.knobs import POOL_PREFIX, registry_name
from dse.workloads.scenarios import load_mix


class ModelEvaluator:
    """Evaluate designs given as dotted knob columns with `dse.evaluate.evaluate` on `mix`."""

    # a pure function of the design (no state a caller reads back): a copy in another process gives the same
    # results, so a serial run may evaluate it in a forked model process (dse.study.execution.ModelProcess).
    # Only a class that states it itself counts (`execution.is_pure`): a subclass that counts its calls is not
    pure = True

    def __init__(self, mix: str | dict[str, Any], *, base_dir: Path | str | None = None,
                 technology: Path | str | None = None, uncertainty: dict[str, Any] | None = None,
                 robust: list[str] | None = None, software: str | None = None):
        self.mix_spec = mix
        self.software = software  # calibration class (software stack); None = the calibration file's default
        self.base_dir = str(base_dir) if base_dir is not None else None
        self.technology = str(technology) if technology is not None else None
        self.uncertainty = dict(uncertainty) if uncertainty else None  # the study's `uncertainty:` (dumped)
        self.robust = list(robust or []) if uncertainty else []
        self._mix = None
        self._tech = None
        self._reference: dict[str, float] | None = None

    @classmethod
    def for_study(cls, study: Any) -> "ModelEvaluator":
        """The evaluator of a loaded `Study` (its mix, technology, robust columns and software stack)."""
        s = study.spec
        return cls(s.mix, base_dir=study.path.parent if study.path else None, technology=study.technology_path(),
                   uncertainty=s.uncertainty.model_dump() if s.uncertainty else None, robust=s.robust_names(),
                   software=s.software)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mix": None, "_tech": None, "_reference": None}

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

    def reference(self) -> dict[str, float]:
        """The mix's reference throughputs (what `evaluate` derives on every call: its cache key alone,
        the mix, calibration and technology dumped to JSON, costs ~1 ms), once per process."""
        if self._reference is None:
            self._reference = reference_throughputs(self.mix(), load_calibration(self.software), self.tech())
        return self._reference

    def metric_names(self) -> list[str]:

        return list(metric_names(self.mix())) + self.robust

    def __call__(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:

        n = len(next(iter(columns.values())))
        if not self.robust:
            arr = DesignArrays.from_columns(columns, self.tech())
            deployment = {k: v for k, v in columns.items() if k in DEPLOYMENT_BY_NAME}
            return normalize(evaluate(arr, self.mix(), self.tech(), cal=self.software, reference=self.reference(),
                                      prefill=prefill_arrays(columns, self.tech()), deployment=deployment), n)
        # imported here: a study without robust objectives (most) does not pay for the Monte-Carlo modules
        from dse.uncertainty.montecarlo import monte_carlo_columns
        from dse.uncertainty.robust import robust_columns

        u = self.uncertainty
        mc = monte_carlo_columns(columns, self.mix(), self.tech(), samples=u["samples"], seed=u["seed"],
                                 model_error=u["model_error"], software=self.software)
        out = dict(mc.nominal)
        out.update(robust_columns(mc, self.robust, u.get("chance") or {}, columns))
        return normalize(out, n)


def prefill_arrays(columns: dict[str, np.ndarray], tech: Any) -> DesignArrays | None:
    """The prefill-pool designs a study searches with `prefill.*` knobs (each the main design with those
    knobs replaced), or None when the columns have none."""
    pool = {registry_name(k): v for k, v in columns.items() if k.startswith(POOL_PREFIX)}
    if not pool:
        return None
    return DesignArrays.from_columns({k: v for k, v in columns.items() if not k.startswith(POOL_PREFIX)} | pool, tech)


def normalize(metrics: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """Every metric as an (n,) numpy array; `feasible` bool and `reason` str are always present (a `Normalized`
    is returned as it is)."""
    if type(metrics) is Normalized:
        return metrics
    out: dict[str, np.ndarray] = Normalized()
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
