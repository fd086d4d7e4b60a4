"""Pydantic descriptions of one chip, one system and one design (DESIGN.md §3/§10), with derived figures.

The fields, bounds and checks of `ChipDesign` / `SystemDesign` are generated from the knob registry
(`dse.model.knobs`); this module adds the technology context and the derived-figure helpers.

Names of technologies (process node, memory, link, packaging, precisions) are checked against the
active technology library (`use_technology`, default: the packaged one), with did-you-mean messages.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator, model_validator

from dse.config import suggest
from dse.model.arrays import DesignArrays
from dse.model.knobs import BY_NAME, NONE, RULES, Knob, Rule, knobs_of
from dse.model.technology import Technology, default_technology

_ACTIVE_TECH: contextvars.ContextVar[Technology | None] = contextvars.ContextVar("dse_tech", default=None)


def active_technology() -> Technology:
    """The technology used to validate names and compute derived figures."""
    return _ACTIVE_TECH.get() or default_technology()


@contextlib.contextmanager
def use_technology(tech: Technology | None) -> Iterator[Technology]:
    """Validate / derive with `tech` (e.g. after `--tech override.yaml`) inside the block."""
    token = _ACTIVE_TECH.set(tech)
    try:
        yield active_technology()
    finally:
        _ACTIVE_TECH.reset(token)


def _check_name(value: str, table: dict, what: str, extra: tuple[str, ...] = ()) -> str:
    if value in table or value in extra:
        return value
    raise ValueError(suggest(value, list(table) + list(extra), what))


def _plain_number(v: Any) -> Any:
    """Reject what YAML would silently coerce into a size: `true`, or a number written as text."""
    if isinstance(v, bool) or isinstance(v, str):
        raise ValueError(f"input should be a valid number, got {type(v).__name__} {v!r}")
    return v


def _annotation(k: Knob) -> Any:
    if k.type is list:
        base: Any = list[str]
    elif k.type is dict:
        base = dict[str, float]
    elif k.choices is not None:
        base = Literal[k.choices]  # type: ignore[valid-type]
    else:
        base = k.type
    return base | None if k.optional else base


def _bounds(k: Knob) -> dict[str, float]:
    out: dict[str, float] = {}
    if k.low is not None:
        out["gt" if k.low_open else "ge"] = k.low
    if k.high is not None:
        out["lt" if k.high_open else "le"] = k.high
    return out


def _field(k: Knob) -> Any:
    kw: dict[str, Any] = {"title": k.label, "description": k.description}
    if k.numeric:
        kw.update(_bounds(k))
    if k.min_items is not None:
        kw["min_length"] = k.min_items
    if isinstance(k.default, (list, dict)):
        return Field(default_factory=k.default_value, **kw)
    return Field(k.default, **kw)


def _names_validator(k: Knob) -> Any:
    """Names of a str/list/dict knob looked up in the active technology's table (did-you-mean on a miss)."""
    def check(cls: type, v: Any) -> Any:
        table = getattr(active_technology(), k.table)
        if k.type is str:
            return _check_name(v, table, k.what, k.extra)
        if k.type is list:
            for p in v:
                _check_name(p, table, k.what, k.extra)
            return list(dict.fromkeys(v))
        for p, x in v.items():  # dict: names → numbers within the knob's bounds
            _check_name(p, table, k.what, k.extra)
            if not k.in_bounds(np.asarray([x], dtype=float))[0]:
                raise ValueError(f"{k.key}.{p} must be {k.rule()}, got {x}")
        return v
    return field_validator(k.key)(check)


def _rule_validator(r: Rule) -> Any:
    """A cross-knob rule checked once its knob is validated (the knobs it reads come earlier)."""
    key = BY_NAME[r.knob].key

    def check(cls: type, v: Any, info: ValidationInfo) -> Any:
        values = {r.knob: v}
        for name in r.reads:
            if name != r.knob:
                if BY_NAME[name].key not in info.data:
                    return v  # that knob failed validation already: its own error says why
                values[name] = info.data[BY_NAME[name].key]
        if not bool(r.ok(values)):
            raise ValueError(r.message(values))
        return v
    return field_validator(key)(check)


