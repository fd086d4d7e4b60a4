"""Search-space and study YAML: validation messages, expressions, conversion to columns, grid enumeration."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest

from dse.errors import ConfigError
from dse import expr as ex
from dse.study.space import SearchSpace, SearchSpaceSpec, load_space
from dse.study.spec import load_study

ROOT = Path(__file__).resolve().parents[1]

SPACE = """\
name: small
params:
  chip.process_node: {choices: [n7, n5]}
  chip.cores: {low: 16, high: 64, step: 16}
  chip.memory: {choices: [hbm3, none]}
  chip.memory_stacks: {low: 1, high: 4, type: int, when: "chip.memory != 'none'", inactive: 0}
fixed:
  system.num_chips: 1
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _study(tmp_path: Path, body: str) -> Path:
    _write(tmp_path, "space.yaml", SPACE)
    return _write(tmp_path, "study.yaml", "name: t\nsearch_space: space.yaml\nmix: balanced\n" + body)


def test_expressions_truth_and_violation():
    e = ex.parse("chip.memory != 'none' and (x in [1, 2] or not y)")
    env = {"chip.memory": np.array(["hbm3", "none", "hbm3"]), "x": np.array([1, 1, 5]), "y": np.array([True, False, True])}
    assert e.truth(env).tolist() == [True, False, False]
    c = ex.parse("a <= 50")
    v = c.violation({"a": np.array([25.0, 50.0, 100.0])})
    assert v[0] < 0 and v[1] == 0 and v[2] == pytest.approx(1.0)
    assert ex.parse("a <= 1 or b >= 2").violation({"a": np.array([3.0]), "b": np.array([1.0])})[0] == pytest.approx(0.5)
    with pytest.raises(ex.ExprError):
        ex.parse("a <= ")
    with pytest.raises(ex.ExprError):
        ex.parse("__import__('os')")


def test_space_columns_conditional_and_grid(tmp_path):
    space = load_space(_write(tmp_path, "s.yaml", SPACE))
    assert isinstance(space.distributions()["chip.cores"], optuna.distributions.IntDistribution)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rows = [space.suggest(study.ask()) for _ in range(40)]
    cols = space.columns(rows)
    assert set(cols) == {"chip.process_node", "chip.cores", "chip.memory", "chip.memory_stacks", "system.num_chips"}
    none = cols["chip.memory"] == "none"
    assert none.any() and (cols["chip.memory_stacks"][none] == 0).all()
    assert (cols["chip.memory_stacks"][~none] >= 1).all()
    assert cols["chip.cores"].dtype == np.int64 and cols["system.num_chips"].tolist() == [1] * 40
    # grid: every distinct design exactly once (inactive stacks collapse to one row)
    keep, g = space.grid_shard(0, space.grid_size_upper())
    designs = set(zip(*(g[k].tolist() for k in ("chip.process_node", "chip.cores", "chip.memory", "chip.memory_stacks"))))
    brute = {(n, c, m, s if m != "none" else 0) for n, c, m, s in
             itertools.product(["n7", "n5"], [16, 32, 48, 64], ["hbm3", "none"], [1, 2, 3, 4])}
    assert designs == brute and len(designs) == int(keep.sum()) == 2 * 4 * (4 + 1)
    # shards concatenate to the whole grid
    k1, _ = space.grid_shard(0, 17)
    k2, _ = space.grid_shard(17, 10_000)
    assert int(k1.sum() + k2.sum()) == len(designs)


def test_space_errors_name_file_line_and_suggest(tmp_path):
    bad = _write(tmp_path, "bad.yaml", """\
name: bad
params:
  chip.corez: {low: 16, high: 64}
  chip.sram_mb: {low: 512, high: 16}
  chip.memory: {choices: [hbm3, hbm9]}
  chip.memory_stacks: {low: 1, high: 4, when: "chip.memroy != 'none'"}
  chip.clock_ghz: {low: 1, high: 2, logg: true}
""")
    with pytest.raises(ConfigError) as ei:
        load_space(bad)
    text = str(ei.value)
    assert "bad.yaml:4:" in text and "low (512) must be <= high (16)" in text
    assert "bad.yaml:7:" in text and "logg" in text
    # semantic errors are reported once the shape is valid
    fixed = bad.read_text().replace("low: 512, high: 16", "low: 16, high: 512").replace(", logg: true", "")
    bad.write_text(fixed)
    with pytest.raises(ConfigError) as ei:
        load_space(bad)
    text = str(ei.value)
    assert "bad.yaml:3:3: params.chip.corez" in text and "did you mean 'chip.cores'" in text
    assert "hbm9" in text and "chip.memroy" in text and "did you mean 'chip.memory'" in text


def test_study_spec_validation(tmp_path):
    ok = _study(tmp_path, "objectives:\n  - {metric: mix.throughput, direction: maximize}\n"
                          "  - {metric: system_cost_usd, direction: minimize}\n"
                          "constraints: ['datacenter_llm.tpot_ms <= 50']\nsampler: {kind: nsga2, population_size: 8}\n"
                          "budget: {trials: 20}\n")
    s = load_study(ok)
    assert s.spec.effective_batch == 8 and s.spec.maximize == [True, False]
    assert s.space.names[0] == "chip.process_node"

    bad = _study(tmp_path, "objectives:\n  - {metric: mix.througput, direction: maximize}\n"
                           "constraints: ['datacenter_llm.tpot <= 50']\nbudget: {trials: 20}\n")
    with pytest.raises(ConfigError) as ei:
        load_study(bad)
    text = str(ei.value)
    assert "study.yaml:5:" in text and "did you mean 'mix.throughput'" in text
    assert "datacenter_llm.tpot" in text and "study.yaml:6:" in text

    bad = _study(tmp_path, "objectives: [{metric: mix.throughput, direction: up}]\n"
                           "sampler: {kind: nsga4}\nbudget: {trials: 0}\nbatch_size: 10\n")
    with pytest.raises(ConfigError) as ei:
        load_study(bad)
    text = str(ei.value)
    assert "direction" in text and "nsga4" in text and "budget.trials" in text

    bad = _study(tmp_path, "objectives: [{metric: mix.throughput, direction: maximize}]\n"
                           "sampler: {kind: nsga2, population_size: 16}\nbatch_size: 10\n")
    with pytest.raises(ConfigError, match="batch_size"):
        load_study(bad)


@pytest.mark.parametrize("name", ["quickstart", "local_llm", "datacenter", "vision", "balanced", "sweep_nodes"])
def test_shipped_studies_load(name):
    s = load_study(ROOT / "studies" / f"{name}.yaml")
    assert s.space.knobs


def test_shipped_spaces_load():
    for f in ("datacenter", "edge", "full"):
        space = load_space(ROOT / "search_spaces" / f"{f}.yaml")
        assert isinstance(space.spec, SearchSpaceSpec) and isinstance(space, SearchSpace)
