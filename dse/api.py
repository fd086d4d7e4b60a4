"""The public Python API: load a design, evaluate it on a mix or a scenario, run a study, read a run.

Everything here is a thin wrapper over the packages that do the work (`dse.designs`, `dse.evaluate`,
`dse.study`, `dse.runs`); `import dse` exposes these names lazily so that it stays cheap.

Example:
    >>> import dse
    >>> h100 = dse.load_design("H100-SXM")
    >>> m = dse.evaluate_design(h100, scenario="local_llm")
    >>> round(m["local_llm.tpot_ms"], 2) > 0
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dse.designs import load_design as _load_design
from dse.errors import DseUserError
from dse.model.hardware import Design
from dse.model.technology import Technology, default_technology, load_technology
from dse.workloads.scenarios import Mix, Scenario, load_mix, load_scenario, mix_of

__all__ = ["evaluate_design", "evaluate_designs", "load_design", "load_run", "load_technology", "run_study"]


def load_design(spec: str | Path | Mapping[str, Any] | Design) -> Design:
    """A `Design` from a catalog name (`"H100-SXM"`), a YAML file, `FILE.yaml#NAME`, or a mapping."""
    if isinstance(spec, Design):
        return spec
    if isinstance(spec, Mapping):
        return Design.model_validate(dict(spec))
    return _load_design(str(spec))


def _workload(mix: str | Path | Mix | Mapping | None, scenario: str | Path | Scenario | Mapping | None) -> Mix:
    if mix is not None and scenario is not None:
        raise DseUserError("give either mix= or scenario=, not both")
    if scenario is not None:
        return mix_of([load_scenario(scenario)])
    return load_mix(mix if mix is not None else "balanced")


def _tech(tech: str | Path | Technology | None) -> Technology:
    if tech is None:
        return default_technology()
    return tech if isinstance(tech, Technology) else load_technology(Path(tech))


def evaluate_designs(designs: Sequence[Any], *, mix: str | Path | Mix | Mapping | None = None,
                     scenario: str | Path | Scenario | Mapping | None = None,
                     tech: str | Path | Technology | None = None,
                     software: str | None = None) -> dict[str, np.ndarray]:
    """Every metric of many designs (catalog names, files, mappings or `Design`s) as numpy columns,
    one row per design, in one vectorized call (default workload: the `balanced` mix)."""
    from dse.evaluate import evaluate
    from dse.model.arrays import DesignArrays
    from dse.model.hardware import use_technology

    technology = _tech(tech)
    with use_technology(technology):
        loaded = [load_design(d) for d in designs]
    arr = DesignArrays.from_designs(loaded, technology)
    return evaluate(arr, _workload(mix, scenario), technology, cal=software)


def evaluate_design(design: Any, *, mix: str | Path | Mix | Mapping | None = None,
                    scenario: str | Path | Scenario | Mapping | None = None,
                    tech: str | Path | Technology | None = None, software: str | None = None) -> dict[str, Any]:
    """The metrics of one design as plain Python values (`{"local_llm.tpot_ms": 6.6, ...}`)."""
    cols = evaluate_designs([design], mix=mix, scenario=scenario, tech=tech, software=software)
    return {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in cols.items()}


def run_study(path: str | Path, *, out: str | Path = "runs", trials: int | None = None, serial: bool = False,
              address: str | None = None, on_progress: Callable[[Any], None] | None = None) -> Path:
    """Run the study (or sweep) in `path` to its budget under `out/<name>/`, resuming what is there;
    returns the run folder. `serial=True` evaluates in-process without Ray."""
    from dse.study.runner import StudyRunner, run_dir_for
    from dse.study.spec import load_study
    from dse.study.sweep import run_sweep

    study = load_study(path)
    if study.spec.sweep:
        run_sweep(study, out, trials=trials, serial=serial, address=address, on_progress=on_progress)
        return Path(out) / study.name
    run_dir = run_dir_for(study, out)
    StudyRunner(study, run_dir, trials=trials, serial=serial, address=address, on_progress=on_progress).run()
    return run_dir


def load_run(path: str | Path) -> Any:
    """A run folder written by `dse run`: trials (`.results`, a Polars frame), objectives, front, hypervolume."""
    from dse.runs import load_run as _load_run

    return _load_run(path)
