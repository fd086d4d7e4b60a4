"""Models as user data: a model YAML, a Hugging Face `config.json` (read from disk, never fetched) or an
inline mapping → `ModelShape`, with errors that name the file, line and field.

A model YAML holds ModelShape fields; `base: <model>` starts from another model (a built-in name or a
file) and overrides some fields. A file (YAML or JSON) with a `model_type` key is read as a Hugging
Face config (see `dse.workloads.hf`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from pydantic import ValidationError

from dse.config import _expected, did_you_mean, location, parse_yaml_text, suggest
from dse.errors import ConfigError, DseUserError
from dse.workloads import hf
from dse.workloads.shapes import (
    MODEL_FILE_SUFFIXES,
    ModelShape,
    builtin_name,
    builtin_shape,
    model_names,
)


def find_model_file(spec: str | Path, base_dir: Path | str | None = None) -> Path | None:
    """The model file `spec` names (a folder means its config.json), tried against `base_dir` first
    when relative, then the working directory; None when there is no such file."""
    p = Path(str(spec)).expanduser()
    candidates = [p] if p.is_absolute() else ([Path(base_dir) / p] if base_dir else []) + [p]
    for c in candidates:
        if c.is_dir() and (c / "config.json").is_file():
            return (c / "config.json").resolve()
        if c.is_file() and (c.suffix.lower() in MODEL_FILE_SUFFIXES or c.name == "config.json"):
            return c.resolve()
    return None


def load_model_file(path: Path | str) -> ModelShape:
    """The model in a YAML or JSON file (cached per path and modification time)."""
    p = Path(path)
    try:
        stamp = p.stat().st_mtime_ns
    except OSError:
        raise ConfigError([f"{p}: file not found"]) from None
    return _load_model_file(str(p), stamp)


_LOADING: list[str] = []  # model files being read, outermost first: a `base:` chain that comes back is a cycle


@lru_cache(maxsize=256)
def _load_model_file(path: str, _stamp: int) -> ModelShape:
    if path in _LOADING:
        chain = " -> ".join(Path(p).name for p in [*_LOADING[_LOADING.index(path):], path])
        raise ConfigError([f"{path}: base: the models' `base:` chain comes back to this file ({chain}); "
                           "start it from a built-in model or another file"])
    _LOADING.append(path)
    try:
        return _read_model_file(path)
    finally:
        _LOADING.pop()


def _read_model_file(path: str) -> ModelShape:

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{p}: cannot read: {exc}"]) from None
    try:  # JSON is (nearly) YAML: the YAML parser gives line numbers for the error messages
        data, positions = parse_yaml_text(text, str(p))
    except ConfigError as yaml_error:
        # only a JSON that YAML cannot parse is read as JSON; a problem in its content (a duplicated
        # key, an integer beyond int64) stays an error
        if p.suffix.lower() != ".json" or not all("malformed YAML" in q for q in yaml_error.problems):
            raise
        try:
            data, positions = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant), {}
        except json.JSONDecodeError as exc:
            raise ConfigError([f"{p}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}"]) from None
        except ValueError as exc:
            raise ConfigError([f"{p}: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{p}:1:1: (top level): expected a mapping of model fields, got "
                           f"{type(data).__name__}"])
    default_name = p.parent.name if p.name == "config.json" else p.stem
    return shape_from_mapping(data, where=str(p), positions=positions, base_dir=p.parent,
                              default_name=default_name)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """json.loads hook: a key given twice in one object is an error (json keeps the last silently)."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"{k}: duplicate key; keep one")
        out[k] = v
    return out


def _no_constant(name: str):
    """json.loads hook: NaN / Infinity are not JSON numbers and never a model size."""
    raise ValueError(f"{name} is not a number; give a finite value")


