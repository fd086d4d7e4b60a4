"""The run-folder format in one place: layout and schemas, the writer, the one reader, objectives, the front
and the hypervolume with its stored reference point. Knows nothing of Optuna (its mirror lives in dse.study).

Names load lazily, so that importing one module of the package (e.g. `dse.runs.layout` for a study's schema)
does not import the others (the reader is not needed to write a run)."""

from dse._lazy import lazy_exports

_EXPORTS = {
    "FrontTracker": "dse.runs.front", "front_mask": "dse.runs.front", "objective_matrix": "dse.runs.front",
    "Objective": "dse.runs.layout", "RunMeta": "dse.runs.layout", "Summary": "dse.runs.layout",
    "Run": "dse.runs.reader", "load_run": "dse.runs.reader", "load_runs": "dse.runs.reader",
    "load_trials": "dse.runs.reader", "run_meta": "dse.runs.reader",
    "PartStore": "dse.runs.writer", "RunLock": "dse.runs.writer", "finalize": "dse.runs.writer",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("dse.runs", _EXPORTS)
