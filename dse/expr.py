"""A tiny safe expression language for `when:` conditions, constraints and objectives (no eval).

Grammar: `or` / `and` / `not`, comparisons `== != < <= > >= in` (also `not in`), arithmetic
`+ - * /`, parentheses, dotted names (`chip.memory`, `datacenter_llm.tpot_ms`), numbers, quoted
strings, `true`/`false`, and lists `[a, b]`. Expressions evaluate element-wise over numpy columns.
`violation()` turns an expression into a constraint value for Optuna (<= 0 feasible): relative
excess for `<=`/`>=` comparisons, 1 for a false boolean, `and` sums, `or` takes the minimum.
`check_types()` type-checks an expression against the kinds of the names it reads (numbers vs
categories) so that a study can reject `chip.memory <= 5` before its first trial (issue 17.1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np

from dse.config import did_you_mean, suggest
from dse.errors import DseUserError


class ExprError(ValueError, DseUserError):
    """A malformed or ill-typed expression; the message quotes it. A DseUserError, so that one raised
    while a study runs (a value of the wrong kind) ends the command with exit status 2, not a traceback."""


# Bounds on one expression, so that a runaway one is a clear error at load time instead of a RecursionError
# swallowed during scoring (issue 17.1). Source: the shipped studies' expressions are < 80 characters with
# at most 2 levels of parentheses; the bounds leave > 30x room.
MAX_LENGTH = 10_000  # characters
MAX_NESTING = 64  # parentheses, lists, `not` and unary `-` inside one another
MAX_INT = 2**63  # an integer literal beyond int64 cannot be compared with a metric column

Kind = Literal["number", "category", "bool"]
NUMBER: Kind = "number"
CATEGORY: Kind = "category"
BOOL: Kind = "bool"


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)
     |(?P<str>'[^']*'|"[^"]*")
     |(?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
     |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    )""", re.VERBOSE)

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "True", "False"}
_CMP = {"==", "!=", "<", "<=", ">", ">=", "in", "not in"}


@dataclass(frozen=True)
class Node:
    """One AST node: kind is 'num', 'str', 'bool', 'list', 'name', 'cmp', 'and', 'or', 'not', 'arith', 'neg'."""

    kind: str
    value: Any = None
    args: tuple = ()


