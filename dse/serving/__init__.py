"""Request-level LLM serving: workloads with percentile SLOs, continuous-batching engines described by
iteration-time coefficients, a discrete-event simulator (ground truth) and a vectorized analytical model.

Knows nothing of the hardware model, evaluate, studies or reports: `dse.evaluate.serving` fills
`EngineCoeffs` from the operator model (`engine.fit_from_probes`) and calls `analytic`.
The workload schema lives in `dse.workloads.serving` (a scenario field); the rest loads on first use.
"""

from __future__ import annotations

from dse._lazy import lazy_exports

_EXPORTS = {
    "ServingWorkload": "dse.workloads.serving",
    "EngineCoeffs": "dse.serving.engine",
    "DisaggFleet": "dse.serving.engine",
    "default_probes": "dse.serving.engine",
    "fit_from_probes": "dse.serving.engine",
    "with_speculation": "dse.serving.engine",
    "simulate": "dse.serving.sim",
    "simulate_disagg": "dse.serving.sim",
    "colocated": "dse.serving.analytic",
    "disaggregated": "dse.serving.analytic",
    "colocated_summary": "dse.serving.analytic",
    "disagg_summary": "dse.serving.analytic",
    "max_rate_rps": "dse.serving.analytic",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports('dse.serving', _EXPORTS)
