"""Scenario → steps → plans (the mapping) → metric table; the reference design; the operator breakdown.

`dse.model` holds the pure physics (area, cost, power, operator times); this package orchestrates it
over a workload mix. Every metric it returns is declared once in `dse.evaluate.metrics`.

Names load on first use, so `dse.evaluate.metrics` (the registry) imports without the model.
"""

from __future__ import annotations

from dse._lazy import lazy_exports

_EXPORTS = {
    "evaluate": "dse.evaluate.table",
    "evaluate_design": "dse.evaluate.table",
    "reference_throughputs": "dse.evaluate.table",
    "operator_breakdown": "dse.evaluate.breakdown",
    "evaluate_scenario": "dse.evaluate.mapping",
    "MappingResult": "dse.evaluate.mapping",
    "Plan": "dse.evaluate.plans",
    "METRICS": "dse.evaluate.metrics",
    "ColumnInfo": "dse.evaluate.metrics",
    "Metric": "dse.evaluate.metrics",
    "metric_info": "dse.evaluate.metrics",
    "metric_names": "dse.evaluate.metrics",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports('dse.evaluate', _EXPORTS)