def _tokenize(text: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot parse {text!r} at column {pos + 1}: unexpected {text[pos:].strip()[:10]!r}")
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "name" and val in _KEYWORDS:
            kind = "kw"
        out.append((kind, val))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExprError(f"cannot parse {_short(self.text)}: nested more than {MAX_NESTING} levels deep "
                            "(parentheses, lists, `not`, unary `-`); simplify it")

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self, val: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (val is not None and tok[1] != val):
            want = f"{val!r}" if val else "more input"
            raise ExprError(f"cannot parse {_short(self.text)}: expected {want}, got {tok[1] if tok else 'end'!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise ExprError(f"cannot parse {_short(self.text)}: unexpected {self.peek()[1]!r}")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.peek() and self.peek()[1] == "or":
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Node("or", args=tuple(items))

    def and_(self) -> Node:
        items = [self.not_()]
        while self.peek() and self.peek()[1] == "and":
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else Node("and", args=tuple(items))

    def not_(self) -> Node:
        if self.peek() and self.peek()[1] == "not":
            self.take()
            self.nest()
            node = Node("not", args=(self.not_(),))
            self.depth -= 1
            return node
        return self.cmp()

    def cmp(self) -> Node:
        left = self.sum_()
        tok = self.peek()
        if tok and tok[1] == "not" and self.peek(1) and self.peek(1)[1] == "in":
            self.take(), self.take()
            return Node("cmp", "not in", (left, self.sum_()))
        if tok and tok[1] in _CMP:
            self.take()
            return Node("cmp", tok[1], (left, self.sum_()))
        return left

    def sum_(self) -> Node:
        return self.chain(("+", "-"), self.prod)

    def prod(self) -> Node:
        return self.chain(("*", "/"), self.unary)

    def chain(self, ops: tuple[str, ...], operand) -> Node:
        """`a op b op c …` as one flat node (value: the operators, left to right), so that a long sum is
        shallow: evaluating it never recurses once per term."""
        items, seen = [operand()], []
        while self.peek() and self.peek()[1] in ops:
            seen.append(self.take()[1])
            items.append(operand())
        return items[0] if len(items) == 1 else Node("arith", tuple(seen), tuple(items))

    def unary(self) -> Node:
        if self.peek() and self.peek()[1] == "-":
            self.take()
            self.nest()
            node = Node("neg", args=(self.unary(),))
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        kind, val = self.take()
        if kind == "num":
            return Node("num", self.number(val))
        if kind == "str":
            return Node("str", val[1:-1])
        if kind == "kw" and val in ("true", "True", "false", "False"):
            return Node("bool", val in ("true", "True"))
        if kind == "name":
            return Node("name", val)
        if val == "(":
            self.nest()
            node = self.or_()
            self.take(")")
            self.depth -= 1
            return node
        if val == "[":
            self.nest()
            items = []
            while self.peek() and self.peek()[1] != "]":
                items.append(self.atom())
                if self.peek() and self.peek()[1] == ",":
                    self.take()
            self.take("]")
            self.depth -= 1
            return Node("list", args=tuple(items))
        raise ExprError(f"cannot parse {_short(self.text)}: unexpected {val!r}")

    def number(self, val: str) -> int | float:
        """A numeric literal; one that is not finite (`1e999`) or beyond 64 bits is an error, not NaN later."""
        if any(c in val for c in ".eE"):
            num = float(val)
            if not math.isfinite(num):
                raise ExprError(f"{_short(self.text)}: {val} is not a finite number (beyond ~1.8e308); "
                                "give a finite bound")
            return num
        if len(val) > 19 or int(val) >= MAX_INT:
            raise ExprError(f"{_short(self.text)}: the integer {val[:24]}{'…' if len(val) > 24 else ''} is too "
                            "large (the limit is 2**63)")
        return int(val)


@dataclass(frozen=True)
class Expr:
    """A parsed expression; `names` are the dotted names it reads."""

    text: str
    root: Node

    @property
    def names(self) -> list[str]:
        out: list[str] = []

        def walk(n: Node) -> None:
            if n.kind == "name" and n.value not in out:
                out.append(n.value)
            for a in n.args:
                walk(a)

        walk(self.root)
        return out

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Value of the expression over `env` (scalars or equal-length numpy arrays)."""
        return self._run(_eval, env)

    def truth(self, env: Mapping[str, Any]) -> np.ndarray:
        """Boolean value (array) of the expression."""
        return np.asarray(self._run(_eval, env), dtype=bool)

    def violation(self, env: Mapping[str, Any]) -> np.ndarray:
        """Constraint value per row: <= 0 when satisfied, > 0 growing with the amount of violation."""
        return np.asarray(self._run(_viol, env), dtype=float)

    def constant_faults(self) -> list[str]:
        """Arithmetic on literals alone that divides by zero or is not finite (`power_w / 0`, `x * 1e308 * 10`):
        the value is inf or NaN for every design, so such a constraint or objective is a mistake in the study."""
        out: list[str] = []

        def names_in(n: Node) -> bool:
            return n.kind == "name" or any(names_in(a) for a in n.args if isinstance(a, Node))

        def walk(n: Node) -> None:
            if n.kind == "arith":
                for op, x in zip(n.value, n.args[1:]):
                    if op == "/" and not names_in(x) and np.all(np.asarray(_eval(x, {}), dtype=float) == 0):
                        out.append("divides by zero")
                if not names_in(n):
                    with np.errstate(all="ignore"):
                        if not np.isfinite(np.asarray(_eval(n, {}), dtype=float)).all():
                            out.append("a literal computation is not a finite number")
            for a in n.args:
                if isinstance(a, Node):
                    walk(a)

        walk(self.root)
        return out

    def _run(self, fn, env: Mapping[str, Any]) -> Any:
        """`fn(root, env)`; a value of the wrong kind (text where a number goes, …) is an ExprError naming the
        expression: a property of the study, not of one design, so callers should not count it as infeasible."""
        try:
            return fn(self.root, env)
        except ExprError as exc:
            raise ExprError(f"{_short(self.text)}: {exc}") from None
        except (TypeError, ValueError, RecursionError) as exc:
            raise ExprError(f"{_short(self.text)}: cannot evaluate: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None

    def comparison(self) -> tuple[str, str, float] | None:
        """(name, op, number) when the expression is a simple `name op number` comparison."""
        r = self.root
        if r.kind == "cmp" and r.args[0].kind == "name" and r.args[1].kind == "num":
            return r.args[0].value, r.value, float(r.args[1].value)
        return None


def check_types(expr: "Expr | str", kinds: Mapping[str, str], *, condition: bool = True) -> Kind:
    """Type-check `expr` against the kind of every name it may read (`kinds[name]` is "number",
    "category" or "bool"), before any design is evaluated. Returns the kind of its value; raises
    ExprError, whose message quotes the expression, for a name not in `kinds`, arithmetic or `<`/`>`
    on a category or a bool, `==`/`in` between a number and a category, a list of mixed kinds, and, when
    `condition` (constraints, `when:`), a value that is not a bool. Parse errors are ExprErrors too."""
    e = parse(expr) if isinstance(expr, str) else expr
    for name, kind in kinds.items():
        if kind not in (NUMBER, CATEGORY, BOOL):
            raise ValueError(f"check_types: kind of {name!r} must be number, category or bool; got {kind!r}")
    try:
        kind = _kind(e.root, kinds)
        if condition and kind != BOOL:
            raise ExprError(f"is a {kind}, not a condition; compare it (e.g. `{_show(e.root)} > 0`)"
                            if kind == NUMBER else f"is a {kind}, not a condition; compare it with `==` or `in`")
    except ExprError as exc:
        raise ExprError(f"{_short(e.text)}: {exc}") from None
    return kind


def kinds_of(env: Mapping[str, Any]) -> dict[str, Kind]:
    """The kind of every column of an evaluation env (numpy dtypes: bool → "bool", numbers → "number",
    text/objects → "category"), e.g. the knob and metric columns of one probe design, for check_types."""
    out: dict[str, Kind] = {}
    for name, col in env.items():
        dk = np.asarray(col).dtype.kind
        out[name] = BOOL if dk == "b" else NUMBER if dk in "iuf" else CATEGORY
    return out


_ORDER = {"<", "<=", ">", ">="}


def _show(n: Node) -> str:
    """Short source-like text of a node for messages."""
    if n.kind == "name":
        return n.value
    if n.kind == "str":
        return repr(n.value)
    if n.kind in ("num", "bool"):
        return str(n.value).lower() if n.kind == "bool" else str(n.value)
    if n.kind == "list":
        return "[" + ", ".join(_show(a) for a in n.args[:4]) + (", …" if len(n.args) > 4 else "") + "]"
    return "(…)"


def _kind(n: Node, kinds: Mapping[str, str] | None) -> Any:
    """Kind of a node's value: a Kind, ("list", Kind | None) for a list literal, or None (any kind) for a
    name when `kinds` is None (the parse-time check of literals)."""
    k = n.kind
    if k == "num":
        return NUMBER
    if k == "str":
        return CATEGORY
    if k == "bool":
        return BOOL
    if k == "name":
        if kinds is None:
            return None
        if n.value not in kinds:

            if len(kinds) <= 20:
                raise ExprError(suggest(n.value, kinds, "name"))
            best = did_you_mean(n.value, kinds)
            raise ExprError(f"unknown name '{n.value}' ({f'did you mean {best!r}?; ' if best else ''}"
                            f"{len(kinds)} metrics and knobs are known; `dse knobs` lists the knobs)")
        return kinds[n.value]
    if k == "list":
        elems = {_kind(a, kinds) for a in n.args} - {None}
        if len(elems) > 1:
            raise ExprError(f"the list {_show(n)} mixes kinds ({', '.join(sorted(map(_kind_name, elems)))})")
        return ("list", next(iter(elems), None))
    if k in ("neg", "arith"):
        for a in n.args:
            ak = _kind(a, kinds)
            if ak not in (NUMBER, None):
                raise ExprError(f"arithmetic on {_show(a)}, which is a {_kind_name(ak)}, not a number")
        return NUMBER
    if k in ("not", "and", "or"):
        for a in n.args:
            ak = _kind(a, kinds)
            if ak not in (BOOL, None):
                raise ExprError(f"`{k}` needs conditions; {_show(a)} is a {_kind_name(ak)}")
        return BOOL
    if k == "cmp":
        a, b = n.args
        ka, kb = _kind(a, kinds), _kind(b, kinds)
        if n.value in ("in", "not in"):
            if not isinstance(kb, tuple) and kb is not None:
                raise ExprError(f"`{n.value}` needs a list on its right, e.g. {_show(a)} in [...]; got {_show(b)}")
            elem = kb[1] if isinstance(kb, tuple) else None
            if elem is not None and not _comparable(ka, elem):
                raise ExprError(f"{_show(a)} is a {_kind_name(ka)} but {_show(b)} holds {elem}s")
            return BOOL
        if isinstance(ka, tuple) or isinstance(kb, tuple):
            raise ExprError(f"`{n.value}` compares a list; use `in`")
        if n.value in _ORDER:
            for side, sk in ((a, ka), (b, kb)):
                if sk not in (NUMBER, None):
                    raise ExprError(f"`{n.value}` orders numbers, but {_show(side)} is a {_kind_name(sk)}"
                                    + (" (use == or in)" if sk == CATEGORY else ""))
            return BOOL
        if not _comparable(ka, kb):
            raise ExprError(f"`{n.value}` compares {_show(a)} (a {_kind_name(ka)}) with {_show(b)} "
                            f"(a {_kind_name(kb)}); it is never equal")
        return BOOL
    raise ExprError(f"bad node {k}")


def _kind_name(kind: Any) -> str:
    return "list" if isinstance(kind, tuple) else ("category (text)" if kind == CATEGORY else str(kind))


def _comparable(a: Any, b: Any) -> bool:
    """`==` / `in` between two kinds is meaningful: same kind, or a bool with a number (true == 1)."""
    return a is None or b is None or a == b or {a, b} == {NUMBER, BOOL}


def check_constraints(constraints: list[str]) -> list[str]:
    """Parse every constraint string (pydantic validator helper): a bad one raises ValueError naming its index."""
    for i, c in enumerate(constraints):
        try:
            parse(c)
        except ExprError as exc:
            raise ValueError(f"constraint {i}: {exc}") from None
    return constraints


def parse(text: str) -> Expr:
    """Parse `text`, raising ExprError with the position of the first problem."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty expression")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"{_short(text)}: {len(text):,} characters is over the {MAX_LENGTH:,}-character limit "
                        "for one expression")
    try:
        root = _Parser(text).parse()
    except RecursionError:  # a deep stack at the caller; the nesting bound normally stops it first
        raise ExprError(f"cannot parse {_short(text)}: nested too deeply") from None
    try:
        _kind(root, None)  # literal misuse (`x < 'zzz'`, `'a' + 1`, `x in 5`) is an error before names are known
    except ExprError as exc:
        raise ExprError(f"{_short(text)}: {exc}") from None
    return Expr(text, root)


