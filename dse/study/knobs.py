"""The design knobs a search space may name: dotted flat keys of `dse.model.hardware.Design` and their types.

Read from the Design pydantic schema so that search spaces and designs cannot drift apart.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any


@functools.lru_cache(maxsize=1)
def design_knobs() -> dict[str, dict[str, Any]] | None:
    """{dotted knob: {"type": int|float|str|bool|list|None, "default": value or None, "choices": [...]|None}};
    None when the hardware model is not importable (then knob names are not checked)."""
    try:
        from dse.model.hardware import Design
    except ImportError:
        return None
    out: dict[str, dict[str, Any]] = {}
    for section in ("chip", "system"):
        field = Design.model_fields.get(section)
        if field is None:
            continue
        cls = _model_of(field.annotation)
        if cls is None:
            continue
        for name, f in cls.model_fields.items():
            typ, choices = _base_type(f.annotation)
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            out[f"{section}.{name}"] = {"type": typ, "default": default, "choices": choices}
    return out


def _model_of(ann: Any) -> Any:
    if isinstance(ann, type) and hasattr(ann, "model_fields"):
        return ann
    for a in typing.get_args(ann):
        m = _model_of(a)
        if m is not None:
            return m
    return None


def _base_type(ann: Any) -> tuple[Any, list | None]:
    """(python base type, literal choices) of a field annotation; Optional is unwrapped."""
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        vals = list(typing.get_args(ann))
        return type(vals[0]) if vals else str, vals
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return _base_type(args[0])
        if all(a in (int, float) for a in args):
            return float, None
        return None, None
    if origin in (list, tuple, set, frozenset):
        return list, None
    if origin is typing.Annotated:
        return _base_type(typing.get_args(ann)[0])
    if ann in (int, float, str, bool):
        return ann, None
    return None, None


def check_value(name: str, value: Any) -> str | None:
    """Why `value` is not valid for design knob `name` on its own (None when it is, or when unknown)."""
    try:
        from pydantic import ValidationError

        from dse.model.hardware import Design
    except ImportError:
        return None
    try:
        Design.from_flat({name: value})
    except ValidationError as exc:
        want = tuple(name.split("."))
        for err in exc.errors():
            if tuple(str(p) for p in err["loc"][: len(want)]) == want:
                return str(err["msg"]).removeprefix("Value error, ")
    except Exception:  # noqa: BLE001 - anything else is not about this value
        return None
    return None


def field_problem(name: str, value: Any) -> str | None:
    """Why `value` does not fit design knob `name`'s type and bounds (field validators that read other
    knobs are not run, so e.g. `memory_stacks: 0` is fine here); None when it fits or is unknown."""
    try:
        from pydantic import TypeAdapter, ValidationError

        from dse.model.hardware import Design
    except ImportError:
        return None
    section, _, field = name.partition(".")
    sec = Design.model_fields.get(section)
    cls = _model_of(sec.annotation) if sec is not None else None
    info = getattr(cls, "model_fields", {}).get(field)
    if info is None:
        return None
    try:
        ann = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        TypeAdapter(ann).validate_python(value)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    except Exception:  # noqa: BLE001 - an annotation TypeAdapter cannot handle: no opinion
        return None
    if isinstance(value, str) or _base_type(info.annotation)[0] in (str, list):
        return check_value(name, value)  # names looked up in the technology tables
    return None
