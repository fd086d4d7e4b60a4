"""Search-space YAML: which design knobs vary (categorical, int/float range, fixed), when, and how.

Also converts a space to Optuna distributions, suggests a trial's knobs in dependency order (inactive
conditional knobs get a neutral value), turns per-trial knob dicts into numpy columns for the
vectorized model, and enumerates a discretised space for the `grid` sampler in shards.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import optuna
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from dse.config import NoBoolNumbers, parse_yaml, suggest, validate_data
from dse.errors import ConfigError
from dse import expr as ex
from dse.study.knobs import check_value, design_knobs, field_problem, knob_kind, out_of_bounds

Scalar = Union[bool, int, float, str]


class _Base(NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ParamBase(_Base):
    when: str | None = Field(None, description="condition on other knobs; the knob is inactive otherwise")
    inactive: Scalar | None = Field(None, description="value used when `when` is false (default: the design default)")

    @field_validator("when")
    @classmethod
    def _parse_when(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ex.parse(v)
            except ex.ExprError as exc:
                raise ValueError(str(exc)) from None
        return v


class CategoricalParam(_ParamBase):
    """`{choices: [a, b, c]}`."""

    choices: list[Scalar] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, v: list) -> list:
        seen = []
        for c in v:
            if c in seen and type(c) is type(seen[seen.index(c)]):
                raise ValueError(f"duplicate choice {c!r}")
            seen.append(c)
        return v


# most values one stepped range may have: beyond it a step is a typo (1e-300), and Optuna's exact
# (Decimal) step check fails on the ratio
MAX_STEPS = 1e9


class RangeParam(_ParamBase):
    """`{low, high, log, step, type}`; `type` defaults to the design field's type."""

    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)
    type: Literal["int", "float"] | None = None
    grid_points: int | None = Field(None, ge=1, description="points of this knob in a grid study")

    @model_validator(mode="after")
    def _check(self) -> "RangeParam":
        if self.low > self.high:
            raise ValueError(f"low ({_num(self.low)}) must be <= high ({_num(self.high)})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got low={_num(self.low)}")
        if self.log and self.step is not None and not (self.type == "int" and self.step == 1):
            raise ValueError("log and step cannot be combined")
        if self.step is not None and self.high > self.low:
            if self.step > self.high - self.low:
                raise ValueError(f"step ({_num(self.step)}) is larger than the range {_num(self.low)}..{_num(self.high)}; "
                                 "use a smaller step, or `value:` to fix the knob")
            if (self.high - self.low) / self.step > MAX_STEPS:
                raise ValueError(f"step ({_num(self.step)}) cuts {_num(self.low)}..{_num(self.high)} into more than "
                                 f"{MAX_STEPS:.0e} values; use a coarser step or none (a continuous range)")
        if self.type == "int":
            for k in ("low", "high", "step"):
                v = getattr(self, k)
                if v is not None and float(v) != int(v):
                    raise ValueError(f"{k} must be an integer for type int, got {v}")
        return self


class FixedParam(_ParamBase):
    """`{value: x}`: the same as listing the knob under `fixed:`."""

    value: Any


def _param_kind(v: Any) -> str:
    if isinstance(v, dict):
        if "choices" in v:
            return "categorical"
        if "value" in v:
            return "fixed"
        return "range"
    if isinstance(v, BaseModel):
        return {CategoricalParam: "categorical", FixedParam: "fixed"}.get(type(v), "range")
    return "range"


Param = Annotated[
    Union[Annotated[CategoricalParam, Tag("categorical")], Annotated[RangeParam, Tag("range")],
          Annotated[FixedParam, Tag("fixed")]],
    Discriminator(_param_kind),
]


