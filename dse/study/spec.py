"""Study YAML (DESIGN.md §10): space, mix, objectives, constraints, sampler, budget, storage, execution, sweep.

`load_study(path)` parses and validates the file (pydantic shape errors and semantic errors such as
unknown metric names, each as one `file:line:col: path: message` line) and resolves the search space.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from dse import expr as ex
from dse.config import NoBoolNumbers, location, parse_yaml, suggest, validate_data
from dse.errors import ConfigError, DseUserError
from dse.runs.layout import Objective, robust_column
from dse.study.space import SearchSpace, SearchSpaceSpec, check_space


class _Base(NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _software_ok(v: str | None) -> str | None:
    """A software stack named by a study must be a class of the calibration file (`dse software`)."""
    from dse.model.calibration import unknown_class_message

    problem = None if v is None else unknown_class_message(v)
    if problem:
        raise ValueError(problem)
    return v


SOFTWARE_DESCRIPTION = ("software stack the designs run under: a class of dse/model/data/calibration.yaml "
                        "(`dse software` lists them); null = the file's default")


# -- samplers (discriminated on `kind`) -------------------------------------------------------------


class NSGA2(_Base):
    """Optuna NSGA-II; one batch = one generation of `population_size` trials."""

    kind: Literal["nsga2"] = "nsga2"
    population_size: int = Field(64, ge=2)
    mutation_prob: float | None = Field(None, ge=0, le=1)
    # sbx (simulated binary crossover + polynomial mutation of numbers) and uniform run as array operations
    # (dse.study.samplers.ArrayNSGAII); the others through Optuna's NSGAIISampler
    crossover: Literal["uniform", "blxalpha", "sbx", "vsbx", "undx", "spx"] = "sbx"
    crossover_prob: float = Field(0.9, ge=0, le=1)
    swapping_prob: float = Field(0.5, ge=0, le=1)


class NSGA3(_Base):
    """Optuna NSGA-III (reference points; for 4+ objectives)."""

    kind: Literal["nsga3"]
    population_size: int = Field(64, ge=2)
    dividing_parameter: int = Field(3, ge=1)
    mutation_prob: float | None = Field(None, ge=0, le=1)
    crossover_prob: float = Field(0.9, ge=0, le=1)
    swapping_prob: float = Field(0.5, ge=0, le=1)


class TPE(_Base):
    """Multi-objective TPE; cost per trial grows with the study (keep budgets ≲ 1-2k)."""

    kind: Literal["tpe"]
    n_startup_trials: int = Field(10, ge=0)
    multivariate: bool = True
    constant_liar: bool = True


def _needs(module: str, what: str):
    """A `kind` validator: the sampler's optional dependency must be installed (a config error, not a
    traceback in the middle of a run)."""
    def check(cls, v):
        import importlib.util

        if importlib.util.find_spec(module) is None:
            raise ValueError(f"sampler kind '{v}' needs {what} (pip install {module}); or use nsga2, tpe or random")
        return v
    return field_validator("kind")(classmethod(check))


class GP(_Base):
    """Gaussian-process sampler (needs torch; small budgets)."""

    kind: Literal["gp"]
    n_startup_trials: int = Field(10, ge=0)

    _deps = _needs("torch", "PyTorch")


class Random(_Base):
    kind: Literal["random"]


class QMC(_Base):
    kind: Literal["qmc"]
    qmc_type: Literal["sobol", "halton"] = "sobol"
    scramble: bool = True

    _deps = _needs("scipy", "SciPy")


class Grid(_Base):
    """Exhaustive enumeration of the discretised space, evaluated in vectorized shards (no Optuna)."""

    kind: Literal["grid"]
    points: int | None = Field(None, ge=1, description="points per float range (default: the space's grid_points)")
    shard_size: int = Field(20_000, ge=1)


Sampler = Annotated[Union[NSGA2, NSGA3, TPE, GP, Random, QMC, Grid], Field(discriminator="kind")]


class Budget(_Base):
    trials: int | None = Field(None, ge=1)
    timeout_s: float | None = Field(None, gt=0)


class Execution(_Base):
    """Where the model runs: embedded Ray (address null; RAY_ADDRESS honoured), a Ray address, or serial."""

    backend: Literal["ray", "serial"] = "ray"
    address: str | None = None
    num_cpus: int | None = Field(None, ge=1, description="CPUs of an embedded Ray (ignored when attaching)")
    chunk_size: int = Field(2048, ge=1, description="max designs per Ray task")
    inline_below: int = Field(256, ge=0, description="batches smaller than this are evaluated in-process")


class Uncertainty(_Base):
    """Monte-Carlo evaluation of every trial (issue 16): `samples` draws of the technology ranges (and of
    the model error), the same for every design. Objectives and constraints may then read robust columns:
    `p<NN>.<metric>` (NN-th percentile over the samples, e.g. p90.system_cost_usd, p10.mix.throughput) and
    `prob.<name>` (share of samples meeting `chance.<name>`, a condition in the constraint grammar). Every
    trial also stores p10/p50/p90 of each nominal objective metric."""

    samples: int = Field(32, ge=2, le=4096, description="Monte-Carlo samples per design")
    seed: int = Field(0, description="sample seed (common random numbers: every design sees the same samples)")
    model_error: bool = Field(True, description="also sample the model's measured error per scenario")
    chance: dict[str, str] = Field(default_factory=dict,
                                   description="name → condition; `prob.<name>` is the share of samples meeting it")

    @field_validator("chance")
    @classmethod
    def _chance(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        if bad:
            raise ValueError(f"chance names must be identifiers (letters, digits, '_'), got {bad}; they are read as "
                             "prob.<name>")
        ex.check_constraints(list(v.values()))
        return v


def _folder_name(v: str) -> str:
    """A name used as a run-folder name: `.` and `..` would write outside `--out`."""
    if v.strip(".") == "":
        raise ValueError(f"'{v}' cannot be a folder name; use letters, digits, '_', '-' or '.'")
    return v


# a study name is a folder name (and a sub-study's is `<study>-<entry>`): well under the 255-byte limit of
# common file systems (ext4, APFS, NTFS)
MAX_NAME = 120


class SweepEntry(_Base):
    """One sub-study of a sweep: a name plus overrides of the parent study."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=MAX_NAME)

    _name_ok = field_validator("name")(classmethod(lambda cls, v: _folder_name(v)))
    fixed: dict[str, Any] = Field(default_factory=dict, description="knobs pinned for this sub-study")
    mix: str | dict[str, Any] | None = None
    seed: int | None = None
    sampler: Sampler | None = None
    budget: Budget | None = None
    software: str | None = Field(None, description=SOFTWARE_DESCRIPTION)

    _software_ok = field_validator("software")(classmethod(lambda cls, v: _software_ok(v)))