def shape_from_mapping(data: dict, *, where: str, positions: dict | None = None,
                       base_dir: Path | str | None = None, default_name: str = "") -> ModelShape:
    """A ModelShape from a mapping of shape fields (optionally `base:`) or a Hugging Face config."""

    positions = positions or {}
    if "model_type" in data:
        fields, keymap = hf.shape_fields(data, where, positions)
        fields.setdefault("name", str(data.get("_name_or_path") or default_name).rstrip("/").split("/")[-1])
        return validate_shape(fields, where=where, positions=positions, keymap=keymap)
    fields = dict(data)
    if "base" in fields:
        base_spec = fields.pop("base")
        try:
            base = load_model_shape(base_spec, base_dir=base_dir)
        except DseUserError as exc:
            raise ConfigError([f"{location(where, positions, ('base',))}: base: {exc}"]) from None
        merged = base.model_dump(exclude_defaults=True)
        merged.pop("name", None)
        # fields the base derived (head_dim = hidden / heads, kv_heads = heads) follow the overrides
        if ({"hidden", "heads"} & fields.keys()) and base.heads and base.head_dim == base.hidden // base.heads:
            merged.pop("head_dim", None)
        if "heads" in fields and base.kv_heads == base.heads:
            merged.pop("kv_heads", None)
        merged["source"] = f"{base.source}; overridden in {where}"
        fields = {**merged, **fields}
    if not fields.get("name"):
        fields["name"] = default_name or "custom"
    fields.setdefault("source", where)
    return validate_shape(fields, where=where, positions=positions)


def validate_shape(fields: dict[str, Any], *, where: str, positions: dict | None = None,
                   keymap: dict[str, tuple] | None = None) -> ModelShape:
    """Validate shape fields; each problem names the file, line and the field as the user wrote it
    (`keymap`: shape field → key path in the user's file, e.g. heads → ('num_attention_heads',))."""

    positions, keymap = positions or {}, keymap or {}
    try:
        return ModelShape.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function"))))
            msg = _expected(err)
            if not loc and ": " in msg and msg.split(": ", 1)[0] in ModelShape.model_fields:
                field, msg = msg.split(": ", 1)
                loc = (field,)
            path = (keymap.get(loc[0], (loc[0],)) + loc[1:]) if loc else ()
            if err["type"] == "extra_forbidden":

                best = did_you_mean(str(loc[-1]), ModelShape.model_fields) if loc else None
                msg = "unknown field" + (f" (did you mean `{best}`?)" if best else "")
                at = location(where, positions, path + ("<key>",)) if path + ("<key>",) in positions \
                    else location(where, positions, path)
            else:
                at = location(where, positions, path)
            problems.append(f"{at}: {'.'.join(str(p) for p in path) or '(top level)'}: {msg}")
        raise ConfigError(problems, header=f"{where}: {len(problems)} problem(s) in the model"
                          if len(problems) > 1 else None) from None


ModelSpec = Union[str, Path, dict, ModelShape]


def load_model_shape(spec: ModelSpec, *, base_dir: Path | str | None = None) -> ModelShape:
    """A model from anything a user may write where a model is named: a built-in name
    (case-insensitive), a path to a model YAML or to a Hugging Face `config.json` (or a folder holding
    one; relative paths are tried against `base_dir`, then the working directory), an inline mapping
    of shape fields (`base: <model>` inherits and overrides), or a ModelShape. Errors are
    DseUserError naming the file, line and field."""
    if isinstance(spec, ModelShape):
        return spec
    if isinstance(spec, dict):
        return shape_from_mapping(spec, where="<inline model>", base_dir=base_dir)
    key = builtin_name(str(spec))
    if key is not None:
        return builtin_shape(key)
    path = find_model_file(spec, base_dir)
    if path is not None:
        return load_model_file(path)
    msg = suggest(str(spec), model_names(), what="model")
    if str(spec).endswith(MODEL_FILE_SUFFIXES) or "/" in str(spec).replace("ViT-", ""):
        msg = f"model file '{spec}' not found" + (f" (also looked in {base_dir})" if base_dir else "") \
            + f"; or name a built-in model ({', '.join(sorted(model_names()))})"
    raise DseUserError(msg)