class SearchSpaceSpec(_Base):
    """A search space file (`search_spaces/*.yaml`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    params: dict[str, Param] = Field(min_length=1)
    fixed: dict[str, Any] = Field(default_factory=dict)
    constraints: list[str] = Field(default_factory=list, description="derived constraints over knobs and metrics")
    grid_points: int = Field(5, ge=1, description="points per float range in a grid study")

    @field_validator("constraints")
    @classmethod
    def _parse_constraints(cls, v: list[str]) -> list[str]:
        return ex.check_constraints(v)


def decimals_of(low: float, step: float) -> int:
    """Decimals that every point low + k·step of a stepped range needs (0.05 + k·0.1 → 2)."""
    return max(0, *(-Decimal(repr(float(x))).normalize().as_tuple().exponent for x in (low, step)))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# ---------------------------------------------------------------------------------------------


class Knob:
    """One resolved, varying knob: its Optuna distribution, condition and neutral value."""

    def __init__(self, name: str, spec: CategoricalParam | RangeParam, field: dict | None):
        self.name = name
        self.spec = spec
        self.when = ex.parse(spec.when) if spec.when else None
        if isinstance(spec, CategoricalParam):
            self.kind = "categorical"
            self.dist: optuna.distributions.BaseDistribution = optuna.distributions.CategoricalDistribution(spec.choices)
        else:
            ftype = field["type"] if field else None
            is_int = spec.type == "int" or (spec.type is None and (
                ftype is int or (ftype is None and float(spec.low).is_integer() and float(spec.high).is_integer()
                                 and (spec.step is None or float(spec.step).is_integer()))))
            self.kind = "int" if is_int else "float"
            if is_int:
                step = int(spec.step or 1)
                self.dist = optuna.distributions.IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=step)
            else:
                self.dist = optuna.distributions.FloatDistribution(float(spec.low), float(spec.high), log=spec.log,
                                                                   step=spec.step)
        if spec.inactive is not None:
            self.neutral = spec.inactive
        elif field and field.get("default") is not None:
            self.neutral = field["default"]
        elif self.kind == "categorical":
            self.neutral = spec.choices[0]
        else:
            self.neutral = self.dist.low

    def suggest(self, trial: optuna.Trial) -> Any:
        d = self.dist
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            return trial.suggest_categorical(self.name, d.choices)
        if isinstance(d, optuna.distributions.IntDistribution):
            return trial.suggest_int(self.name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log)

    def grid_values(self, default_points: int) -> list:
        """The discretised values of this knob for a grid study."""
        d = self.dist
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            return list(d.choices)
        pts = getattr(self.spec, "grid_points", None) or default_points
        if isinstance(d, optuna.distributions.IntDistribution):
            n_all = (d.high - d.low) // d.step + 1
            if n_all <= pts:
                return list(range(d.low, d.high + 1, d.step))
            raw = np.geomspace(d.low, d.high, pts) if d.log else np.linspace(d.low, d.high, pts)
            vals = sorted({int(d.low + round((v - d.low) / d.step) * d.step) for v in raw})
            return vals
        if d.step is not None:
            n_all = int(round((d.high - d.low) / d.step)) + 1
            if n_all <= pts:
                return [float(d.low + i * d.step) for i in range(n_all)]
        if pts == 1:
            return [float(d.low)]
        raw = np.geomspace(d.low, d.high, pts) if d.log else np.linspace(d.low, d.high, pts)
        return [float(v) for v in raw]


class SearchSpace:
    """A validated search space ready for sampling, conversion to columns and grid enumeration."""

    def __init__(self, spec: SearchSpaceSpec):
        self.spec = spec
        fields = design_knobs()
        self.fixed: dict[str, Any] = dict(spec.fixed)
        knobs: dict[str, Knob] = {}
        for name, p in spec.params.items():
            if isinstance(p, FixedParam):
                self.fixed[name] = p.value
            else:
                knobs[name] = Knob(name, p, fields.get(name))
        self.knobs = _topo_order(knobs)
        self.constraints = [ex.parse(c) for c in spec.constraints]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def names(self) -> list[str]:
        """Every knob the space sets: varying ones then fixed ones."""
        return list(self.knobs) + [k for k in self.fixed if k not in self.knobs]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {n: k.dist for n, k in self.knobs.items()}

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask the trial for every active knob; returns the full knob dict (fixed and neutral included)."""
        values: dict[str, Any] = dict(self.fixed)
        for name, k in self.knobs.items():
            if k.when is not None and not bool(k.when.truth(values)):
                values[name] = k.neutral
            else:
                values[name] = k.suggest(trial)
        return values

    def complete(self, params: dict[str, Any]) -> dict[str, Any]:
        """Full knob dict from Optuna params (missing = inactive → neutral)."""
        values: dict[str, Any] = dict(self.fixed)
        for name, k in self.knobs.items():
            values[name] = params.get(name, k.neutral)
        return values

    def columns(self, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Per-trial knob dicts → one numpy array per knob (the input of DesignArrays.from_columns)."""
        return {name: _as_array([r[name] for r in rows]) for name in self.names}

    def is_active(self, name: str, values: dict[str, Any]) -> bool:
        k = self.knobs[name]
        return k.when is None or bool(k.when.truth(values))

    # -- grid -----------------------------------------------------------------------------------

    def grid_axes(self, points: int | None = None) -> dict[str, list]:
        pts = points or self.spec.grid_points
        return {n: k.grid_values(pts) for n, k in self.knobs.items()}

    def grid_size_upper(self, points: int | None = None) -> int:
        return math.prod(len(v) for v in self.grid_axes(points).values())

    def grid_shard(self, start: int, stop: int, points: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rows [start, stop) of the full grid product (C order): (kept mask, columns of kept rows).

        A row is kept unless an inactive conditional knob has a grid index other than 0 (those rows
        would duplicate the one with the neutral value); inactive knobs take their neutral value."""
        axes = self.grid_axes(points)
        names = list(axes)
        shape = [len(axes[n]) for n in names]
        flat = np.arange(start, min(stop, math.prod(shape)), dtype=np.int64)
        idx = np.unravel_index(flat, shape) if names else ()
        cols: dict[str, np.ndarray] = {}
        keep = np.ones(len(flat), dtype=bool)
        for name, ix in zip(names, idx):
            cols[name] = _as_array(axes[name])[ix]
        for name, k in self.knobs.items():
            if k.when is None:
                continue
            env = {**{f: _const(v, len(flat)) for f, v in self.fixed.items() if f in k.when.names}, **cols}
            active = np.broadcast_to(k.when.truth(env), (len(flat),))
            ix = idx[names.index(name)]
            keep &= active | (ix == 0)
            if not active.all():
                col = cols[name].astype(object) if cols[name].dtype.kind in "US" else cols[name].copy()
                col[~active] = k.neutral
                cols[name] = _as_array(list(col))
        kept = {n: c[keep] for n, c in cols.items()}
        m = int(keep.sum())
        for f, v in self.fixed.items():
            if f not in kept:
                kept[f] = _const(v, m)
        return keep, kept


def _const(v: Any, n: int) -> np.ndarray:
    """A column of n copies of one value (lists, e.g. precisions, become object cells)."""
    if isinstance(v, (list, tuple, dict)):
        out = np.empty(n, dtype=object)
        out.fill(v)  # (every cell the same object, as a loop of `out[i] = v` sets it; ~10x faster at 200 rows)
        return out
    return _as_array([v]).repeat(n)


def _as_array(vals: list) -> np.ndarray:
    """Homogeneous numpy array: int64, float64, bool or str; lists (e.g. precisions) stay objects."""
    if len(vals) and all(isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=bool)
    if len(vals) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=np.int64)
    if len(vals) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in vals):
        return np.array(vals, dtype=np.float64)
    if len(vals) and all(isinstance(v, str) for v in vals):
        return np.array(vals, dtype=str)
    out = np.empty(len(vals), dtype=object)
    for i, v in enumerate(vals):
        out[i] = v
    return out


