"""Check a study against the real model before its first trial and before anything is written.

The mix is resolved (weights finite and > 0), one probe design (the first point of the space's grid) is
evaluated, and every constraint and objective is type-checked against the probe's column kinds (numbers
vs categories) and evaluated on it. A problem here is a property of the study file, not of a design:
left to the run, it would make every trial infeasible or failed with exit 0 (issue 17.1).
"""

from __future__ import annotations

import math

import numpy as np

from dse.errors import ConfigError, DseUserError
from dse.runs.front import objective_values
from dse import expr as ex
from dse.study.evaluator import ModelEvaluator, normalize
from dse.study.spec import Study


def _where(study: Study) -> str:
    return str(study.path) if study.path is not None else f"study {study.name}"


def _first(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300] if not isinstance(exc, DseUserError) else text


def check_mix(study: Study, evaluator: ModelEvaluator) -> list[str]:
    """The study's mix resolves and every weight is a finite number > 0."""
    where = _where(study)
    try:
        mix = evaluator.mix()
    except (DseUserError, ValueError, OverflowError, RecursionError) as exc:
        return [f"{where}: mix: {_first(exc)}"]
    problems = []
    for e in mix.scenarios:
        if not (math.isfinite(e.weight) and e.weight > 0):
            problems.append(f"{where}: mix: scenario '{e.scenario.name}': weight must be a finite number > 0, "
                            f"got {e.weight}")
        if e.scenario.name == "mix" or e.scenario.name.startswith("mix."):
            problems.append(f"{where}: mix: scenario name '{e.scenario.name}' is reserved (the mix's own "
                            "metrics are `mix.*`); rename the scenario")
    return problems


def probe_columns(study: Study) -> dict[str, np.ndarray]:
    """One design of the space: the first point of its grid (every knob at its first grid value)."""
    _, cols = study.space.grid_shard(0, 1)
    return cols


def check_study(study: Study) -> None:
    """Raise ConfigError (one line per problem, naming the file and field) if the study cannot run."""
    where = _where(study)
    evaluator = ModelEvaluator.for_study(study)
    problems = check_mix(study, evaluator)
    if problems:
        raise ConfigError(problems, header=f"{where}: {len(problems)} problem(s) in study")
    cols = probe_columns(study)
    try:
        with np.errstate(all="ignore"):
            metrics = normalize(evaluator(cols), 1)
    except (DseUserError, ValueError, TypeError, KeyError, OverflowError, ArithmeticError, RecursionError) as exc:
        raise ConfigError([f"{where}: mix: the model cannot evaluate this study's mix on the probe design "
                           f"({', '.join(f'{k}={v[0]}' for k, v in cols.items())}): {type(exc).__name__}: "
                           f"{_first(exc)}"]) from None
    for k, v in metrics.items():  # a scenario size such as prompt_len: 10**400 gives inf/NaN everywhere
        if v.dtype.kind == "f" and not np.isfinite(v).all() and bool(metrics["feasible"][0]):
            problems.append(f"{where}: mix: metric {k} is not finite on the probe design; check the mix's "
                            "scenario sizes (prompt_len, output_len, batch) and weights")
    env = {**cols, **metrics}
    kinds = ex.kinds_of(env)
    texts = [(f"constraints.{i}", c) for i, c in enumerate(study.spec.constraints)]
    texts += [(f"space.constraints.{i}", c) for i, c in enumerate(study.space.spec.constraints)]
    for field, text in texts:
        try:
            ex.check_types(text, kinds, condition=True)
            with np.errstate(all="ignore"):
                v = np.asarray(ex.parse(text).violation(env), dtype=float)
            if not np.isfinite(v).all():
                problems.append(f"{where}: {field}: `{text}` is not a finite number on the probe design")
            elif ex.parse(text).constant_faults():
                problems.append(f"{where}: {field}: `{text}` {ex.parse(text).constant_faults()[0]} for every "
                                "design; no design could meet it")
        except (DseUserError, ValueError, TypeError, KeyError, RecursionError, OverflowError) as exc:
            problems.append(f"{where}: {field}: {_first(exc)}")
    for i, o in enumerate(study.spec.objectives):
        try:
            if o.is_expression:
                ex.check_types(o.metric, kinds, condition=False)
                for fault in ex.parse(o.metric).constant_faults()[:1]:
                    raise ValueError(f"`{o.metric}` {fault} for every design")
            elif kinds.get(o.metric, ex.NUMBER) != ex.NUMBER:
                raise ValueError(f"metric '{o.metric}' is a {kinds[o.metric]}, not a number")
            with np.errstate(all="ignore"):
                objective_values(o, env)
        except (DseUserError, ValueError, TypeError, KeyError, RecursionError, OverflowError) as exc:
            problems.append(f"{where}: objectives.{i}.metric: {_first(exc)}")
    if problems:
        raise ConfigError(problems, header=f"{where}: {len(problems)} problem(s) in study")