class StudySpec(_Base):
    """A study file (`studies/*.yaml`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=MAX_NAME)
    description: str = ""
    search_space: str | None = Field(None, description="path of a search-space file, relative to this file")
    space: SearchSpaceSpec | None = None
    mix: str | dict[str, Any] = "balanced"
    objectives: list[Objective] = Field(min_length=1, max_length=6)
    constraints: list[str] = Field(default_factory=list)
    sampler: Sampler = Field(default_factory=NSGA2)
    budget: Budget = Field(default_factory=lambda: Budget(trials=1000))
    seed: int = 0
    batch_size: int | None = Field(None, ge=1, description="trials per ask/tell batch (GA: = population_size)")
    storage: str | None = Field(None, description="Optuna storage URL; null = journal.log in the run folder")
    execution: Execution = Field(default_factory=Execution)
    reference_point: dict[str, float] | None = Field(None, description="hypervolume reference per objective metric")
    technology: str | None = Field(None, description="technology override YAML, relative to this file")
    sweep: list[SweepEntry] | None = Field(None, min_length=1)
    uncertainty: Uncertainty | None = Field(None, description="Monte-Carlo evaluation for robust objectives")
    software: str | None = Field(None, description=SOFTWARE_DESCRIPTION)

    _name_ok = field_validator("name")(classmethod(lambda cls, v: _folder_name(v)))
    _software_ok = field_validator("software")(classmethod(lambda cls, v: _software_ok(v)))

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, v: str | None) -> str | None:
        """An Optuna (SQLAlchemy) storage URL whose database driver is installed; checked without connecting."""
        if v is None:
            return v
        try:
            from sqlalchemy.engine import make_url

            make_url(v).get_dialect()
        except ImportError as exc:
            raise ValueError(f"storage URL '{v}': its database driver is not installed ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - ArgumentError, NoSuchModuleError, ...
            raise ValueError(f"storage URL '{v}' is not usable ({type(exc).__name__}: {exc}); expected e.g. "
                             "sqlite:///study.db or postgresql://user@host/db, or null for a journal file "
                             "in the run folder") from None
        return v

    @field_validator("constraints")
    @classmethod
    def _parse_constraints(cls, v: list[str]) -> list[str]:
        return ex.check_constraints(v)

    @model_validator(mode="after")
    def _check(self) -> "StudySpec":
        if (self.search_space is None) == (self.space is None):
            raise ValueError("give exactly one of `search_space` (a file) or `space` (inline)")
        metrics = [o.metric for o in self.objectives]
        dup = {m for m in metrics if metrics.count(m) > 1}
        if dup:
            raise ValueError(f"objective metric listed twice: {', '.join(sorted(dup))}")
        if self.budget.trials is None and self.budget.timeout_s is None and not isinstance(self.sampler, Grid):
            raise ValueError("budget needs `trials` and/or `timeout_s`")
        pop = getattr(self.sampler, "population_size", None)
        if pop is not None and self.batch_size is not None and self.batch_size != pop:
            raise ValueError(f"batch_size ({self.batch_size}) must equal sampler.population_size ({pop}) "
                             "for genetic samplers: one batch is one generation")
        if self.sweep is not None:
            names = [e.name for e in self.sweep]
            if len(set(names)) != len(names):
                raise ValueError("sweep entry names must be unique")
        if self.reference_point is not None:
            missing = set(metrics) - set(self.reference_point)
            if missing or set(self.reference_point) - set(metrics):
                raise ValueError("reference_point must give one value per objective metric")
            bad = {k: v for k, v in self.reference_point.items() if not math.isfinite(v)}
            if bad:
                raise ValueError(f"reference_point: every value must be a finite number, got {bad}")
        return self

    @property
    def maximize(self) -> list[bool]:
        return [o.direction == "maximize" for o in self.objectives]

    def robust_names(self) -> list[str]:
        """Robust columns (`p90.x`, `prob.name`) the objectives and constraints read, in order, then (with
        `uncertainty:`) p10/p50/p90 of each nominal objective metric, stored with every trial."""
        names = [n for o in self.objectives for n in o.names()] + [n for c in self.constraints for n in ex.parse(c).names]
        if self.uncertainty is not None:
            names += [f"p{q}.{o.metric}" for o in self.objectives if not o.is_expression
                      and robust_column(o.metric) is None for q in (10, 50, 90)]
        return list(dict.fromkeys(n for n in names if robust_column(n) is not None))

    @property
    def effective_batch(self) -> int:
        pop = getattr(self.sampler, "population_size", None)
        return pop or self.batch_size or 64


@dataclass
class Study:
    """A loaded study: the validated spec, its resolved search space, where it came from."""

    spec: StudySpec
    space: SearchSpace
    path: Path | None
    raw: dict

    @property
    def name(self) -> str:
        return self.spec.name

    def definition(self) -> dict[str, Any]:
        """Everything that defines the trials (not the budget, storage or execution), as JSON values: the one
        source of the fingerprint, of run.json's `definition` and of what a refused resume says changed."""
        return json.loads(json.dumps(self._definition_key(), default=str))

    def _definition_key(self) -> dict[str, Any]:
        s = self.spec
        key = {"space": self.space.spec.model_dump(mode="json"), "mix": s.mix,
               "objectives": [o.model_dump() for o in s.objectives], "constraints": s.constraints,
               "sampler": s.sampler.model_dump(mode="json"), "seed": s.seed, "batch": s.effective_batch,
               "technology": s.technology}
        if s.uncertainty is not None:  # robust columns change the trials' values (absent: old fingerprints hold)
            key["uncertainty"] = s.uncertainty.model_dump(mode="json")
        if s.software is not None:  # another stack's constants change every value (absent: old fingerprints hold)
            key["software"] = s.software
        return key

    def fingerprint(self) -> str:
        """Hash of the definition (the same text as before run.json stored it, so older runs resume)."""
        key = json.dumps(self._definition_key(), sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def technology_path(self) -> Path | None:
        if self.spec.technology is None:
            return None
        p = Path(self.spec.technology)
        return p if p.is_absolute() or self.path is None else (self.path.parent / p)


def _at(where: str, positions: dict, path: tuple) -> str:
    return f"{location(where, positions, path)}: {'.'.join(str(p) for p in path)}"


def check_names(spec: StudySpec, space: SearchSpace, metric_names: list[str] | None, where: str,
                positions: dict) -> list[str]:
    """Unknown metric names in objectives/constraints/reference_point (did-you-mean), knobs in sweep."""
    problems: list[str] = []
    if metric_names is None:
        return problems
    metrics = set(metric_names)
    knobs = set(space.names)
    from dse.study.knobs import design_knobs, field_problem

    all_knobs = knobs | set(design_knobs() or {})
    numeric = [m for m in metric_names if not _is_text_metric(m)]
    for i, o in enumerate(spec.objectives):
        at = _at(where, positions, ('objectives', i, 'metric'))
        if not o.is_expression:
            if o.metric not in metrics:
                problems.append(f"{at}: {suggest(o.metric, metric_names, 'metric')}")
            elif _is_text_metric(o.metric):
                problems.append(f"{at}: metric '{o.metric}' is text, "
                                f"not a number (expected a numeric metric, e.g. {', '.join(numeric[:4])})")
            continue
        for ref in o.names():  # an expression over metrics and knobs
            if ref not in metrics and ref not in all_knobs:
                problems.append(f"{at}: objective reads {suggest(ref, sorted(metrics | knobs), 'metric or knob')}")
            elif ref in metrics and ref not in all_knobs and _is_text_metric(ref):
                problems.append(f"{at}: objective reads text metric '{ref}' (expected a numeric metric or a knob)")
    for i, c in enumerate(spec.constraints):
        for ref in ex.parse(c).names:
            if ref not in metrics and ref not in all_knobs:
                problems.append(f"{_at(where, positions, ('constraints', i))}: constraint reads "
                                f"{suggest(ref, sorted(metrics | knobs), 'metric or knob')}")
            elif ref in metrics and ref not in all_knobs and _is_text_metric(ref):
                problems.append(f"{_at(where, positions, ('constraints', i))}: constraint reads text metric "
                                f"'{ref}' (expected a numeric metric or a knob)")
    for j, e in enumerate(spec.sweep or []):
        for k, v in e.fixed.items():
            if k not in all_knobs:
                problems.append(f"{_at(where, positions, ('sweep', j, 'fixed', k))}: "
                                f"{suggest(k, sorted(all_knobs), 'design knob')}")
            else:
                why = field_problem(k, v)
                if why:
                    problems.append(f"{_at(where, positions, ('sweep', j, 'fixed', k))}: {why}")
    return problems


def check_robust(spec: StudySpec, metric_names: list[str], where: str, positions: dict) -> tuple[list[str], list[str]]:
    """(robust columns the study may read, problems): each `p<NN>.<metric>` needs `uncertainty:` and a numeric
    metric, each `prob.<name>` a condition `uncertainty.chance.<name>` over metrics and knobs."""
    known, problems = [], []
    u = spec.uncertainty
    fields = [(("objectives", i, "metric"), o.names()) for i, o in enumerate(spec.objectives)]
    fields += [(("constraints", i), ex.parse(c).names) for i, c in enumerate(spec.constraints)]
    for path, names in fields:
        for name in names:
            r = robust_column(name)
            if r is None or name in metric_names:
                continue
            at = _at(where, positions, path)
            kind, _, target = r
            if u is None:
                fix = (f"or use the nominal metric '{target}'" if kind == "quantile" else
                       f"with `chance: {{{target}: \"<condition>\"}}` in it")
                problems.append(f"{at}: '{name}' is a robust column (over Monte-Carlo samples of the technology "
                                f"ranges); add `uncertainty: {{samples: 32}}` to the study, {fix}")
            elif kind == "quantile" and target not in metric_names:
                problems.append(f"{at}: '{name}': {suggest(target, metric_names, 'metric')}")
            elif kind == "quantile" and _is_text_metric(target):
                problems.append(f"{at}: '{name}': metric '{target}' is text; a percentile needs a numeric metric")
            elif kind == "chance" and target not in u.chance:
                have = ", ".join(sorted(u.chance)) or "none"
                problems.append(f"{at}: '{name}' reads uncertainty.chance.{target}, which the study does not define "
                                f"(defined: {have}); add e.g. `chance: {{{target}: \"system_cost_usd <= 100000\"}}`")
            elif name not in known:
                known.append(name)
    if u is not None:
        for key, cond in u.chance.items():
            for ref in ex.parse(cond).names:
                if ref not in metric_names and not ref.startswith(("chip.", "system.")):
                    problems.append(f"{_at(where, positions, ('uncertainty', 'chance', key))}: condition reads "
                                    f"{suggest(ref, metric_names, 'metric')}")
    return known, problems


def _is_text_metric(name: str) -> bool:
    """`reason`, `<scenario>.reason`, `<scenario>.weights`: string columns, never objectives or bounds."""
    try:
        from dse.evaluate.metrics import metric_info
    except ImportError:  # pragma: no cover - model absent
        return name.rsplit(".", 1)[-1] in ("reason", "weights")
    info = metric_info(name)
    return info is not None and info.metric.dtype == "str"


def _default_metric_names(mix: Any, base: Path | None) -> list[str] | None:
    from dse.study.evaluator import ModelEvaluator

    try:
        return ModelEvaluator(mix, base_dir=base).metric_names()
    except ImportError:
        return None


def load_study(path: Path | str, *, data: dict | None = None, metric_names: Any = "auto") -> Study:
    """Load a study file → Study; any problem (shape, names, space file) raises ConfigError.

    `metric_names`: "auto" asks the model's evaluator for the mix; a list uses it; None skips the check."""
    path = Path(path)
    if data is None:
        data, positions = parse_yaml(path)
    else:
        positions = {}
    where = str(path)
    spec = validate_data(data, StudySpec, where=where, positions=positions, what="study")
    problems: list[str] = []
    if metric_names == "auto":
        try:
            metric_names = _default_metric_names(spec.mix, path.parent)
        except ConfigError as exc:
            raise ConfigError([f"{_at(where, positions, ('mix',))}: {p}" for p in exc.problems]) from None
        except DseUserError as exc:
            raise ConfigError([f"{_at(where, positions, ('mix',))}: {exc}"]) from None
    if metric_names is not None:
        robust, bad = check_robust(spec, list(metric_names), where, positions)
        problems += bad
        metric_names = list(metric_names) + robust
    if spec.space is not None:
        space_spec, s_where, s_pos, prefix = spec.space, where, positions, ("space",)
    else:
        space_path = Path(spec.search_space)
        if not space_path.is_absolute():
            space_path = Path(os.path.normpath(path.parent / space_path))  # errors name a clean path
        if not space_path.is_file():
            what = "is a folder, not a file" if space_path.is_dir() else "not found"
            raise ConfigError([f"{_at(where, positions, ('search_space',))}: search space file {what}: {space_path}"])
        s_data, s_pos = parse_yaml(space_path)
        s_where, prefix = str(space_path), ()
        space_spec = validate_data(s_data, SearchSpaceSpec, where=s_where, positions=s_pos, what="search space")
    problems += check_space(space_spec, s_where, s_pos, prefix, metric_names=metric_names)
    if not problems:
        space = SearchSpace(space_spec)
        problems += check_names(spec, space, metric_names, where, positions)
    if not problems and metric_names is not None:
        for j, e in enumerate(spec.sweep or []):
            if e.mix is None:
                continue
            try:
                names = set(_default_metric_names(e.mix, path.parent) or [])
            except DseUserError as exc:
                problems.append(f"{_at(where, positions, ('sweep', j, 'mix'))}: {exc}")
                continue
            for o in spec.objectives:
                if names and o.metric not in names:
                    problems.append(f"{_at(where, positions, ('sweep', j, 'mix'))}: objective metric "
                                    f"'{o.metric}' does not exist for mix {e.mix!r}")
    if spec.technology is not None:
        problems += _check_technology(spec.technology, path, where, positions)
    if problems:
        raise ConfigError(problems, header=f"{where}: {len(problems)} problem(s) in study")
    return Study(spec=spec, space=space, path=path, raw=data)


def _check_technology(tech: str, path: Path, where: str, positions: dict) -> list[str]:
    """Load the study's technology override now, so that a bad file is a config error and not a run
    whose every trial fails; its own problems are reported in that file."""
    p = Path(tech)
    p = p if p.is_absolute() else Path(os.path.normpath(path.parent / p))
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else "not found"
        return [f"{_at(where, positions, ('technology',))}: technology override file {what}: {p}"]
    try:
        from dse.model.technology import load_technology
    except ImportError:  # pragma: no cover - model absent
        return []
    try:
        load_technology(p)
    except ConfigError as exc:
        return list(exc.problems)  # each names the override file, line and field
    except DseUserError as exc:
        return [f"{_at(where, positions, ('technology',))}: technology override {p}: {exc}"]
    return []


def sub_studies(study: Study) -> list[Study]:
    """The sub-studies of a sweep (name `<entry>`), each with its overrides applied."""
    out = []
    for e in study.spec.sweep or []:
        space_spec = study.space.spec
        if e.fixed:
            params = {k: v for k, v in space_spec.params.items() if k not in e.fixed}
            fixed = {**space_spec.fixed, **e.fixed}
            space_spec = space_spec.model_copy(update={"params": params, "fixed": fixed})
        upd: dict[str, Any] = {"name": f"{study.name}-{e.name}", "sweep": None}
        for k in SweepEntry.model_fields.keys() - {"name", "fixed"}:  # every override an entry may give
            if getattr(e, k) is not None:
                upd[k] = getattr(e, k)
        spec = study.spec.model_copy(update=upd)
        out.append(Study(spec=spec, space=SearchSpace(space_spec), path=study.path,
                         raw={**copy.deepcopy(study.raw), "sweep_entry": e.model_dump(mode="json")}))
    return out