def _topo_order(knobs: dict[str, Knob]) -> dict[str, Knob]:
    """Order knobs so that every `when` reads knobs decided before it (file order otherwise)."""
    done: dict[str, Knob] = {}
    pending = list(knobs)
    while pending:
        progressed = False
        for name in list(pending):
            deps = [d for d in (knobs[name].when.names if knobs[name].when else []) if d in knobs]
            if all(d in done for d in deps):
                done[name] = knobs[name]
                pending.remove(name)
                progressed = True
        if not progressed:
            raise ConfigError([f"conditional knobs depend on each other in a cycle: {', '.join(pending)}"])
    return done


# -- loading & semantic checks -------------------------------------------------------------------


def check_space(spec: SearchSpaceSpec, where: str, positions: dict, prefix: tuple = (),
                metric_names: list[str] | None = None) -> list[str]:
    """Semantic problems (unknown knob names, bad conditions, bad fixed values) as `file:line:col:` lines."""
    problems: list[str] = []
    fields = design_knobs()

    def at(path: tuple, key: bool = False) -> str:
        full = prefix + path
        pos = positions.get(full + ("<key>",)) if key else None
        pos = pos or positions.get(full) or positions.get(prefix) or positions.get(())
        loc = f"{where}:{pos[0]}:{pos[1]}" if pos else where
        return f"{loc}: {'.'.join(str(p) for p in full)}"

    all_names = list(spec.params) + [k for k in spec.fixed if k not in spec.params]
    for section, names in (("params", list(spec.params)), ("fixed", list(spec.fixed))):
        for name in names:
            if name not in fields:
                problems.append(f"{at((section, name), key=True)}: {suggest(name, fields, 'design knob')}")
            if section == "fixed" and name in spec.params:
                problems.append(f"{at((section, name), key=True)}: knob is both varied (params) and fixed")
            elif section == "fixed" and name in fields:
                why = check_value(name, spec.fixed[name])
                if why:
                    problems.append(f"{at((section, name))}: {why}")
    for name, p in spec.params.items():
        field = fields.get(name)
        if isinstance(p, CategoricalParam) and field:
            for i, c in enumerate(p.choices):
                why = check_value(name, c)
                if why:
                    problems.append(f"{at(('params', name, 'choices', i))}: {why}")
        if isinstance(p, RangeParam) and field and field["type"] not in (int, float):
            problems.append(f"{at(('params', name))}: knob {name} is not numeric; use `choices: [...]`")
        elif isinstance(p, RangeParam) and field:
            for bound in ("low", "high"):  # a range must lie inside the knob's registry bounds
                v = getattr(p, bound)
                why = out_of_bounds(name, v)
                if why:
                    problems.append(f"{at(('params', name, bound))}: {why}; got {_num(v)}")
        if p.inactive is not None and field:
            why = field_problem(name, p.inactive)
            if why:
                problems.append(f"{at(('params', name, 'inactive'))}: {why}")
        if p.when:
            for ref in ex.parse(p.when).names:
                if ref == name:
                    problems.append(f"{at(('params', name, 'when'))}: condition refers to the knob itself")
                elif ref not in all_names:
                    problems.append(f"{at(('params', name, 'when'))}: condition reads "
                                    f"{suggest(ref, all_names, 'knob of this space')}")
            kinds = {n: knob_kind(n) for n in all_names if knob_kind(n) is not None}
            if set(ex.parse(p.when).names) <= set(kinds) and name not in ex.parse(p.when).names:
                try:  # kinds from the knob registry: e.g. a memory name compared with a number
                    ex.check_types(p.when, kinds)
                except ex.ExprError as exc:
                    problems.append(f"{at(('params', name, 'when'))}: {exc}")
    valid = set(all_names) | set(fields) | set(metric_names or [])
    if metric_names is not None:
        for i, c in enumerate(spec.constraints):
            for ref in ex.parse(c).names:
                if ref not in valid:
                    problems.append(f"{at(('constraints', i))}: constraint reads "
                                    f"{suggest(ref, sorted(set(all_names) | set(metric_names)), 'knob or metric')}")
    if not problems:
        try:
            SearchSpace(spec)
        except ConfigError as exc:
            problems += [f"{at(('params',))}: {p}" for p in exc.problems]
    return problems


def load_space(path: Path | str, *, metric_names: list[str] | None = None) -> SearchSpace:
    """Load and fully check a search-space file; every problem is a ConfigError line."""
    data, positions = parse_yaml(path)
    spec = validate_data(data, SearchSpaceSpec, where=str(path), positions=positions, what="search space")
    problems = check_space(spec, str(path), positions, metric_names=metric_names)
    if problems:
        raise ConfigError(problems, header=f"{path}: {len(problems)} problem(s) in search space")
    return SearchSpace(spec)


def product_size(axes: dict[str, list]) -> int:
    return math.prod(len(v) for v in axes.values())


__all__ = ["SearchSpaceSpec", "SearchSpace", "Knob", "CategoricalParam", "RangeParam", "FixedParam",
           "load_space", "check_space", "product_size"]
