"""Request-level LLM serving: workloads with percentile SLOs, continuous-batching engines described by
iteration-time coefficients, a discrete-event simulator (ground truth) and a vectorized analytical model.

Knows nothing of the hardware model, evaluate, studies or reports: evaluate fills `EngineCoeffs` from
the operator model (see `engine.fit_from_probes`) and calls `analytic`.
"""

from dse.serving.analytic import colocated, colocated_summary, disagg_summary, disaggregated, max_rate_rps
from dse.serving.engine import DisaggFleet, EngineCoeffs, default_probes, fit_from_probes, with_speculation
from dse.serving.sim import simulate, simulate_disagg
from dse.serving.workload import ServingWorkload

__all__ = ["DisaggFleet", "EngineCoeffs", "ServingWorkload", "colocated", "colocated_summary", "default_probes",
           "disagg_summary", "disaggregated", "fit_from_probes", "max_rate_rps", "simulate", "simulate_disagg",
           "with_speculation"]
