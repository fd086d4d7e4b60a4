"""YAML → pydantic loading with `file:line:col: dotted.path: message` errors (see docs/ARCHITECTURE.md).

PyYAML's `compose()` keeps a mark on every node; we index those marks by dotted path so that each
pydantic error can be reported at the line the user has to edit.
"""

from __future__ import annotations

import difflib
import math
import stat
import typing
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from dse.errors import ConfigError

T = TypeVar("T", bound=BaseModel)

Position = tuple[int, int]  # 1-based (line, column)


def suggest(name: str, choices: Iterable[str], what: str = "name") -> str:
    """Message for an unknown name: "unknown <what> 'foo' (did you mean 'bar'?; valid: a, b, c)"."""
    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?; " if close else ""
    return f"unknown {what} '{name}' ({hint}valid: {', '.join(choices)})"


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """The closest valid name to `name`, or None when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return close[0] if close else None


def _index_positions(root: yaml.Node) -> dict[tuple, Position]:
    """Map every path (tuple of keys / indices) in a composed YAML tree to its (line, col); keys map
    both the key node (path + ('<key>',)) and the value node (path). A node reached again through an
    alias is not walked again (its inner paths resolve to the alias's position), so this is linear."""
    out: dict[tuple, Position] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        mark = node.start_mark
        out.setdefault(prefix, (mark.line + 1, mark.column + 1))
        if id(node) in seen:
            continue
        seen.add(id(node))
        kids: list[tuple[yaml.Node, tuple]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                path = prefix + (key_node.value if isinstance(key_node, yaml.ScalarNode) else "?",)
                out[path + ("<key>",)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[path] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
                kids.append((value_node, path))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                path = prefix + (i,)
                out[path] = (item.start_mark.line + 1, item.start_mark.column + 1)
                kids.append((item, path))
        stack += reversed(kids)  # first child walked first: a shared node is indexed under its first path
    return out


def _present(data: Any, loc: tuple, keep_last: bool = True) -> tuple:
    """Drop pydantic loc parts that are not in the input (discriminator tags, `function-after[...]`);
    the last part is kept even when absent if `keep_last` (a missing field)."""
    kept: list = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            kept.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            kept.append(part)
            cur = cur[part]
        elif i == len(loc) - 1 and keep_last and not _is_tag(part):
            kept.append(part)
    return tuple(kept)


def _is_tag(part: Any) -> bool:
    """True for pydantic's synthetic loc parts (validator wrappers)."""
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _model_fields(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at the parent of `loc`, walking nested models, dicts and lists (best effort)."""
    cls: Any = model_cls
    skip = 0  # dict keys / list indices to step over after a container annotation
    for part in loc[:-1]:
        if skip:
            skip -= 1
            continue
        fields = getattr(cls, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        skip = _container_depth(ann)
        cls = _unwrap_model(ann)
        if cls is None:
            return []
    if skip:
        return []
    names = list(getattr(cls, "model_fields", {}).keys())
    for other in _all_models(ann) if loc[:-1] else ():  # a union of models: any member's fields
        names += [n for n in other.model_fields if n not in names]
    return names


def _all_models(ann: Any) -> list:
    """Every pydantic model inside an annotation (the members of a union such as a tagged Param)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    out: list = []
    for arg in getattr(ann, "__args__", ()) or ():
        out += [m for m in _all_models(arg) if m not in out]
    return out


def _container_depth(ann: Any) -> int:
    """How many key/index loc parts a `dict[...]` / `list[...]` annotation adds (Optional looked through)."""

    origin = typing.get_origin(ann)
    if origin in (dict, list, tuple, set):
        args = typing.get_args(ann)
        return 1 + (_container_depth(args[-1]) if args else 0)
    if origin is not None:  # Union / Optional / Annotated
        for arg in typing.get_args(ann):
            depth = _container_depth(arg)
            if depth:
                return depth
    return 0


def _unwrap_model(ann: Any) -> Any:
    """The pydantic model inside an annotation such as `Foo | None`, `dict[str, Foo]`, `list[Foo]`."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _expected(err: dict) -> str:
    """Turn one pydantic error into a short 'expected …' message."""
    typ, msg = err["type"], err["msg"]
    inp = err.get("input")
    shown = repr(inp) if not isinstance(inp, (dict, list)) else type(inp).__name__
    ctx = err.get("ctx") or {}
    if typ == "missing":
        return "required field is missing"
    if typ == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        return suggest(ctx.get("tag", inp), tags, f"{ctx.get('discriminator', 'kind')!s}".strip("'"))
    if typ == "literal_error" and isinstance(inp, str):
        opts = [o.strip(" '") for o in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        return suggest(inp, [o for o in opts if o], "value")
    if typ.endswith("_parsing") or typ.endswith("_type"):
        return f"{msg.lower()}; got {shown}"
    if typ.startswith(("greater_than", "less_than")) or typ in ("literal_error", "enum"):
        return f"{msg.lower()}; got {shown}"
    if typ == "value_error":
        return msg.removeprefix("Value error, ")
    return msg[0].lower() + msg[1:] if msg else typ


def format_validation_error(exc: ValidationError, data: Any, positions: dict, where: str,
                            model_cls: type[BaseModel]) -> list[str]:
    """One `where:line:col: dotted.path: message` line per pydantic error."""
    problems: list[tuple[tuple[int, int], str]] = []
    for err in exc.errors():
        raw = tuple(err["loc"])
        # an absent last part is kept when it names a field (a missing one, or one inside a value that a
        # validator reshaped), dropped when it is a union tag such as `range`
        keep = err["type"] in ("missing", "extra_forbidden") or (
            bool(raw) and str(raw[-1]) in _model_fields(model_cls, raw))
        loc = _present(data, raw, keep_last=keep)
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            pos = positions.get(loc + ("<key>",)) or positions.get(loc)
            valid = _model_fields(model_cls, loc)
            best = did_you_mean(str(loc[-1]), valid) if loc else None
            msg = "unknown field"
            if best:
                msg += f" (did you mean `{best}`?)"
            elif valid:
                msg += f" (expected one of: {', '.join(valid)})"
        else:
            pos = None
            probe = loc
            while pos is None and probe:  # missing keys: report at the parent mapping
                pos = positions.get(probe)
                probe = probe[:-1]
            pos = pos or positions.get(())
            msg = _expected(err)
        prefix = f"{where}:{pos[0]}:{pos[1]}" if pos else where
        problems.append((pos or (0, 0), f"{prefix}: {dotted}: {msg}"))
    return [line for _, line in sorted(problems, key=lambda p: p[0])]  # file order


# Bounds on one YAML input, so that a hostile or runaway file fails at once with a clear message instead of
# hanging a core or overflowing the stack (issue 17.2). Source: the largest shipped YAML file
# (dse/catalog/measurements.yaml) is ~50 KB, 2,561 nodes, 6 levels deep; the bounds leave >= 8x room.
MAX_YAML_BYTES = 4 * 2**20
MAX_YAML_NODES = 100_000  # values after expanding every alias (`*name`) in place
MAX_YAML_DEPTH = 50  # nested mappings / lists
MAX_YAML_INT = 2**63  # integers at or beyond int64 cannot be a count or a size anywhere in dse


def location(where: str, positions: dict, path: tuple) -> str:
    """`file:line:col` of `path` in a parsed YAML (its nearest ancestor that has a position), or `where`."""
    probe, pos = path, None
    while pos is None and probe:
        pos = positions.get(probe)
        probe = probe[:-1]
    pos = pos or positions.get(())
    return f"{where}:{pos[0]}:{pos[1]}" if pos else where


def load_data_yaml(path: Path | str) -> Any:
    """Plain data of one of dse's own YAML data files (catalog, calibration, model shapes, scenarios): libyaml's
    parser when PyYAML has it (~10x faster; these files are read on every start), no position index. User
    files go through `parse_yaml`, whose errors name file, line and column."""
    text = Path(path).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_FAST_LOADER or yaml.SafeLoader)


def parse_yaml(path: Path | str) -> tuple[Any, dict[tuple, Position]]:
    """Read a YAML file → (plain data, positions index); any read/parse failure is a ConfigError."""
    docs = parse_yaml_documents(path, single=True)
    return docs[0] if docs else (None, {})


def parse_yaml_documents(path: Path | str, *, single: bool = False) -> list[tuple[Any, dict[tuple, Position]]]:
    """Every document of a YAML file as (plain data, positions index); read and parse failures (missing
    file, a folder, not UTF-8, malformed, over the size/depth/alias limits) are ConfigErrors naming the file."""
    path = Path(path)
    text = read_text(path)
    return parse_yaml_text_documents(text, str(path), single=single)


def read_text(path: Path) -> str:
    """UTF-8 text of a config file; a missing file, a folder, unreadable or non-UTF-8 bytes, or a file over
    MAX_YAML_BYTES is a ConfigError naming the file."""
    try:
        if path.is_dir():
            raise ConfigError([f"{path}: is a folder, not a YAML file; give the file inside it"])
        if path.exists() and (stat.S_ISFIFO(path.stat().st_mode) or stat.S_ISSOCK(path.stat().st_mode)):
            # opening a named pipe waits for a writer forever
            raise ConfigError([f"{path}: is a pipe or socket, not a YAML file; give a file (`cat` the pipe "
                               "into one first)"])
        with path.open("rb") as fh:  # bounded read: also safe on a device or a pipe (/dev/zero)
            raw = fh.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise ConfigError([f"{path}: over the {MAX_YAML_BYTES:,}-byte limit for a YAML input; is this the "
                               "right file?"])
        return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as Path.read_text
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}:1: (top level): not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                           f"offset {exc.start}); save the file as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None


def parse_yaml_text(text: str, where: str = "<string>") -> tuple[Any, dict[tuple, Position]]:
    """Parse YAML text → (plain data, positions index)."""
    docs = parse_yaml_text_documents(text, where, single=True)
    return docs[0] if docs else (None, {})


def parse_yaml_text_documents(text: str, where: str = "<string>", *,
                              single: bool = False) -> list[tuple[Any, dict[tuple, Position]]]:
    """Parse every document of YAML text (exactly one when `single`) → [(plain data, positions)]; the
    document is composed once, its shape checked (aliases, depth, numbers) before it is constructed."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError([f"{where}: {len(text):,} characters is over the {MAX_YAML_BYTES:,} limit for a YAML input"])
    if _FAST_LOADER is not None:
        try:
            return _parse_documents(_FAST_LOADER, text, where, single)
        except (yaml.YAMLError, RecursionError):
            pass  # malformed: the pure-Python reader below names the problem the way our messages expect
    return _parse_documents(yaml.SafeLoader, text, where, single)


# libyaml's parser (PyYAML's C extension, when built) composes the same nodes with the same marks ~14x
# faster than the pure-Python reader (chips.yaml: 6 vs 79 ms); malformed text is re-read in Python
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _parse_documents(loader_cls, text: str, where: str, single: bool) -> list[tuple[Any, dict[tuple, Position]]]:
    """`parse_yaml_text_documents` with one loader class; YAML errors are turned into ConfigErrors only by
    the pure-Python loader (the fast one lets them through to the caller, which re-reads in Python)."""
    out = []
    loader = None
    fast = loader_cls is not yaml.SafeLoader
    try:
        loader = loader_cls(text)  # the reader rejects control characters here
        nodes = [loader.get_single_node()] if single else _all_nodes(loader)
        for node in nodes:
            if node is None:
                continue
            _check_shape(node, where)
            dups = _duplicate_keys(node, where)
            if dups:
                raise ConfigError(dups, header=f"{where}: {len(dups)} problem(s)")
            out.append((loader.construct_document(node), _index_positions(node)))
    except (yaml.YAMLError, RecursionError) as exc:
        if fast:
            raise
        raise _yaml_error(exc, text, where) from None
    finally:
        if loader is not None:
            loader.dispose()
    return out


def _yaml_error(exc: Exception, text: str, where: str) -> ConfigError:
    """A YAML reader / parser error as a ConfigError naming file, line and column."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        loc = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return ConfigError([f"{loc}: malformed YAML: {problem}"])
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[:exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        return ConfigError([f"{where}:{line}:{col}: (top level): malformed YAML: character {char} is not allowed "
                            "in YAML text; remove it"])
    if isinstance(exc, RecursionError):
        return ConfigError([f"{where}:1:1: (top level): nested too deeply to read (the limit is {MAX_YAML_DEPTH} "
                            "levels)"])
    return ConfigError([f"{where}: malformed YAML: {exc}"])


def _all_nodes(loader: yaml.SafeLoader) -> Iterator[yaml.Node]:
    while loader.check_node():
        yield loader.get_node()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_shape(root: yaml.Node, where: str) -> None:
    """Reject, in one pass over the distinct nodes (linear even for an alias bomb), a document whose
    aliases refer to themselves, expand past MAX_YAML_NODES values or nest past MAX_YAML_DEPTH, and any
    number that is not finite or does not fit in 64 bits."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        kids = _children(node)
        if done:
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            height[nid] = 1 + max((height[id(k)] for k in kids), default=0)
            state[nid] = 2
            if size[nid] > MAX_YAML_NODES:
                _shape_error(root, node, where, f"expands to more than {MAX_YAML_NODES:,} values through "
                             "aliases (`*name`); write the values out or use fewer aliases")
            if height[nid] > MAX_YAML_DEPTH:
                _shape_error(root, node, where, f"nested more than {MAX_YAML_DEPTH} levels deep")
            continue
        if state.get(nid) == 2:
            continue
        state[nid] = 1
        if isinstance(node, yaml.ScalarNode):
            _check_number(root, node, where)
        stack.append((node, True))
        for k in kids:
            if state.get(id(k)) == 1:
                _shape_error(root, k, where, "an alias refers to the value that contains it (a cycle); "
                             "an anchor (`&name`) cannot be used inside itself")
            stack.append((k, False))


_SCALARS = yaml.constructor.SafeConstructor()  # turns one scalar node into its value (no document needed)


def _check_number(root: yaml.Node, node: yaml.ScalarNode, where: str) -> None:
    """A float that is not finite (`.inf`, `.nan`) or an int beyond 64 bits is an error wherever it is."""
    if node.tag == "tag:yaml.org,2002:float":
        if not math.isfinite(_SCALARS.construct_yaml_float(node)):
            _shape_error(root, node, where, f"{node.value!r} is not a finite number; give a finite value")
    elif node.tag == "tag:yaml.org,2002:int":
        try:
            value = _SCALARS.construct_yaml_int(node)
        except ValueError:  # more digits than Python converts
            value = None
        if value is None or abs(value) >= MAX_YAML_INT:
            shown = node.value if len(node.value) <= 24 else f"{node.value[:12]}… ({len(node.value)} digits)"
            _shape_error(root, node, where, f"integer {shown} is too large (the limit is 2**63); give a "
                         "realistic value")


def _shape_error(root: yaml.Node, node: yaml.Node, where: str, message: str) -> None:
    mark = node.start_mark
    path = _path_to(root, node)
    dotted = ".".join(str(p) for p in path) or "(top level)"
    raise ConfigError([f"{where}:{mark.line + 1}:{mark.column + 1}: {dotted}: {message}"])


def _path_to(root: yaml.Node, target: yaml.Node) -> tuple:
    """The first path (keys / indices) from `root` to `target`, visiting each distinct node once."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in reversed(node.value):
                stack.append((value_node, path + (getattr(key_node, "value", "?"),)))
                if key_node is target:
                    return path + (getattr(key_node, "value", "?"),)
        elif isinstance(node, yaml.SequenceNode):
            for i in reversed(range(len(node.value))):
                stack.append((node.value[i], path + (i,)))
    return ()


def _duplicate_keys(root: yaml.Node, where: str) -> list[str]:
    """One problem per mapping key given twice (YAML would silently keep the last one); each distinct node
    is visited once, so a mapping reached through several aliases is checked (and reported) once."""
    out: list[tuple[tuple[int, int], str]] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                path = ".".join(str(p) for p in prefix + (key,))
                if isinstance(key_node, yaml.ScalarNode) and key in seen:
                    m = key_node.start_mark
                    out.append(((m.line, m.column), f"{where}:{m.line + 1}:{m.column + 1}: {path}: duplicate key "
                                f"(first given on line {seen[key]}; keep one)"))
                elif isinstance(key_node, yaml.ScalarNode):
                    seen[key] = key_node.start_mark.line + 1
            for key_node, value_node in reversed(node.value):  # first child popped first: document order
                stack.append((value_node, prefix + (key_node.value if isinstance(key_node, yaml.ScalarNode) else "?",)))
        elif isinstance(node, yaml.SequenceNode):
            for i in reversed(range(len(node.value))):
                stack.append((node.value[i], prefix + (i,)))
    return [line for _, line in sorted(out)]


def _numbers_only(annotation: Any) -> bool:
    """True when a field type takes int/float but not bool (`int | None`, `Annotated[float, ...]`)."""
    seen, stack = set(), [annotation]
    while stack:
        a = stack.pop()
        if a is Any:
            return False
        if a in (bool, int, float):
            seen.add(a)
        stack.extend(typing.get_args(a))
    return bool(seen) and bool not in seen


class NoBoolNumbers(BaseModel):
    """Base of config models: a YAML `true`/`false` given where a number goes is an error (pydantic would
    read it as 1 or 0: `trials: true` ran a 1-trial study)."""

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                info = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and info is not None and _numbers_only(info.annotation):
                    raise ValueError(f"{name}: expected a number, got {str(value).lower()}")
        return data


def validate_data(data: Any, model_cls: type[T], *, where: str = "<data>",
                  positions: dict | None = None, what: str | None = None) -> T:
    """Validate plain data against `model_cls`, raising ConfigError with one line per problem."""
    what = what or model_cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}:1:1: (top level): expected a mapping of fields for {what}, "
                           f"got {type(data).__name__}"], header=f"{where}: 1 problem(s) in {what}")
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc, data, positions or {}, where, model_cls)
        raise ConfigError(problems, header=f"{where}: {len(problems)} problem(s) in {what}") from None


def load_yaml_model(path: Path | str, model_cls: type[T], *, data: dict | None = None,
                    what: str | None = None) -> T:
    """Load `path` (or validate `data`, positions then unknown) into `model_cls`; errors → ConfigError."""
    if data is not None:
        return validate_data(data, model_cls, where=str(path), what=what)
    parsed, positions = parse_yaml(path)
    return validate_data(parsed, model_cls, where=str(path), positions=positions, what=what)
