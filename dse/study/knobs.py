"""The design knobs a search space may name, and the checks of one knob value, from the knob registry
(`dse.model.knobs`), so that search spaces and designs cannot drift apart."""

from __future__ import annotations

import functools
import typing
from typing import Any

import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from dse.evaluate.deployment import DEPLOYMENT_BY_NAME, DEPLOYMENT_KNOBS, POOL_PREFIX
from dse.model.hardware import ChipDesign, Design, SystemDesign
from dse.model.knobs import BY_NAME, KNOBS, Knob

_SECTION_MODELS: dict[str, type[BaseModel]] = {"chip": ChipDesign, "system": SystemDesign}

# A study may search a second design at once: the prefill pool of a disaggregated serving fleet
# (docs/serving.md). Its knobs are the registry's with the prefix POOL_PREFIX (`prefill.chip.cores`,
# declared with the deployment knobs); a knob the space does not give takes the main design's value
# (dse.study.evaluator).


def registry_name(name: str) -> str:
    """The registry knob a (possibly pool-prefixed) search-space name sets: `prefill.chip.cores` → `chip.cores`."""
    return name.removeprefix(POOL_PREFIX)


@functools.lru_cache(maxsize=1)
def design_knobs() -> dict[str, dict[str, Any]]:
    """{dotted knob: {"type": int|float|str|bool|list|dict, "default": value or None, "choices": [...]|None,
    "knob": the registry `Knob`}} for every design knob, and the same under `POOL_PREFIX`."""
    base = {k.name: {"type": k.type, "default": k.default_value(),
                     "choices": list(k.choices) if k.choices is not None else None, "knob": k} for k in KNOBS}
    serving = {k.name: {"type": k.type, "default": k.default_value(), "choices": None, "knob": k}
               for k in DEPLOYMENT_KNOBS}
    return base | {POOL_PREFIX + name: info for name, info in base.items()} | serving


def knob(name: str) -> Knob | None:
    """The registry entry of a dotted knob name (None when unknown)."""
    return BY_NAME.get(registry_name(name)) or DEPLOYMENT_BY_NAME.get(name)


def _deployment_problem(k: Knob, value: Any) -> str | None:
    """Why `value` does not fit deployment knob `k` (a number inside its bounds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (k.type is int and float(value) != int(value)):
        return f"input should be {'an integer' if k.type is int else 'a number'}, got {value!r}"
    return None if k.in_bounds(np.asarray([float(value)]))[0] else f"{k.name} must be {k.rule()}"


def knob_kind(name: str) -> str | None:
    """Kind of a knob's value in expressions (`when:`, constraints): "number", "bool" or "category"
    (names and lists of names); None when unknown."""
    k = knob(name)
    if k is None:
        return None
    return "number" if k.numeric else "bool" if k.type is bool else "category"


def check_value(name: str, value: Any) -> str | None:
    """Why `value` is not valid for design knob `name` on its own, with every other knob at its default
    (None when it is valid, or when `name` is unknown)."""
    if name in DEPLOYMENT_BY_NAME:
        return _deployment_problem(DEPLOYMENT_BY_NAME[name], value)
    name = registry_name(name)
    if name not in BY_NAME:
        return None
    try:
        Design.from_flat({name: value})
    except ValidationError as exc:
        want = tuple(name.split("."))
        for err in exc.errors():
            if tuple(str(p) for p in err["loc"][: len(want)]) == want:
                return str(err["msg"]).removeprefix("Value error, ")
    return None


def field_problem(name: str, value: Any) -> str | None:
    """Why `value` does not fit design knob `name`'s type and registry bounds (cross-knob rules are not
    run, so e.g. `memory_stacks: 0` is fine here); None when it fits or the knob is unknown."""
    k = knob(name)
    if k is None:
        return None
    if name in DEPLOYMENT_BY_NAME:
        return _deployment_problem(k, value)
    info = _SECTION_MODELS[k.section].model_fields[k.key]
    ann = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    try:
        TypeAdapter(ann).validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    if k.numeric and isinstance(value, (bool, str)):  # as the design model: no `true` or "64" for a size
        return f"input should be a valid number, got {type(value).__name__} {value!r}"
    if k.type in (str, list, dict):
        return check_value(name, value)  # names looked up in the technology tables
    return None


def out_of_bounds(name: str, value: float) -> str | None:
    """Why a search-space range end `value` lies outside knob `name`'s registry bounds (None: inside)."""
    k = knob(name)
    if k is None or not k.numeric or k.in_bounds(np.asarray([float(value)]))[0]:
        return None
    typed = int(value) if k.type is int and float(value).is_integer() else value
    return field_problem(name, typed) or f"{name} must be {k.rule()}"
