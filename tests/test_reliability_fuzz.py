"""Issue 7.1, fuzzed: the shipped YAML files mutated at random (keys deleted or misspelt, types swapped,
negative / zero / huge numbers, garbage scalars, truncated text, bad indentation, tabs, duplicated
lines) must make the CLI either succeed or fail cleanly: exit status 2, a message that names the
mutated file, no traceback, and nothing written to the output folder.

Inputs and the command that reads them (in-process, `dse.cli.main`):
study (`dse run --trials 2 --serial`), search space (a study pointing at it), inline mix / scenario (a
study with the mix inline), design (`dse describe`, `dse evaluate --scenario local_llm`), technology
override (`dse describe H100-SXM --tech`), dashboard spec (`dse dashboard` on a folder that is not a
run: a good spec then fails on the folder, a bad one on the spec). ~70 examples, deadline off."""

from __future__ import annotations

import copy
import os
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_reliability_config import run_cli

ROOT = Path(__file__).resolve().parents[1]
# DSE_FUZZ_EXAMPLES=500 for a long random hunt; CI runs the same 12 examples per input every time.
FUZZ = settings(max_examples=int(os.environ.get("DSE_FUZZ_EXAMPLES", 12)), deadline=None,
                derandomize="DSE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

GARBAGE = [None, "", "..", "?", "n55", "hbm9", "-", "[", "{a: 1}", "∞", "1e400", ".nan", "true", "ünïcode",
           "x" * 300, 0, -1, -1e9, 1e30, 2**63, 0.0, -0.5, True, False, [], {}, [1, "a"], {"k": [None]}]


# -- mutations ---------------------------------------------------------------------------------------

def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _get(node, path):
    for p in path:
        node = node[p]
    return node


@st.composite
def data_mutation(draw, data):
    """The parsed file with one to three structural changes."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(data, path[:-1]), path[-1]
        value = parent[key]
        op = draw(st.sampled_from(["delete", "rename", "garbage", "negate", "swap_type", "wrap"]))
        if op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(key, str) and key:
            i = draw(st.integers(0, len(key) - 1))
            new = key[:i] + draw(st.sampled_from(["", "x", key[i] * 2, "_"])) + key[i + 1:]
            parent[new] = parent.pop(key)
        elif op == "negate" and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = -value if value else -1
        elif op == "swap_type":
            parent[key] = str(value) if not isinstance(value, str) else (len(value) if value else [value])
        elif op == "wrap":
            parent[key] = [value] if not isinstance(value, list) else {"v": value}
        else:
            parent[key] = draw(st.sampled_from(GARBAGE))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@st.composite
def text_mutation(draw, text):
    """The raw text truncated, mis-indented, tabbed, with a duplicated or garbage line."""
    lines = text.splitlines(keepends=True) or [""]
    op = draw(st.sampled_from(["truncate", "indent", "dedent", "tab", "dup_line", "garbage_line", "drop_line"]))
    i = draw(st.integers(0, len(lines) - 1))
    if op == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if op == "indent":
        lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
    elif op == "dedent":
        lines[i] = lines[i].lstrip()
    elif op == "tab":
        lines[i] = "\t" + lines[i]
    elif op == "dup_line":
        lines.insert(i, lines[i])
    elif op == "garbage_line":
        lines.insert(i, draw(st.sampled_from(["]\n", "- - x\n", "key: [1, 2\n", "&a *b\n", "%%%\n", ": x\n",
                                               "\x00\n", "k: 'open\n"])))
    else:
        del lines[i]
    return "".join(lines)


def mutated(draw, path: Path) -> str:
    text = path.read_text()
    if draw(st.booleans()):
        return draw(text_mutation(text))
    return draw(data_mutation(yaml.safe_load(text)))


def check(res, mutated_file: Path, out: Path | None, also_ok: tuple[str, ...] = ()) -> None:
    code, stdout, stderr = res
    assert code in (0, 2), (code, stdout, stderr)
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    if code == 2:
        assert str(mutated_file) in stderr or any(a in stderr for a in also_ok), stderr
        if out is not None and "no feasible design" not in stderr:  # a finished run without a front keeps its trials
            assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    """A scratch folder with a studies/ folder and a copy of the shipped search spaces; removed after."""
    d = Path(tempfile.mkdtemp(prefix="dse-fuzz-"))
    try:
        (d / "studies").mkdir()
        shutil.copytree(ROOT / "search_spaces", d / "search_spaces")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


# -- tests -------------------------------------------------------------------------------------------

@FUZZ
@given(st.data())
def test_fuzz_study_files(data):
    src = data.draw(st.sampled_from(STUDIES), label="study")
    with _workdir() as d:
        f = d / "studies" / src.name
        f.write_text(mutated(data.draw, src))
        out = d / "runs"
        check(run_cli("run", f, "--trials", "2", "--serial", "--quiet", "--out", out), f, out)


@FUZZ
@given(st.data())
def test_fuzz_search_space_files(data):
    space = data.draw(st.sampled_from(sorted((ROOT / "search_spaces").glob("*.yaml"))), label="space")
    with _workdir() as d:
        f = d / "search_spaces" / space.name
        f.write_text(mutated(data.draw, space))
        study = {"name": "fz", "search_space": f"../search_spaces/{space.name}", "mix": "local",
                 "objectives": [{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                                {"metric": "chip_cost_usd", "direction": "minimize"}],
                 "constraints": ["power_w <= 1000"], "sampler": {"kind": "nsga2", "population_size": 8},
                 "budget": {"trials": 2}, "seed": 1}
        s = d / "studies" / "fz.yaml"
        s.write_text(yaml.safe_dump(study, sort_keys=False))
        out = d / "runs"
        # 2 trials of a valid space may all be infeasible (full.yaml at seed 1 draws a wafer-scale part with
        # HBM4): a finished run without a front exits 2 naming the study, which is not a bad-input error
        check(run_cli("run", s, "--trials", "2", "--serial", "--quiet", "--out", out), f, out,
              also_ok=("no feasible design",))


@FUZZ
@given(st.data())
def test_fuzz_inline_mix_and_scenarios(data):
    raw = yaml.safe_load((ROOT / "dse/workloads/data/scenarios.yaml").read_text())
    names = data.draw(st.lists(st.sampled_from(["local_llm", "vision_cnn", "moe_llm"]), min_size=1, max_size=2,
                               unique=True), label="scenarios")
    mix = {"name": "inline", "scenarios": [{"scenario": {"name": n, **raw["scenarios"][n]}, "weight": 1.0}
                                           for n in names]}
    study = {"name": "mx", "space": {"name": "s", "params": {"chip.cores": {"low": 8, "high": 128, "type": "int"},
                                                             "chip.sram_mb": {"low": 16, "high": 512}},
                                     "fixed": {"system.num_chips": 1}},
             "mix": mix, "objectives": [{"metric": "chip_cost_usd", "direction": "minimize"},
                                        {"metric": "mix.throughput", "direction": "maximize"}],
             "sampler": {"kind": "random"}, "budget": {"trials": 2}, "seed": 3}
    with _workdir() as d:
        src = d / "src.yaml"
        src.write_text(yaml.safe_dump({"mix": mix}, sort_keys=False))
        text = mutated(data.draw, src)
        try:
            new_mix = yaml.safe_load(text)
        except yaml.YAMLError:
            new_mix = None
        f = d / "studies" / "mx.yaml"
        if isinstance(new_mix, dict) and "mix" in new_mix:
            study["mix"] = new_mix["mix"]
            f.write_text(yaml.safe_dump(study, sort_keys=False, allow_unicode=True))
        else:  # the text mutation broke the YAML: put the broken text inside the study
            f.write_text(yaml.safe_dump({k: v for k, v in study.items() if k != "mix"}, sort_keys=False) + text)
        out = d / "runs"
        check(run_cli("run", f, "--trials", "2", "--serial", "--quiet", "--out", out), f, out)


@FUZZ
@given(st.data())
def test_fuzz_design_files(data):
    from dse.catalog import list_catalog, load_catalog_design

    name = data.draw(st.sampled_from(list_catalog()), label="chip")
    with _workdir() as d:
        src = d / "src.yaml"
        src.write_text(yaml.safe_dump(load_catalog_design(name).model_dump(mode="json"), sort_keys=False))
        f = d / "design.yaml"
        f.write_text(mutated(data.draw, src))
        check(run_cli("describe", f, "--json"), f, None)
        check(run_cli("evaluate", f, "--scenario", "local_llm", "--json"), f, None)


@FUZZ
@given(st.data())
def test_fuzz_technology_override(data):
    full = yaml.safe_load((ROOT / "dse/model/data/technology.yaml").read_text())
    table = data.draw(st.sampled_from(["process_nodes", "memories", "links", "packaging"]), label="table")
    entry = data.draw(st.sampled_from(sorted(full[table])), label="entry")
    with _workdir() as d:
        src = d / "src.yaml"
        src.write_text(yaml.safe_dump({table: {entry: full[table][entry]}}, sort_keys=False))
        f = d / "tech.yaml"
        f.write_text(mutated(data.draw, src))
        check(run_cli("describe", "H100-SXM", "--json", "--tech", f), f, None)


@FUZZ
@given(st.data())
def test_fuzz_dashboard_specs(data):
    spec = data.draw(st.sampled_from(sorted((ROOT / "dashboards").glob("*.yaml"))), label="spec")
    with _workdir() as d:
        f = d / spec.name
        f.write_text(mutated(data.draw, spec))
        not_a_run = d / "studies"
        page = d / "page.html"
        res = run_cli("dashboard", not_a_run, "--spec", f, "--out", page)
        check(res, f, None, also_ok=(str(not_a_run),))
        assert res[0] == 2 and not page.exists()
