"""The layout's rules, checked on the source: no import cycles between files, and dependencies that
point one way (docs/ARCHITECTURE.md, "Dependency direction"). Deferred imports inside functions count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "dse"

# package -> dse packages it may import (besides itself, dse.errors, dse.config, dse.units and dse._lazy)
ALLOWED = {
    "model": set(),
    "workloads": set(),
    "pareto": set(),
    "expr": set(),
    "catalog": {"model"},
    "designs": {"model", "catalog"},
    "serving": {"workloads"},
    "evaluate": {"model", "workloads", "catalog", "designs", "serving"},
    "runs": {"model", "workloads", "evaluate", "pareto", "expr"},
    "uncertainty": {"model", "workloads", "catalog", "evaluate", "pareto", "expr", "runs", "validate"},
    "study": {"model", "workloads", "catalog", "evaluate", "pareto", "expr", "runs", "uncertainty", "dse"},
    "report": {"model", "workloads", "catalog", "designs", "evaluate", "pareto", "expr", "runs", "serving", "uncertainty"},
    "validate": {"model", "workloads", "catalog", "evaluate", "serving"},
}
# third-party packages a layer must not import
FORBIDDEN_THIRD_PARTY = {
    "model": {"optuna", "ray", "altair", "polars", "typer", "rich"},
    "workloads": {"optuna", "ray", "altair", "polars", "typer", "rich"},
    "evaluate": {"optuna", "ray", "altair", "typer", "rich"},
    "pareto": {"optuna", "ray", "altair", "polars", "typer", "rich"},
    "runs": {"optuna", "ray", "altair", "typer", "rich"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name or None


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(dse modules, top-level third-party packages) imported anywhere in the file."""
    dse_mods, third = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "dse":
                for alias in node.names:
                    target = _resolve(f"{node.module}.{alias.name}") or _resolve(node.module)
                    if target:
                        dse_mods.add(target)
            else:
                third.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dse":
                    target = _resolve(alias.name)
                    if target:
                        dse_mods.add(target)
                else:
                    third.add(alias.name.split(".")[0])
    return dse_mods, third


GRAPH = {m: _imports(p) for m, p in MODULES.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "dse"


def test_no_import_cycles_between_files():
    graph = {m: {t for t in deps if t != m} for m, (deps, _) in GRAPH.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_dependencies_point_one_way(layer):
    allowed = ALLOWED[layer] | {layer, "errors", "config", "units", "_lazy"}
    bad = {}
    for module, (deps, third) in GRAPH.items():
        if _package(module) != layer:
            continue
        wrong = sorted(d for d in deps if _package(d) not in allowed)
        wrong += sorted(t for t in third if t in FORBIDDEN_THIRD_PARTY.get(layer, set()))
        if wrong:
            bad[module] = wrong
    assert not bad, bad