def _short(text: str) -> str:
    """The expression as quoted in messages, cut to a readable length."""
    return repr(text) if len(text) <= 120 else repr(text[:100] + "…")


def _eval(n: Node, env: Mapping[str, Any]) -> Any:
    k = n.kind
    if k in ("num", "str", "bool"):
        return n.value
    if k == "list":
        return [_eval(a, env) for a in n.args]
    if k == "name":
        if n.value not in env:
            raise ExprError(f"unknown name {n.value!r}")
        return env[n.value]
    if k == "neg":
        return -np.asarray(_eval(n.args[0], env))
    if k == "arith":
        acc = np.asarray(_eval(n.args[0], env), dtype=float)
        for op, x in zip(n.value, n.args[1:]):
            b = np.asarray(_eval(x, env), dtype=float)
            if op == "+":
                acc = acc + b
            elif op == "-":
                acc = acc - b
            elif op == "*":
                acc = acc * b
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    acc = np.where(b != 0, acc / np.where(b != 0, b, 1.0), np.inf)
        return acc
    if k == "not":
        return ~np.asarray(_eval(n.args[0], env), dtype=bool)
    if k == "and":
        out = np.asarray(_eval(n.args[0], env), dtype=bool)
        for a in n.args[1:]:
            out = out & np.asarray(_eval(a, env), dtype=bool)
        return out
    if k == "or":
        out = np.asarray(_eval(n.args[0], env), dtype=bool)
        for a in n.args[1:]:
            out = out | np.asarray(_eval(a, env), dtype=bool)
        return out
    if k == "cmp":
        a, b = _eval(n.args[0], env), _eval(n.args[1], env)
        op = n.value
        if op in ("in", "not in"):
            res = np.isin(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
            return ~res if op == "not in" else res
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "OUS" or b.dtype.kind in "OUS":
            a, b = a.astype(object), b.astype(object)
        return {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
                ">": np.greater, ">=": np.greater_equal}[op](a, b)
    raise ExprError(f"bad node {k}")


def _viol(n: Node, env: Mapping[str, Any]) -> Any:
    if n.kind == "cmp" and n.value in ("<", "<=", ">", ">="):
        a = np.asarray(_eval(n.args[0], env), dtype=float)
        b = np.asarray(_eval(n.args[1], env), dtype=float)
        excess = (a - b) if n.value in ("<", "<=") else (b - a)
        scale = np.maximum(np.abs(b), 1e-9)
        rel = excess / scale
        if n.value in ("<", ">"):
            rel = np.where(excess >= 0, np.maximum(rel, 1e-9), rel)
        return np.where(np.isfinite(rel), rel, 1e9)
    if n.kind == "and":
        return sum(np.maximum(_viol(a, env), 0.0) for a in n.args)
    if n.kind == "or":
        vals = [np.asarray(_viol(a, env), dtype=float) for a in n.args]
        return np.minimum.reduce(vals)
    truth = np.asarray(_eval(n, env), dtype=bool)
    return np.where(truth, -1.0, 1.0)
