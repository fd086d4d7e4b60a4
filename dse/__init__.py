"""dse: design-space exploration for AI accelerators.

The public API (see docs/python-api.md; a runnable example is examples/python_api.py):

    import dse
    design = dse.load_design("H100-SXM")                       # catalog name, YAML file or mapping
    metrics = dse.evaluate_design(design, mix="balanced")      # or scenario="local_llm"
    run_dir = dse.run_study("studies/quickstart.yaml")         # a study, resumable
    run = dse.load_run(run_dir)                                # trials, objectives, front
    dse.KNOBS, dse.METRICS, dse.metric_info("local_llm.tpot_ms")  # the knob and metric registries

Names load lazily, so `import dse` stays cheap (no Optuna, Ray or Polars until used).
"""

from __future__ import annotations

from dse._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "load_design": "dse.api", "evaluate_design": "dse.api", "evaluate_designs": "dse.api",
    "run_study": "dse.api", "load_run": "dse.api", "load_technology": "dse.api",
    "Design": "dse.model.hardware", "KNOBS": "dse.model.knobs", "METRICS": "dse.evaluate.metrics", "metric_info": "dse.evaluate.metrics",
    "load_mix": "dse.workloads.scenarios", "load_scenario": "dse.workloads.scenarios",
    "DseUserError": "dse.errors",
}
__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__, __dir__ = lazy_exports("dse", _EXPORTS, eager=("__version__",))