def _section_fields(section: str) -> type[BaseModel]:
    """The pydantic model of one section's knobs, fields and validators generated from the registry."""
    knobs = knobs_of(section)
    validators: dict[str, Any] = {}
    numeric = [k.key for k in knobs if k.numeric]
    if numeric:
        validators["_number"] = field_validator(*numeric, mode="before")(
            lambda cls, v: _plain_number(v))
    for k in knobs:
        if k.table is not None:
            validators[f"_names_{k.key}"] = _names_validator(k)
    for i, r in enumerate(x for x in RULES if BY_NAME[x.knob].section == section):
        validators[f"_rule_{i}"] = _rule_validator(r)
    return create_model(f"_{section.title()}Knobs", __config__=ConfigDict(extra="forbid"), __module__=__name__,
                        __validators__=validators, **{k.key: (_annotation(k), _field(k)) for k in knobs})


class ChipDesign(_section_fields("chip")):
    """One accelerator package: compute array, SRAM, off-chip memory, links, packaging (knobs: dse.model.knobs)."""

    @field_validator("memory_stacks")
    @classmethod
    def _stacks_need_a_memory(cls, v: Any, info: ValidationInfo) -> Any:
        """Stacks written next to `memory: none` would be silently ignored (no memory, no stacks): an error
        in a design file. Checked only when the field is given; a search space's stacks are inactive
        without memory (`when:` in search_spaces/*.yaml), so the vectorized model keeps ignoring them."""
        if info.data.get("memory") == NONE and v is not None and v > 0:
            mems = ", ".join(active_technology().memories)
            raise ValueError(f"{v} stacks with memory: none would be ignored (no off-chip memory); "
                             f"set memory_stacks: 0, or pick a memory ({mems})")
        return v

    @model_validator(mode="after")
    def _no_memory_no_stacks(self) -> "ChipDesign":
        """`memory: none` with memory_stacks left at its default holds 0 stacks, so that `to_flat` writes
        what the model evaluates and the written design reads back."""
        if self.memory == NONE and "memory_stacks" not in self.model_fields_set:
            self.memory_stacks = 0
        return self

    # ---- derived figures (computed by the same vectorized code as studies) ----
    def _derived(self) -> dict[str, Any]:
        return Design(chip=self).derived()

    @property
    def macs(self) -> int:
        """MAC units: cores × array_rows × array_cols."""
        return self.cores * self.array_rows * self.array_cols

    def peak_tflops(self, precision: str = "bf16") -> float:
        """Dense peak TFLOPS at `precision` (0 if unsupported): 2 · MACs · clock · multiplier."""
        return self._derived()["peak_tflops"].get(precision, 0.0)

    @property
    def mem_bw_tbps(self) -> float:
        return self._derived()["mem_bw_tbps"]

    @property
    def mem_gb(self) -> float:
        return self._derived()["mem_gb"]

    @property
    def sram_bw_tbps(self) -> float:
        return self._derived()["sram_tbps"]

    @property
    def knee_flop_per_byte(self) -> float:
        return self._derived()["knee_flop_per_byte"]


class SystemDesign(_section_fields("system")):
    """`num_chips` chips joined by a topology (knobs: dse.model.knobs)."""


class Design(BaseModel):
    """A named design: one chip type × a system. This is what `dse export` writes and `dse evaluate` reads."""

    model_config = ConfigDict(extra="forbid")

    name: str = "design"
    tags: list[str] = Field(default_factory=list)
    chip: ChipDesign = Field(default_factory=ChipDesign)
    system: SystemDesign = Field(default_factory=SystemDesign)

    def to_flat(self) -> dict[str, Any]:
        """Dotted keys (`chip.cores`, `system.num_chips`, `chip.precision_speedup.int8`) → values."""
        out: dict[str, Any] = {"name": self.name, "tags": list(self.tags)}
        for section in ("chip", "system"):
            for key, value in getattr(self, section).model_dump().items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        out[f"{section}.{key}.{sub}"] = v
                else:
                    out[f"{section}.{key}"] = value
        return out

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> "Design":
        """Inverse of `to_flat`; unknown dotted keys are validation errors."""
        return cls.model_validate(unflatten(flat))

    def derived(self, tech: Technology | None = None) -> dict[str, Any]:
        """Scalar derived figures (peak TFLOPS per precision, TB/s, GB, knee, ...)."""
        arr = DesignArrays.from_designs([self], tech or active_technology())
        return arr.row(0)


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{'chip.cores': 4, 'chip.precision_speedup.int8': 4} → {'chip': {'cores': 4, 'precision_speedup': {...}}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        cur = out
        for part in parts[:-1]:
            nxt = cur.setdefault(part, {})
            if not isinstance(nxt, dict):
                nxt = cur[part] = {}
            cur = nxt
        if value is None and len(parts) > 2:
            continue  # e.g. an absent precision override in a results table
        cur[parts[-1]] = value
    return out
