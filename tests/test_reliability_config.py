"""Issue 7.1: every YAML input rejects bad content with one `file:line:col: path: message` line per
problem, exit status 2, no traceback, and nothing written to the output folder.

The CLI runs in-process (`dse.cli.main` with sys.argv patched) so that a hundred cases take seconds."""

from __future__ import annotations

import contextlib
import copy
import io
import re
import sys
import traceback
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args) -> tuple[int | str, str, str]:
    """(exit status or "EXC", stdout, stderr) of `dse ARGS` in this process; an escaping exception is "EXC"."""
    from dse import cli

    out, err = io.StringIO(), io.StringIO()
    code: int | str = 0
    old = sys.argv
    sys.argv = ["dse", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - that is exactly the failure we look for
        code = "EXC"
        err.write(traceback.format_exc())
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


LINE = re.compile(r"^\s*(?P<file>[^:\s][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<path>[^:]+): (?P<msg>.+)$")


def problems(stderr: str) -> list[re.Match]:
    return [m for m in (LINE.match(line) for line in stderr.splitlines()) if m]


def assert_clean_failure(res, file: Path, *, path: str | None = None, contains: str | None = None,
                         line: int | None = None) -> list[re.Match]:
    code, out, err = res
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert str(file) in err, err
    found = problems(err)
    if path is not None or line is not None:
        hits = [m for m in found if m["file"] == str(file) and (path is None or m["path"] == path)
                and (line is None or int(m["line"]) == line)]
        assert hits, f"no problem at {file}:{line} {path}:\n{err}"
        if contains:
            assert any(contains in m["msg"] for m in hits), err
    elif contains:
        assert contains in err, err
    return found


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


# -- study files: one broken thing at a time ----------------------------------------------------------

VISION = yaml.safe_load((ROOT / "studies/vision.yaml").read_text())


def _set(path: str, value):
    def f(d):
        keys = path.split("/")
        cur = d
        for k in keys[:-1]:
            cur = cur[int(k)] if isinstance(cur, list) else cur[k]
        last = keys[-1]
        if isinstance(cur, list):
            cur[int(last)] = value
        elif value is _DEL:
            del cur[last]
        else:
            cur[last] = value
    return f


_DEL = object()
P = "space/params"

# (id, mutation, dotted path reported, text expected in the message)
STUDY_CASES = [
    ("unknown-key", _set("objectivs", []), "objectivs", "did you mean `objectives`"),
    ("unknown-nested-key", _set("sampler/populaton_size", 3), "sampler.populaton_size", "population_size"),
    ("unknown-param-key", _set(f"{P}/chip.cores/logg", True), "space.params.chip.cores.logg", "log"),
    ("wrong-type", _set("budget/trials", "many"), "budget.trials", "valid integer"),
    ("out-of-range", _set("sampler/population_size", 1), "sampler.population_size", "greater than or equal to 2"),
    ("negative-budget", _set("budget/timeout_s", -5), "budget.timeout_s", "greater than 0"),
    ("empty-range", _set(f"{P}/chip.clock_ghz", {"low": 2.0, "high": 0.5}), "space.params.chip.clock_ghz",
     "low (2) must be <= high (0.5)"),
    ("range-below-field-min", _set(f"{P}/chip.cores", {"low": -4, "high": 8, "type": "int"}),
     "space.params.chip.cores.low", "greater than 0"),
    ("unknown-knob", _set(f"{P}/chip.sram_mbb", {"low": 1, "high": 2}), "space.params.chip.sram_mbb",
     "did you mean 'chip.sram_mb'"),
    ("unknown-node", _set(f"{P}/chip.process_node/choices/1", "n6"), "space.params.chip.process_node.choices.1",
     "unknown process node 'n6'"),
    ("unknown-memory", _set("space/fixed/chip.link", "nvlnk4"), "space.fixed.chip.link", "did you mean 'nvlink4'"),
    ("bad-inactive", _set(f"{P}/chip.memory_stacks/inactive", "zero"), "space.params.chip.memory_stacks.inactive",
     "integer"),
    ("bad-when", _set(f"{P}/chip.memory_stacks/when", "chip.memry != 'none'"),
     "space.params.chip.memory_stacks.when", "did you mean 'chip.memory'"),
    ("unknown-metric", _set("objectives/0/metric", "vision_cnn.image_per_s"), "objectives.0.metric",
     "did you mean 'vision_cnn.images_per_s'"),
    ("text-metric-objective", _set("objectives/0/metric", "vision_cnn.reason"), "objectives.0.metric", "is text"),
    ("unknown-constraint-metric", _set("constraints", ["vision_cnn.latencyms <= 10"]), "constraints.0",
     "did you mean 'vision_cnn.latency_ms'"),
    ("text-constraint", _set("constraints", ["reason <= 1"]), "constraints.0", "text metric"),
    ("bad-direction", _set("objectives/1/direction", "minimise"), "objectives.1.direction", "did you mean 'minimize'"),
    ("unknown-sampler", _set("sampler", {"kind": "nsga"}), "sampler", "valid: gp, grid"),
    ("unknown-mix", _set("mix", "visoin"), "mix", "did you mean 'vision'"),
    ("inline-mix-unknown-model", _set("mix", {"name": "m", "scenarios": [
        {"scenario": {"name": "x", "kind": "cnn", "model": "ResNet-5"}}]}), "mix", "did you mean 'ResNet-50'"),
    ("inline-mix-bad-weight", _set("mix", {"scenarios": {"vision_cnn": -1}}), "mix", "greater than 0"),
    ("dot-name", _set("name", ".."), "name", "cannot be a folder name"),
    ("bad-storage-url", _set("storage", "postgress://x/y"), "storage", "not usable"),
    ("missing-tech", _set("technology", "no_such_tech.yaml"), "technology", "not found"),
    ("sweep-unknown-knob", _set("sweep", [{"name": "a", "fixed": {"chip.coress": 4}}]), "sweep.0.fixed.chip.coress",
     "did you mean 'chip.cores'"),
    ("sweep-bad-value", _set("sweep", [{"name": "a", "fixed": {"chip.process_node": "n55"}}]),
     "sweep.0.fixed.chip.process_node", "unknown process node"),
    ("sweep-negative", _set("sweep", [{"name": "a", "fixed": {"chip.cores": -3}}]), "sweep.0.fixed.chip.cores",
     "greater than 0"),
    ("missing-objectives", _set("objectives", _DEL), "objectives", "required"),
]


@pytest.mark.parametrize("case", STUDY_CASES, ids=[c[0] for c in STUDY_CASES])
def test_bad_study_exits_2_with_located_message_and_writes_nothing(tmp_path, case):
    _, mutate, path, text = case
    data = copy.deepcopy(VISION)
    data["execution"] = {"backend": "serial"}
    mutate(data)
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "runs"
    res = run_cli("run", f, "--trials", "2", "--serial", "--quiet", "--out", out)
    found = assert_clean_failure(res, f, path=path, contains=text)
    assert len(found) == len({(m["path"], m["msg"]) for m in found}), "one message per problem"
    assert_nothing_written(out)
    # the same file through a non-serial run (Ray is never started for a bad file)
    assert run_cli("run", f, "--trials", "2", "--quiet", "--out", out)[0] == 2
    assert_nothing_written(out)


def test_several_problems_one_line_each_in_file_order(tmp_path):
    data = copy.deepcopy(VISION)
    data["objectivs"] = []
    data["sampler"]["population_size"] = 0
    data["budget"]["trials"] = "x"
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = run_cli("run", f, "--out", tmp_path / "o")
    assert code == 2
    found = problems(err)
    assert {m["path"] for m in found} == {"objectivs", "sampler.population_size", "budget.trials"}
    lines = [int(m["line"]) for m in found]
    assert lines == sorted(lines) and len(found) == 3


def test_technology_override_problems_are_reported_in_the_override_file(tmp_path):
    tech = tmp_path / "tech.yaml"
    tech.write_text("process_nodes:\n  n5:\n    wafer_price_usd: lots\n    reticle_mmm2: 800\n")
    data = copy.deepcopy(VISION)
    data["technology"] = "tech.yaml"
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    res = run_cli("run", f, "--serial", "--out", tmp_path / "o")
    assert_clean_failure(res, tech, path="process_nodes.n5.wafer_price_usd", line=3)
    assert_clean_failure(res, tech, path="process_nodes.n5.reticle_mmm2", line=4, contains="reticle_mm2")
    assert_nothing_written(tmp_path / "o")
    # and through `dse describe --tech`
    assert_clean_failure(run_cli("describe", "H100-SXM", "--tech", tech), tech,
                         path="process_nodes.n5.wafer_price_usd", line=3)


def test_search_space_file_problems_are_reported_in_the_space_file(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("name: s\nparams:\n  chip.cores: {low: 64, high: 8}\n  chip.sram_mb: {low: 1, hihg: 9}\n"
                     "fixed:\n  chip.memory: hmb3\n")
    data = copy.deepcopy(VISION)
    del data["space"]
    data["search_space"] = "space.yaml"
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    res = run_cli("run", f, "--serial", "--out", tmp_path / "o")
    assert_clean_failure(res, space, line=3, contains="low (64) must be <= high (8)")
    assert_clean_failure(res, space, path="params.chip.sram_mb.hihg", line=4, contains="high")
    assert_nothing_written(tmp_path / "o")


@pytest.mark.parametrize("text,line", [
    ("name: x\nseed: 1\nseed: 2\n", 3),                 # duplicate key
    ("name: x\nobjectives: [\n", 3),                    # truncated flow list
    ("name: x\n  objectives: 3\n", 2),                  # bad indentation
    ("name: x\n\tseed: 1\n", 2),                        # tab
    ("name: 'x\nseed: 1\n", 3),                         # unterminated quote
])
def test_malformed_yaml_is_located(tmp_path, text, line):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    code, out, err = run_cli("run", f, "--out", tmp_path / "o")
    assert code == 2 and "Traceback" not in err
    assert re.search(rf"{re.escape(str(f))}:{line}:\d+: ", err), err
    assert_nothing_written(tmp_path / "o")


# -- designs, dashboard specs, technology overrides through their own commands -------------------------

DESIGN = {"name": "d", "chip": {"process_node": "n5", "cores": 64, "sram_mb": 128, "memory": "hbm3",
                                "memory_stacks": 4}, "system": {"num_chips": 2}}

DESIGN_CASES = [
    ("chip.sram_mbb", 3, "chip.sram_mbb", "sram_mb"),
    ("chip.process_node", "n55", "chip.process_node", "did you mean 'n5'"),
    ("chip.memory", "hbm9", "chip.memory", "unknown memory"),
    ("chip.link", "nvlink99", "chip.link", "unknown link"),
    ("chip.cores", -3, "chip.cores", "greater than 0"),
    ("chip.clock_ghz", "fast", "chip.clock_ghz", "valid number"),
    ("system.topology", "mesh", "system.topology", "ring"),
    ("system.num_chips", 0, "system.num_chips", "greater than or equal to 1"),
    ("chip.precisions", ["bf16", "fp3"], "chip.precisions", "did you mean 'fp8'"),
]


@pytest.mark.parametrize("key,value,path,text", DESIGN_CASES, ids=[c[0] + "=" + str(c[1]) for c in DESIGN_CASES])
def test_bad_design_describe_and_evaluate(tmp_path, key, value, path, text):
    d = copy.deepcopy(DESIGN)
    sec, field = key.split(".")
    d[sec][field] = value
    f = tmp_path / "d.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    for cmd in (["describe", f], ["evaluate", f, "--mix", "local"]):
        assert_clean_failure(run_cli(*cmd), f, path=path, contains=text)


def test_bad_dashboard_spec(tmp_path):
    spec = tmp_path / "dash.yaml"
    spec.write_text("title: t\nmax_points: -5\nviews:\n  - kind: paretoo\n  - {kind: roofline, desings: 3}\n")
    out = tmp_path / "page.html"
    res = run_cli("dashboard", tmp_path, "--spec", spec, "--out", out)
    found = assert_clean_failure(res, spec)
    assert any(m["path"] == "max_points" for m in found), res[2]
    assert any(m["path"].startswith("views.0") and "pareto" in m["msg"] for m in found), res[2]
    assert not out.exists()
