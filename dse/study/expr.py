"""A tiny safe expression language for `when:` conditions and constraints (no eval).

Grammar: `or` / `and` / `not`, comparisons `== != < <= > >= in` (also `not in`), arithmetic
`+ - * /`, parentheses, dotted names (`chip.memory`, `datacenter_llm.tpot_ms`), numbers, quoted
strings, `true`/`false`, and lists `[a, b]`. Expressions evaluate element-wise over numpy columns.
`violation()` turns an expression into a constraint value for Optuna (<= 0 feasible): relative
excess for `<=`/`>=` comparisons, 1 for a false boolean, `and` sums, `or` takes the minimum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


class ExprError(ValueError):
    """A malformed expression; the message says where."""


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

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self, val: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (val is not None and tok[1] != val):
            want = f"{val!r}" if val else "more input"
            raise ExprError(f"cannot parse {self.text!r}: expected {want}, got {tok[1] if tok else 'end'!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise ExprError(f"cannot parse {self.text!r}: unexpected {self.peek()[1]!r}")
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
            return Node("not", args=(self.not_(),))
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
        node = self.prod()
        while self.peek() and self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = Node("arith", op, (node, self.prod()))
        return node

    def prod(self) -> Node:
        node = self.unary()
        while self.peek() and self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            node = Node("arith", op, (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.peek() and self.peek()[1] == "-":
            self.take()
            return Node("neg", args=(self.unary(),))
        return self.atom()

    def atom(self) -> Node:
        kind, val = self.take()
        if kind == "num":
            return Node("num", float(val) if any(c in val for c in ".eE") else int(val))
        if kind == "str":
            return Node("str", val[1:-1])
        if kind == "kw" and val in ("true", "True", "false", "False"):
            return Node("bool", val in ("true", "True"))
        if kind == "name":
            return Node("name", val)
        if val == "(":
            node = self.or_()
            self.take(")")
            return node
        if val == "[":
            items = []
            while self.peek() and self.peek()[1] != "]":
                items.append(self.atom())
                if self.peek() and self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return Node("list", args=tuple(items))
        raise ExprError(f"cannot parse {self.text!r}: unexpected {val!r}")


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
        return _eval(self.root, env)

    def truth(self, env: Mapping[str, Any]) -> np.ndarray:
        """Boolean value (array) of the expression."""
        return np.asarray(_eval(self.root, env), dtype=bool)

    def violation(self, env: Mapping[str, Any]) -> np.ndarray:
        """Constraint value per row: <= 0 when satisfied, > 0 growing with the amount of violation."""
        return np.asarray(_viol(self.root, env), dtype=float)

    def comparison(self) -> tuple[str, str, float] | None:
        """(name, op, number) when the expression is a simple `name op number` comparison."""
        r = self.root
        if r.kind == "cmp" and r.args[0].kind == "name" and r.args[1].kind == "num":
            return r.args[0].value, r.value, float(r.args[1].value)
        return None


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
    return Expr(text, _Parser(text).parse())


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
        a, b = (np.asarray(_eval(x, env), dtype=float) for x in n.args)
        if n.value == "+":
            return a + b
        if n.value == "-":
            return a - b
        if n.value == "*":
            return a * b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.inf)
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
